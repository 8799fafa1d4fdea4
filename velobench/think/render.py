"""Reports of a `velobench think` result: console, Markdown, CSV, JSON, HTML. Pure functions.

console  the configuration, the seed tool's summary (report.think_console), per problem
md       the same as Markdown tables
csv      one row per run (the measurements, the answer; not the text)
json     the result itself
html     one self-contained page: the summary, the large-model ratio per problem as bars, and
         the text of one speculative run coloured by which model wrote it (the run with the
         most interventions; text dropped after a trigger the server did not stop at is
         struck through)
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Callable

from velobench.errors import VelobenchError
from velobench.report.warnings import text as warning_text
from velobench.results.think import ProblemSummary, ThinkReport, ThinkRun
from velobench.think.console import render_think_summary

FORMAT_NAMES = ("console", "md", "csv", "json", "html")


def _num(x: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if x is None else fmt.format(x)


def setup_lines(rep: ThinkReport) -> list[str]:
    o, t = rep.config.run, rep.config.think
    s = t.sampling
    lines = [
        f"velobench think ({rep.timestamp}, status {rep.status})",
        f"  Large model: {o.large_model}",
        f"  Small model: {o.small_model}",
        f"  Engine:      {o.engine}; test mode {o.test_mode}",
        f"  Problems:    {len(rep.problems)} from {o.prompts}, {o.num_runs} run(s) each",
        f"  Sampling:    temperature {s.temperature:g}, top_p {s.top_p:g}, top_k {s.top_k}, seed {s.seed}; "
        f"max tokens {t.generation.max_tokens}, segment {t.segment.tokens} tokens",
        f"  Triggers:    {', '.join(t.triggers.words)}",
    ]
    if rep.wall_s is not None:
        lines.append(f"  Wall time:   {rep.wall_s:.1f} s for {len(rep.runs)} run(s)")
    return lines


def _problem_rows(rep: ThinkReport) -> list[ProblemSummary]:
    return rep.summary.problems if rep.summary is not None else []


PROBLEM_HEAD = ("problem", "large s", "spec s", "speedup", "large ratio", "large right", "spec right")


def _problem_cells(p: ProblemSummary) -> tuple[str, ...]:
    return (
        p.problem_id,
        _num(p.large_latency_s, "{:.1f}"),
        _num(p.spec_latency_s, "{:.1f}"),
        _num(p.speedup, "{:.2f}x"),
        _num(p.spec_large_ratio, "{:.0%}"),
        p.large_correct or "-",
        p.spec_correct or "-",
    )


def render_console(rep: ThinkReport) -> str:
    out = [*setup_lines(rep), ""]
    if rep.summary is not None:
        out.append(render_think_summary(rep.summary).rstrip("\n"))
        rows = [PROBLEM_HEAD, *(_problem_cells(p) for p in _problem_rows(rep))]
        widths = [max(len(r[i]) for r in rows) for i in range(len(PROBLEM_HEAD))]
        out += ["", "PER PROBLEM"]
        out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    else:
        out.append("no finished runs")
    if rep.status != "complete":
        out.append(f"note: this run is {rep.status}" + (f": {rep.error}" if rep.error else ""))
    return "\n".join(out) + "\n"


def _md_table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    esc: Callable[[str], str] = lambda c: c.replace("|", "\\|")  # noqa: E731
    return [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(esc(c) for c in r) + " |" for r in rows),
    ]


def render_md(rep: ThinkReport) -> str:
    s = rep.summary
    out = ["# velobench think", "", *(f"- {line.strip()}" for line in setup_lines(rep)[1:]), ""]
    if s is None:
        return "\n".join([*out, "No finished runs.", ""])
    rows: list[tuple[str, ...]] = []
    for m in (s.large, s.spec):
        if m is None:
            continue
        rows.append(
            (
                "large model alone" if m.mode == "large" else "speculative thinking",
                str(m.runs),
                _num(m.latency_s.mean if m.latency_s else None),
                _num(m.tokens_per_s.mean if m.tokens_per_s else None),
                _num(m.tokens.mean if m.tokens else None, "{:.0f}"),
                _num(m.large_ratio.mean if m.large_ratio else None, "{:.1%}"),
                _num(m.interventions.mean if m.interventions else None, "{:.1f}"),
                f"{m.accuracy.k}/{m.accuracy.n}" if m.accuracy else "-",
            )
        )
    head = ("mode", "runs", "latency s", "tokens/s", "tokens", "large ratio", "interventions", "right")
    out += ["## Summary", "", *_md_table(head, rows), ""]
    if s.speedup is not None:
        r = s.speedup
        ci = (
            f" (95% CI {r.ci95_low:.2f}–{r.ci95_high:.2f})"
            if r.ci95_low is not None and r.ci95_high is not None
            else ""
        )
        p = f", Welch p = {r.p_value:.3g}" if r.p_value is not None else ""
        out.append(f"- **Speedup** (mean latency large ÷ spec): {r.ratio:.2f}x{ci}{p}")
    if s.speedup_paired is not None:
        out.append(
            f"- Paired speedup (geometric mean over {s.speedup_paired.n_pairs} runs): {s.speedup_paired.ratio:.2f}x"
        )
    if s.throughput_ratio is not None:
        out.append(f"- Throughput ratio (spec ÷ large tokens/s): {s.throughput_ratio.ratio:.2f}x")
    if s.large_token_reduction is not None:
        out.append(f"- Large-model token reduction: {s.large_token_reduction:.1%}")
    if s.accuracy is not None:
        a = s.accuracy
        out.append(
            f"- Accuracy: large {a.large.k}/{a.large.n}, spec {a.spec.k}/{a.spec.n} "
            f"(difference {a.difference:+.0%}, {a.method} p = {a.p_value:.3g})"
        )
    out += [
        "",
        "## Per problem",
        "",
        *_md_table(PROBLEM_HEAD, [_problem_cells(p) for p in _problem_rows(rep)]),
    ]
    if rep.warnings:
        out += ["", "## Warnings", "", *(f"- {warning_text(w)}" for w in rep.warnings)]
    if rep.status != "complete":
        out += ["", f"**This run is {rep.status}**" + (f": {rep.error}" if rep.error else "")]
    return "\n".join(out) + "\n"


CSV_FIELDS = (
    "problem_id",
    "run",
    "mode",
    "seed",
    "latency_s",
    "tokens",
    "small_tokens",
    "large_tokens",
    "tokens_per_s",
    "large_ratio",
    "interventions",
    "stopped_by",
    "answer",
    "reference",
    "correct",
    "error",
)


def render_csv(rep: ThinkReport) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for r in rep.runs:
        row = r.model_dump(include=set(CSV_FIELDS))
        w.writerow(["" if row[f] is None else row[f] for f in CSV_FIELDS])
    return buf.getvalue()


def render_json(rep: ThinkReport) -> str:
    return rep.model_dump_json(indent=2) + "\n"


def shown_run(rep: ThinkReport) -> ThinkRun | None:
    """The run the HTML page shows: the finished speculative run with the most interventions."""
    spec = [r for r in rep.runs if r.mode == "spec" and r.error is None]
    if not spec:
        spec = [r for r in rep.runs if r.error is None]
    return max(spec, key=lambda r: r.interventions, default=None)


def coloured_text(run: ThinkRun) -> str:
    """The run's text as HTML spans, one per segment, classed by writer."""
    parts = []
    for i, seg in enumerate(run.segments):
        title = f"segment {i + 1}: {seg.writer}, {seg.tokens} tokens, {seg.seconds:.2f} s, {seg.finish}"
        if seg.trigger:
            title += f", trigger {seg.trigger!r}"
        parts.append(
            f'<span class="{seg.writer}" title="{html.escape(title)}">{html.escape(seg.text)}</span>'
        )
        if seg.discarded:
            parts.append(
                f'<span class="discarded" title="returned past a trigger, dropped">{html.escape(seg.discarded)}</span>'
            )
    return "".join(parts)


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70em; margin: 2em auto; color: #222; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
table { border-collapse: collapse; } td, th { padding: .2em .6em; border-bottom: 1px solid #ddd; }
.bar { background: #d9534f; height: .9em; display: inline-block; vertical-align: middle; }
.text { white-space: pre-wrap; font-family: ui-monospace, monospace; background: #fafafa; padding: 1em; }
.small { background: #dbeafe; } .large { background: #fde2e1; }
.discarded { color: #999; text-decoration: line-through; }
"""


def render_html(rep: ThinkReport) -> str:
    e = html.escape
    body = [f"<h1>velobench think</h1><pre>{e(chr(10).join(setup_lines(rep)))}</pre>"]
    if rep.summary is not None:
        body.append(f"<h2>Summary</h2><pre>{e(render_think_summary(rep.summary))}</pre>")
        rows = []
        for p in _problem_rows(rep):
            cells = "".join(f"<td>{e(c)}</td>" for c in _problem_cells(p))
            width = 0.0 if p.spec_large_ratio is None else 10 * p.spec_large_ratio
            rows.append(f'<tr>{cells}<td><span class="bar" style="width:{width:.2f}em"></span></td></tr>')
        head = "".join(f"<th>{e(h)}</th>" for h in PROBLEM_HEAD)
        body.append(
            "<h2>Large-model ratio per problem</h2>"
            f"<table><tr>{head}<th>large ratio</th></tr>{''.join(rows)}</table>"
        )
    run = shown_run(rep)
    if run is not None:
        body.append(
            f"<h2>Run {e(run.problem_id)} #{run.run + 1} ({e(run.mode)}): who wrote what</h2>"
            f'<p><span class="small">small model</span> <span class="large">large model</span> '
            f"&nbsp;{run.tokens} tokens, large ratio {_num(run.large_ratio, '{:.0%}')}, "
            f"{run.interventions} interventions, answer {e(repr(run.answer))} "
            f"({'right' if run.correct else 'wrong' if run.correct is False else 'no reference'})</p>"
            f'<div class="text">{coloured_text(run)}</div>'
        )
    if rep.status != "complete":
        body.append(f"<p><b>This run is {e(rep.status)}</b>{': ' + e(rep.error) if rep.error else ''}</p>")
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>velobench think</title>'
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )


def render(rep: ThinkReport, fmt: str) -> str:
    """`rep` in `fmt`: console, md, csv, json or html."""
    renderers: dict[str, Callable[[ThinkReport], str]] = {
        "console": render_console,
        "md": render_md,
        "csv": render_csv,
        "json": render_json,
        "html": render_html,
    }
    if fmt not in renderers:
        raise VelobenchError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMAT_NAMES)}")
    return renderers[fmt](rep)
