"""Two-sample tests of categorical output distributions, with their power (pure numpy/scipy).

Does a speculative arm sample from the same distribution as the vanilla arm? Each arm gives
n generations per prompt; at every token position t the outcomes (token ids) of the two arms
form a 2 × K table (K = distinct tokens seen at t in either arm). One test per (prompt, t):

    G = 2 Σ_arm Σ_k O·ln(O/E),  E = row total · column total / n   (the G-test of homogeneity)

    p  asymptotic: χ²_{K−1} upper tail, where every expected count E ≥ 5 (Cochran's rule);
       else Monte-Carlo permutation: the arm labels shuffled B times,
       p = (1 + #{G* ≥ G}) / (1 + B), valid (P(p ≤ α) ≤ α under H0) for any B.

The m tests are combined by Holm's step-down correction: sorted p_(1) ≤ … ≤ p_(m),
p̃_(i) = max_{j ≤ i} min(1, (m − j + 1)·p_(j)); the arms differ when any p̃ ≤ α. The
family-wise false-positive rate is at most α whatever the dependence between positions.

Power, stated as a detectable difference. For two samples of sizes n₁, n₂ from distributions
a and b the G (and χ²) statistic is asymptotically noncentral χ²_{K−1}(λ) with

    λ = n₁n₂/(n₁+n₂) · Σ_k (a_k − b_k)² / m_k,   m = (n₁a + n₂b)/(n₁+n₂).

By Cauchy–Schwarz, (Σ|a_k − b_k|)² ≤ Σ (a_k − b_k)²/m_k · Σ m_k, and Σ|a − b| = 2·TV, so
every pair at total variation δ has λ ≥ 4δ²·n₁n₂/(n₁+n₂) (equality: two outcomes, m = ½, ½).
The detectable difference δ₈₀ is the smallest δ whose least favourable λ gives the test of
one position, at Bonferroni's level α/m (Holm rejects at least whenever Bonferroni does),
power 0.8: P(χ²_{K−1}(λ) > χ²_{K−1, 1−α/m}) = 0.8. "No difference found" then means "no
difference of TV ≥ δ₈₀ at any one position", never "lossless". The samples per arm needed
for a requested δ follow from the same equation solved for n (n₁ = n₂ = n: λ = 2nδ²).
`tests/unit/test_twosample.py` checks the false-positive rate and this power by simulation.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: `velobench --help` needs neither
    import numpy as np

POWER = 0.8
COCHRAN_MIN_EXPECTED = 5.0
DEFAULT_PERMUTATIONS = 1999


@dataclass(frozen=True)
class TableTest:
    """One 2 × K table's G-test: the statistic, its p and how p was found."""

    statistic: float
    p_value: float
    categories: int
    method: str  # "chi-square" (asymptotic) | "permutation" (Monte-Carlo, `permutations` shuffles) | "none"
    permutations: int = 0


def encode(a: Sequence[Hashable], b: Sequence[Hashable]) -> tuple[np.ndarray, int]:
    """Both samples' outcomes as integers 0..K−1 (arm a first, then b), and K."""
    import numpy as np

    codes: dict[Hashable, int] = {}
    x = np.fromiter(
        (codes.setdefault(v, len(codes)) for v in [*a, *b]), dtype=np.int64, count=len(a) + len(b)
    )
    return x, len(codes)


def g_statistic(counts_a: np.ndarray, counts_b: np.ndarray) -> np.ndarray:
    """G = 2 Σ O ln(O/E) of the 2 × K tables (last axis: categories; leading axes: many tables).

    E = row total · column total / n; cells with O = 0 contribute 0.
    """
    import numpy as np

    a = np.asarray(counts_a, dtype=np.float64)
    b = np.asarray(counts_b, dtype=np.float64)
    na, nb = a.sum(axis=-1, keepdims=True), b.sum(axis=-1, keepdims=True)
    col = a + b
    n = na + nb
    with np.errstate(divide="ignore", invalid="ignore"):
        ea, eb = na * col / n, nb * col / n
        ta = np.where(a > 0, a * np.log(a / ea), 0.0)
        tb = np.where(b > 0, b * np.log(b / eb), 0.0)
    return np.asarray(2.0 * (ta.sum(axis=-1) + tb.sum(axis=-1)))


