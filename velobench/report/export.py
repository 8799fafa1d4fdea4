"""Export results: Markdown, CSV, JSON, and a self-contained HTML page with plots.

Every exporter is a pure function of validated reports returning text. `FORMATS` renders one
report; `FORMATS_MANY` renders a matrix run, several configurations of a draft/target pair that
differ by n_draft, with a table per pair and the best configuration: the highest speedup whose
95% (Fieller) interval lies above 1.0. A configuration whose interval reaches 1.0 is no
significant speedup. Plots are PNGs drawn by matplotlib's Agg canvas, embedded in base64.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from velobench.analysis import stats
from velobench.analysis.stats import Ratio, Summary
from velobench.errors import VelobenchError
from velobench.report.console import MODE_LABEL, _fmt, results_table, speedup_text
from velobench.results import ModeResult, Report
from velobench.runner.loop import verdict

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# ---------------------------------------------------------------- content shared by md and html


@dataclass
class _Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    right: list[bool]
    caption: str = ""
    highlight: set[int] = field(default_factory=set)


def _ci_text(r: Ratio | None) -> str:
    if r is None or r.ci95_low is None or r.ci95_high is None:
        return "-"
    return f"{r.ci95_low:.2f}–{r.ci95_high:.2f}"


def _rate(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _length(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _p(r: Ratio | None) -> str:
    return "-" if r is None or r.p_value is None else f"{r.p_value:.2g}"


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


def category_mean_length(report: Report, category: str) -> float | None:
    """1 + accepted / draft steps over the category's speculative iterations (server engine only)."""
    its = [
        i
        for i in (report.speculative.iterations if report.speculative else [])
        if i.category == category and i.draft_steps is not None
    ]
    if not its:
        return None
    return stats.mean_acceptance_length(
        sum(i.n_accept or 0 for i in its), sum(i.draft_steps or 0 for i in its)
    )


def _config(report: Report) -> list[tuple[str, str]]:
    cfg, env = report.config, report.environment
    rows = [("Main model", cfg.main_model)]
    if cfg.draft_model:
        rows.append(("Draft model", cfg.draft_model))
    binary = report.speculative.binary if report.speculative else None
    method = cfg.method.value + (f" ({binary})" if binary else "")
    prompt = (cfg.prompts or cfg.prompt_file or cfg.prompt).replace("\n", " ")
    rows += [
        ("Method", f"{method}, n_draft {cfg.n_draft}, p_min {cfg.draft_p_min}"),
        (
            "Run",
            f"n_predict {cfg.n_predict}, iterations {cfg.iterations} (+{cfg.warmup} warm-up), "
            f"engine {cfg.engine}, threads {cfg.threads or 'auto'}, ctx {cfg.ctx_size}, "
            f"temp {cfg.temp}, seed {cfg.seed}",
        ),
        ("Prompt", prompt if len(prompt) <= 200 else prompt[:197] + "..."),
    ]
    rows += [(b.name, f"{b.version} ({b.source}: {b.path})") for b in report.binaries]
    gpus = ", ".join(g.name for g in env.gpus) or "none"
    rows.append(
        (
            "Machine",
            f"{env.cpu_model}, {env.cpu_cores_logical} logical cores, {env.ram_total_mib} MiB RAM, "
            f"GPUs: {gpus}; {env.os}",
        )
    )
    rows.append(
        ("Recorded", f"{report.timestamp}, status {report.status}, velobench {report.velobench_version}")
    )
    return rows


def _results(report: Report) -> _Table:
    """The console's results table (console.results_table), cell for cell."""
    t = results_table(report)
    columns = [[str(c) for c in col.cells] for col in t.columns]
    return _Table(
        title=str(t.title),
        headers=[str(col.header) for col in t.columns],
        rows=[list(row) for row in zip(*columns, strict=True)],
        right=[col.justify == "right" for col in t.columns],
        caption=str(t.caption or ""),
    )


def _categories(report: Report) -> _Table | None:
    if not report.categories:
        return None
    rows = [
        [
            c.category,
            str(c.n_prompts),
            _fmt(c.vanilla_tokens_per_second),
            _fmt(c.speculative_tokens_per_second),
            _rate(c.acceptance_rate),
            _length(category_mean_length(report, c.category)),
            "-" if c.speedup is None else f"{c.speedup.ratio:.2f}x",
            _ci_text(c.speedup),
            _p(c.speedup),
        ]
        for c in report.categories
    ]
    headers = [
        "Category",
        "Prompts",
        "Vanilla tok/s",
        "Speculative tok/s",
        "Acceptance",
        "Mean acceptance length",
        "Speedup",
        "95% CI",
        "p",
    ]
    return _Table("Per category (mean ± stddev)", headers, rows, [False] + [True] * 8)


