"""Load statistics recomputed by hand from constructed raw records: percentiles and their
intervals, windows and throughput, goodput and SLO parsing, comparisons, crossover, saturation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from velobench.errors import VelobenchError
from velobench.load.analysis import (
    acceptance,
    compare_level,
    crossover,
    distribution,
    meets_slo,
    parse_slo,
    percentile_interval,
    percentile_point,
    saturation,
    summarize_level,
    throughput_batches,
)
from velobench.report.warnings import text
from velobench.results.load import LevelSummary, LoadRecord, Phase, Slo, SpecCounters
from velobench.results.timing import RequestTiming


def timing(sent: float, ttft: float, tokens: int, gap: float, error: str | None = None) -> RequestTiming:
    """A streamed request: first token after `ttft` s, then one token every `gap` s."""
    if error is not None:
        return RequestTiming(sent_s=sent, end_s=sent + ttft, error=error)
    chunks = [sent + ttft + i * gap for i in range(tokens)]
    return RequestTiming(
        sent_s=sent,
        first_token_s=chunks[0],
        chunk_s=chunks,
        chunk_tokens=[1] * tokens,
        end_s=chunks[-1] + 0.001,
        output_tokens=tokens,
    )


def rec(i: int, t: RequestTiming, phase: Phase = "measure") -> LoadRecord:
    return LoadRecord(
        index=i, prompt_id=f"p{i}", scheduled_s=t.sent_s, issued_s=t.sent_s, phase=phase, timing=t
    )


def by_hand_percentile(x: list[float], q: float) -> float:
    """Hyndman–Fan type 7, written out."""
    s = sorted(x)
    h = (len(s) - 1) * q / 100
    lo = math.floor(h)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


# --------------------------------------------------------------------------- distributions


def test_percentiles_recomputed_by_hand() -> None:
    x = [float(v) for v in np.random.default_rng(0).lognormal(3, 0.5, 37)]
    d = distribution(x)
    assert d is not None and d.n == 37
    for q, p in ((50, d.p50), (90, d.p90), (95, d.p95), (99, d.p99)):
        assert p.value == pytest.approx(by_hand_percentile(x, q), rel=1e-12)
    assert percentile_point([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    mean = sum(x) / len(x)
    sd = math.sqrt(sum((v - mean) ** 2 for v in x) / (len(x) - 1))
    half = sps.t.ppf(0.975, len(x) - 1) * sd / math.sqrt(len(x))
    assert d.mean == pytest.approx(mean) and d.stddev == pytest.approx(sd)
    assert (d.mean_ci95_low, d.mean_ci95_high) == pytest.approx((mean - half, mean + half))
    assert d.min == min(x) and d.max == max(x)
    one = distribution([5.0])
    assert one is not None and one.stddev is None and one.p99.value == 5.0
    # one sample: P(x_(1) > ξ_0.99) = 0.01 ≤ 2.5%, so x_(1) bounds p99 below; nothing bounds the median
    assert (one.p99.ci95_low, one.p99.ci95_high) == (5.0, None)
    assert (one.p50.ci95_low, one.p50.ci95_high) == (None, None)
    assert distribution([]) is None


def test_percentile_interval_matches_the_binomial_table() -> None:
    x = list(range(1, 101))  # x_(k) = k
    # n = 100, median: ranks 40 and 61 (the classical order-statistic interval)
    assert percentile_interval(x, 50) == (40.0, 61.0)
    # ranks straight from the definition: l = max{k: F(k-1) <= .025}, u = min{k: F(k-1) >= .975}
    f = [sps.binom.cdf(k - 1, 100, 0.9) for k in range(1, 101)]
    l_rank = max(k for k in range(1, 101) if f[k - 1] <= 0.025)
    u_rank = min(k for k in range(1, 101) if f[k - 1] >= 0.975)
    assert percentile_interval(x, 90) == (float(l_rank), float(u_rank))
    # too few samples for a p99 upper bound: P(all 50 below ξ_0.99) = 0.99^50 > 2.5%
    lo, hi = percentile_interval(list(range(50)), 99)
    assert hi is None and lo is not None


def test_percentile_interval_covers_95_percent() -> None:
    rng = np.random.default_rng(1)
    true_p90 = sps.expon.ppf(0.9)
    hits = 0
    trials = 2000
    for _ in range(trials):
        lo, hi = percentile_interval(rng.exponential(size=60), 90)
        hits += lo is not None and hi is not None and lo <= true_p90 <= hi
    assert 0.94 <= hits / trials <= 0.995  # at least nominal (conservative, discrete)


# --------------------------------------------------------------------------- SLO


def test_parse_slo() -> None:
    assert parse_slo("ttft=500ms,tpot=50ms") == Slo(ttft_ms=500, tpot_ms=50)
    assert parse_slo(" e2e = 2s , itl=0.1s") == Slo(e2e_ms=2000, itl_ms=100)
    assert parse_slo("E2EL=1.5e3ms") == Slo(e2e_ms=1500)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty SLO"),
        (" , ", "empty SLO"),
        ("ttft=500", "expected KEY=NUMBER"),
        ("ttft=500us", "expected KEY=NUMBER"),
        ("ttft:500ms", "expected KEY=NUMBER"),
        ("ttft=-5ms", "expected KEY=NUMBER"),
        ("ttft=0ms", "must be > 0"),
        ("latency=5ms", "unknown SLO 'latency'"),
        ("ttft=5ms,ttft=6ms", "given twice"),
        ("e2e=1s,e2el=2s", "given twice"),
    ],
)
def test_parse_slo_rejects_bad_input(text: str, message: str) -> None:
    with pytest.raises(VelobenchError, match=message):
        parse_slo(text)


def test_meets_slo() -> None:
    t = timing(0.0, 0.2, 11, 0.04)  # TTFT 200 ms, TPOT 40 ms, e2e 600 ms, ITL 40 ms
    assert meets_slo(t, Slo(ttft_ms=200.001, tpot_ms=40.001, e2e_ms=600.001, itl_ms=40.001))
    assert not meets_slo(t, Slo(ttft_ms=199))
    assert not meets_slo(t, Slo(tpot_ms=39))
    assert not meets_slo(t, Slo(e2e_ms=599))
    t.chunk_s[5] += 0.03  # one 70 ms gap: TPOT unchanged, ITL objective missed
    assert meets_slo(t, Slo(tpot_ms=41)) and not meets_slo(t, Slo(itl_ms=50))
    assert meets_slo(timing(0, 0.1, 1, 0), Slo(tpot_ms=1, itl_ms=1))  # one token: no TPOT/ITL
    assert not meets_slo(timing(0, 0.1, 1, 0, error="timeout: x"), Slo(e2e_ms=1e9))


# --------------------------------------------------------------------------- one level


def test_summarize_level_by_hand() -> None:
    records = [
        rec(0, timing(0.0, 0.5, 5, 0.1), "warmup"),  # chunks 0.5..0.9
        rec(1, timing(1.0, 0.2, 5, 0.1)),  # chunks 1.2..1.6
        rec(2, timing(1.5, 0.3, 3, 0.2)),  # chunks 1.8, 2.0, 2.2
        rec(3, timing(2.0, 0.1, 0, 0.0, error="http-503: busy")),
        rec(4, timing(2.5, 0.4, 4, 0.1)),  # chunks 2.9..3.2
        rec(5, timing(3.0, 0.1, 0, 0.0, error="timeout: read")),
        rec(6, timing(3.1, 0.2, 2, 0.5), "cooldown"),  # chunks 3.3, 3.8
    ]
    records[4].timing.output_tokens = 8  # the server says 8 tokens in 4 chunks
    s = summarize_level(
        records, profile="concurrency", level=2, mode="speculative", slo=parse_slo("ttft=250ms,tpot=150ms")
    )
    # window: first measure send 1.0, last measure end: request 4's last chunk 3.2, request 5's end 3.1
    assert (s.window_start_s, s.window_end_s) == pytest.approx((1.0, 3.2))
    assert s.n_records == 7 and s.n_measure == 5 and s.n_ok == 3 and s.n_errors == 2 and s.n_errors_all == 2
    assert s.errors_by_kind == {"http-503": 1, "timeout": 1}
    # requests ending in [1.0, 3.2]: 1, 2, 4 (warm-up ended at 0.9, cool-down at 3.8)
    assert s.request_throughput == pytest.approx(3 / 2.2)
    # tokens emitted in [1.0, 3.2]: 5 + 3 + 8 (4 chunks of 2); the cool-down's first chunk is at 3.3
    assert s.output_tok_s == pytest.approx(16 / 2.2)
    assert s.output_tokens == 16
    assert sum(s.output_tok_s_batches) / len(s.output_tok_s_batches) == pytest.approx(s.output_tok_s)
    assert s.ttft_ms is not None and s.ttft_ms.n == 3
    assert s.ttft_ms.mean == pytest.approx((200 + 300 + 400) / 3)
    # TPOT = (last chunk − first chunk) / (tokens − 1): 0.4/4, 0.4/2, 0.3/7 s
    assert s.tpot_ms is not None and s.tpot_ms.mean == pytest.approx((100 + 200 + 300 / 7) / 3)
    assert s.itl_ms is not None and s.itl_ms.n == 4 + 2 + 3
    assert s.e2e_ms is not None and s.e2e_ms.max == pytest.approx(700)
    assert s.per_request_tok_s is not None
    assert s.per_request_tok_s.mean == pytest.approx((5 / 0.6 + 3 / 0.7 + 8 / 0.7) / 3)
    # goodput: TTFT ≤ 250 and TPOT ≤ 150: only request 1; share over the 5 measure requests
    assert s.goodput is not None and (s.goodput.good, s.goodput.total) == (1, 5)
    assert s.goodput.share == pytest.approx(0.2) and s.goodput.rate_per_s == pytest.approx(1 / 2.2)
    LevelSummary.model_validate_json(s.model_dump_json())  # round-trips through a result file


def test_empty_measure_window_is_an_error() -> None:
    with pytest.raises(VelobenchError, match="no finished request in the measure window"):
        summarize_level(
            [rec(0, timing(0, 0.1, 2, 0.1), "warmup")], profile="concurrency", level=1, mode="vanilla"
        )


def test_throughput_batches_place_tokens_at_their_chunks() -> None:
    t = timing(0.0, 0.05, 10, 0.1)  # chunks 0.05 .. 0.95
    b = throughput_batches([rec(0, t)], (0.0, 1.0), batches=2)
    assert b == pytest.approx([5 / 0.5, 5 / 0.5])
    t.chunk_tokens = [1] * 5 + [3] * 5
    t.output_tokens = 20
    assert throughput_batches([rec(0, t)], (0.0, 1.0), batches=2) == pytest.approx([5 / 0.5, 15 / 0.5])


def test_acceptance_from_counter_deltas() -> None:
    a = acceptance(SpecCounters(drafts=100, draft_tokens=400, accepted_tokens=250))
    assert a is not None and a.acceptance_rate == 0.625 and a.mean_acceptance_length == 3.5
    z = acceptance(SpecCounters(drafts=0, draft_tokens=0, accepted_tokens=0))
    assert z is not None and z.acceptance_rate is None and z.mean_acceptance_length is None
    assert acceptance(None) is None
    with pytest.raises(ValueError):
        SpecCounters(drafts=-1, draft_tokens=0, accepted_tokens=0)


# --------------------------------------------------------------------------- comparisons


def closed_loop(
    c: int, e2e_s: float, seed: int, duration: float = 60.0, tokens: int = 50
) -> list[LoadRecord]:
    """C lanes issuing back to back for `duration` s; e2e ~ e2e_s · (1 ± 10%) each."""
    rng = np.random.default_rng(seed)
    records = []
    for lane in range(c):
        t = lane * 0.01
        while t < duration:
            e2e = e2e_s * (1 + 0.1 * rng.standard_normal())
            ttft = 0.1 * e2e
            records.append(rec(len(records), timing(t, ttft, tokens, (e2e - ttft) / (tokens - 1))))
            t += e2e + 0.001
    records.sort(key=lambda r: r.timing.sent_s)
    return [r.model_copy(update={"index": i}) for i, r in enumerate(records)]


def sweep(spec_e2e: dict[int, float]) -> list:
    """Vanilla e2e grows with C (1.0 s · (1 + 0.1·C)); speculative as given."""
    return [
        compare_level(
            closed_loop(c, 1.0 + 0.1 * c, seed=c), closed_loop(c, spec_e2e[c], seed=100 + c), level=float(c)
        )
        for c in sorted(spec_e2e)
    ]


def test_compare_level_ratios_and_significance() -> None:
    van = closed_loop(2, 1.0, seed=1)
    fast = compare_level(van, closed_loop(2, 0.5, seed=2), level=2)
    assert fast.throughput is not None and fast.throughput.ratio == pytest.approx(2.0, rel=0.05)
    assert fast.e2e is not None and fast.e2e.ratio == pytest.approx(0.5, rel=0.05)
    assert set(fast.better) == {"throughput", "ttft", "tpot", "e2e"} and not fast.worse
    lo, hi = fast.throughput.ci95_low, fast.throughput.ci95_high
    assert lo is not None and hi is not None and lo < fast.throughput.ratio < hi
    same = compare_level(van, closed_loop(2, 1.0, seed=3), level=2)
    assert not same.worse and not same.better
    # the throughput ratio is the ratio of the two levels' output tokens/s
    s_van = summarize_level(van, profile="concurrency", level=2, mode="vanilla")
    s_fast = summarize_level(closed_loop(2, 0.5, seed=2), profile="concurrency", level=2, mode="speculative")
    assert fast.throughput.ratio == pytest.approx(s_fast.output_tok_s / s_van.output_tok_s)  # type: ignore[operator]


def test_short_runs_warn_that_batches_are_correlated() -> None:
    c = compare_level(
        closed_loop(1, 1.0, seed=1, duration=5), closed_loop(1, 1.0, seed=2, duration=5), level=1
    )
    assert any("shorter than a request" in text(w) for w in c.warnings)


def test_crossover_on_constructed_results() -> None:
    # speculation wins at 1 and 2, ties at 4, loses at 8 and 16
    comps = sweep({1: 0.6, 2: 0.8, 4: 1.4, 8: 2.4, 16: 4.0})
    x = crossover(comps)
    assert x.level == 8 and "throughput" in x.by and "e2e" in x.by and x.up_to == 16
    assert x.text.startswith("speculation is significantly worse from concurrency 8 (throughput ×0.")
    # order of the input does not matter; the lowest worse level wins
    assert crossover(list(reversed(comps))).level == 8
    none = crossover(sweep({1: 0.6, 2: 0.8, 4: 1.4}), unit="rate")
    assert none.level is None and none.text == "none up to rate 4"
    # TTFT-only criterion
    assert crossover(comps, criteria=("ttft",)).level == 8
    assert crossover([]).text == "no level compared"


def summary(level: float, batches: list[float], errors: int = 0) -> LevelSummary:
    return LevelSummary(
        profile="concurrency",
        level=level,
        mode="vanilla",
        n_records=10,
        n_measure=10,
        n_ok=10 - errors,
        n_errors=errors,
        n_errors_all=errors,
        errors_by_kind={"timeout": errors} if errors else {},
        window_start_s=0,
        window_end_s=10,
        window_s=10,
        request_throughput=1,
        output_tok_s=float(np.mean(batches)),
        output_tok_s_batches=batches,
        output_tokens=100,
        per_request_tok_s=None,
        ttft_ms=None,
        itl_ms=None,
        tpot_ms=None,
        e2e_ms=None,
    )


def test_saturation() -> None:
    rng = np.random.default_rng(0)

    def noisy(mean: float, sd: float = 1.0) -> list[float]:
        return [float(v) for v in mean + sd * rng.standard_normal(10)]

    rising = [summary(1, noisy(100)), summary(2, noisy(190)), summary(4, noisy(350))]
    assert saturation(rising) is None
    flat = [*rising, summary(8, noisy(355, sd=20))]  # +1.4%, not significant
    s = saturation(flat)
    assert (
        s is not None
        and s.level == 8
        and s.reason == "throughput"
        and s.gain == pytest.approx(0.014, abs=0.04)
    )
    assert "stopped rising at concurrency 8" in s.text
    # a significant rise of less than 5% continues the sweep
    small = [summary(1, noisy(100, sd=0.1)), summary(2, noisy(103, sd=0.1))]
    assert saturation(small) is None
    # a fall saturates
    fall = saturation([summary(1, noisy(100)), summary(2, noisy(80))])
    assert fall is not None and fall.level == 2 and fall.gain is not None and fall.gain < 0
    # errors saturate at once, even with rising throughput
    err = saturation([summary(1, noisy(100)), summary(2, noisy(200), errors=2)])
    assert err is not None and err.level == 2 and err.reason == "errors" and "timeout ×2" in err.text
