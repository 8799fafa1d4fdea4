"""Statistics and summaries of velobench/analysis/think.py, and the console summary's shape."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from velobench.results.think import TestMode, ThinkRun, ThinkSegment, ThinkSummary, ThinkWarningCode
from velobench.think.analysis import (
    fisher_exact,
    make_run,
    mcnemar_exact,
    paired_ratio,
    summarize_think,
    wilson,
)
from velobench.think.console import render_think_summary


def test_wilson_interval_known_value() -> None:
    p = wilson(5, 10)
    assert p.rate == 0.5
    assert p.ci95_low == pytest.approx(0.2366, abs=1e-4) and p.ci95_high == pytest.approx(0.7634, abs=1e-4)
    assert wilson(0, 4).ci95_low == 0.0 and wilson(4, 4).ci95_high == 1.0
    with pytest.raises(ValueError):
        wilson(3, 2)


@given(st.integers(1, 200).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_the_rate(kn: tuple[int, int]) -> None:
    k, n = kn
    p = wilson(k, n)
    assert 0 <= p.ci95_low <= p.rate <= p.ci95_high <= 1


def test_mcnemar_exact_is_twice_the_binomial_tail() -> None:
    assert mcnemar_exact(0, 5) == pytest.approx(2 * 0.5**5)
    assert mcnemar_exact(1, 9) == pytest.approx(2 * (1 + 10) / 2**10)
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0


def test_fisher_exact_against_the_hypergeometric_sum() -> None:
    # [[8, 2], [2, 8]]: margins 10/10 rows, 10/10 columns; P(a) = C(10,a)·C(10,10-a)/C(20,10)
    prob = [math.comb(10, a) * math.comb(10, 10 - a) / math.comb(20, 10) for a in range(11)]
    expected = sum(q for q in prob if q <= prob[8] * (1 + 1e-7))
    assert fisher_exact(8, 10, 2, 10) == pytest.approx(expected)
    assert fisher_exact(5, 10, 5, 10) == pytest.approx(1.0)


def test_paired_ratio() -> None:
    same = paired_ratio([(2.0, 1.0), (4.0, 2.0), (8.0, 4.0)])
    # issue 20: constant ratios leave the interval and the test undefined (they were [2, 2], p = 0)
    assert same.ratio == pytest.approx(2.0) and same.ci95_low is None and same.ci95_high is None
    assert same.p_value is None
    none = paired_ratio([(2.0, 1.0), (1.0, 2.0)])
    assert none.ratio == pytest.approx(1.0) and none.p_value == pytest.approx(1.0)
    one = paired_ratio([(3.0, 1.0)])
    assert one.ratio == pytest.approx(3.0) and one.ci95_low is None and one.p_value is None
    with pytest.raises(ValueError):
        paired_ratio([(1.0, 0.0)])


def _run(
    pid: str, r: int, mode: TestMode, latency: float, small: int, large: int, text: str, ref: str | None
) -> ThinkRun:
    segs = []
    if small:
        segs.append(
            ThinkSegment(
                writer="small",
                text=text,
                tokens=small,
                seconds=latency / 2,
                start_char=0,
                start_token=0,
                finish="stop",
            )
        )
    if large:
        segs.append(
            ThinkSegment(
                writer="large",
                text="",
                tokens=large,
                seconds=latency / 2,
                start_char=len(text),
                start_token=small,
                finish="eos",
                trigger="wait" if mode == "spec" else None,
                # the large model alone writes the text itself
            )
        )
        if mode == "large":
            segs = [segs[-1].model_copy(update={"text": text, "start_char": 0, "start_token": 0})]
    return make_run(
        problem_id=pid,
        run=r,
        mode=mode,
        seed=r,
        latency_s=latency,
        segments=segs,
        stopped_by="eos",
        reference=ref,
    )


def test_make_run_derives_totals_and_correctness() -> None:
    r = _run("p", 0, "spec", 2.0, 30, 10, "so \\boxed{1,000}", "1000")
    assert (r.tokens, r.small_tokens, r.large_tokens) == (40, 30, 10)
    assert r.large_ratio == 0.25 and r.tokens_per_s == 20.0 and r.interventions == 1
    assert r.answer == "1,000" and r.correct is True
    assert _run("p", 0, "large", 2.0, 0, 40, "\\boxed{7}", None).correct is None


def _runs() -> list[ThinkRun]:
    out = []
    for i, pid in enumerate(["a", "b", "c"]):
        for r in range(2):
            base = 10.0 * (i + 1) + r
            out.append(_run(pid, r, "large", base, 0, 100, "\\boxed{1}", "1"))
            out.append(
                _run(pid, r, "spec", base / 2, 75, 25, "\\boxed{1}" if pid != "c" else "\\boxed{2}", "1")
            )
    return out


def test_summary_of_both_modes() -> None:
    s = summarize_think(_runs())
    assert s.large is not None and s.spec is not None
    assert s.large.runs == s.spec.runs == 6 and s.large.failed == 0
    assert s.speedup is not None and s.speedup.ratio == pytest.approx(2.0)
    assert s.speedup.p_value is not None and s.speedup.ci95_low is not None
    assert (
        s.speedup_paired is not None
        and s.speedup_paired.ratio == pytest.approx(2.0)
        and s.speedup_paired.n_pairs == 6
    )
    assert s.throughput_ratio is not None and s.throughput_ratio.ratio > 1.5
    assert s.large_token_reduction == pytest.approx(0.75)
    assert s.large_work_ratio is not None and s.large_work_ratio.ratio == pytest.approx(0.25)
    assert s.accuracy is not None and s.accuracy.method == "mcnemar-exact"
    assert (s.accuracy.large.k, s.accuracy.spec.k, s.accuracy.large_only, s.accuracy.spec_only) == (
        6,
        4,
        2,
        0,
    )
    assert s.accuracy.p_value == pytest.approx(0.5)
    assert [(p.problem_id, p.speedup, p.spec_correct) for p in s.problems] == [
        ("a", pytest.approx(2.0), "2/2"),
        ("b", pytest.approx(2.0), "2/2"),
        ("c", pytest.approx(2.0), "0/2"),
    ]
    ThinkSummary.model_validate_json(s.model_dump_json())  # serialisable, no NaN


def test_unpaired_accuracy_uses_fisher() -> None:
    runs = [r for r in _runs() if not (r.mode == "spec" and r.problem_id == "a")]
    s = summarize_think(runs)
    assert s.accuracy is not None and s.accuracy.method == "fisher-exact" and s.accuracy.large_only is None


def test_one_mode_only_and_warnings() -> None:
    spec = [r for r in _runs() if r.mode == "spec"][:1]
    s = summarize_think(spec)
    assert s.large is None and s.speedup is None and s.accuracy is None
    assert s.large_token_reduction == pytest.approx(0.75)
    assert ThinkWarningCode.ONE_RUN in {w.code for w in s.warnings}
    jitter = {("a", 0): 1.0, ("a", 1): 1.004, ("b", 0): 0.997, ("b", 1): 1.002, ("c", 0): 0.999}
    jitter[("c", 1)] = 1.003

    def spec_times(factor: float) -> list[ThinkRun]:
        """_runs() with every spec latency × factor, give or take a few per mille per run (real
        latencies are never exactly proportional; exactly proportional ones are below)."""
        out = []
        for r in _runs():
            f = factor * jitter[(r.problem_id, r.run)] if r.mode == "spec" else 1.0
            out.append(r.model_copy(update={"latency_s": r.latency_s * f}))
        return out

    slow = spec_times(8)
    codes = {w.code for w in summarize_think(slow).warnings}
    assert ThinkWarningCode.SPEC_SLOWER in codes
    # issue 20: 2% slower on every problem (spec was 2x faster), within the spread between
    # problems: unpaired, "not significant"; paired per problem and run it is significant, and
    # the warning says "slower" (it said "not significant" when the test was unpaired)
    near = spec_times(2.04)
    s_near = summarize_think(near)
    assert s_near.speedup is not None and s_near.speedup.p_value is not None and s_near.speedup.p_value > 0.05
    codes = {w.code for w in s_near.warnings}
    assert ThinkWarningCode.SPEC_SLOWER in codes and ThinkWarningCode.NO_SIGNIFICANT_SPEEDUP not in codes
    slower = next(w for w in s_near.warnings if w.code == ThinkWarningCode.SPEC_SLOWER)
    assert slower.params["test"] == "paired t" and float(slower.params["ratio"] or 0) == pytest.approx(
        0.98, abs=0.01
    )
    # the same 2% on every problem with nothing else varying: the paired test is undefined (no
    # spread), so neither "slower" nor "not significant" is claimed
    exact = [
        r.model_copy(update={"latency_s": r.latency_s * (2.04 if r.mode == "spec" else 1)}) for r in _runs()
    ]
    codes = {w.code for w in summarize_think(exact).warnings}
    assert ThinkWarningCode.SPEC_SLOWER not in codes and ThinkWarningCode.NO_SIGNIFICANT_SPEEDUP not in codes


def test_console_summary_has_the_seed_tools_shape() -> None:
    text = render_think_summary(summarize_think(_runs()))
    lines = text.splitlines()
    for heading in (
        "BENCHMARK RESULTS SUMMARY",
        "1. LATENCY (seconds)",
        "2. THROUGHPUT (tokens/second)",
        "3. TOKEN GENERATION",
        "4. LARGE MODEL USAGE RATIO",
        "5. ACCURACY",
    ):
        assert heading in lines
    mean = next(line for line in lines if line.startswith("Mean ") and line.endswith("x"))
    assert mean.split() == ["Mean", "20.50s", "10.25s", "2.00x"]
    # the headline is paired (issue 20); every problem exactly 2x: no spread, the test undefined
    assert "OVERALL SPEEDUP (paired over 6 problem runs): 2.00x (95% CI undefined)" in lines
    assert any(
        line.startswith("RATIO OF MEAN LATENCIES: 2.00x (95% CI ") and "Welch p = " in line for line in lines
    )
    assert "LARGE MODEL TOKEN REDUCTION: 75.0%" in lines
    ratio = next(line for line in lines if line.startswith("Mean Ratio"))
    assert ratio.split() == ["Mean", "Ratio", "100.0%", "25.0%"]
    assert any(line.startswith("Spec Thinking") and "4/6 = 67%" in line for line in lines)
    assert any("mcnemar-exact, p = 0.5" in line for line in lines)
