"""Plots as base64 PNGs, drawn with matplotlib's Agg canvas (imported only when a plot is drawn)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

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


def _bounded(r: Ratio) -> bool:
    return r.ci95_low is not None and r.ci95_high is not None


def _yerr(ratios: Sequence[Ratio]) -> list[list[float]]:
    """Asymmetric error bars [r − low, high − r] from the 95% intervals (of ratios that have one:
    an undefined interval is drawn as a hollow marker without bars, never as a zero-width bar)."""
    lows = [r.ratio - (r.ci95_low or 0.0) for r in ratios]
    highs = [(r.ci95_high or 0.0) - r.ratio for r in ratios]
    return [lows, highs]


def _ratio_points(ax: Any, xs: Sequence[float], rs: Sequence[Ratio], horizontal: bool) -> None:
    """Each ratio at its position: with its 95% bars where it has an interval, else hollow and
    bar-less (labelled `no interval` in the legend)."""
    with_ci = [(x, r) for x, r in zip(xs, rs, strict=True) if _bounded(r)]
    without = [(x, r) for x, r in zip(xs, rs, strict=True) if not _bounded(r)]
    if with_ci:
        pos, vals = [x for x, _ in with_ci], [r.ratio for _, r in with_ci]
        err = _yerr([r for _, r in with_ci])
        if horizontal:
            ax.errorbar(vals, pos, xerr=err, fmt="o", capsize=4, color="C0", label="95% CI")
        else:
            ax.errorbar(pos, vals, yerr=err, fmt="o", capsize=4, color="C0", label="measured (95% CI)")
    if without:
        pos, vals = [x for x, _ in without], [r.ratio for _, r in without]
        xy = (vals, pos) if horizontal else (pos, vals)
        ax.plot(*xy, "o", fillstyle="none", color="C0", linestyle="none", label="no interval")
    if without:
        ax.legend(loc="best", fontsize="small")


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
    _bars(left, names, [c.acceptance_rate for c in report.categories])
    left.set_ylim(0, 1)
    left.set_title("Acceptance rate (accepted / drafted)")
    lengths = [category_mean_length(report, n) for n in names]
    if any(x is not None for x in lengths):
        _bars(right, names, lengths)
        right.set_title("Mean acceptance length (tokens / step)")
    else:
        right.text(0.5, 0.5, "mean acceptance length:\nnot measured by this engine", ha="center", va="center")
        right.set_axis_off()
    for ax in (left, right):
        ax.tick_params(axis="x", labelrotation=30)
    return _png(fig)


def _bars(ax: Any, names: Sequence[str], values: Sequence[float | None]) -> None:
    """A bar per defined value; an undefined one gets no bar but `n/a` at its place (a bar of 0
    would read as a measured zero)."""
    ax.bar(names, [0.0 if v is None else v for v in values], color=["C0"] * len(values))
    for k, v in enumerate(values):
        if v is None:
            ax.patches[k].set_visible(False)
            ax.text(k, 0, "n/a", ha="center", va="bottom", color="grey")


def plot_acceptance_histogram(report: Report) -> str | None:
    """Prompts per acceptance-rate bucket (< 50%, 50-75%, 75-90%, 90-100%), the GSM8K
    benchmark's distribution over requests (base64 PNG); None without per-prompt counts."""
    spec = report.speculative
    acc = spec.acceptance if spec else None
    if acc is None or not acc.buckets or not acc.per_prompt:
        return None
    fig = _figure(6, 3.0)
    ax = fig.add_subplot()
    names, counts = list(acc.buckets), list(acc.buckets.values())
    ax.bar(names, counts, color="C0")
    ax.set_xlabel("acceptance rate of the prompt (accepted / drafted)")
    ax.set_ylabel("prompts")
    ax.set_title(f"Acceptance per prompt ({len(acc.per_prompt)} prompts)")
    ax.set_yticks(range(max(counts) + 1))
    return _png(fig)


def plot_speedup(report: Report) -> str | None:
    """Speedup with its 95% interval, overall and per category, against 1.0 (base64 PNG): the
    headline estimate (paired where pairs exist) of each."""
    items = [("overall", report.speedup_detail)] + [(c.category, c.headline) for c in report.categories]
    shown = [(name, r) for name, r in items if r is not None]
    if not shown:
        return None
    fig = _figure(6, 1.4 + 0.45 * len(shown))
    ax = fig.add_subplot()
    ys = list(range(len(shown)))
    _ratio_points(ax, ys, [r for _, r in shown], horizontal=True)
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
    ax.plot(xs, [q.ratio for q in ratios], "-", color="C0", alpha=0.5)
    _ratio_points(ax, xs, ratios, horizontal=False)
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
