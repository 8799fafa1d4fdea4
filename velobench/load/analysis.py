"""Statistics of load runs, from the raw per-request records only (no I/O).

Per load level and mode (`summarize_level`): request throughput, output tokens/s, TTFT, ITL,
TPOT, end-to-end latency (mean, stddev, p50/p90/p95/p99, each with a 95% interval), errors by
kind, goodput under an SLO, acceptance from /metrics deltas. Vanilla vs speculative at a level
(`compare_level`), the crossover over levels (`crossover`) and saturation of a sweep
(`saturation`).

Definitions (times from `RequestTiming`, seconds from the run's zero):

* Measure window [a, b]: a = earliest `sent_s` of a `measure` record, b = latest end (last
  content chunk, else the stream's end) of a `measure` record. Without warm-up and cool-down
  this is vLLM's benchmark duration (first send to last completion).
* Request throughput = successful requests (any phase) whose end lies in [a, b], / (b − a).
  Output tokens/s = output tokens emitted in [a, b] by successful requests (any phase: a warm-up
  request still streaming in the window loads the server like any other), / (b − a). Tokens are
  placed at their chunk's arrival: chunk j carries w_j = k_j · N / Σk of the request's N output
  tokens (k_j = `chunk_tokens`, 1 each where unknown; N = the server's count, else Σk). Without
  windows, the whole run is counted, as vLLM does.
* Latencies use the successful `measure` requests: TTFT, TPOT, e2e one value per request, ITL
  every inter-token gap of every request pooled, its intervals clustered by request
  (`clustered_distribution`: gaps of one request are correlated). Per-request output tokens/s = N / e2e.
* A request fails if it has an `error` (its kind is the text before the first ':') or never
  produced a content chunk (kind `no-output`).
* The generator's own lag (`generator_lag`, every record of the level, all phases): send lag =
  timing.sent_s − ready_s per request; loop lag = the lag probe's late wake-ups; CPU share =
  process CPU time / wall time (several generator processes: their sum, and the busiest one's).
  velobench was the bottleneck (`lag_warnings`) where the p99 of either lag exceeds LAG_WARN_MS
  or the CPU share (the busiest process's) reaches CPU_WARN_SHARE of the one core its event
  loop runs on.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from scipy import stats as sps

from velobench.analysis.stats import ratio_of_means
from velobench.errors import VelobenchError
from velobench.load.render import crossover_text, saturation_errors_text, saturation_throughput_text
from velobench.results.load import (
    Crossover,
    Distribution,
    GeneratorLag,
    Goodput,
    LagStats,
    LevelAcceptance,
    LevelComparison,
    LevelSummary,
    LevelWarning,
    LevelWarningCode,
    LoadRecord,
    Percentile,
    Saturation,
    Slo,
    SpecCounters,
)
from velobench.results.measures import Ratio
from velobench.results.timing import RequestTiming

LAG_WARN_MS = 10.0  # a p99 send or loop lag above this: the generator fell behind (an ITL is ~5-50 ms)
CPU_WARN_SHARE = 0.9  # the generator used this much of its event loop's one core: near its ceiling
CONFIDENCE = 0.95
PERCENTILES = (50, 90, 95, 99)
THROUGHPUT_BATCHES = 10
ALPHA = 0.05


# --------------------------------------------------------------------------- distributions


def percentile_point(x: Sequence[float] | np.ndarray, q: float) -> float:
    """The point estimate of the q-th percentile (its interval: `percentile_interval`), linearly
    interpolated between order statistics (numpy's default, Hyndman–Fan type 7, as vLLM reports): with x_(1) ≤ … ≤ x_(n) and h = (n − 1)·q/100,
    P_q = x_(⌊h⌋+1) + (h − ⌊h⌋)·(x_(⌊h⌋+2) − x_(⌊h⌋+1))."""
    return float(np.percentile(np.asarray(x, dtype=np.float64), q))


def percentile_interval(x: Sequence[float] | np.ndarray, q: float) -> tuple[float | None, float | None]:
    """Distribution-free 95% interval for the q-th percentile ξ from order statistics.

    With n iid samples sorted x_(1) ≤ … ≤ x_(n) and B ~ Binomial(n, p = q/100) (the number of
    samples below ξ), P(x_(l) ≤ ξ < x_(u)) ≥ P(l ≤ B ≤ u − 1) = F(u − 1) − F(l − 1), F the
    binomial CDF. We take
        l = max{k ≥ 1 : F(k − 1) ≤ α/2},   u = min{k ≤ n : F(k − 1) ≥ 1 − α/2},   α = 0.05,
    so each side misses with probability ≤ α/2 and [x_(l), x_(u)] covers ξ with probability
    ≥ 95% whatever the distribution (Hahn & Meeker, Statistical Intervals, 1991, §5.2). When no
    such l (or u) exists (too few samples for that tail, e.g. the p99 of fewer than ~300 requests
    has no upper bound) that side is None.
    """
    xs = np.sort(np.asarray(x, dtype=np.float64))
    n = int(xs.size)
    if n == 0:
        return None, None
    alpha = 1 - CONFIDENCE
    cdf = sps.binom.cdf(np.arange(n), n, q / 100)  # F(0) … F(n−1), i.e. F(k−1) for k = 1 … n
    low_ks = np.nonzero(cdf <= alpha / 2)[0]
    high_ks = np.nonzero(cdf >= 1 - alpha / 2)[0]
    low = float(xs[low_ks[-1]]) if low_ks.size else None  # k − 1 = index → x_(k) = xs[k − 1]
    high = float(xs[high_ks[0]]) if high_ks.size else None
    return low, high


def distribution(samples: Sequence[float]) -> Distribution | None:
    """Summary of samples x_1..x_n (None when there are none).

    mean x̄ = Σx_i/n; s = sqrt(Σ(x_i − x̄)²/(n − 1)) (None when n = 1; vLLM prints the n
    divisor, which is smaller by √((n−1)/n)); mean interval x̄ ± t_{0.975,n−1}·s/√n;
    percentiles and their intervals as in `percentile` and `percentile_interval`.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        return None
    if not np.all(np.isfinite(x)):
        raise ValueError(f"distribution: non-finite sample in {list(samples)[:10]!r}")
    n = int(x.size)
    mean = float(np.mean(x))
    lo = hi = None
    if n > 1:
        half = float(sps.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * float(np.std(x, ddof=1)) / math.sqrt(n)
        lo, hi = mean - half, mean + half
    return _summary(x, mean, (lo, hi), {q: percentile_interval(x, q) for q in PERCENTILES})


def _summary(
    x: np.ndarray,
    mean: float,
    mean_ci: tuple[float | None, float | None],
    pct_ci: Mapping[int, tuple[float | None, float | None]],
) -> Distribution:
    """The Distribution of pooled samples `x` with the mean and the intervals given (the two
    estimators differ in those only); n, s (n − 1 divisor), min, max and the type-7
    percentiles from `x`."""
    n = int(x.size)
    return Distribution(
        n=n,
        mean=mean,
        stddev=float(np.std(x, ddof=1)) if n > 1 else None,
        mean_ci95_low=mean_ci[0],
        mean_ci95_high=mean_ci[1],
        min=float(np.min(x)),
        max=float(np.max(x)),
        **{
            f"p{q}": Percentile(value=percentile_point(x, q), ci95_low=pct_ci[q][0], ci95_high=pct_ci[q][1])
            for q in PERCENTILES
        },
    )


CLUSTER_BOOTSTRAP = 1000  # replicates of `clustered_distribution`'s percentile intervals
MIN_CLUSTERS = 16  # fewer requests than this: no ITL interval (the cluster methods need several)
MIN_TAIL_CLUSTERS = 3.0  # a percentile q's interval needs m·(1 − q/100) ≥ this many requests


def clustered_distribution(groups: Sequence[Sequence[float]], seed: int = 0) -> Distribution | None:
    """Summary of samples that come in correlated groups (ITL: the gaps of one request), with
    intervals that treat the group, not the sample, as the unit (None when there are none).

    Points are those of `distribution` on the pooled samples x_ij (request i, gap j; n_i gaps,
    s_i = Σ_j x_ij, m requests with at least one gap). The intervals pooled samples would give are
    wrong here: gaps of one request share its batch, its context and its position in the load, so
    they are not independent (simulated: 30-90% real coverage of a nominal 95%).

    mean x̄ = Σs_i / Σn_i, a ratio estimator; its cluster-robust (linearised) variance
        V = m/(m − 1) · Σ_i (s_i − x̄·n_i)² / (Σ_i n_i)²
    and interval x̄ ± t_{0.975, m−1}·√V.
    percentiles: a cluster bootstrap. Each of CLUSTER_BOOTSTRAP replicates draws m requests with
    replacement (multinomial counts c_i), pools their gaps (gap ij weighted c_i) and takes the
    type-7 percentile of that pooled sample; the interval is the replicates' 2.5% and 97.5%
    quantiles. Seeded, so the same records give the same intervals. With fewer than MIN_CLUSTERS
    requests both intervals are None, and a percentile's interval needs m·(1 − q/100) ≥
    MIN_TAIL_CLUSTERS (p90: 30 requests, p95: 60, p99: 300): with fewer requests in its tail the
    bootstrap undercovers it.

    Coverage, simulated (tests/unit/test_itl_intervals.py; 300 replications; requests of 64 gaps,
    a lognormal level per request and AR(1) gaps within it): mean 0.93 (16 requests) to 0.94-0.96
    (32-320); p50 0.92-0.96; p90 0.91-0.93 from 32 requests, p95 0.91-0.93 from 64, p99 0.91 at
    320. The pooled intervals `distribution` gives on the same data cover 0.20-0.46.
    """
    gs = [np.asarray(g, dtype=np.float64) for g in groups if len(g)]
    if not gs:
        return None
    x = np.concatenate(gs)
    if not np.all(np.isfinite(x)):
        raise ValueError("clustered_distribution: non-finite sample")
    n_i = np.array([g.size for g in gs], dtype=np.float64)
    s_i = np.array([g.sum() for g in gs])
    m = len(gs)
    mean = float(s_i.sum() / n_i.sum())
    lo = hi = None
    intervals: dict[int, tuple[float | None, float | None]] = dict.fromkeys(PERCENTILES, (None, None))
    if m >= MIN_CLUSTERS:
        v = m / (m - 1) * float(np.sum((s_i - mean * n_i) ** 2)) / float(n_i.sum()) ** 2
        half = float(sps.t.ppf(0.5 + CONFIDENCE / 2, m - 1)) * math.sqrt(v)
        lo, hi = mean - half, mean + half
        reps = _cluster_bootstrap_percentiles(gs, seed)
        for k, q in enumerate(PERCENTILES):
            if m * (1 - q / 100) >= MIN_TAIL_CLUSTERS:
                a, b = np.quantile(reps[:, k], [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
                intervals[q] = (float(a), float(b))
    return _summary(x, mean, (lo, hi), intervals)


def _cluster_bootstrap_percentiles(gs: list[np.ndarray], seed: int) -> np.ndarray:
    """(replicates × len(PERCENTILES)) type-7 percentiles of the pooled gaps of requests drawn
    with replacement. The pooled sample is sorted once; a replicate is a weight per sorted gap
    (its request's count), and order statistic k of the replicate is the first sorted gap whose
    cumulative weight reaches k."""
    rng = np.random.default_rng(seed)
    m = len(gs)
    owner = np.concatenate([np.full(g.size, i) for i, g in enumerate(gs)])
    x = np.concatenate(gs)
    order = np.argsort(x, kind="stable")
    xs, owner = x[order], owner[order]
    sizes = np.array([g.size for g in gs])
    out = np.empty((CLUSTER_BOOTSTRAP, len(PERCENTILES)))
    chunk = max(1, min(CLUSTER_BOOTSTRAP, 20_000_000 // max(1, xs.size)))  # ≤ 160 MB of weights
    for start in range(0, CLUSTER_BOOTSTRAP, chunk):
        b = min(chunk, CLUSTER_BOOTSTRAP - start)
        counts = rng.multinomial(m, np.full(m, 1 / m), size=b)  # (b, m)
        total = counts @ sizes  # pooled size of each replicate, ≥ 1 (every request has a gap)
        cw = np.cumsum(counts[:, owner], axis=1)  # (b, N) cumulative weights in sorted order
        cap = int(cw[:, -1].max()) + 1
        flat = (cw + np.arange(b)[:, None] * cap).ravel()
        for k, q in enumerate(PERCENTILES):
            h = (total - 1) * q / 100
            lo_k = np.floor(h).astype(np.int64) + 1  # 1-based order statistics k and k + 1
            hi_k = np.minimum(lo_k + 1, total)
            rows = np.arange(b) * cap
            i1 = np.searchsorted(flat, lo_k + rows) - np.arange(b) * xs.size
            i2 = np.searchsorted(flat, hi_k + rows) - np.arange(b) * xs.size
            out[start : start + b, k] = xs[i1] + (h - np.floor(h)) * (xs[i2] - xs[i1])
    return out


# --------------------------------------------------------------------------- the generator's own lag


def lag_stats(samples_s: Sequence[float]) -> LagStats | None:
    """n, p50, p99 (numpy's default percentiles, as `percentile_point`) and max of lags given in
    seconds, in milliseconds; None without samples."""
    if not samples_s:
        return None
    ms = np.asarray(samples_s, dtype=np.float64) * 1000
    return LagStats(
        n=int(ms.size),
        p50=percentile_point(ms, 50),
        p99=percentile_point(ms, 99),
        max=float(ms.max()),
    )


def generator_lag(
    records: Sequence[LoadRecord],
    loop_lag_s: Sequence[float],
    *,
    probe_s: float,
    cpu_s: float,
    wall_s: float,
    process_cpu_s: Sequence[float] = (),
) -> GeneratorLag:
    """The level's `GeneratorLag` (module docstring): send lag from the records, loop lag from the
    probe's samples, cpu_share = cpu_s / wall_s (None for an empty wall time); with several
    generator processes (`process_cpu_s`, one CPU time each) busiest_cpu_share = max / wall_s."""

    def share(c: float) -> float | None:
        return c / wall_s if wall_s > 0 else None

    many = len(process_cpu_s) > 1
    return GeneratorLag(
        send_ms=lag_stats([r.send_lag_s() for r in records]),
        loop_ms=lag_stats(loop_lag_s),
        probe_interval_ms=probe_s * 1000,
        cpu_s=cpu_s,
        wall_s=wall_s,
        cpu_share=share(cpu_s),
        procs=max(len(process_cpu_s), 1),
        busiest_cpu_share=share(max(process_cpu_s)) if many else None,
    )


def lag_warnings(
    mode: str, lag: GeneratorLag | None, *, lag_ms: float = LAG_WARN_MS, cpu_share: float = CPU_WARN_SHARE
) -> list[LevelWarning]:
    """`generator-bottleneck` for each of the three measures past its bound (module docstring);
    params: mode, measure (`send`, `loop` or `cpu`) and its value (ms, or the share). With several
    generator processes the CPU share is the busiest one's (each loop has one core)."""
    if lag is None:
        return []
    out = []
    for measure, stats in (("send", lag.send_ms), ("loop", lag.loop_ms)):
        if stats is not None and stats.p99 > lag_ms:
            out.append(_bottleneck(mode, measure, stats.p99))
    busiest = lag.busiest_cpu_share if lag.procs > 1 else lag.cpu_share
    if busiest is not None and busiest >= cpu_share:
        out.append(_bottleneck(mode, "cpu", busiest))
    return out


def _bottleneck(mode: str, measure: str, value: float) -> LevelWarning:
    return LevelWarning(
        code=LevelWarningCode.GENERATOR_BOTTLENECK, params={"mode": mode, "measure": measure, "value": value}
    )


# --------------------------------------------------------------------------- SLO and goodput


_SLO_KEYS = {"ttft": "ttft_ms", "tpot": "tpot_ms", "itl": "itl_ms", "e2e": "e2e_ms", "e2el": "e2e_ms"}
_SLO_ITEM = re.compile(
    r"^\s*([a-z0-9]+)\s*=\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*(ms|s)\s*$", re.IGNORECASE
)


def parse_slo(text: str) -> Slo:
    """Parse `ttft=500ms,tpot=50ms` (keys ttft, tpot, itl, e2e (or e2el); units ms or s, required).

    Raises VelobenchError with one line on anything else: an unknown key, a missing or unknown
    unit, a value ≤ 0, a key given twice, or nothing at all.
    """
    values: dict[str, float] = {}
    items = [item for item in text.split(",") if item.strip()]
    if not items:
        raise VelobenchError(f"empty SLO {text!r}: give e.g. --slo ttft=500ms,tpot=50ms")
    for item in items:
        m = _SLO_ITEM.match(item)
        if m is None:
            raise VelobenchError(
                f"bad SLO item {item.strip()!r} in {text!r}: expected KEY=NUMBER(ms|s), e.g. ttft=500ms"
            )
        key, number, unit = m.group(1).lower(), float(m.group(2)), m.group(3).lower()
        if key not in _SLO_KEYS:
            raise VelobenchError(f"unknown SLO {key!r} in {text!r}: use ttft, tpot, itl or e2e")
        field = _SLO_KEYS[key]
        if field in values:
            raise VelobenchError(f"SLO {key!r} given twice in {text!r}")
        if not number > 0:
            raise VelobenchError(f"SLO {key!r} must be > 0, got {item.strip()!r}")
        values[field] = number * (1000.0 if unit == "s" else 1.0)
    return Slo(**values)


def meets_slo(t: RequestTiming, slo: Slo) -> bool:
    """Does a request meet every objective? Failed requests never do. A request with fewer than
    two tokens has no TPOT and no ITL and meets those objectives (vLLM counts its TPOT as 0)."""
    if not t.ok:
        return False
    checks = [
        (slo.ttft_ms, t.ttft_ms()),
        (slo.tpot_ms, t.tpot_ms()),
        (slo.itl_ms, max(t.itl_ms(), default=None)),
        (slo.e2e_ms, t.e2e_ms()),
    ]
    return all(bound is None or value is None or value <= bound for bound, value in checks)


# --------------------------------------------------------------------------- acceptance


def acceptance(counters: SpecCounters | None) -> LevelAcceptance | None:
    """Acceptance from counter deltas (None where the server has no speculative counters)."""
    if counters is None:
        return None
    c = counters
    return LevelAcceptance(
        counters=c,
        acceptance_rate=c.accepted_tokens / c.draft_tokens if c.draft_tokens else None,
        mean_acceptance_length=1 + c.accepted_tokens / c.drafts if c.drafts else None,
    )


# --------------------------------------------------------------------------- per-request facts


def error_kind(t: RequestTiming) -> str | None:
    """Why a request failed, as a short kind (`timeout`, `http-503`, …), or None if it did not."""
    if t.error is not None:
        kind = t.error.split(":", 1)[0].strip()
        return kind[:60] or "error"
    return None if t.first_token_s is not None else "no-output"


def request_end(t: RequestTiming) -> float | None:
    """The last content chunk, else the stream's end (the end used by e2e)."""
    return t.chunk_s[-1] if t.chunk_s else t.end_s


def output_tokens(t: RequestTiming) -> int:
    """The server's output token count, else the chunks' sum (chunk_tokens, 1 per chunk if unknown)."""
    if t.output_tokens is not None:
        return t.output_tokens
    return sum(t.chunk_tokens) if len(t.chunk_tokens) == len(t.chunk_s) else len(t.chunk_s)


def token_times(t: RequestTiming) -> tuple[np.ndarray, np.ndarray]:
    """(chunk arrival times, tokens placed at each): w_j = k_j · N / Σk (module docstring)."""
    times = np.asarray(t.chunk_s, dtype=np.float64)
    if times.size == 0:
        return times, times
    k = np.asarray(
        t.chunk_tokens if len(t.chunk_tokens) == len(t.chunk_s) else [1] * len(t.chunk_s), dtype=np.float64
    )
    total = float(k.sum())
    n = float(output_tokens(t))
    return times, (k * (n / total) if total > 0 else k)


def measure_window(records: Sequence[LoadRecord]) -> tuple[float, float] | None:
    """[a, b] = [earliest send, latest end] of the `measure` records (None if there are none)."""
    m = [r.timing for r in records if r.phase == "measure"]
    ends = [e for e in (request_end(t) for t in m) if e is not None]
    if not m or not ends:
        return None
    return min(t.sent_s for t in m), max(ends)


def throughput_batches(
    records: Sequence[LoadRecord], window: tuple[float, float], batches: int = THROUGHPUT_BATCHES
) -> list[float]:
    """Output tokens/s in each of `batches` equal sub-windows of [a, b] (batch means).

    Tokens of successful requests of every phase are placed at their chunks' times
    (`token_times`) and counted per sub-window [a + i·h, a + (i+1)·h), h = (b − a)/batches, the
    last one closed; their mean is the window's output tokens/s exactly.
    """
    a, b = window
    if not b > a:
        return []
    times, weights = [], []
    for r in records:
        if r.timing.ok:
            ts, ws = token_times(r.timing)
            times.append(ts)
            weights.append(ws)
    if not times:
        return [0.0] * batches
    hist, _ = np.histogram(np.concatenate(times), bins=batches, range=(a, b), weights=np.concatenate(weights))
    h = (b - a) / batches
    return [float(v) / h for v in hist]


# --------------------------------------------------------------------------- one level


def summarize_level(
    records: Sequence[LoadRecord],
    *,
    profile: str,
    level: float,
    mode: str,
    slo: Slo | None = None,
    spec: SpecCounters | None = None,
    batches: int = THROUGHPUT_BATCHES,
) -> LevelSummary:
    """Summarize one level's records (all phases; statistics use the measure ones).

    Raises VelobenchError when no request is in the measure window (warm-up and cool-down cover
    the whole run, or nothing finished).
    """
    measure = [r for r in records if r.phase == "measure"]
    if not measure:
        raise VelobenchError(
            f"{mode} at {profile} {level:g}: no finished request in the measure window "
            f"({len(records)} finished; shorten the warm-up/cool-down or run more requests)"
        )
    ok = [r.timing for r in measure if r.timing.ok]
    kinds = Counter(k for k in (error_kind(r.timing) for r in measure) if k is not None)
    window = measure_window(records)
    length = (window[1] - window[0]) if window else None
    req_tp = tok_tp = None
    tp_batches: list[float] = []
    if window and length and length > 0:
        a, b = window
        ends = [request_end(r.timing) for r in records if r.timing.ok]
        req_tp = sum(1 for e in ends if e is not None and a <= e <= b) / length
        tp_batches = throughput_batches(records, window, batches)
        tok_tp = float(np.mean(tp_batches))
    rates = [output_tokens(t) / (e2e / 1000) for t in ok if (e2e := t.e2e_ms()) is not None and e2e > 0]
    goodput = None
    if slo is not None:
        good = sum(1 for r in measure if meets_slo(r.timing, slo))
        goodput = Goodput(
            slo=slo,
            good=good,
            total=len(measure),
            share=good / len(measure),
            rate_per_s=good / length if length else None,
        )
    return LevelSummary(
        profile=profile,
        level=level,
        mode=mode,
        n_records=len(records),
        n_measure=len(measure),
        n_ok=len(ok),
        n_errors=sum(kinds.values()),
        n_errors_all=sum(1 for r in records if error_kind(r.timing) is not None),
        errors_by_kind=dict(sorted(kinds.items())),
        window_start_s=window[0] if window else None,
        window_end_s=window[1] if window else None,
        window_s=length,
        request_throughput=req_tp,
        output_tok_s=tok_tp,
        output_tok_s_batches=tp_batches,
        output_tokens=sum(output_tokens(t) for t in ok),
        per_request_tok_s=distribution(rates),
        ttft_ms=distribution([v for t in ok if (v := t.ttft_ms()) is not None]),
        itl_ms=clustered_distribution([t.itl_ms() for t in ok]),
        tpot_ms=distribution([v for t in ok if (v := t.tpot_ms()) is not None]),
        e2e_ms=distribution([v for t in ok if (v := t.e2e_ms()) is not None]),
        goodput=goodput,
        acceptance=acceptance(spec),
    )


# --------------------------------------------------------------------------- vanilla vs speculative

Metric = Literal["throughput", "ttft", "tpot", "e2e"]
_LATENCY: dict[str, str] = {"ttft": "ttft_ms", "tpot": "tpot_ms", "e2e": "e2e_ms"}


def _ratio(a: Sequence[float], b: Sequence[float]) -> Ratio | None:
    if not a or not b:
        return None
    try:
        return ratio_of_means(a, b)
    except ValueError:  # mean(b) == 0
        return None


def _latencies(records: Sequence[LoadRecord], metric: str) -> list[float]:
    out = []
    for r in records:
        if r.phase == "measure" and r.timing.ok:
            v = {"ttft": r.timing.ttft_ms, "tpot": r.timing.tpot_ms, "e2e": r.timing.e2e_ms}[metric]()
            if v is not None:
                out.append(v)
    return out


def compare_level(
    vanilla: Sequence[LoadRecord],
    speculative: Sequence[LoadRecord],
    *,
    level: float,
    batches: int = THROUGHPUT_BATCHES,
) -> LevelComparison:
    """Speculative vs vanilla at one level, each ratio speculative / vanilla with its Fieller 95%
    interval and Welch's two-sided t-test (velobench.analysis.stats.ratio_of_means: the two modes'
    samples are independent).

    Throughput has one window per mode, so its samples are batch means: the output tokens/s of
    `batches` equal sub-windows (`throughput_batches`; their mean is the window's tokens/s, so
    the ratio is that of the two throughputs). Batch means of a stationary run are nearly
    independent once a batch is much longer than a request (Law & Kelton, Simulation Modeling
    and Analysis, §9.5.3); when a batch is shorter than the mean e2e latency the interval is
    optimistic and a warning says so. Latencies compare the per-request values of the measure
    windows (TTFT, TPOT, e2e).

    Significantly worse: throughput ratio < 1, or a latency ratio > 1, with p < 0.05.
    """
    warnings: list[LevelWarning] = []
    ratios: dict[str, Ratio | None] = {}
    tp: dict[str, list[float]] = {}
    for name, recs in (("vanilla", vanilla), ("speculative", speculative)):
        window = measure_window(recs)
        tp[name] = throughput_batches(recs, window, batches) if window else []
        e2e = _latencies(recs, "e2e")
        if window and e2e and (window[1] - window[0]) / batches < float(np.mean(e2e)) / 1000:
            warnings.append(
                LevelWarning(
                    code=LevelWarningCode.SHORT_BATCHES,
                    params={
                        "mode": name,
                        "batch_s": (window[1] - window[0]) / batches,
                        "e2e_s": float(np.mean(e2e)) / 1000,
                    },
                )
            )
        if any(error_kind(r.timing) for r in recs if r.phase == "measure"):
            warnings.append(LevelWarning(code=LevelWarningCode.REQUESTS_FAILED, params={"mode": name}))
    ratios["throughput"] = _ratio(tp["speculative"], tp["vanilla"])
    for m in _LATENCY:
        ratios[m] = _ratio(_latencies(speculative, m), _latencies(vanilla, m))
    worse: list[str] = []
    better: list[str] = []
    for m, r in ratios.items():
        if r is None or r.p_value is None or r.p_value >= ALPHA or r.ratio == 1:
            continue
        higher_is_better = m == "throughput"
        (better if (r.ratio > 1) == higher_is_better else worse).append(m)
    return LevelComparison(
        level=level,
        throughput=ratios["throughput"],
        ttft=ratios["ttft"],
        tpot=ratios["tpot"],
        e2e=ratios["e2e"],
        worse=worse,
        better=better,
        warnings=warnings,
    )


def crossover(
    comparisons: Sequence[LevelComparison],
    *,
    unit: str = "concurrency",
    criteria: Sequence[Metric] = ("throughput", "e2e"),
) -> Crossover:
    """Walk the levels upward; the first whose `worse` holds one of `criteria` is the crossover.

    Default criteria: output throughput significantly lower or mean e2e latency significantly
    higher. (TTFT alone is left out: a draft model's prefill can cost TTFT while speculation
    still pays overall; pass criteria=("ttft",) to ask about it.)
    """
    crit = list(criteria)
    ordered = sorted(comparisons, key=lambda c: c.level)
    if not ordered:
        return Crossover(
            level=None, up_to=None, criteria=crit, text=crossover_text(unit, None, None, [], None)
        )
    for c in ordered:
        by = [m for m in crit if m in c.worse]
        if by:
            top = ordered[-1].level
            text = crossover_text(unit, c.level, top, by, c)
            return Crossover(level=c.level, up_to=top, criteria=crit, by=by, text=text)
    top = ordered[-1].level
    return Crossover(level=None, up_to=top, criteria=crit, text=crossover_text(unit, None, top, [], None))


# --------------------------------------------------------------------------- saturation


def saturation(
    levels: Sequence[LevelSummary], *, min_gain: float = 0.05, unit: str = "concurrency"
) -> Saturation | None:
    """The first saturated level of one mode's sweep (levels in any order), or None.

    Level i saturates when a request failed there (any phase), or, for i > 0, throughput stopped
    rising: with X the output tokens/s and r = X_i / X_{i−1} (ratio of mean batch throughputs),
    the gain r − 1 is below `min_gain` (5%) AND the rise is not significant (not both r > 1
    and Welch's p < 0.05 on the two levels' batch throughputs). A significant rise of less
    than 5% continues the sweep; a fall or a flat throughput stops it.
    """
    ordered = sorted(levels, key=lambda s: s.level)
    for i, s in enumerate(ordered):
        if s.n_errors_all:
            return Saturation(level=s.level, reason="errors", text=saturation_errors_text(s, unit))
        if i == 0:
            continue
        prev = ordered[i - 1]
        r = _ratio(s.output_tok_s_batches, prev.output_tok_s_batches)
        if r is None:
            continue
        gain = r.ratio - 1
        rising = r.ratio > 1 and r.p_value is not None and r.p_value < ALPHA
        if gain < min_gain and not rising:
            return Saturation(
                level=s.level,
                reason="throughput",
                gain=gain,
                p_value=r.p_value,
                text=saturation_throughput_text(s, prev, gain, r.p_value, unit),
            )
    return None
