"""Comparing two results: directions, significance, and the regression gate.

B reports are built from the committed real result by scaling its raw samples (a run whose
tokens/s are all ×f and whose times are all ÷f), then re-deriving every summary.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
from rich.console import Console

from velobench.analysis.compare import (
    MetricComparison,
    compare_reports,
    headline,
    regression,
)
from velobench.analysis.summaries import analyze, summarize_mode
from velobench.errors import VelobenchError
from velobench.report.compare import regression_text, render_comparison
from velobench.results.schema import Mode, Report
from velobench.results.store import load

REPORT = Path(__file__).parents[1] / "fixtures" / "reports" / "smollm2-135m-selfdraft-server.json"


@pytest.fixture
def golden() -> Report:
    return load(REPORT)


def scaled(report: Report, factor: float, modes: Iterable[Mode] = ("vanilla", "speculative")) -> Report:
    """A copy whose given modes ran `factor` times as fast (tokens/s ×f, times ÷f)."""
    out = report.model_copy(deep=True)
    for mode in modes:
        m = getattr(out, mode)
        for it in m.iterations:
            it.tokens_per_second *= factor
            it.ttft_ms /= factor
            it.total_time_ms /= factor
            it.decode_ms /= factor
        summarize_mode(m)
    analyze(out)
    return out


def by_metric(report_a: Report, report_b: Report) -> dict[str, MetricComparison]:
    return {m.metric: m for m in compare_reports(report_a, report_b).metrics}


def test_identical_reports_show_no_difference(golden: Report) -> None:
    comp = compare_reports(golden, golden)
    names = [m.metric for m in comp.metrics]
    assert names == [
        "vanilla tokens/s",
        "speculative tokens/s",
        "vanilla TTFT",
        "speculative TTFT",
        "vanilla total time",
        "speculative total time",
        "speedup",
        "acceptance rate",
    ]
    for m in comp.metrics:
        assert m.verdict == "no significant difference at 95%", m.metric
        assert m.difference == 0
        if m.metric == "acceptance rate":  # every rate 1.0 (self-draft): no spread, no test (issue 20)
            assert m.p_value is None
        else:
            assert m.p_value == pytest.approx(1.0)
    assert comp.differences == []
    assert regression(comp, 0.0) is None


def test_twenty_percent_faster_b(golden: Report) -> None:
    comp = compare_reports(golden, scaled(golden, 1.2))
    m = {x.metric: x for x in comp.metrics}
    for mode in ("vanilla", "speculative"):
        tps = m[f"{mode} tokens/s"]
        assert tps.verdict == "faster"
        assert tps.p_value is not None and tps.p_value < 0.05
        assert tps.ratio == pytest.approx(1.2)
        assert tps.ratio_ci95_low is not None and tps.ratio_ci95_high is not None
        assert tps.ratio_ci95_low < 1.2 < tps.ratio_ci95_high
        assert tps.difference == pytest.approx(0.2 * tps.a)
        assert tps.difference_ci95_low is not None and tps.difference_ci95_low > 0
        total = m[f"{mode} total time"]  # lower is better: shorter times are "faster"
        assert total.difference < 0
        assert total.verdict == "faster"
    # Both modes sped up alike: the speedup itself did not change.
    assert m["speedup"].verdict == "no significant difference at 95%"
    assert m["speedup"].difference == pytest.approx(0.0, abs=1e-12)
    assert regression(comp, 0.0) is None


def test_slower_b_is_slower_in_every_direction(golden: Report) -> None:
    m = by_metric(golden, scaled(golden, 0.5))
    for name in ("vanilla tokens/s", "speculative tokens/s", "vanilla total time", "speculative total time"):
        assert m[name].verdict == "slower", name
    assert m["vanilla TTFT"].difference > 0


def test_speedup_change_is_tested(golden: Report) -> None:
    m = by_metric(golden, scaled(golden, 1.6, modes=["speculative"]))
    sp = m["speedup"]
    assert sp.ratio == pytest.approx(1.6)
    assert sp.verdict == "faster"
    assert sp.difference_ci95_low > 0
    assert m["vanilla tokens/s"].verdict == "no significant difference at 95%"


def test_regression_gate(golden: Report) -> None:
    comp = compare_reports(golden, scaled(golden, 0.8))
    top = headline(comp)
    assert top is not None and top.metric == "speculative tokens/s"
    found = regression(comp, 10.0)
    assert found is not None
    assert found.slower_pct == pytest.approx(20.0) and found.allowed_pct == 10.0
    message = regression_text(found)
    assert "20.0% slower" in message and "speculative tokens/s" in message and "10%" in message
    assert regression(comp, 25.0) is None  # slower, but within the allowed 25%
    assert regression(compare_reports(golden, scaled(golden, 1.2)), 0.0) is None  # faster


def test_regression_needs_significance(golden: Report) -> None:
    b = golden.model_copy(deep=True)
    assert b.speculative is not None
    b.speculative.iterations = b.speculative.iterations[:1]  # n = 1: no test possible
    for it in b.speculative.iterations:
        it.tokens_per_second *= 0.5
    summarize_mode(b.speculative)
    analyze(b)
    comp = compare_reports(golden, b)
    m = headline(comp)
    assert m is not None and m.verdict == "too few samples to test" and m.p_value is None
    assert regression(comp, 1.0) is None


def test_headline_falls_back_to_vanilla(golden: Report) -> None:
    a, b = golden.model_copy(deep=True), scaled(golden, 0.5)
    del a.modes["speculative"], b.modes["speculative"]
    analyze(a)
    analyze(b)
    comp = compare_reports(a, b)
    assert [x.metric for x in comp.metrics] == ["vanilla tokens/s", "vanilla TTFT", "vanilla total time"]
    found = regression(comp, 10.0)
    assert found is not None and found.metric.metric == "vanilla tokens/s"
    assert "vanilla tokens/s" in regression_text(found)


def test_no_common_mode(golden: Report) -> None:
    a, b = golden.model_copy(deep=True), golden.model_copy(deep=True)
    del a.modes["speculative"], b.modes["vanilla"]
    with pytest.raises(VelobenchError, match="no measured mode in common"):
        compare_reports(a, b)


def test_differences_and_rendering(golden: Report) -> None:
    b = scaled(golden, 1.2)
    b.config = b.config.model_copy(update={"n_draft": 4})
    comp = compare_reports(golden, b)
    assert comp.differences == ["n_draft: 8 → 4"]
    console = Console(record=True, width=200)
    console.print(render_comparison(comp))
    text = console.export_text()
    assert "Speculative tokens/s" in text and "faster" in text and "n_draft: 8 → 4" in text
    assert "smollm2-135m-instruct-q4_1.gguf" in text
