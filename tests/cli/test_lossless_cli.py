"""`velobench lossless` on bad input: one clear line, exit code 2, before any model loads; and a
server that ignores the seed is named as one (a stand-in server: this checks CLI logic only)."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

CliResult = tuple[int, str, str]


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--samples", "0"], "--samples must be at least 1, got 0"),
        (["--temp", "0"], "velobench lossless samples at a temperature > 0"),
        (["--top-p", "0"], "--top-p must be in (0, 1]"),
        (["--detect", "2"], "--detect is a total variation in (0, 1]"),
        (["--candidate-temp", "0"], "--candidate-temp must be positive"),
    ],
)
def test_bad_input_is_one_line(cli: Callable[..., CliResult], args: list[str], line: str) -> None:
    code, _, err = cli("lossless", "-m", "missing.gguf", "-d", "missing.gguf", *args)
    assert code == 2 and line in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


class _Unseeded(BaseHTTPRequestHandler):
    """An OpenAI-compatible completions server that ignores `seed`: random words every time."""

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, obj: object, status: int = 200) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self._json({"data": [{"id": "unseeded"}]})
        else:
            self._json({"error": "not found"}, 404)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        n = int(body.get("max_tokens", 4))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        rng = random.Random(body["seed"]) if self.server.seeded else random  # type: ignore[attr-defined]
        words = [rng.choice(["red", "blue", "green", "gold"]) for _ in range(n)]
        time.sleep(self.server.delay_s)  # type: ignore[attr-defined]
        chunks = [{"choices": [{"index": 0, "text": f" {w}", "finish_reason": None}]} for w in words]
        chunks.append({"choices": [{"index": 0, "text": "", "finish_reason": "length"}]})
        chunks.append({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": n}})
        for c in chunks:
            self.wfile.write(f"data: {json.dumps(c)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


def _serve(seeded: bool, delay_s: float = 0.0) -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Unseeded)
    httpd.seeded = seeded  # type: ignore[attr-defined]
    httpd.delay_s = delay_s  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def unseeded() -> Iterator[str]:
    yield from _serve(seeded=False)


@pytest.fixture
def seeded_slow() -> Iterator[str]:
    yield from _serve(seeded=True, delay_s=0.05)


def test_a_server_that_ignores_the_seed_is_refused(cli: Callable[..., CliResult], unseeded: str) -> None:
    random.seed(1)
    code, _, err = cli(
        "lossless", "--engine", "remote", "--server-url", unseeded, "--baseline-url", unseeded,
        "--samples", "3", "-n", "6", "-o", "x.json",
    )  # fmt: skip
    assert code == 2, err
    assert "does not honour the seed: seed 49 gave two different outputs" in err


def test_the_time_bound_stops_sampling_and_tests_what_was_drawn(
    cli: Callable[..., CliResult], seeded_slow: str
) -> None:
    from pathlib import Path

    from velobench.results import store
    from velobench.results.lossless import LosslessReport

    code, out, err = cli(
        "lossless", "--engine", "remote", "--server-url", seeded_slow, "--baseline-url", seeded_slow,
        "--samples", "1000", "-n", "3", "--max-time", "2", "-o", "t.json",
    )  # fmt: skip
    assert code == 0, err
    rep = store.load_result(Path("t.json"))
    assert isinstance(rep, LosslessReport) and rep.stopped_by == "max-time" and rep.test is not None
    assert 0 < rep.test.n_baseline < 1000 and 0 < rep.test.n_candidate < 1000
    assert "(stopped by the time bound)" in out and "Verdict: " in out
