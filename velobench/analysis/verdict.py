"""The one line that answers "is speculation faster here?"."""

from __future__ import annotations

from collections.abc import Sequence

from velobench.results.measures import Ratio
from velobench.results.schema import Report


def verdict(r: Ratio | None) -> str:
    """A significant difference is called faster or slower; anything else says why it is not."""
    if r is None:
        return "no comparison: only one mode was measured"
    ci = (
        f"95% CI {r.ci95_low:.2f}–{r.ci95_high:.2f}"
        if r.ci95_low is not None and r.ci95_high is not None
        else "no interval"
    )
    p = f"p = {r.p_value:.2g}" if r.p_value is not None else "no test"
    if r.p_value is None:
        return f"speculative/vanilla = {r.ratio:.2f}x ({ci}); too few iterations to call a winner"
    if r.p_value >= 0.05:
        return f"no significant difference: {r.ratio:.2f}x ({ci}, {p})"
    if r.ratio >= 1:
        return f"speculative decoding is {r.ratio:.2f}x faster ({ci}, {p})"
    return f"speculative decoding is slower: {r.ratio:.2f}x vanilla ({ci}, {p})"


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
