"""`velobench think` with real llama-servers: SmolLM2-135M stands in for both models.

The config (tests/fixtures/think/every-paragraph.toml) makes every paragraph that starts with a
letter or digit a trigger, so a small model's text hands over to the large one often; the checks
hold for any text: the recorded segments are the text, the large-model ratio is their large
tokens over all, every intervention starts right after a trigger the small model completed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from velobench.proc import ServerProcess, free_port
from velobench.results.store import load_result
from velobench.results.think import ThinkReport
from velobench.think.analysis import find_triggers

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).parents[1] / "fixtures" / "think" / "every-paragraph.toml"
Cli = Callable[..., tuple[int, str, str]]


def llama_servers() -> list[psutil.Process]:
    """llama-server processes that are children (at any depth) of this test process."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.name() == "llama-server":
                out.append(p)
        except psutil.NoSuchProcess:
            continue
    return out


def server_on(url: str) -> list[psutil.Process]:
    port = url.rsplit(":", 1)[1]
    return [p for p in llama_servers() if port in p.cmdline()]


def test_think_with_two_real_llama_servers(cli: Cli, llama_bin: Path, smol: Path, isolated: Path) -> None:
    common = ["-t", "2", "-c", "1024", "--llama-cpp-path", str(llama_bin)]
    code, out, err = cli(
        "think", "-m", str(smol), "-d", str(smol), "--prompts", "builtin:word", "--num-problems", "2",
        "--config", str(CONFIG), *common, "-o", "t.json",
    )  # fmt: skip
    assert code == 0, err
    assert "BENCHMARK RESULTS SUMMARY" in out and "LARGE MODEL TOKEN REDUCTION" in out
    rep = load_result(isolated / "t.json")
    assert isinstance(rep, ThinkReport) and rep.status == "complete"
    assert [(r.problem_id, r.mode) for r in rep.runs] == [
        (p.id, m) for p in rep.problems for m in ("large", "spec")
    ]
    words = rep.config.think.triggers.words
    for r in rep.runs:
        assert r.error is None and r.tokens > 0 and r.text == "".join(s.text for s in r.segments)
        assert r.answer is not None and r.reference is not None and r.correct is not None
        large = sum(s.tokens for s in r.segments if s.writer == "large")
        assert r.large_ratio is not None and 0 <= r.large_ratio <= 1
        assert r.large_ratio == pytest.approx(large / r.tokens)
        if r.mode == "large":  # the baseline: the large model alone
            assert r.large_ratio == 1.0 and r.interventions == 0
        ends = {h.end for h in find_triggers(r.text, words)}
        for s in r.segments:
            if s.trigger is not None:
                assert s.writer == "large" and s.start_char in ends
                assert r.text[: s.start_char].lower().endswith("\n\n" + s.trigger)
    assert sum(r.interventions for r in rep.runs) >= 1, [r.text for r in rep.runs]
    assert all(s.command and "--no-cache-prompt" not in s.command for s in rep.servers)
    assert all(Path(s.log or "").is_file() for s in rep.servers)
    assert llama_servers() == []

    code, out, err = cli("report", "t.json", "-F", "html", "-o", "t.html")
    assert code == 0, err
    page = (isolated / "t.html").read_text()
    assert '<span class="small"' in page and '<span class="large"' in page

    # the baseline alone: one server, no small model needed
    code, out, err = cli(
        "think", "-m", str(smol), "--test-mode", "large", "--num-problems", "1", "--max-tokens", "32",
        *common, "-o", "l.json",
    )  # fmt: skip
    assert code == 0, err
    only = load_result(isolated / "l.json")
    assert isinstance(only, ThinkReport) and [s.role for s in only.servers] == ["large"]
    assert [r.mode for r in only.runs] == ["large"] and only.runs[0].tokens <= 32


