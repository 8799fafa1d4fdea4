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
    a ratio's interval, when it has none:
               unbounded        (Fieller: the baseline mean too uncertain to bound the ratio)
               undefined        (constant samples: no spread, no interval, no test)
               no interval (1 pair)   (a paired estimate of one pair)
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


PAIRED = "paired-log-t"  # the ci_method of a paired estimate (analysis.stats.PAIRED)
UNBOUNDED = "unbounded"
UNDEFINED = "undefined"


def no_interval(r: Ratio) -> str:
    """Why a ratio has no interval, in one spelling for every report: `unbounded` (Fieller's
    confidence set is not an interval), `undefined` (constant samples: no spread), `no interval
    (1 pair)` (a paired estimate of one pair), `-` (one sample on a side)."""
    if r.ci_method == PAIRED:
        return f"no interval ({r.n_a} pair)" if r.n_a < 2 else UNDEFINED
    if r.n_a < 2 or r.n_b < 2 or r.stddev is None:
        return MISSING
    return UNDEFINED if r.stddev == 0 else UNBOUNDED


def ratio_interval(r: Ratio | None) -> str:
    """`0.47–0.59`, or why there is none (`no_interval`)."""
    if r is None:
        return MISSING
    if r.ci95_low is None or r.ci95_high is None:
        return no_interval(r)
    return interval(r.ci95_low, r.ci95_high)


def _bracketed_interval(r: Ratio) -> str:
    """` [0.47, 0.59]`, ` [unbounded]` (or another `no_interval` reason), `""` for one sample."""
    if r.ci95_low is not None and r.ci95_high is not None:
        return bracketed(r.ci95_low, r.ci95_high)
    why = no_interval(r)
    return "" if why == MISSING else f" [{why}]"


def ratio_short(r: Ratio | None) -> str:
    """`0.53x [0.47, 0.59]`: the ratio and its 95% interval, for tables and status lines
    (`0.53x [unbounded]` where the interval cannot be formed and there was a spread to form it)."""
    return MISSING if r is None else f"{ratio(r.ratio)}{_bracketed_interval(r)}"


def estimator_name(r: Ratio) -> str:
    """`paired` (geometric mean of per-pair ratios) or `ratio of means`."""
    return "paired" if r.ci_method == PAIRED else "ratio of means"


def test_name(r: Ratio) -> str:
    """The test behind a ratio's p-value: `paired t` or `Welch`."""
    return "paired t" if r.ci_method == PAIRED else "Welch"


def ratio_cell(r: Ratio | None) -> str:
    """`0.82x ± 0.05 [0.73, 0.92] p=0.001`: ratio, stddev, 95% interval and p, for a table cell."""
    if r is None:
        return MISSING
    sd = f" ± {r.stddev:.2f}" if r.stddev is not None else ""
    p = f" p={p_value(r.p_value)}" if r.p_value is not None else ""
    return f"{ratio(r.ratio)}{sd}{_bracketed_interval(r)}{p}"


def ratio_ci(r: Ratio | None, test: str = "Welch") -> str:
    """`2.00x (95% CI 1.20–3.40), Welch p = 0.012`: a ratio in prose, each piece only where defined."""
    if r is None:
        return MISSING
    test = test_name(r) if r.ci_method == PAIRED else test
    c = ci(r.ci95_low, r.ci95_high)
    if not c and no_interval(r) != MISSING:
        c = f"95% CI {no_interval(r)}"
    p = f", {test} p = {p_value(r.p_value)}" if r.p_value is not None else ""
    return f"{ratio(r.ratio)}{f' ({c})' if c else ''}{p}"


def speedup_text(r: Ratio) -> str:
    """`0.53x ± 0.04x, 95% CI 0.47–0.59 (Fieller), Welch p = 6.9e-05` (ratio of means) or
    `0.55x, 95% CI 0.51–0.60 (paired, 14 pairs), paired t p = 1.2e-06`."""
    sd = f" ± {r.stddev:.2f}x" if r.stddev is not None else ""
    how = f"paired, {r.n_a} pairs" if r.ci_method == PAIRED else "Fieller"
    if r.ci95_low is not None and r.ci95_high is not None:
        c = f", {ci(r.ci95_low, r.ci95_high)} ({how})"
    elif no_interval(r) == UNBOUNDED:
        c = ", 95% CI unbounded (Fieller: the vanilla mean is too uncertain; add iterations)"
    elif no_interval(r) != MISSING:
        c = f", 95% CI {no_interval(r)} ({how})"
    else:
        c = ""
    p = f", {test_name(r)} p = {p_value(r.p_value)}" if r.p_value is not None else ""
    return f"{ratio(r.ratio)}{sd}{c}{p}"


def duration(seconds: float | None) -> str:
    """`2 min 3 s` from a minute on, else `4.2 s`; `-` when undefined."""
    if seconds is None:
        return MISSING
    m, s = divmod(seconds, 60)
    return f"{int(m)} min {s:.0f} s" if m else f"{s:.1f} s"
