"""Validity checks (issue 20): each fires on a result built from a committed real one and changed
to break exactly its rule, stays quiet on the real results as they are, and is made again when a
result is re-analysed (`analyze`). The words of each code are pinned here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from velobench.analysis.summaries import analyze
from velobench.analysis.warnings import (
    ceiling_exceeded,
    is_degenerate,
    ngram_coverage,
    speedup_above_acceptance,
    tail_period,
    validity_warnings,
)
from velobench.report.warnings import text
from velobench.results.costs import Ceiling
from velobench.results.environment import Gpu
from velobench.results.schema import Report, ResultWarning, WarningCode
from velobench.results.store import load

FIXTURES = Path(__file__).parents[1] / "fixtures"
V5 = FIXTURES / "schema-versions" / "run-v5.json"  # SmolLM2 drafting for itself, 2-core CPU, paired
V1 = FIXTURES / "reports" / "smollm2-135m-selfdraft-server.json"  # the same setup, blocked, version 1
CHECKS = {
    WarningCode.CEILING_EXCEEDED,
    WarningCode.SPEEDUP_ABOVE_ACCEPTANCE,
    WarningCode.UNEQUAL_LENGTHS,
    WarningCode.DEGENERATE_OUTPUT,
}


def codes(report: Report) -> list[WarningCode]:
    return [w.code for w in report.warnings if w.code in CHECKS]


def only(report: Report, code: WarningCode) -> ResultWarning:
    (w,) = [w for w in report.warnings if w.code is code]
    return w


def with_ceiling(report: Report, ceiling: float, verify_cost: float) -> None:
    report.ceiling = Ceiling(
        alpha=1.0,
        gamma=report.config.n_draft,
        draft_cost=1.0,
        verify_cost=verify_cost,
        expected_tokens=9.0,
        step_cost=9.0,
        ceiling=ceiling,
    )


@pytest.mark.parametrize("path", [V5, V1])
def test_no_check_fires_on_the_real_results(path: Path) -> None:
    """Equal lengths (64 tokens everywhere), no ceiling, a 0.53x speedup under L = 9, prose."""
    rep = load(path)
    assert list(validity_warnings(rep)) == []
    analyze(rep)
    assert codes(rep) == []


def test_ceiling_exceeded_fires_when_the_lower_bound_is_above_the_ceiling() -> None:
    rep = load(V5)
    r = rep.speedup_detail
    assert r is not None and r.ci95_low is not None and r.ci95_high is not None
    with_ceiling(rep, ceiling=r.ci95_low - 0.05, verify_cost=9.0)
    analyze(rep)
    w = only(rep, WarningCode.CEILING_EXCEEDED)
    assert w.params == {"speedup": r.ratio, "ci95_low": r.ci95_low, "ceiling": r.ci95_low - 0.05}
    # Above the ceiling but within the interval: not shown to be impossible.
    with_ceiling(rep, ceiling=(r.ratio + r.ci95_low) / 2, verify_cost=9.0)
    assert ceiling_exceeded(rep) is None
    with_ceiling(rep, ceiling=r.ci95_high + 0.1, verify_cost=9.0)
    analyze(rep)
    assert codes(rep) == []


def faster_speculative(factor: float) -> Report:
    """The real result with every speculative tokens/s multiplied by `factor`."""
    rep = load(V5)
    spec = rep.speculative
    assert spec is not None
    for it in spec.iterations:
        it.tokens_per_second *= factor
    analyze(rep)
    return rep


def test_speedup_above_acceptance_on_a_cpu_only_machine() -> None:
    rep = faster_speculative(25.0)  # 0.53x [0.42, 0.67] → 13.2x [10.4, 16.7], above L = 9
    assert not rep.environment.gpus and rep.ceiling is None
    w = only(rep, WarningCode.SPEEDUP_ABOVE_ACCEPTANCE)
    assert w.params["basis"] == "cpu-only" and w.params["mean_length"] == 9.0
    assert w.params["speedup"] == pytest.approx(25 * 0.527162856859107)
    # 20x → 10.5x [8.3, 13.3]: above L, but not by more than its interval
    assert WarningCode.SPEEDUP_ABOVE_ACCEPTANCE not in codes(faster_speculative(20.0))


def test_speedup_above_acceptance_needs_a_verification_step_of_at_least_one_decode_step() -> None:
    rep = faster_speculative(25.0)
    with_ceiling(rep, ceiling=100.0, verify_cost=1.3)
    w = speedup_above_acceptance(rep)
    assert w is not None and w.params["basis"] == "verify-cost" and w.params["verify_cost"] == 1.3
    with_ceiling(rep, ceiling=100.0, verify_cost=0.6)  # a GPU that verifies cheaper than it decodes
    assert speedup_above_acceptance(rep) is None
    rep.ceiling = None
    rep.environment.gpus = [Gpu(index=0, name="H200", memory_total_mib=143771)]
    assert speedup_above_acceptance(rep) is None  # a GPU and no costs measured: no claim


def test_unequal_lengths_counts_prompts_and_the_largest_difference() -> None:
    rep = load(V5)
    spec = rep.speculative
    assert spec is not None
    spec.iterations[1].generated_tokens = 40  # stopped at end of sequence after 40 of 64
    analyze(rep)
    w = only(rep, WarningCode.UNEQUAL_LENGTHS)
    assert w.params == {
        "baseline": "vanilla",
        "candidate": "speculative",
        "prompts": 1,
        "of": 1,
        "max_difference": 24,
    }


def test_degenerate_output_names_the_mode_and_prompts() -> None:
    rep = load(V5)
    spec = rep.speculative
    assert spec is not None and spec.iterations[0].output
    first = spec.iterations[0].output.split("\n")[0]
    spec.iterations[0].output = first + " I am sorry, I cannot help." * 12
    analyze(rep)
    w = only(rep, WarningCode.DEGENERATE_OUTPUT)
    assert w.params == {"mode": "speculative", "iterations": 1, "of": 3, "prompts": "-"}


def test_repetition_rules_on_real_and_looping_text() -> None:
    real = load(V5).modes["vanilla"].iterations[0].output
    assert real is not None and not is_degenerate(real)
    words = real.split()
    assert max(ngram_coverage(words, n) for n in range(1, 9)) < 0.5  # it repeats phrases, not a loop
    assert ngram_coverage(["a", "b", "a", "b", "a", "b"], 2) == 1.0
    assert ngram_coverage(["a", "a", "a", "a"], 2) == 1.0  # overlaps counted once
    assert tail_period(real) is None
    assert tail_period(real + "\n" * 64) == 1
    assert tail_period("ok " + "1, 2, 3, " * 10) == 9
    assert is_degenerate("Answer:" + " 1 2 3" * 3 + "!" * 64)  # too few words for n-grams; the tail loops
    assert not is_degenerate("short")


LOOPS = {"math-001", "rag-001", "summarization-011"}  # read by eye; the other four are ordinary text


def test_real_texts_that_loop_are_degenerate_and_the_others_not() -> None:
    lines = (FIXTURES / "validity" / "smollm2-demo.responses.jsonl").read_text().splitlines()
    texts = [json.loads(x) for x in lines]
    assert len(texts) == 14
    flagged = {(t["mode"], t["prompt_id"]) for t in texts if is_degenerate(t["output"])}
    assert flagged == {(mode, p) for mode in ("vanilla", "speculative") for p in LOOPS}


@pytest.mark.integration
def test_a_real_model_continuing_a_loop_is_flagged(cli, llama_bin: Path, smol: Path, isolated: Path) -> None:  # type: ignore[no-untyped-def]
    """Provoked for real: SmolLM2 (drafting for itself, llama.cpp's cli programs) continues a
    repeated "1 2" and both arms' texts loop."""
    loop = " ".join(["1 2"] * 8)
    args = ["run", "--engine", "cli", "-m", str(smol), "-d", str(smol), "-p", loop, "-n", "32", "-i", "2"]
    code, out, err = cli(
        *args,
        "--warmup",
        "0",
        "-t",
        "2",
        "-c",
        "512",
        "--no-ceiling",
        "-o",
        "r.json",
        "--llama-cpp-path",
        str(llama_bin),
    )
    assert code == 0, err
    rep = load(isolated / "r.json")
    found = [w for w in rep.warnings if w.code is WarningCode.DEGENERATE_OUTPUT]
    assert [w.params["mode"] for w in found] == ["vanilla", "speculative"]
    assert all(it.output and is_degenerate(it.output) for m in rep.modes.values() for it in m.iterations)
    assert "warning (degenerate-output): vanilla: 2 of 2 generated text(s) loop" in out


@pytest.mark.parametrize(
    ("warning", "words"),
    [
        (
            ResultWarning(
                code=WarningCode.CEILING_EXCEEDED, params={"speedup": 2.5, "ci95_low": 2.2, "ceiling": 1.9}
            ),
            "the speedup (2.50x, 95% CI from 2.20) exceeds the ceiling (1.90x) by more than its interval: "
            "the baseline was disturbed or the costs were mis-measured",
        ),
        (
            ResultWarning(
                code=WarningCode.SPEEDUP_ABOVE_ACCEPTANCE,
                params={"speedup": 3.1, "mean_length": 2.5, "basis": "verify-cost", "verify_cost": 1.25},
            ),
            "the speedup (3.10x) exceeds the mean acceptance length (2.50 tokens per verification step), "
            "and verifying costs 1.25 decode steps here: impossible, the measurement is broken",
        ),
        (
            ResultWarning(
                code=WarningCode.SPEEDUP_ABOVE_ACCEPTANCE,
                params={"speedup": 3.1, "mean_length": 2.5, "basis": "cpu-only", "verify_cost": None},
            ),
            "the speedup (3.10x) exceeds the mean acceptance length (2.50 tokens per verification step), "
            "and no ceiling was measured and decoding ran on the CPU, where verifying costs at least a "
            "decode step: impossible, the measurement is broken",
        ),
        (
            ResultWarning(
                code=WarningCode.UNEQUAL_LENGTHS,
                params={
                    "baseline": "vanilla",
                    "candidate": "speculative",
                    "prompts": 2,
                    "of": 7,
                    "max_difference": 24,
                },
            ),
            "speculative and vanilla generated different numbers of tokens for 2 of 7 prompt(s) "
            "(up to 24 tokens apart; one stopped at end of sequence early): tokens/s compares different work",
        ),
        (
            ResultWarning(
                code=WarningCode.DEGENERATE_OUTPUT,
                params={"mode": "speculative", "iterations": 2, "of": 21, "prompts": "code-1, math-2"},
            ),
            "speculative: 2 of 21 generated text(s) loop (prompts: code-1, math-2): "
            "repetition inflates n-gram and draft acceptance",
        ),
    ],
)
def test_validity_words(warning: ResultWarning, words: str) -> None:
    assert text(warning) == words
