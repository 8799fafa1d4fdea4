"""The measuring HTTP client against a real llama-server (SmolLM2-135M) started with an API key:
the three endpoints, sync and async, the key refused and never shown, /metrics deltas, a server
killed mid-stream, and the per-request deadline."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from velobench.engines.http_client import (
    AsyncHttpClient,
    HttpClient,
    RequestFailed,
    StreamRequest,
    StreamResult,
)
from velobench.engines.metrics import counter_delta

pytestmark = pytest.mark.integration

KEY = "vb-itest-4f1c9a77e2d0"
PROMPT = "Write a Python function that returns the sum of a list of integers."


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(llama_bin: Path, model: Path, log: Path, *extra: str) -> Server:
    """llama-server on 127.0.0.1 with stdin closed, ready once /health says ok (60 s deadline)."""
    port = free_port()
    argv = [str(llama_bin / "llama-server"), "-m", str(model), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["-np", "1", "-c", "1024", "-t", "2", "--metrics", *extra]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama-server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return Server(url, proc, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop(proc)
    pytest.fail(f"llama-server not ready in 60 s: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def server(llama_bin: Path, smol: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(
        llama_bin, smol, tmp_path_factory.mktemp("llama-server") / "server.log", "--api-key", KEY
    )
    try:
        yield s
    finally:
        stop(s.proc)


def request(endpoint: str, n: int = 16, **extra: object) -> StreamRequest:
    return StreamRequest(endpoint, PROMPT, n, seed=42, ignore_eos=True, extra=extra)  # type: ignore[arg-type]


def check(r: StreamResult, n: int) -> None:
    t = r.timing
    assert t.ok and t.error is None and t.finish_reason == "length"
    assert t.output_tokens == n and sum(t.chunk_tokens) == n  # llama-server: one event per token
    assert t.prompt_tokens is not None and t.prompt_tokens > 10
    assert t.first_token_s is not None and t.sent_s < t.first_token_s <= t.chunk_s[-1] <= t.end_s  # type: ignore[operator]
    assert t.chunk_s == sorted(t.chunk_s)
    assert r.text.strip()


def test_three_endpoints_sync(server: Server) -> None:
    with HttpClient(server.url, api_key=KEY) as c:
        (model,) = c.models()
        before = c.metrics()
        comp = c.stream(request("completions", 12))
        timed = c.stream(request("completions", 12, timings_per_token=True))
        chat = c.stream(StreamRequest("chat", PROMPT, 12, model=model, seed=42, ignore_eos=True))
        native = c.stream(request("native", 12, cache_prompt=False))
        after = c.metrics()
    assert model.endswith("smollm2-135m-instruct-q4_1.gguf")
    for r in (comp, timed, chat, native):
        check(r, 12)
    assert comp.usage is not None and comp.usage["completion_tokens"] == 12
    assert timed.timings is not None and timed.timings["predicted_n"] == 12
    assert (
        chat.usage is not None and chat.usage["prompt_tokens"] > comp.usage["prompt_tokens"]
    )  # chat template
    assert native.token_ids is not None and len(native.token_ids) == 12 and native.usage is None
    assert native.text == comp.text  # same prompt, seed, greedy: the same tokens either way
    assert before is not None and after is not None
    assert counter_delta(before, after, "tokens_predicted_total") == 4 * 12


def test_async_requests_share_one_time_axis(server: Server) -> None:
    async def run() -> list[StreamResult]:
        async with AsyncHttpClient(server.url, api_key=KEY) as a:
            zero = a.clock()
            reqs = [
                request("completions", 8),
                StreamRequest("chat", PROMPT, 8, ignore_eos=True),
                request("native", 8),
            ]
            return list(await asyncio.gather(*(a.stream(r, zero=zero) for r in reqs)))

    results = asyncio.run(run())
    for r in results:
        check(r, 8)
    sent = [r.timing.sent_s for r in results]
    assert max(sent) - min(sent) < 0.5  # all sent at once
    # -np 1: the server answers them one after another, so their first tokens are spread out
    firsts = sorted(t for t in (r.timing.first_token_s for r in results) if t is not None)
    ends = sorted(t for t in (r.timing.end_s for r in results) if t is not None)
    assert firsts[2] > ends[0]


def test_wrong_or_missing_key_is_one_clean_line(server: Server, tmp_path: Path) -> None:
    wrong = "vb-wrong-key-77aa"
    with HttpClient(server.url, api_key=wrong) as c:
        with pytest.raises(RequestFailed) as exc:
            c.stream(request("chat", 4))
        r = c.stream(request("completions", 4), raise_errors=False)
        with pytest.raises(RequestFailed) as models_exc:
            c.models()
        samples, why = c.metrics_status()
    msg = str(exc.value)
    assert exc.value.kind == "http-401" and "\n" not in msg
    assert msg == "the server refused the API key (401 Unauthorized: Invalid API Key)"
    assert r.timing.error == "http-401: " + msg and r.timing.chunk_s == []
    assert str(models_exc.value) == msg
    assert samples is None and why == msg
    assert wrong not in msg + repr(exc.value) + r.model_dump_json()
    with HttpClient(server.url) as c, pytest.raises(RequestFailed, match="wants an API key"):
        c.stream(request("chat", 4))


def test_the_key_is_in_no_file_the_client_wrote(server: Server, tmp_path: Path) -> None:
    """Everything the client produces (records, error lines, reprs, DEBUG logs of httpx and
    httpcore) goes to files, and no file holds the key; nor does the server's own log."""
    log_file = tmp_path / "client.log"
    handler = logging.FileHandler(log_file)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with HttpClient(server.url, api_key=KEY) as c:
            ok = c.stream(request("chat", 4))
            logging.getLogger("velobench.test").info("client %r", c)
        with HttpClient(server.url, api_key=KEY + "x") as c:
            bad = c.stream(request("chat", 4), raise_errors=False)
            try:
                c.stream(request("completions", 4))
            except RequestFailed as exc:
                (tmp_path / "error.txt").write_text(f"{exc}\n{exc!r}\n{exc.result!r}\n")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
    (tmp_path / "ok.json").write_text(ok.model_dump_json())
    (tmp_path / "bad.json").write_text(bad.model_dump_json())
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) == 4 and "HTTP Request: POST" in log_file.read_text()  # the logs are really there
    assert json.loads((tmp_path / "bad.json").read_text())["timing"]["error"].startswith("http-401: ")
    for p in [*written, server.log]:
        assert KEY not in p.read_text(errors="replace"), p


