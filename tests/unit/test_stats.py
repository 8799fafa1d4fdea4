"""Tests for velobench.analysis.stats: known values checked against numpy/scipy, plus properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as sps
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from velobench.analysis.stats import (
    acceptance_rate,
    is_high_variance,
    mean_acceptance_length,
    paired_ratio,
    ratio_of_means,
    summarize,
    undefined_test,
)
from velobench.results.measures import Ratio, Summary

VANILLA = [28.45, 28.32, 28.51, 28.39, 28.47]
SPEC = [67.23, 66.89, 67.45, 67.01, 67.32]

sane = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)
sample_lists = st.lists(sane, min_size=2, max_size=30)


# --- summarize -------------------------------------------------------------------------------


def test_summarize_known_data_matches_numpy_and_scipy() -> None:
    s = summarize(VANILLA)
    x = np.array(VANILLA)
    assert s.n == 5
    assert s.mean == pytest.approx(28.428, rel=1e-12)
    assert s.stddev == pytest.approx(float(np.std(x, ddof=1)), rel=1e-12)
    assert s.stddev == pytest.approx(0.0743, abs=5e-5)  # sample (ddof=1) stddev
    assert (s.min, s.max, s.median) == (28.32, 28.51, 28.45)
    lo, hi = sps.t.interval(0.95, 4, loc=float(np.mean(x)), scale=sps.sem(x))
    assert s.ci95_low == pytest.approx(lo, rel=1e-12)
    assert s.ci95_high == pytest.approx(hi, rel=1e-12)
    assert s.samples == VANILLA


def test_samples_keep_their_order() -> None:
    assert summarize([3.0, 1.0, 2.0]).samples == [3.0, 1.0, 2.0]


def test_single_sample_has_no_spread() -> None:
    s = summarize([42.0])
    assert (s.n, s.mean, s.min, s.max, s.median) == (1, 42.0, 42.0, 42.0, 42.0)
    assert s.stddev is None and s.ci95_low is None and s.ci95_high is None
    assert s.cv() is None
    assert not is_high_variance(s, threshold=0.0)


def test_equal_samples_collapse_the_interval() -> None:
    s = summarize([0.1, 0.1, 0.1])
    assert s.mean == 0.1 and s.stddev == 0.0
    assert (s.ci95_low, s.ci95_high) == (0.1, 0.1)


@pytest.mark.parametrize("bad", [[], [1.0, math.nan], [math.inf], [2.0, -math.inf]])
def test_summarize_rejects_empty_and_non_finite(bad: list[float]) -> None:
    with pytest.raises(ValueError) as exc:
        summarize(bad)
    if bad:
        assert repr(next(x for x in bad if not math.isfinite(x))) in str(exc.value)


def test_summarize_rejects_overflowing_mean() -> None:
    with pytest.raises(ValueError, match="overflow"):
        summarize([1e308, 1.5e308])


@pytest.mark.parametrize(
    "model",
    [
        summarize([1.0]),
        summarize([5.0, 5.0]),
        ratio_of_means([1.0], [2.0]),
        ratio_of_means([5.0, 5.0], [5.0, 5.0]),
        ratio_of_means([1.0, 2.0], [1.0, 100.0]),  # unbounded Fieller interval
    ],
)
def test_json_is_always_valid(model: Summary | Ratio) -> None:
    text = model.model_dump_json()
    assert "NaN" not in text and "Infinity" not in text
    assert type(model).model_validate_json(text) == model


def test_cv_is_not_serialized_and_extra_fields_are_forbidden() -> None:
    s = summarize(VANILLA)
    assert "cv" not in s.model_dump()
    with pytest.raises(ValueError):
        Summary.model_validate({**s.model_dump(), "cv": 0.1})


def test_cv_and_high_variance() -> None:
    s = summarize([90.0, 110.0])
    assert s.cv() == pytest.approx(math.sqrt(200.0) / 100.0)
    assert is_high_variance(s)  # CV ≈ 0.141
    assert not is_high_variance(s, threshold=0.15)
    assert not is_high_variance(s, threshold=s.cv() or 0.0)  # strictly above
    assert not is_high_variance(summarize(VANILLA))
    assert summarize([-1.0, 1.0]).cv() is None
    assert summarize([-90.0, -110.0]).cv() == pytest.approx(s.cv())  # spread is non-negative


@settings(max_examples=300)
@given(sample_lists)
def test_ci_contains_mean_and_median_is_between_extremes(xs: list[float]) -> None:
    s = summarize(xs)
    assert s.ci95_low is not None and s.ci95_high is not None
    assert s.ci95_low <= s.mean <= s.ci95_high
    assert s.min <= s.median <= s.max
    assert s.min == min(xs) and s.max == max(xs)


# --- ratio_of_means --------------------------------------------------------------------------


def test_predecessor_example() -> None:
    r = ratio_of_means(SPEC, VANILLA)
    assert r.ratio == pytest.approx(2.363, abs=5e-4)
    assert r.stddev is not None and round(r.stddev, 2) == 0.01
    assert (r.n_a, r.n_b, r.ci_method) == (5, 5, "fieller")


def test_ratio_stddev_is_first_order_propagation() -> None:
    a, b = [10.0, 12.0, 11.0, 13.0], [5.0, 5.5, 4.5]
    ma, mb = np.mean(a), np.mean(b)
    sa, sb = np.std(a, ddof=1), np.std(b, ddof=1)
    expected = (ma / mb) * math.sqrt((sa / ma) ** 2 + (sb / mb) ** 2)
    r = ratio_of_means(a, b)
    assert r.ratio == pytest.approx(ma / mb, rel=1e-12)
    assert r.stddev == pytest.approx(expected, rel=1e-12)


def test_p_value_is_welch() -> None:
    for a, b in [(SPEC, VANILLA), ([10.0, 12.0, 11.0, 13.0], [10.5, 11.5, 12.5])]:
        expected = sps.ttest_ind(a, b, equal_var=False).pvalue
        assert ratio_of_means(a, b).p_value == pytest.approx(expected, rel=1e-12)


def _fieller_by_roots(a: list[float], b: list[float]) -> tuple[float, float]:
    """Solve (m_a - R m_b)² = t²(v_a + R² v_b) for R, with df taken from scipy's Welch test."""
    ma, mb = np.mean(a), np.mean(b)
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    t = sps.t.ppf(0.975, sps.ttest_ind(a, b, equal_var=False).df)
    roots = np.roots([mb**2 - t**2 * vb, -2 * ma * mb, ma**2 - t**2 * va])
    assert np.all(np.isreal(roots))
    lo, hi = sorted(float(np.real(x)) for x in roots)
    return lo, hi


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (SPEC, VANILLA),
        ([10.0, 12.0, 11.0, 13.0], [5.0, 5.5, 4.5]),
        ([1.0, 3.0, 2.0, 2.5], [2.0, 2.5, 1.8, 2.2, 2.1]),
    ],
)
def test_fieller_interval_matches_quadratic_roots(a: list[float], b: list[float]) -> None:
    lo, hi = _fieller_by_roots(a, b)
    r = ratio_of_means(a, b)
    assert r.ci95_low == pytest.approx(lo, rel=1e-9)
    assert r.ci95_high == pytest.approx(hi, rel=1e-9)
    assert lo < r.ratio < hi


