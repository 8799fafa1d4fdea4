"""Faults with real processes: real llama.cpp binaries, real SmolLM2-135M, the real CLI.

a save that fails mid-run        the earlier iterations stay; everything goes to a rescue copy
a matrix with an impossible cell the other cells finish; the failure is recorded, resumable
a child past its deadline        killed at the deadline and reported as such
-x --host 0.0.0.0                refused before anything starts
a prompt too long for argv       passed by file, byte for byte (E2BIG before)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest

from velobench.results import store as results

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}


def velobench(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "velobench", *args],
        cwd=cwd,
        env=env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """An empty working folder (tmp_path also holds the test's private cache)."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def processes_mentioning(marker: str) -> list[str]:
    """Command lines of live processes that mention `marker` (a unique path or prompt of one test)."""
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            line = " ".join(p.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if marker in line and "pytest" not in line:
            out.append(line)
    return out


def test_a_save_that_fails_mid_run_keeps_the_earlier_iterations(
    llama_bin: Path, smol: Path, work: Path
) -> None:
    """After the first save the result's folder is moved away and a file put in its place: the
    next save fails (as on a disk that filled up or a folder gone read-only)."""
    args = ["run", "--engine", "server", "-m", str(smol), "--method", "ngram-simple", "--skip-speculative"]
    args += [
        "-n",
        "16",
        "-i",
        "8",
        "-c",
        "512",
        "-t",
        "2",
        "--no-ceiling",
        "-l",
        str(llama_bin),
        "-o",
        "out/r.json",
    ]
    child = subprocess.Popen(
        [sys.executable, "-m", "velobench", *args],
        cwd=work,
        env=env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = work / "out" / "r.json"

    def sabotage() -> None:
        deadline = time.monotonic() + 300
        while not first.exists() and time.monotonic() < deadline:
            time.sleep(0.002)
        os.rename(work / "out", work / "out-kept")
        (work / "out").write_text("a file where the result's folder was")

    saboteur = threading.Thread(target=sabotage)
    saboteur.start()
    out, err = child.communicate(timeout=600)
    saboteur.join()
    assert child.returncode == 2, out + err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in out + err
    m = re.match(
        r"velobench: error: cannot save out/r\.json \((.+)\): all (\d+) finished iteration\(s\) are in (\S+)$",
        last,
    )
    assert m, last
    kept = results.load(work / "out-kept" / "r.json")
    rescued = results.load(Path(m.group(3)))
    n_kept = kept.iteration_count()
    assert 1 <= n_kept < 8 and kept.status == "running"
    assert rescued.iteration_count() == int(m.group(2)) > n_kept  # nothing finished is lost
    assert rescued.status == "failed" and "cannot save" in (rescued.error or "")
    assert [i.tokens_per_second for i in rescued.modes["vanilla"].iterations[:n_kept]] == [
        i.tokens_per_second for i in kept.modes["vanilla"].iterations
    ]
    assert processes_mentioning(str(work)) == []  # the server was stopped


def test_a_matrix_with_one_impossible_cell_finishes_the_others(
    llama_bin: Path, smol: Path, work: Path
) -> None:
    """The draft is SmolLM2 with one tensor renamed in its header: it passes every check (a
    complete GGUF, a compatible vocabulary) but llama-server cannot load it ("missing tensor
    'output_norm.weight'"), so only the draft-model cell fails. (A truncated copy no longer
    serves: velobench refuses it before the matrix starts.)"""
    broken = work / "broken-draft.gguf"
    data = smol.read_bytes()
    assert data.count(b"output_norm.weight") == 1
    broken.write_bytes(data.replace(b"output_norm.weight", b"output_norX.weight"))
    (work / "m.toml").write_text(
        f"[run]\niterations = 1\nn_predict = 8\nctx_size = 512\nthreads = 2\nengine = 'server'\n"
        f"ceiling = false\nllama_cpp_path = '{llama_bin}'\n"
        f"[[pairs]]\ntarget = '{smol}'\ndraft = '{broken}'\n"
        "[[methods]]\nmethod = 'draft'\nn_draft = [2]\n"
        "[[methods]]\nmethod = 'ngram-simple'\nn_draft = [4]\n"
    )
    done = velobench("matrix", "m.toml", "-o", "run", cwd=work)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((work / "run" / "summary.json").read_text())
    status = {r["cell"]["id"]: (r["status"], r["error"]) for r in summary["records"]}
    assert len(status) == 3
    base, draft, ngram = (
        status["smollm2-135m-instruct-q4_1__vanilla"],
        status["smollm2-135m-instruct-q4_1__broken-draft__draft__nd2__pmin0"],
        status["smollm2-135m-instruct-q4_1__nodraft__ngram-simple__nd4__pmin0"],
    )
    assert base == ("complete", None) and ngram == ("complete", None)
    assert draft[0] == "failed" and "llama-server exited" in draft[1]
    assert "1 cell(s) failed" in done.stdout
    ledger = (work / "run" / "cells.jsonl").read_text().splitlines()
    assert len(ledger) == 3  # the failure is in the ledger too
    # --resume keeps the failed cell as it is; --retry-failed runs it (and only it) again
    again = velobench("matrix", "m.toml", "--resume", "run", cwd=work)
    assert again.returncode == 0 and "2 of 3 cells finished, 1 failed" in again.stdout, again.stdout
    assert len((work / "run" / "cells.jsonl").read_text().splitlines()) == 3
    retry = velobench("matrix", "m.toml", "--resume", "run", "--retry-failed", cwd=work)
    assert retry.returncode == 0, retry.stdout + retry.stderr
    assert len((work / "run" / "cells.jsonl").read_text().splitlines()) == 4
    report = velobench("report", "run", "-F", "md", cwd=work)  # the matrix still renders
    assert report.returncode == 0 and "ngram-simple" in report.stdout, report.stderr


def test_a_child_past_its_deadline_is_killed_at_it(llama_bin: Path, smol: Path, work: Path) -> None:
    marker = f"deadline-test-{uuid.uuid4().hex[:8]}"
    start = time.monotonic()
    done = velobench(
        "run", "--engine", "cli", "-m", str(smol), "-d", str(smol), "-p", marker, "-n", "512", "-i", "1",
        "-c", "1024", "--timeout", "0.5", "--no-ceiling", "-l", str(llama_bin), "-o", "r.json",
        cwd=work,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    assert done.returncode == 2, done.stdout + done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "llama-completion did not finish within 0.5 s and was killed" in last
    assert "raise it with --timeout" in last and "Traceback" not in done.stderr
    assert elapsed < 60  # 0.5 s, the kill, and velobench's own start: not the 512 tokens
    assert processes_mentioning(marker) == []
    assert list(work.iterdir()) == []  # failed before its first iteration: nothing left


@pytest.mark.parametrize("flag", ["--host 0.0.0.0", "--host=0.0.0.0"])
def test_x_host_is_refused_before_anything_starts(flag: str, llama_bin: Path, smol: Path, work: Path) -> None:
    marker = f"host-test-{uuid.uuid4().hex[:8]}"
    done = velobench(
        "run", "--engine", "server", "-m", str(smol), "-d", str(smol), "-p", marker, "-x", flag,
        "-l", str(llama_bin), cwd=work, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == "velobench: error: -x --host: velobench binds servers to 127.0.0.1 only\n"
    assert done.stdout == "" and list(work.iterdir()) == []
    assert processes_mentioning(marker) == []
    shown = velobench("run", "-m", str(smol), "-d", str(smol), "-l", str(llama_bin), "--dry-run", cwd=work)
    assert "--host 127.0.0.1" in shown.stdout and "0.0.0.0" not in shown.stdout


def test_a_long_prompt_goes_by_file_byte_for_byte(
    cli, llama_bin: Path, smol: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """With the by-file threshold lowered, the real llama-completion reads the prompt from -f and
    sees exactly the tokens it sees through -p (its -f drops one trailing newline; velobench adds one)."""
    prompt = "Count the words in these lines:\nalpha beta\ngamma delta\n"
    (isolated / "p.txt").write_text(prompt)
    common = ["run", "--engine", "cli", "-m", str(smol), "--method", "ngram-simple", "--skip-speculative"]
    common += [
        "-n",
        "8",
        "-i",
        "1",
        "-c",
        "512",
        "-t",
        "2",
        "--no-ceiling",
        "-l",
        str(llama_bin),
        "-f",
        "p.txt",
    ]
    code, _, err = cli(*common, "-o", "by-arg.json")
    assert code == 0, err
    monkeypatch.setattr("velobench.engines.llama_cli.PROMPT_ARG_MAX_BYTES", 16)
    code, _, err = cli(*common, "-o", "by-file.json")
    assert code == 0, err
    by_arg, by_file = (
        results.load(isolated / f).modes["vanilla"].iterations[0] for f in ("by-arg.json", "by-file.json")
    )
    assert " -p " in by_arg.command and " -f " in by_file.command
    assert by_file.prompt_tokens == by_arg.prompt_tokens
    assert by_file.output == by_arg.output  # greedy: the same continuation of the same prompt
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("velobench-prompt-*"))  # temp file removed


def test_a_prompt_over_the_argument_limit_is_not_a_crash(llama_bin: Path, smol: Path, work: Path) -> None:
    """200 KB of prompt (over Linux's 128 KiB per argument): by file, and the real tool's own verdict."""
    (work / "long.txt").write_text("word " * 40000)
    done = velobench(
        "run", "--engine", "cli", "-m", str(smol), "--method", "ngram-simple", "--skip-speculative", "-n", "4",
        "-i", "1", "-c", "512", "--no-ceiling", "-l", str(llama_bin), "-f", "long.txt", "-o", "out/r.json",
        cwd=work,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    # the tool read all of it (E2BIG itself, without a model: tests/unit/test_hardening.py)
    assert re.search(r"prompt is too long \(4000\d tokens, max 508\)", done.stderr.strip().splitlines()[-1])
    assert sorted(p.name for p in work.iterdir()) == ["long.txt"]
