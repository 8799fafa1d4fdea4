"""Compare two result files (A, then B): did B get faster or slower, and is it significant?

Every metric is compared on its raw per-iteration samples: the difference of means b − a with
a Welch interval, the ratio b / a with Fieller's interval (`stats.ratio_of_means`), and
Welch's two-sided t-test. A difference counts only at p < 0.05. The speedup is compared as
each run's verdict used it: paired estimates on the log scale where both runs have pairs, else
the ratios of means.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from velobench.analysis import stats
from velobench.errors import VelobenchError
from velobench.results.environment import Environment
from velobench.results.schema import ModeResult, Report

ALPHA = 0.05

Verdict = Literal[
    "faster", "slower", "higher", "lower", "no significant difference at 95%", "too few samples to test"
]


class MetricComparison(BaseModel):
    """One metric in A and B. `a`, `b`: means of the samples (speedup: the reports' ratios)."""

    model_config = ConfigDict(extra="forbid")

    metric: str
    unit: str
    higher_is_better: bool
    a: float
    b: float
    n_a: int
    n_b: int
    difference: float
    difference_ci95_low: float | None
    difference_ci95_high: float | None
    ratio: float | None
    ratio_ci95_low: float | None
    ratio_ci95_high: float | None
    ratio_ci_method: str | None
    p_value: float | None
    verdict: Verdict


class Regression(BaseModel):
    """What the regression gate found: B's headline `metric` is `slower_pct` percent slower than
    A's (significantly), beyond the `allowed_pct` (report.compare.regression_text words it)."""

    model_config = ConfigDict(extra="forbid")

    metric: MetricComparison
    slower_pct: float
    allowed_pct: float


class Comparison(BaseModel):
    """A against B, metric by metric, with the settings that differ between the two runs."""

    model_config = ConfigDict(extra="forbid")

    a: str
    b: str
    metrics: list[MetricComparison]
    differences: list[str]


def _welch_interval(sa: stats.Summary, sb: stats.Summary) -> tuple[float | None, float | None]:
    """95% interval of mean(b) − mean(a): d ± t_{0.975,df}·se, se = sqrt(s_a²/n_a + s_b²/n_b),
    df by Welch–Satterthwaite; [d, d] when both variances are 0; None when n < 2."""
    d = sb.mean - sa.mean
    if sa.stddev is None or sb.stddev is None:
        return None, None
    va, vb = sa.stddev**2 / sa.n, sb.stddev**2 / sb.n
    if va + vb == 0:
        return d, d
    half = stats.t_quantile(stats.welch_df([(va, sa.n), (vb, sb.n)])) * math.sqrt(va + vb)
    return d - half, d + half


def _call(p: float | None, improved: bool, speed: bool) -> Verdict:
    if p is None:
        return "too few samples to test"
    if p >= ALPHA:
        return "no significant difference at 95%"
    if speed:
        return "faster" if improved else "slower"
    return "higher" if improved else "lower"


def _from_samples(
    metric: str, unit: str, a: Sequence[float], b: Sequence[float], higher_is_better: bool, speed: bool = True
) -> MetricComparison:
    sa, sb = stats.summarize(a), stats.summarize(b)
    ratio: stats.Ratio | None = None
    p: float | None = None
    if sa.mean != 0:
        ratio = stats.ratio_of_means(b, a)
        p = ratio.p_value
    elif sb.mean != 0:  # Welch's test is symmetric: take p from a / b
        p = stats.ratio_of_means(a, b).p_value
    elif sa.n > 1 and sb.n > 1:  # all samples zero in both
        p = 1.0
    lo, hi = _welch_interval(sa, sb)
    improved = sb.mean > sa.mean if higher_is_better else sb.mean < sa.mean
    verdict = _call(p, improved, speed)
    if p is None and sa.stddev == 0 and sb.stddev == 0 and sa.mean == sb.mean:
        verdict = "no significant difference at 95%"  # the same constant: no test, and nothing to find
    return MetricComparison(
        metric=metric,
        unit=unit,
        higher_is_better=higher_is_better,
        a=sa.mean,
        b=sb.mean,
        n_a=sa.n,
        n_b=sb.n,
        difference=sb.mean - sa.mean,
        difference_ci95_low=lo,
        difference_ci95_high=hi,
        ratio=ratio.ratio if ratio else None,
        ratio_ci95_low=ratio.ci95_low if ratio else None,
        ratio_ci95_high=ratio.ci95_high if ratio else None,
        ratio_ci_method="fieller" if ratio else None,
        p_value=p,
        verdict=verdict,
    )


def _speedup_and_variances(report: Report) -> tuple[float, list[tuple[float, int]]] | None:
    """Speedup R = m_s / m_v and the terms of Var(R) by the delta method:
    (R·se_s/m_s)² and (R·se_v/m_v)², se = s/√n, each with its sample count n."""
    van, spec = report.vanilla, report.speculative
    if not (van and spec and van.tokens_per_second and spec.tokens_per_second):
        return None
    s, v = spec.tokens_per_second, van.tokens_per_second
    if s.stddev is None or v.stddev is None or v.mean == 0 or s.mean == 0:
        return None
    r = s.mean / v.mean
    terms = [((r * s.stddev / s.mean) ** 2 / s.n, s.n), ((r * v.stddev / v.mean) ** 2 / v.n, v.n)]
    return r, terms


def _log_ratios(report: Report) -> list[float] | None:
    """ln(candidate / baseline tokens/s) of the primary comparison's pairs, where its verdict
    used the paired estimate; None otherwise."""
    from velobench.analysis.summaries import pair_iterations

    comp, van, spec = report.primary, report.vanilla, report.speculative
    if comp is None or comp.estimator != "paired" or van is None or spec is None:
        return None
    pairs = pair_iterations(van.iterations, spec.iterations)
    return [
        float(x) for x in stats.log_ratios([(c.tokens_per_second, b.tokens_per_second) for c, b in pairs])
    ]


def _paired_speedup(da: list[float], db: list[float]) -> MetricComparison:
    """Paired speedups R = exp(d̄) of two runs compared on the log scale (the runs independent):
    Δ = d̄_b − d̄_a, Var(Δ) = s_a²/n_a + s_b²/n_b (n: pairs), df by Welch–Satterthwaite,
    p = 2·P(T_df > |Δ| / sd(Δ)); ratio R_b / R_a = exp(Δ) with 95% CI exp(Δ ± t·sd(Δ));
    difference R_b − R_a with the delta-method sd sqrt(R_a²·s_a²/n_a + R_b²·s_b²/n_b) and the same t."""
    sa, sb = stats.summarize(da), stats.summarize(db)
    ra, rb = math.exp(sa.mean), math.exp(sb.mean)
    delta = sb.mean - sa.mean
    p = lo = hi = q_lo = q_hi = None
    if sa.stddev and sb.stddev:
        va, vb = sa.stddev**2 / sa.n, sb.stddev**2 / sb.n
        df = stats.welch_df([(va, sa.n), (vb, sb.n)])
        t = stats.t_quantile(df)
        p = stats.t_two_sided_p(delta / math.sqrt(va + vb), df)
        q_lo, q_hi = math.exp(delta - t * math.sqrt(va + vb)), math.exp(delta + t * math.sqrt(va + vb))
        d_sd = math.sqrt(ra**2 * va + rb**2 * vb)
        lo, hi = rb - ra - t * d_sd, rb - ra + t * d_sd
    return MetricComparison(
        metric="speedup",
        unit="x",
        higher_is_better=True,
        a=ra,
        b=rb,
        n_a=sa.n,
        n_b=sb.n,
        difference=rb - ra,
        difference_ci95_low=lo,
        difference_ci95_high=hi,
        ratio=math.exp(delta),
        ratio_ci95_low=q_lo,
        ratio_ci95_high=q_hi,
        ratio_ci_method="paired-log-welch" if q_lo is not None else None,
        p_value=p,
        verdict=_call(p, rb > ra, speed=True),
    )


def _speedup(a: Report, b: Report) -> MetricComparison | None:
    """The two runs' speedups compared: their paired estimates where both verdicts used one
    (`_paired_speedup`), else their ratios of means, as follows.

    Speedups R_a, R_b compared by first-order propagation (the four sample sets independent):
    d = R_b − R_a, Var(d) = Σ terms of Var(R_a) and Var(R_b); df by Welch–Satterthwaite over
    the four terms, Σv_i² / (n_i − 1); p = 2·P(T_df > |d| / sd(d)); 95% CI d ± t·sd(d).
    Ratio R_b / R_a with relative variance Var(R_a)/R_a² + Var(R_b)/R_b² and the same t."""
    da, db = _log_ratios(a), _log_ratios(b)
    if da and db:
        return _paired_speedup(da, db)
    ra, rb = _speedup_and_variances(a), _speedup_and_variances(b)
    if a.ratio_of_means is None or b.ratio_of_means is None:
        return None
    sa_, sb_ = a.ratio_of_means, b.ratio_of_means
    n_a, n_b = min(sa_.n_a, sa_.n_b), min(sb_.n_a, sb_.n_b)
    d = sb_.ratio - sa_.ratio
    p = lo = hi = q_lo = q_hi = None
    if ra is not None and rb is not None:
        terms = ra[1] + rb[1]
        var = sum(t for t, _ in terms)
        var_a, var_b = sum(t for t, _ in ra[1]), sum(t for t, _ in rb[1])
        if var == 0:
            p, lo, hi, q_lo, q_hi = (1.0 if d == 0 else 0.0), d, d, rb[0] / ra[0], rb[0] / ra[0]
        else:
            df = stats.welch_df(terms)
            t = stats.t_quantile(df)
            p = stats.t_two_sided_p(d / math.sqrt(var), df)
            lo, hi = d - t * math.sqrt(var), d + t * math.sqrt(var)
            q = rb[0] / ra[0]
            q_sd = q * math.sqrt(var_a / ra[0] ** 2 + var_b / rb[0] ** 2)
            q_lo, q_hi = q - t * q_sd, q + t * q_sd
    return MetricComparison(
        metric="speedup",
        unit="x",
        higher_is_better=True,
        a=sa_.ratio,
        b=sb_.ratio,
        n_a=n_a,
        n_b=n_b,
        difference=d,
        difference_ci95_low=lo,
        difference_ci95_high=hi,
        ratio=sb_.ratio / sa_.ratio if sa_.ratio else None,
        ratio_ci95_low=q_lo,
        ratio_ci95_high=q_hi,
        ratio_ci_method="delta" if q_lo is not None else None,
        p_value=p,
        verdict=_call(p, sb_.ratio > sa_.ratio, speed=True),
    )


_PER_MODE: list[tuple[str, str, bool, Callable[[ModeResult], list[float]]]] = [
    ("tokens/s", "tok/s", True, lambda m: [i.tokens_per_second for i in m.iterations]),
    ("TTFT", "ms", False, lambda m: [i.ttft_ms for i in m.iterations]),
    ("total time", "ms", False, lambda m: [i.total_time_ms for i in m.iterations]),
]


def _describe(r: Report) -> str:
    cfg = r.config
    draft = f" ← {Path(cfg.draft_model).name}" if cfg.draft_model else f" + {cfg.method.value}"
    return f"{Path(cfg.main_model).name}{draft}, {cfg.engine}, n_draft {cfg.n_draft} ({r.timestamp})"


def differences(
    settings: Iterable[tuple[str, dict[str, Any], dict[str, Any]]], ea: Environment, eb: Environment
) -> list[str]:
    """Settings and machine facts that differ, as `field: A → B` lines.

    `settings`: (prefix, A's settings, B's settings) per group, e.g. ("", config, config) and
    ("load.", load options, load options); `ea`, `eb`: the two machines.
    """
    out = []
    for prefix, da, db in settings:
        for key in da:
            if da[key] != db.get(key):
                out.append(f"{prefix}{key}: {da[key]!r} → {db.get(key)!r}")
    for key, va, vb in (
        ("hostname", ea.hostname, eb.hostname),
        ("cpu_model", ea.cpu_model, eb.cpu_model),
        ("cpu_cores_logical", ea.cpu_cores_logical, eb.cpu_cores_logical),
        ("gpus", [g.name for g in ea.gpus], [g.name for g in eb.gpus]),
    ):
        if va != vb:
            out.append(f"{key}: {va!r} → {vb!r}")
    return out


def _differences(a: Report, b: Report) -> list[str]:
    """Settings and machine facts that differ between two run results: `field: A → B`."""
    return differences(
        [("", a.config.model_dump(mode="json"), b.config.model_dump(mode="json"))],
        a.environment,
        b.environment,
    )


def compare_reports(a: Report, b: Report) -> Comparison:
    """Compare B against A: tokens/s, TTFT and total time of every mode measured in both, the
    speedup, and the acceptance rate (per-iteration samples). Raises VelobenchError when the
    two runs have no mode with iterations in common."""
    metrics: list[MetricComparison] = []
    common = [m for m, ma in a.modes.items() if ma.iterations and m in b.modes and b.modes[m].iterations]
    if not common:
        raise VelobenchError("the two results have no measured mode in common: nothing to compare")
    for name, unit, higher, samples in _PER_MODE:
        for mode in common:
            metrics.append(
                _from_samples(f"{mode} {name}", unit, samples(a.modes[mode]), samples(b.modes[mode]), higher)
            )
    sp = _speedup(a, b)
    if sp is not None:
        metrics.append(sp)
    if a.speculative and b.speculative:
        ra = [i.acceptance_rate for i in a.speculative.iterations if i.acceptance_rate is not None]
        rb = [i.acceptance_rate for i in b.speculative.iterations if i.acceptance_rate is not None]
        if ra and rb:
            metrics.append(_from_samples("acceptance rate", "", ra, rb, True, speed=False))
    return Comparison(a=_describe(a), b=_describe(b), metrics=metrics, differences=_differences(a, b))


def headline(comp: Comparison) -> MetricComparison | None:
    """The metric a regression gate watches: speculative tokens/s if measured in both, else vanilla's."""
    by_name = {m.metric: m for m in comp.metrics}
    return by_name.get("speculative tokens/s") or by_name.get("vanilla tokens/s")


def regression(
    comp: Comparison,
    fail_if_slower_pct: float,
    pick: Callable[[Comparison], MetricComparison | None] = headline,
) -> Regression | None:
    """The regression when B's headline tokens/s (`pick`: which metric that is) is slower than
    A's by more than the given percentage AND the difference is significant (Welch p < 0.05);
    None otherwise.

    slower % = (a − b) / a · 100.
    """
    m = pick(comp)
    if m is None or m.verdict != "slower" or m.a == 0:
        return None
    pct = (m.a - m.b) / m.a * 100
    if pct <= fail_if_slower_pct:
        return None
    return Regression(metric=m, slower_pct=pct, allowed_pct=fail_if_slower_pct)