def _lossless_lines(report: Report) -> list[str]:
    ll = report.lossless
    if ll is None:
        return []
    lines = [f"{ll.identical}/{ll.compared} prompts identical ({ll.match_rate:.0%})"]
    lines += [
        f"{p.prompt_id}: differs from {p.unit} {p.first_difference}" for p in ll.prompts if not p.identical
    ]
    return lines


def _pair_key(r: Report) -> tuple[str, str | None, str, str, str]:
    cfg = r.config
    return (cfg.main_model, cfg.draft_model, cfg.method.value, cfg.spec_impl.value, cfg.engine)


def pair_label(report: Report) -> str:
    """`target ← draft (binary)`, or `target + method (binary)` for methods without a draft model."""
    cfg = report.config
    other = f"← {Path(cfg.draft_model).name}" if cfg.draft_model else f"+ {cfg.method.value}"
    binary = report.speculative.binary if report.speculative else cfg.engine
    return f"{Path(cfg.main_model).name} {other} ({binary})"


def group_pairs(reports: Sequence[Report]) -> list[list[Report]]:
    """Reports grouped by pair (target, draft, method, implementation, engine), in first-seen
    order; within a pair sorted by n_draft, then p_min, then time."""
    groups: dict[tuple[str, str | None, str, str, str], list[Report]] = {}
    for r in reports:
        groups.setdefault(_pair_key(r), []).append(r)
    return [
        sorted(g, key=lambda r: (r.config.n_draft, r.config.draft_p_min, r.timestamp))
        for g in groups.values()
    ]


def _tps(m: ModeResult | None) -> Summary | None:
    return m.tokens_per_second if m else None


def _matrix_table(group: list[Report]) -> _Table:
    best = best_configuration(group)
    rows, highlight = [], set()
    for k, r in enumerate(group):
        acc = r.speculative.acceptance if r.speculative else None
        rows.append(
            [
                str(r.config.n_draft),
                f"{r.config.draft_p_min:g}",
                _fmt(_tps(r.vanilla)),
                _fmt(_tps(r.speculative)),
                _rate(acc.rate if acc else None),
                _length(acc.mean_length if acc else None),
                "-" if r.speedup_detail is None else f"{r.speedup_detail.ratio:.2f}x",
                _ci_text(r.speedup_detail),
                _p(r.speedup_detail),
                "-" if r.ceiling is None else f"{r.ceiling.ceiling:.2f}x",
                "-"
                if r.ceiling is None or r.ceiling.fraction_of_ceiling is None
                else f"{r.ceiling.fraction_of_ceiling:.0%}",
                speedup_call(r.speedup_detail),
            ]
        )
        if r is best:
            highlight.add(k)
    headers = [
        "n_draft",
        "p_min",
        "Vanilla tok/s",
        "Speculative tok/s",
        "Acceptance",
        "Mean acceptance length",
        "Speedup",
        "95% CI",
        "p",
        "Ceiling",
        "Of ceiling",
        "Call",
    ]
    return _Table(pair_label(group[0]), headers, rows, [True] * 11 + [False], highlight=highlight)


def _best_line(group: list[Report]) -> str:
    best = best_configuration(group)
    if best is None or best.speedup_detail is None:
        return "No significant speedup: no configuration's 95% interval lies above 1.0."
    return (
        f"Best: n_draft {best.config.n_draft} (p_min {best.config.draft_p_min:g}): "
        f"{best.speedup_detail.ratio:.2f}x, 95% CI {_ci_text(best.speedup_detail)}, "
        "the highest speedup whose 95% interval lies above 1.0."
    )


def _varying(group: list[Report]) -> list[str]:
    """Config fields other than n_draft and p_min that differ within a pair."""
    dumps = [r.config.model_dump(mode="json") for r in group]
    return [
        k
        for k in dumps[0]
        if k not in ("n_draft", "draft_p_min") and any(d.get(k) != dumps[0][k] for d in dumps)
    ]


