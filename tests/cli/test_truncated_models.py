"""A damaged model file never reaches a model load: `run`, `load` and `think` refuse a truncated
GGUF in one line (exit code 2) before any program is started, and pass the complete file.

The real CLI runs in a subprocess, as in test_bad_inputs.py, on a copy of the real SmolLM2-135M
GGUF cut short with os.truncate. Every program comes from `--llama-cpp-path`, a folder of
wrappers that log each start and exec the real llama.cpp build: the refusals leave that log
empty (not even a `--version` probe ran), and `run --dry-run` on the complete file goes through
the real programs (it probes them) and prints the command lines.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from velobench.models.gguf_info import _read_header, declared_size
from velobench.paths import cache_dir

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REAL_CACHE = cache_dir()  # read at import, before the autouse fixture points VELOBENCH_CACHE elsewhere
SMOL = REAL_CACHE / "models" / "smollm2-135m-instruct-q4_1.gguf"
TOOLS = (
    "llama-server",
    "llama-completion",
    "llama-cli",
    "llama-speculative-simple",
    "llama-speculative",
    "llama-lookup",
    "llama-bench",
)


def real_build() -> Path | None:
    found = sorted(REAL_CACHE.glob("llama.cpp/*/build/bin/llama-server"))
    return found[-1].parent if found else None


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, dict[str, str], Path]:
    """(the wrapper folder, the environment, the log of started programs)."""
    real = real_build()
    if not SMOL.is_file() or real is None:
        pytest.skip(f"needs the real llama.cpp build and SmolLM2 in {REAL_CACHE} (`nox -s tests` makes them)")
    wrappers, log = tmp_path / "bin", tmp_path / "started.log"
    wrappers.mkdir()
    for name in TOOLS:
        if (real / name).is_file():
            script = wrappers / name
            script.write_text(f'#!/bin/sh\necho "$0 $*" >> {log}\nexec {real / name} "$@"\n')
            script.chmod(0o755)
    cache = tmp_path / "cache"
    cache.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("VELOBENCH_LLAMA_CPP", "OPENAI_API_KEY")}
    env.update(
        PYTHONPATH=str(ROOT), VELOBENCH_CACHE=str(cache), HF_HUB_OFFLINE="1", COLUMNS="200", NO_COLOR="1"
    )
    return wrappers, env, log


def velobench(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "velobench", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def truncated_copy(tmp_path: Path, size: int) -> Path:
    out = tmp_path / f"smol-{size}.gguf"
    shutil.copyfile(SMOL, out)
    os.truncate(out, size)
    return out


@pytest.mark.parametrize("where", ["data", "header"])
@pytest.mark.parametrize("command", ["run", "load", "think"])
def test_a_truncated_model_is_refused_before_anything_starts(
    setup: tuple[Path, dict[str, str], Path], tmp_path: Path, command: str, where: str
) -> None:
    wrappers, env, log = setup
    full = SMOL.stat().st_size
    size = full - 1_000_000 if where == "data" else 2_000  # a partial download; a header cut short
    bad = truncated_copy(tmp_path, size)
    work = tmp_path / "work"
    work.mkdir()
    model_flags = {
        "run": ["run", "-m", str(SMOL), "-d", str(bad), "-n", "4", "-i", "1"],  # the draft is the bad one
        "load": ["load", "-m", str(bad), "-d", str(SMOL), "--requests", "2"],
        "think": ["think", "-m", str(SMOL), "-d", str(bad), "--num-problems", "1"],
    }[command]
    done = velobench(env, work, *model_flags, "--llama-cpp-path", str(wrappers), "-o", "r.json")
    what = {"run": "draft model", "load": "main model", "think": "small model (-d)"}[command]
    tail = (
        f"{size:,} bytes, its header declares {full:,}"
        if where == "data"
        else f"{size:,} bytes end inside its header"
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert done.stderr == (
        f"velobench: error: {what} {bad} is truncated: {tail} (a partial download? pull it again)\n"
    )
    assert not log.exists(), f"started before the refusal: {log.read_text()}"
    assert sorted(p.name for p in work.iterdir()) == []  # no result, no log folder


def test_the_complete_file_passes_every_check(
    setup: tuple[Path, dict[str, str], Path], tmp_path: Path
) -> None:
    wrappers, env, log = setup
    assert declared_size(_read_header(SMOL, want_tokens=False)) == SMOL.stat().st_size
    copy = truncated_copy(tmp_path, SMOL.stat().st_size)  # a copy, cut at its full length: complete
    done = velobench(
        env,
        tmp_path,
        *("run", "-m", str(SMOL), "-d", str(copy), "--engine", "server", "--dry-run"),
        *("--llama-cpp-path", str(wrappers), "-o", "r.json"),
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["vanilla", "speculative"]
    assert f"-md {copy}" in lines[1] and str(wrappers / "llama-server") in lines[1]
    assert "llama-server --version" in log.read_text()  # the real programs were probed, after the checks
    assert not (tmp_path / "r.json").exists()