def test_fieller_unbounded_when_denominator_is_uncertain() -> None:
    a, b = [1.0, 2.0], [1.0, 100.0]
    # Independent check: the quadratic in R opens downwards, so {R : ...} is not an interval.
    t = sps.t.ppf(0.975, sps.ttest_ind(a, b, equal_var=False).df)
    assert np.mean(b) ** 2 - t**2 * np.var(b, ddof=1) / len(b) < 0
    r = ratio_of_means(a, b)
    assert r.ci95_low is None and r.ci95_high is None
    assert r.stddev is not None and r.p_value is not None


def test_single_samples_give_only_the_ratio() -> None:
    r = ratio_of_means([6.0], [3.0, 3.1])
    assert r.ratio == pytest.approx(6.0 / 3.05)
    assert r.stddev is None and r.ci95_low is None and r.ci95_high is None and r.p_value is None


def test_zero_variance_on_both_sides() -> None:
    # issue 20: constant samples leave the test undefined (it was p = 1 or 0 and [R, R])
    same = ratio_of_means([2.0, 2.0], [2.0, 2.0, 2.0])
    assert (same.ratio, same.stddev, same.p_value) == (1.0, 0.0, None)
    assert (same.ci95_low, same.ci95_high) == (None, None)
    diff = ratio_of_means([4.0, 4.0], [2.0, 2.0])
    assert (diff.ratio, diff.p_value, diff.ci95_low, diff.ci95_high) == (2.0, None, None, None)
    assert undefined_test(same) and undefined_test(diff)