def g_test(
    a: Sequence[Hashable],
    b: Sequence[Hashable],
    *,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
    force_permutation: bool = False,
) -> TableTest:
    """The G-test of homogeneity of two samples of outcomes (see the module docstring).

    Asymptotic χ² p where every expected count is ≥ 5, else (or with `force_permutation`) the
    Monte-Carlo permutation p with `permutations` shuffles of the arm labels (seeded).
    One category, or an empty sample, is no evidence of a difference: p = 1.
    """
    import numpy as np
    from scipy import stats as sps

    x, k = encode(a, b)
    na, nb = len(a), len(b)
    if k < 2 or na == 0 or nb == 0:
        return TableTest(statistic=0.0, p_value=1.0, categories=k, method="none")
    ca = np.bincount(x[:na], minlength=k)
    cb = np.bincount(x[na:], minlength=k)
    g = float(g_statistic(ca, cb))
    expected_min = min(na, nb) * float((ca + cb).min()) / (na + nb)
    if expected_min >= COCHRAN_MIN_EXPECTED and not force_permutation:
        return TableTest(statistic=g, p_value=float(sps.chi2.sf(g, k - 1)), categories=k, method="chi-square")
    rng = np.random.default_rng(seed)
    shuffled = rng.permuted(np.tile(x, (permutations, 1)), axis=1)
    offsets = (np.arange(permutations) * k)[:, None]
    pa = np.bincount((shuffled[:, :na] + offsets).ravel(), minlength=permutations * k).reshape(
        permutations, k
    )
    pb = (ca + cb)[None, :] - pa
    gs = g_statistic(pa, pb)
    hits = int(np.count_nonzero(gs >= g - 1e-9 * max(1.0, abs(g))))
    return TableTest(
        statistic=g,
        p_value=(1 + hits) / (1 + permutations),
        categories=k,
        method="permutation",
        permutations=permutations,
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order:
    p̃_(i) = max_{j ≤ i} min(1, (m − j + 1)·p_(j)) over the sorted p_(1) ≤ … ≤ p_(m)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out


def permutations_for(tests: int, alpha: float) -> int:
    """Shuffles enough that the smallest Monte-Carlo p, 1/(1 + B), can pass Bonferroni's α/m
    with room (B + 1 ≥ 20·m/α), and at least DEFAULT_PERMUTATIONS."""
    return max(DEFAULT_PERMUTATIONS, math.ceil(20 * max(tests, 1) / alpha) - 1)


def power(lam: float, df: int, alpha: float) -> float:
    """P(χ²_df(λ) > χ²_{df,1−α}): the asymptotic power of a level-α χ²/G test at noncentrality λ."""
    from scipy import stats as sps

    crit = float(sps.chi2.isf(alpha, df))
    return float(sps.ncx2.sf(crit, df, lam)) if lam > 0 else alpha


def noncentrality_for_power(df: int, alpha: float, target: float = POWER) -> float:
    """The λ at which the level-α test with `df` degrees of freedom has power `target`."""
    from scipy.optimize import brentq

    hi = 1.0
    while power(hi, df, alpha) < target:
        hi *= 2
    return float(brentq(lambda lam: power(lam, df, alpha) - target, 1e-9, hi, xtol=1e-9))


def detectable_tv(n_a: int, n_b: int, df: int, alpha: float, target: float = POWER) -> float | None:
    """δ₈₀: the smallest total variation detected with probability `target` by one position's
    test at level `alpha`, for the least favourable pair at that TV:
    δ = sqrt(λ* · (n_a + n_b) / (4·n_a·n_b)). None where even TV 1 is not (too few samples)."""
    if n_a <= 0 or n_b <= 0:
        return None
    lam = noncentrality_for_power(max(df, 1), alpha, target)
    delta = math.sqrt(lam * (n_a + n_b) / (4 * n_a * n_b))
    return delta if delta <= 1.0 else None


def samples_needed(delta: float, df: int, alpha: float, target: float = POWER) -> int:
    """Samples per arm (n_a = n_b = n, λ = 2nδ²) for one position's test at level `alpha` to
    detect total variation `delta` with probability `target`: n = ⌈λ* / (2δ²)⌉."""
    if not 0 < delta <= 1:
        raise ValueError(f"a detectable difference is a total variation in (0, 1], not {delta}")
    lam = noncentrality_for_power(max(df, 1), alpha, target)
    return math.ceil(lam / (2 * delta * delta))


def total_variation(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """½ Σ_k |â_k − b̂_k| between the two samples' empirical distributions (0 if either is empty)."""
    if not a or not b:
        return 0.0
    keys = set(a) | set(b)
    fa = {k: 0 for k in keys}
    fb = dict(fa)
    for v in a:
        fa[v] += 1
    for v in b:
        fb[v] += 1
    return 0.5 * sum(abs(fa[k] / len(a) - fb[k] / len(b)) for k in keys)