def test_deadline_on_a_real_stream(server: Server) -> None:
    with HttpClient(server.url, api_key=KEY) as c:
        warm = c.stream(request("completions", 4))
        assert warm.timing.end_s is not None
        # a deadline a few times longer than a 4-token request: the 600-token one cannot finish in it
        deadline = 3 * warm.timing.end_s + 0.5
    with HttpClient(server.url, api_key=KEY, deadline_s=deadline) as c:
        r = c.stream(request("completions", 600), raise_errors=False)
        assert r.timing.error is not None
        assert r.timing.error.startswith(f"timeout: request exceeded its {deadline:g} s deadline")
        assert len(r.timing.chunk_s) < 600 and r.timing.output_tokens is None
    with HttpClient(server.url, api_key=KEY) as c:
        check(c.stream(request("completions", 4)), 4)  # the server dropped it and is free again


def test_server_killed_mid_stream(llama_bin: Path, smol: Path, tmp_path: Path) -> None:
    s = start_server(llama_bin, smol, tmp_path / "doomed.log")
    try:
        with HttpClient(s.url, read_timeout_s=60) as c:
            warm = c.stream(request("completions", 4))
            assert warm.timing.first_token_s is not None
            # kill it well after its first token would come, long before 1000 tokens are done
            killer = threading.Timer(
                2 * warm.timing.first_token_s + 1, lambda: os.kill(s.proc.pid, signal.SIGKILL)
            )
            killer.start()
            r = c.stream(request("completions", 1000), raise_errors=False)
            killer.join()
    finally:
        stop(s.proc)
    assert r.timing.error is not None and r.timing.error.startswith("stream-ended: "), r.timing.error
    assert "\n" not in r.timing.error
    assert len(r.timing.chunk_s) > 0 and r.timing.output_tokens is None and r.text