@pytest.mark.parametrize(("a", "b"), [([], [1.0]), ([1.0], []), ([1.0], [0.0]), ([1.0], [-1, 1])])
def test_ratio_rejects_empty_sets_and_zero_denominator(a: list[float], b: list[float]) -> None:
    with pytest.raises(ValueError):
        ratio_of_means(a, b)


@settings(max_examples=300)
@given(sample_lists)
def test_speedup_of_identical_samples_is_one(xs: list[float]) -> None:
    r = ratio_of_means(xs, list(xs))
    assert r.ratio == 1.0
    assert r.p_value in (1.0, None)
    if r.ci95_low is not None and r.ci95_high is not None:
        assert r.ci95_low <= 1.0 <= r.ci95_high


def _cv(xs: list[float]) -> float:
    return float(np.std(xs, ddof=1) / np.mean(xs))


@settings(max_examples=300)
@given(sample_lists, sample_lists, st.floats(min_value=1e-3, max_value=1e3))
def test_scaling_both_sets_changes_nothing(a: list[float], b: list[float], k: float) -> None:
    # Rounding x·k perturbs a near-zero spread by a large *relative* amount; skip such sets.
    assume(_cv(a) > 1e-6 and _cv(b) > 1e-6)
    r0 = ratio_of_means(a, b)
    r1 = ratio_of_means([k * x for x in a], [k * x for x in b])
    assert r1.ratio == pytest.approx(r0.ratio, rel=1e-9)
    assert r1.stddev == pytest.approx(r0.stddev, rel=1e-9)
    assert r1.p_value == pytest.approx(r0.p_value, rel=1e-6, abs=1e-12)
    if r0.ci95_low is None:
        assert r1.ci95_low is None and r1.ci95_high is None
    else:
        assert r1.ci95_low == pytest.approx(r0.ci95_low, rel=1e-9)
        assert r1.ci95_high == pytest.approx(r0.ci95_high, rel=1e-9)


@settings(max_examples=300)
@given(sample_lists, sample_lists, st.floats(min_value=1e-3, max_value=1e3))
def test_scaling_a_scales_the_ratio(a: list[float], b: list[float], k: float) -> None:
    r0 = ratio_of_means(a, b)
    r1 = ratio_of_means([k * x for x in a], b)
    assert r1.ratio == pytest.approx(k * r0.ratio, rel=1e-9)


# --- speculative-decoding counters -----------------------------------------------------------


def test_acceptance_rate() -> None:
    assert acceptance_rate(30, 40) == 0.75
    assert acceptance_rate(0, 40) == 0.0
    assert acceptance_rate(0, 0) is None


def test_mean_acceptance_length() -> None:
    assert mean_acceptance_length(30, 10) == 4.0
    assert mean_acceptance_length(0, 10) == 1.0
    assert mean_acceptance_length(0, 0) is None


