"""`velobench think` on the console, as plain text: the one console renderer of think results.

`render_console(report)`: the configuration (`setup_lines`), the summary, the per-problem table.
`render_think_summary(summary)`: the summary in the seed tool's shape:

    1. LATENCY (seconds)           Large Model | Spec Thinking | Speedup
    2. THROUGHPUT (tokens/second)  Large Model | Spec Thinking | Improvement
    3. TOKEN GENERATION            Large Model | Spec Thinking
    4. LARGE MODEL USAGE RATIO     Large Model | Spec Thinking
    5. ACCURACY                    (velobench's addition: both, and the test of the difference)
    OVERALL SPEEDUP / THROUGHPUT IMPROVEMENT / LARGE MODEL TOKEN REDUCTION, with intervals

Pure functions of a saved result: `velobench report` can print them again from a result file.
Numbers are spelled by report.fmt, tables written by report.tables.Table.
"""

from __future__ import annotations

from collections.abc import Callable

from velobench.report import fmt
from velobench.report.tables import Table
from velobench.report.warnings import text as warning_text
from velobench.results.measures import Ratio, Summary
from velobench.results.think import ModeSummary, PairedRatio, ProblemSummary, ThinkReport, ThinkSummary

WIDTH = 80


def _cell(s: Summary | None, pick: Callable[[Summary], float | None], pattern: str) -> str:
    if s is None:
        return "-"
    v = pick(s)
    return "-" if v is None else pattern.format(v)


def _ratio_cell(a: Summary | None, b: Summary | None, pick: Callable[[Summary], float | None]) -> str:
    if a is None or b is None:
        return ""
    x, y = pick(a), pick(b)
    return f"{x / y:.2f}x" if x is not None and y else ""


def _table(
    title: str,
    large: Summary | None,
    spec: Summary | None,
    pattern: str,
    last: str | None,
    ratio: Callable[[Summary | None, Summary | None, Callable[[Summary], float | None]], str] | None,
) -> list[str]:
    lines = [title, "-" * WIDTH]
    head = f"{'Metric':<20} {'Large Model':>20} {'Spec Thinking':>20}"
    lines += [head + (f" {last:>17}" if last else ""), "-" * WIDTH]
    rows: list[tuple[str, Callable[[Summary], float | None]]] = [
        ("Mean", lambda s: s.mean),
        ("Median", lambda s: s.median),
        ("Std Dev", lambda s: s.stddev),
        ("Min", lambda s: s.min),
        ("Max", lambda s: s.max),
    ]
    for name, pick in rows:
        row = f"{name:<20} {_cell(large, pick, pattern):>20} {_cell(spec, pick, pattern):>20}"
        if ratio is not None and name in ("Mean", "Median"):
            row += f" {ratio(large, spec, pick):>17}"
        lines.append(row.rstrip())
    return [*lines, ""]


def _interval(r: Ratio | None) -> str:
    return fmt.ratio_ci(r)


def paired_text(pr: PairedRatio) -> str:
    """`2.00x (95% CI 1.80–2.22), paired t p = 0.0012`, through the one ratio formatter."""
    as_ratio = Ratio(
        ratio=pr.ratio,
        stddev=None,
        ci95_low=pr.ci95_low,
        ci95_high=pr.ci95_high,
        ci_method=fmt.PAIRED,
        p_value=pr.p_value,
        n_a=pr.n_pairs,
        n_b=pr.n_pairs,
    )
    return fmt.ratio_ci(as_ratio)


def _pick(m: ModeSummary | None, what: str) -> Summary | None:
    return None if m is None else getattr(m, what)


