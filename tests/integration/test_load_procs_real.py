"""Several generator processes for real (load.procs): worker processes against the loopback
server in its own process, their records merged onto one clock.

Every scheduled request appears exactly once, each request's timeline is monotone, records of
different processes interleave on one time axis, the level's percentiles recomputed from the
records equal its summary, Ctrl-C keeps what finished, a worker's failure is one line, and no
worker is left behind."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Iterator

import numpy as np
import pytest

from velobench.engines.http_client import StreamRequest
from velobench.errors import VelobenchError
from velobench.load.analysis import generator_lag, summarize_level
from velobench.load.arrivals import arrival_schedule
from velobench.load.generator import LoadRun, plan
from velobench.load.loopback import generator_ceiling, loopback_process
from velobench.load.procs import HttpOpener, Sendable, run_procs
from velobench.results.load import Window

pytestmark = pytest.mark.integration

TOKENS = 4


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with loopback_process(TOKENS) as u:
        yield u


def prompts(n: int = 5) -> list[Sendable]:
    return [Sendable(f"p{i}", StreamRequest("chat", f"prompt {i}", TOKENS)) for i in range(n)]


def check_timelines(run: LoadRun) -> None:
    for r in run.records:
        t = r.timing
        assert t.ok, t.error
        assert r.scheduled_s <= r.issued_s <= t.sent_s
        assert t.first_token_s is not None and t.end_s is not None
        assert t.sent_s <= t.first_token_s == t.chunk_s[0]
        assert t.chunk_s == sorted(t.chunk_s) and t.chunk_s[-1] <= t.end_s
        assert len(t.chunk_s) == TOKENS


def test_records_of_three_processes_merge_onto_one_clock(url: str) -> None:
    level = plan("concurrency", concurrency=6, requests=90, warmup=Window(requests=6))
    ps = prompts()
    t0 = time.perf_counter()
    run = asyncio.run(run_procs(HttpOpener(url), ps, level, 3))
    t1 = time.perf_counter()
    assert run.procs == 3 and len(run.process_cpu_s) == 3 and all(c > 0 for c in run.process_cpu_s)
    assert [r.index for r in run.records] == list(range(90)) and run.issued == 90 and not run.cancelled
    assert [r.prompt_id for r in run.records] == [ps[i % 5].id for i in range(90)]
    check_timelines(run)
    # one clock: the zero lies inside this process's own readings around the run, and every
    # record's times lie between that zero and the run's end, whichever process took them
    assert t0 < run.zero_perf_s < t1
    assert all(r.timing.sent_s >= 0 and run.zero_perf_s + r.timing.end_s <= t1 for r in run.records)  # type: ignore[operator]
    by_worker = [[r for r in run.records if r.index % 3 == k] for k in range(3)]
    spans = [(min(r.timing.sent_s for r in w), max(r.timing.end_s or 0 for r in w)) for w in by_worker]
    assert max(s for s, _ in spans) < min(e for _, e in spans)  # the three ran at once
    assert run.max_in_flight == 6
    assert [r.phase for r in run.records[:6]] == ["warmup"] * 6 and run.records[6].phase == "measure"
    # percentiles recomputed from the merged records equal the level's summary
    s = summarize_level(run.records, profile="concurrency", level=6, mode="vanilla")
    measure = [r for r in run.records if r.phase == "measure"]
    ttft = [(r.timing.first_token_s - r.timing.sent_s) * 1000 for r in measure]  # type: ignore[operator]
    e2e = [(r.timing.chunk_s[-1] - r.timing.sent_s) * 1000 for r in measure]
    assert s.n_measure == 84 and s.ttft_ms is not None and s.e2e_ms is not None
    for q, got in ((50, s.ttft_ms.p50.value), (90, s.ttft_ms.p90.value), (99, s.ttft_ms.p99.value)):
        assert got == pytest.approx(float(np.percentile(ttft, q)))
    assert s.e2e_ms.p50.value == pytest.approx(float(np.percentile(e2e, 50)))
    lag = generator_lag(
        run.records,
        run.loop_lag_s,
        probe_s=run.probe_s,
        cpu_s=run.cpu_s,
        wall_s=run.cpu_wall_s,
        process_cpu_s=run.process_cpu_s,
    )
    assert lag.procs == 3 and lag.send_ms is not None and lag.send_ms.n == 90
    assert lag.busiest_cpu_share is not None and lag.cpu_share is not None
    assert lag.busiest_cpu_share <= lag.cpu_share
    assert not multiprocessing.active_children()


def test_an_open_loop_keeps_the_global_schedule(url: str) -> None:
    sched = arrival_schedule(200.0, count=40, seed=7)
    run = asyncio.run(run_procs(HttpOpener(url), prompts(3), plan("rate", schedule=sched), 2))
    assert [r.index for r in run.records] == list(range(40))
    assert [r.scheduled_s for r in run.records] == sched.offsets_s
    check_timelines(run)


def test_ctrl_c_stops_every_worker_and_keeps_what_finished(url: str) -> None:
    async def go() -> LoadRun:
        task = asyncio.create_task(
            run_procs(HttpOpener(url), prompts(), plan("concurrency", concurrency=4, duration_s=30.0), 2)
        )
        await asyncio.sleep(3.0)  # the workers start (~1 s), then run
        task.cancel()
        return await task

    t0 = time.monotonic()
    run = asyncio.run(go())
    assert time.monotonic() - t0 < 15
    assert run.interrupted and run.records and run.procs == 2
    indices = [r.index for r in run.records]
    assert len(set(indices)) == len(indices) and not set(indices) & set(run.cancelled)
    check_timelines(run)
    assert not multiprocessing.active_children()


def test_a_worker_that_fails_is_one_line_and_none_is_left(url: str) -> None:
    opener = HttpOpener(url, client={"no_such_option": 1})
    with pytest.raises(VelobenchError, match=r"^generator process \d: TypeError: .*no_such_option") as exc:
        asyncio.run(run_procs(opener, prompts(), plan("concurrency", concurrency=2, requests=4), 2))
    assert "\n" not in str(exc.value)
    assert not multiprocessing.active_children()


def test_the_ceiling_with_two_processes(url: str) -> None:
    c = asyncio.run(generator_ceiling(8, 200, TOKENS, url, procs=2))
    assert c.procs == 2 and c.requests == 200 and c.errors == 0 and c.max_in_flight == 8
    assert c.lag.procs == 2 and c.client_cpu_s_per_request > 0


def test_ctrl_c_while_the_workers_start_leaves_none_behind(url: str) -> None:
    async def go() -> LoadRun:
        task = asyncio.create_task(
            run_procs(HttpOpener(url), prompts(), plan("concurrency", concurrency=4, requests=100), 2)
        )
        # one turn of the loop: the task has started its workers (synchronously) and waits for
        # their ready messages, which cannot have been read yet; a warm forkserver makes a
        # fixed sleep too long (the workers were ready within 50 ms and the level had begun)
        await asyncio.sleep(0)
        task.cancel()
        return await task

    t0 = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(go())
    assert time.monotonic() - t0 < 4  # the workers ended at once (their pipes closed), none killed late
    assert not multiprocessing.active_children()
