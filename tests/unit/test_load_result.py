"""`velobench load` without a server: options and levels, prompt fitting, the load result (records
JSONL round trip, recomputation, store dispatch, schema 3), reports and compare of load results."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from velobench import export
from velobench.errors import VelobenchError
from velobench.load.arrivals import arrival_schedule
from velobench.load.compare import compare_load, regression
from velobench.load.plan import (
    DEFAULT_RATE_SLOTS,
    DEFAULT_REQUESTS,
    level_plans,
    load_options,
    parse_sweep,
)
from velobench.load.recompute import recompute
from velobench.load.render import notes, plot_throughput_latency
from velobench.load.run import fit_prompts
from velobench.prompts import Prompt
from velobench.report.compare import regression_text
from velobench.results import store
from velobench.results.config import RunConfig
from velobench.results.environment import Environment
from velobench.results.load import (
    LOAD_SCHEMA_VERSION,
    LoadLevel,
    LoadMode,
    LoadPlan,
    LoadRecord,
    LoadReport,
    Records,
    append_records,
    read_records,
)
from velobench.results.schema import RUN_SCHEMA_VERSION
from velobench.results.timing import RequestTiming, SpecDecodeDelta

# --------------------------------------------------------------------------- options and levels


def test_sweep_parsing() -> None:
    s = parse_sweep("concurrency=4, 1,2,2")
    assert (s.kind, s.levels) == ("concurrency", [1.0, 2.0, 4.0])
    assert parse_sweep("RATE=0.5,inf").levels == [0.5, float("inf")]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("concurrency=", "has no levels"),
        ("concurrency= , ", "has no levels"),
        ("batch=1,2", "expected concurrency=1,2,4"),
        ("concurrency=0,1", "whole number >= 1"),
        ("concurrency=1.5", "whole number >= 1"),
        ("rate=0", "must be > 0"),
        ("rate=-1,2", "must be > 0"),
        ("rate=fast", "not a number"),
    ],
)
def test_bad_sweeps_are_one_line(text: str, needle: str) -> None:
    with pytest.raises(VelobenchError, match=needle):
        parse_sweep(text)


def test_options_decide_levels_bounds_and_slots() -> None:
    o = load_options()
    assert (o.profile, o.levels, o.requests, o.slots, o.sweep) == (
        "concurrency",
        [1.0],
        DEFAULT_REQUESTS,
        1,
        False,
    )
    o = load_options(sweep="concurrency=1,2,8", duration_s=30)
    assert (o.levels, o.slots, o.requests, o.sweep) == ([1.0, 2.0, 8.0], 8, None, True)
    o = load_options(rate=2.0, concurrency=3, requests=10, burstiness=0.5)
    assert (o.profile, o.max_concurrency, o.slots, o.burstiness) == ("rate", 3, 3, 0.5)
    assert load_options(sweep="rate=1,2").slots == DEFAULT_RATE_SLOTS
    o = load_options(slo="ttft=500ms,tpot=50ms", warmup_requests=2, cooldown_s=1.5, requests=10)
    assert o.slo is not None and (o.slo.ttft_ms, o.slo.tpot_ms) == (500, 50)
    assert (o.warmup.requests, o.cooldown.seconds) == (2, 1.5)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"concurrency": 0}, "--concurrency must be a whole number > 0"),
        ({"concurrency": -2}, "--concurrency must be"),
        ({"rate": 0.0}, "request rate must be > 0"),
        ({"rate": -1.0}, "request rate must be > 0"),
        ({"requests": 0}, "--requests must be"),
        ({"duration_s": 0.0}, "--duration must be"),
        ({"rate": 1.0, "burstiness": 0.0}, "burstiness must be"),
        ({"burstiness": 2.0}, "needs --rate"),
        ({"sweep": "concurrency=1,2", "concurrency": 2}, "drop --concurrency"),
        ({"sweep": "rate=1,2", "rate": 2.0}, "drop --rate"),
        ({"sweep": "concurrency=1", "rate": 2.0}, "pick one"),
        ({"warmup_s": 1.0, "warmup_requests": 1}, "not both"),
        ({"cooldown_s": 1.0, "cooldown_requests": 1}, "not both"),
        ({"requests": 4, "warmup_requests": 2, "cooldown_requests": 2}, "leave nothing"),
        ({"rate": float("inf"), "duration_s": 5.0}, "needs --requests"),
        ({"slo": "ttft=fast"}, "bad SLO item"),
        ({"input_len": 0}, "--input-len"),
    ],
)
def test_bad_options_are_one_line(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(VelobenchError, match=needle):
        load_options(**kwargs)  # type: ignore[arg-type]


def test_open_loop_levels_carry_their_seeded_schedule() -> None:
    opts = load_options(sweep="rate=1,4", requests=12, seed=7)
    plans = level_plans(opts)
    assert [p.level() for p in plans] == [1.0, 4.0]
    for p, rate in zip(plans, (1.0, 4.0), strict=True):
        assert p.schedule is not None
        assert p.schedule.offsets_s == arrival_schedule(rate, seed=7, count=12).offsets_s
        assert p.count_bound() == 12
    closed = level_plans(load_options(sweep="concurrency=1,3", requests=5, warmup_requests=1))
    assert [(p.profile, p.concurrency, p.slots(), p.warmup.requests) for p in closed] == [
        ("concurrency", 1, 1, 1),
        ("concurrency", 3, 3, 1),
    ]


# --------------------------------------------------------------------------- prompts


def prompt(i: int, text: str) -> Prompt:
    return Prompt(id=f"p{i}", category="c", prompt=text, source="test")


def chars(text: str) -> list[int]:  # a stand-in tokenizer: one token per character
    return [ord(c) for c in text]


def unchars(ids: object) -> str:
    return "".join(chr(i) for i in ids)  # type: ignore[attr-defined]


def test_input_len_cuts_and_repeats_to_exactly_n_tokens() -> None:
    ps = [prompt(0, "abc"), prompt(1, "a much longer prompt")]
    out, counts, notes_ = fit_prompts(ps, tokenize=chars, detokenize=unchars, input_len=8, max_tokens=100)
    assert [p.prompt for p in out] == ["abcabcab", "a much l"] and counts == [8, 8] and notes_ == []


def test_too_long_prompts_are_dropped_and_said() -> None:
    ps = [prompt(0, "x" * 10), prompt(1, "y" * 11), prompt(2, "z")]
    out, counts, notes_ = fit_prompts(ps, tokenize=chars, detokenize=unchars, input_len=None, max_tokens=10)
    assert [p.id for p in out] == ["p0", "p2"] and counts == [10, 1]
    assert notes_ == ["1 of 3 prompts dropped: longer than 10 tokens"]
    with pytest.raises(VelobenchError, match="no prompt fits"):
        fit_prompts([ps[1]], tokenize=chars, detokenize=unchars, input_len=None, max_tokens=10)


def test_without_a_tokenizer_input_len_is_about_four_characters_a_token() -> None:
    out, counts, notes_ = fit_prompts(
        [prompt(0, "hello")], tokenize=None, detokenize=None, input_len=5, max_tokens=1
    )
    assert out[0].prompt == "hello\n\nhello\n\nhello\n\n"[:20] and counts is None
    assert "about 5 tokens" in notes_[0]


# --------------------------------------------------------------------------- the result


def timing(sent: float, ttft: float, tokens: int, gap: float) -> RequestTiming:
    chunks = [sent + ttft + i * gap for i in range(tokens)]
    return RequestTiming(
        sent_s=sent,
        first_token_s=chunks[0],
        chunk_s=chunks,
        chunk_tokens=[1] * tokens,
        end_s=chunks[-1] + 0.001,
        output_tokens=tokens,
    )


def closed_loop(c: int, n: int, ttft: float, gap: float, tokens: int = 16) -> list[LoadRecord]:
    """n requests, c at a time back to back: what a closed loop records."""
    out = []
    free = [0.0] * c
    for i in range(n):
        slot = int(np.argmin(free))
        t = timing(free[slot], ttft, tokens, gap)
        free[slot] = t.end_s or 0.0
        out.append(
            LoadRecord(index=i, prompt_id=f"p{i % 3}", scheduled_s=t.sent_s, issued_s=t.sent_s, timing=t)
        )
    return sorted(out, key=lambda r: r.index)


def environment() -> Environment:
    return Environment(
        hostname="h",
        os="linux",
        python="3.11",
        cpu_model="cpu",
        cpu_cores_physical=2,
        cpu_cores_logical=2,
        ram_total_mib=1,
    )


def make_report(
    gaps: dict[tuple[str, float], float], levels: tuple[float, ...] = (1.0, 2.0)
) -> tuple[LoadReport, Records]:
    """A two-mode concurrency sweep whose per-token gap is `gaps[(mode, level)]` (jittered)."""
    opts = load_options(sweep="concurrency=" + ",".join(f"{x:g}" for x in levels), requests=40)
    report = LoadReport(
        config=RunConfig(main_model="t.gguf", draft_model="d.gguf"),
        load=opts,
        environment=environment(),
        prompt_ids=["p0", "p1", "p2"],
        records_file="r.records.jsonl",
    )
    records: Records = {}
    rng = np.random.default_rng(0)
    for mode in ("vanilla", "speculative"):
        m = LoadMode(mode=mode, binary="llama-server", slots=int(max(levels)))
        for p in level_plans(opts):
            c = int(p.level())
            recs = closed_loop(c, 40, 0.2, gaps[(mode, p.level())])
            for r in recs:  # jitter so that intervals and tests have variance
                k = rng.uniform(0.9, 1.1)
                t = r.timing
                t.chunk_s = [t.sent_s + (x - t.sent_s) * k for x in t.chunk_s]
                t.first_token_s = t.chunk_s[0]
                t.end_s = t.chunk_s[-1] + 0.001
            records[(mode, p.level())] = recs
            delta = (
                SpecDecodeDelta(
                    prefix="llamacpp",
                    drafts=100,
                    draft_tokens=400,
                    accepted_tokens=300,
                    accepted_per_position=[],
                )
                if mode == "speculative"
                else None
            )
            m.levels.append(
                LoadLevel(
                    mode=mode,
                    level=p.level(),
                    plan=p,
                    issued=40,
                    finished=40,
                    max_in_flight=c,
                    wall_s=10.0,
                    started_at="2026-01-01T00:00:00Z",
                    spec_decode=delta,
                )
            )
        report.modes[mode] = m
    return recompute(report, records), records


def test_crossover_recomputed_from_records_and_counters() -> None:
    gaps = {
        ("vanilla", 1.0): 0.05,
        ("vanilla", 2.0): 0.05,
        ("speculative", 1.0): 0.03,
        ("speculative", 2.0): 0.08,
    }
    report, _ = make_report(gaps)
    c1, c2 = report.comparisons
    assert "throughput" in c1.better and "e2e" in c1.better
    assert "throughput" in c2.worse and "e2e" in c2.worse
    assert report.crossover is not None and report.crossover.level == 2.0
    lvl = report.level("speculative", 1.0)
    assert lvl is not None and lvl.summary is not None and lvl.summary.acceptance is not None
    assert (
        lvl.summary.acceptance.acceptance_rate == 0.75
        and lvl.summary.acceptance.mean_acceptance_length == 4.0
    )
    assert any(
        re.match(r"Crossover: speculation stops paying at concurrency 2 \(throughput \d\.\d\dx ", line)
        for line in notes(report)
    )


def test_no_crossover_says_up_to_which_level() -> None:
    gaps = {
        ("vanilla", 1.0): 0.05,
        ("vanilla", 2.0): 0.05,
        ("speculative", 1.0): 0.03,
        ("speculative", 2.0): 0.03,
    }
    report, _ = make_report(gaps)
    assert report.crossover is not None and report.crossover.level is None
    assert report.crossover.text == "none up to concurrency 2"


def test_records_jsonl_round_trip_and_store_dispatch(tmp_path: Path) -> None:
    gaps = {k: 0.05 for k in (("vanilla", 1.0), ("vanilla", 2.0), ("speculative", 1.0), ("speculative", 2.0))}
    report, records = make_report(gaps)
    path = tmp_path / "r.records.jsonl"
    for (mode, level), recs in records.items():
        append_records(path, mode, "concurrency", level, recs)
    back = read_records(path)
    assert back == records
    first = json.loads(path.read_text().splitlines()[0])
    assert (first["mode"], first["level"], first["index"]) == ("vanilla", 1.0, 0)
    # every summary recomputes from the JSONL alone
    again = recompute(report.model_copy(deep=True), back)
    assert again.modes == report.modes and again.comparisons == report.comparisons
    store.save(report, tmp_path / "r.json")
    loaded = store.load_result(tmp_path / "r.json")
    assert (
        isinstance(loaded, LoadReport) and loaded == report and loaded.schema_version == LOAD_SCHEMA_VERSION
    )
    with pytest.raises(VelobenchError, match="is a `velobench load` result"):
        store.load(tmp_path / "r.json")
    path.write_text('{"mode": "vanilla"}\n')
    with pytest.raises(VelobenchError, match=r"r\.records\.jsonl:1: not a load record"):
        read_records(path)


def test_a_version_2_run_result_still_loads(tmp_path: Path) -> None:
    v1 = Path(__file__).parents[1] / "fixtures" / "reports" / "smollm2-135m-selfdraft-server.json"
    raw = json.loads(store.load(v1).model_dump_json())
    raw["schema_version"] = 2
    (tmp_path / "v2.json").write_text(json.dumps(raw))
    rep = store.load(tmp_path / "v2.json")
    assert rep.schema_version == RUN_SCHEMA_VERSION and list(rep.modes) == ["vanilla", "speculative"]


def test_reports_of_a_load_result() -> None:
    gaps = {
        ("vanilla", 1.0): 0.05,
        ("vanilla", 2.0): 0.05,
        ("speculative", 1.0): 0.03,
        ("speculative", 2.0): 0.08,
    }
    report, _ = make_report(gaps)
    md = export.render([report], "md")
    assert "## Speculative ÷ vanilla" in md and "Crossover: speculation stops paying at concurrency 2" in md
    assert "| 2 | 40/40 | 0 |" in md and "75%, len 4.00" in md
    html = export.render([report], "html")
    assert html.count("<table>") == 3 and "data:image/png;base64," in html
    rows = export.render([report], "csv").splitlines()
    assert len(rows) == 5 and rows[1].startswith("vanilla,concurrency,1.0,40,40,0,")
    assert json.loads(export.render([report], "json"))["kind"] == "load"
    assert plot_throughput_latency(report) is not None
    with pytest.raises(VelobenchError, match="unknown export format"):
        export.render([report], "pdf")


def test_compare_two_load_results() -> None:
    base = {
        ("vanilla", 1.0): 0.05,
        ("vanilla", 2.0): 0.05,
        ("speculative", 1.0): 0.03,
        ("speculative", 2.0): 0.03,
    }
    slower = {**base, ("speculative", 2.0): 0.06}
    a, ra = make_report(base)
    b, rb = make_report(slower)
    comp = compare_load(a, b, ra, rb)
    names = [m.metric for m in comp.metrics]
    assert "speculative c=2 output tok/s" in names and "vanilla c=1 e2e" in names
    by = {m.metric: m for m in comp.metrics}
    assert by["speculative c=2 output tok/s"].verdict == "slower"
    assert by["speculative c=2 e2e"].verdict == "slower"
    assert by["vanilla c=1 TTFT"].p_value is not None
    found = regression(comp, 10)
    assert found is not None and found.metric.metric == "speculative c=2 output tok/s"
    assert "speculative c=2 output tok/s" in regression_text(found)
    only_tp = compare_load(a, b, None, rb)
    assert all(m.metric.endswith("output tok/s") for m in only_tp.metrics)
    assert "latencies not compared" in only_tp.differences[-1]


def test_interrupted_levels_are_not_compared() -> None:
    gaps = {k: 0.05 for k in (("vanilla", 1.0), ("vanilla", 2.0), ("speculative", 1.0), ("speculative", 2.0))}
    report, records = make_report(gaps)
    lvl = report.level("speculative", 2.0)
    assert lvl is not None
    lvl.interrupted = True
    recompute(report, records)
    assert [c.level for c in report.comparisons] == [1.0]


def test_plan_in_a_result_is_replayable() -> None:
    opts = load_options(rate=3.0, requests=6, seed=11)
    (p,) = level_plans(opts)
    again = LoadPlan.model_validate_json(p.model_dump_json())
    assert (
        again.schedule is not None
        and again.schedule.offsets_s == arrival_schedule(3.0, seed=11, count=6).offsets_s
    )
