"""The two-sample test of output distributions: its false-positive rate and its stated power,
checked by simulation (seeded, each well under a few seconds)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from velobench.analysis import twosample as ts
from velobench.analysis.lossless import sampled_test
from velobench.results.lossless import Sample


def test_g_statistic_matches_the_formula() -> None:
    a, b = np.array([30, 10]), np.array([20, 20])
    n = 80
    col = a + b
    e_a, e_b = 40 * col / n, 40 * col / n
    expected = 2 * (np.sum(a * np.log(a / e_a)) + np.sum(b * np.log(b / e_b)))
    assert float(ts.g_statistic(a, b)) == pytest.approx(expected)


def test_one_category_or_an_empty_arm_is_no_evidence() -> None:
    assert ts.g_test([1, 1, 1], [1, 1]).p_value == 1.0
    assert ts.g_test([], [1, 2]).p_value == 1.0


def test_holm_adjusts_step_down() -> None:
    assert ts.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert ts.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def test_samples_needed_inverts_the_detectable_difference() -> None:
    n = ts.samples_needed(0.1, 1, 0.05)
    assert ts.detectable_tv(n, n, 1, 0.05) <= 0.1 < ts.detectable_tv(n - 1, n - 1, 1, 0.05)
    assert ts.detectable_tv(3, 3, 1, 0.001) is None  # too few for even TV 1
    with pytest.raises(ValueError):
        ts.samples_needed(0.0, 1, 0.05)


@pytest.mark.parametrize("probs", [[0.5, 0.5], [0.9, 0.05, 0.03, 0.02], list(np.full(12, 1 / 12))])
def test_false_positive_rate_is_at_most_nominal(probs: list[float]) -> None:
    """Same distribution in both arms, small counts (permutation p) and large: rejections at
    α = 0.1 stay within binomial noise of 0.1 (3 σ over 400 trials)."""
    rng = np.random.default_rng(7)
    trials, alpha, n = 400, 0.1, 30
    rejected = 0
    for r in range(trials):
        a = list(rng.choice(len(probs), n, p=probs))
        b = list(rng.choice(len(probs), n, p=probs))
        rejected += ts.g_test(a, b, permutations=199, seed=r).p_value <= alpha
    assert rejected / trials <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / trials)


def test_power_at_the_stated_detectable_difference() -> None:
    """The least favourable pair at TV δ₈₀ (two outcomes, ½ ± δ/2) is detected about 80% of the
    time, small-count (permutation) and large-count (asymptotic) alike; a pair with more mass
    moved per outcome at the same TV is detected more often."""
    rng = np.random.default_rng(11)
    trials = 300
    for n, permute in ((40, True), (40, False), (150, False)):
        d = ts.detectable_tv(n, n, 1, 0.05)
        assert d is not None
        hits = 0
        for r in range(trials):
            a = list(rng.random(n) < 0.5 + d / 2)
            b = list(rng.random(n) < 0.5 - d / 2)
            hits += ts.g_test(a, b, permutations=199, seed=r, force_permutation=permute).p_value <= 0.05
        assert 0.72 <= hits / trials <= 0.92, (n, d, hits / trials)


def _samples(rng: np.random.Generator, probs: list[float], n: int, length: int, prompt: str) -> list[Sample]:
    return [
        Sample(prompt_id=prompt, seed=i, tokens=[int(t) for t in rng.choice(len(probs), length, p=probs)])
        for i in range(n)
    ]


def test_whole_test_false_positive_rate_over_prompts_and_positions() -> None:
    """Two prompts × 4 positions, the same distribution in both arms: Holm keeps the family-wise
    rate at most α (here 0.2, so the simulation can see it)."""
    rng = np.random.default_rng(3)
    probs = [0.6, 0.25, 0.1, 0.05]
    trials, alpha, rejected = 60, 0.2, 0
    for r in range(trials):
        base = _samples(rng, probs, 25, 4, "p1") + _samples(rng, probs, 25, 4, "p2")
        cand = _samples(rng, probs, 25, 4, "p1") + _samples(rng, probs, 25, 4, "p2")
        rejected += sampled_test(base, cand, positions=4, alpha=alpha, seed=r).rejected
    assert rejected / trials <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / trials)


def test_whole_test_detects_a_shift_larger_than_its_stated_difference() -> None:
    """One position of one prompt shifted by more than the stated first-token δ₈₀ is found."""
    rng = np.random.default_rng(5)
    base = _samples(rng, [0.5, 0.5], 120, 2, "p1")
    cand = _samples(rng, [0.5, 0.5], 120, 2, "p1")
    for s in cand:
        s.tokens = [int(rng.random() < 0.2), *(s.tokens or [])[1:]]  # first token: 0.8 / 0.2
    test = sampled_test(base, cand, positions=2, alpha=0.05)
    assert test.detectable_tv_first is not None and test.detectable_tv_first < 0.3
    assert test.rejected and test.worst is not None and test.worst.position == 0
    assert test.samples_needed is not None and test.samples_needed > 120  # TV 0.1 needs more