def render_think_summary(summary: ThinkSummary) -> str:
    """The seed tool's console summary, with intervals, accuracy and warnings added."""
    lg, sp = summary.large, summary.spec
    out = ["=" * WIDTH, "BENCHMARK RESULTS SUMMARY", "=" * WIDTH, ""]
    out += _table(
        "1. LATENCY (seconds)",
        _pick(lg, "latency_s"),
        _pick(sp, "latency_s"),
        "{:.2f}s",
        "Speedup",
        lambda a, b, pick: _ratio_cell(a, b, pick),
    )
    out += _table(
        "2. THROUGHPUT (tokens/second)",
        _pick(lg, "tokens_per_s"),
        _pick(sp, "tokens_per_s"),
        "{:.2f} t/s",
        "Improvement",
        lambda a, b, pick: _ratio_cell(b, a, pick),
    )
    out += _table("3. TOKEN GENERATION", _pick(lg, "tokens"), _pick(sp, "tokens"), "{:.0f}", None, None)
    out += ["4. LARGE MODEL USAGE RATIO", "-" * WIDTH]
    out += [f"{'Metric':<20} {'Large Model':>20} {'Spec Thinking':>20}", "-" * WIDTH]
    lr, sr = _pick(lg, "large_ratio"), _pick(sp, "large_ratio")
    out.append(
        f"{'Mean Ratio':<20} {_cell(lr, lambda s: s.mean, '{:.1%}'):>20} {_cell(sr, lambda s: s.mean, '{:.1%}'):>20}"
    )
    si = _pick(sp, "interventions")
    out.append(f"{'Interventions/run':<20} {'-':>20} {_cell(si, lambda s: s.mean, '{:.1f}'):>20}")
    out.append("")
    out += ["5. ACCURACY", "-" * WIDTH]
    acc = [(m.mode, m.accuracy) for m in (lg, sp) if m is not None and m.accuracy is not None]
    if not acc:
        out.append("no reference answers")
    for mode, a in acc:
        label = "Large Model" if mode == "large" else "Spec Thinking"
        ci = fmt.ci(a.ci95_low, a.ci95_high, digits=0, pct=True)
        out.append(f"{label:<20} {a.k}/{a.n} = {fmt.percent(a.rate)} ({ci})")
    if summary.accuracy is not None:
        t = summary.accuracy
        out.append(f"{'Difference':<20} {t.difference:+.0%} ({t.method}, p = {fmt.p_value(t.p_value)})")
    out.append("")
    out += ["=" * WIDTH]
    pr = summary.speedup_paired
    if pr is not None and pr.n_pairs >= 2:  # the headline: paired per problem and run
        out.append(f"OVERALL SPEEDUP (paired over {pr.n_pairs} problem runs): {paired_text(pr)}")
        out.append(f"RATIO OF MEAN LATENCIES: {_interval(summary.speedup)}")
    else:
        out.append(f"OVERALL SPEEDUP: {_interval(summary.speedup)}")
    out.append(f"THROUGHPUT IMPROVEMENT: {_interval(summary.throughput_ratio)}")
    red = summary.large_token_reduction
    out.append(f"LARGE MODEL TOKEN REDUCTION: {fmt.percent(red, 1)}")
    out.append("=" * WIDTH)
    for w in summary.warnings:
        out.append(f"warning: {warning_text(w)}")
    return "\n".join(out) + "\n"


def setup_lines(rep: ThinkReport) -> list[str]:
    """The configuration: models, engine, problems, sampling, triggers, wall time."""
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


PROBLEM_HEAD = ("problem", "large s", "spec s", "speedup", "large ratio", "large right", "spec right")


def problem_cells(p: ProblemSummary) -> list[str]:
    """One problem's row: mean latencies, speedup, the spec runs' large-model share, accuracy."""
    return [
        p.problem_id,
        fmt.number(p.large_latency_s, 1),
        fmt.number(p.spec_latency_s, 1),
        fmt.ratio(p.speedup),
        fmt.percent(p.spec_large_ratio),
        p.large_correct or "-",
        p.spec_correct or "-",
    ]


def problem_table(rep: ThinkReport) -> Table:
    """Per problem (PROBLEM_HEAD), one row each."""
    problems = rep.summary.problems if rep.summary is not None else []
    return Table(
        title="Per problem",
        headers=list(PROBLEM_HEAD),
        rows=[problem_cells(p) for p in problems],
        right=[False] * len(PROBLEM_HEAD),
    )


def render_console(rep: ThinkReport) -> str:
    """The configuration, the summary and the per-problem table, as `velobench report` prints them."""
    out = [*setup_lines(rep), ""]
    if rep.summary is not None:
        out.append(render_think_summary(rep.summary).rstrip("\n"))
        out += ["", "PER PROBLEM", *problem_table(rep).text()]
    else:
        out.append("no finished runs")
    if rep.status != "complete":
        out.append(f"note: this run is {rep.status}" + (f": {rep.error}" if rep.error else ""))
    return "\n".join(out) + "\n"
