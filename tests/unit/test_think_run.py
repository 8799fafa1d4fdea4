"""`velobench think` wiring without servers: problems, every up-front check, the result file and
its reports (on a real result: tests/fixtures/think/result-smollm2-every-paragraph.json, written
by `velobench think` with SmolLM2 as both models and tests/fixtures/think/every-paragraph.toml)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path
from typing import Any, ClassVar

import pytest

from velobench import export
from velobench.errors import VelobenchError
from velobench.report.warnings import text
from velobench.results.store import load, load_result, save
from velobench.results.think import ThinkReport
from velobench.think.analysis import find_triggers, summarize_think
from velobench.think.console import render_console
from velobench.think.render import coloured_text, shown_run
from velobench.think.run import PROMPT_ROOM, load_problems, prepare

THINK = Path(__file__).parents[1] / "fixtures" / "think"
RESULT = THINK / "result-smollm2-every-paragraph.json"
LLAMA = Path(__file__).parents[1] / "fixtures" / "llama"


def raw(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"large_model": "large.gguf", "small_model": "small.gguf", "test_mode": "both"}
    base.update(kw)
    return base


# ---------------------------------------------------------------- problems


def test_builtin_problems_have_answers_and_categories_filter() -> None:
    every = load_problems("builtin", None)
    assert len(every) == 47 and all(p.reference for p in every) and every[0].id == "think-001"
    assert [p.id for p in load_problems("builtin", 3)] == ["think-001", "think-002", "think-003"]
    words = load_problems("builtin:word", None)
    assert words and len(words) < 47 and all(p.source == "builtin" for p in words)
    with pytest.raises(VelobenchError, match="no built-in think problems of category 'poetry'"):
        load_problems("builtin:poetry", None)
    with pytest.raises(VelobenchError, match="at least 1"):
        load_problems("builtin", 0)


def test_a_jsonl_with_answers(tmp_path: Path) -> None:
    f = tmp_path / "mine.jsonl"
    f.write_text(
        json.dumps({"id": "a", "prompt": "1+1?", "answer": 2})
        + "\n"
        + json.dumps({"prompt": "2+2?", "reference": "4"})
        + "\n"
        + json.dumps({"prompt": "open question"})
        + "\n"
    )
    got = load_problems(str(f), None)
    assert [(p.id, p.reference) for p in got] == [("a", "2"), ("mine-0002", "4"), ("mine-0003", None)]


# ---------------------------------------------------------------- every check before a server starts


@pytest.mark.parametrize(
    ("values", "overrides", "message"),
    [
        (raw(test_mode="fast"), {}, "unknown test mode 'fast': use large, spec or both"),
        (raw(engine="cli"), {}, "unknown engine 'cli' for velobench think"),
        (raw(large_model=None), {}, "needs the large model: -m LARGE"),
        (raw(small_model=None), {}, "needs the small model: -d SMALL"),
        (raw(engine="server", large_url="http://127.0.0.1:9"), {}, "use --engine remote"),
        (raw(engine="remote", large_url="http://127.0.0.1:9"), {}, "needs --small-url URL"),
        (raw(ctx_size=512), {"max_tokens": 512}, "--ctx-size 512 must exceed --max-tokens 512"),
        (raw(), {"triggers": []}, "words is empty"),
        (raw(), {"segment_tokens": 0}, "segment.tokens"),
        (raw(num_runs=0), {}, "num-runs"),
        (raw(), {}, "large model (-m) not found: large.gguf"),
    ],
)
def test_bad_input_is_one_line_before_anything_starts(
    values: dict[str, Any], overrides: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(VelobenchError) as err:
        prepare(values, overrides, tmp_path / "logs")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "logs").exists()


def test_a_config_without_triggers_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "none.toml"
    cfg.write_text("[triggers]\nwords = []\n")
    with pytest.raises(VelobenchError, match=r"none\.toml: \[triggers\] words is empty"):
        prepare(raw(config_file=str(cfg)), {}, tmp_path / "logs")


def test_unreachable_remote_server_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(
        VelobenchError, match=r"cannot reach the large model's server at http://127\.0\.0\.1:9"
    ):
        prepare(
            raw(
                large_model=None,
                small_model=None,
                large_url="http://127.0.0.1:9",
                small_url="http://127.0.0.1:9",
            ),
            {},
            tmp_path,
        )


def test_large_mode_needs_no_small_model_and_ctx_defaults_to_max_tokens_plus_room(tmp_path: Path) -> None:
    with pytest.raises(VelobenchError, match="large model") as err:
        prepare(raw(small_model=None, test_mode="large"), {"max_tokens": 100}, tmp_path)
    assert "small" not in str(err.value)
    assert PROMPT_ROOM >= 512  # a chat-templated problem fits beside --max-tokens


# ---------------------------------------------------------------- the result file and its reports


def real_result() -> ThinkReport:
    rep = load_result(RESULT)
    assert isinstance(rep, ThinkReport)
    return rep


def test_the_result_loads_by_kind_and_round_trips(tmp_path: Path) -> None:
    rep = real_result()
    assert rep.kind == "think" and rep.status == "complete" and len(rep.runs) == 8
    assert [s.role for s in rep.servers] == ["large", "small"]
    assert all(s.command and "--no-cache-prompt" not in s.command for s in rep.servers)  # think caches
    with pytest.raises(VelobenchError, match="is a `velobench think` result, not a `velobench run` result"):
        load(RESULT)
    save(rep, tmp_path / "copy.json")
    again = load_result(tmp_path / "copy.json")
    assert again == rep
    data = json.loads((tmp_path / "copy.json").read_text())
    assert "api_key" not in data["config"]["run"]


def test_the_recorded_summary_is_the_summary_of_the_recorded_runs() -> None:
    rep = real_result()  # written before warnings were values: its warnings are old texts
    again = summarize_think(rep.runs)
    assert rep.summary is not None and rep.summary.spec is not None and again.spec is not None
    # issue 20 changed two things since this file was written: the large-model share's interval
    # is Wilson's (within [0, 1]; the t-interval reached below 0), and the warnings judge the
    # speedup paired per problem and run (the paired p, not Welch's)
    old_share, new_share = rep.summary.spec.large_ratio, again.spec.large_ratio
    assert old_share is not None and new_share is not None
    assert old_share.ci95_low is not None and old_share.ci95_low < 0
    assert new_share.ci95_low is not None and new_share.ci95_high is not None
    assert 0 <= new_share.ci95_low <= new_share.mean <= new_share.ci95_high <= 1
    share = {"ci95_low": new_share.ci95_low, "ci95_high": new_share.ci95_high}
    spec = rep.summary.spec.model_copy(update={"large_ratio": old_share.model_copy(update=share)})
    recorded = rep.summary.model_copy(update={"warnings": [], "spec": spec})
    assert recorded == again.model_copy(update={"warnings": []})
    old_texts, new_texts = [text(w) for w in rep.summary.warnings], [text(w) for w in again.warnings]
    assert old_texts[0] == new_texts[0]
    assert old_texts[1] == "the latency difference is not significant (Welch p = 0.744)"
    assert again.speedup_paired is not None and again.speedup_paired.p_value is not None
    assert (
        new_texts[1]
        == f"the latency difference is not significant (paired t p = {again.speedup_paired.p_value:.3g})"
    )
    assert rep.warnings == rep.summary.warnings


def test_every_run_is_its_segments() -> None:
    """The text is the segments joined, the ratio is their large tokens over all; every
    intervention starts right after a trigger that the small model's text completed."""
    rep = real_result()
    words = rep.config.think.triggers.words
    assert sum(r.interventions for r in rep.runs) >= 2
    for r in rep.runs:
        assert r.text == "".join(s.text for s in r.segments)
        assert r.tokens == sum(s.tokens for s in r.segments)
        large = sum(s.tokens for s in r.segments if s.writer == "large")
        assert r.large_ratio is not None and 0 <= r.large_ratio <= 1
        assert r.large_ratio == pytest.approx(large / r.tokens)
        ends = {h.end for h in find_triggers(r.text, words)}
        for s in r.segments:
            if s.trigger is not None:
                assert s.writer == "large" and r.mode == "spec" and s.start_char in ends
                assert r.text[: s.start_char].lower().endswith("\n\n" + s.trigger)