def _pair_notes(group: list[Report]) -> list[str]:
    notes = [_best_line(group)]
    varying = _varying(group)
    if varying:
        notes.append("These configurations also differ in: " + ", ".join(varying) + ".")
    return notes


def _machine(report: Report) -> str:
    return dict(_config(report))["Machine"]


# ---------------------------------------------------------------- markdown


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(t: _Table, heading: str = "##") -> str:
    out = [f"{heading} {t.title}", ""] if t.title else []
    out.append("| " + " | ".join(_md_cell(h) for h in t.headers) + " |")
    out.append("| " + " | ".join("---:" if r else ":---" for r in t.right) + " |")
    for k, row in enumerate(t.rows):
        cells = [_md_cell(c) for c in row]
        if k in t.highlight:
            cells = [f"**{c}**" for c in cells]
        out.append("| " + " | ".join(cells) + " |")
    if t.caption:
        out += ["", f"_{_md_cell(t.caption)}_"]
    return "\n".join(out)


def render_markdown(report: Report) -> str:
    """The report as GitHub-flavoured Markdown: configuration, results, speedup, verdict,
    categories, losslessness and warnings."""
    parts = ["# velobench: vanilla vs speculative decoding", ""]
    parts += [f"- **{k}:** `{v}`" if k.endswith("model") else f"- **{k}:** {v}" for k, v in _config(report)]
    parts += ["", _md_table(_results(report)), ""]
    if report.speedup_detail is not None:
        parts += [f"**Speedup:** {speedup_text(report.speedup_detail)}", ""]
    parts += [f"**Verdict:** {verdict(report)}", ""]
    cats = _categories(report)
    if cats:
        parts += [_md_table(cats), ""]
    lossless = _lossless_lines(report)
    if lossless:
        parts += ["## Losslessness (temperature 0)", "", *(f"- {line}" for line in lossless), ""]
    if report.warnings:
        parts += ["## Warnings", "", *(f"- `{w.code.value}`: {w.message}" for w in report.warnings), ""]
    return "\n".join(parts)


def render_markdown_many(reports: Sequence[Report]) -> str:
    """A matrix run in Markdown: a table per pair, configurations by n_draft, best one in bold."""
    if not reports:
        raise VelobenchError("no results to export")
    parts = ["# velobench: speedup vs n_draft", "", f"Machine: {_machine(reports[0])}", ""]
    for group in group_pairs(reports):
        parts += [_md_table(_matrix_table(group)), ""]
        parts += [*_pair_notes(group), ""]
    return "\n".join(parts)


# ---------------------------------------------------------------- csv

CSV_COLUMNS: tuple[str, ...] = (
    "timestamp",
    "main_model",
    "draft_model",
    "method",
    "engine",
    "n_draft",
    "draft_p_min",
    "row",
    "category",
    "mode",
    "n_prompts",
    "n",
    "tokens_per_second_mean",
    "tokens_per_second_stddev",
    "tokens_per_second_median",
    "tokens_per_second_min",
    "tokens_per_second_max",
    "tokens_per_second_ci95_low",
    "tokens_per_second_ci95_high",
    "ttft_ms_mean",
    "ttft_ms_stddev",
    "total_time_ms_mean",
    "total_time_ms_stddev",
    "e2e_ms_mean",
    "tpot_ms_mean",
    "itl_p50_ms_mean",
    "itl_p99_ms_mean",
    "drafted",
    "accepted",
    "acceptance_rate",
    "mean_acceptance_length",
    "speedup",
    "speedup_stddev",
    "speedup_ci95_low",
    "speedup_ci95_high",
    "speedup_p_value",
)


def _tps_cols(s: Summary | None) -> dict[str, Any]:
    if s is None:
        return {}
    return {
        "n": s.n,
        "tokens_per_second_mean": s.mean,
        "tokens_per_second_stddev": s.stddev,
        "tokens_per_second_median": s.median,
        "tokens_per_second_min": s.min,
        "tokens_per_second_max": s.max,
        "tokens_per_second_ci95_low": s.ci95_low,
        "tokens_per_second_ci95_high": s.ci95_high,
    }


def _speedup_cols(r: Ratio | None) -> dict[str, Any]:
    if r is None:
        return {}
    return {
        "speedup": r.ratio,
        "speedup_stddev": r.stddev,
        "speedup_ci95_low": r.ci95_low,
        "speedup_ci95_high": r.ci95_high,
        "speedup_p_value": r.p_value,
    }


