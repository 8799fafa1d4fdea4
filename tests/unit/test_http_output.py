"""Prometheus and SSE parsers on traffic captured from a real llama-server (tests/fixtures/server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from velobench.engines.http_output import delta, metric, parse_prometheus, per_position, sse_events

SERVER = Path(__file__).parents[1] / "fixtures" / "server"


def test_metric_deltas_equal_the_requests_own_draft_counts() -> None:
    before = parse_prometheus((SERVER / "metrics-before.txt").read_text())
    after = parse_prometheus((SERVER / "metrics-after.txt").read_text())
    events = list(sse_events((SERVER / "completion-stream-speculative.txt").read_text().splitlines()))
    timings = events[-1]["timings"]
    assert delta(after, before, "spec_decode_num_draft_tokens_total") == timings["draft_n"] == 13
    assert delta(after, before, "spec_decode_num_accepted_tokens_total") == timings["draft_n_accepted"] == 13
    assert delta(after, before, "spec_decode_num_drafts_total") == 2
    assert per_position(after, "spec_decode_num_accepted_tokens_per_pos_total") == [2, 2, 2, 2, 2, 1, 1, 1]
    assert (
        per_position(before, "spec_decode_num_accepted_tokens_per_pos_total") == []
    )  # only after the first draft
    assert delta(after, before, "tokens_predicted_total") == 16


def test_completion_stream_one_event_per_token_then_the_final_object() -> None:
    events = list(sse_events((SERVER / "completion-stream-speculative.txt").read_text().splitlines()))
    tokens, final = events[:-1], events[-1]
    assert len(tokens) == 16 and all(not e["stop"] for e in tokens)
    assert final["stop"] is True and final["timings"]["predicted_n"] == 16
    assert final["timings"]["cache_n"] == 0
    assert final["generation_settings"]["speculative.types"] == "none,draft-simple"


def test_chat_stream_ends_at_done_and_carries_usage() -> None:
    events = list(sse_events((SERVER / "chat-stream-speculative.txt").read_text().splitlines()))
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] == 8
    assert "timings" in events[-1]


def test_vllm_names_and_exponents() -> None:
    # vLLM's metric names with the same shapes (format from vLLM's documentation), and the
    # exponent notation C++ ostream uses for large llama.cpp counters.
    text = (
        "# HELP vllm:spec_decode_num_drafts_total Number of spec decoding drafts.\n"
        'vllm:spec_decode_num_drafts_total{engine="0",model_name="m"} 12.0\n'
        'vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="m",position="1"} 3.0\n'
        "llamacpp:tokens_predicted_total 1.23456e+06\n"
    )
    s = parse_prometheus(text)
    assert metric(s, "spec_decode_num_drafts_total", engine="0", model_name="m") == 12.0
    assert per_position(s, "vllm:spec_decode_num_accepted_tokens_per_pos_total") == [0.0, 3.0]
    assert metric(s, "tokens_predicted_total") == 1234560.0


def test_bad_input_raises_quoting_it() -> None:
    with pytest.raises(ValueError, match="not a Prometheus sample line: 'garbage here'"):
        parse_prometheus("garbage here\n")
    with pytest.raises(ValueError, match="server error in stream: Loading model"):
        list(sse_events(['data: {"error":{"message":"Loading model","code":503}}']))
    with pytest.raises(ValueError, match="bad SSE event"):
        list(sse_events(["data: {not json"]))
    assert list(sse_events([":", "", "data: [DONE]", 'data: {"late": 1}'])) == []
