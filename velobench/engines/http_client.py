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
`HttpClient` (httpx.Client) and `AsyncHttpClient` (httpx.AsyncClient) only move bytes and read the
clock. A failure is a `RequestFailed` (a one-line `VelobenchError`) or, with `raise_errors=False`,
`RequestTiming.error = "kind: message"` with every chunk received before it kept. Kinds: `connect`,
`timeout`, `http-<status>`, `stream-ended`, `bad-event`, `server-error`.

The API key is sent as `Authorization: Bearer KEY` and appears nowhere else: not in a message
(server messages are scrubbed of it too), a repr, or a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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
        timing = self.timing.model_copy(deep=True)
        timing.end_s = end_s
        timing.error = error
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
    """A transport exception as a classified failure (`where`: the redacted URL)."""
    if isinstance(exc, StreamFailure):
        return exc
    if isinstance(exc, httpx.ConnectTimeout):
        return StreamFailure("connect", f"cannot connect to {where}: no answer in {connect_s:g} s")
    if isinstance(exc, httpx.ConnectError):
        return StreamFailure("connect", f"cannot connect to {where}: {flatten(str(exc)) or 'refused'}")
    if isinstance(exc, httpx.ReadTimeout):
        return StreamFailure("timeout", f"{where} sent nothing for {read_s:g} s (after {chunks} chunks)")
    if isinstance(exc, httpx.TimeoutException):
        return StreamFailure("timeout", f"{where}: {type(exc).__name__} ({flatten(str(exc))})")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
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


DRAIN_S = 0.5  # after a stream's end ([DONE]), how long its last bytes may take before the connection goes


async def _drain(lines: AsyncIterator[str]) -> None:
    """Read what follows a stream's end (the chunked body's terminator) so its connection goes back
    to the pool; a stream that has not ended within DRAIN_S is left, and its connection closed.

    Without it every request opened a new connection (httpx closes a response not read to its end),
    and closing one cost more than the request: a new TCP connection, and httpcore's cancellation
    shield, which looks for `sniffio` on every close (an import that fails walks sys.path).
    """
    with contextlib.suppress(httpx.HTTPError, OSError, TimeoutError):
        async with asyncio.timeout(DRAIN_S):
            async for _ in lines:
                pass


STALE = (
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
)  # a kept-alive connection the server closed


class _Lane:
    """One httpx.AsyncClient of one connection; `used` once it has served a request."""

    def __init__(self, make: Callable[[], httpx.AsyncClient]) -> None:
        self._make = make
        self.http = make()
        self.used = False

    async def open(self, stack: contextlib.AsyncExitStack, path: str, body: Any) -> httpx.Response:
        """`POST path` streamed, its response entered on `stack`. A server may close a kept-alive
        connection just as a request goes out on it (llama-server's cpp-httplib did, in the load
        integration test: "Server disconnected without sending a response"); where the lane's
        connection had served a request before and the request failed before any answer came, it
        is sent once more on a new connection, as the first request of a connection would be."""
        try:
            return await stack.enter_async_context(self.http.stream("POST", path, json=body))
        except STALE:
            if not self.used:
                raise
        await self.http.aclose()
        self.http, self.used = self._make(), False
        return await stack.enter_async_context(self.http.stream("POST", path, json=body))


class _Lanes:
    """Lanes (one httpx.AsyncClient of one connection each) lent one per streamed request, at
    most `limit` at once (None: as many as are asked for).

    One shared httpx pool of C connections costs O(C) per request to find a free connection
    (httpcore checks every connection, each with a socket call): at 64 in flight that was most
    of the client's CPU (cProfile, loopback, 4 M `is_idle` calls for 300 requests). A lane is
    found in O(1) and keeps its connection alive between requests. The lanes share one TLS
    context (making one per client costs ~30 ms).
    """

    def __init__(self, make: Callable[[], httpx.AsyncClient], limit: int | None) -> None:
        self._make = make
        self._idle: list[_Lane] = []
        self._all: list[_Lane] = []
        self._free = asyncio.Semaphore(limit) if limit is not None else None

    @contextlib.asynccontextmanager
    async def lend(self) -> AsyncIterator[_Lane]:
        if self._free is not None:
            await self._free.acquire()
        try:
            if self._idle:
                lane = self._idle.pop()
            else:
                lane = _Lane(self._make)
                self._all.append(lane)
            try:
                yield lane
            finally:
                lane.used = True
                self._idle.append(lane)
        finally:
            if self._free is not None:
                self._free.release()

    async def aclose(self) -> None:
        for lane in self._all:
            await lane.http.aclose()


class AsyncHttpClient(_Base):
    """The same client on httpx.AsyncClient, for many requests in flight on one event loop
    (streams on `_Lanes`, at most `max_connections` at once; other requests on one more client)."""

    def __init__(self, base_url: str, *, max_connections: int | None = None, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        tls = httpx.create_ssl_context()
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=self._headers, timeout=self._timeout, verify=tls
        )
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self._lanes = _Lanes(
            lambda: httpx.AsyncClient(
                base_url=self.base_url, headers=self._headers, timeout=self._timeout, limits=one, verify=tls
            ),
            max_connections,
        )

    async def __aenter__(self) -> AsyncHttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._lanes.aclose()
        await self._http.aclose()

    async def stream(
        self, req: StreamRequest, *, zero: float | None = None, raise_errors: bool = True
    ) -> StreamResult:
        """As `HttpClient.stream`."""
        body = request_body(req, continuous_usage=self.continuous_usage)
        sent = self.clock()
        zero = sent if zero is None else zero
        state, parser = StreamState(req.endpoint, sent - zero), SseParser()
        try:
            async with self._lanes.lend() as lane, contextlib.AsyncExitStack() as stack:
                resp = await lane.open(stack, req.path, body)
                if resp.status_code != 200:
                    raw = (await resp.aread())[:4096]
                    raise self.status_failure(resp.status_code, resp.reason_phrase, raw, "POST", req.path)
                completed = False
                lines = resp.aiter_lines()
                async for line in lines:
                    if self._step(state, parser, line, zero):
                        completed = True
                        break
                result = self._end(state, parser, zero, completed)
                if completed:
                    await _drain(lines)
                return result
        except (StreamFailure, httpx.HTTPError, OSError) as exc:
            return self._failed(
                state, self._failure(exc, req.path, len(state.timing.chunk_s)), zero, raise_errors
            )

    async def models(self) -> list[str]:
        """As `HttpClient.models`."""
        try:
            r = await self._http.get(dialects.MODELS)
        except (httpx.HTTPError, OSError) as exc:
            raise RequestFailed(self._failure(exc, dialects.MODELS, 0)) from None
        return self._models(r.status_code, r.reason_phrase, r.content)

    async def metrics_status(self) -> tuple[prom.Samples | None, str | None]:
        """As `HttpClient.metrics_status`."""
        try:
            r = await self._http.get(dialects.METRICS)
        except (httpx.HTTPError, OSError) as exc:
            return None, self._failure(exc, dialects.METRICS, 0).message
        return self._metrics(r.status_code, r.reason_phrase, r.content)

    async def metrics(self) -> prom.Samples | None:
        """As `HttpClient.metrics`."""
        return (await self.metrics_status())[0]


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
