"""A report as GitHub-flavoured Markdown: `render(report)`, `render_many(reports)` for a matrix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from velobench.analysis.verdict import verdict
from velobench.errors import VelobenchError
from velobench.report.console import speedup_text
from velobench.results.schema import Report

if TYPE_CHECKING:
    pass
from velobench.report.tables import (
    Table,
    categories,
    config,
    group_pairs,
    lossless_lines,
    machine,
    matrix_table,
    pair_notes,
    results,
    telemetry,
)
from velobench.report.warnings import text as warning_text


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(t: Table, heading: str = "##") -> str:
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


def render(report: Report) -> str:
    """The report as GitHub-flavoured Markdown: configuration, results, speedup, verdict,
    categories, losslessness and warnings."""
    parts = ["# velobench: vanilla vs speculative decoding", ""]
    parts += [f"- **{k}:** `{v}`" if k.endswith("model") else f"- **{k}:** {v}" for k, v in config(report)]
    parts += ["", _md_table(results(report)), ""]
    if report.speedup_detail is not None:
        parts += [f"**Speedup:** {speedup_text(report.speedup_detail)}", ""]
    parts += [f"**Verdict:** {verdict(report.speedup_detail)}", ""]
    cats = categories(report)
    if cats:
        parts += [_md_table(cats), ""]
    tele = telemetry(report)
    if tele is not None:
        parts += [_md_table(tele), ""]
    lossless = lossless_lines(report)
    if lossless:
        parts += ["## Losslessness (temperature 0)", "", *(f"- {line}" for line in lossless), ""]
    if report.warnings:
        parts += ["## Warnings", "", *(f"- `{w.code.value}`: {warning_text(w)}" for w in report.warnings), ""]
    return "\n".join(parts)


def render_many(reports: Sequence[Report]) -> str:
    """A matrix run in Markdown: a table per pair, configurations by n_draft, best one in bold."""
    if not reports:
        raise VelobenchError("no results to export")
    parts = ["# velobench: speedup vs n_draft", "", f"Machine: {machine(reports[0])}", ""]
    for group in group_pairs(reports):
        parts += [_md_table(matrix_table(group)), ""]
        parts += [*pair_notes(group), ""]
    return "\n".join(parts)
