"""The load generator and load statistics against a real llama-server (SmolLM2-135M, -np 2).

A closed loop at concurrency 1 and 2 and a short seeded Poisson run; every summary statistic is
recomputed here from the raw records; the server really had two requests in flight.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from pydantic import BaseModel

from velobench.load.analysis import percentile_point, summarize_level
from velobench.load.arrivals import arrival_schedule
from velobench.load.generator import LoadRun, plan, run_load
from velobench.load.loopback import httpx_send
from velobench.proc import ServerProcess, free_port
from velobench.results.load import LoadPlan, Window

pytestmark = pytest.mark.integration

TOKENS = 24


class P(BaseModel):
    id: str


PROMPTS = [P(id=f"q{i}") for i in range(4)]


def body(max_tokens: int) -> dict[str, object]:
    return {
        "messages": [{"role": "user", "content": "Write a short story about a lighthouse keeper."}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "cache_prompt": False,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.fixture(scope="module")
def server(llama_bin: Path, smol: Path, tmp_path_factory: pytest.TempPathFactory):
    port = free_port()
    argv = [
        str(llama_bin / "llama-server"),
        *("-m", str(smol), "-c", "2048", "-np", "2", "-t", "2", "--metrics"),
        *("--host", "127.0.0.1", "--port", str(port)),
    ]
    with ServerProcess(
        argv, port, tmp_path_factory.mktemp("load") / "server.log", name="llama-server"
    ) as srv:
        yield srv


def load(url: str, p: LoadPlan) -> LoadRun:
    async def main() -> LoadRun:
        async with httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=5.0)) as client:
            zero = time.perf_counter()
            send = httpx_send(client, f"{url}/v1/chat/completions", zero, body(TOKENS))
            return await run_load(send, PROMPTS, p, zero=zero)

    return asyncio.run(main())


@pytest.mark.parametrize("c", [1, 2])
def test_closed_loop_against_llama_server(server: ServerProcess, c: int) -> None:
    run = load(server.base_url, plan("concurrency", concurrency=c, requests=8, warmup=Window(requests=1)))
    assert len(run.records) == 8 and run.max_in_flight == c
    assert all(r.timing.ok and r.timing.output_tokens == TOKENS for r in run.records)  # ignore_eos honoured
    s = summarize_level(run.records, profile="concurrency", level=c, mode="vanilla")
    measure = [r.timing for r in run.records if r.phase == "measure"]
    assert s.n_measure == 7 and s.n_errors == 0
    e2e = [t.e2e_ms() for t in measure]
    assert s.e2e_ms is not None and s.e2e_ms.p90.value == pytest.approx(np.percentile(e2e, 90))
    assert s.ttft_ms is not None and s.ttft_ms.p50.value == pytest.approx(
        percentile_point([t.ttft_ms() for t in measure], 50)
    )
    a = min(t.sent_s for t in measure)
    b = max(t.chunk_s[-1] for t in measure)
    assert s.window_s == pytest.approx(b - a)
    if c == 2:  # two slots really served two requests at once: their streams overlap in time
        spans = sorted((t.sent_s, t.end_s) for t in measure)
        assert any(s2 < e1 for (_, e1), (s2, _) in itertools.pairwise(spans))


def test_poisson_open_loop_against_llama_server(server: ServerProcess) -> None:
    sched = arrival_schedule(4.0, seed=3, count=10)
    run = load(server.base_url, plan("rate", schedule=sched))
    assert [r.scheduled_s for r in run.records] == sched.offsets_s
    assert all(r.issued_s - r.scheduled_s < 0.25 for r in run.records)
    assert all(r.timing.ok for r in run.records)
    s = summarize_level(run.records, profile="rate", level=4.0, mode="vanilla")
    assert s.request_throughput is not None and s.output_tok_s is not None and s.n_ok == 10
