"""Matrix runs: config validation (unit) and the smoke matrix on real SmolLM2, killed and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from velobench.runner.matrix import cells, load_config, read_records

EXAMPLE = Path(__file__).parents[2] / "examples" / "matrix-smoke.toml"


@pytest.mark.integration
def test_smoke_matrix_survives_sigkill_and_resumes(llama_bin: Path, smol: Path, isolated: Path) -> None:
    run_dir = isolated / "run"
    base = [sys.executable, "-m", "velobench", "matrix", str(EXAMPLE), "--llama-cpp-path", str(llama_bin)]
    proc = subprocess.Popen(
        [*base, "-o", str(run_dir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    ledger = run_dir / "cells.jsonl"
    deadline = time.monotonic() + 300
    try:
        while len(read_records(ledger)) < 2:  # baseline + one speculative cell finished
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)  # velobench and its llama-server, at once
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # its llama-server dies with it (PR_SET_PDEATHSIG), though nothing could clean up after SIGKILL
    deadline = time.monotonic() + 10
    while servers_for(isolated):
        assert time.monotonic() < deadline, f"orphaned: {servers_for(isolated)}"
        time.sleep(0.1)
    finished = {r.cell.id for r in read_records(ledger)}
    assert len(finished) >= 2
    for f in run_dir.rglob("*.json"):  # every file the kill left behind still parses
        json.loads(f.read_text())

    done = subprocess.run(
        [*base, "--resume", str(run_dir)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert f"resuming {run_dir}: {len(finished)} of 4 cells finished" in done.stdout
    records = read_records(ledger)
    assert sorted(r.cell.id for r in records) == sorted(c.id for c in cells(load_config(EXAMPLE)))
    assert len(records) == 4  # finished cells were not run again
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["cells_done"] == 4
    for rec in summary["records"]:
        assert rec["status"] == "complete"
        assert "velobench run" in rec["command"] and "-o" in rec["command"]
        if not rec["cell"]["baseline"]:
            assert rec["speedup"]["ratio"] > 0 and rec["speedup"]["n_b"] == 2


def servers_for(folder: Path) -> list[int]:
    found = []
    for p in psutil.process_iter(["name", "cmdline"]):
        try:
            if p.info["name"] == "llama-server" and str(folder) in " ".join(p.info["cmdline"] or []):
                found.append(p.pid)
        except psutil.NoSuchProcess:
            continue
    return found
