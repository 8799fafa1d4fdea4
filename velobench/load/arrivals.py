"""Seeded arrival schedules for open-loop load: when each request is sent, in seconds from zero.

The process is vLLM's (`vllm bench serve --request-rate R --burstiness B`): the gaps between
arrivals are independent Gamma(shape=B, scale=1/(R·B)) draws, so their mean is 1/R whatever B
is and their coefficient of variation is 1/√B. B = 1 is the exponential distribution, i.e. a
Poisson process; B < 1 is burstier, B > 1 more regular. Arrival i (0-based) is sent at
t_i = g_0 + … + g_i (the first request waits one gap too, as in vLLM and in a Poisson process
that starts at 0). `rate = inf` sends every request at once (t_i = 0, count bound only).

Unlike vLLM, the offsets are not rescaled so that the last one equals N/R: a schedule bounded by a
duration cannot be rescaled, and rescaling would make the gaps no longer independent draws of the
stated distribution. The mean rate of a finite schedule therefore differs from R by chance
(about 1/√N relatively).

A schedule is a pure function of (rate, burstiness, seed, bounds): gaps are drawn from
`numpy.random.default_rng(seed)` in blocks of `_BLOCK`, so a count-bounded and a duration-bounded
schedule with one seed share their common prefix. The offsets themselves are recorded too, so a
run can be replayed exactly even if numpy's generator ever changes.
"""

from __future__ import annotations

import math

import numpy as np

from velobench.errors import VelobenchError
from velobench.results.load import ArrivalSchedule

_BLOCK = 1024
MAX_ARRIVALS = 10_000_000  # a guard against a schedule that would not fit in memory


def check_rate(rate: float, burstiness: float = 1.0) -> None:
    """Raise VelobenchError unless 0 < rate (inf allowed) and 0 < burstiness < inf."""
    if not (rate > 0) or math.isnan(rate):
        raise VelobenchError(f"request rate must be > 0 requests/s, got {rate!r}")
    if not (0 < burstiness < math.inf):
        raise VelobenchError(f"burstiness must be a positive finite number (1 = Poisson), got {burstiness!r}")


def arrival_gaps(rate: float, burstiness: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """n independent gaps g ~ Gamma(shape=burstiness, scale=1/(rate·burstiness)), seconds.

    E[g] = 1/rate, Var[g] = 1/(rate²·burstiness); burstiness 1 is Exp(rate).
    """
    return rng.gamma(shape=burstiness, scale=1.0 / (rate * burstiness), size=n)


def arrival_schedule(
    rate: float,
    *,
    seed: int,
    burstiness: float = 1.0,
    count: int | None = None,
    duration_s: float | None = None,
) -> ArrivalSchedule:
    """The send offsets t_0 ≤ t_1 ≤ … of an open-loop run (see the module docstring).

    Bounded by `count` (the first `count` arrivals) and/or `duration_s` (arrivals with
    t_i < duration_s); with both, whichever ends first. At least one bound is required, and
    `rate = inf` needs `count`. Bad input raises VelobenchError.
    """
    check_rate(rate, burstiness)
    if count is None and duration_s is None:
        raise VelobenchError("an arrival schedule needs a request count or a duration (or both)")
    if count is not None and count <= 0:
        raise VelobenchError(f"request count must be > 0, got {count}")
    if duration_s is not None and not (0 < duration_s < math.inf):
        raise VelobenchError(f"duration must be a positive number of seconds, got {duration_s!r}")
    if math.isinf(rate):
        if count is None:
            raise VelobenchError("an infinite request rate needs a request count (it sends them all at once)")
        return ArrivalSchedule(
            process="all-at-once",
            rate=rate,
            burstiness=burstiness,
            seed=seed,
            count=count,
            duration_s=duration_s,
            offsets_s=[0.0] * count,
        )
    expected = count if count is not None else math.ceil(rate * float(duration_s or 0.0))
    if expected > MAX_ARRIVALS:
        raise VelobenchError(
            f"that schedule would hold about {expected} requests (more than {MAX_ARRIVALS}); "
            "lower the rate, the duration or the count"
        )
    rng = np.random.default_rng(seed)
    offsets: list[float] = []
    t = 0.0
    done = False
    while not done:
        for g in arrival_gaps(rate, burstiness, _BLOCK, rng):
            t += float(g)
            if duration_s is not None and t >= duration_s:
                done = True
                break
            offsets.append(t)
            if count is not None and len(offsets) >= count:
                done = True
                break
    if not offsets:
        raise VelobenchError(
            f"no request arrives within {duration_s:g} s at {rate:g} requests/s (seed {seed}): "
            "lengthen the duration or raise the rate"
        )
    return ArrivalSchedule(
        process="poisson" if burstiness == 1.0 else "gamma",
        rate=rate,
        burstiness=burstiness,
        seed=seed,
        count=count,
        duration_s=duration_s,
        offsets_s=offsets,
    )


def gaps_of(offsets_s: list[float]) -> np.ndarray:
    """The inter-arrival gaps of a schedule: t_0 − 0, t_1 − t_0, … (the inverse of the cumsum)."""
    return np.diff(np.asarray(offsets_s, dtype=np.float64), prepend=0.0)
