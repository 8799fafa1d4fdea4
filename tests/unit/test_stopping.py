"""The `--target-ci` stopping rule: its interval keeps 95% coverage despite a look after every round.

Simulated: log ratios d_i drawn from a normal, a skewed (lognormal) and a heavy-tailed (t, 3 df)
distribution, rounds of 7 pairs (the built-in prompt set), a look after each round until the
rule stops or the limit is hit; the interval at the stop must cover the true θ = E d. With 2000
replications the coverage estimate has a standard error of 0.5 points at 95%: 93.5% is three
of them below 95% and seven above 90%, so a rule covering 90% fails here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from velobench.analysis import stats, stopping

REPS = 2000
STEP = 7  # pairs per round
MAX_LOOKS = 30
SIGMA = 0.1  # sd of the log ratios: tokens/s pairs spread by about 10%

Draw = Callable[[np.random.Generator, tuple[int, int]], np.ndarray]


def _lognormal(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    s = 0.5  # skewness 1.75
    x = rng.lognormal(0.0, s, shape)
    return SIGMA * (x - math.exp(s**2 / 2)) / math.sqrt((math.exp(s**2) - 1) * math.exp(s**2))


DISTRIBUTIONS: dict[str, tuple[Draw, float]] = {
    "normal": (lambda rng, shape: rng.normal(0.3, SIGMA, shape), 0.3),
    "skewed lognormal": (_lognormal, 0.0),
    "heavy-tailed t3": (lambda rng, shape: SIGMA * rng.standard_t(3, shape) / math.sqrt(3), 0.0),
}


def simulate(draw: Draw, theta: float, target: float, *, naive: bool = False, seed: int = 20) -> float:
    """Coverage of θ by the interval at the stop (the rule's, or the plain 95% t-interval with
    `naive`), looking after every round as `velobench run --target-ci` does."""
    rng = np.random.default_rng(seed)
    d = draw(rng, (REPS, stopping.MIN_PAIRS + STEP * MAX_LOOKS))
    covered, done = np.zeros(REPS, bool), np.zeros(REPS, bool)
    for look in range(1, MAX_LOOKS + 1):
        n = stopping.MIN_PAIRS + (look - 1) * STEP
        x = d[:, :n]
        mean, sd = x.mean(axis=1), x.std(axis=1, ddof=1)
        q = stats.t_quantile(n - 1) if naive else stopping.quantile(look, n)
        h = q * sd / math.sqrt(n)
        stop = ~done & ((np.expm1(h) <= target) | (look == MAX_LOOKS))
        covered[stop] = (np.abs(mean - theta) <= h)[stop]
        done |= stop
    assert done.all()
    return float(covered.mean())


@pytest.mark.parametrize("target", [0.02, 0.04, 0.08])
@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_the_rule_keeps_95_percent_coverage(name: str, target: float) -> None:
    draw, theta = DISTRIBUTIONS[name]
    assert simulate(draw, theta, target) >= 0.935


def test_the_plain_interval_looked_at_every_pair_does_not() -> None:
    """What the rule guards against: the plain 95% interval, looked at after every pair from 3 on,
    stops on a lucky narrow one (this is the test that tells the rule's coverage apart)."""
    draw, theta = DISTRIBUTIONS["skewed lognormal"]
    rng = np.random.default_rng(3)
    d = draw(rng, (REPS, 400))
    covered, done = np.zeros(REPS, bool), np.zeros(REPS, bool)
    for n in range(3, 401):
        x = d[:, :n]
        mean, sd = x.mean(axis=1), x.std(axis=1, ddof=1)
        h = stats.t_quantile(n - 1) * sd / math.sqrt(n)
        stop = ~done & ((np.expm1(h) <= 0.02) | (n == 400))
        covered[stop] = (np.abs(mean - theta) <= h)[stop]
        done |= stop
    assert covered.mean() < 0.935  # about 0.91: the threshold the rule passes tells them apart


def test_spending_sums_to_alpha() -> None:
    total = sum(stopping.look_alpha(k) for k in range(1, 200_000))
    assert total == pytest.approx(0.05, rel=1e-4)
    assert stopping.quantile(1, 30) > stats.t_quantile(29)
    with pytest.raises(ValueError):
        stopping.look_alpha(0)


def test_decide_waits_for_the_minimum_and_then_for_the_width() -> None:
    rng = np.random.default_rng(0)
    ratios = np.exp(rng.normal(math.log(1.5), 0.05, 200))
    pairs = [(float(r) * 10.0, 10.0) for r in ratios]
    early = stopping.decide(pairs[: stopping.MIN_PAIRS - 1], 1, 0.5)
    assert not early.reached and early.ci_low is None
    wide = stopping.decide(pairs[:20], 1, 0.001)
    assert not wide.reached and wide.ci_low is not None and wide.ci_high is not None
    assert wide.ci_low < wide.ratio < wide.ci_high
    # the half-width is exp(h) − 1 with h = t_{1−α_1/2, 19} · s / √20
    d = np.log(ratios[:20])
    h = stopping.quantile(1, 20) * float(d.std(ddof=1)) / math.sqrt(20)
    assert wide.relative_half_width == pytest.approx(math.expm1(h))
    assert stopping.decide(pairs, 3, 0.02).reached
    constant = stopping.decide([(2.0, 1.0)] * 30, 1, 0.5)
    assert not constant.reached and constant.ci_low is None
