"""The interleaved schedule for real (issue 20): two llama-servers alive side by side, stopped
on Ctrl-C and when velobench is killed; the cli engine alternating its processes; other
processes' CPU provoked by a real hog and named in the result."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import psutil
import pytest

from velobench.proc import free_port
from velobench.results import store as results
from velobench.results.schema import Report, WarningCode

pytestmark = pytest.mark.integration


def servers_on(port: int) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["name", "cmdline"]):
        try:
            cmd = p.info["cmdline"] or []
            if (
                p.info["name"] == "llama-server"
                and "--port" in cmd
                and cmd[cmd.index("--port") + 1] == str(port)
            ):
                found.append(p)
        except (psutil.NoSuchProcess, ValueError, IndexError):
            continue
    return found


def free_pair() -> int:
    """A port P with P + 1 free too (the speculative server's)."""
    while True:
        p = free_port()
        if p < 65535 and not servers_on(p + 1):
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p + 1))
                return p
            except OSError:
                continue


def start(llama_bin: Path, smol: Path, out: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
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
        "12",
        "-i",
        "500",
    ]
    argv += [
        "-t",
        "1",
        "-c",
        "512",
        "--engine",
        "server",
        "--port",
        str(port),
        "--llama-cpp-path",
        str(llama_bin),
    ]
    argv += ["--warmup", "0", "--no-ceiling", "-o", str(out), *extra]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(proc: subprocess.Popen[bytes], out: Path, n: int) -> Report:
    """The result once `n` iterations (both modes together) are saved."""
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no iterations in 180 s"
        if out.exists():
            try:
                rep = results.load(out)
            except Exception:  # pragma: no cover - caught between rename and read: try again
                rep = None
            if rep is not None and rep.iteration_count() >= n:
                return rep
        time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def eventually(check: Callable[[], bool], within_s: float) -> bool:
    """Whether `check()` holds at some look (every 0.2 s) within `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def gone(port: int, within_s: float) -> bool:
    return eventually(lambda: not servers_on(port) and not servers_on(port + 1), within_s)


def test_both_servers_alive_side_by_side_and_both_stopped_on_ctrl_c(
    llama_bin: Path, smol: Path, isolated: Path
) -> None:
    port = free_pair()
    out = isolated / "both.json"
    proc = start(llama_bin, smol, out, port)
    try:
        rep = wait_for(proc, out, 4)
        (vanilla,), (spec,) = servers_on(port), servers_on(port + 1)  # both up at once, on P and P + 1
        assert vanilla.is_running() and spec.is_running() and vanilla.pid != spec.pid
        ours = {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
        assert {vanilla.pid, spec.pid} <= ours
        assert "--spec-type" in " ".join(spec.cmdline()) and "--spec-type" not in " ".join(vanilla.cmdline())
        rep = wait_for(proc, out, 4)  # still both, mid-run
        assert vanilla.is_running() and spec.is_running()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        stop(proc)
    assert proc.returncode == 130 and b"Traceback" not in stderr, stderr
    assert gone(port, 5.0), "a llama-server outlived velobench's Ctrl-C"
    rep = results.load(out)
    assert rep.status == "interrupted" and rep.schedule == "interleaved"
    its = sorted((i for m in rep.modes.values() for i in m.iterations), key=lambda i: i.position or 0)
    order = "".join("A" if rep.vanilla and i in rep.vanilla.iterations else "B" for i in its)
    assert order.startswith("ABBA") and [i.position for i in its] == list(range(1, len(its) + 1))
    assert all(
        a.started_s is not None and b.started_s is not None and a.started_s < b.started_s
        for a, b in pairwise(its)
    )
    assert rep.vanilla is not None and rep.vanilla.session is not None and rep.speculative is not None
    assert rep.speculative.session is not None
    assert f"--port {port} " in (rep.vanilla.session.command or "")
    assert f"--port {port + 1}" in (rep.speculative.session.command or "")


def test_servers_die_with_velobench_killed_by_sigkill(llama_bin: Path, smol: Path, isolated: Path) -> None:
    port = free_pair()
    out = isolated / "kill.json"
    proc = start(llama_bin, smol, out, port)
    try:
        wait_for(proc, out, 2)
        assert len(servers_on(port)) == 1 and len(servers_on(port + 1)) == 1
        proc.kill()  # SIGKILL: no Python code of velobench runs; the watchdogs and PDEATHSIG must
        proc.wait()
    finally:
        stop(proc)
    # PR_SET_PDEATHSIG sends SIGTERM at once; the watchdog SIGKILLs after its 10 s grace
    assert gone(port, 20.0), "a llama-server outlived velobench killed by SIGKILL"
    rep = results.load(out)  # everything saved before the kill is there
    assert rep.iteration_count() >= 2


def test_the_cli_engine_alternates_its_processes(cli, llama_bin: Path, smol: Path, isolated: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli(
        *("run", "--engine", "cli", "-m", str(smol), "-d", str(smol), "-n", "8", "-i", "2", "-t", "1"),
        *("-c", "512", "--warmup", "0", "--no-ceiling", "--llama-cpp-path", str(llama_bin), "-o", "c.json"),
    )
    assert code == 0, err
    data = json.loads(Path("c.json").read_text())
    assert data["schedule"] == "interleaved" and data["config"]["schedule"] == "interleaved"
    v, s = data["modes"]["vanilla"]["iterations"], data["modes"]["speculative"]["iterations"]
    assert [i["position"] for i in v] == [1, 4] and [i["position"] for i in s] == [2, 3]
    assert v[0]["started_s"] == 0.0 < s[0]["started_s"] < s[1]["started_s"] < v[1]["started_s"]
    for it in v + s:  # other processes' CPU read around every generation
        assert it["interference"] is not None and it["interference"]["duration_s"] > 0
    blocked = cli(
        *("run", "--engine", "cli", "-m", str(smol), "-d", str(smol), "-n", "8", "-i", "2", "-t", "1"),
        *("-c", "512", "--warmup", "0", "--no-ceiling", "--llama-cpp-path", str(llama_bin)),
        *("--schedule", "blocked", "-o", "b.json"),
    )
    assert blocked[0] == 0, blocked[2]
    data = json.loads(Path("b.json").read_text())
    assert data["schedule"] == "blocked"
    assert [i["position"] for i in data["modes"]["vanilla"]["iterations"]] == [1, 2]


def test_a_cpu_hog_during_a_real_run_is_named(llama_bin: Path, smol: Path, isolated: Path) -> None:
    """A real hog, not velobench's (a sibling of the velobench process), spinning through a short
    real run: the interference warning names it among the busiest other processes."""
    hog = subprocess.Popen([sys.executable, "-c", "while 1: pass"], start_new_session=True)
    try:
        time.sleep(0.5)
        argv = [sys.executable, "-m", "velobench", "run", "--engine", "cli", "-m", str(smol), "-d", str(smol)]
        argv += ["-n", "24", "-i", "2", "-t", "1", "-c", "512", "--warmup", "0", "--no-ceiling"]
        argv += ["--llama-cpp-path", str(llama_bin), "-o", str(isolated / "hog.json")]
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=300,
            env={**os.environ, "COLUMNS": "300"},
        )
    finally:
        hog.kill()
        hog.wait()
    assert done.returncode == 0, done.stderr
    rep = results.load(isolated / "hog.json")
    (w,) = [w for w in rep.warnings if w.code is WarningCode.INTERFERENCE]
    named = [
        pid
        for m in rep.modes.values()
        for i in m.iterations
        if i.interference
        for _, pid, _ in i.interference.top
    ]
    assert hog.pid in named  # among the busiest others in the iterations it disturbed
    from velobench.report.warnings import text

    assert f"pid {hog.pid}" in text(w)  # the warning names it
    assert float(w.params["max_pct"] or 0) > 25  # type: ignore[arg-type]
    assert "other processes used the CPU during" in done.stdout.decode()


def test_iterations_a_real_hog_disturbs_are_measured_again(
    llama_bin: Path, smol: Path, isolated: Path
) -> None:
    """--redo-disturbed on a real run: a hog spins until the first disturbed iteration is set
    aside (the result file shows it), then stops. The disturbed iterations are kept in `redone`,
    each measured again, the budget holds, and the redone warning names the hog."""
    hog = subprocess.Popen([sys.executable, "-c", "while 1: pass"], start_new_session=True)
    out = isolated / "redo.json"
    argv = [sys.executable, "-m", "velobench", "run", "--engine", "cli", "-m", str(smol), "-d", str(smol)]
    argv += ["-n", "24", "-i", "2", "-t", "1", "-c", "512", "--warmup", "0", "--no-ceiling"]
    argv += ["--redo-disturbed", "3", "--llama-cpp-path", str(llama_bin), "-o", str(out)]
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while hog.poll() is None:
            assert time.monotonic() < deadline and child.poll() is None, child.stderr
            try:
                data = json.loads(out.read_text())
            except (OSError, ValueError):
                data = {}
            if any(m.get("redone") for m in data.get("modes", {}).values()):
                hog.kill()
            time.sleep(0.1)
        stdout, stderr = child.communicate(timeout=300)
    finally:
        for p in (hog, child):
            if p.poll() is None:
                p.kill()
            p.wait()
    assert child.returncode == 0, stderr
    rep = results.load(out)
    redone = [i for m in rep.modes.values() for i in m.redone]
    assert 1 <= len(redone) <= 3
    from velobench.analysis.warnings import disturbed

    assert all(disturbed(i.interference) for i in redone)
    assert any(hog.pid in {pid for _, pid, _ in i.interference.top} for i in redone if i.interference)
    for m in rep.modes.values():  # every slot measured, the redone ones again
        assert sorted(i.index for i in m.iterations) == [1, 2]
    positions = sorted(i.position or 0 for m in rep.modes.values() for i in [*m.iterations, *m.redone])
    assert positions == list(range(1, 5 + len(redone)))  # each redo took its own place in the schedule
    (w,) = [w for w in rep.warnings if w.code is WarningCode.REDONE]
    from velobench.report.warnings import text

    assert f"pid {hog.pid}" in text(w) and "--redo-disturbed 3" in text(w)
    assert "measured again" in stdout.decode()
