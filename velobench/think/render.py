"""Reports of a `velobench think` result: console, Markdown, CSV, JSON, HTML. Pure functions.

console  the configuration, the seed tool's summary, per problem (think.console, the one
         console renderer)
md       the same as Markdown tables
csv      one row per run (the measurements, the answer; not the text)
json     the result itself
html     one self-contained page: the summary, the large-model ratio per problem as bars, and
         the text of one speculative run coloured by which model wrote it (the run with the
         most interventions; text dropped after a trigger the server did not stop at is
         struck through)

`velobench.export` dispatches to them (`render_<format>`).
"""

from __future__ import annotations

import csv
import html
import io

from velobench.report import fmt
from velobench.report.tables import Table
from velobench.report.warnings import text as warning_text
from velobench.results.think import ThinkReport, ThinkRun
from velobench.think.console import (
    paired_text,
    problem_cells,
    problem_table,
    render_think_summary,
    setup_lines,
)


def summary_table(rep: ThinkReport) -> Table | None:
    """Per mode: runs, mean latency, tokens/s, tokens, large-model share, interventions, accuracy."""
    s = rep.summary
    if s is None:
        return None
    rows: list[list[str]] = []
    for m in (s.large, s.spec):
        if m is None:
            continue
        rows.append(
            [
                "large model alone" if m.mode == "large" else "speculative thinking",
                str(m.runs),
                fmt.number(m.latency_s.mean if m.latency_s else None),
                fmt.number(m.tokens_per_s.mean if m.tokens_per_s else None),
                fmt.number(m.tokens.mean if m.tokens else None, 0),
                fmt.percent(m.large_ratio.mean if m.large_ratio else None, 1),
                fmt.number(m.interventions.mean if m.interventions else None, 1),
                f"{m.accuracy.k}/{m.accuracy.n}" if m.accuracy else "-",
            ]
        )
    head = ["mode", "runs", "latency s", "tokens/s", "tokens", "large ratio", "interventions", "right"]
    return Table("Summary", head, rows, [False] + [True] * (len(head) - 1))


def render_md(rep: ThinkReport) -> str:
    s = rep.summary
    out = ["# velobench think", "", *(f"- {line.strip()}" for line in setup_lines(rep)[1:]), ""]
    table = summary_table(rep)
    if s is None or table is None:
        return "\n".join([*out, "No finished runs.", ""])
    out += [table.markdown(), ""]
    pr = s.speedup_paired
    if pr is not None and pr.n_pairs >= 2:
        out.append(f"- **Speedup** (paired over {pr.n_pairs} problem runs, large ÷ spec): {paired_text(pr)}")
        if s.speedup is not None:
            out.append(f"- Ratio of mean latencies (large ÷ spec): {fmt.ratio_ci(s.speedup)}")
    elif s.speedup is not None:
        out.append(f"- **Speedup** (mean latency large ÷ spec): {fmt.ratio_ci(s.speedup)}")
    if s.throughput_ratio is not None:
        out.append(f"- Throughput ratio (spec ÷ large tokens/s): {fmt.ratio(s.throughput_ratio.ratio)}")
    if s.large_token_reduction is not None:
        out.append(f"- Large-model token reduction: {fmt.percent(s.large_token_reduction, 1)}")
    if s.accuracy is not None:
        a = s.accuracy
        out.append(
            f"- Accuracy: large {a.large.k}/{a.large.n}, spec {a.spec.k}/{a.spec.n} "
            f"(difference {a.difference:+.0%}, {a.method} p = {fmt.p_value(a.p_value)})"
        )
    out += ["", problem_table(rep).markdown()]
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


def _bar(share: float | None) -> str:
    """A bar 10 em long at share 1 (trusted HTML for the Table's raw column)."""
    width = 0.0 if share is None else 10 * share
    return f'<span class="bar" style="width:{width:.2f}em"></span>'


def render_html(rep: ThinkReport) -> str:
    e = html.escape
    body = [f"<h1>velobench think</h1><pre>{e(chr(10).join(setup_lines(rep)))}</pre>"]
    if rep.summary is not None:
        body.append(f"<h2>Summary</h2><pre>{e(render_think_summary(rep.summary))}</pre>")
        problems = problem_table(rep)
        bars = Table(
            title="Large-model ratio per problem",
            headers=[*problems.headers, "large ratio"],
            rows=[
                [*problem_cells(p), _bar(p.spec_large_ratio)]
                for p in (rep.summary.problems if rep.summary is not None else [])
            ],
            right=[False] * (len(problems.headers) + 1),
            raw={len(problems.headers)},
        )
        body.append(bars.html())
    run = shown_run(rep)
    if run is not None:
        body.append(
            f"<h2>Run {e(run.problem_id)} #{run.run + 1} ({e(run.mode)}): who wrote what</h2>"
            f'<p><span class="small">small model</span> <span class="large">large model</span> '
            f"&nbsp;{run.tokens} tokens, large ratio {fmt.percent(run.large_ratio)}, "
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
