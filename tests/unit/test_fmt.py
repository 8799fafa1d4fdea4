"""The one formatter (report.fmt) and the one table writer (report.tables.Table), on the ratio of
the committed real run (tests/fixtures/reports/smollm2-135m-selfdraft-server.json) and on edge
values (undefined ends, one sample, percent intervals)."""

from __future__ import annotations

from pathlib import Path

import pytest

from velobench.report import fmt
from velobench.report.tables import Table
from velobench.results.measures import Ratio, Summary
from velobench.results.store import load

REPORT = Path(__file__).parents[1] / "fixtures" / "reports" / "smollm2-135m-selfdraft-server.json"


@pytest.fixture
def speedup() -> Ratio:
    r = load(REPORT).speedup_detail
    assert r is not None
    return r


def test_one_spelling_of_the_interval(speedup: Ratio) -> None:
    lo, hi = speedup.ci95_low, speedup.ci95_high
    assert lo is not None and hi is not None
    assert fmt.interval(lo, hi) == f"{lo:.2f}–{hi:.2f}"
    assert fmt.ci(lo, hi) == f"95% CI {lo:.2f}–{hi:.2f}"
    assert fmt.bracketed(lo, hi) == f" [{lo:.2f}, {hi:.2f}]"
    assert fmt.interval(0.0, 0.4876, digits=0, pct=True) == "0%–49%"
    assert fmt.interval(None, hi) == "-" and fmt.ci(lo, None) == "" and fmt.bracketed(None, None) == ""


def test_ratio_forms_share_their_pieces(speedup: Ratio) -> None:
    short = fmt.ratio_short(speedup)
    assert short == f"{speedup.ratio:.2f}x{fmt.bracketed(speedup.ci95_low, speedup.ci95_high)}"
    assert fmt.ratio_cell(speedup).startswith(f"{speedup.ratio:.2f}x ± ")
    assert fmt.ratio_cell(speedup).endswith(f" p={speedup.p_value:.2g}")
    text = fmt.speedup_text(speedup)
    assert fmt.ci(speedup.ci95_low, speedup.ci95_high) + " (Fieller)" in text
    assert text.endswith(f"Welch p = {speedup.p_value:.2g}")
    assert fmt.ratio_ci(speedup) == (
        f"{speedup.ratio:.2f}x ({fmt.ci(speedup.ci95_low, speedup.ci95_high)}), Welch p = {speedup.p_value:.2g}"
    )
    unbounded = speedup.model_copy(update={"ci95_low": None, "ci95_high": None, "p_value": None})
    # an unbounded Fieller interval reads one way in every form (issue 20)
    assert fmt.ratio_ci(unbounded) == f"{speedup.ratio:.2f}x (95% CI unbounded)"
    assert "95% CI unbounded" in fmt.speedup_text(unbounded)
    assert fmt.ratio_short(unbounded) == f"{speedup.ratio:.2f}x [unbounded]"
    assert fmt.ratio_cell(unbounded) == f"{speedup.ratio:.2f}x ± {speedup.stddev:.2f} [unbounded]"
    assert fmt.ratio_interval(unbounded) == "unbounded"
    constant = speedup.model_copy(
        update={"ci95_low": None, "ci95_high": None, "p_value": None, "stddev": 0.0}
    )
    assert fmt.ratio_short(constant) == f"{speedup.ratio:.2f}x [undefined]"
    one_sample = speedup.model_copy(update={"ci95_low": None, "ci95_high": None, "p_value": None, "n_a": 1})
    assert fmt.ratio_short(one_sample) == f"{speedup.ratio:.2f}x"
    assert fmt.ratio_short(None) == fmt.ratio_cell(None) == fmt.ratio_ci(None) == "-"


def test_numbers_percent_duration_p() -> None:
    assert fmt.number(None) == "-" and fmt.number(3.14159, 1) == "3.1"
    assert fmt.percent(0.853) == "85%" and fmt.percent(0.853, 1) == "85.3%"
    assert fmt.p_value(6.912e-05) == "6.9e-05" and fmt.p_value(None) == "-"
    assert fmt.duration(4.21) == "4.2 s" and fmt.duration(123.4) == "2 min 3 s"
    one = Summary(
        n=1, mean=2.5, stddev=None, min=2.5, max=2.5, median=2.5, ci95_low=None, ci95_high=None, samples=[2.5]
    )
    assert fmt.mean_sd(one) == "2.50" and fmt.mean_sd(None) == "-"
    assert fmt.mean_sd(one.model_copy(update={"stddev": 0.25}), " ms", 1) == "2.5 ± 0.2 ms"


def test_table_writes_markdown_html_and_text() -> None:
    t = Table(
        title="T",
        headers=["name", "value"],
        rows=[["a|b", "1.00"], ["  sub", "<2>"]],
        right=[False, True],
        caption="note",
        highlight={0},
    )
    assert t.markdown().splitlines() == [
        "## T",
        "",
        "| name | value |",
        "| :--- | ---: |",
        "| **a\\|b** | **1.00** |",
        "|   sub | <2> |",
        "",
        "_note_",
    ]
    page = t.html()
    assert '<tr class="best"><td>a|b</td><td class="r">1.00</td></tr>' in page
    assert '<td>&nbsp;&nbsp;sub</td><td class="r">&lt;2&gt;</td>' in page
    assert "<caption>note</caption>" in page
    assert t.text() == ["name   value", "a|b     1.00", "  sub    <2>"]
    raw = Table("", ["bar"], [['<span class="bar"></span>']], [False], raw={0})
    assert '<td><span class="bar"></span></td>' in raw.html() and not raw.html().startswith("<h2>")
