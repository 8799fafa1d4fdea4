"""Argv for a llama.cpp of May 2025, from the `--help` of a real build (tests/fixtures/llama-2025/).

The argv velobench builds for that build's tools must be the very commands that ran there with
rc 0 (capture.sh in the fixture folder: COMMON = -m M -p P --no-escape -n 32 -c 512 --temp 0.0
--seed 42 -t 2 --ignore-eos). These tests replace the hand-typed flag set `FLAGS_2025` of
test_engine_argv.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from velobench.bins.locate import Tool
from velobench.bins.versions import parse_help_flags, parse_version
from velobench.engines.llama_cli import CliSession
from velobench.errors import VelobenchError
from velobench.results.config import Method, RunConfig, SpecImpl

LLAMA_2025 = Path(__file__).parents[1] / "fixtures" / "llama-2025"
P = "Write a Python function that returns the sum of a list of integers."
M = "smol.gguf"
COMMON = ["-m", M, "-p", P, "--no-escape", "-n", "32", "-c", "512", "--temp", "0.0", "--seed", "42"]
COMMON += ["-t", "2", "--ignore-eos"]
DRAFT = ["--draft-max", "8", "-md", M, "--draft-min", "0", "--draft-p-min", "0.0"]


def tool_2025(name: str) -> Tool:
    """A Tool as velobench's probe would see it: the real 2025 build's --version and --help."""
    return Tool(
        name=name,
        path=Path(f"/b/{name}"),
        source="test",
        version=parse_version((LLAMA_2025 / "version.stderr").read_text()),
        flags=parse_help_flags((LLAMA_2025 / f"{name}-help.txt").read_text()),
    )


def cfg(**kw: object) -> RunConfig:
    base: dict[str, object] = {
        "main_model": M,
        "draft_model": M,
        "n_draft": 8,
        "n_predict": 32,
        "ctx_size": 512,
        "threads": 2,
    }
    base.update(kw)
    return RunConfig(**base)


def test_vanilla_is_llama_cli_no_cnv_as_captured() -> None:
    argv = CliSession(tool_2025("llama-cli"), cfg(), "vanilla").argv(P)
    assert argv == ["/b/llama-cli", *COMMON, "-no-cnv"]


@pytest.mark.parametrize("name", ["llama-speculative-simple", "llama-speculative"])
def test_draft_model_gets_the_old_names_as_captured(name: str) -> None:
    spec_impl = SpecImpl.CLASSIC if name == "llama-speculative" else SpecImpl.SIMPLE
    argv = CliSession(tool_2025(name), cfg(spec_impl=spec_impl), "speculative").argv(P)
    assert argv == [f"/b/{name}", *COMMON, *DRAFT]  # no --spec-type: this build has none


def test_lookup_as_captured() -> None:
    argv = CliSession(tool_2025("llama-lookup"), cfg(method=Method.LOOKUP, draft_model=None), "speculative")
    assert argv.argv(P) == ["/b/llama-lookup", *COMMON, "--draft-max", "8"]


def test_draft_gpu_layers_use_ngld() -> None:
    tool = tool_2025("llama-speculative-simple")
    argv = CliSession(tool, cfg(gpu_layers="99", gpu_layers_draft="99"), "speculative").argv(P)
    assert argv[argv.index("-ngl") + 1] == "99" and argv[argv.index("-ngld") + 1] == "99"


def test_lookup_cannot_take_a_draft_p_min() -> None:
    tool = tool_2025("llama-lookup")
    assert tool.first_flag("--spec-draft-p-min", "--draft-p-min") is None


def test_ngram_spec_types_need_a_2026_build() -> None:
    tool = tool_2025("llama-speculative-simple")
    with pytest.raises(VelobenchError, match="needs a 2026 build"):
        CliSession(tool, cfg(method=Method.NGRAM_SIMPLE, draft_model=None), "speculative").argv(P)


def test_gpu_layers_all_becomes_a_count_for_a_2025_build() -> None:
    # the real May 2025 llama-cli rejects `-ngl all` (captured); velobench passes a count instead
    assert 'error while handling argument "-ngl": stoi' in (LLAMA_2025 / "cli-ngl-all.stderr").read_text()
    argv = CliSession(tool_2025("llama-cli"), cfg(gpu_layers="all", gpu_layers_draft="all"), "vanilla").argv(
        P
    )
    assert argv[argv.index("-ngl") + 1] == "999"
    spec = CliSession(
        tool_2025("llama-speculative-simple"), cfg(gpu_layers="all", gpu_layers_draft="all"), "speculative"
    ).argv(P)
    assert spec[spec.index("-ngl") + 1] == "999" and spec[spec.index("-ngld") + 1] == "999"


def test_gpu_layers_auto_is_refused_before_running_a_2025_build() -> None:
    with pytest.raises(VelobenchError, match=r"-ngl auto: llama-cli .* takes a layer count only"):
        CliSession(tool_2025("llama-cli"), cfg(gpu_layers="auto"), "vanilla").argv(P)
