"""The answer to "is speculation faster here?", as values (report.console writes the line)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from velobench.results.measures import Ratio
from velobench.results.schema import Report

ALPHA = 0.05  # significance level of the two-sided test (paired t, or Welch for a ratio of means)


Outcome = Literal["one mode", "too few iterations", "not significant", "faster", "slower"]


def outcome(r: Ratio | None) -> Outcome:
    """What the speedup r = speculative / vanilla says (the headline: paired where pairs exist):
    a significant difference (p < 0.05) is faster (r ≥ 1) or slower; otherwise why not (one mode
    measured, no test, p ≥ 0.05)."""
    if r is None:
        return "one mode"
    if r.p_value is None:
        return "too few iterations"
    if r.p_value >= ALPHA:
        return "not significant"
    return "faster" if r.ratio >= 1 else "slower"


def significant_speedup(r: Ratio | None) -> bool:
    """True when the speedup's 95% interval lies entirely above 1.0."""
    return r is not None and r.ci95_low is not None and r.ci95_low > 1.0


def speedup_call(r: Ratio | None) -> str:
    """'speedup' (interval above 1), 'slowdown' (interval below 1), else 'no significant speedup'."""
    if significant_speedup(r):
        return "speedup"
    if r is not None and r.ci95_high is not None and r.ci95_high < 1.0:
        return "slowdown"
    return "no significant speedup"


def best_configuration(reports: Sequence[Report]) -> Report | None:
    """The report with the highest speedup among those whose 95% interval lies above 1.0."""
    winners = [r for r in reports if significant_speedup(r.speedup_detail)]
    return max(winners, key=lambda r: r.speedup or 0.0, default=None)
