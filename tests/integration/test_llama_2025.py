"""One build per run, against a real llama.cpp of May 2025 (commit 8733e0c).

That build (llama-cpp-python 0.3.9's sdist, `vendor/llama.cpp`) has `llama-cli` and no
`llama-completion`; velobench's own 2026 build in the cache has `llama-completion`. With
`--llama-cpp-path` naming the 2025 build, every program of the run must come from it: vanilla
is its own `llama-cli -no-cnv`, and nothing is borrowed from the 2026 build. Its llama-server
drafts only with prompt caching on, so the server engine refuses it in one line and auto
picks the cli engine.

The build lives in `<cache>/llama.cpp-2025/build/bin` (or $VELOBENCH_LLAMA_CPP_2025); to make it:
`pip download --no-deps --no-binary :all: llama-cpp-python==0.3.9`, extract `vendor/llama.cpp`,
and build it with bins/llama_cpp.toml's CMake arguments and the targets llama-cli llama-server
llama-speculative llama-speculative-simple llama-lookup llama-bench (about 10 minutes on 2 cores).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from velobench.paths import cache_dir
from velobench.results import store as results

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _find_2025() -> Path:
    """$VELOBENCH_LLAMA_CPP_2025, else the compatibility build (`velobench bins build --compat 2025`)."""
    if os.environ.get("VELOBENCH_LLAMA_CPP_2025"):
        return Path(os.environ["VELOBENCH_LLAMA_CPP_2025"])
    built = sorted((cache_dir() / "llama.cpp-2025").glob("*/build/bin/llama-cli"))
    legacy = cache_dir() / "llama.cpp-2025" / "build" / "bin"
    return built[0].parent if built else legacy


BUILD_2025 = _find_2025()


@pytest.fixture(scope="module")
def b2025() -> Path:
    if not (BUILD_2025 / "llama-cli").is_file():
        pytest.skip(
            f"no llama.cpp of 2025 in {BUILD_2025}: build llama-cpp-python==0.3.9's vendor/llama.cpp there "
            "(see this module's docstring) or set VELOBENCH_LLAMA_CPP_2025"
        )
    return BUILD_2025


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def velobench(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "velobench", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "250"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_cli_engine_runs_every_program_from_the_2025_build(b2025: Path, smol: Path, work: Path) -> None:
    done = velobench(
        "run", "--engine", "cli", "-l", str(b2025), "-m", str(smol), "-d", str(smol), "-n", "16", "-i", "1",
        "-c", "512", "-t", "2", "--no-ceiling", "-o", "r.json", cwd=work,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    rep = results.load(work / "r.json")
    assert rep.status == "complete"
    assert [(b.name, Path(b.path).parent, b.commit) for b in rep.binaries] == [
        ("llama-cli", b2025, "8733e0c"),
        ("llama-speculative-simple", b2025, "8733e0c"),
    ]
    van, spec = rep.modes["vanilla"], rep.modes["speculative"]
    assert van.binary == "llama-cli" and van.iterations[0].command.startswith(str(b2025 / "llama-cli"))
    assert "-no-cnv" in van.iterations[0].command.split()
    assert "--draft-max" in spec.iterations[0].command.split()  # the 2025 names, from its --help
    assert van.iterations[0].tokens_per_second > 0 and spec.iterations[0].tokens_per_second > 0
    assert van.iterations[0].generated_tokens >= 15


def test_all_gpu_layers_run_on_the_2025_build_as_a_count(b2025: Path, smol: Path, work: Path) -> None:
    # this build rejects `-ngl all` itself (tests/fixtures/llama-2025/cli-ngl-all.stderr)
    done = velobench(
        "run", "--engine", "cli", "-l", str(b2025), "-m", str(smol), "-d", str(smol), "-n", "8", "-i", "1",
        "-c", "512", "-t", "2", "-ngl", "all", "-ngld", "all", "--no-ceiling", "-o", "g.json", cwd=work,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    rep = results.load(work / "g.json")
    assert rep.config.gpu_layers == "all"  # what the user asked for, recorded as asked
    spec = rep.modes["speculative"].iterations[0].command.split()
    assert spec[spec.index("-ngl") + 1] == "999" and spec[spec.index("-ngld") + 1] == "999"
    refused = velobench("run", "--engine", "cli", "-l", str(b2025), "-m", str(smol), "-d", str(smol),
                        "-ngl", "auto", "-o", "h.json", cwd=work)  # fmt: skip
    assert refused.returncode == 2 and "takes a layer count only" in refused.stderr
    assert not (work / "h.json").exists()


def test_auto_picks_the_cli_engine_for_the_2025_build(b2025: Path, smol: Path, work: Path) -> None:
    done = velobench("run", "-l", str(b2025), "-m", str(smol), "-d", str(smol), "--dry-run", cwd=work)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"vanilla: {b2025 / 'llama-cli'} ") and lines[0].endswith("-no-cnv")
    assert lines[1].startswith(f"speculative: {b2025 / 'llama-speculative-simple'} ")
    assert list(work.iterdir()) == []


def test_the_server_engine_refuses_the_2025_build_in_one_line(b2025: Path, smol: Path, work: Path) -> None:
    start = time.monotonic()
    done = velobench(
        "run", "--engine", "server", "-l", str(b2025), "-m", str(smol), "-d", str(smol), cwd=work
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "drafts only with prompt caching on" in done.stderr
    assert "use --engine cli" in done.stderr
    assert time.monotonic() - start < 60 and list(work.iterdir()) == []  # no model loaded, nothing made


def test_a_build_without_a_vanilla_tool_never_borrows_one(b2025: Path, smol: Path, work: Path) -> None:
    """A folder with only the 2025 llama-speculative-simple: velobench's 2026 build in the cache has a
    llama-completion, and it must not be taken from there."""
    partial = work.parent / "partial"
    partial.mkdir()
    (partial / "llama-speculative-simple").symlink_to(b2025 / "llama-speculative-simple")
    done = velobench("run", "--engine", "cli", "-l", str(partial), "-m", str(smol), "-d", str(smol), cwd=work)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith(
        f"velobench: error: the llama.cpp build in {partial} has no llama-completion"
    )
    assert "one build" in done.stderr and done.stderr.count("\n") == 1
    assert list(work.iterdir()) == []