def _mean(s: Summary | None) -> float | None:
    return s.mean if s else None


def _csv_rows(report: Report) -> Iterator[dict[str, Any]]:
    cfg = report.config
    base = {
        "timestamp": report.timestamp,
        "main_model": cfg.main_model,
        "draft_model": cfg.draft_model,
        "method": cfg.method.value,
        "engine": cfg.engine,
        "n_draft": cfg.n_draft,
        "draft_p_min": cfg.draft_p_min,
    }
    for m in (report.vanilla, report.speculative):
        if m is None or not m.iterations:
            continue
        acc = m.acceptance
        yield {
            **base,
            "row": "mode",
            "mode": m.mode,
            **_tps_cols(m.tokens_per_second),
            "ttft_ms_mean": _mean(m.time_to_first_token_ms),
            "ttft_ms_stddev": m.time_to_first_token_ms.stddev if m.time_to_first_token_ms else None,
            "total_time_ms_mean": _mean(m.total_time_ms),
            "total_time_ms_stddev": m.total_time_ms.stddev if m.total_time_ms else None,
            "e2e_ms_mean": _mean(m.e2e_ms),
            "tpot_ms_mean": _mean(m.tpot_ms),
            "itl_p50_ms_mean": _mean(m.itl_p50_ms),
            "itl_p99_ms_mean": _mean(m.itl_p99_ms),
            **(
                {
                    "drafted": acc.drafted,
                    "accepted": acc.accepted,
                    "acceptance_rate": acc.rate,
                    "mean_acceptance_length": acc.mean_length,
                }
                if acc
                else {}
            ),
            **(_speedup_cols(report.speedup_detail) if m.mode == "speculative" else {}),
        }
    for c in report.categories:
        for mode, s in (
            ("vanilla", c.vanilla_tokens_per_second),
            ("speculative", c.speculative_tokens_per_second),
        ):
            if s is None:
                continue
            extra: dict[str, Any] = {}
            if mode == "speculative":
                extra = {
                    "acceptance_rate": c.acceptance_rate,
                    "mean_acceptance_length": category_mean_length(report, c.category),
                    **_speedup_cols(c.speedup),
                }
            yield {
                **base,
                "row": "category",
                "category": c.category,
                "mode": mode,
                "n_prompts": c.n_prompts,
                **_tps_cols(s),
                **extra,
            }


def render_csv_many(reports: Sequence[Report]) -> str:
    """One header (CSV_COLUMNS, a stable order), then the rows of every report; empty = undefined."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for report in reports:
        writer.writerows(_csv_rows(report))
    return buf.getvalue()


def render_csv(report: Report) -> str:
    """A row per measured mode (tokens/s summary, TTFT, total time, streaming latencies,
    acceptance; the speculative row carries the speedup), then a row per category and mode."""
    return render_csv_many([report])


# ---------------------------------------------------------------- json


def render_json(report: Report) -> str:
    """The validated report, as `velobench run` saves it (indent 2)."""
    return report.model_dump_json(indent=2) + "\n"


def render_json_many(reports: Sequence[Report]) -> str:
    """A JSON array of the validated reports (indent 2)."""
    return TypeAdapter(list[Report]).dump_json(list(reports), indent=2).decode() + "\n"


# ---------------------------------------------------------------- plots (matplotlib, Agg)


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
        range(1, len(modes) + 1), labels=[f"{MODE_LABEL[m.mode]} (n={len(m.iterations)})" for m in modes]
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


# ---------------------------------------------------------------- html

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 62rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; }
th { background: #f4f4f4; }
.r { text-align: right; }
tr.best td { background: #e6f4ea; font-weight: bold; }
caption { caption-side: bottom; text-align: left; color: #666; font-size: 0.9em; }
.verdict { font-size: 1.15em; font-weight: bold; }
.warning { color: #8a5a00; }
img { max-width: 100%; }
code { font-size: 0.9em; }
""".strip()


def _e(text: object) -> str:
    return html.escape(str(text))


def _cell(text: str) -> str:
    """Escaped, with leading spaces kept (the console table indents sub-rows such as `  range`)."""
    body = text.lstrip(" ")
    return "&nbsp;" * (len(text) - len(body)) + _e(body)


