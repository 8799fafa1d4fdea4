"""The load generator: issues requests by a load profile on one asyncio loop and records each one.

It is generic over how a request is sent: `send(index, prompt)` is a coroutine that streams one
request and returns its `RequestTiming` (times in seconds from the run's zero, the same zero as
`run_load`'s `zero`). A request that fails at the HTTP level is a `RequestTiming` with `error`
set ("kind: message"), not an exception. An exception raised by `send` is fatal: issuing stops,
requests in flight are cancelled and the exception propagates (the level is lost, earlier levels
are the caller's to keep).

Profiles (`LoadPlan.profile`):
    sequential   one request at a time (closed loop, C = 1)
    concurrency  closed loop: C requests in flight; a new one is issued as soon as one ends
    rate         open loop: request i is issued at `schedule.offsets_s[i]` (see arrivals.py),
                 whatever is in flight, optionally capped at `max_concurrency` (vLLM's
                 --max-concurrency: a capped request waits, and its issue lags its schedule)

Every run is bounded by `requests` (count) and/or `duration_s` (closed loop: no request is issued
at or after it; open loop: the requests that arrive before it, by their schedule, each issued
however late the loop or a cap made it; requests in flight then run to their end). Bounding an
open loop by its clock instead would drop the arrivals it was late for, so how many requests
a level holds would depend on the client's own lag. Request i uses prompts[i % len(prompts)].

Phases (`assign_phases`): a request's phase follows from its issue order and issue time, after
the run. Warm-up: the first `warmup.requests` issued, or those issued before `warmup.seconds`.
Cool-down: the last `cooldown.requests` issued, or those issued after (last issue time −
`cooldown.seconds`). Everything else is `measure`; warm-up wins where both apply. Statistics
use `measure` records only.

Its own lag (`LoadRun.loop_lag_s`, `cpu_s`, each record's `ready_s`): while a level runs, a
timer task wakes every `probe_s` and records how late it woke (actual − scheduled wake-up: what a
chunk arriving then waits before it is read and timestamped); the process's CPU time is taken
at the level's start and end; each record keeps when it could be sent (`ready_s`: its arrival,
or the moment a slot freed where a capped open loop made it wait), so its send lag is
`timing.sent_s − ready_s`. `load.analysis.generator_lag` summarizes them.

Ctrl-C: under `asyncio.run` (or `asyncio.Runner`) Ctrl-C cancels the main task. `run_load`
treats cancellation of itself as "stop": it issues nothing more, waits up to `grace_s` for the
requests in flight, cancels the rest, and returns what finished with `interrupted=True` (the
caller saves it and then raises `velobench.errors.Interrupted`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from velobench.errors import VelobenchError
from velobench.results.load import ArrivalSchedule, LoadPlan, LoadRecord, Phase, ProfileKind, Window
from velobench.results.timing import RequestTiming

PROBE_S = 0.005  # the lag probe's period: 200 wake-ups a second, a few microseconds of CPU each


class HasId(Protocol):
    @property
    def id(self) -> str: ...


P = TypeVar("P", bound=HasId)
Send = Callable[[int, P], Awaitable[RequestTiming]]


def plan(
    profile: ProfileKind,
    *,
    concurrency: int | None = None,
    schedule: ArrivalSchedule | None = None,
    max_concurrency: int | None = None,
    requests: int | None = None,
    duration_s: float | None = None,
    warmup: Window | None = None,
    cooldown: Window | None = None,
) -> LoadPlan:
    """A checked LoadPlan; bad input raises VelobenchError with one line."""
    if requests is not None and requests <= 0:
        raise VelobenchError(f"request count must be > 0, got {requests}")
    if duration_s is not None and not (0 < duration_s < math.inf):
        raise VelobenchError(f"duration must be a positive number of seconds, got {duration_s!r}")
    if profile == "concurrency":
        if concurrency is None or concurrency <= 0:
            raise VelobenchError(f"concurrency must be a positive whole number, got {concurrency!r}")
    elif concurrency is not None and not (profile == "sequential" and concurrency == 1):
        raise VelobenchError(f"concurrency applies to the concurrency profile, not to {profile}")
    if profile == "rate":
        if schedule is None:
            raise VelobenchError("the rate profile needs an arrival schedule")
        if max_concurrency is not None and max_concurrency <= 0:
            raise VelobenchError(f"max concurrency must be a positive whole number, got {max_concurrency}")
    elif schedule is not None or max_concurrency is not None:
        raise VelobenchError(
            f"an arrival schedule and max concurrency apply to the rate profile, not to {profile}"
        )
    if profile != "rate" and requests is None and duration_s is None:
        raise VelobenchError("a load run needs a request count or a duration (or both)")
    try:
        return LoadPlan(
            profile=profile,
            concurrency=concurrency,
            schedule=schedule,
            max_concurrency=max_concurrency,
            requests=requests,
            duration_s=duration_s,
            warmup=warmup or Window(),
            cooldown=cooldown or Window(),
        )
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise VelobenchError(f"bad load plan: {exc}") from exc


class LoadRun(BaseModel):
    """What one load level produced: the plan, every finished request, and how the run ended."""

    model_config = ConfigDict(extra="forbid")

    plan: LoadPlan
    zero_perf_s: float = Field(description="time.perf_counter() at the run's zero")
    records: list[LoadRecord] = Field(description="finished requests, in order of index")
    issued: int = Field(description="requests issued (finished + cancelled)")
    cancelled: list[int] = Field(default_factory=list, description="indices cancelled by an interruption")
    interrupted: bool = False
    max_in_flight: int = Field(description="most requests in flight at once, as the generator counted")
    wall_s: float = Field(description="zero to the last request's end")
    probe_s: float = Field(default=PROBE_S, description="the lag probe's period")
    loop_lag_s: list[float] = Field(
        default_factory=list, description="the lag probe's late wake-ups (actual − scheduled), in order"
    )
    cpu_s: float = Field(default=0.0, description="this process's CPU time over the level")
    cpu_wall_s: float = Field(default=0.0, description="the wall time cpu_s was taken over")
    procs: int = Field(default=1, description="generator processes (load.procs); 1: this one")
    process_cpu_s: list[float] = Field(
        default_factory=list, description="each generator process's CPU time (procs > 1; cpu_s is their sum)"
    )


def assign_phases(
    records: Sequence[LoadRecord], issued: int, warmup: Window, cooldown: Window
) -> list[LoadRecord]:
    """Copies of `records` with `phase` set (see the module docstring).

    `issued` counts every request issued (cancelled ones too), so a count cool-down is "the last
    K issued"; time windows use `issued_s`. Warm-up wins where a request is in both windows.
    """
    last_issue = max((r.issued_s for r in records), default=0.0)
    out = []
    for r in records:
        phase: Phase = "measure"
        if (cooldown.requests is not None and r.index >= issued - cooldown.requests) or (
            cooldown.seconds is not None and r.issued_s > last_issue - cooldown.seconds
        ):
            phase = "cooldown"
        if (warmup.requests is not None and r.index < warmup.requests) or (
            warmup.seconds is not None and r.issued_s < warmup.seconds
        ):
            phase = "warmup"
        out.append(r.model_copy(update={"phase": phase}))
    return out


async def probe_lag(period_s: float, out: list[float]) -> None:
    """Until cancelled: sleep `period_s`, append how late the wake-up was (s, >= 0), again.

    Each sleep is scheduled from the previous actual wake-up, so one late wake-up is counted once.
    """
    clock = time.perf_counter
    while True:
        due = clock() + period_s
        await asyncio.sleep(period_s)
        out.append(max(clock() - due, 0.0))


class _Fatal(Exception):
    def __init__(self, index: int, exc: BaseException):
        super().__init__(f"request {index}: {exc}")
        self.index, self.exc = index, exc


async def run_load(
    send: Send[P],
    prompts: Sequence[P],
    plan: LoadPlan,
    *,
    zero: float | None = None,
    grace_s: float = 5.0,
    probe_s: float = PROBE_S,
) -> LoadRun:
    """Run one load level (see the module docstring) and return its records.

    `zero` is the `time.perf_counter()` value the run's times are relative to; `send` must use
    the same (default: now). `grace_s` is how long an interruption waits for requests in flight;
    `probe_s` the lag probe's period.
    """
    if not prompts:
        raise VelobenchError("a load run needs at least one prompt")
    zero = time.perf_counter() if zero is None else zero

    def now() -> float:
        return time.perf_counter() - zero

    limit = plan.count_bound()
    slots = plan.slots()
    free = asyncio.Semaphore(slots) if slots is not None else None
    stop = asyncio.Event()
    fatal: list[_Fatal] = []
    records: list[LoadRecord] = []
    tasks: dict[int, asyncio.Task[None]] = {}
    in_flight = 0
    max_in_flight = 0

    async def one(index: int, scheduled: float, ready: float) -> None:
        nonlocal in_flight, max_in_flight
        prompt = prompts[index % len(prompts)]
        in_flight += 1
        max_in_flight = max(max_in_flight, in_flight)
        issued = now()
        try:
            timing = await send(index, prompt)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            fatal.append(_Fatal(index, exc))
            stop.set()
            return
        finally:
            in_flight -= 1
            if free is not None:
                free.release()
        records.append(
            LoadRecord(
                index=index,
                prompt_id=prompt.id,
                scheduled_s=scheduled,
                issued_s=issued,
                ready_s=ready,
                timing=timing,
            )
        )

    async def wait_until(t: float) -> bool:
        """Sleep until run time t unless stopped first; True if still running."""
        delay = t - now()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
        return not stop.is_set()

    def bounded(index: int, t: float) -> bool:
        """May request `index` be issued at run time t?"""
        if stop.is_set() or (limit is not None and index >= limit):
            return False
        return plan.duration_s is None or t < plan.duration_s

    async def dispatch() -> None:
        offsets = plan.schedule.offsets_s if plan.schedule is not None else None
        index = 0
        while True:
            if offsets is not None and (index >= len(offsets) or not await wait_until(offsets[index])):
                return
            # open loop: an arrival belongs to the level by its schedule (module docstring)
            if not bounded(index, offsets[index] if offsets is not None else now()):
                return
            waited = free is not None and free.locked()
            if free is not None:
                await free.acquire()
            if not bounded(index, offsets[index] if offsets is not None else now()):
                if free is not None:
                    free.release()
                return
            scheduled = offsets[index] if offsets is not None else now()
            ready = now() if offsets is not None and waited else scheduled
            tasks[index] = asyncio.create_task(one(index, scheduled, ready))
            index += 1

    loop_lag: list[float] = []
    probe = asyncio.create_task(probe_lag(probe_s, loop_lag))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    interrupted = False
    try:
        await dispatch()
        while not fatal and (pending := [t for t in tasks.values() if not t.done()]):
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        interrupted = True
        stop.set()
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        pending = [t for t in tasks.values() if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=grace_s)
    cpu_s, cpu_wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    probe.cancel()
    await asyncio.gather(probe, return_exceptions=True)
    cancelled = []
    for index, t in tasks.items():
        if not t.done():
            t.cancel()
            cancelled.append(index)
    if cancelled:
        await asyncio.gather(*(tasks[i] for i in cancelled), return_exceptions=True)
    if fatal and not interrupted:
        raise fatal[0].exc
    records.sort(key=lambda r: r.index)
    ends = [r.timing.end_s for r in records if r.timing.end_s is not None]
    return LoadRun(
        plan=plan,
        zero_perf_s=zero,
        records=assign_phases(records, len(tasks), plan.warmup, plan.cooldown),
        issued=len(tasks),
        cancelled=sorted(cancelled),
        interrupted=interrupted,
        max_in_flight=max_in_flight,
        wall_s=max(ends, default=now()),
        probe_s=probe_s,
        loop_lag_s=loop_lag,
        cpu_s=cpu_s,
        cpu_wall_s=cpu_wall_s,
    )
