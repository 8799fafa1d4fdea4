"""The load generator's own ceiling: a trivial streaming endpoint on 127.0.0.1 and a client for it.

`LoopbackServer` answers every POST with an OpenAI-style server-sent-event stream of `tokens`
content chunks (optionally `token_delay_s` apart), a usage chunk and `data: [DONE]` (built by
`engines.dialects`, as the servers send them), over
HTTP/1.1 keep-alive with chunked encoding; it does no work, so the requests/s that `run_load`
reaches against it is what velobench itself can issue and complete on this machine. Above that
rate, velobench (not the server) is the bottleneck.

`generator_ceiling` runs one closed-loop level against a `LoopbackServer` through the client
`velobench load` uses (`engines.http_client.AsyncHttpClient`, the one client of run, load and
think) and reports requests/s, chunks/s, client CPU per request and the generator's own lag
(`load.analysis.generator_lag`), as a load result's level does. `httpx_send` is a minimal
streaming client on a bare `httpx.AsyncClient`, for tests that bring their own client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from types import TracebackType
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from velobench.engines import dialects
from velobench.engines.http_client import (
    AsyncHttpClient,
    SseParser,
    StreamFailure,
    StreamRequest,
    StreamState,
)
from velobench.errors import VelobenchError
from velobench.load.analysis import generator_lag, lag_warnings
from velobench.load.generator import HasId, plan, run_load
from velobench.load.procs import HttpOpener, Sendable, run_procs
from velobench.paths import repo_root
from velobench.results.load import GeneratorLag, LevelWarning
from velobench.results.timing import RequestTiming

_ROOT = str(repo_root())  # where this `velobench` imports from (the folder above the package)


class LoopbackServer:
    """`async with LoopbackServer(tokens=16) as srv:` serves on `srv.url` (127.0.0.1, free port).

    A request's JSON body may set `max_tokens` (else `tokens` chunks are sent). A body with
    `"fail": CODE` is answered with that HTTP status, for tests of error handling. `GET /stats`
    answers `{"requests": N, "connections": M}` (streamed requests and connections so far), so a
    client in another process can tell when a benchmark's first request arrived.
    """

    def __init__(self, tokens: int = 16, token_delay_s: float = 0.0):
        self.tokens = tokens
        self.token_delay_s = token_delay_s
        self.requests = 0
        self.connections = 0  # accepted so far (a client that keeps its connections alive opens few)
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> LoopbackServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body: dict[str, Any] = json.loads(await reader.readexactly(length)) if length else {}
                if head.startswith(b"GET /stats "):
                    stats = json.dumps({"requests": self.requests, "connections": self.connections}).encode()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                        % (len(stats), stats)
                    )
                    await writer.drain()
                    continue
                self.requests += 1
                if body.get("fail"):
                    msg = b'{"error": "asked to fail"}'
                    writer.write(
                        b"HTTP/1.1 %d Failed\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                        % (int(body["fail"]), len(msg), msg)
                    )
                    await writer.drain()
                    continue
                await self._stream(writer, int(body.get("max_tokens", self.tokens)))
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _stream(self, writer: asyncio.StreamWriter, n: int) -> None:
        def chunk(payload: dict[str, Any] | str) -> bytes:
            event = dialects.sse_frame(payload)
            return b"%x\r\n%s\r\n" % (len(event), event)

        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for i in range(n):
            if self.token_delay_s:
                await asyncio.sleep(self.token_delay_s)
            writer.write(chunk(dialects.stream_chunk(f" t{i}")))
            await writer.drain()
        usage = {"prompt_tokens": 8, "completion_tokens": n, "total_tokens": 8 + n}
        writer.write(chunk(dialects.stream_chunk("", finish_reason="length", usage=usage)))
        writer.write(chunk("[DONE]") + b"0\r\n\r\n")
        await writer.drain()


def httpx_send(
    client: httpx.AsyncClient, url: str, zero: float, body: dict[str, Any] | None = None
) -> Callable[[int, HasId], Awaitable[RequestTiming]]:
    """A `send` for `run_load`: POST `body` to `url`, stream the SSE answer, time every chunk
    (read by the engines' own parser: `engines.dialects` through `StreamState`).

    Failures become `RequestTiming.error` ("timeout: …", "connection: …", "http-503: …").
    """

    async def send(index: int, prompt: HasId) -> RequestTiming:
        state, parser = StreamState("chat", time.perf_counter() - zero), SseParser()
        error = None
        try:
            async with client.stream("POST", url, json=body or {}) as r:
                if r.status_code != 200:
                    text = (await r.aread())[:200].decode(errors="replace")
                    error = f"http-{r.status_code}: {text}"
                else:
                    async for line in r.aiter_lines():
                        event = parser.feed(line)
                        if event is not None:
                            state.on_event(event, time.perf_counter() - zero)
                        if state.done:
                            break
        except StreamFailure as exc:
            error = str(exc)
        except httpx.TimeoutException as exc:
            error = f"timeout: {exc!r}"
        except httpx.TransportError as exc:
            error = f"connection: {exc!r}"
        return state.result(time.perf_counter() - zero, error=error).timing

    return send


class GeneratorCeiling(BaseModel):
    """What the load generator reached against a loopback endpoint at one concurrency."""

    model_config = ConfigDict(extra="forbid")

    concurrency: int
    requests: int
    tokens_per_request: int
    server: str = Field(description="in-process (same loop and core as the client) or the URL")
    procs: int = Field(default=1, description="generator processes (load.procs), each its own event loop")
    wall_s: float
    requests_per_s: float
    chunks_per_s: float
    client_cpu_s_per_request: float = Field(
        description="the generator's CPU time / requests (this process's; with procs > 1 every generator process's)"
    )
    errors: int
    max_in_flight: int
    lag: GeneratorLag = Field(description="the generator's own lag and CPU share, as in a load result")
    warnings: list[LevelWarning] = Field(
        default_factory=list, description="generator-bottleneck where it fell behind or ran near its ceiling"
    )


class _Id(BaseModel):
    id: str


async def generator_ceiling(
    concurrency: int, requests: int = 2000, tokens: int = 16, url: str | None = None, procs: int = 1
) -> GeneratorCeiling:
    """Closed loop with `concurrency` in flight against `url` (a `LoopbackServer` in another
    process, see `main`) or, without one, a `LoopbackServer` on this event loop (server and
    client then share one core: a lower bound). `procs` > 1: the level is shared among that many
    generator processes (`load.procs`), each with its own event loop and client."""
    async with contextlib.AsyncExitStack() as stack:
        if url is None:
            url = (await stack.enter_async_context(LoopbackServer(tokens=tokens))).url
            where = "in-process"
        else:
            where = url
        req = StreamRequest(endpoint="chat", prompt="loopback", max_tokens=tokens)
        level = plan("concurrency", concurrency=concurrency, requests=requests)
        cpu0 = time.process_time()
        if procs > 1:
            run = await run_procs(HttpOpener(url), [Sendable("p", req)], level, procs)
        else:
            client = await stack.enter_async_context(AsyncHttpClient(url, max_connections=concurrency))
            zero = time.perf_counter()

            async def send(index: int, prompt: HasId) -> RequestTiming:
                return (await client.stream(req, zero=zero, raise_errors=False)).timing

            run = await run_load(send, [_Id(id="p")], level, zero=zero)
        cpu = run.cpu_s if run.procs > 1 else time.process_time() - cpu0
    lag = generator_lag(
        run.records,
        run.loop_lag_s,
        probe_s=run.probe_s,
        cpu_s=run.cpu_s,
        wall_s=run.cpu_wall_s,
        process_cpu_s=run.process_cpu_s,
    )
    ok = [r for r in run.records if r.timing.ok]
    wall = max(r.timing.end_s or 0.0 for r in run.records) - min(r.timing.sent_s for r in run.records)
    return GeneratorCeiling(
        concurrency=concurrency,
        requests=len(run.records),
        tokens_per_request=tokens,
        server=where,
        procs=run.procs,
        wall_s=wall,
        requests_per_s=len(ok) / wall,
        chunks_per_s=sum(len(r.timing.chunk_s) for r in ok) / wall,
        client_cpu_s_per_request=cpu / len(run.records),
        errors=len(run.records) - len(ok),
        max_in_flight=run.max_in_flight,
        lag=lag,
        warnings=lag_warnings(f"concurrency {concurrency}", lag),
    )


def measure_ceilings(
    concurrencies: Sequence[int] = (1, 8, 64), tokens: int = 16, requests: int = 2000, procs: int = 1
) -> list[GeneratorCeiling]:
    """`generator_ceiling` at each concurrency against a `LoopbackServer` in a child process
    (stopped however this ends), so server and client can use separate cores."""
    with loopback_process(tokens) as url:
        return [asyncio.run(generator_ceiling(c, requests, tokens, url, procs)) for c in concurrencies]


@contextlib.contextmanager
def loopback_process(tokens: int = 16) -> Iterator[str]:
    """A `LoopbackServer` in a child process (`python -m velobench.load.loopback serve`); yields
    its URL; terminated (killed past 5 s) and reaped however this ends."""
    child = subprocess.Popen(
        [sys.executable, "-m", "velobench.load.loopback", "serve", str(tokens)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")])),
        },
    )
    try:
        assert child.stdout is not None
        url = child.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise VelobenchError(f"the loopback server did not start (printed {url!r})")
        yield url
    finally:
        child.terminate()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


async def _serve(tokens: int) -> None:
    async with LoopbackServer(tokens=tokens) as srv:
        print(srv.url, flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    """`python -m velobench.load.loopback serve [TOKENS]`: serve on 127.0.0.1 until killed (prints the URL);
    `python -m velobench.load.loopback ceiling [TOKENS] [REQUESTS]`: print the ceiling at C = 1, 8, 64."""
    args = sys.argv[1:] if argv is None else argv
    cmd, tokens = (args[0] if args else "ceiling"), int(args[1]) if len(args) > 1 else 16
    if cmd == "serve":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(tokens))
        return
    for c in measure_ceilings(tokens=tokens, requests=int(args[2]) if len(args) > 2 else 2000):
        print(
            f"C={c.concurrency:<3} {c.requests_per_s:7.0f} req/s {c.chunks_per_s:8.0f} chunks/s "
            f"{c.client_cpu_s_per_request * 1000:5.2f} ms client CPU/request  "
            f"({c.requests} requests x {c.tokens_per_request} tokens, {c.errors} errors)"
        )


if __name__ == "__main__":
    main()