# --- the paired estimate (issue 20) ------------------------------------------------------------


def test_paired_ratio_matches_scipy() -> None:
    spec = [67.23, 40.10, 91.45, 55.01, 80.32, 49.9]
    van = [28.45, 19.32, 37.51, 22.39, 35.47, 21.2]
    r = paired_ratio(list(zip(spec, van, strict=True)))
    la, lb = np.log(spec), np.log(van)
    d = la - lb
    assert r.ratio == pytest.approx(float(np.exp(d.mean())), rel=1e-12)
    assert r.p_value == pytest.approx(float(sps.ttest_rel(la, lb).pvalue), rel=1e-9)
    assert r.p_value == pytest.approx(float(sps.ttest_1samp(d, 0.0).pvalue), rel=1e-9)
    lo, hi = sps.ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert (r.ci95_low, r.ci95_high) == (pytest.approx(math.exp(lo)), pytest.approx(math.exp(hi)))
    assert (r.n_a, r.n_b, r.stddev, r.ci_method) == (6, 6, None, "paired-log-t")


def test_pairing_sees_what_pooling_hides() -> None:
    """Prompts of very different speeds, each 5% faster: unpaired, the spread between prompts
    drowns it; paired, it is certain."""
    van = [10.0, 20.0, 40.0, 80.0, 15.0, 60.0]
    jitter = [1.0, 1.01, 0.99, 1.0, 1.005, 0.995]
    spec = [1.05 * v * j for v, j in zip(van, jitter, strict=True)]
    assert ratio_of_means(spec, van).p_value > 0.5  # type: ignore[operator]
    r = paired_ratio(list(zip(spec, van, strict=True)))
    assert r.p_value is not None and r.p_value < 1e-4
    assert r.ci95_low is not None and r.ci95_low > 1.0


def test_paired_ratio_of_constant_or_single_pairs_has_no_test() -> None:
    const = paired_ratio([(2.0, 1.0), (4.0, 2.0), (8.0, 4.0)])
    assert const.ratio == pytest.approx(2.0)
    assert (const.ci95_low, const.ci95_high, const.p_value) == (None, None, None)
    assert undefined_test(const)
    one = paired_ratio([(3.0, 1.0)])
    assert one.ratio == pytest.approx(3.0) and one.p_value is None and not undefined_test(one)
    for bad in ([], [(1.0, 0.0)], [(float("nan"), 1.0)], [(-1.0, 1.0)]):
        with pytest.raises(ValueError):
            paired_ratio(bad)


pair_lists = st.lists(st.tuples(sane, sane), min_size=2, max_size=30)


@settings(max_examples=300)
@given(pair_lists, st.floats(min_value=1e-3, max_value=1e3))
def test_paired_ratio_invariants(pairs: list[tuple[float, float]], k: float) -> None:
    r = paired_ratio(pairs)
    ratios = [a / b for a, b in pairs]
    assert min(ratios) * (1 - 1e-9) <= r.ratio <= max(ratios) * (1 + 1e-9)  # a geometric mean
    if r.ci95_low is not None and r.ci95_high is not None:
        assert 0 < r.ci95_low <= r.ratio <= r.ci95_high
        assert r.p_value is not None and 0 <= r.p_value <= 1
        # swapping the arms inverts the estimate and its interval
        inv = paired_ratio([(b, a) for a, b in pairs])
        assert inv.ratio == pytest.approx(1 / r.ratio, rel=1e-9)
        assert inv.ci95_low == pytest.approx(1 / r.ci95_high, rel=1e-6)
        assert inv.p_value == pytest.approx(r.p_value, rel=1e-6, abs=1e-12)
        # scaling one arm by k scales the estimate and the interval by k, the p-value unchanged
        # unless the scaled log ratios no longer have a spread in floating point
        scaled = paired_ratio([(k * a, b) for a, b in pairs])
        assert scaled.ratio == pytest.approx(k * r.ratio, rel=1e-6)
