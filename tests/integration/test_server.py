"""The llama-server engine against a real llama-server and SmolLM2-135M."""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from velobench.bins.locate import Tool, find_tool
from velobench.bins.versions import BinaryVersion
from velobench.engines.llama_server import LlamaServerEngine
from velobench.errors import VelobenchError
from velobench.proc import free_port
from velobench.results import store as results
from velobench.results.config import Method, RunConfig

pytestmark = pytest.mark.integration


def servers_on(port: int) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["name", "cmdline"]):
        try:
            if p.info["name"] == "llama-server" and str(port) in (p.info["cmdline"] or []):
                found.append(p)
        except psutil.NoSuchProcess:
            continue
    return found


def test_run_with_the_server_engine(cli, llama_bin: Path, smol: Path, isolated: Path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    code, out, err = cli(
        "run",
        "-m",
        str(smol),
        "-d",
        str(smol),
        "-n",
        "24",
        "-i",
        "2",
        "-t",
        "2",
        "-c",
        "512",
        "--engine",
        "server",
        "--port",
        str(port),
        "--llama-cpp-path",
        str(llama_bin),
        "-o",
        "s.json",
    )
    assert code == 0, err
    assert "Warm-up 1/1" in out and "Speedup: " in out and "ITL" in out
    data = json.loads(Path("s.json").read_text())
    assert data["config"]["engine"] == "server" and data["config"]["warmup"] == 1
    for mode in ("vanilla", "speculative"):
        m = data["modes"][mode]
        assert m["binary"] == "llama-server"
        session = m["session"]
        assert Path(session["log"]).is_file() and "--metrics" in session["command"]
        assert ("--spec-type draft-simple" in session["command"]) == (mode == "speculative")
        assert session["url"].startswith("http://127.0.0.1:")
        for it in m["iterations"]:
            t = it["server_timings"]
            assert t["cache_n"] == 0  # no prompt reuse between iterations
            assert it["generated_tokens"] == 24 == t["predicted_n"]
            assert it["tokens_per_second"] == pytest.approx(t["predicted_per_second"])
            assert 0 < it["ttft_ms"] <= it["e2e_ms"] <= it["wall_ms"]
            # every latency is recomputable from the raw client-clock record
            req = it["request"]
            assert it["ttft_ms"] == pytest.approx((req["first_token_s"] - req["sent_s"]) * 1000)
            assert req["output_tokens"] == 24 and len(req["chunk_s"]) == sum(req["chunk_tokens"])
            assert it["itl_p50_ms"] is not None and it["itl_p50_ms"] <= it["itl_p99_ms"]
    for it in data["modes"]["speculative"]["iterations"]:
        # the /metrics deltas of each request equal the server's own per-request counts
        assert it["n_drafted"] == it["server_timings"]["draft_n"] > 0
        assert it["n_accept"] == it["server_timings"]["draft_n_accepted"]
        assert it["draft_steps"] > 0
        assert it["mean_acceptance_length"] == pytest.approx(1 + it["n_accept"] / it["draft_steps"])
        assert sum(it["accepted_per_position"]) == it["n_accept"]
        assert it["acceptance_source"] == "metrics-delta"
    # acceptance per request (issue 20): one prompt, its counts summed over both iterations
    acc = data["modes"]["speculative"]["acceptance"]
    (prompt,) = acc["per_prompt"]
    its = data["modes"]["speculative"]["iterations"]
    assert prompt["drafted"] == sum(i["n_drafted"] for i in its) == acc["drafted"]
    assert prompt["sources"] == ["metrics-delta"] and sum(acc["buckets"].values()) == 1
    assert acc["request_rate"] == pytest.approx(sum(i["acceptance_rate"] for i in its) / 2)
    assert "Acceptance per prompt (1): " in out and "/metrics deltas around each request" in out
    (comp,) = data["comparisons"]
    assert comp["estimator"] == "paired" and comp["paired_speedup"]["n_a"] == 2
    assert servers_on(port) == []  # every server stopped and reaped


def test_target_ci_stops_on_the_real_servers(cli, llama_bin: Path, smol: Path, isolated: Path) -> None:  # type: ignore[no-untyped-def]
    """--target-ci: rounds over 7 built-in prompts (one per category) until the paired interval is
    narrow enough (a loose 50% here) or --max-iterations (21: three rounds, the first look at the
    rule's minimum of 20 pairs); the result records the look and says why it stopped."""
    port = free_port()
    code, out, err = cli(
        "run",
        *("-m", str(smol), "-d", str(smol), "-n", "12", "-t", "2", "-c", "512", "--engine", "server"),
        *(
            "--port",
            str(port),
            "--llama-cpp-path",
            str(llama_bin),
            "--prompts",
            "builtin",
            "--num-prompts",
            "7",
        ),
        *("--target-ci", "50", "--max-iterations", "21", "--warmup", "0", "-o", "t.json"),
    )
    assert code == 0, err
    rep = results.load(Path("t.json"))
    s = rep.stopping
    assert s is not None and s.stopped_by in ("target", "max-iterations")
    assert rep.vanilla is not None and rep.speculative is not None
    assert len(rep.vanilla.iterations) == len(rep.speculative.iterations) == 21  # three rounds of 7
    (look,) = s.looks
    assert look.n_pairs == 21 and look.relative_half_width is not None
    assert (s.stopped_by == "target") == (look.relative_half_width <= 0.5)
    assert "Stopping: target ±50.0%: " in out
    assert servers_on(port) == []


def test_draft_without_spec_type_is_caught(llama_bin: Path, smol: Path, tmp_path: Path) -> None:
    # A build that (as far as velobench knows) has no --spec-type gets `-md` alone; current
    # llama-server then loads the draft but never speculates, which /slots reveals.
    real = find_tool("llama-server", llama_bin)
    blind = Tool(real.name, real.path, real.source, real.version, real.flags - {"--spec-type"})
    cfg = RunConfig(
        main_model=str(smol),
        draft_model=str(smol),
        n_predict=8,
        threads=2,
        ctx_size=512,
        llama_cpp_path=str(llama_bin),
    )
    engine = LlamaServerEngine(cfg, log_dir=tmp_path)
    engine.tool = blind
    with (
        pytest.raises(VelobenchError, match="reports speculation off but the speculative mode needs it on"),
        engine.session("speculative"),
    ):
        pass
    assert not [p for p in psutil.Process().children(recursive=True) if p.name() == "llama-server"]


def test_busy_port(cli, llama_bin: Path, smol: Path) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, _out, err = cli(
            "run",
            "-m",
            str(smol),
            "-d",
            str(smol),
            "-n",
            "8",
            "-i",
            "1",
            "--engine",
            "server",
            "--port",
            str(port),
            "--llama-cpp-path",
            str(llama_bin),
            "-o",
            "b.json",
        )
    assert (
        code == 2
        and err
        == f"velobench: error: port {port} on 127.0.0.1 is already in use; choose another with --port\n"
    )
    assert not Path("b.json").exists()


def test_a_model_the_server_cannot_load(cli, llama_bin: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "broken.gguf"
    # a complete GGUF (velobench's checks pass) that llama.cpp cannot load: no architecture, no tensors
    broken.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0))
    code, _out, err = cli(
        "run",
        "-m",
        str(broken),
        "--method",
        "ngram-simple",
        "-n",
        "8",
        "-i",
        "1",
        "--engine",
        "server",
        "--llama-cpp-path",
        str(llama_bin),
        "-o",
        "x.json",
    )
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("velobench: error: llama-server exited with code 1 while starting: ")
    assert not Path("x.json").exists()
    assert not [p for p in psutil.Process().children(recursive=True) if p.name() == "llama-server"]


