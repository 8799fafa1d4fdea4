"""The one measuring HTTP client of every HTTP engine: streamed requests timed on the client clock.

Speaks the OpenAI-compatible streaming endpoints (`/v1/completions`, `/v1/chat/completions`) that
vLLM, llama-server, SGLang and others serve, and llama-server's native `/completion`. Each
request becomes a `RequestTiming` (when it was sent, when each chunk of tokens arrived, how many
tokens each carried, how it ended) plus the text, the token ids where the server sends them, and
the server's own closing accounting (`usage`, llama-server's `timings`).

Token counts never come from counting chunks: the output count is the server's (`usage.
completion_tokens`, or `timings.predicted_n` on `/completion`), and tokens per chunk come from the
chunk's token ids (`/completion`, vLLM's `return_token_ids`), else from the growth of a running
count the server sends with every chunk (vLLM's `stream_options.continuous_usage_stats`,
llama-server's `timings_per_token`), else 1 per chunk that carries text.

What is sent and read back is `engines.dialects` (one table of pure builders and parsers);
`StreamState` and `classify` are pure too;
`HttpClient` (httpx.Client: run and think, one stream at a time) and `AsyncHttpClient` (aiohttp:
load, many streams on one event loop) only move bytes and read the clock. A failure is a `RequestFailed` (a one-line `VelobenchError`) or, with `raise_errors=False`,
`RequestTiming.error = "kind: message"` with every chunk received before it kept. Kinds: `connect`,
`timeout`, `http-<status>`, `stream-ended`, `bad-event`, `server-error`.

The API key is sent as `Authorization: Bearer KEY` and appears nowhere else: not in a message
(server messages are scrubbed of it too), a repr, or a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import httpx
from pydantic import BaseModel, ConfigDict

from velobench.engines import dialects
from velobench.engines import metrics as prom
from velobench.engines.dialects import (
    PATHS,
    Endpoint,
    SseEvent,
    SseParser,
    StreamFailure,
    error_message,
    flatten,
    sse_events,
)
from velobench.errors import VelobenchError
from velobench.results.timing import RequestTiming


def _absent_stays_absent(name: str) -> None:
    """Make `import name` of a module that is not installed fail at once rather than search sys.path.

    httpcore imports `sniffio` (optional) on every lock, event and cancellation shield it makes,
    several per request; where it is not installed each try walks every sys.path entry (a third
    of the client's CPU per request on the loopback profile). `sys.modules[name] = None` is
    Python's own "this import fails" (ImportError, as before), so nothing else changes.
    """
    if name not in sys.modules and importlib.util.find_spec(name) is None:
        sys.modules[name] = None  # type: ignore[assignment]


_absent_stays_absent("sniffio")

DEFAULT_CONNECT_S = 10.0
DEFAULT_READ_S = 120.0  # a long prompt on a CPU can take minutes before the first token
DEFAULT_DEADLINE_S = 600.0


# ---------------------------------------------------------------------------------------------
# What is sent
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamRequest:
    """One streamed generation request; `extra` is merged into the JSON body last (engine-specific
    fields such as llama-server's `timings_per_token` or `cache_prompt`)."""

    endpoint: Endpoint
    prompt: str | Sequence[Mapping[str, str]]  # chat: a string becomes one user message
    max_tokens: int
    model: str | None = None
    temperature: float = 0.0
    seed: int | None = None
    ignore_eos: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return PATHS[self.endpoint]


def request_body(req: StreamRequest, *, continuous_usage: bool = True) -> dict[str, Any]:
    """The JSON body of `req` (`dialects.stream_body`)."""
    return dialects.stream_body(
        req.endpoint,
        req.prompt,
        req.max_tokens,
        model=req.model,
        temperature=req.temperature,
        seed=req.seed,
        ignore_eos=req.ignore_eos,
        extra=req.extra,
        continuous_usage=continuous_usage,
    )


# ---------------------------------------------------------------------------------------------
# What comes back: server-sent events, then one record
# ---------------------------------------------------------------------------------------------


class StreamResult(BaseModel):
    """One streamed request: the timing record, what was generated, the server's own accounting."""

    model_config = ConfigDict(extra="forbid")

    timing: RequestTiming
    text: str = ""
    token_ids: list[int] | None = None  # where every content chunk carried its ids
    usage: dict[str, Any] | None = None  # the last `usage` object the server sent
    timings: dict[str, Any] | None = None  # llama-server's last `timings` object
    model: str | None = None  # the model the server says answered


class StreamState:
    """Builds one request's record from its events; pure: the caller passes each event's arrival
    time (seconds from its zero)."""

    def __init__(self, endpoint: Endpoint, sent_s: float) -> None:
        self.endpoint = endpoint
        self.timing = RequestTiming(sent_s=sent_s)
        self.text: list[str] = []
        self.ids: list[int] | None = []
        self.usage: dict[str, Any] | None = None
        self.timings: dict[str, Any] | None = None
        self.model: str | None = None
        self.events = 0
        self.done = False  # OpenAI: `[DONE]` seen; /completion: the `stop: true` event seen
        self._running: int | None = 0  # the server's running output count, while every chunk had it

    def on_event(self, event: SseEvent, t: float) -> None:
        """Take one event that arrived at `t`. Raises StreamFailure for error and unreadable events."""
        self.events += 1
        chunk = dialects.parse_event(self.endpoint, event)
        if chunk.model is not None:
            self.model = chunk.model
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.timings is not None:
            self.timings = chunk.timings
        if chunk.finish_reason is not None:
            self.timing.finish_reason = chunk.finish_reason
        if chunk.done:
            self.done = True
        if chunk.tokens:
            self._chunk(chunk.text, chunk.token_ids, chunk.running, t)

    def _chunk(self, text: str, ids: list[int] | None, running: int | None, t: float) -> None:
        """Record a chunk that carried tokens: k = len(ids), else the growth of the server's running
        count (only while every chunk so far had one), else 1 where it carried text."""
        if ids is not None:
            k = len(ids)
        elif running is not None and self._running is not None:
            k = max(running - self._running, 0)
        else:
            k = 1 if text else 0
        if running is not None and self._running is not None:
            self._running = running
        elif k > 0:
            self._running = None  # a content chunk without a running count: stop trusting it
        if ids is not None and self.ids is not None:
            self.ids.extend(int(i) for i in ids)
        elif k > 0:
            self.ids = None
        self.text.append(text)
        if k == 0:
            return
        if self.timing.first_token_s is None:
            self.timing.first_token_s = t
        self.timing.chunk_s.append(t)
        self.timing.chunk_tokens.append(k)

    def check_complete(self) -> None:
        """Raises StreamFailure(stream-ended) where the stream closed before the server said it was done."""
        if self.done:
            return
        if not self.events:
            raise StreamFailure("stream-ended", "the server closed the stream without sending an event")
        raise StreamFailure(
            "stream-ended",
            f"the server closed the stream after {len(self.timing.chunk_s)} chunks without finishing",
        )

    def result(self, end_s: float, error: str | None = None) -> StreamResult:
        """The record, the stream stopping at `end_s` (with `error`, where it failed)."""
        t = self.timing  # a copy (the state may take more events): its lists copied, no deep copy
        timing = t.model_copy(
            update={
                "chunk_s": list(t.chunk_s),
                "chunk_tokens": list(t.chunk_tokens),
                "end_s": end_s,
                "error": error,
            }
        )
        usage, timings = self.usage, self.timings
        out, prompt = dialects.token_counts(self.endpoint, usage, timings)
        if out is not None:
            timing.output_tokens = out
        if prompt is not None:
            timing.prompt_tokens = prompt
        return StreamResult(
            timing=timing,
            text="".join(self.text),
            token_ids=self.ids if self.ids else None,
            usage=usage,
            timings=timings,
            model=self.model,
        )


def classify(exc: Exception, where: str, *, connect_s: float, read_s: float, chunks: int) -> StreamFailure:
    """A transport exception (httpx's, of the sync client; aiohttp's, of the async one) as a
    classified failure (`where`: the redacted URL)."""
    if isinstance(exc, StreamFailure):
        return exc
    if isinstance(exc, httpx.ConnectTimeout | aiohttp.ConnectionTimeoutError):
        return StreamFailure("connect", f"cannot connect to {where}: no answer in {connect_s:g} s")
    if isinstance(exc, aiohttp.ClientConnectorError):
        why = exc.os_error.strerror or str(exc.os_error)
        return StreamFailure("connect", f"cannot connect to {where}: {flatten(why) or 'refused'}")
    if isinstance(exc, httpx.ConnectError):
        return StreamFailure("connect", f"cannot connect to {where}: {flatten(str(exc)) or 'refused'}")
    if isinstance(exc, httpx.ReadTimeout | aiohttp.SocketTimeoutError):
        return StreamFailure("timeout", f"{where} sent nothing for {read_s:g} s (after {chunks} chunks)")
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return StreamFailure("timeout", f"{where}: {type(exc).__name__} ({flatten(str(exc))})")
    if isinstance(
        exc,
        httpx.RemoteProtocolError
        | httpx.ReadError
        | aiohttp.ServerDisconnectedError
        | aiohttp.ClientPayloadError,
    ):
        return StreamFailure(
            "stream-ended",
            f"{where} closed the connection after {chunks} chunks "
            f"({flatten(str(exc)) or type(exc).__name__})",
        )
    return StreamFailure("connect", f"{where}: {type(exc).__name__}: {flatten(str(exc))}")


class RequestFailed(VelobenchError):
    """A request that failed, as one line; `kind` classifies it and `result` keeps what arrived."""

    def __init__(self, failure: StreamFailure, result: StreamResult | None = None) -> None:
        super().__init__(failure.message)
        self.kind = failure.kind
        self.result = result


def display_url(url: str) -> str:
    """`url` without user:password@ (never printed)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url.rstrip("/")
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=host)).rstrip("/")


# ---------------------------------------------------------------------------------------------
# The two clients (sync and async) share everything above; only byte moving differs.
# ---------------------------------------------------------------------------------------------


class _Base:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        connect_timeout_s: float = DEFAULT_CONNECT_S,
        read_timeout_s: float = DEFAULT_READ_S,
        deadline_s: float = DEFAULT_DEADLINE_S,
        continuous_usage: bool = True,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise VelobenchError(f"server URL must start with http:// or https://: {display_url(base_url)!r}")
        self.base_url = base_url.rstrip("/")
        self._key = api_key or None
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.deadline_s = deadline_s
        self.continuous_usage = continuous_usage
        self.clock = clock
        self._timeout = httpx.Timeout(
            connect=connect_timeout_s, read=read_timeout_s, write=read_timeout_s, pool=None
        )
        self._headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}

    def __repr__(self) -> str:
        key = ", api_key=***" if self._key else ""
        return f"{type(self).__name__}({display_url(self.base_url)!r}{key})"

    def redact(self, text: str) -> str:
        """`text` with the API key (if any) replaced by `***`: servers sometimes quote it back."""
        return text.replace(self._key, "***") if self._key else text

    def where(self, path: str) -> str:
        return display_url(self.base_url) + path

    def _failure(self, exc: Exception, path: str, chunks: int) -> StreamFailure:
        f = classify(
            exc, self.where(path), connect_s=self.connect_timeout_s, read_s=self.read_timeout_s, chunks=chunks
        )
        return StreamFailure(f.kind, self.redact(f.message))

    def status_failure(self, status: int, reason: str, body: bytes, method: str, path: str) -> StreamFailure:
        """A non-2xx answer as a classified failure, with the server's own words."""
        said = self.redact(error_message(body))
        if status in (401, 403):
            if self._key:
                msg = f"the server refused the API key ({status} {reason}: {said})"
            else:
                msg = (
                    f"the server wants an API key ({status} {reason}: {said}): "
                    "pass --api-key or set OPENAI_API_KEY"
                )
        else:
            msg = f"{method} {self.where(path)} answered {status} {reason}: {said}"
        return StreamFailure(f"http-{status}", msg)

    def _step(self, state: StreamState, parser: SseParser, line: str, zero: float) -> bool:
        """Feed one line; True once the stream is complete. Raises StreamFailure past the deadline."""
        now = self.clock() - zero
        event = parser.feed(line)
        if event is not None:
            state.on_event(event, now)
        if state.done:
            return True
        if now - state.timing.sent_s > self.deadline_s:
            raise StreamFailure(
                "timeout",
                f"request exceeded its {self.deadline_s:g} s deadline "
                f"after {len(state.timing.chunk_s)} chunks",
            )
        return False

    def _end(self, state: StreamState, parser: SseParser, zero: float, completed: bool) -> StreamResult:
        if not completed:
            last = parser.close()
            if last is not None:
                state.on_event(last, self.clock() - zero)
            state.check_complete()
        return state.result(self.clock() - zero)

    def _failed(self, state: StreamState, f: StreamFailure, zero: float, raise_errors: bool) -> StreamResult:
        result = state.result(self.clock() - zero, error=f"{f.kind}: {f.message}")
        if raise_errors:
            raise RequestFailed(f, result) from None
        return result

    def _models(self, status: int, reason: str, body: bytes) -> list[str]:
        if status != 200:
            raise RequestFailed(self.status_failure(status, reason, body, "GET", dialects.MODELS))
        try:
            return dialects.model_ids(body)
        except ValueError as exc:
            msg = f"{self.where(dialects.MODELS)} answered {exc}"
            raise RequestFailed(StreamFailure("bad-event", self.redact(msg))) from None

    def _metrics(self, status: int, reason: str, body: bytes) -> tuple[prom.Samples | None, str | None]:
        if status != 200:
            return None, self.status_failure(status, reason, body, "GET", dialects.METRICS).message
        try:
            return prom.parse(body.decode("utf-8", "replace")), None
        except ValueError as exc:
            return None, self.redact(f"{self.where(dialects.METRICS)} is not Prometheus text: {exc}")


class HttpClient(_Base):
    """Streams requests one at a time (or from threads), on httpx.Client. A context manager."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self._http = httpx.Client(base_url=self.base_url, headers=self._headers, timeout=self._timeout)

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def stream(
        self, req: StreamRequest, *, zero: float | None = None, raise_errors: bool = True
    ) -> StreamResult:
        """Send `req` and read its stream to the end. Times are seconds from `zero` (a value of
        `clock()`; the send time where None). Raises RequestFailed, or with `raise_errors=False`
        returns the record with `timing.error` set and the chunks received before the failure."""
        body = request_body(req, continuous_usage=self.continuous_usage)
        sent = self.clock()
        zero = sent if zero is None else zero
        state, parser = StreamState(req.endpoint, sent - zero), SseParser()
        try:
            with self._http.stream("POST", req.path, json=body) as resp:
                if resp.status_code != 200:
                    raise self.status_failure(
                        resp.status_code, resp.reason_phrase, resp.read()[:4096], "POST", req.path
                    )
                completed = False
                for line in resp.iter_lines():
                    if self._step(state, parser, line, zero):
                        completed = True
                        break
                return self._end(state, parser, zero, completed)
        except (StreamFailure, httpx.HTTPError, OSError) as exc:
            return self._failed(
                state, self._failure(exc, req.path, len(state.timing.chunk_s)), zero, raise_errors
            )

    def get_json(self, path: str) -> Any:
        """`GET path` as JSON (e.g. llama-server's /slots). Raises RequestFailed."""
        try:
            r = self._http.get(path)
        except (httpx.HTTPError, OSError) as exc:
            raise RequestFailed(self._failure(exc, path, 0)) from None
        if r.status_code != 200:
            raise RequestFailed(self.status_failure(r.status_code, r.reason_phrase, r.content, "GET", path))
        try:
            return r.json()
        except ValueError:
            raise RequestFailed(StreamFailure("bad-event", f"GET {self.where(path)}: not JSON")) from None

    def post_json(self, path: str, body: Mapping[str, Any]) -> Any:
        """`POST path` with a JSON body, not streamed; the answer as JSON. Raises RequestFailed."""
        try:
            r = self._http.post(path, json=dict(body))
        except (httpx.HTTPError, OSError) as exc:
            raise RequestFailed(self._failure(exc, path, 0)) from None
        if r.status_code != 200:
            raise RequestFailed(
                self.status_failure(r.status_code, r.reason_phrase, r.content[:4096], "POST", path)
            )
        try:
            return r.json()
        except ValueError:
            raise RequestFailed(StreamFailure("bad-event", f"POST {self.where(path)}: not JSON")) from None

    def models(self) -> list[str]:
        """The ids the server serves (`GET /v1/models`). Raises RequestFailed."""
        try:
            r = self._http.get(dialects.MODELS)
        except (httpx.HTTPError, OSError) as exc:
            raise RequestFailed(self._failure(exc, dialects.MODELS, 0)) from None
        return self._models(r.status_code, r.reason_phrase, r.content)

    def metrics_status(self) -> tuple[prom.Samples | None, str | None]:
        """`GET /metrics` parsed, or (None, why) where it does not answer usefully; never raises."""
        try:
            r = self._http.get(dialects.METRICS)
        except (httpx.HTTPError, OSError) as exc:
            return None, self._failure(exc, dialects.METRICS, 0).message
        return self._metrics(r.status_code, r.reason_phrase, r.content)

    def metrics(self) -> prom.Samples | None:
        """`GET /metrics` parsed, or None where the server has none (404, 501, refused...)."""
        return self.metrics_status()[0]


# An idle kept-alive connection is given up after this long. aiohttp's default keeps one 15 s,
# but llama-server (cpp-httplib) and vLLM (uvicorn) close theirs after 5 s idle, so between two
# load levels a request could go out on a connection the server was closing ("Server
# disconnected" or a reset: one request of 24 lost in a CI run of the load test).
KEEPALIVE_S = 2.0
# A request whose kept-alive connection was closed under it is sent again, on the next idle one
# or a new one: several idle connections can be closed together (a server's idle timeout), and a
# load level at 4 in flight lost a request to a second closed one ("Can not write request body").
# The last attempt goes out on a connection of its own, never a kept-alive one: at 8 in flight an
# advise confirmation still lost one of its 16 speculative requests after the pooled attempts.
SEND_ATTEMPTS = 4
DRAIN_S = 0.5  # after a stream's end ([DONE]), how long its last bytes may take before the connection goes


class AsyncHttpClient(_Base):
    """The same client on aiohttp, for many requests in flight on one event loop: streams on one
    pool of at most `max_connections` kept-alive connections (None: as many as are asked for),
    other requests (/v1/models, /metrics) on a pool of their own.

    aiohttp rather than httpx.AsyncClient: against the loopback server (selftest loadgen, 64 in
    flight, 16 chunks per request) httpx cost 1.7-2.0 ms of client CPU per request, most of it in
    httpx, httpcore, h11 and anyio; aiohttp (the client of `vllm bench serve`) 0.5-0.65 ms. Its
    stream is read in the pieces the socket delivers and cut into lines here (a line may be
    longer than aiohttp's readline allows: llama-server's last `/completion` event carries its
    settings). A stream read to its end ([DONE]) is drained so its connection is kept alive.
    A server may close a kept-alive connection just as a request goes out on it (llama-server's
    cpp-httplib did, in the load integration test: "Server disconnected", or a reset); a request
    that fails so, before any answer, is sent again, up to SEND_ATTEMPTS times in all (on the next
    idle connection, or a new one; the last on a connection of its own, never kept alive), and no
    connection is kept idle past KEEPALIVE_S, below the servers' own 5 s.
    """

    def __init__(self, base_url: str, *, max_connections: int | None = None, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self._limit = max_connections or 0  # aiohttp: 0 is no limit
        self._aio_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.connect_timeout_s, sock_read=self.read_timeout_s
        )
        self._streams: aiohttp.ClientSession | None = None
        self._other: aiohttp.ClientSession | None = None
        self._fresh: aiohttp.ClientSession | None = None  # a new connection per request: the last attempt

    def _session(self, streams: bool) -> aiohttp.ClientSession:
        """The pool of streams (or of other requests), made on first use (inside the event loop)."""
        s = self._streams if streams else self._other
        if s is None:
            s = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._limit if streams else 0, limit_per_host=0, keepalive_timeout=KEEPALIVE_S
                ),
                headers=self._headers,
                timeout=self._aio_timeout,
            )
            if streams:
                self._streams = s
            else:
                self._other = s
        return s

    async def __aenter__(self) -> AsyncHttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for s in (self._streams, self._other, self._fresh):
            if s is not None:
                await s.close()
        self._streams = self._other = self._fresh = None

    async def _post(self, path: str, data: bytes) -> aiohttp.ClientResponse:
        """`POST path` (its body JSON), the answer's head read; sent once more where a kept-alive
        connection was closed under it (see the class docstring)."""
        session, url = self._session(True), self.base_url + path
        for _ in range(SEND_ATTEMPTS - 1):
            try:
                return await session.post(url, data=data, headers=_JSON)
            except aiohttp.ClientConnectorError:  # no connection was made: nothing to send again on
                raise
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):  # closed or reset under it
                continue  # that connection is gone from the pool; the next may be one closed with it
        if self._fresh is None:
            self._fresh = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True, limit=0),
                headers=self._headers,
                timeout=self._aio_timeout,
            )
        return await self._fresh.post(url, data=data, headers=_JSON)

    async def stream(
        self, req: StreamRequest, *, zero: float | None = None, raise_errors: bool = True
    ) -> StreamResult:
        """As `HttpClient.stream`."""
        data = json.dumps(request_body(req, continuous_usage=self.continuous_usage)).encode()
        sent = self.clock()
        zero = sent if zero is None else zero
        state, parser = StreamState(req.endpoint, sent - zero), SseParser()
        try:
            resp = await self._post(req.path, data)
            try:
                if resp.status != 200:
                    raw = await resp.content.read(4096)
                    raise self.status_failure(resp.status, resp.reason or "", raw, "POST", req.path)
                completed, rest = False, b""
                async for piece in resp.content.iter_any():
                    lines = (rest + piece).split(b"\n")
                    rest = lines.pop()
                    for line in lines:
                        if self._step(state, parser, line.decode("utf-8", "replace"), zero):
                            completed = True
                            break
                    if completed:
                        break
                if not completed and rest:
                    completed = self._step(state, parser, rest.decode("utf-8", "replace"), zero)
                result = self._end(state, parser, zero, completed)
                if completed:
                    with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                        async with asyncio.timeout(DRAIN_S):
                            await resp.content.read()
                return result
            finally:
                resp.release()
        except (StreamFailure, aiohttp.ClientError, OSError, TimeoutError) as exc:
            return self._failed(
                state, self._failure(exc, req.path, len(state.timing.chunk_s)), zero, raise_errors
            )

    async def _get(self, path: str) -> tuple[int, str, bytes]:
        async with self._session(False).get(self.base_url + path) as r:
            return r.status, r.reason or "", await r.read()

    async def models(self) -> list[str]:
        """As `HttpClient.models`."""
        try:
            got = await self._get(dialects.MODELS)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise RequestFailed(self._failure(exc, dialects.MODELS, 0)) from None
        return self._models(*got)

    async def metrics_status(self) -> tuple[prom.Samples | None, str | None]:
        """As `HttpClient.metrics_status`."""
        try:
            got = await self._get(dialects.METRICS)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return None, self._failure(exc, dialects.METRICS, 0).message
        return self._metrics(*got)

    async def metrics(self) -> prom.Samples | None:
        """As `HttpClient.metrics`."""
        return (await self.metrics_status())[0]


_JSON = {"Content-Type": "application/json"}


__all__ = [
    "PATHS",
    "AsyncHttpClient",
    "Endpoint",
    "HttpClient",
    "RequestFailed",
    "SseEvent",
    "SseParser",
    "StreamFailure",
    "StreamRequest",
    "StreamResult",
    "StreamState",
    "classify",
    "display_url",
    "error_message",
    "request_body",
    "sse_events",
]
