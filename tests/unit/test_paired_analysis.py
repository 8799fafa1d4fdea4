"""The paired analysis of a run (issue 20): iterations paired by prompt and occurrence, the
paired estimate as the headline, categories paired with their intervals, and the fixes found
when the statistics were recomputed independently."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from velobench.analysis import stats
from velobench.analysis.summaries import analyze, mean_length, pair_iterations
from velobench.report import fmt, markdown
from velobench.report.console import speedup_lines
from velobench.report.tables import categories
from velobench.results import store
from velobench.results.schema import Iteration, ModeComparison, ModeResult, Report, WarningCode

REPORT = Path(__file__).parents[1] / "fixtures" / "reports" / "smollm2-135m-selfdraft-server.json"


def it(index: int, prompt: str, tps: float, category: str = "c", **kw: object) -> Iteration:
    return Iteration(
        index=index,
        prompt_id=prompt,
        category=category,
        command="x",
        returncode=0,
        wall_ms=1.0,
        prompt_tokens=1,
        prompt_ms=1.0,
        ttft_ms=1.0,
        generated_tokens=32,
        decode_ms=1.0,
        tokens_per_second=tps,
        total_time_ms=1.0,
        **kw,
    )


def test_pairs_are_prompt_and_occurrence_whatever_the_order() -> None:
    base = [it(1, "a", 10), it(2, "b", 20), it(3, "a", 11), it(4, "b", 21)]
    # an interleaved schedule: the candidate's iterations in another order, one missing
    cand = [it(5, "b", 40), it(6, "a", 30), it(7, "a", 33)]
    pairs = pair_iterations(base, cand)
    assert [(c.index, b.index) for c, b in pairs] == [(5, 2), (6, 1), (7, 3)]
    assert pair_iterations(base, [it(1, "z", 5)]) == []
    assert pair_iterations([it(1, "a", 0.0)], [it(1, "a", 5)]) == []  # no ratio of a zero


def golden() -> Report:
    rep = store.load(REPORT)
    analyze(rep)
    return rep


def test_the_headline_is_the_paired_estimate_from_two_pairs() -> None:
    rep = golden()
    comp = rep.primary
    assert comp is not None and comp.estimator == "paired" and comp.paired_speedup is not None
    van, spec = rep.vanilla, rep.speculative
    assert van is not None and spec is not None
    expected = stats.paired_ratio(
        [
            (c.tokens_per_second, b.tokens_per_second)
            for c, b in zip(spec.iterations, van.iterations, strict=True)
        ]
    )
    assert comp.paired_speedup == expected and rep.speedup_detail == expected
    assert (
        rep.ratio_of_means == comp.speedup
        and comp.speedup is not None
        and comp.speedup.ci_method == "fieller"
    )
    lines = dict(speedup_lines(rep))
    assert lines["Speedup"].startswith(f"{expected.ratio:.2f}x, 95% CI ")
    assert "paired t p = " in lines["Speedup"]
    assert "(Fieller), Welch p = " in lines["Ratio of means"]
    # one pair: the ratio of means stays the headline (no paired interval or test exists)
    one = golden()
    for m in one.modes.values():
        m.iterations = m.iterations[:1]
    analyze(one)
    assert one.primary is not None and one.primary.estimator == "ratio-of-means"
    assert one.speedup_detail == one.primary.speedup


def two_categories(n_b: int) -> Report:
    """Category x with three prompts, category y with `n_b` (both modes)."""
    rep = golden()
    van = [it(1, "x1", 10), it(2, "x2", 20), it(3, "x3", 30)]
    spec = [it(1, "x1", 15), it(2, "x2", 31), it(3, "x3", 44)]
    for k in range(n_b):
        van.append(it(4 + k, f"y{k}", 50 + k, category="y"))
        spec.append(it(4 + k, f"y{k}", 40 + k, category="y"))
    rep.modes = {
        "vanilla": ModeResult(mode="vanilla", binary="b", iterations=van),
        "speculative": ModeResult(mode="speculative", binary="b", iterations=spec),
    }
    rep.comparisons = [ModeComparison(baseline="vanilla", candidate="speculative")]
    analyze(rep)
    return rep


def test_a_category_of_one_pair_has_no_interval_and_says_so() -> None:
    rep = two_categories(1)
    x, y = rep.categories
    assert x.n_pairs == 3 and x.paired_speedup is not None and x.paired_speedup.ci95_low is not None
    assert x.headline == x.paired_speedup
    assert y.n_pairs == 1 and y.paired_speedup is not None and y.paired_speedup.ci95_low is None
    assert y.headline == y.speedup  # too few pairs: the ratio of means (itself without interval here)
    assert fmt.ratio_short(y.paired_speedup) == "0.80x [no interval (1 pair)]"
    table = categories(rep)
    assert table is not None
    row = next(r for r in table.rows if r[0] == "y")
    assert "no interval (1 pair)" in row
    assert "no interval (1 pair)" in markdown.render(rep)


def test_constant_pair_ratios_leave_the_test_undefined_with_a_warning() -> None:
    rep = two_categories(0)
    for i in rep.modes["speculative"].iterations:  # every prompt exactly 1.5x
        i.tokens_per_second = 1.5 * next(
            b.tokens_per_second for b in rep.modes["vanilla"].iterations if b.prompt_id == i.prompt_id
        )
    analyze(rep)
    head = rep.speedup_detail
    assert head is not None and head.ratio == pytest.approx(1.5)
    assert (head.ci95_low, head.ci95_high, head.p_value) == (None, None, None)
    codes = [w.code for w in rep.warnings]
    assert WarningCode.UNDEFINED_TEST in codes
    assert WarningCode.NO_SIGNIFICANT_DIFFERENCE not in codes and WarningCode.SPECULATION_SLOWER not in codes
    assert "95% CI undefined" in dict(speedup_lines(rep))["Speedup"]


def test_mean_acceptance_length_counts_only_iterations_with_steps() -> None:
    """Accepted tokens of iterations without a draft-step count must not inflate it."""
    its = [
        it(1, "a", 10, n_drafted=8, n_accept=6, draft_steps=2),
        it(2, "a", 10, n_drafted=8, n_accept=8, draft_steps=None),  # e.g. /metrics unreadable
    ]
    assert mean_length(its) == pytest.approx(1 + 6 / 2)  # not 1 + 14 / 2
    assert mean_length([its[1]]) is None
    m = ModeResult(mode="speculative", binary="b", iterations=its)
    from velobench.analysis.summaries import summarize_mode

    summarize_mode(m)
    assert m.acceptance is not None and m.acceptance.mean_length == pytest.approx(4.0)
    assert m.acceptance.accepted == 14  # the token count itself is over every iteration


def test_plots_draw_no_zero_width_bars_for_missing_intervals() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from velobench.report import plots

    rep = two_categories(1)
    drawn: list[tuple[str, tuple[tuple[object, ...], dict[str, object]]]] = []

    class Recorder:
        def __getattr__(self, name: str) -> object:
            def call(*args: object, **kw: object) -> None:
                drawn.append((name, (args, kw)))

            return call

    y = rep.categories[1].headline
    x = rep.categories[0].headline
    assert x is not None and y is not None
    plots._ratio_points(Recorder(), [0, 1], [x, y], horizontal=True)
    errorbars = [a for name, a in drawn if name == "errorbar"]
    assert len(errorbars) == 1
    args = errorbars[0][0]
    assert list(args[1]) == [0]  # type: ignore[call-overload]  # only the category with an interval gets bars
    plain = [a for name, a in drawn if name == "plot"]
    assert plain and plain[0][1]["fillstyle"] == "none"
    assert plots.plot_speedup(rep) is not None and plots.plot_categories(rep) is not None
    assert math.isfinite(x.ratio)


def test_acceptance_per_prompt_buckets_and_request_weighting() -> None:
    """The GSM8K benchmark's per-request view: per prompt, its buckets, and request- beside
    token-weighted acceptance (a long completion of low acceptance pulls the token-weighted down)."""
    from velobench.analysis.summaries import summarize_mode
    from velobench.report.console import acceptance_line

    def spec(i: int, prompt: str, drafted: int, accepted: int, steps: int | None) -> Iteration:
        return it(
            i,
            prompt,
            10,
            n_drafted=drafted,
            n_accept=accepted,
            acceptance_rate=accepted / drafted,
            draft_steps=steps,
            acceptance_source="metrics-delta" if steps is not None else "server-response",
        )

    its = [
        spec(1, "a", 10, 9, 3),  # a: 19/20 = 95%
        spec(2, "a", 10, 10, 2),
        spec(3, "b", 100, 40, None),  # b: 40% of many tokens
        spec(4, "c", 20, 16, 5),  # c: 80%
        spec(5, "d", 4, 3, 1),  # d: 75%, on the bucket's lower edge
    ]
    m = ModeResult(mode="speculative", binary="b", iterations=its)
    summarize_mode(m)
    acc = m.acceptance
    assert acc is not None
    by = {p.prompt_id: p for p in acc.per_prompt}
    assert (by["a"].iterations, by["a"].drafted, by["a"].accepted, by["a"].draft_steps) == (2, 20, 19, 5)
    assert by["a"].rate == pytest.approx(0.95) and by["a"].mean_length == pytest.approx(1 + 19 / 5)
    assert (
        by["b"].draft_steps is None and by["b"].mean_length is None and by["b"].sources == ["server-response"]
    )
    assert acc.buckets == {"< 50%": 1, "50-75%": 0, "75-90%": 2, "90-100%": 1}
    assert acc.rate == pytest.approx(78 / 144)  # token-weighted
    assert acc.request_rate == pytest.approx((0.9 + 1.0 + 0.4 + 0.8 + 0.75) / 5)
    rep = golden()
    rep.modes["speculative"] = m
    line = acceptance_line(rep)
    assert line is not None and "per prompt (4): < 50% 1, 50-75% 0, 75-90% 2, 90-100% 1" in line
    assert "token-weighted 54.2%, request-weighted 77.0%" in line
    assert "/metrics deltas around each request" in line and "llama-server's per-response counts" in line
