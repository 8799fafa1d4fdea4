"""The load generator's own lag, measured on real levels against the loopback server over real
sockets: a server that is slow on purpose leaves the generator idle (small lag, no warning); a
generator starved of CPU on purpose (a blocking burn inside its event loop) falls behind its
schedule, and every load report says that velobench was the bottleneck."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest
from rich.console import Console

from velobench import export
from velobench.engines.http_client import AsyncHttpClient, StreamRequest
from velobench.load.analysis import CPU_WARN_SHARE, LAG_WARN_MS, generator_lag, lag_stats, lag_warnings
from velobench.load.generator import LoadRun, plan, run_load
from velobench.load.loopback import LoopbackServer
from velobench.load.recompute import recompute
from velobench.load.render import print_load_report
from velobench.load.run import level_result
from velobench.report.warnings import text
from velobench.results.config import RunConfig
from velobench.results.environment import Environment
from velobench.results.load import (
    ArrivalSchedule,
    LevelWarning,
    LevelWarningCode,
    LoadMode,
    LoadOptions,
    LoadPlan,
    LoadRecord,
    LoadReport,
)
from velobench.results.timing import RequestTiming


class _P:
    id = "p"


Send = Callable[[int, _P], Awaitable[RequestTiming]]


async def level(
    p: LoadPlan, *, tokens: int, delay_s: float = 0.0, burn_s: float = 0.0
) -> tuple[LoadRun, LoopbackServer]:
    """One level against an in-process LoopbackServer through AsyncHttpClient; each send first
    burns `burn_s` of CPU inside the event loop (blocking it, as a slow generator would)."""
    async with LoopbackServer(tokens=tokens, token_delay_s=delay_s) as srv:
        client = AsyncHttpClient(srv.url, max_connections=p.slots())
        req = StreamRequest(endpoint="chat", prompt="x", max_tokens=tokens)
        zero = time.perf_counter()

        async def send(index: int, prompt: _P) -> RequestTiming:
            end = time.process_time() + burn_s
            while time.process_time() < end:
                pass
            return (await client.stream(req, zero=zero, raise_errors=False)).timing

        async with client:
            return await run_load(send, [_P()], p, zero=zero), srv


def test_a_server_that_delays_on_purpose_leaves_the_generator_idle() -> None:
    run, _ = asyncio.run(level(plan("concurrency", concurrency=2, requests=40), tokens=4, delay_s=0.025))
    lag = generator_lag(
        run.records, run.loop_lag_s, probe_s=run.probe_s, cpu_s=run.cpu_s, wall_s=run.cpu_wall_s
    )
    assert all(r.timing.ok for r in run.records) and len(run.records) == 40
    # the server's delay is in the latencies, not in the generator's lag
    assert min(r.timing.e2e_ms() or 0 for r in run.records) >= 4 * 25 * 0.9
    assert lag.send_ms is not None and lag.loop_ms is not None
    assert lag.send_ms.n == 40 and lag.loop_ms.n > 200  # a 5 ms probe over about 2 s
    assert lag.send_ms.p99 < LAG_WARN_MS and lag.loop_ms.p99 < LAG_WARN_MS
    assert lag.cpu_share is not None and 0 < lag.cpu_share < CPU_WARN_SHARE
    assert lag_warnings("vanilla", lag) == []


def test_a_generator_starved_of_cpu_falls_behind_and_says_so() -> None:
    # 40 arrivals 5 ms apart, each send first blocking the loop for 15 ms: it cannot keep up
    sched = ArrivalSchedule(
        process="poisson", rate=200.0, burstiness=1.0, seed=0, offsets_s=[i * 0.005 for i in range(40)]
    )
    run, _ = asyncio.run(level(plan("rate", schedule=sched), tokens=2, burn_s=0.015))
    lag = generator_lag(
        run.records, run.loop_lag_s, probe_s=run.probe_s, cpu_s=run.cpu_s, wall_s=run.cpu_wall_s
    )
    assert lag.send_ms is not None and lag.send_ms.p99 > 0.3 * 40 * 0.010  # behind by ~10 ms a request
    warned = lag_warnings("vanilla", lag)
    measures = {w.params["measure"] for w in warned}
    assert "send" in measures and "loop" in measures
    words = [text(w) for w in warned]
    assert (
        f"vanilla: velobench was the bottleneck at this level: p99 send lag {lag.send_ms.p99:.0f} ms" in words
    )


def test_a_slot_wait_under_max_concurrency_is_not_the_generators_lag() -> None:
    # all 12 due at once, one slot: each waits for the one before (by design), then is sent at once
    sched = ArrivalSchedule(
        process="all-at-once", rate=float("inf"), burstiness=1.0, seed=0, offsets_s=[0.0] * 12
    )
    run, _ = asyncio.run(level(plan("rate", schedule=sched, max_concurrency=1), tokens=3, delay_s=0.01))
    last = run.records[-1]
    assert last.issued_s - last.scheduled_s > 11 * 0.03 * 0.9  # it waited its turn
    assert last.ready_s is not None and last.ready_s > last.scheduled_s
    lag = generator_lag(
        run.records, run.loop_lag_s, probe_s=run.probe_s, cpu_s=run.cpu_s, wall_s=run.cpu_wall_s
    )
    assert lag.send_ms is not None and lag.send_ms.p99 < LAG_WARN_MS


def test_lag_stats_are_the_records_percentiles_in_ms() -> None:
    s = lag_stats([0.001 * i for i in range(101)])  # 0 … 100 ms
    assert s is not None and (s.n, s.p50, s.max) == (101, 50.0, 100.0) and s.p99 == pytest.approx(99.0)
    assert lag_stats([]) is None
    rec = LoadRecord(index=0, prompt_id="p", scheduled_s=1.0, issued_s=1.2, timing=RequestTiming(sent_s=1.25))
    assert rec.send_lag_s() == pytest.approx(0.25)  # no ready_s (files before schema 5): from the schedule
    assert rec.model_copy(update={"ready_s": 1.2}).send_lag_s() == pytest.approx(0.05)


def test_the_warnings_words() -> None:
    w = LevelWarningCode.GENERATOR_BOTTLENECK
    said = {
        "send": "vanilla: velobench was the bottleneck at this level: p99 send lag 40 ms",
        "loop": "vanilla: velobench was the bottleneck at this level: p99 event-loop lag 40 ms",
    }
    for measure, words in said.items():
        assert (
            text(LevelWarning(code=w, params={"mode": "vanilla", "measure": measure, "value": 40.2})) == words
        )
    cpu = LevelWarning(code=w, params={"mode": "speculative", "measure": "cpu", "value": 0.97})
    assert text(cpu) == "speculative: velobench was the bottleneck at this level: CPU 97% of a core"


def environment() -> Environment:
    return Environment(
        hostname="h",
        os="linux",
        python="3.11",
        cpu_model="cpu",
        cpu_cores_physical=2,
        cpu_cores_logical=2,
        ram_total_mib=1,
    )


def test_every_load_report_shows_the_lag_and_the_warning() -> None:
    """Two real levels (an idle generator at concurrency 1, a starved one at concurrency 2) stored
    by `velobench load`'s own `level_result`, recomputed, rendered in every format."""
    idle, _ = asyncio.run(level(plan("concurrency", concurrency=1, requests=20), tokens=3, delay_s=0.01))
    starved, _ = asyncio.run(level(plan("concurrency", concurrency=2, requests=20), tokens=2, burn_s=0.02))
    opts = LoadOptions(
        profile="concurrency", levels=[1, 2], sweep=True, requests=20, duration_s=None, seed=0, slots=2
    )
    report = LoadReport(
        config=RunConfig(main_model="t.gguf", draft_model="d.gguf"),
        load=opts,
        environment=environment(),
        prompt_ids=["p"],
        records_file="r.records.jsonl",
    )
    mode = LoadMode(mode="vanilla", binary="llama-server", slots=2)
    records = {}
    for run in (idle, starved):
        lvl = level_result("vanilla", run.plan, run, None, None, None, "2026-01-01T00:00:00Z")
        mode.levels.append(lvl)
        records[("vanilla", lvl.level)] = run.records
    report.modes["vanilla"] = mode
    recompute(report, records)
    one, two = mode.levels
    assert one.lag is not None and two.lag is not None
    assert one.lag.send_ms == lag_stats([r.send_lag_s() for r in idle.records])  # recomputed from records
    assert not one.warnings
    # the burn sits between due and sent, and blocks the probe: both lags (the CPU share depends
    # on how much of the wall time this shared machine gave the test)
    assert {w.params["measure"] for w in two.warnings} >= {"send", "loop"}
    said = f"concurrency 2: {text(two.warnings[0])}"
    assert "velobench was the bottleneck at this level" in said
    con = Console(record=True, width=220, color_system=None)
    print_load_report(con, report)
    for shown in (con.export_text(), export.render([report], "md"), export.render([report], "html")):
        assert said in shown and "velobench lag p99 send/loop, CPU" in shown
    csv = export.render([report], "csv").splitlines()
    assert csv[0].endswith("send_lag_p99_ms,loop_lag_p99_ms,generator_cpu_share")
    assert len(csv) == 3
    again = LoadReport.model_validate_json(export.render([report], "json"))
    assert again.modes == report.modes


