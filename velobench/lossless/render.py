"""Reports of a `velobench lossless` result: console, Markdown, JSON, HTML. Pure functions.

Every report leads with the one-line verdict (`verdict`): "NOT lossless" with where and how
sure, or "No difference found" with the smallest total variation the test would have seen
(80% power) and the samples needed for the requested one, so an absence of evidence is never
read as losslessness. Then the settings and one row per prompt (its most telling position).
`velobench.export` dispatches to them (`render_<format>`).
"""

from __future__ import annotations

import html

from rich.console import Console

from velobench.report import fmt
from velobench.report.tables import Table
from velobench.results.lossless import LosslessReport, PositionTest, SampledTest


def _tv(x: float | None) -> str:
    return "> 1 (too few samples)" if x is None else f"{x:.3f}"


def verdict(rep: LosslessReport) -> str:
    """The one-line answer (see the module docstring)."""
    test = rep.test
    if test is None or not test.tests:
        return "No verdict: no prompt was sampled in both arms."
    by_design = f" (lossy by design: {'; '.join(rep.lossy)})" if rep.lossy else ""
    n = f"N = {test.n_baseline}/{test.n_candidate} samples per prompt (vanilla/speculative)"
    if test.rejected and test.worst is not None:
        w = test.worst
        return (
            f"NOT lossless{by_design}: the output distributions differ at prompt {w.prompt_id}, "
            f"{w.unit} {w.position} (Holm p = {fmt.p_value(w.p_holm)}, observed TV {w.observed_tv:.2f}; {n})."
        )
    tv = test.detectable_tv_first
    seen = (
        f"this test detects a first-{_unit(test)} difference of TV >= {tv:.2f} with 80% probability"
        if tv is not None
        else "too few samples for 80% power against any difference"
    )
    need = ""
    if test.samples_needed is not None and (tv is None or tv > test.detect):
        need = f"; about {test.samples_needed} samples per prompt and arm would detect TV {test.detect:g}"
    return (
        f"No difference found{by_design} (smallest Holm p = {fmt.p_value(test.smallest_p_holm)}; {n}): "
        f"{seen}, smaller differences may remain{need}."
    )


def _unit(test: SampledTest) -> str:
    return test.tests[0].unit if test.tests else "token"


def setup_lines(rep: LosslessReport) -> list[str]:
    s, c = rep.settings, rep.config
    pair = f"{c.main_model} ← {c.draft_model}" if c.draft_model else f"{c.main_model} + {c.method.value}"
    lines = [
        f"Pair:        {pair} ({c.engine} engine)",
        f"Sampling:    temperature {c.temp:g}, top-p {s.top_p:g}, top-k {s.top_k}, {s.tokens} tokens, "
        f"{s.samples} samples per prompt and arm asked, seeds from {c.seed}",
        f"Prompts:     {len(rep.prompts)}" + (f" from {c.prompts}" if c.prompts else ""),
    ]
    if rep.elapsed_s is not None:
        stopped = " (stopped by the time bound)" if rep.stopped_by == "max-time" else ""
        lines.append(f"Time:        {fmt.duration(rep.elapsed_s)}{stopped}")
    if rep.test is not None:
        lines.append(f"Test:        {rep.test.method}, alpha {rep.test.alpha:g}")
        lines.append(
            f"Power:       80% for TV >= {_tv(rep.test.detectable_tv_first)} at the first {_unit(rep.test)}, "
            f">= {_tv(rep.test.detectable_tv_any)} at any tested position (least favourable shape)"
        )
    return lines


def _row(t: PositionTest) -> list[str]:
    return [
        t.prompt_id,
        f"{t.n_baseline}/{t.n_candidate}",
        f"{t.unit} {t.position}",
        str(t.categories),
        f"{t.observed_tv:.3f}",
        fmt.p_value(t.p_value),
        fmt.p_value(t.p_holm),
        t.method,
        _tv(t.detectable_tv),
    ]


def prompt_table(rep: LosslessReport) -> Table | None:
    """One row per prompt: its position with the smallest p, and its first position."""
    if rep.test is None or not rep.test.tests:
        return None
    rows = []
    for pid in dict.fromkeys(t.prompt_id for t in rep.test.tests):
        mine = [t for t in rep.test.tests if t.prompt_id == pid]
        first = min(mine, key=lambda t: t.position)
        worst = min(mine, key=lambda t: (t.p_value, t.position))
        rows.append(_row(first))
        if worst is not first:
            rows.append(_row(worst))
    headers = ["Prompt", "N", "Position", "Outcomes", "Observed TV", "p", "Holm p", "p by", "Detectable TV"]
    return Table(
        "Per prompt: the first position and the one with the smallest p",
        headers,
        rows,
        [False, True, False, True, True, True, True, False, True],
        caption="Detectable TV: the smallest total variation found with 80% probability at this N",
    )


def print_lossless(console: Console, rep: LosslessReport) -> None:
    console.print()
    for line in setup_lines(rep):
        console.print(line, markup=False)
    table = prompt_table(rep)
    if table is not None:
        console.print(table.rich())
    console.print(f"Verdict: {verdict(rep)}", markup=False)


def render_md(rep: LosslessReport) -> str:
    out = ["# velobench lossless", "", f"**{verdict(rep)}**", ""]
    out += [f"- {line}" for line in setup_lines(rep)]
    table = prompt_table(rep)
    if table is not None:
        out += ["", table.markdown()]
    if rep.status != "complete":
        out += ["", f"**This run is {rep.status}**" + (f": {rep.error}" if rep.error else "")]
    return "\n".join(out) + "\n"


def render_html(rep: LosslessReport) -> str:
    e = html.escape
    body = [
        "<h1>velobench lossless</h1>",
        f"<p><b>{e(verdict(rep))}</b></p>",
        f"<pre>{e(chr(10).join(setup_lines(rep)))}</pre>",
    ]
    table = prompt_table(rep)
    if table is not None:
        body.append(table.html())
    if rep.status != "complete":
        body.append(f"<p><b>This run is {e(rep.status)}</b>{': ' + e(rep.error) if rep.error else ''}</p>")
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>velobench lossless</title>'
        f"</head><body>{''.join(body)}</body></html>\n"
    )
