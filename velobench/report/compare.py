"""Two runs side by side on the console: every metric's difference and ratio, p-value, verdict."""

from __future__ import annotations

from rich.table import Table

from velobench.analysis.compare import Comparison, Regression
from velobench.report import fmt
from velobench.report.console import label


def _digits(unit: str) -> int:
    """Ratios and unitless values to 3 decimals, measurements (tok/s, ms) to 2."""
    return 3 if unit in ("", "x") else 2


def _num(x: float | None, unit: str, sign: str = "") -> str:
    return fmt.MISSING if x is None else f"{x:{sign}.{_digits(unit)}f}"


def _metric_label(metric: str) -> str:
    mode, _, rest = metric.partition(" ")
    return f"{label(mode)} {rest}" if rest else metric.capitalize()


def regression_text(r: Regression) -> str:
    """`B's speculative tokens/s is 20.0% slower than A's (151.88 → 121.50 tok/s, p = 0.0031),
    beyond the allowed 10%` (the CLI puts `velobench: regression:` before it)."""
    m = r.metric
    return (
        f"B's {m.metric} is {r.slower_pct:.1f}% slower than A's "
        f"({m.a:.2f} → {m.b:.2f} tok/s, p = {fmt.p_value(m.p_value)}), beyond the allowed {r.allowed_pct:g}%"
    )


def render_comparison(comp: Comparison) -> Table:
    """A rich table: per metric A, B, B − A and B / A with 95% intervals, Welch p, and the verdict."""
    caption = [f"A: {comp.a}", f"B: {comp.b}"]
    if comp.differences:
        caption.append("differs: " + "; ".join(comp.differences))
    table = Table(
        title="Comparison (means; 95% intervals in brackets)",
        title_justify="left",
        caption="\n".join(caption),
        caption_justify="left",
    )
    for name, justify in (
        ("Metric", "left"),
        ("A", "right"),
        ("B", "right"),
        ("B − A", "right"),
        ("B / A", "right"),
        ("p", "right"),
        ("Verdict", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for m in comp.metrics:
        unit = f" {m.unit}" if m.unit not in ("", "x") else m.unit
        table.add_row(
            _metric_label(m.metric),
            f"{_num(m.a, m.unit)}{unit}",
            f"{_num(m.b, m.unit)}{unit}",
            _num(m.difference, m.unit, "+")
            + fmt.bracketed(m.difference_ci95_low, m.difference_ci95_high, _digits(m.unit)),
            "-"
            if m.ratio is None
            else f"{m.ratio:.3f}{fmt.bracketed(m.ratio_ci95_low, m.ratio_ci95_high, 3)}",
            fmt.p_value(m.p_value),
            m.verdict,
        )
    return table
