"""The stopping rule of `--target-ci`: add rounds until the paired interval is narrow enough.

Looking at an interval after every round and stopping once it is narrow is a sequential
procedure: with the plain 95% t-interval at every look, the interval at the moment it stops
covers the true speedup less often than 95% (stopping favours looks whose spread happened to
read small). The rule here spends the 5% over the looks (a Bonferroni "alpha spending"):

    look k = 1, 2, ... (one per round, from the first with at least MIN_PAIRS pairs)
    α_k    = α · 6 / (π² k²)                    (Σ_k α_k = α, for any number of looks)
    I_k    = exp(d̄_k ± t_{1−α_k/2, n_k−1} · s_k / √n_k)

with d̄_k, s_k the mean and standard deviation of the n_k log ratios d_i = ln(a_i / b_i) at look
k. Each I_k covers θ = exp(E d) with probability 1 − α_k (exactly, for normal d), so by the
union bound P(some I_k misses θ) ≤ Σ α_k = α: the interval at any stopping time, however it was
chosen, covers θ with probability ≥ 95%. The price is width: t at α_1 = 3.0% is about 1.1 times
the fixed-n quantile, at look 10 (α_10 = 0.03%) about 1.8 times. The rule stops when the
relative half-width max(hi/R − 1, 1 − lo/R) = exp(h) − 1 is at most the target (h the log
half-width). A simulation test (tests/unit/test_stopping.py) checks the coverage on normal,
skewed and heavy-tailed log ratios, where exactness is not promised. Not covered: extremely
skewed log ratios (lognormal of skewness 6 covers about 90% even at a fixed 30 pairs), where no
t-interval holds its level; their spread shows as high variance in the result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from velobench.analysis import stats

ALPHA = 0.05
# The first look waits for this many pairs: below it the t-interval itself undercovers skewed
# log ratios (simulated: lognormal of skewness 1.75, 6 pairs, 93.7%; 20 pairs, 95.1%).
MIN_PAIRS = 20


def look_alpha(look: int, alpha: float = ALPHA) -> float:
    """α_k = α · 6 / (π² k²) of look k ≥ 1: the share of α spent at that look (Σ_k α_k = α)."""
    if look < 1:
        raise ValueError(f"look_alpha: look {look} is not >= 1")
    return alpha * 6 / (math.pi**2 * look**2)


def quantile(look: int, n: int, alpha: float = ALPHA) -> float:
    """t_{1−α_k/2, n−1}: the critical value of look k with n pairs (n ≥ 2)."""
    if n < 2:
        raise ValueError(f"quantile: {n} pairs give no spread (need >= 2)")
    return stats.t_quantile(n - 1, confidence=1 - look_alpha(look, alpha))


def relative_half_width(log_half_width: float) -> float:
    """exp(h) − 1: the larger of hi/R − 1 and 1 − lo/R of the interval exp(d̄ ± h) around R = exp(d̄)."""
    return math.expm1(log_half_width)


@dataclass(frozen=True)
class Decision:
    """One look: the interval valid at this look whatever the looks before said, and its verdict."""

    look: int
    n_pairs: int
    ratio: float
    ci_low: float | None
    ci_high: float | None
    relative_half_width: float | None
    reached: bool


def decide(pairs: Sequence[tuple[float, float]], look: int, target: float) -> Decision:
    """Look k at the pairs (a_i, b_i) so far: the sequential interval I_k (module docstring) and
    whether its relative half-width is ≤ `target` (a fraction: 0.05 for 5%). Fewer than
    MIN_PAIRS pairs, or log ratios without spread, never reach the target (no interval)."""
    d = stats.log_ratios(pairs, "decide")
    n = int(d.size)
    mean = float(d.mean())
    ratio = math.exp(mean)
    sd = float(d.std(ddof=1)) if n >= 2 else 0.0
    if n < MIN_PAIRS or not sd > 0 or stats.no_spread(d):
        return Decision(look, n, ratio, None, None, None, False)
    h = quantile(look, n) * sd / math.sqrt(n)
    rel = relative_half_width(h)
    return Decision(look, n, ratio, math.exp(mean - h), math.exp(mean + h), rel, rel <= target)
