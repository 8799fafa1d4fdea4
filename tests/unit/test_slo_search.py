"""The SLO search (`load.slo`) on pure functions with known answers, and its coverage under noise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from velobench.errors import VelobenchError
from velobench.load import slo
from velobench.results.load import Goodput, Slo

SLO = Slo(ttft_ms=500)


def step_at(limit: float, n: int = 20):  # type: ignore[no-untyped-def]
    """Every request good up to `limit`, none above."""
    return lambda x: Goodput(slo=SLO, good=n if x <= limit else 0, total=n, share=None, rate_per_s=None)


def test_rate_search_brackets_the_known_maximum() -> None:
    opts = slo.search_options("rate", start=1, max_level=64, resolution=0.25)
    arm = slo.run_search(opts, "vanilla", step_at(5.3))
    assert [s.level for s in arm.steps] == [1, 2, 4, 8, 6, 5, 5.5, 5.25]
    assert [s.phase for s in arm.steps] == ["grow"] * 4 + ["bisect"] * 4
    assert (arm.highest_met, arm.lowest_missed, arm.ended) == (5.25, 5.5, "converged")
    assert (
        arm.text
        == "vanilla: max rate 5.25 requests/s (meets the SLO at 5.25, misses at 5.5; 8 level(s), converged)"
    )


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 11, 15])
def test_concurrency_search_finds_the_exact_maximum(limit: int) -> None:
    opts = slo.search_options("concurrency", start=1, max_level=16, max_levels=10)
    arm = slo.run_search(opts, "speculative", step_at(limit))
    assert (arm.highest_met, arm.lowest_missed, arm.ended) == (limit, limit + 1, "converged")
    assert all(s.level == int(s.level) for s in arm.steps)
    assert len({s.level for s in arm.steps}) == len(arm.steps)  # no level run twice


def test_random_maxima_always_bracketed_within_resolution() -> None:
    rng = np.random.default_rng(7)
    opts = slo.search_options("rate", start=0.5, max_level=32, resolution=0.1, max_levels=16)
    for limit in rng.uniform(0.5, 31.9, 300):
        arm = slo.run_search(opts, "m", step_at(float(limit)))
        assert arm.ended == "converged" and len(arm.steps) <= opts.max_levels
        assert arm.highest_met is not None and arm.lowest_missed is not None
        assert arm.highest_met <= limit < arm.lowest_missed
        assert arm.lowest_missed - arm.highest_met <= opts.resolution


def test_every_level_meets_up_to_the_bound() -> None:
    opts = slo.search_options("rate", start=1, max_level=6)
    arm = slo.run_search(opts, "vanilla", step_at(math.inf))
    assert [s.level for s in arm.steps] == [1, 2, 4, 6]
    assert (arm.highest_met, arm.lowest_missed, arm.ended) == (6, None, "bound")
    assert "meets the SLO at every rate tried, up to 6 requests/s" in arm.text


def test_no_level_meets_shrinks_to_the_floor_and_names_the_best() -> None:
    opts = slo.search_options("rate", start=4, resolution=0.5)

    def falling(x: float) -> Goodput:
        good = int(20 * max(0.0, 0.8 - 0.1 * x))  # at best 70% (x = 0.5): below 90%
        return Goodput(slo=SLO, good=good, total=20, share=None, rate_per_s=None)

    arm = slo.run_search(opts, "vanilla", falling)
    assert [s.level for s in arm.steps] == [4, 2, 1, 0.5] and arm.ended == "none-met"
    assert [s.phase for s in arm.steps] == ["grow", "shrink", "shrink", "shrink"]
    assert (
        arm.text
        == "vanilla: no rate tried meets the SLO (4 level(s), down to 0.5; best goodput 75% at rate 0.5)"
    )
    conc = slo.run_search(slo.search_options("concurrency"), "vanilla", step_at(0))
    assert [s.level for s in conc.steps] == [1] and conc.ended == "none-met"


def test_max_levels_ends_with_the_bracket_so_far() -> None:
    opts = slo.search_options("rate", start=1, max_level=8, resolution=0.01, max_levels=5)
    arm = slo.run_search(opts, "vanilla", step_at(5.3))
    assert [s.level for s in arm.steps] == [1, 2, 4, 8, 6]
    assert (arm.highest_met, arm.lowest_missed, arm.ended) == (4, 6, "max-levels")


def test_nothing_finished_counts_as_missed() -> None:
    s = slo.MaxRateSearch(slo.search_options("rate"), "vanilla")
    assert s.next_level() == 1
    step = s.record(1, None)
    assert (step.good, step.total, step.share, step.met) == (0, 0, None, False)


def test_coverage_of_the_bracket_under_binomial_noise() -> None:
    """Goodput share ~ Binomial(n, p(x)) / n with p falling logistically through the threshold: the
    bracket [lo, hi) holds the true maximum x* (p(x*) = goodput_min) in most searches, and in
    fewer when levels have fewer requests (the noise the interval leaves out, module docstring)."""
    rng = np.random.default_rng(11)
    target = 0.9
    x_star, width = 5.9, 0.3  # not on a level the search tries (6 is: a coin flip there)
    # p(x) = 1 / (1 + exp((x - m) / width)), with m chosen so that p(x*) = target
    m = x_star - width * math.log(1 / target - 1)

    def coverage(n: int, runs: int = 300) -> float:
        opts = slo.search_options(
            "rate", start=1, max_level=32, resolution=0.25, max_levels=10, goodput_min=target
        )
        hits = 0
        for _ in range(runs):

            def noisy(x: float) -> Goodput:
                p = 1 / (1 + math.exp((x - m) / width))
                good = int(rng.binomial(n, p))
                return Goodput(slo=SLO, good=good, total=n, share=None, rate_per_s=None)

            arm = slo.run_search(opts, "m", noisy)
            lo, hi = arm.highest_met or 0.0, arm.lowest_missed or math.inf
            hits += lo <= x_star < hi
        return hits / runs

    many, few = coverage(400), coverage(20)  # measured: 0.97 and 0.43
    assert many >= 0.9
    assert few < 0.7


def test_ratio_bounds_from_the_brackets() -> None:
    assert slo.ratio_bounds(2, 2.5, 3, 3.5) == (1.5, 3 / 2.5, 3.5 / 2)
    assert slo.ratio_bounds(2, None, 3, None) == (1.5, None, None)


def test_compare_arms_sentence() -> None:
    opts = slo.search_options("rate", start=1, max_level=16, resolution=0.25)
    van = slo.run_search(opts, "vanilla", step_at(2.1))
    spec = slo.run_search(opts, "speculative", step_at(3.3))
    r = slo.compare_arms(van, spec, "rate")
    assert (van.highest_met, van.lowest_missed, spec.highest_met, spec.lowest_missed) == (2, 2.25, 3.25, 3.5)
    assert r.ratio == pytest.approx(3.25 / 2) and r.low == pytest.approx(3.25 / 2.25) and r.high == 1.75
    assert r.text == (
        "speculation raises the SLO-compliant rate from 2 to 3.25 requests/s (1.62x, bracket interval [1.44, 1.75])"
    )
    slower = slo.compare_arms(spec, van, "rate")
    assert slower.text.startswith("speculation lowers the SLO-compliant rate from 3.25 to 2 requests/s")
    none = slo.compare_arms(van, slo.run_search(opts, "speculative", step_at(0.1)), "rate")
    assert none.ratio is None and none.text == "no ratio: speculative met the SLO at no rate tried"


@pytest.mark.parametrize(
    ("kind", "kw", "message"),
    [
        ("rate", {"goodput_min": 0}, "--goodput-min must be in (0, 1], got 0"),
        ("rate", {"goodput_min": 1.5}, "--goodput-min must be in (0, 1], got 1.5"),
        ("rate", {"start": 0}, "--search-start must be a positive number, got 0"),
        ("rate", {"start": 8, "max_level": 4}, "--search-max 4 is below --search-start 8"),
        ("concurrency", {"start": 1.5}, "--search-start must be a whole concurrency"),
        ("rate", {"resolution": -1}, "--search-resolution must be a positive number, got -1"),
        ("rate", {"max_levels": 1}, "--search-levels must be at least 2, got 1"),
        (
            "rate",
            {"start": 1, "max_level": 64, "max_levels": 4},
            "--search-max 64 cannot be reached from --search-start 1 in --search-levels 4 (doubling needs 7 levels)",
        ),
    ],
)
def test_bad_search_options_are_one_line(kind: str, kw: dict[str, float], message: str) -> None:
    with pytest.raises(VelobenchError) as err:
        slo.search_options(kind, **kw)  # type: ignore[arg-type]
    assert message in str(err.value) and "\n" not in str(err.value)
