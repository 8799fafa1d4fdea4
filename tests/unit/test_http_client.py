"""The measuring HTTP client: SSE parsing and records built from streams captured from a real
llama-server (tests/fixtures/http, tests/fixtures/server), then the sync and async clients over
real sockets against a local server that replays those captured bytes (or misbehaves on purpose:
cuts the stream, stalls, refuses the key), which a real llama-server cannot be made to do on cue."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from velobench.engines.http_client import (
    AsyncHttpClient,
    HttpClient,
    RequestFailed,
    SseEvent,
    SseParser,
    StreamFailure,
    StreamRequest,
    StreamResult,
    StreamState,
    display_url,
    error_message,
    request_body,
    sse_events,
)
from velobench.errors import VelobenchError

FIX = Path(__file__).parents[1] / "fixtures"
HTTP = FIX / "http"
SERVER = FIX / "server"
KEY = "sk-velobench-test-Zq81"
PROMPT = "Write a Python function that returns the sum of a list of integers."


def replay(endpoint: str, path: Path, *, step: float = 0.01) -> tuple[StreamState, StreamResult]:
    """Feed a captured stream through the pure parser, event i arriving at t = 1 + i * step."""
    state = StreamState(endpoint, sent_s=0.0)  # type: ignore[arg-type]
    events = sse_events(path.read_text().splitlines())
    for i, event in enumerate(events):
        state.on_event(event, 1.0 + i * step)
    state.check_complete()
    return state, state.result(end_s=2.0)


# ---------------------------------------------------------------------------------------------
# Server-sent events
# ---------------------------------------------------------------------------------------------


def test_sse_events_of_a_captured_stream_end_with_done() -> None:
    events = sse_events((HTTP / "chat-stream.txt").read_text().splitlines())
    assert all(e.field == "data" for e in events)
    assert events[-1].data == "[DONE]"
    assert len(events) == 16  # role chunk, 12 content chunks, finish chunk, usage chunk, [DONE]
    assert json.loads(events[0].data)["choices"][0]["delta"]["role"] == "assistant"


def test_sse_parser_follows_the_eventsource_rules() -> None:
    lines = [": ping", "event: message", 'data: {"a":', "data: 1}", "", "id: 7", "", "data:x", "\r\n"]
    assert sse_events(lines) == [SseEvent("data", '{"a":\n1}'), SseEvent("data", "x")]
    # no blank line at the end: close() hands over the last event
    parser = SseParser()
    assert parser.feed("data: [DONE]") is None
    assert parser.close() == SseEvent("data", "[DONE]")
    # older llama-server sends errors as an `error:` field
    assert sse_events(['error: {"message":"boom"}', ""]) == [SseEvent("error", '{"message":"boom"}')]


# ---------------------------------------------------------------------------------------------
# Records from captured streams
# ---------------------------------------------------------------------------------------------


def test_v1_completions_tokens_from_usage_not_from_chunks() -> None:
    _, r = replay("completions", HTTP / "completions-stream.txt")
    t = r.timing
    # usage rides on the finishing chunk (choices not empty): it must not count as 12 more tokens
    assert t.output_tokens == 12 and t.prompt_tokens == 14
    assert t.chunk_tokens == [1] * 12 and len(t.chunk_s) == 12
    assert t.finish_reason == "length" and t.error is None and t.ok
    assert t.first_token_s == 1.0 and t.chunk_s[-1] == pytest.approx(1.11)
    assert r.text.startswith("\n\nThe function should take a list of integers")
    assert r.token_ids is None  # the OpenAI endpoints of llama-server send no ids
    assert r.usage is not None and r.usage["total_tokens"] == 26
    assert r.timings is not None and r.timings["predicted_n"] == 12
    assert r.model is not None and r.model.endswith("smollm2-135m-instruct-q4_1.gguf")


def test_running_count_in_every_chunk_gives_tokens_per_chunk() -> None:
    _, r = replay("completions", HTTP / "completions-stream-timings.txt")
    assert r.timing.chunk_tokens == [1] * 12 and r.timing.output_tokens == 12
    _, spec = replay("completions", HTTP / "completions-stream-speculative-timings.txt")
    # a speculative llama-server sends accepted tokens one event each: still 16 chunks of 1
    assert spec.timing.chunk_tokens == [1] * 16 and spec.timing.output_tokens == 16


def test_chat_stream_role_chunk_is_not_a_token() -> None:
    _, r = replay("chat", HTTP / "chat-stream.txt")
    t = r.timing
    assert t.first_token_s == pytest.approx(1.01)  # event 0 is the role-only chunk
    assert t.chunk_tokens == [1] * 12 and t.output_tokens == 12 and t.prompt_tokens == 44
    assert t.finish_reason == "length"
    assert r.text.startswith("```python")


def test_native_completion_ids_and_timings() -> None:
    _, r = replay("native", HTTP / "completion-native-stream.txt")
    t = r.timing
    assert r.token_ids is not None and len(r.token_ids) == 12 and r.token_ids[:3] == [198, 198, 504]
    assert t.chunk_tokens == [1] * 12
    assert t.output_tokens == 12 and t.prompt_tokens == 14  # timings.predicted_n, prompt_n + cache_n
    assert t.finish_reason == "length"  # stop_type "limit"
    assert r.timings is not None and r.usage is None


def test_speculative_captures_from_the_first_llama_server_session() -> None:
    _, native = replay("native", SERVER / "completion-stream-speculative.txt")
    assert native.timing.output_tokens == 16 and sum(native.timing.chunk_tokens) == 16
    assert native.timings is not None and native.timings["draft_n_accepted"] == 13
    _, chat = replay("chat", SERVER / "chat-stream-speculative.txt")
    assert chat.timing.output_tokens == 8 and len(chat.timing.chunk_s) == 8


def vllm_shaped_stream(chunks: list[tuple[str, int]], prompt_tokens: int = 9) -> list[str]:
    """A /v1/completions stream shaped as vLLM's completion_stream_generator writes it with
    `continuous_usage_stats` (every chunk carries the running usage; a closing usage-only chunk).
    TODO: replace with a stream captured from the real vLLM (tests/fixtures/vllm/)."""
    lines, running = [], 0
    for i, (text, k) in enumerate(chunks):
        running += k
        finish = "length" if i == len(chunks) - 1 else None
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": running,
            "total_tokens": prompt_tokens + running,
        }
        chunk = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "smollm2",
                 "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish, "stop_reason": None}],
                 "usage": usage}  # fmt: skip
        lines += [f"data: {json.dumps(chunk)}", ""]
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": running,
        "total_tokens": prompt_tokens + running,
    }
    final = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "smollm2",
        "choices": [],
        "usage": usage,
    }
    return [*lines, f"data: {json.dumps(final)}", "", "data: [DONE]", ""]


def test_multi_token_chunks_from_continuous_usage() -> None:
    state = StreamState("completions", sent_s=0.5)
    stream = vllm_shaped_stream([("apple", 1), (", banana, cherry", 4), ("", 0), (", date,", 3)])
    for i, e in enumerate(sse_events(stream)):
        state.on_event(e, 1.0 + i)
    state.check_complete()
    t = state.result(end_s=9.0).timing
    assert t.chunk_tokens == [1, 4, 3] and t.chunk_s == [1.0, 2.0, 4.0]  # the empty chunk carried nothing
    assert t.output_tokens == 8 and t.prompt_tokens == 9
    assert t.itl_ms() == pytest.approx([250.0] * 4 + [2000 / 3] * 3)


def test_truncated_error_and_garbage_streams() -> None:
    events = sse_events((HTTP / "completions-stream.txt").read_text().splitlines())
    state = StreamState("completions", sent_s=0.0)
    for i, e in enumerate(events[:5]):
        state.on_event(e, float(i))
    with pytest.raises(StreamFailure, match="closed the stream after 5 chunks without finishing") as exc:
        state.check_complete()
    assert exc.value.kind == "stream-ended"
    partial = state.result(5.0, error="stream-ended: x").timing
    assert len(partial.chunk_s) == 5 and partial.error == "stream-ended: x" and not partial.ok
    with pytest.raises(StreamFailure, match="without sending an event"):
        StreamState("chat", 0.0).check_complete()
    # llama-server's mid-stream error event (current `data: {"error"...}` and older `error:` forms)
    bad = {
        '{"error":{"code":500,"message":"slot unavailable","type":"server_error"}}': (
            "server-error: slot unavailable"
        ),
        "{not json": "bad-event: not JSON: '{not json'",
        "[1, 2]": "bad-event: not a JSON object: '[1, 2]'",
    }
    for data, said in bad.items():
        with pytest.raises(StreamFailure) as failed:
            StreamState("chat", 0.0).on_event(SseEvent("data", data), 0.0)
        assert str(failed.value) == said
    with pytest.raises(StreamFailure) as failed:
        StreamState("chat", 0.0).on_event(SseEvent("error", '{"message":"boom"}'), 0.0)
    assert str(failed.value) == "server-error: boom"


# ---------------------------------------------------------------------------------------------
# Request bodies, messages
# ---------------------------------------------------------------------------------------------


def test_request_bodies() -> None:
    body = request_body(StreamRequest("completions", "hi", 8, model="m", seed=3, ignore_eos=True))
    assert body == {
        "max_tokens": 8,
        "prompt": "hi",
        "model": "m",
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
        "stream": True,
        "temperature": 0.0,
        "seed": 3,
        "ignore_eos": True,
    }
    chat = request_body(
        StreamRequest("chat", "hi", 8, extra={"timings_per_token": True}), continuous_usage=False
    )
    assert chat["messages"] == [{"role": "user", "content": "hi"}] and "model" not in chat
    assert chat["stream_options"] == {"include_usage": True} and chat["timings_per_token"] is True
    native = request_body(StreamRequest("native", "hi", 8, extra={"cache_prompt": False}))
    assert native == {
        "prompt": "hi",
        "n_predict": 8,
        "stream": True,
        "temperature": 0.0,
        "cache_prompt": False,
    }
    with pytest.raises(VelobenchError, match="takes a prompt string"):
        request_body(StreamRequest("native", [{"role": "user", "content": "x"}], 8))


def test_error_messages_and_urls() -> None:
    assert error_message((HTTP / "error-401.json").read_bytes()) == "Invalid API Key"
    assert error_message(b'{"object":"error","message":"The model `x` does not exist.","code":404}') == (
        "The model `x` does not exist."
    )
    assert error_message(b'{"detail":"Not Found"}') == "Not Found"
    assert error_message(b"<html>\n<b>502</b>\n</html>") == "<html> <b>502</b> </html>"
    assert error_message(b"") == "(empty body)"
    assert display_url("https://user:pw@example.com:8443/x/") == "https://example.com:8443/x"
    with pytest.raises(VelobenchError, match="must start with http"):
        HttpClient("localhost:8080")


# ---------------------------------------------------------------------------------------------
# The clients over real sockets, against a local replaying server
# ---------------------------------------------------------------------------------------------

Behaviour = Callable[[BaseHTTPRequestHandler], None]


class Replay:
    """A local HTTP server: `routes[path]` answers each request; what each request carried is kept."""

    def __init__(self) -> None:
        self.routes: dict[str, Behaviour] = {}
        self.seen: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                outer.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
                outer.routes.get(self.path.split("?")[0], not_found)(self)

            do_GET = do_POST = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def not_found(h: BaseHTTPRequestHandler) -> None:
    send(h, 404, b'{"detail":"Not Found"}', "application/json")


def send(h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str) -> None:
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def sse(body: bytes, *, cut_chunked: bool = False) -> Behaviour:
    """Send `body` as a chunked event stream, one chunk per event; `cut_chunked` drops the
    connection before the terminating chunk (what a killed server looks like)."""

    def go(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for part in body.split(b"\n\n"):
            if part.strip():
                data = part + b"\n\n"
                h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                h.wfile.flush()
        if cut_chunked:
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        h.wfile.write(b"0\r\n\r\n")

    return go


@pytest.fixture
def srv() -> Iterator[Replay]:
    s = Replay()
    yield s
    s.close()


def captured(name: str, folder: Path = HTTP) -> bytes:
    return (folder / name).read_bytes()


def test_sync_and_async_clients_build_the_same_record(srv: Replay) -> None:
    srv.routes["/v1/chat/completions"] = sse(captured("chat-stream.txt"))
    srv.routes["/completion"] = sse(captured("completion-native-stream.txt"))
    srv.routes["/v1/models"] = lambda h: send(h, 200, captured("models.json"), "application/json")
    req = StreamRequest("chat", PROMPT, 12, model="smollm2")
    with HttpClient(srv.url, api_key=KEY) as c:
        sync = c.stream(req)
        native = c.stream(StreamRequest("native", PROMPT, 12))
        models = c.models()

    async def run() -> tuple[list[StreamResult], list[str]]:
        async with AsyncHttpClient(srv.url, api_key=KEY) as a:
            return list(await asyncio.gather(a.stream(req), a.stream(req))), await a.models()

    results, amodels = asyncio.run(run())
    assert models == amodels == ["/root/.cache/velobench/models/smollm2-135m-instruct-q4_1.gguf"]
    for r in [sync, *results]:
        assert r.timing.output_tokens == 12 and r.timing.chunk_tokens == [1] * 12
        assert r.timing.sent_s == 0.0 and 0 < r.timing.first_token_s <= r.timing.chunk_s[-1] <= r.timing.end_s  # type: ignore[operator]
        assert r.text == sync.text
    assert native.token_ids is not None and len(native.token_ids) == 12
    posts = [s for s in srv.seen if s["path"] == "/v1/chat/completions"]
    assert len(posts) == 3
    for s in posts:
        assert s["headers"]["Authorization"] == f"Bearer {KEY}"  # the key is sent...
        sent = json.loads(s["body"])
        assert sent["stream"] is True and sent["stream_options"]["include_usage"] is True


def test_zero_puts_records_on_one_axis(srv: Replay) -> None:
    import time

    srv.routes["/v1/completions"] = sse(captured("completions-stream.txt"))
    zero = time.perf_counter() - 100.0
    with HttpClient(srv.url) as c:
        r = c.stream(StreamRequest("completions", PROMPT, 12), zero=zero)
    assert (
        100.0 <= r.timing.sent_s < 110.0 and r.timing.end_s is not None and r.timing.end_s >= r.timing.sent_s
    )


def test_server_dying_mid_stream_keeps_the_chunks(srv: Replay) -> None:
    events = captured("completions-stream.txt").split(b"\n\n")
    srv.routes["/v1/completions"] = sse(b"\n\n".join(events[:6]), cut_chunked=True)
    req = StreamRequest("completions", PROMPT, 12)
    with HttpClient(srv.url) as c:
        r = c.stream(req, raise_errors=False)
        with pytest.raises(RequestFailed) as exc:
            c.stream(req)
    assert r.timing.error is not None and r.timing.error.startswith("stream-ended: ")
    assert "after 6 chunks" in r.timing.error and len(r.timing.chunk_s) == 6
    assert exc.value.kind == "stream-ended" and "\n" not in str(exc.value)
    assert exc.value.result is not None and len(exc.value.result.timing.chunk_s) == 6

    async def run() -> StreamResult:
        async with AsyncHttpClient(srv.url) as a:
            return await a.stream(req, raise_errors=False)

    ar = asyncio.run(run())
    assert (
        ar.timing.error is not None
        and ar.timing.error.startswith("stream-ended: ")
        and len(ar.timing.chunk_s) == 6
    )


def test_stream_closed_cleanly_before_done_is_stream_ended(srv: Replay) -> None:
    events = captured("chat-stream.txt").split(b"\n\n")
    srv.routes["/v1/chat/completions"] = sse(b"\n\n".join(events[:4]))
    with HttpClient(srv.url) as c, pytest.raises(RequestFailed, match="closed the stream after 3 chunks"):
        c.stream(StreamRequest("chat", PROMPT, 12))


def test_a_silent_server_is_a_timeout_and_a_closed_port_a_connect_error(srv: Replay) -> None:
    release = threading.Event()

    def stall(h: BaseHTTPRequestHandler) -> None:
        release.wait(5)

    srv.routes["/v1/completions"] = stall
    try:
        with HttpClient(srv.url, read_timeout_s=0.3) as c:
            r = c.stream(StreamRequest("completions", PROMPT, 12), raise_errors=False)
    finally:
        release.set()
    assert r.timing.error is not None and r.timing.error.startswith("timeout: ")
    assert "sent nothing for 0.3 s" in r.timing.error

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        with HttpClient(f"http://127.0.0.1:{port}") as c, pytest.raises(RequestFailed) as exc:
            c.stream(StreamRequest("chat", PROMPT, 4))
    assert exc.value.kind == "connect" and str(exc.value).startswith(
        f"cannot connect to http://127.0.0.1:{port}/"
    )


def test_deadline_cuts_a_slow_stream(srv: Replay) -> None:
    import time

    body = captured("completions-stream.txt")

    def slow(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for part in body.split(b"\n\n")[:-1]:
            data = part + b"\n\n"
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            h.wfile.flush()
            time.sleep(0.05)

    srv.routes["/v1/completions"] = slow
    with HttpClient(srv.url, deadline_s=0.2) as c:
        r = c.stream(StreamRequest("completions", PROMPT, 12), raise_errors=False)
    assert r.timing.error is not None and r.timing.error.startswith(
        "timeout: request exceeded its 0.2 s deadline"
    )
    assert 2 <= len(r.timing.chunk_s) < 12


def test_the_api_key_is_sent_and_never_shown(srv: Replay, caplog: pytest.LogCaptureFixture) -> None:
    # a server that quotes the key back, as some do
    quoted = json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}", "code": 401}}).encode()
    srv.routes["/v1/chat/completions"] = lambda h: send(h, 401, quoted, "application/json")
    srv.routes["/v1/models"] = lambda h: send(h, 401, captured("error-401.json"), "application/json")
    srv.routes["/metrics"] = lambda h: send(h, 403, quoted, "application/json")
    caplog.set_level(logging.DEBUG)
    shown: list[str] = []
    with HttpClient(srv.url + "/", api_key=KEY, connect_timeout_s=1) as c:
        shown.append(repr(c))
        with pytest.raises(RequestFailed) as exc:
            c.stream(StreamRequest("chat", PROMPT, 4))
        shown += [
            str(exc.value),
            repr(exc.value),
            exc.value.result.model_dump_json() if exc.value.result else "",
        ]
        r = c.stream(StreamRequest("chat", PROMPT, 4), raise_errors=False)
        shown.append(r.model_dump_json())
        with pytest.raises(RequestFailed) as exc2:
            c.models()
        shown += [str(exc2.value)]
        samples, why = c.metrics_status()
        shown.append(str(why))
    assert exc.value.kind == "http-401"
    assert (
        str(exc.value) == "the server refused the API key (401 Unauthorized: Incorrect API key provided: ***)"
    )
    assert str(exc2.value) == "the server refused the API key (401 Unauthorized: Invalid API Key)"
    assert r.timing.error == "http-401: " + str(exc.value)
    assert samples is None and why is not None and why.startswith("the server refused the API key (403")
    assert shown[0] == f"HttpClient('{srv.url}', api_key=***)"
    everything = "\n".join([*shown, caplog.text])
    assert caplog.text  # httpx/httpcore did log at DEBUG, so the check below means something
    assert KEY not in everything
    assert all(s["headers"].get("Authorization") == f"Bearer {KEY}" for s in srv.seen)


def test_no_key_asks_for_one(srv: Replay) -> None:
    srv.routes["/v1/models"] = lambda h: send(h, 401, captured("error-401.json"), "application/json")
    with HttpClient(srv.url) as c, pytest.raises(RequestFailed, match="pass --api-key or set OPENAI_API_KEY"):
        c.models()
    assert "Authorization" not in srv.seen[0]["headers"]


def test_http_errors_carry_the_servers_words(srv: Replay) -> None:
    body = b'{"error":{"code":400,"message":"Expected \'messages\' to be an array","type":"invalid_request_error"}}'
    srv.routes["/v1/chat/completions"] = lambda h: send(h, 400, body, "application/json")
    with HttpClient(srv.url) as c:
        with pytest.raises(RequestFailed) as exc:
            c.stream(StreamRequest("chat", PROMPT, 4))
        r404 = c.stream(StreamRequest("native", PROMPT, 4), raise_errors=False)
    assert exc.value.kind == "http-400"
    assert str(exc.value) == (
        f"POST {srv.url}/v1/chat/completions answered 400 Bad Request: Expected 'messages' to be an array"
    )
    assert r404.timing.error == f"http-404: POST {srv.url}/completion answered 404 Not Found: Not Found"


def test_metrics_parsed_or_none_with_why(srv: Replay) -> None:
    srv.routes["/metrics"] = lambda h: send(h, 200, captured("metrics-after.txt", SERVER), "text/plain")
    with HttpClient(srv.url) as c:
        m = c.metrics()
    assert m is not None and m[("llamacpp:spec_decode_num_drafts_total", ())] == 2.0
    srv.routes.pop("/metrics")
    with HttpClient(srv.url) as c:
        assert c.metrics() is None
        assert c.metrics_status()[1] == f"GET {srv.url}/metrics answered 404 Not Found: Not Found"
    srv.routes["/metrics"] = lambda h: send(h, 200, b"<html>nope</html>\n", "text/html")
    with HttpClient(srv.url) as c:
        samples, why = c.metrics_status()
    assert (
        samples is None
        and why
        == f"{srv.url}/metrics is not Prometheus text: not a Prometheus sample line: '<html>nope</html>'"
    )
    with HttpClient("http://127.0.0.1:9", connect_timeout_s=1) as c:
        samples, why = c.metrics_status()
    assert (
        samples is None and why is not None and why.startswith("cannot connect to http://127.0.0.1:9/metrics")
    )

    async def run() -> Any:
        async with AsyncHttpClient(srv.url) as a:
            return await a.metrics()

    srv.routes["/metrics"] = lambda h: send(h, 200, captured("metrics-vanilla.txt"), "text/plain")
    am = asyncio.run(run())
    assert am is not None and am[("llamacpp:tokens_predicted_total", ())] == 130.0


def test_idle_connections_closed_together_lose_no_request(srv: Replay) -> None:
    """Every kept-alive connection serves one request and is closed, unanswered, on its next: a
    request sent after three streams finds three closed connections in the pool, one after the
    other, and still gets its answer on a new one (a load level lost one so: a second closed
    connection after the first retry)."""
    import time

    body = captured("completions-stream.txt")
    served: set[tuple[str, int]] = set()

    def once_per_connection(h: BaseHTTPRequestHandler) -> None:
        conn = h.client_address  # the client's port names its connection (an id() can be reused)
        if conn in served:  # a kept-alive connection, closed under the request
            h.close_connection = True
            return
        served.add(conn)
        time.sleep(0.3)  # the three first streams overlap: three connections
        sse(body)(h)

    srv.routes["/v1/completions"] = once_per_connection
    req = StreamRequest("completions", PROMPT, 12)

    async def run() -> tuple[list[Any], Any]:
        async with AsyncHttpClient(srv.url) as a:
            first = list(await asyncio.gather(*(a.stream(req) for _ in range(3))))
            return first, await a.stream(req)

    first, last = asyncio.run(run())
    assert all(r.timing.error is None for r in first)
    assert last.timing.error is None and last.text, last.timing.error
    assert len(served) == 4  # the fourth request's answer came on a fourth connection


def test_the_last_attempt_goes_out_on_a_connection_of_its_own(srv: Replay) -> None:
    """As many closed kept-alive connections in the pool as there are attempts: the pooled
    attempts all find one, and the last, on a connection never kept alive, gets the answer."""
    import time

    from velobench.engines.http_client import SEND_ATTEMPTS

    body = captured("completions-stream.txt")
    served: set[tuple[str, int]] = set()

    def once_per_connection(h: BaseHTTPRequestHandler) -> None:
        conn = h.client_address
        if conn in served:
            h.close_connection = True
            return
        served.add(conn)
        time.sleep(0.3)  # the first streams overlap: one connection each
        sse(body)(h)

    srv.routes["/v1/completions"] = once_per_connection
    req = StreamRequest("completions", PROMPT, 12)

    async def run() -> tuple[list[Any], Any]:
        async with AsyncHttpClient(srv.url) as a:
            first = list(await asyncio.gather(*(a.stream(req) for _ in range(SEND_ATTEMPTS))))
            return first, await a.stream(req)

    first, last = asyncio.run(run())
    assert all(r.timing.error is None for r in first)
    assert last.timing.error is None and last.text, last.timing.error
    assert len(served) == SEND_ATTEMPTS + 1
