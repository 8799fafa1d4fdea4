"""Arrival schedules follow the seeded process they claim (KS tests), are reproducible, and refuse bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from velobench.errors import VelobenchError
from velobench.load.arrivals import arrival_schedule, gaps_of
from velobench.results.load import ArrivalSchedule

N = 20_000


def test_poisson_gaps_are_exponential_with_the_rate() -> None:
    s = arrival_schedule(5.0, seed=1, count=N)
    assert s.process == "poisson" and len(s.offsets_s) == N
    gaps = gaps_of(s.offsets_s)
    assert sps.kstest(gaps, sps.expon(scale=1 / 5.0).cdf).pvalue > 0.01
    # the test has power: the same gaps are not exponential at another rate, nor gamma(2)
    assert sps.kstest(gaps, sps.expon(scale=1 / 5.5).cdf).pvalue < 1e-6
    assert sps.kstest(gaps, sps.gamma(a=2, scale=1 / 10).cdf).pvalue < 1e-6
    assert abs(N / s.offsets_s[-1] - 5.0) < 5.0 * 4 / math.sqrt(N)


@pytest.mark.parametrize("burstiness", [0.25, 0.5, 3.0])
def test_gamma_gaps_follow_vllms_shape_and_scale(burstiness: float) -> None:
    rate = 8.0
    gaps = gaps_of(arrival_schedule(rate, seed=7, burstiness=burstiness, count=N).offsets_s)
    assert sps.kstest(gaps, sps.gamma(a=burstiness, scale=1 / (rate * burstiness)).cdf).pvalue > 0.01
    assert sps.kstest(gaps, sps.expon(scale=1 / rate).cdf).pvalue < 1e-6
    # mean 1/rate whatever the burstiness, coefficient of variation 1/sqrt(B)
    assert abs(gaps.mean() * rate - 1) < 0.05
    assert abs(gaps.std() / gaps.mean() - 1 / math.sqrt(burstiness)) < 0.06


def test_gaps_are_independent() -> None:
    gaps = gaps_of(arrival_schedule(3.0, seed=11, count=N).offsets_s)
    lag1 = np.corrcoef(gaps[:-1], gaps[1:])[0, 1]
    assert abs(lag1) < 4 / math.sqrt(N)


def test_seeded_and_reproducible() -> None:
    a = arrival_schedule(2.0, seed=42, count=500)
    assert a.offsets_s == arrival_schedule(2.0, seed=42, count=500).offsets_s
    assert a.offsets_s != arrival_schedule(2.0, seed=43, count=500).offsets_s
    # count- and duration-bounded schedules of one seed share their prefix (blocks of draws)
    d = arrival_schedule(2.0, seed=42, duration_s=600.0)
    k = min(len(a.offsets_s), len(d.offsets_s))
    assert k > 400 and a.offsets_s[:k] == d.offsets_s[:k]
    # recorded in a result and read back, the schedule replays exactly
    back = ArrivalSchedule.model_validate_json(a.model_dump_json())
    assert back.offsets_s == a.offsets_s and back.seed == 42


def test_bounds() -> None:
    d = arrival_schedule(10.0, seed=3, duration_s=5.0)
    assert all(t < 5.0 for t in d.offsets_s) and d.offsets_s == sorted(d.offsets_s)
    longer = arrival_schedule(10.0, seed=3, count=len(d.offsets_s) + 1)
    assert longer.offsets_s[:-1] == d.offsets_s and longer.offsets_s[-1] >= 5.0  # stopped at the first beyond
    both = arrival_schedule(10.0, seed=3, count=10, duration_s=5.0)
    assert both.offsets_s == d.offsets_s[:10]
    assert len(arrival_schedule(10.0, seed=3, count=1000, duration_s=5.0).offsets_s) == len(d.offsets_s)
    assert gaps_of([1.0, 1.5, 3.0]).tolist() == [1.0, 0.5, 1.5]


def test_infinite_rate_sends_everything_at_once() -> None:
    s = arrival_schedule(math.inf, seed=0, count=5)
    assert s.offsets_s == [0.0] * 5 and s.process == "all-at-once"
    assert "all at once" in s.describe()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 0.0, "count": 5}, "rate must be > 0"),
        ({"rate": -1.0, "count": 5}, "rate must be > 0"),
        ({"rate": math.nan, "count": 5}, "rate must be > 0"),
        ({"rate": 1.0, "count": 5, "burstiness": 0.0}, "burstiness"),
        ({"rate": 1.0, "count": 5, "burstiness": math.inf}, "burstiness"),
        ({"rate": 1.0}, "needs a request count or a duration"),
        ({"rate": 1.0, "count": 0}, "count must be > 0"),
        ({"rate": 1.0, "duration_s": -2.0}, "duration must be"),
        ({"rate": math.inf, "duration_s": 2.0}, "needs a request count"),
        ({"rate": 0.001, "duration_s": 0.01}, "no request arrives"),
        ({"rate": 1e9, "duration_s": 1e3}, "more than"),
    ],
)
def test_bad_input(kwargs: dict[str, float], message: str) -> None:
    rate = kwargs.pop("rate")
    with pytest.raises(VelobenchError, match=message):
        arrival_schedule(rate, seed=0, **kwargs)  # type: ignore[arg-type]
