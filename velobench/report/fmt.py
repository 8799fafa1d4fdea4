"""How a number reads, in every report: console, Markdown, HTML, CSV-adjacent text and compare,
for run, load and think results. One place per spelling:

    number     12.35            (undefined: "-")
    percent    85%              (a share 0.85)
    mean_sd    12.35 ± 0.50     (a Summary: mean ± sample stddev)
    interval   0.47–0.59        (en dash, no spaces; prose says "95% CI 0.47–0.59")
    bracketed  [0.47, 0.59]     (after a value in a table cell: "0.53x [0.47, 0.59]")
    p_value    6.9e-05          (two significant digits; prose says "p = 6.9e-05", a table
                                cell "p=6.9e-05", where wide tables need every character)
    ratio      0.53x            (b / a)
    duration   2 min 3 s, 4.2 s

Undefined values (None) read "-" in cells; interval pieces that cannot be formed are left out.
"""

from __future__ import annotations

from velobench.results.measures import Ratio, Summary

DASH = "–"  # U+2013: between the two ends of an interval or range
MISSING = "-"


def number(x: float | None, digits: int = 2, unit: str = "") -> str:
    """`12.35` (fixed `digits`), `-` when undefined."""
    return MISSING if x is None else f"{x:.{digits}f}{unit}"


def percent(x: float | None, digits: int = 0) -> str:
    """A share 0.853 as `85%` (`digits` decimals), `-` when undefined."""
    return MISSING if x is None else f"{x:.{digits}%}"


def mean_sd(s: Summary | None, unit: str = "", digits: int = 2) -> str:
    """`12.35 ± 0.50` (the stddev left out for one sample), `-` when undefined."""
    if s is None:
        return MISSING
    sd = f" ± {s.stddev:.{digits}f}" if s.stddev is not None else ""
    return f"{s.mean:.{digits}f}{sd}{unit}"


def interval(lo: float | None, hi: float | None, digits: int = 2, pct: bool = False) -> str:
    """`0.47–0.59` (`47%–59%` with pct), `-` when either end is undefined."""
    if lo is None or hi is None:
        return MISSING
    if pct:
        return f"{lo:.{digits}%}{DASH}{hi:.{digits}%}"
    return f"{lo:.{digits}f}{DASH}{hi:.{digits}f}"


def ci(lo: float | None, hi: float | None, digits: int = 2, pct: bool = False) -> str:
    """`95% CI 0.47–0.59`, `""` when either end is undefined."""
    return "" if lo is None or hi is None else f"95% CI {interval(lo, hi, digits, pct)}"


def bracketed(lo: float | None, hi: float | None, digits: int = 2) -> str:
    """` [0.47, 0.59]` (with its leading space, to follow a value), `""` when undefined."""
    return "" if lo is None or hi is None else f" [{lo:.{digits}f}, {hi:.{digits}f}]"


def p_value(p: float | None) -> str:
    """`6.9e-05`, `0.012`: two significant digits, `-` when there is no test."""
    return MISSING if p is None else f"{p:.2g}"


def ratio(x: float | None, digits: int = 2) -> str:
    """`0.53x`, `-` when undefined."""
    return MISSING if x is None else f"{x:.{digits}f}x"


def ratio_short(r: Ratio | None) -> str:
    """`0.53x [0.47, 0.59]`: the ratio and its 95% interval, for tables and status lines."""
    return MISSING if r is None else f"{ratio(r.ratio)}{bracketed(r.ci95_low, r.ci95_high)}"


def ratio_cell(r: Ratio | None) -> str:
    """`0.82x ± 0.05 [0.73, 0.92] p=0.001`: ratio, stddev, 95% interval and p, for a table cell."""
    if r is None:
        return MISSING
    sd = f" ± {r.stddev:.2f}" if r.stddev is not None else ""
    p = f" p={p_value(r.p_value)}" if r.p_value is not None else ""
    return f"{ratio(r.ratio)}{sd}{bracketed(r.ci95_low, r.ci95_high)}{p}"


def ratio_ci(r: Ratio | None, test: str = "Welch") -> str:
    """`2.00x (95% CI 1.20–3.40), Welch p = 0.012`: a ratio in prose, each piece only where defined."""
    if r is None:
        return MISSING
    c = ci(r.ci95_low, r.ci95_high)
    p = f", {test} p = {p_value(r.p_value)}" if r.p_value is not None else ""
    return f"{ratio(r.ratio)}{f' ({c})' if c else ''}{p}"


def speedup_text(r: Ratio) -> str:
    """`0.53x ± 0.04x, 95% CI 0.47–0.59 (Fieller), Welch p = 6.9e-05`."""
    sd = f" ± {r.stddev:.2f}x" if r.stddev is not None else ""
    if r.ci95_low is not None and r.ci95_high is not None:
        c = f", {ci(r.ci95_low, r.ci95_high)} (Fieller)"
    elif r.stddev is not None:
        c = ", 95% CI unbounded (Fieller: the vanilla mean is too uncertain; add iterations)"
    else:
        c = ""
    p = f", Welch p = {p_value(r.p_value)}" if r.p_value is not None else ""
    return f"{ratio(r.ratio)}{sd}{c}{p}"


def duration(seconds: float | None) -> str:
    """`2 min 3 s` from a minute on, else `4.2 s`; `-` when undefined."""
    if seconds is None:
        return MISSING
    m, s = divmod(seconds, 60)
    return f"{int(m)} min {s:.0f} s" if m else f"{s:.1f} s"
