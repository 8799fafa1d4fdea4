"""A disk that fills up mid-run, for real, under every command that saves as it goes.

The output folder is a small tmpfs (tests/fullfs.py); once the first unit is saved (the result
file appears) the test fills it to the last byte, so the next save fails with ENOSPC as on a
disk that filled up. Real llama.cpp binaries, real SmolLM2-135M, the real CLI in a child process.

Each command must then end cleanly: exit code 2, one line on stderr that says where every
finished unit is (the rescue copy in the cache, which is not on the full disk), no traceback,
no crash log, no process left behind; and every finished unit is in the file as last saved or
in the rescue copy.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from tests.fullfs import fill, small_tmpfs
from velobench.results import store
from velobench.results.load import LoadReport, read_records
from velobench.results.think import ThinkReport

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
THINK_CONFIG = ROOT / "tests" / "fixtures" / "think" / "every-paragraph.toml"
RESCUED = r"(\S+/rescued/\S+\.json)"


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


@pytest.fixture
def disk(work: Path) -> Iterator[Path]:
    """work/out: a 4 MiB tmpfs (room for a result, its records and the servers' logs)."""
    with small_tmpfs(work / "out", 4096) as folder:
        yield folder


@dataclass
class Ended:
    code: int
    out: str
    err: str
    children: list[psutil.Process] = field(default_factory=list)  # velobench's, while it ran

    @property
    def line(self) -> str:
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err  # one line on stderr, nothing else
        return lines[0]


def run_until_full(args: list[str], work: Path, disk: Path, trigger: Path) -> Ended:
    """`velobench ARGS` in `work`; the disk is filled as soon as `trigger` appears."""
    child = subprocess.Popen(
        [sys.executable, "-m", "velobench", *args],
        cwd=work,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: dict[int, psutil.Process] = {}

    def look() -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            seen.update((p.pid, p) for p in psutil.Process(child.pid).children(recursive=True))

    def sabotage() -> None:
        deadline = time.monotonic() + 300
        while not trigger.exists() and child.poll() is None and time.monotonic() < deadline:
            look()
            time.sleep(0.002)
        fill(disk)
        while child.poll() is None:  # the programs velobench starts after the disk is full, too
            look()
            time.sleep(0.01)

    saboteur = threading.Thread(target=sabotage)
    saboteur.start()
    try:
        out, err = child.communicate(timeout=600)
    finally:
        if child.poll() is None:
            child.kill()
        saboteur.join()
    return Ended(child.returncode, out, err, list(seen.values()))


def alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_clean(done: Ended, work: Path, isolated: Path) -> None:
    """Exit 2, no traceback, no crash log, nothing of velobench's still running."""
    assert done.code == 2, done.out + done.err
    assert "Traceback" not in done.out + done.err
    assert not list((isolated / "cache" / "logs").glob("crash-*")), done.err
    assert done.children, "velobench started no program: nothing to check"
    deadline = time.monotonic() + 10
    while any(alive(p) for p in done.children):
        assert time.monotonic() < deadline, [p.pid for p in done.children if alive(p)]
        time.sleep(0.1)
    for p in psutil.process_iter(["cmdline", "cwd"]):
        try:
            here = str(work) in " ".join(p.info["cmdline"] or []) or str(p.info["cwd"] or "").startswith(
                str(work)
            )
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        assert not here or "pytest" in " ".join(p.info["cmdline"] or []), p.info


def test_run(llama_bin: Path, smol: Path, work: Path, disk: Path, isolated: Path) -> None:
    args = ["run", "--engine", "server", "-m", str(smol), "--method", "ngram-simple", "--skip-speculative"]
    args += ["-n", "16", "-i", "6", "-c", "512", "-t", "2", "--no-ceiling", "-l", str(llama_bin)]
    done = run_until_full([*args, "-o", "out/r.json"], work, disk, disk / "r.json")
    assert_clean(done, work, isolated)
    m = re.fullmatch(
        rf"velobench: error: cannot save out/r\.json \(No space left on device\): "
        rf"all (\d+) finished iteration\(s\) are in {RESCUED}",
        done.line,
    )
    assert m, done.line
    kept, rescued = store.load(disk / "r.json"), store.load(Path(m.group(2)))
    assert 1 <= kept.iteration_count() < rescued.iteration_count() == int(m.group(1))
    assert rescued.status == "failed" and "No space left on device" in (rescued.error or "")
    assert kept.vanilla is not None and rescued.vanilla is not None
    assert rescued.vanilla.iterations[: kept.iteration_count()] == kept.vanilla.iterations


def test_matrix(llama_bin: Path, smol: Path, work: Path, disk: Path, isolated: Path) -> None:
    (work / "m.toml").write_text(
        f"[run]\niterations = 2\nn_predict = 8\nctx_size = 512\nthreads = 2\nengine = 'server'\n"
        f"ceiling = false\nllama_cpp_path = '{llama_bin}'\n"
        f"[[pairs]]\ntarget = '{smol}'\n"
        "[[methods]]\nmethod = 'ngram-simple'\nn_draft = [4]\n"
    )
    done = run_until_full(["matrix", "m.toml", "-o", "out/run"], work, disk, disk / "run" / "summary.json")
    assert_clean(done, work, isolated)
    cell = "smollm2-135m-instruct-q4_1__nodraft__ngram-simple__nd4__pmin0"
    m = re.fullmatch(
        rf"velobench: error: cell {cell}: cannot save out/run/cells/{cell}\.json \(No space left on device\): "
        rf"all (\d+) finished iteration\(s\) are in {RESCUED}; 1 finished cell\(s\) kept in out/run "
        r"\(resume with --resume out/run\)",
        done.line,
    )
    assert m, done.line
    summary = (disk / "run" / "summary.json").read_text()
    assert '"cells_done": 1' in summary and "__vanilla" in summary  # the finished cell, as saved
    baseline = store.load(disk / "run" / "cells" / "smollm2-135m-instruct-q4_1__vanilla.json")
    assert baseline.status == "complete" and baseline.iteration_count() == 2
    rescued = store.load(Path(m.group(2)))  # the cell in progress: its finished iterations
    assert rescued.iteration_count() == int(m.group(1)) >= 1 and rescued.status == "failed"


def test_load(llama_bin: Path, smol: Path, work: Path, disk: Path, isolated: Path) -> None:
    args = ["load", "-m", str(smol), "-d", str(smol), "--n-draft", "4", "-n", "16", "--skip-speculative"]
    args += ["--prompts", "builtin", "--num-prompts", "4", "-t", "2", "-c", "1024", "-l", str(llama_bin)]
    args += ["--sweep", "concurrency=1,2", "--requests", "4", "--no-stop-on-saturation"]
    done = run_until_full([*args, "-o", "out/r.json"], work, disk, disk / "r.json")
    assert_clean(done, work, isolated)
    m = re.fullmatch(
        rf"velobench: error: cannot save out/r\.json \(No space left on device\): "
        rf"all 2 finished level\(s\) are in {RESCUED}",
        done.line,
    )
    assert m, done.line
    kept, rescued = store.load_result(disk / "r.json"), store.load_result(Path(m.group(1)))
    assert isinstance(kept, LoadReport) and isinstance(rescued, LoadReport)
    assert [lvl.level for lvl in kept.modes["vanilla"].levels] == [1.0]
    assert [lvl.level for lvl in rescued.modes["vanilla"].levels] == [1.0, 2.0]
    assert (
        rescued.status == "failed" and rescued.modes["vanilla"].levels[0] == kept.modes["vanilla"].levels[0]
    )
    records = read_records(Path(m.group(1)).with_name(rescued.records_file))  # every level's raw requests
    assert {k: len(v) for k, v in records.items()} == {("vanilla", 1.0): 4, ("vanilla", 2.0): 4}


def test_think(llama_bin: Path, smol: Path, work: Path, disk: Path, isolated: Path) -> None:
    args = ["think", "-m", str(smol), "-d", str(smol), "--prompts", "builtin:multi-step", "--num-runs", "2"]
    args += ["--num-problems", "1", "--config", str(THINK_CONFIG), "--max-tokens", "32", "-t", "2"]
    args += ["-c", "1024", "--llama-cpp-path", str(llama_bin)]
    done = run_until_full([*args, "-o", "out/t.json"], work, disk, disk / "t.json")
    assert_clean(done, work, isolated)
    m = re.fullmatch(
        rf"velobench: error: cannot save out/t\.json \(No space left on device\): "
        rf"all (\d+) finished run\(s\) are in {RESCUED}",
        done.line,
    )
    assert m, done.line
    kept, rescued = store.load_result(disk / "t.json"), store.load_result(Path(m.group(2)))
    assert isinstance(kept, ThinkReport) and isinstance(rescued, ThinkReport)
    assert 1 <= len(kept.runs) < len(rescued.runs) and rescued.finished_runs() == int(m.group(1))
    assert rescued.runs[: len(kept.runs)] == kept.runs and rescued.status == "failed"