def _html_table(t: _Table, heading: str = "h2") -> str:
    out = [f"<{heading}>{_e(t.title)}</{heading}>"] if t.title else []
    out.append("<table>")
    if t.caption:
        out.append(f"<caption>{_e(t.caption)}</caption>")
    out.append(
        "<thead><tr>"
        + "".join(
            f'<th class="r">{_e(h)}</th>' if r else f"<th>{_e(h)}</th>"
            for h, r in zip(t.headers, t.right, strict=True)
        )
        + "</tr></thead>"
    )
    out.append("<tbody>")
    for k, row in enumerate(t.rows):
        cls = ' class="best"' if k in t.highlight else ""
        cells = "".join(
            f'<td class="r">{_cell(c)}</td>' if r else f"<td>{_cell(c)}</td>"
            for c, r in zip(row, t.right, strict=True)
        )
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</tbody>")
    out.append("</table>")
    return "\n".join(out)


def _img(png: str | None, alt: str) -> list[str]:
    return [] if png is None else [f'<p><img src="data:image/png;base64,{png}" alt="{_e(alt)}"></p>']


def _page(title: str, body: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def render_html(report: Report) -> str:
    """One self-contained page: configuration, tables, speedup, verdict, warnings, and plots
    (tokens/s per mode, acceptance per category, speedup with its 95% interval)."""
    title = "velobench: vanilla vs speculative decoding"
    body = [f"<h1>{_e(title)}</h1>", "<ul>"]
    body += [f"<li><strong>{_e(k)}:</strong> {_e(v)}</li>" for k, v in _config(report)]
    body += ["</ul>", _html_table(_results(report))]
    if report.speedup_detail is not None:
        body.append(f"<p><strong>Speedup:</strong> {_e(speedup_text(report.speedup_detail))}</p>")
    body.append(f'<p class="verdict">Verdict: {_e(verdict(report))}</p>')
    body += _img(plot_tokens_per_second(report), "tokens/s per iteration, per mode")
    body += _img(plot_speedup(report), "speedup with its 95% interval")
    cats = _categories(report)
    if cats:
        body.append(_html_table(cats))
        body += _img(plot_categories(report), "acceptance rate and mean acceptance length per category")
    lossless = _lossless_lines(report)
    if lossless:
        body += [
            "<h2>Losslessness (temperature 0)</h2>",
            "<ul>",
            *(f"<li>{_e(x)}</li>" for x in lossless),
            "</ul>",
        ]
    if report.warnings:
        body += ["<h2>Warnings</h2>", "<ul>"]
        body += [
            f'<li class="warning"><code>{_e(w.code.value)}</code>: {_e(w.message)}</li>'
            for w in report.warnings
        ]
        body.append("</ul>")
    return _page(title, body)


def render_html_many(reports: Sequence[Report]) -> str:
    """A matrix run on one page: per pair a table (best configuration highlighted), the
    verdict on the best, and a speedup-vs-n_draft plot with 95% error bars."""
    if not reports:
        raise VelobenchError("no results to export")
    title = "velobench: speedup vs n_draft"
    body = [f"<h1>{_e(title)}</h1>", f"<p>Machine: {_e(_machine(reports[0]))}</p>"]
    for group in group_pairs(reports):
        body.append(_html_table(_matrix_table(group)))
        notes = _pair_notes(group)
        body.append(f'<p class="verdict">{_e(notes[0])}</p>')
        body += [f"<p>{_e(n)}</p>" for n in notes[1:]]
        body += _img(plot_speedup_vs_n_draft(group), f"speedup vs n_draft, {pair_label(group[0])}")
    return _page(title, body)


# ---------------------------------------------------------------- for the CLI

FORMATS: dict[str, Callable[[Report], str]] = {
    "md": render_markdown,
    "csv": render_csv,
    "json": render_json,
    "html": render_html,
}

FORMATS_MANY: dict[str, Callable[[Sequence[Report]], str]] = {
    "md": render_markdown_many,
    "csv": render_csv_many,
    "json": render_json_many,
    "html": render_html_many,
}


def render(reports: Sequence[Report], fmt: str) -> str:
    """One report in `fmt` with FORMATS, several (a matrix) with FORMATS_MANY."""
    if fmt not in FORMATS:
        raise VelobenchError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if not reports:
        raise VelobenchError("no results to export")
    return FORMATS[fmt](reports[0]) if len(reports) == 1 else FORMATS_MANY[fmt](reports)