def test_the_client_keeps_its_connections_alive() -> None:
    async def go() -> tuple[int, int]:
        async with LoopbackServer(tokens=3) as srv, AsyncHttpClient(srv.url, max_connections=4) as client:
            req = StreamRequest(endpoint="chat", prompt="x", max_tokens=3)
            for _ in range(10):  # one at a time: one connection
                assert (await client.stream(req)).timing.ok
            one = srv.connections
            results = await asyncio.gather(*(client.stream(req) for _ in range(40)))
            assert all(r.timing.ok for r in results)
            most = srv.connections
            async with httpx.AsyncClient() as other:  # what benchmarks/loadgen_vs_vllm.py polls
                stats = (await other.get(f"{srv.url}/stats")).json()
            assert stats == {"requests": 50, "connections": most + 1}
            return one, most

    one, most = asyncio.run(go())
    assert one == 1 and most <= 4


class ClosesKeptAliveConnections(LoopbackServer):
    """Answers the first request of every connection; a second one on it is read, then the
    connection closed without an answer (what llama-server did in the load integration test)."""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            for served in range(2):
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                if served:
                    break
                self.requests += 1
                await self._stream(writer, 3)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def test_a_kept_alive_connection_the_server_closed_is_not_a_failed_request() -> None:
    async def go() -> tuple[list[RequestTiming], int]:
        async with ClosesKeptAliveConnections() as srv, AsyncHttpClient(srv.url, max_connections=1) as client:
            req = StreamRequest(endpoint="chat", prompt="x", max_tokens=3)
            out = [(await client.stream(req, raise_errors=False)).timing for _ in range(4)]
            return out, srv.connections

    timings, connections = asyncio.run(go())
    assert [t.error for t in timings] == [None] * 4 and all(len(t.chunk_s) == 3 for t in timings)
    assert connections == 4  # each sent again, once, on a new connection
