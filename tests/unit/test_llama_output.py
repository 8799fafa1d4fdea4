"""Parsers on output captured from the real binaries (llama.cpp 0c1e570, SmolLM2-135M, 2 threads).

The fixtures in tests/fixtures/llama/ were produced by the commands in their README.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from velobench.bins.versions import parse_help_flags, parse_version
from velobench.engines.llama_output import generated_text, parse_speculative, parse_vanilla

LLAMA = Path(__file__).parents[1] / "fixtures" / "llama"
PROMPT = "Write a Python function that returns the sum of a list of integers."


def read(name: str) -> str:
    return (LLAMA / name).read_text()


def test_vanilla_with_log_prefix() -> None:
    v = parse_vanilla(read("completion.stderr"))
    assert v.prompt_tokens == 14
    assert v.prompt_ms == pytest.approx(588.26)
    assert v.eval_runs == 31  # -n 32: the first token comes from the prompt logits
    assert v.generated_tokens == 32
    assert v.eval_ms == pytest.approx(474.78)
    assert v.eval_tokens_per_second == pytest.approx(65.29)
    assert v.eval_runs / v.eval_ms * 1000 == pytest.approx(v.eval_tokens_per_second, abs=0.01)
    assert v.load_ms == pytest.approx(172.12)
    assert v.total_ms == pytest.approx(1077.61)


def test_vanilla_without_log_prefix() -> None:
    v = parse_vanilla(read("completion-noprefix.stderr"))
    assert (v.prompt_tokens, v.eval_runs) == (14, 31)
    assert v.eval_ms == pytest.approx(1393.68)
    assert v.load_ms == pytest.approx(668.06)


def test_vanilla_no_perf_gives_inf_not_a_crash() -> None:
    v = parse_vanilla(read("completion-noperf.stderr"))
    assert v.eval_ms == 0.0
    assert v.eval_tokens_per_second == float("inf")


@pytest.mark.parametrize("name", ["speculative-simple.stderr", "speculative-simple-noprefix.stderr"])
def test_speculative_simple(name: str) -> None:
    s = parse_speculative(read(name))
    assert s.encoded_tokens == 14
    assert s.n_draft == 8
    assert s.decoded_tokens >= 32  # the tool overshoots -n by up to one draft
    assert s.n_predict == s.decoded_tokens
    assert 0 < s.n_accept <= s.n_drafted
    assert s.acceptance_rate == pytest.approx(s.n_accept / s.n_drafted)
    assert s.accept_percent == pytest.approx(100 * s.n_accept / s.n_drafted, abs=0.001)
    assert s.decoded_tokens_per_second == pytest.approx(s.decoded_tokens / s.decoded_s, rel=1e-3)


def test_speculative_simple_values() -> None:
    s = parse_speculative(read("speculative-simple.stderr"))
    text = read("speculative-simple.stderr")
    assert f"decoded   {s.decoded_tokens} tokens in" in text
    assert f"n_drafted = {s.n_drafted}" in text


def test_classic_speculative_at_lv4_ignores_the_draft_perf_block() -> None:
    s = parse_speculative(read("speculative-lv4.stderr"))
    assert (s.decoded_tokens, s.n_drafted, s.n_accept) == (37, 32, 32)
    assert s.decoded_s == pytest.approx(2.603)
    # the draft's llama_perf_context_print says 155.38 ms; the target's common_perf_print 873.24
    assert s.load_ms == pytest.approx(873.24)


def test_lookup_has_extra_alignment_and_t_draft_lines() -> None:
    s = parse_speculative(read("lookup.stderr"))
    assert (s.decoded_tokens, s.n_drafted, s.n_accept) == (33, 56, 4)
    assert s.accept_percent == pytest.approx(7.143)


def test_nothing_drafted_reads_nan_percent_as_undefined() -> None:
    s = parse_speculative(read("ngram-simple.stderr"))
    assert s.n_drafted == 0
    assert s.accept_percent is None
    assert s.acceptance_rate is None


def test_version_of_an_sdist_build() -> None:
    v = parse_version(read("version.stderr"))
    assert v.version == "0.5.0-dev"
    assert v.build == 0
    assert v.commit is None  # "commit unknown": no git metadata in the sdist


def test_version_formats_of_other_builds() -> None:
    # Format from llama-cpp.md §0 (git checkouts, 2026) and the pre-2026 form (from memory there).
    assert parse_version("version: 0.5.0-dev (build 1, commit 0c1e570)\n").commit == "0c1e570"
    old = parse_version("version: 4567 (abcdef12)\nbuilt with cc for x86_64\n")
    assert (old.build, old.commit, old.version) == (4567, "abcdef12", None)


def test_help_flags_follow_the_removed_flags() -> None:
    spec = parse_help_flags(read("speculative-simple-help.txt"))
    assert {
        "-md",
        "--spec-type",
        "--spec-draft-n-max",
        "--spec-draft-n-min",
        "--draft-p-min",
        "-ngld",
    } <= spec
    # still listed in --help, but only to say they were removed: passing them is an error
    assert "--draft-max" not in spec and "--draft-min" not in spec and "--draft" not in spec
    completion = parse_help_flags(read("completion-help.txt"))
    assert {"-no-cnv", "--no-conversation", "--ignore-eos", "--no-escape", "-e"} <= completion
    lookup = parse_help_flags(read("lookup-help.txt"))
    assert "--spec-draft-n-max" in lookup and "--spec-type" not in lookup


def test_generated_text_strips_the_prompt_echo() -> None:
    text = generated_text(read("completion.stdout"), PROMPT)
    assert text.startswith("\n\nThe function should take a list")
    assert PROMPT not in text
    spec = generated_text(read("speculative-simple.stdout"), PROMPT)
    assert spec.startswith("\n\nThe function should take a list")


@pytest.mark.parametrize(
    ("parser", "text", "quoted"),
    [
        (parse_vanilla, "main: error: failed to load model\n", "failed to load model"),
        (parse_speculative, "E failed to initialize speculative decoding\n", "failed to initialize"),
        (parse_version, "", "empty output"),
        (parse_help_flags, "usage: nothing here\n", "usage: nothing here"),
    ],
)
def test_unparseable_output_raises_value_error_quoting_it(parser, text: str, quoted: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=quoted):
        parser(text)


def test_real_failure_outputs_are_not_mistaken_for_results() -> None:
    with pytest.raises(ValueError, match="failed to initialize speculative decoding"):
        parse_speculative(read("speculative-simple-notype.stderr"))
