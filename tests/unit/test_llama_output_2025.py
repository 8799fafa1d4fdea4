"""Parsers on output captured from a real llama.cpp of May 2025 (commit 8733e0c, SmolLM2-135M).

The fixtures in tests/fixtures/llama-2025/ were produced by its capture.sh (see its README). Every
number asserted here was read off the fixture text by eye, not copied from a parser's result.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from velobench.bins.versions import BinaryVersion, parse_help_flags, parse_version
from velobench.engines import metrics
from velobench.engines.http_client import sse_events
from velobench.engines.llama_output import generated_text, parse_speculative, parse_vanilla

LLAMA_2025 = Path(__file__).parents[1] / "fixtures" / "llama-2025"
PROMPT = "Write a Python function that returns the sum of a list of integers."
TOOLS = (
    "llama-cli",
    "llama-server",
    "llama-speculative",
    "llama-speculative-simple",
    "llama-lookup",
    "llama-bench",
)


def read(name: str) -> str:
    return (LLAMA_2025 / name).read_text()


def help_flags(tool: str) -> frozenset[str]:
    return parse_help_flags(read(f"{tool}-help.txt"))


def test_version_is_the_old_format() -> None:
    assert parse_version(read("version.stderr")) == BinaryVersion(None, 1, "8733e0c")
    assert str(parse_version(read("version.stderr"))) == "build 1 (commit 8733e0c)"


def test_llama_bench_has_no_version_option() -> None:
    assert read("bench-version.rc").strip() == "1"
    with pytest.raises(ValueError, match="no version line"):
        parse_version(read("bench-version.stderr") + read("bench-version.stdout"))


@pytest.mark.parametrize("tool", TOOLS)
def test_every_help_parses_and_lists_model_and_threads(tool: str) -> None:
    flags = help_flags(tool)
    assert {"-m", "--model", "-t", "--threads", "-ngl"} <= flags


def test_help_2025_speculative_flags_are_the_old_names() -> None:
    simple = help_flags("llama-speculative-simple")
    assert {
        "--draft-max",
        "--draft",
        "--draft-n",
        "--draft-min",
        "--draft-p-min",
        "-md",
        "-ngld",
        "-cd",
    } <= simple
    assert not {"--spec-type", "--spec-draft-n-max", "--spec-draft-n-min", "--spec-draft-p-min"} & simple
    assert help_flags("llama-speculative") == simple  # one example group, one option list
    lookup = help_flags("llama-lookup")
    assert {"--draft-max", "--draft-min", "-lcs", "-lcd"} <= lookup
    assert not {"--draft-p-min", "-md", "--spec-draft-n-max"} & lookup


def test_help_2025_llama_cli_is_the_raw_completion_tool() -> None:
    cli = help_flags("llama-cli")
    assert {"-no-cnv", "--no-conversation", "--no-escape", "--ignore-eos", "-p", "-n", "--seed", "-st"} <= cli
    assert not {"-md", "--draft-max", "--spec-draft-n-max"} & cli


def test_help_2025_server_has_slots_switch_and_no_launch_level_prompt_cache() -> None:
    server = help_flags("llama-server")
    assert {"--slots", "--no-slots", "--slot-save-path", "--metrics", "--draft-max", "-md"} <= server
    assert not {"--no-cache-prompt", "--spec-type"} & server


def test_help_2025_llama_bench() -> None:
    assert {"-p", "-n", "-r", "-o", "--output", "--repetitions"} <= help_flags("llama-bench")


def test_vanilla_llama_cli_no_cnv() -> None:
    text = read("cli-vanilla.stderr")
    assert "llama_perf_context_print:        eval time =    2724.84 ms /    31 runs" in text
    v = parse_vanilla(text)
    assert v.load_ms == pytest.approx(6637.52)
    assert (v.prompt_tokens, v.prompt_ms) == (14, pytest.approx(241.51))
    assert v.eval_runs == 31 and v.generated_tokens == 32  # -n 32: the first token is free
    assert v.eval_ms == pytest.approx(2724.84)
    assert v.eval_tokens_per_second == pytest.approx(11.38)
    assert v.total_ms == pytest.approx(3053.12)


def test_vanilla_text_strips_the_prompt_echo() -> None:
    text = generated_text(read("cli-vanilla.stdout"), PROMPT)
    assert text == (
        "\n\nThe function should take a list of integers as input and return the sum of the first n "
        "integers in the list. If the input list is empty,"
    )


def test_speculative_simple_takes_the_target_block_not_the_draft_block() -> None:
    s = parse_speculative(read("speculative-simple.stderr"))
    assert (s.encoded_tokens, s.encoded_s) == (14, pytest.approx(0.333))
    assert (s.decoded_tokens, s.decoded_s) == (36, pytest.approx(3.369))
    assert s.decoded_tokens_per_second == pytest.approx(10.685)
    assert (s.n_draft, s.n_predict, s.n_drafted, s.n_accept) == (8, 36, 32, 32)
    assert s.accept_percent == pytest.approx(100.0)
    assert s.acceptance_rate == 1.0
    # both blocks are llama_perf_context_print in 2025: draft load 376.03 ms, target (last) 207.60 ms
    assert s.load_ms == pytest.approx(207.60)


def test_classic_speculative() -> None:
    s = parse_speculative(read("speculative.stderr"))
    assert (s.encoded_tokens, s.decoded_tokens, s.n_predict) == (14, 37, 37)
    assert s.decoded_s == pytest.approx(9.396)
    assert (s.n_drafted, s.n_accept) == (32, 32)
    assert s.load_ms == pytest.approx(2967.45)  # the target's; the draft's says 552.00


def test_lookup() -> None:
    s = parse_speculative(read("lookup.stderr"))
    assert (s.encoded_tokens, s.decoded_tokens) == (14, 33)
    assert s.decoded_s == pytest.approx(3.608)
    assert (s.n_draft, s.n_predict, s.n_drafted, s.n_accept) == (8, 33, 56, 4)
    assert s.accept_percent == pytest.approx(7.143)
    assert s.acceptance_rate == pytest.approx(4 / 56)
    assert s.load_ms == pytest.approx(194.63)


def test_lookup_text_loses_the_draft_candidate_lines() -> None:
    raw = read("lookup.stdout")
    assert raw.count(" - draft candidate: token=") > 40
    text = generated_text(raw, PROMPT)
    assert "draft candidate" not in text
    assert text == (
        "\n\nThe function should take a list of integers as input and return the sum of the list "
        "itself.\n\nThe function should use list comprehension to create a new"
    )


def test_speculative_text_continues_the_vanilla_text() -> None:
    """Greedy, with the model as its own draft: the speculative tools reproduce the vanilla text
    (they overshoot -n, so vanilla's 32 tokens are a prefix of theirs)."""
    vanilla = generated_text(read("cli-vanilla.stdout"), PROMPT)
    for name in ("speculative-simple.stdout", "speculative.stdout"):
        spec = generated_text(read(name), PROMPT)
        assert spec.startswith(vanilla) and len(spec) > len(vanilla)


def test_llama_bench_json_rows() -> None:
    rows = json.loads(read("bench-smollm.stdout"))
    assert [(r["n_prompt"], r["n_gen"]) for r in rows] == [(1, 0), (3, 0), (5, 0), (9, 0), (0, 16)]
    assert {r["build_commit"] for r in rows} == {"8733e0c"}
    assert rows[-1]["avg_ts"] == pytest.approx(15.216259)


def final_timings(name: str) -> dict[str, float]:
    events = [json.loads(e.data) for e in sse_events(read(name).splitlines())]
    finals = [e for e in events if "timings" in e]
    assert len(finals) == 1 and finals[0]["stop"] is True
    timings: dict[str, float] = finals[0]["timings"]
    return timings


def test_server_without_cache_prompt_does_not_speculate() -> None:
    """A May 2025 server speculates only for requests with cache_prompt true (can_speculate())."""
    t = final_timings("server-spec-completion-stream.txt")
    assert (t["prompt_n"], t["predicted_n"]) == (14, 32)
    assert "draft_n" not in t
    assert "draft_n" not in json.loads(read("server-spec-completion.json"))["timings"]
    assert json.loads(read("server-spec-slots.json"))["error"]["code"] == 501  # no --slots


def test_server_with_cache_prompt_and_erased_slot_speculates() -> None:
    t = final_timings("server-spec-cached-completion-stream.txt")
    assert (t["prompt_n"], t["predicted_n"]) == (14, 32)  # the erased slot reused nothing
    assert (t["draft_n"], t["draft_n_accepted"]) == (24, 24)
    # 2025's predicted_per_second is predicted_n / predicted_ms (2026: predicted_n - 1)
    assert t["predicted_ms"] == pytest.approx(1039.97)
    assert t["predicted_per_second"] == pytest.approx(32 / 1039.97 * 1000)
    plain = json.loads(read("server-spec-cached-completion.json"))["timings"]
    assert (plain["draft_n"], plain["draft_n_accepted"]) == (25, 24)
    slots = json.loads(read("server-spec-cached-slots.json"))
    assert [s["speculative"] for s in slots] == [True]


def test_server_2025_metrics_have_no_spec_decode_counters() -> None:
    before = metrics.parse(read("server-spec-cached-metrics-before.txt"))
    after = metrics.parse(read("server-spec-cached-metrics-after.txt"))
    assert metrics.counter_delta(before, after, "tokens_predicted_total") == 64
    assert metrics.spec_decode_delta(before, after) is None  # acceptance comes from timings only
