"""The console summary of `velobench think`, in the seed tool's shape, as plain text.

    1. LATENCY (seconds)           Large Model | Spec Thinking | Speedup
    2. THROUGHPUT (tokens/second)  Large Model | Spec Thinking | Improvement
    3. TOKEN GENERATION            Large Model | Spec Thinking
    4. LARGE MODEL USAGE RATIO     Large Model | Spec Thinking
    5. ACCURACY                    (velobench's addition: both, and the test of the difference)
    OVERALL SPEEDUP / THROUGHPUT IMPROVEMENT / LARGE MODEL TOKEN REDUCTION, with intervals

A pure function of a ThinkSummary: `velobench report` can print it again from a result file.
"""

from __future__ import annotations

from collections.abc import Callable

from velobench.report.warnings import text as warning_text
from velobench.results.measures import Ratio, Summary
from velobench.results.think import ModeSummary, ThinkSummary

WIDTH = 80


def _cell(s: Summary | None, pick: Callable[[Summary], float | None], fmt: str) -> str:
    if s is None:
        return "-"
    v = pick(s)
    return "-" if v is None else fmt.format(v)


def _ratio_cell(a: Summary | None, b: Summary | None, pick: Callable[[Summary], float | None]) -> str:
    if a is None or b is None:
        return ""
    x, y = pick(a), pick(b)
    return f"{x / y:.2f}x" if x is not None and y else ""


def _table(
    title: str,
    large: Summary | None,
    spec: Summary | None,
    fmt: str,
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
        row = f"{name:<20} {_cell(large, pick, fmt):>20} {_cell(spec, pick, fmt):>20}"
        if ratio is not None and name in ("Mean", "Median"):
            row += f" {ratio(large, spec, pick):>17}"
        lines.append(row.rstrip())
    return [*lines, ""]


def _interval(r: Ratio | None) -> str:
    if r is None:
        return "-"
    ci = (
        f" (95% CI {r.ci95_low:.2f}-{r.ci95_high:.2f})"
        if r.ci95_low is not None and r.ci95_high is not None
        else ""
    )
    p = f", Welch p = {r.p_value:.3g}" if r.p_value is not None else ""
    return f"{r.ratio:.2f}x{ci}{p}"


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
        out.append(f"{label:<20} {a.k}/{a.n} = {a.rate:.0%} (95% CI {a.ci95_low:.0%}-{a.ci95_high:.0%})")
    if summary.accuracy is not None:
        t = summary.accuracy
        out.append(f"{'Difference':<20} {t.difference:+.0%} ({t.method}, p = {t.p_value:.3g})")
    out.append("")
    out += ["=" * WIDTH]
    out.append(f"OVERALL SPEEDUP: {_interval(summary.speedup)}")
    if summary.speedup_paired is not None:
        pr = summary.speedup_paired
        ci = (
            f" (95% CI {pr.ci95_low:.2f}-{pr.ci95_high:.2f})"
            if pr.ci95_low is not None and pr.ci95_high is not None
            else ""
        )
        out.append(f"PAIRED SPEEDUP (geometric mean over {pr.n_pairs} problem runs): {pr.ratio:.2f}x{ci}")
    out.append(f"THROUGHPUT IMPROVEMENT: {_interval(summary.throughput_ratio)}")
    red = summary.large_token_reduction
    out.append(f"LARGE MODEL TOKEN REDUCTION: {'-' if red is None else f'{red:.1%}'}")
    out.append("=" * WIDTH)
    for w in summary.warnings:
        out.append(f"warning: {warning_text(w)}")
    return "\n".join(out) + "\n"