def test_reports_of_a_think_result() -> None:
    rep = real_result()
    console = render_console(rep)
    assert "BENCHMARK RESULTS SUMMARY" in console and "PER PROBLEM" in console
    assert "LARGE MODEL TOKEN REDUCTION" in console
    md = export.render([rep], "md")
    assert "| speculative thinking | 4 |" in md and "## Per problem" in md
    rows = list(csv.DictReader(io.StringIO(export.render([rep], "csv"))))
    assert len(rows) == 8 and {r["mode"] for r in rows} == {"large", "spec"}
    assert json.loads(export.render([rep], "json"))["kind"] == "think"
    with pytest.raises(VelobenchError, match="unknown export format 'pdf'"):
        export.render([rep], "pdf")


def test_html_colours_one_run_by_writer() -> None:
    rep = real_result()
    page = export.render([rep], "html")
    run = shown_run(rep)
    assert (
        run is not None and run.mode == "spec" and run.interventions == max(r.interventions for r in rep.runs)
    )
    spans = re.findall(r'<span class="(small|large)" title="[^"]*">', coloured_text(run))
    assert spans == [s.writer for s in run.segments]
    assert coloured_text(run) in page
    for p in rep.summary.problems if rep.summary else []:
        assert f"<td>{p.problem_id}</td>" in page
    assert "Large-model ratio per problem" in page and "<script" not in page


