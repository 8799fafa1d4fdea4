"""Plots as base64 PNGs, drawn with matplotlib's Agg canvas (imported only when a plot is drawn)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from velobench.analysis.summaries import category_mean_length
from velobench.analysis.verdict import best_configuration
from velobench.report.console import label
from velobench.results.measures import Ratio
from velobench.results.schema import Report

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _yerr(ratios: Sequence[Ratio]) -> list[list[float]]:
    """Asymmetric error bars [r − low, high − r] from the 95% intervals (0 where undefined)."""
    lows = [r.ratio - r.ci95_low if r.ci95_low is not None else 0.0 for r in ratios]
    highs = [r.ci95_high - r.ratio if r.ci95_high is not None else 0.0 for r in ratios]
    return [lows, highs]


def plot_tokens_per_second(report: Report) -> str | None:
    """Box plot of each mode's tokens/s samples, with every sample drawn over it (base64 PNG)."""
    modes = [m for m in (report.vanilla, report.speculative) if m and m.iterations]
    if not modes:
        return None
    data = [[i.tokens_per_second for i in m.iterations] for m in modes]
    fig = _figure(6, 3.4)
    ax = fig.add_subplot()
    ax.boxplot(data, widths=0.5, showfliers=False, medianprops={"color": "black"})
    for k, ys in enumerate(data, start=1):
        step = 0.24 / max(len(ys) - 1, 1)
        xs = [k - 0.12 + j * step for j in range(len(ys))] if len(ys) > 1 else [k]
        ax.scatter(xs, ys, s=18, alpha=0.8, zorder=3)
    ax.set_xticks(
        range(1, len(modes) + 1), labels=[f"{label(m.mode)} (n={len(m.iterations)})" for m in modes]
    )
    ax.set_ylabel("decode tokens/s")
    ax.set_title("Tokens/s per iteration")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def plot_categories(report: Report) -> str | None:
    """Acceptance rate and mean acceptance length per category (base64 PNG); None without categories."""
    if not report.categories:
        return None
    names = [c.category for c in report.categories]
    fig = _figure(9, 3.4)
    left, right = fig.subplots(1, 2)
    left.bar(names, [c.acceptance_rate or 0.0 for c in report.categories])
    left.set_ylim(0, 1)
    left.set_title("Acceptance rate (accepted / drafted)")
    lengths = [category_mean_length(report, n) for n in names]
    if any(x is not None for x in lengths):
        right.bar(names, [x or 0.0 for x in lengths])
        right.set_title("Mean acceptance length (tokens / step)")
    else:
        right.text(0.5, 0.5, "mean acceptance length:\nnot measured by this engine", ha="center", va="center")
        right.set_axis_off()
    for ax in (left, right):
        ax.tick_params(axis="x", labelrotation=30)
    return _png(fig)


def plot_speedup(report: Report) -> str | None:
    """Speedup with its 95% interval, overall and per category, against 1.0 (base64 PNG)."""
    items = [("overall", report.speedup_detail)] + [(c.category, c.speedup) for c in report.categories]
    shown = [(name, r) for name, r in items if r is not None]
    if not shown:
        return None
    fig = _figure(6, 1.4 + 0.45 * len(shown))
    ax = fig.add_subplot()
    ys = list(range(len(shown)))
    ax.errorbar([r.ratio for _, r in shown], ys, xerr=_yerr([r for _, r in shown]), fmt="o", capsize=4)
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(ys, labels=[name for name, _ in shown])
    ax.invert_yaxis()
    ax.set_xlabel("speedup: speculative / vanilla tokens/s (95% CI)")
    ax.set_title("Speedup")
    return _png(fig)


def plot_speedup_vs_n_draft(group: Sequence[Report]) -> str | None:
    """One pair's speedup against n_draft with 95% error bars; the best configuration starred."""
    rs = [r for r in group if r.speedup_detail is not None]
    if not rs:
        return None
    ratios = [r.speedup_detail for r in rs if r.speedup_detail is not None]
    xs = [r.config.n_draft for r in rs]
    fig = _figure(6, 3.4)
    ax = fig.add_subplot()
    ax.errorbar(xs, [q.ratio for q in ratios], yerr=_yerr(ratios), fmt="o-", capsize=4, label="measured")
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    ceilings = [(r.config.n_draft, r.ceiling.ceiling) for r in rs if r.ceiling is not None]
    if ceilings:
        ax.plot(*zip(*ceilings, strict=True), "x:", color="C2", markersize=8, label="ceiling (theory)")
    best = best_configuration(rs)
    if best is not None and best.speedup_detail is not None:
        ax.plot(
            [best.config.n_draft], [best.speedup_detail.ratio], "*", markersize=16, color="C3", label="best"
        )
    if ceilings or best is not None:
        ax.legend()
    ax.set_xticks(sorted(set(xs)))
    ax.set_xlabel("n_draft")
    ax.set_ylabel("speedup (95% CI)")
    ax.set_title("Speedup vs n_draft")
    return _png(fig)


def plot_power(report: Report) -> str | None:
    """Power over time (W) of the first measured iteration of each mode (base64 PNG)."""
    traces = [(m.mode, m.power_trace) for m in report.modes.values() if m.power_trace]
    if not traces:
        return None
    fig = _figure(7, 3)
    ax = fig.add_subplot()
    for mode, points in traces:
        t0 = points[0][0]
        ax.plot([t - t0 for t, _ in points], [w for _, w in points], label=label(mode))
    ax.set_xlabel("seconds into the generation")
    ax.set_ylabel("W")
    ax.set_title("Power over time")
    ax.legend()
    return _png(fig)