def start_think(llama_bin: Path, smol: Path, out: Path) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-m", "velobench", "think", "-m", str(smol), "-d", str(smol),
        "--prompts", "builtin:multi-step", "--num-runs", "3", "--config", str(CONFIG), "--max-tokens", "48",
        "-t", "2", "-c", "1024", "--llama-cpp-path", str(llama_bin), "-o", str(out),
    ]  # fmt: skip
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_runs(proc: subprocess.Popen[bytes], out: Path, n: int = 1) -> ThinkReport:
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        if out.exists():
            rep = load_result(out)
            assert isinstance(rep, ThinkReport)
            if rep.finished_runs() >= n and len(rep.servers) == 2:
                return rep
        time.sleep(0.1)


def finish(proc: subprocess.Popen[bytes]) -> str:
    try:
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return stderr.decode()


def test_a_server_killed_mid_run_keeps_the_finished_runs(llama_bin: Path, smol: Path, isolated: Path) -> None:
    out = isolated / "killed.json"
    proc = start_think(llama_bin, smol, out)
    rep = wait_for_runs(proc, out)
    large = next(s for s in rep.servers if s.role == "large")
    victims = server_on(large.url)
    assert len(victims) == 1
    victims[0].kill()
    stderr = finish(proc)
    assert proc.returncode == 2, stderr
    assert stderr.startswith("velobench: error: problem ") and stderr.count("\n") == 1, stderr
    assert "the large model's llama-server exited with code -9" in stderr
    assert f"finished run(s) kept in {out}" in stderr and "Traceback" not in stderr
    after = load_result(out)
    assert isinstance(after, ThinkReport) and after.status == "failed" and after.error
    assert after.finished_runs() >= 1 and after.runs[-1].error is not None
    assert after.summary is not None and (after.summary.large or after.summary.spec)
    assert llama_servers() == []


def test_ctrl_c_keeps_the_finished_runs_and_stops_both_servers(
    llama_bin: Path, smol: Path, isolated: Path
) -> None:
    out = isolated / "int.json"
    proc = start_think(llama_bin, smol, out)
    wait_for_runs(proc, out)
    assert len(llama_servers()) == 2
    proc.send_signal(signal.SIGINT)
    stderr = finish(proc)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert "finished run(s) kept in" in stderr
    after = load_result(out)
    assert isinstance(after, ThinkReport) and after.status == "interrupted" and after.finished_runs() >= 1
    assert json.loads(out.read_text())["kind"] == "think"
    assert llama_servers() == []


def test_running_llama_servers_by_url(cli: Cli, llama_bin: Path, smol: Path, isolated: Path) -> None:
    """--engine remote: two llama-servers velobench did not start, behind an API key, spoken to
    in llama-server's own API (found by POST /apply-template)."""
    key = "think-test-key-" + os.urandom(6).hex()
    urls = []
    with contextlib.ExitStack() as stack:
        for role in ("large", "small"):
            port = free_port()
            argv = [
                str(llama_bin / "llama-server"),
                "-m",
                str(smol),
                "-c",
                "1024",
                "-t",
                "2",
                "--port",
                str(port),
            ]
            argv += ["--host", "127.0.0.1", "--api-key", key]
            stack.enter_context(ServerProcess(argv, port, isolated / f"{role}.log", name="llama-server"))
            urls.append(f"http://127.0.0.1:{port}")
        code, out, err = cli(
            "think", "--large-url", urls[0], "--small-url", urls[1], "--api-key", key, "--num-problems", "1",
            "--max-tokens", "32", "-o", "r.json",
        )  # fmt: skip
    assert code == 0, err
    rep = load_result(isolated / "r.json")
    assert isinstance(rep, ThinkReport) and rep.config.run.engine == "remote"
    assert [(s.role, s.protocol, s.url) for s in rep.servers] == [
        ("large", "llama", urls[0]),
        ("small", "llama", urls[1]),
    ]
    assert len(rep.runs) == 2 and all(r.error is None and 0 < r.tokens <= 32 for r in rep.runs)
    assert key not in (isolated / "r.json").read_text() and key not in out + err
