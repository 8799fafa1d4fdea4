"""Compare two load results (A, then B), mode by mode at every level both ran.

Per (mode, level): output tokens/s on the levels' batch throughputs (the sub-window means stored
in each summary), and TTFT, TPOT and e2e latency on the per-request values of the measure
windows (from each result's raw records, where the JSONL is beside it). Each metric as in
`analysis.compare`: difference with a Welch interval, ratio b / a with Fieller's interval,
Welch's two-sided p; a difference counts only at p < 0.05.
"""

from __future__ import annotations

from collections.abc import Sequence

from velobench.analysis import compare
from velobench.analysis.compare import Comparison, MetricComparison, Regression, _from_samples, differences
from velobench.errors import VelobenchError
from velobench.load.analysis import _latencies
from velobench.results.load import LoadReport, Records

LATENCIES = (("TTFT", "ttft"), ("TPOT", "tpot"), ("e2e", "e2e"))


def _differences(a: LoadReport, b: LoadReport) -> list[str]:
    """Settings (run and load options) and machine facts that differ: `field: A → B`."""
    return differences(
        [
            ("", a.config.model_dump(mode="json"), b.config.model_dump(mode="json")),
            ("load.", a.load.model_dump(mode="json"), b.load.model_dump(mode="json")),
        ],
        a.environment,
        b.environment,
    )


def compare_load(
    a: LoadReport,
    b: LoadReport,
    records_a: Records | None,
    records_b: Records | None,
    *,
    names: Sequence[str] = ("A", "B"),
) -> Comparison:
    """B against A at every (mode, level) both finished. Latencies need both results' records
    (None: throughput only, and the differences say so). Raises VelobenchError when the two
    results share no measured level."""
    if a.load.profile != b.load.profile:
        raise VelobenchError(
            f"A is a {a.load.profile} run and B a {b.load.profile} run: their levels cannot be compared"
        )
    unit = "c" if a.load.profile == "concurrency" else "rate"
    metrics: list[MetricComparison] = []
    for mode, ma in a.modes.items():
        for la in ma.levels:
            lb = b.level(mode, la.level)
            if lb is None or la.summary is None or lb.summary is None:
                continue
            where = f"{mode} {unit}={la.level:g}"
            ta, tb = la.summary.output_tok_s_batches, lb.summary.output_tok_s_batches
            if ta and tb:
                metrics.append(_from_samples(f"{where} output tok/s", "tok/s", ta, tb, True))
            if records_a is None or records_b is None:
                continue
            for name, key in LATENCIES:
                xa = _latencies(records_a.get((mode, la.level), []), key)
                xb = _latencies(records_b.get((mode, la.level), []), key)
                if xa and xb:
                    metrics.append(_from_samples(f"{where} {name}", "ms", xa, xb, False))
    if not metrics:
        raise VelobenchError("the two load results have no measured level in common: nothing to compare")
    diffs = _differences(a, b)
    if records_a is None or records_b is None:
        diffs.append("latencies not compared: a records JSONL is missing beside a result")
    return Comparison(a=names[0], b=names[1], metrics=metrics, differences=diffs)


def headline(comp: Comparison) -> MetricComparison | None:
    """What a regression gate watches: speculative output tok/s at the highest level compared (else vanilla's)."""
    for mode in ("speculative", "vanilla"):
        found = [
            m for m in comp.metrics if m.metric.startswith(f"{mode} ") and m.metric.endswith(" output tok/s")
        ]
        if found:
            return found[-1]
    return None


def regression(comp: Comparison, fail_if_slower_pct: float) -> Regression | None:
    """`analysis.compare.regression` on the headline above: slower % = (a − b) / a · 100, beyond
    the allowed percentage AND significant (Welch p < 0.05)."""
    return compare.regression(comp, fail_if_slower_pct, pick=headline)
