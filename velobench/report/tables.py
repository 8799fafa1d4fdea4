"""What Markdown and HTML reports share: configuration rows, result and matrix tables, notes.

Pure functions of validated reports; a matrix run groups its reports by pair (target, draft,
method, implementation, engine) and names the best configuration (analysis.verdict).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table as RichTable

from velobench.analysis.summaries import category_mean_length
from velobench.analysis.verdict import best_configuration, speedup_call
from velobench.report.console import fmt, ratio_short, results_table, telemetry_notes, telemetry_table
from velobench.results.measures import Ratio, Summary
from velobench.results.schema import ModeResult, Report

if TYPE_CHECKING:
    pass


@dataclass
class Table:
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


def config(report: Report) -> list[tuple[str, str]]:
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


def results(report: Report) -> Table:
    """The console's results table (console.results_table), cell for cell."""
    return from_rich(results_table(report))


def telemetry(report: Report) -> Table | None:
    """The console's telemetry table, cell for cell, with why a source is missing as its caption."""
    t = telemetry_table(report)
    if t is None:
        return None
    out = from_rich(t)
    notes = telemetry_notes(report)
    energy = report.primary.energy_per_token if report.primary else None
    if energy is not None:
        notes.insert(0, f"energy per token, speculative / vanilla: {ratio_short(energy)}")
    out.caption = "; ".join(notes)
    return out


def from_rich(t: RichTable) -> Table:
    """A rich console table as a plain Table (the same cells) for Markdown and HTML."""
    columns = [[str(c) for c in col.cells] for col in t.columns]
    return Table(
        title=str(t.title),
        headers=[str(col.header) for col in t.columns],
        rows=[list(row) for row in zip(*columns, strict=True)],
        right=[col.justify == "right" for col in t.columns],
        caption=str(t.caption or ""),
    )


def categories(report: Report) -> Table | None:
    if not report.categories:
        return None
    rows = [
        [
            c.category,
            str(c.n_prompts),
            fmt(c.baseline_tokens_per_second),
            fmt(c.candidate_tokens_per_second),
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
    return Table("Per category (mean ± stddev)", headers, rows, [False] + [True] * 8)


def lossless_lines(report: Report) -> list[str]:
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


def matrix_table(group: list[Report]) -> Table:
    best = best_configuration(group)
    rows, highlight = [], set()
    for k, r in enumerate(group):
        acc = r.speculative.acceptance if r.speculative else None
        rows.append(
            [
                str(r.config.n_draft),
                f"{r.config.draft_p_min:g}",
                fmt(_tps(r.vanilla)),
                fmt(_tps(r.speculative)),
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
    return Table(pair_label(group[0]), headers, rows, [True] * 11 + [False], highlight=highlight)


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


def pair_notes(group: list[Report]) -> list[str]:
    notes = [_best_line(group)]
    varying = _varying(group)
    if varying:
        notes.append("These configurations also differ in: " + ", ".join(varying) + ".")
    return notes


def machine(report: Report) -> str:
    return dict(config(report))["Machine"]
