"""What Markdown and HTML reports share: configuration rows, result and matrix tables, notes.

Pure functions of validated reports; a matrix run groups its reports by pair (target, draft,
method, implementation, engine) and names the best configuration (analysis.verdict).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table as RichTable

from velobench.analysis.summaries import category_mean_length
from velobench.analysis.verdict import best_configuration, speedup_call
from velobench.report import fmt
from velobench.report.console import (
    divergence_lines,
    lossless_verdict,
    results_table,
    telemetry_notes,
    telemetry_table,
)
from velobench.report.fmt import ratio_short
from velobench.results.measures import Ratio, Summary
from velobench.results.schema import ModeResult, Report


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def md_text(text: str) -> str:
    """Text made safe for one line of Markdown (a list item, a table cell)."""
    return _md_cell(text)


def _e(text: object) -> str:
    return html.escape(str(text))


def _html_cell(text: str) -> str:
    """Escaped, with leading spaces kept (the console table indents sub-rows such as `  range`)."""
    body = text.lstrip(" ")
    return "&nbsp;" * (len(text) - len(body)) + _e(body)


@dataclass
class Table:
    """A table of text cells: the one writer of console, plain-text, Markdown and HTML tables
    for run, load and think results. `right`: which columns align right; `highlight`: rows shown
    bold (Markdown) or classed `best` (HTML); `raw`: columns whose cells are trusted HTML (a bar),
    written unescaped, for HTML only."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    right: list[bool]
    caption: str = ""
    highlight: set[int] = field(default_factory=set)
    raw: set[int] = field(default_factory=set)

    def markdown(self, heading: str = "##") -> str:
        """GitHub-flavoured Markdown: `## title`, the table, the caption in italics."""
        out = [f"{heading} {self.title}", ""] if self.title else []
        out.append("| " + " | ".join(_md_cell(h) for h in self.headers) + " |")
        out.append("| " + " | ".join("---:" if r else ":---" for r in self.right) + " |")
        for k, row in enumerate(self.rows):
            cells = [_md_cell(c) for c in row]
            if k in self.highlight:
                cells = [f"**{c}**" for c in cells]
            out.append("| " + " | ".join(cells) + " |")
        if self.caption:
            out += ["", f"_{_md_cell(self.caption)}_"]
        return "\n".join(out)

    def html(self, heading: str = "h2") -> str:
        """An HTML `<table>` (cells escaped), headed by `<h2>title</h2>`, the caption below it."""
        out = [f"<{heading}>{_e(self.title)}</{heading}>"] if self.title else []
        out.append("<table>")
        if self.caption:
            out.append(f"<caption>{_e(self.caption)}</caption>")
        out.append(
            "<thead><tr>"
            + "".join(
                f'<th class="r">{_e(h)}</th>' if r else f"<th>{_e(h)}</th>"
                for h, r in zip(self.headers, self.right, strict=True)
            )
            + "</tr></thead>"
        )
        out.append("<tbody>")
        for k, row in enumerate(self.rows):
            cls = ' class="best"' if k in self.highlight else ""
            cells = "".join(
                ('<td class="r">' if r else "<td>") + (c if i in self.raw else _html_cell(c)) + "</td>"
                for i, (c, r) in enumerate(zip(row, self.right, strict=True))
            )
            out.append(f"<tr{cls}>{cells}</tr>")
        out.append("</tbody>")
        out.append("</table>")
        return "\n".join(out)

    def text(self) -> list[str]:
        """Plain-text lines: the header, then the rows, columns padded and two spaces apart."""
        rows = [self.headers, *self.rows]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self.headers))]
        return [
            "  ".join(
                c.rjust(w) if right else c.ljust(w) for c, w, right in zip(r, widths, self.right, strict=True)
            ).rstrip()
            for r in rows
        ]

    def rich(self) -> RichTable:
        """The table for a rich console."""
        table = RichTable(
            title=self.title, title_justify="left", caption=self.caption or None, caption_justify="left"
        )
        for h, r in zip(self.headers, self.right, strict=True):
            table.add_column(h, justify="right" if r else "left")
        for row in self.rows:
            table.add_row(*row)
        return table


def _ci_text(r: Ratio | None) -> str:
    return fmt.ratio_interval(r)


def _rate(x: float | None) -> str:
    return fmt.percent(x, 1)


def _length(x: float | None) -> str:
    return fmt.number(x)


def _p(r: Ratio | None) -> str:
    return fmt.p_value(None if r is None else r.p_value)


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
            fmt.mean_sd(c.baseline_tokens_per_second),
            fmt.mean_sd(c.candidate_tokens_per_second),
            _rate(c.acceptance_rate),
            _length(category_mean_length(report, c.category)),
            fmt.ratio(None if c.paired_speedup is None else c.paired_speedup.ratio),
            _ci_text(c.paired_speedup),
            _p(c.paired_speedup),
            fmt.ratio(None if c.speedup is None else c.speedup.ratio),
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
        "Paired speedup",
        "95% CI",
        "p (paired t)",
        "Ratio of means",
        "95% CI",
        "p (Welch)",
    ]
    return Table("Per category (mean ± stddev)", headers, rows, [False] + [True] * 11)