def start_run(llama_bin: Path, smol: Path, out: Path, port: int) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable,
        "-m",
        "velobench",
        "run",
        "-m",
        str(smol),
        "-d",
        str(smol),
        "-n",
        "16",
        "-i",
        "500",
        "-t",
        "2",
        "-c",
        "512",
        "--engine",
        "server",
        "--port",
        str(port),
        "--llama-cpp-path",
        str(llama_bin),
        "-o",
        str(out),
    ]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_iterations(proc: subprocess.Popen[bytes], out: Path, n: int = 2) -> None:
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        if out.exists():
            rep = results.load(out)
            if rep.vanilla and len(rep.vanilla.iterations) >= n:
                return
        time.sleep(0.1)


def test_sigint_leaves_no_server_and_keeps_iterations(llama_bin: Path, smol: Path, isolated: Path) -> None:
    port = free_port()
    out = isolated / "int.json"
    proc = start_run(llama_bin, smol, out, port)
    try:
        wait_for_iterations(proc, out)
        assert len(servers_on(port)) == 1
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and b"Traceback" not in stderr
    rep = results.load(out)
    assert rep.status == "interrupted" and rep.vanilla is not None and len(rep.vanilla.iterations) >= 2
    assert servers_on(port) == []


def test_server_crash_mid_run_is_one_line_and_keeps_iterations(
    llama_bin: Path, smol: Path, isolated: Path
) -> None:
    port = free_port()
    out = isolated / "crash.json"
    proc = start_run(llama_bin, smol, out, port)
    try:
        wait_for_iterations(proc, out)
        for p in servers_on(port):
            p.kill()
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, stderr
    text = stderr.decode()
    assert text.startswith("velobench: error: llama-server exited") and text.count("\n") == 1
    assert "finished iteration(s) kept in" in text
    rep = results.load(out)
    assert rep.status == "failed" and rep.vanilla is not None and len(rep.vanilla.iterations) >= 2
    assert servers_on(port) == []


def test_lookup_is_not_a_server_method() -> None:
    cfg = RunConfig(main_model="m.gguf", method=Method.LOOKUP)
    from velobench.engines.llama_server import server_argv

    flags = frozenset({"-m", "-c", "--host", "--port", "-np", "--spec-draft-n-max"})
    tool = Tool("llama-server", Path("/x"), "test", BinaryVersion("0.5.0-dev", 0, None), flags)
    with pytest.raises(VelobenchError, match="--method ngram-cache"):
        server_argv(tool, cfg, "speculative", 1234)
