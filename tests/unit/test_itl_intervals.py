"""ITL intervals clustered by request (`load.analysis.clustered_distribution`): the bootstrap is
the brute-force one, the intervals keep their coverage on correlated gaps where pooled ones do not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from velobench.load import analysis as A


def requests(rng: np.random.Generator, m: int, gaps: int = 64) -> list[np.ndarray]:
    """m requests of `gaps` ITLs: a lognormal level per request (its batch, its moment) times
    AR(1) noise within it, the shape real gaps have."""
    level = rng.lognormal(np.log(20), 0.4, size=(m, 1))
    z = signal.lfilter([1], [1, -0.8], rng.normal(0, 0.3, size=(m, gaps)), axis=1)
    return list(level * np.exp(0.6 * z))


def test_the_bootstrap_is_the_brute_force_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(A, "CLUSTER_BOOTSTRAP", 40)
    rng = np.random.default_rng(1)
    gs = [rng.lognormal(0, 0.5, size=rng.integers(1, 30)) for _ in range(12)]
    reps = A._cluster_bootstrap_percentiles(gs, seed=3)
    draw = np.random.default_rng(3)
    for b in range(40):
        counts = draw.multinomial(len(gs), np.full(len(gs), 1 / len(gs)))
        pooled = np.concatenate([g for g, c in zip(gs, counts, strict=True) for _ in range(c)])
        assert reps[b] == pytest.approx([np.percentile(pooled, q) for q in A.PERCENTILES])


def test_points_are_the_pooled_ones_and_few_requests_get_no_interval() -> None:
    gs = requests(np.random.default_rng(2), 10)
    d, pooled = A.clustered_distribution(gs), A.distribution(np.concatenate(gs))
    assert d is not None and pooled is not None
    assert (d.n, d.mean, d.min, d.max, d.p99.value) == pytest.approx(
        (pooled.n, pooled.mean, pooled.min, pooled.max, pooled.p99.value)
    )
    assert d.mean_ci95_low is None and d.p50.ci95_low is None  # 10 < MIN_CLUSTERS requests
    many = A.clustered_distribution(requests(np.random.default_rng(2), 40))
    assert many is not None and many.p50.ci95_low is not None and many.p90.ci95_high is not None
    assert many.p95.ci95_low is None and many.p99.ci95_low is None  # 40·0.05 < 3 in the tail
    assert A.clustered_distribution([[], []]) is None
    assert A.clustered_distribution(gs, seed=5) == A.clustered_distribution(gs, seed=5)


def test_coverage_on_correlated_gaps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Truth from a large population; 150 samples of 64 requests: the clustered intervals cover
    near 95%, the pooled ones (what ITL had) far below."""
    monkeypatch.setattr(A, "CLUSTER_BOOTSTRAP", 300)
    pop = requests(np.random.default_rng(99), 6000)
    allx = np.concatenate(pop)
    truth = {"mean": allx.mean(), 50: np.percentile(allx, 50), 90: np.percentile(allx, 90)}
    rng, reps = np.random.default_rng(7), 150
    hit = dict.fromkeys(truth, 0)
    pooled_hit = 0
    for r in range(reps):
        gs = [pop[i] for i in rng.integers(0, len(pop), 64)]
        d = A.clustered_distribution(gs, seed=r)
        p = A.distribution(np.concatenate(gs))
        assert d is not None and p is not None
        for k, t in truth.items():
            lo, hi = (
                (d.mean_ci95_low, d.mean_ci95_high)
                if k == "mean"
                else (
                    getattr(d, f"p{k}").ci95_low,
                    getattr(d, f"p{k}").ci95_high,
                )
            )
            hit[k] += lo is not None and hi is not None and lo <= t <= hi
        pooled_hit += (p.mean_ci95_low or 0) <= truth["mean"] <= (p.mean_ci95_high or 0)
    cover = {k: v / reps for k, v in hit.items()}
    assert all(c >= 0.87 for c in cover.values()), cover
    assert pooled_hit / reps < 0.6, pooled_hit / reps