# ---------------------------------------------------------------- the servers think starts


class RecordedServer:
    """Stands in for proc.ServerProcess in engines.vllm: records what would be launched, starts nothing."""

    launched: ClassVar[list[RecordedServer]] = []

    def __init__(self, argv: list[str], port: int, log_path: Path, **kw: Any) -> None:
        self.argv, self.port, self.log_path, self.env = argv, port, log_path, kw.get("env")
        self.ours = os.environ.get("VLLM_MAX_STOP_STRINGS")  # velobench's own, at launch
        self.base_url = f"http://127.0.0.1:{port}"
        self.command, self.ready_s, self.process = " ".join(argv), 1.0, None
        RecordedServer.launched.append(self)

    def __enter__(self) -> RecordedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def test_a_think_vllm_server_gets_its_stop_string_limit_in_its_own_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real vLLM engine and think's real server start, with vLLM located at a stand-in path and
    the process recorded instead of started: each model is one vanilla server (no draft model, no
    speculative config), and VLLM_MAX_STOP_STRINGS is in that child's environment, never ours."""
    from velobench.bins import vllm_env
    from velobench.engines import vllm
    from velobench.think.analysis import trigger_stop_strings
    from velobench.think.run import open_servers

    install = vllm_env.VllmInstall(
        bin=tmp_path / "venv" / "bin" / "vllm", source="--vllm-bin", python=None, versions={"vllm": "0.32.0"}
    )
    monkeypatch.setattr(vllm_env, "locate", lambda *a, **k: install)
    monkeypatch.setattr(vllm_env, "cuda_device_count", lambda: 0)
    monkeypatch.setattr(vllm, "ServerProcess", RecordedServer)
    monkeypatch.delenv("VLLM_MAX_STOP_STRINGS", raising=False)
    RecordedServer.launched = []
    prep = prepare(
        raw(engine="vllm", large_model="org/large", small_model="org/small", vllm_bin=str(install.bin)),
        {},
        tmp_path / "logs",
    )
    words = prep.setup.think.triggers.words
    assert all(e.cfg.draft_model is None and e.cfg.skip_speculative for e in prep.engines.values())  # type: ignore[attr-defined]
    with open_servers(prep) as (_, records):
        assert "VLLM_MAX_STOP_STRINGS" not in os.environ
    want = str(max(4, len(trigger_stop_strings(words))))
    assert [s.argv[s.argv.index("serve") + 1] for s in RecordedServer.launched] == ["org/large", "org/small"]
    for s in RecordedServer.launched:
        assert s.env is not None and s.env["VLLM_MAX_STOP_STRINGS"] == want and s.ours is None
        assert not any(a.startswith("--speculative") for a in s.argv)
    assert [r.max_stop_strings for r in records] == [int(want)] * 2 and {r.protocol for r in records} == {
        "openai"
    }
    assert "VLLM_MAX_STOP_STRINGS" not in os.environ
