"""Two runs side by side on the console: every metric's difference and ratio, p-value, verdict."""

from __future__ import annotations

from rich.table import Table

from velobench.analysis.compare import Comparison
from velobench.report.console import label


def _num(x: float | None, unit: str, sign: str = "") -> str:
    if x is None:
        return "-"
    return f"{x:{sign}.3f}" if unit in ("", "x") else f"{x:{sign}.2f}"


def _interval(lo: float | None, hi: float | None, unit: str) -> str:
    return "" if lo is None or hi is None else f" [{_num(lo, unit)}, {_num(hi, unit)}]"


def _metric_label(metric: str) -> str:
    mode, _, rest = metric.partition(" ")
    return f"{label(mode)} {rest}" if rest else metric.capitalize()


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
            f"{_num(m.difference, m.unit, '+')}{_interval(m.difference_ci95_low, m.difference_ci95_high, m.unit)}",
            "-" if m.ratio is None else f"{m.ratio:.3f}{_interval(m.ratio_ci95_low, m.ratio_ci95_high, '')}",
            "-" if m.p_value is None else f"{m.p_value:.2g}",
            m.verdict,
        )
    return table
