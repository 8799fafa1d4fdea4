"""The load generator: bounds, in-flight limits, the open-loop schedule, phases, Ctrl-C and faults.

In-process fake `send` coroutines check the scheduling itself; a real loopback HTTP SSE server
(velobench.load.loopback, 127.0.0.1) and httpx.AsyncClient check it end to end.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from pydantic import BaseModel

from velobench.errors import VelobenchError
from velobench.load.arrivals import arrival_schedule
from velobench.load.generator import LoadRun, assign_phases, plan, run_load
from velobench.load.loopback import LoopbackServer, generator_ceiling, httpx_send, measure_ceilings
from velobench.results.load import ArrivalSchedule, LoadPlan, LoadRecord, Window
from velobench.results.timing import RequestTiming

REPO = Path(__file__).resolve().parents[2]


class P(BaseModel):
    id: str


PROMPTS = [P(id=f"p{i}") for i in range(3)]


class FakeServer:
    """`send` that takes `service_s` per request, emitting `tokens` chunks, and counts how many
    requests are in flight at once (as the server would see them)."""

    def __init__(self, zero: float, service_s: float = 0.01, tokens: int = 4):
        self.zero, self.service_s, self.tokens = zero, service_s, tokens
        self.in_flight = self.peak = 0
        self.calls: list[tuple[int, str]] = []

    def now(self) -> float:
        return time.perf_counter() - self.zero

    async def send(self, index: int, prompt: P) -> RequestTiming:
        self.calls.append((index, prompt.id))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        t = RequestTiming(sent_s=self.now())
        try:
            for _ in range(self.tokens):
                await asyncio.sleep(self.service_s / self.tokens)
                t.chunk_s.append(self.now())
                t.chunk_tokens.append(1)
            t.first_token_s = t.chunk_s[0]
            t.output_tokens = self.tokens
            t.end_s = self.now()
            return t
        finally:
            self.in_flight -= 1


def run(
    plan_: LoadPlan, server_kw: dict[str, float] | None = None, **kw: float
) -> tuple[FakeServer, LoadRun]:
    async def main() -> tuple[FakeServer, LoadRun]:
        zero = time.perf_counter()
        srv = FakeServer(zero, **(server_kw or {}))
        return srv, await run_load(srv.send, PROMPTS, plan_, zero=zero, **kw)

    return asyncio.run(main())


@pytest.mark.parametrize("c", [1, 3, 8])
def test_closed_loop_keeps_exactly_c_in_flight(c: int) -> None:
    srv, out = run(plan("concurrency", concurrency=c, requests=40))
    assert srv.peak == c and out.max_in_flight == c  # never more, and the loop does fill C slots
    assert [r.index for r in out.records] == list(range(40)) and out.issued == 40
    assert [r.prompt_id for r in out.records[:4]] == ["p0", "p1", "p2", "p0"]  # prompts cycle
    assert srv.calls == sorted(srv.calls)
    for r in out.records:
        assert r.scheduled_s <= r.issued_s <= r.timing.sent_s
    # a closed loop issues the next request as soon as one ends: C = 1 is strictly sequential
    if c == 1:
        for a, b in zip(out.records, out.records[1:], strict=False):
            assert b.timing.sent_s >= a.timing.end_s


def test_sequential_is_one_at_a_time() -> None:
    srv, out = run(plan("sequential", requests=6))
    assert srv.peak == 1 and len(out.records) == 6


def test_duration_bound_issues_nothing_after_it() -> None:
    _, out = run(plan("concurrency", concurrency=2, duration_s=0.3), {"service_s": 0.05})
    assert out.records and all(r.issued_s < 0.3 for r in out.records)
    assert 8 <= len(out.records) <= 14  # 2 in flight, 50 ms each, 300 ms
    assert max(r.timing.end_s for r in out.records) >= 0.3  # in-flight requests ran to their end


def test_open_loop_follows_the_schedule() -> None:
    sched = arrival_schedule(100.0, seed=5, count=60)
    srv, out = run(plan("rate", schedule=sched), {"service_s": 0.05})
    assert [r.scheduled_s for r in out.records] == sched.offsets_s
    lags = np.array([r.issued_s - r.scheduled_s for r in out.records])
    assert (lags >= 0).all() and np.median(lags) < 0.01 and lags.max() < 0.1
    # open loop: requests overlap whatever is in flight (100 req/s x 50 ms = 5 on average)
    assert srv.peak > 3


def test_open_loop_with_a_cap_waits_for_a_slot() -> None:
    sched = arrival_schedule(200.0, seed=5, count=40)
    srv, out = run(plan("rate", schedule=sched, max_concurrency=2), {"service_s": 0.05})
    assert srv.peak == 2 and len(out.records) == 40
    assert out.records[-1].issued_s - out.records[-1].scheduled_s > 0.5  # 40 x 50 ms / 2 ≫ 0.2 s schedule


def test_open_loop_duration_bound() -> None:
    sched = arrival_schedule(50.0, seed=2, count=100)
    _, out = run(plan("rate", schedule=sched, duration_s=0.5))
    assert out.records and all(r.scheduled_s < 0.5 for r in out.records)
    assert len(out.records) == sum(1 for t in sched.offsets_s if t < 0.5)


def test_an_open_loop_late_for_an_arrival_still_issues_it() -> None:
    """An arrival before the duration belongs to the level however late the loop reaches it: the
    first request blocks the event loop past the duration (as a busy client can), and the second,
    due at 50 ms, is issued at about 200 ms with its lag recorded, not dropped."""
    sched = ArrivalSchedule(process="poisson", rate=20.0, burstiness=1.0, seed=0, offsets_s=[0.0, 0.05])

    async def main() -> LoadRun:
        zero = time.perf_counter()
        srv = FakeServer(zero)

        async def send(index: int, prompt: P) -> RequestTiming:
            if index == 0:
                time.sleep(0.2)  # blocks the loop: the dispatcher wakes late for index 1
            return await srv.send(index, prompt)

        return await run_load(send, PROMPTS, plan("rate", schedule=sched, duration_s=0.1), zero=zero)

    out = asyncio.run(main())
    assert [r.index for r in out.records] == [0, 1]
    late = out.records[1]
    assert late.scheduled_s == 0.05 and late.issued_s > 0.1  # issued after the duration, as it arrived before


def test_phases_by_count_and_by_seconds() -> None:
    _, out = run(
        plan(
            "concurrency",
            concurrency=2,
            requests=12,
            warmup=Window(requests=3),
            cooldown=Window(requests=2),
        )
    )
    assert [r.phase for r in out.records] == ["warmup"] * 3 + ["measure"] * 7 + ["cooldown"] * 2
    timing = RequestTiming(sent_s=0)
    recs = [
        LoadRecord(index=i, prompt_id="p", scheduled_s=t, issued_s=t, timing=timing)
        for i, t in enumerate([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    ]
    phases = [r.phase for r in assign_phases(recs, 6, Window(seconds=0.75), Window(seconds=1.0))]
    assert phases == ["warmup", "warmup", "measure", "measure", "cooldown", "cooldown"]
    # warm-up wins where the windows overlap
    assert {r.phase for r in assign_phases(recs, 6, Window(requests=6), Window(requests=6))} == {"warmup"}


def test_cancel_stops_issuing_and_keeps_what_finished() -> None:
    async def main() -> tuple[FakeServer, LoadRun, float]:
        zero = time.perf_counter()
        srv = FakeServer(zero, service_s=0.1)
        task = asyncio.create_task(
            run_load(
                srv.send, PROMPTS, plan("concurrency", concurrency=4, requests=1000), zero=zero, grace_s=1.0
            )
        )
        await asyncio.sleep(0.35)
        t0 = time.perf_counter()
        task.cancel()
        out = await task
        return srv, out, time.perf_counter() - t0

    srv, out, took = asyncio.run(main())
    assert out.interrupted and took < 0.5  # in-flight requests (0.1 s) finished well within the grace
    assert 12 <= len(out.records) <= 20 and not out.cancelled  # ~3.5 rounds of 4, all kept
    assert out.issued == len(out.records) == len(srv.calls)
    assert all(r.timing.ok for r in out.records)


def test_cancel_gives_up_on_slow_requests_after_the_grace() -> None:
    async def main() -> tuple[LoadRun, float]:
        zero = time.perf_counter()
        srv = FakeServer(zero, service_s=30.0, tokens=1)
        fast = FakeServer(zero, service_s=0.01)

        async def send(i: int, p: P) -> RequestTiming:
            return await (fast if i < 2 else srv).send(i, p)

        task = asyncio.create_task(
            run_load(send, PROMPTS, plan("concurrency", concurrency=3, requests=10), zero=zero, grace_s=0.2)
        )
        await asyncio.sleep(0.1)
        t0 = time.perf_counter()
        task.cancel()
        out = await task
        return out, time.perf_counter() - t0

    out, took = asyncio.run(main())
    assert out.interrupted and 0.15 < took < 1.0
    assert [r.index for r in out.records] == [0, 1] and out.cancelled == [2, 3, 4]


CTRL_C_SCRIPT = """
import asyncio, json, sys, time
from velobench.results.timing import RequestTiming
from velobench.load.generator import plan, run_load
from pydantic import BaseModel