def acceptance_per_prompt(report: Report) -> Table | None:
    """Per prompt of the speculative mode: iterations, drafted, accepted, rate, draft steps, mean
    acceptance length and where the counts came from; None without per-prompt counts."""
    from velobench.report.console import SOURCE_WORDS, acceptance_line

    spec = report.speculative
    acc = spec.acceptance if spec else None
    if acc is None or not acc.per_prompt:
        return None
    rows = [
        [
            p.prompt_id or fmt.MISSING,
            p.category or fmt.MISSING,
            str(p.iterations),
            str(p.drafted),
            str(p.accepted),
            _rate(p.rate),
            fmt.MISSING if p.draft_steps is None else str(p.draft_steps),
            _length(p.mean_length),
            ", ".join(SOURCE_WORDS[s] for s in p.sources) or fmt.MISSING,
        ]
        for p in acc.per_prompt
    ]
    headers = [
        "Prompt",
        "Category",
        "Iterations",
        "Drafted",
        "Accepted",
        "Rate",
        "Draft steps",
        "Mean length",
        "Source",
    ]
    right = [False, False] + [True] * 6 + [False]
    return Table(
        "Acceptance per prompt", headers, rows, right, caption=f"Acceptance {acceptance_line(report)}"
    )


def lossless_lines(report: Report) -> list[str]:
    ll = report.lossless
    if ll is None:
        return []
    return [lossless_verdict(ll), *divergence_lines(ll)]


def lossless_cell(r: Report) -> str:
    """`7/7`, `6/7, 1 near-tie`, `5/7, 1 decisive, 1 ?` (unclassified); `-` at temperature > 0."""
    ll = r.lossless
    if ll is None:
        return fmt.MISSING
    parts = [f"{ll.identical}/{ll.compared}"]
    parts += [f"{n} {what}" for n, what in ((ll.near_ties, "near-tie"), (ll.decisive, "decisive")) if n]
    if ll.unclassified:
        parts.append(f"{ll.unclassified} ?")
    return ", ".join(parts) + (" (lossy by design)" if ll.lossy else "")


def _pair_key(r: Report) -> tuple[str, str | None, str, str, str, str]:
    cfg = r.config
    return (cfg.main_model, cfg.draft_model, cfg.method.value, cfg.spec_impl.value, cfg.engine, machine(r))


def pair_label(report: Report) -> str:
    """`target ← draft (binary)`, or `target + method (binary)` for methods without a draft model."""
    cfg = report.config
    other = f"← {Path(cfg.draft_model).name}" if cfg.draft_model else f"+ {cfg.method.value}"
    binary = report.speculative.binary if report.speculative else cfg.engine
    return f"{Path(cfg.main_model).name} {other} ({binary})"


def group_pairs(reports: Sequence[Report]) -> list[list[Report]]:
    """Reports grouped by pair (target, draft, method, implementation, engine) and machine (cells
    of a cluster run on different hardware are never compared in one table), in first-seen
    order; within a group sorted by n_draft, then p_min, then time."""
    groups: dict[tuple[str, str | None, str, str, str, str], list[Report]] = {}
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
                fmt.mean_sd(_tps(r.vanilla)),
                fmt.mean_sd(_tps(r.speculative)),
                _rate(acc.rate if acc else None),
                _length(acc.mean_length if acc else None),
                fmt.ratio(None if r.speedup_detail is None else r.speedup_detail.ratio),
                _ci_text(r.speedup_detail),
                _p(r.speedup_detail),
                fmt.ratio(None if r.ceiling is None else r.ceiling.ceiling),
                fmt.percent(None if r.ceiling is None else r.ceiling.fraction_of_ceiling),
                speedup_call(r.speedup_detail),
                lossless_cell(r),
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
        "Lossless (T=0)",
    ]
    return Table(pair_label(group[0]), headers, rows, [True] * 11 + [False, False], highlight=highlight)


def _best_line(group: list[Report]) -> str:
    best = best_configuration(group)
    if best is None or best.speedup_detail is None:
        return "No significant speedup: no configuration's 95% interval lies above 1.0."
    return (
        f"Best: n_draft {best.config.n_draft} (p_min {best.config.draft_p_min:g}): "
        f"{fmt.ratio(best.speedup_detail.ratio)}, 95% CI {_ci_text(best.speedup_detail)}, "
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


def machines(reports: Sequence[Report]) -> list[str]:
    """The distinct machines of a matrix's reports, in first-seen order."""
    return list(dict.fromkeys(machine(r) for r in reports))


def machine_line(reports: Sequence[Report]) -> str:
    found = machines(reports)
    if len(found) == 1:
        return f"Machine: {found[0]}"
    return f"Machines: {len(found)} kinds; each table is measured on one of them (never averaged across them)"


def pair_notes(group: list[Report], *, name_machine: bool = False) -> list[str]:
    """The verdict on the group's best configuration, what else varies, and (`name_machine`,
    where the matrix ran on more than one kind of machine) the machine it was measured on."""
    notes = [_best_line(group)]
    if name_machine:
        notes.append(f"Measured on {machine(group[0])}.")
    varying = _varying(group)
    if varying:
        notes.append("These configurations also differ in: " + ", ".join(varying) + ".")
    return notes


def machine(report: Report) -> str:
    return dict(config(report))["Machine"]
