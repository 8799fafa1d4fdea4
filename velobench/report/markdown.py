"""A report as GitHub-flavoured Markdown: `render(report)`, `render_many(reports)` for a matrix."""

from __future__ import annotations

from collections.abc import Sequence

from velobench.errors import VelobenchError
from velobench.report.console import reference_text, speedup_lines, verdict_text
from velobench.report.tables import (
    acceptance_per_prompt,
    categories,
    config,
    group_pairs,
    lossless_lines,
    machine_line,
    machines,
    matrix_table,
    pair_notes,
    results,
    telemetry,
)
from velobench.report.warnings import text as warning_text
from velobench.results.schema import Report


def render(report: Report) -> str:
    """The report as GitHub-flavoured Markdown: configuration, results, speedup, verdict,
    categories, losslessness and warnings."""
    parts = ["# velobench: vanilla vs speculative decoding", ""]
    parts += [f"- **{k}:** `{v}`" if k.endswith("model") else f"- **{k}:** {v}" for k, v in config(report)]
    parts += ["", results(report).markdown(), ""]
    for name, text in speedup_lines(report):
        parts += [f"**{name}:** {text}", ""]
    parts += [f"**Verdict:** {verdict_text(report.speedup_detail)}", ""]
    cats = categories(report)
    if cats:
        parts += [cats.markdown(), ""]
    per_prompt = acceptance_per_prompt(report)
    if per_prompt is not None:
        parts += [per_prompt.markdown(), ""]
    tele = telemetry(report)
    if tele is not None:
        parts += [tele.markdown(), ""]
    lossless = lossless_lines(report)
    if lossless:
        parts += ["## Losslessness (temperature 0)", "", *(f"- {line}" for line in lossless), ""]
    if report.reference is not None:
        parts += ["## Agreement with llama-bench", "", reference_text(report.reference), ""]
    if report.warnings:
        parts += ["## Warnings", "", *(f"- `{w.code.value}`: {warning_text(w)}" for w in report.warnings), ""]
    return "\n".join(parts)


def render_many(reports: Sequence[Report]) -> str:
    """A matrix run in Markdown: a table per pair, configurations by n_draft, best one in bold."""
    if not reports:
        raise VelobenchError("no results to export")
    parts = ["# velobench: speedup vs n_draft", "", machine_line(reports), ""]
    several = len(machines(reports)) > 1
    for group in group_pairs(reports):
        parts += [matrix_table(group).markdown(), ""]
        parts += [*pair_notes(group, name_machine=several), ""]
    return "\n".join(parts)
