"""Several generator processes: how a level is shared out and merged back (pure; the processes
themselves run in tests/integration/test_load_procs_real.py)."""

from __future__ import annotations

import pytest

from velobench.load.arrivals import arrival_schedule
from velobench.load.generator import LoadRun, plan
from velobench.load.procs import auto_procs, merge, share_prompts, shares, split
from velobench.results.load import LoadRecord, Window
from velobench.results.timing import RequestTiming


def test_auto_is_one_process_on_small_machines_and_one_per_four_cores_above() -> None:
    assert [auto_procs(c) for c in (1, 2, 4, 7, 8, 16, 31, 64, 256)] == [1, 1, 1, 1, 2, 4, 7, 8, 8]


@pytest.mark.parametrize(("c", "requests", "procs"), [(10, 101, 4), (64, 2000, 3), (3, 7, 3), (5, 5, 8)])
def test_a_closed_loop_is_shared_so_every_index_is_one_workers(c: int, requests: int, procs: int) -> None:
    p = plan("concurrency", concurrency=c, requests=requests, warmup=Window(requests=2))
    n = shares(p, procs)
    parts = split(p, n)
    assert n == min(procs, c, requests) and len(parts) == n
    assert sum(q.concurrency or 0 for q in parts) == c
    assert max(q.concurrency or 0 for q in parts) - min(q.concurrency or 0 for q in parts) <= 1
    assert sum(q.requests or 0 for q in parts) == requests
    owned = sorted(j * n + k for k, q in enumerate(parts) for j in range(q.requests or 0))
    assert owned == list(range(requests))  # worker k's j-th request is global index j·n + k
    assert all(q.warmup == Window() and q.cooldown == Window() for q in parts)  # set after the merge


def test_an_open_loop_keeps_every_arrival_at_its_time() -> None:
    sched = arrival_schedule(50.0, count=23, seed=3)
    p = plan("rate", schedule=sched, max_concurrency=5)
    n = shares(p, 2)
    parts = split(p, n)
    assert n == 2 and [q.max_concurrency for q in parts] == [3, 2]
    for k, q in enumerate(parts):
        assert q.schedule is not None
        assert q.schedule.offsets_s == [sched.offsets_s[j * n + k] for j in range(len(q.schedule.offsets_s))]
    assert sum(q.count_bound() or 0 for q in parts) == 23


def test_sequential_and_one_process_are_not_shared() -> None:
    assert shares(plan("sequential", requests=10), 4) == 1
    assert shares(plan("concurrency", concurrency=8, requests=10), 1) == 1
    assert shares(plan("concurrency", concurrency=8, duration_s=2.0), 16) == 8  # at most C


@pytest.mark.parametrize(("n", "length"), [(1, 5), (3, 5), (4, 2), (5, 7)])
def test_each_worker_sends_the_prompt_of_the_global_index(n: int, length: int) -> None:
    prompts = [f"p{i}" for i in range(length)]
    for k in range(n):
        mine = share_prompts(prompts, k, n)
        for j in range(3 * length):
            assert mine[j % len(mine)] == prompts[(j * n + k) % length]


def _run(indices: list[int], cpu_s: float, interrupted: bool = False) -> LoadRun:
    p = plan("concurrency", concurrency=1, requests=max(len(indices), 1))
    recs = [
        LoadRecord(
            index=i,
            prompt_id="p",
            scheduled_s=i * 0.1,
            issued_s=i * 0.1,
            ready_s=i * 0.1,
            timing=RequestTiming(
                sent_s=i * 0.1, first_token_s=i * 0.1 + 0.01, chunk_s=[i * 0.1 + 0.01], end_s=i * 0.1 + 0.02
            ),
        )
        for i in indices
    ]
    return LoadRun(
        plan=p,
        zero_perf_s=0.0,
        records=recs,
        issued=len(indices) + (1 if interrupted else 0),
        cancelled=[len(indices)] if interrupted else [],
        interrupted=interrupted,
        max_in_flight=1,
        wall_s=max((r.timing.end_s or 0 for r in recs), default=0.0),
        loop_lag_s=[0.001] * 3,
        cpu_s=cpu_s,
        cpu_wall_s=1.0,
    )


def test_merge_maps_local_indices_to_global_and_keeps_every_record_once() -> None:
    whole = plan(
        "concurrency", concurrency=3, requests=9, warmup=Window(requests=2), cooldown=Window(requests=1)
    )
    runs = {0: _run([0, 1, 2], 0.2), 1: _run([0, 1], 0.3, interrupted=True), 2: _run([0, 1, 2], 0.4)}
    m = merge(whole, runs, 3, zero=5.0, parent_cpu_s=0.05, interrupted=False)
    assert [r.index for r in m.records] == [
        0,
        1,
        2,
        3,
        4,
        5,
        6,
        8,
    ]  # worker 1's local 2 (2·3 + 1) was cancelled
    assert m.cancelled == [7] and m.interrupted and m.issued == 9 and m.procs == 3
    assert [r.phase for r in m.records][:2] == ["warmup", "warmup"] and m.records[-1].phase == "cooldown"
    assert m.process_cpu_s == [0.2, 0.3, 0.4] and m.cpu_s == pytest.approx(0.95)
    assert m.max_in_flight == 3 and len(m.loop_lag_s) == 9 and m.zero_perf_s == 5.0