class P(BaseModel):
    id: str

async def main():
    zero = time.perf_counter()
    async def send(i, p):
        t = RequestTiming(sent_s=time.perf_counter() - zero)
        await asyncio.sleep(0.2)
        t.first_token_s = t.end_s = time.perf_counter() - zero
        t.chunk_s = [t.end_s]
        return t
    print("started", flush=True)
    return await run_load(send, [P(id="x")], plan("concurrency", concurrency=4, requests=10_000), zero=zero)

out = asyncio.run(main())
print(json.dumps({"interrupted": out.interrupted, "n": len(out.records), "cancelled": len(out.cancelled)}))
"""


def test_ctrl_c_under_asyncio_run_returns_what_finished() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_SCRIPT],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        time.sleep(0.9)
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        took = time.perf_counter() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    res = json.loads(out.strip().splitlines()[-1])
    assert res["interrupted"] and res["cancelled"] == 0
    assert 12 <= res["n"] <= 24  # ~4-5 rounds of 4 before Ctrl-C, plus the 4 in flight
    assert took < 2.0


def test_a_send_exception_is_fatal_and_cancels_the_rest() -> None:
    async def main() -> None:
        zero = time.perf_counter()
        srv = FakeServer(zero, service_s=5.0)

        async def send(i: int, p: P) -> RequestTiming:
            if i == 2:
                await asyncio.sleep(0.05)
                raise RuntimeError("boom")
            return await srv.send(i, p)

        t0 = time.perf_counter()
        with pytest.raises(RuntimeError, match="boom"):
            await run_load(send, PROMPTS, plan("concurrency", concurrency=3, requests=50), zero=zero)
        assert time.perf_counter() - t0 < 1.0 and srv.in_flight == 0

    asyncio.run(main())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"profile": "concurrency", "concurrency": 0, "requests": 5}, "concurrency must be a positive"),
        ({"profile": "concurrency", "concurrency": -2, "requests": 5}, "concurrency must be a positive"),
        ({"profile": "concurrency", "concurrency": 2}, "request count or a duration"),
        ({"profile": "rate", "requests": 5}, "needs an arrival schedule"),
        ({"profile": "sequential", "requests": 0}, "request count must be > 0"),
        ({"profile": "sequential", "duration_s": 0.0}, "duration must be"),
        ({"profile": "sequential", "requests": 5, "warmup": {"seconds": 1, "requests": 2}}, "not both"),
    ],
)
def test_bad_plans(kwargs: dict[str, object], message: str) -> None:
    if "warmup" in kwargs:
        with pytest.raises((VelobenchError, ValueError), match=message):
            plan(**{**kwargs, "warmup": Window(**kwargs["warmup"])})  # type: ignore[arg-type]
        return
    with pytest.raises(VelobenchError, match=message):
        plan(**kwargs)  # type: ignore[arg-type]


def test_no_prompts_is_an_error() -> None:
    with pytest.raises(VelobenchError, match="at least one prompt"):
        asyncio.run(run_load(FakeServer(0).send, [], plan("sequential", requests=1)))


# --------------------------------------------------------------------------- real HTTP, loopback


def test_real_http_sse_stream_closed_loop() -> None:
    async def main() -> tuple[LoadRun, int]:
        async with LoopbackServer(tokens=5, token_delay_s=0.005) as srv, httpx.AsyncClient() as client:
            zero = time.perf_counter()
            send = httpx_send(client, f"{srv.url}/v1/chat/completions", zero)
            out = await run_load(send, PROMPTS, plan("concurrency", concurrency=4, requests=20), zero=zero)
            return out, srv.requests

    out, served = asyncio.run(main())
    assert served == 20 and out.max_in_flight == 4
    for r in out.records:
        t = r.timing
        assert t.ok and t.output_tokens == 5 and len(t.chunk_s) == 5 and t.finish_reason == "length"
        assert t.sent_s <= t.first_token_s <= t.chunk_s[-1] <= t.end_s
        assert t.tpot_ms() is not None and t.tpot_ms() >= 4.0  # 5 ms between tokens on the server


def test_real_http_errors_become_records() -> None:
    async def main() -> LoadRun:
        async with LoopbackServer() as srv, httpx.AsyncClient() as client:
            zero = time.perf_counter()
            ok = httpx_send(client, f"{srv.url}/v1/chat/completions", zero)
            bad = httpx_send(client, f"{srv.url}/v1/chat/completions", zero, {"fail": 503})
            down = httpx_send(client, "http://127.0.0.1:9/v1/chat/completions", zero)

            async def send(i: int, p: P) -> RequestTiming:
                return await (ok, bad, down)[i % 3](i, p)

            return await run_load(send, PROMPTS, plan("sequential", requests=6), zero=zero)

    out = asyncio.run(main())
    errors = [r.timing.error for r in out.records]
    assert errors[0] is None and errors[3] is None
    assert errors[1].startswith("http-503:") and errors[4].startswith("http-503:")
    assert errors[2].startswith("connection:") and errors[5].startswith("connection:")


def test_generator_ceiling_in_process() -> None:
    c = asyncio.run(generator_ceiling(8, requests=200, tokens=4))
    assert c.errors == 0 and c.requests == 200 and c.max_in_flight == 8
    assert c.requests_per_s > 20  # a trivial endpoint on loopback: far above any real server at batch 8


def test_cancel_during_an_open_loop_wait() -> None:
    async def main() -> tuple[LoadRun, float]:
        zero = time.perf_counter()
        srv = FakeServer(zero, service_s=0.05)
        sched = arrival_schedule(10.0, seed=9, count=1000)
        task = asyncio.create_task(run_load(srv.send, PROMPTS, plan("rate", schedule=sched), zero=zero))
        await asyncio.sleep(1.0)
        t0 = time.perf_counter()
        task.cancel()
        out = await task
        return out, time.perf_counter() - t0

    out, took = asyncio.run(main())
    assert out.interrupted and took < 0.2 and not out.cancelled
    assert out.records and all(r.scheduled_s < 1.0 for r in out.records)
    assert out.issued == len(out.records) < 30  # ~10 req/s for 1 s, nothing issued after the cancel


def test_measure_ceilings_with_the_server_in_a_child_process() -> None:
    out = measure_ceilings((1, 4), tokens=2, requests=60)
    assert [c.concurrency for c in out] == [1, 4] and [c.max_in_flight for c in out] == [1, 4]
    assert all(c.errors == 0 and c.requests == 60 and c.server.startswith("http://127.0.0.1:") for c in out)


def test_cpu_of_children_that_already_exited_is_counted() -> None:
    """A process whose child burned CPU and was reaped: that CPU stays in `_cpu_s` (it vanished
    before, so `--generator-procs` workers that had exited made CPU per request negative)."""
    import subprocess
    import sys

    from velobench.load.vs_vllm import _cpu_s

    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\n"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys, time\nsubprocess.run([sys.executable, '-c', {burn!r}])\ntime.sleep(1.5)",
        ],
        stdin=subprocess.DEVNULL,
    )
    try:
        import time

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _cpu_s(parent.pid) < 0.4:
            time.sleep(0.05)
        time.sleep(0.3)  # the child has exited and been reaped; the parent sleeps
        assert _cpu_s(parent.pid) >= 0.4
    finally:
        parent.kill()
        parent.wait()
