"""Argv building follows what each binary's --help says it supports (flag drift)."""

from __future__ import annotations

from pathlib import Path

import pytest

from velobench.bins.locate import Tool
from velobench.bins.versions import BinaryVersion, parse_help_flags
from velobench.engines.llama_cli import CliSession, speculative_tool_name
from velobench.errors import VelobenchError
from velobench.results.config import Method, RunConfig, SpecImpl

LLAMA = Path(__file__).parents[1] / "fixtures" / "llama"


def tool_from_help(name: str, help_file: str) -> Tool:
    flags = parse_help_flags((LLAMA / help_file).read_text())
    return Tool(
        name=name,
        path=Path(f"/bin/{name}"),
        source="test",
        version=BinaryVersion("0.5.0-dev", 0, None),
        flags=flags,
    )


# A real 2025 build's flags are checked in test_engine_argv_2025.py, from its captured --help.


def cfg(**kw: object) -> RunConfig:
    base: dict[str, object] = {"main_model": "t.gguf", "draft_model": "d.gguf", "n_draft": 4, "n_predict": 16}
    base.update(kw)
    return RunConfig(**base)  # type: ignore[arg-type]


def option_names(argv: list[str]) -> list[str]:
    """Tokens of argv that are option names (a dash and a letter; values like -1 excluded)."""
    return [
        a for a in argv[1:] if (a.startswith("-") and len(a) > 1 and a[1].isalpha()) or a.startswith("--")
    ]


def test_current_build_gets_spec_type_and_new_names() -> None:
    tool = tool_from_help("llama-speculative-simple", "speculative-simple-help.txt")
    argv = CliSession(tool, cfg(draft_p_min=0.5), "speculative").argv("hi")
    assert argv[argv.index("--spec-draft-n-max") + 1] == "4"
    assert argv[argv.index("--spec-type") + 1] == "draft-simple"
    assert argv[argv.index("--spec-draft-n-min") + 1] == "0"
    assert argv[argv.index("--spec-draft-p-min") + 1] == "0.5"
    assert argv[argv.index("-md") + 1] == "d.gguf"
    assert "--draft-max" not in argv
    assert set(option_names(argv)) <= tool.flags


def test_vanilla_uses_no_cnv_and_ignore_eos() -> None:
    tool = tool_from_help("llama-completion", "completion-help.txt")
    argv = CliSession(tool, cfg(threads=2, gpu_layers="all"), "vanilla").argv("hi")
    assert "-no-cnv" in argv and "--ignore-eos" in argv and "--no-escape" in argv
    assert argv[argv.index("-t") + 1] == "2"
    assert argv[argv.index("-ngl") + 1] == "all"
    assert "-md" not in argv
    assert set(option_names(argv)) <= tool.flags


def test_lookup_and_ngram_methods() -> None:
    lookup = tool_from_help("llama-lookup", "lookup-help.txt")
    argv = CliSession(lookup, cfg(method=Method.LOOKUP, draft_model=None), "speculative").argv("hi")
    assert "--spec-type" not in argv and "-md" not in argv
    assert set(option_names(argv)) <= lookup.flags
    simple = tool_from_help("llama-speculative-simple", "speculative-simple-help.txt")
    argv = CliSession(simple, cfg(method=Method.NGRAM_MOD, draft_model=None), "speculative").argv("hi")
    assert argv[argv.index("--spec-type") + 1] == "ngram-mod"


def test_tool_choice() -> None:
    assert speculative_tool_name(cfg()) == "llama-speculative-simple"
    assert speculative_tool_name(cfg(spec_impl=SpecImpl.CLASSIC)) == "llama-speculative"
    assert speculative_tool_name(cfg(method=Method.LOOKUP, draft_model=None)) == "llama-lookup"


def test_a_missing_needed_option_is_a_clear_error() -> None:
    tool = Tool(
        "llama-speculative-simple",
        Path("/x"),
        "test",
        BinaryVersion(None, 1, "abc"),
        frozenset({"-m", "-md"}),
    )
    with pytest.raises(VelobenchError, match="no option for the draft length"):
        CliSession(tool, cfg(), "speculative").argv("hi")


def test_extra_engine_args_come_last() -> None:
    tool = tool_from_help("llama-completion", "completion-help.txt")
    argv = CliSession(tool, cfg(extra_args=["-fa", "on"]), "vanilla").argv("hi")
    assert argv[-2:] == ["-fa", "on"]
