"""`velobench load --find-max-rate/--find-max-concurrency` against real llama-servers (SmolLM2-135M
drafting for itself): a loose SLO every level meets (the search grows to its bound, every level
recorded, the ratio's interval open above), and one no level can meet (one line naming the best
level, the result kept; one mode is enough there)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import llama_processes
from velobench.load.slo import compare_arms
from velobench.results import store
from velobench.results.load import LoadReport, read_records

pytestmark = pytest.mark.integration


def base(llama_bin: Path, smol: Path, out: str) -> list[str]:
    return [
        "load",
        *("-m", str(smol), "-d", str(smol), "--n-draft", "4", "-n", "8"),
        *("--prompts", "builtin", "--num-prompts", "4", "-t", "2", "-c", "512"),
        *("-l", str(llama_bin), "-o", out, "--requests", "4"),
    ]


def test_rate_search_with_a_loose_slo_grows_to_its_bound(cli, llama_bin: Path, smol: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli(
        *base(llama_bin, smol, "r.json"),
        *("--find-max-rate", "--slo", "e2e=120s", "--search-start", "1", "--search-max", "4"),
    )
    assert code == 0, err
    assert (
        "SLO search over rate" in out
        and "speculation keeps the SLO-compliant rate from 4 or more to 4 or more" in out
    )
    rep = store.load_result(Path("r.json"))
    assert isinstance(rep, LoadReport) and rep.status == "complete" and rep.max_rate is not None
    for mode in ("vanilla", "speculative"):
        arm = rep.max_rate.arms[mode]
        assert [s.level for s in arm.steps] == [1, 2, 4] and arm.ended == "bound"
        assert (arm.highest_met, arm.lowest_missed) == (4, None)
        # every step is the level the result holds: its goodput is that level's, from its records
        for step in arm.steps:
            lvl = rep.level(mode, step.level)
            assert lvl is not None and lvl.summary is not None and lvl.summary.goodput is not None
            assert (step.good, step.total) == (lvl.summary.goodput.good, lvl.summary.goodput.total) == (4, 4)
            assert lvl.plan.schedule is not None and lvl.plan.schedule.rate == step.level
    assert rep.load.levels == [1, 2, 4]
    r = rep.max_rate.ratio
    assert r is not None and (r.ratio, r.low, r.high) == (1.0, None, None)
    assert r == compare_arms(rep.max_rate.arms["vanilla"], rep.max_rate.arms["speculative"], "rate")
    records = read_records(Path("r.records.jsonl"))
    assert sorted(records) == [(m, x) for m in ("speculative", "vanilla") for x in (1.0, 2.0, 4.0)]
    # the saved file re-renders with the search (velobench report)
    code, md, err = cli("report", "r.json", "--format", "md")
    assert code == 0 and "SLO search over rate" in md and "4 met (100%)" in md
    assert llama_processes() == []


def test_an_slo_no_level_meets_is_one_line_and_keeps_the_levels(cli, llama_bin: Path, smol: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli(
        *base(llama_bin, smol, "r.json"),
        *("--find-max-concurrency", "--slo", "ttft=0.001ms", "--search-max", "2", "--skip-speculative"),
    )
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "no level meets the SLO: vanilla: no concurrency tried meets the SLO (1 level(s), down to 1" in err
    assert "best goodput 0% at concurrency 1" in err and "kept in r.json" in err
    data = json.loads(Path("r.json").read_text())
    assert data["status"] == "failed"
    arms = data["max_rate"]["arms"]
    assert list(arms) == ["vanilla"] and [s["level"] for s in arms["vanilla"]["steps"]] == [1]
    assert arms["vanilla"]["ended"] == "none-met" and data["max_rate"]["ratio"] is None
    assert llama_processes() == []
