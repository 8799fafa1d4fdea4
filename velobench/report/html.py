"""A report as one self-contained HTML page: tables, verdict, warnings and embedded plots."""

from __future__ import annotations

import html
from collections.abc import Sequence

from velobench.errors import VelobenchError
from velobench.report.console import reference_text, speedup_lines, verdict_text
from velobench.report.plots import (
    plot_acceptance_histogram,
    plot_categories,
    plot_power,
    plot_speedup,
    plot_speedup_vs_n_draft,
    plot_tokens_per_second,
)
from velobench.report.tables import (
    acceptance_per_prompt,
    categories,
    config,
    group_pairs,
    lossless_lines,
    machine_line,
    machines,
    matrix_table,
    pair_label,
    pair_notes,
    results,
    telemetry,
)
from velobench.report.warnings import text as warning_text
from velobench.results.schema import Report

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


def _img(png: str | None, alt: str) -> list[str]:
    return [] if png is None else [f'<p><img src="data:image/png;base64,{png}" alt="{_e(alt)}"></p>']


def _page(title: str, body: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def render(report: Report) -> str:
    """One self-contained page: configuration, tables, speedup, verdict, warnings, and plots
    (tokens/s per mode, acceptance per category, speedup with its 95% interval)."""
    title = "velobench: vanilla vs speculative decoding"
    body = [f"<h1>{_e(title)}</h1>", "<ul>"]
    body += [f"<li><strong>{_e(k)}:</strong> {_e(v)}</li>" for k, v in config(report)]
    body += ["</ul>", results(report).html()]
    for name, text in speedup_lines(report):
        body.append(f"<p><strong>{_e(name)}:</strong> {_e(text)}</p>")
    body.append(f'<p class="verdict">Verdict: {_e(verdict_text(report.speedup_detail))}</p>')
    body += _img(plot_tokens_per_second(report), "tokens/s per iteration, per mode")
    body += _img(plot_speedup(report), "speedup with its 95% interval")
    tele = telemetry(report)
    if tele is not None:
        body.append(tele.html())
        body += _img(plot_power(report), "power over time, first measured iteration of each mode")
    cats = categories(report)
    if cats:
        body.append(cats.html())
        body += _img(plot_categories(report), "acceptance rate and mean acceptance length per category")
    per_prompt = acceptance_per_prompt(report)
    if per_prompt is not None:
        body.append(per_prompt.html())
        body += _img(plot_acceptance_histogram(report), "prompts per acceptance-rate bucket")
    if report.reference is not None:
        body += ["<h2>Agreement with llama-bench</h2>", f"<p>{_e(reference_text(report.reference))}</p>"]
    lossless = lossless_lines(report)
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
            f'<li class="warning"><code>{_e(w.code.value)}</code>: {_e(warning_text(w))}</li>'
            for w in report.warnings
        ]
        body.append("</ul>")
    return _page(title, body)


def render_many(reports: Sequence[Report]) -> str:
    """A matrix run on one page: per pair a table (best configuration highlighted), the
    verdict on the best, and a speedup-vs-n_draft plot with 95% error bars."""
    if not reports:
        raise VelobenchError("no results to export")
    title = "velobench: speedup vs n_draft"
    body = [f"<h1>{_e(title)}</h1>", f"<p>{_e(machine_line(reports))}</p>"]
    several = len(machines(reports)) > 1
    for group in group_pairs(reports):
        body.append(matrix_table(group).html())
        notes = pair_notes(group, name_machine=several)
        body.append(f'<p class="verdict">{_e(notes[0])}</p>')
        body += [f"<p>{_e(n)}</p>" for n in notes[1:]]
        body += _img(plot_speedup_vs_n_draft(group), f"speedup vs n_draft, {pair_label(group[0])}")
    return _page(title, body)
