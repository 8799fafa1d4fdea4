"""engines.dialects: every request builder and answer/stream-chunk parser, on traffic captured from
real servers (llama-server: tests/fixtures/http, tests/fixtures/server; vLLM: tests/fixtures/vllm;
think's non-streamed completions and chat templates: tests/fixtures/think).

The expectations come from the captures themselves (the request that was sent, the server's own
closing accounting), never from a copy of the parser.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from velobench.engines import dialects
from velobench.engines.dialects import Chunk, SseEvent, StreamFailure, parse_event, sse_events
from velobench.errors import VelobenchError

FIXTURES = Path(__file__).parents[1] / "fixtures"
HTTP, SERVER, VLLM, THINK = (FIXTURES / d for d in ("http", "server", "vllm", "think"))
P = "Write a Python function that returns the sum of a list of integers."  # http/README.md


def chunks(path: Path, endpoint: dialects.Endpoint) -> list[Chunk]:
    return [parse_event(endpoint, e) for e in sse_events(path.read_text().splitlines())]


def capture(path: Path) -> Any:
    return json.loads(path.read_text())


# ---------------------------------------------------------------- streamed: what is sent


def test_stream_body_is_what_was_sent_to_vllm() -> None:
    for name, endpoint in (("completions-ngram-eager-token-ids", "completions"), ("chat-vanilla", "chat")):
        sent = capture(VLLM / f"{name}.reads.json")["request"]
        path = sent.pop("path")
        prompt = sent.get("prompt", sent.get("messages"))
        extra = {"return_token_ids": True} if "return_token_ids" in sent else {}
        body = dialects.stream_body(
            endpoint,  # type: ignore[arg-type]
            prompt,
            sent["max_tokens"],
            model=sent["model"],
            temperature=sent["temperature"],
            ignore_eos=bool(sent.get("ignore_eos")),
            extra=extra,
            continuous_usage=False,
        )
        assert body == sent and dialects.PATHS[endpoint] == path


def test_stream_body_of_the_documented_llama_server_requests() -> None:
    # http/README.md: /completion {"prompt":P,"n_predict":12,"temperature":0,"seed":42,"stream":true}
    native = dialects.stream_body("native", P, 12, seed=42)
    assert native == {"prompt": P, "n_predict": 12, "stream": True, "temperature": 0.0, "seed": 42}
    chat = dialects.stream_body("chat", P, 12, model="smollm2", seed=42)
    assert chat["messages"] == [{"role": "user", "content": P}]
    assert chat["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    with pytest.raises(VelobenchError, match="prompt string"):
        dialects.stream_body("native", [{"role": "user", "content": P}], 12)


# ---------------------------------------------------------------- streamed: what comes back


def test_native_stream_ids_timings_and_finish() -> None:
    got = chunks(HTTP / "completion-native-stream.txt", "native")
    *body, last = got
    assert last.done and not any(c.done for c in body)
    assert last.timings is not None and last.model is not None and last.finish_reason == "length"
    ids = [i for c in got for i in (c.token_ids or [])]
    assert len(ids) == last.timings["predicted_n"] == 12  # the request asked for n_predict 12
    out, prompt = dialects.token_counts("native", None, last.timings)
    assert out == 12 and prompt == last.timings["prompt_n"] + int(last.timings.get("cache_n") or 0)


def test_llama_servers_v1_completions_usage_on_the_finishing_chunk() -> None:
    got = chunks(HTTP / "completions-stream.txt", "completions")
    assert got[-1].done and not got[-1].tokens  # [DONE]
    usage = [c.usage for c in got if c.usage is not None]
    assert len(usage) == 1 and usage[0]["completion_tokens"] == 12
    assert [c.finish_reason for c in got if c.finish_reason] == ["length"]
    assert dialects.token_counts("completions", usage[0], None) == (12, usage[0]["prompt_tokens"])


def test_running_count_from_timings_per_token() -> None:
    got = [c for c in chunks(HTTP / "completions-stream-timings.txt", "completions") if c.tokens and c.text]
    running = [c.running for c in got]
    assert all(isinstance(r, int) for r in running) and running == sorted(running)


def test_chat_role_chunk_and_closing_usage_chunk() -> None:
    got = chunks(HTTP / "chat-stream.txt", "chat")
    assert got[0].tokens and got[0].text == ""  # the role-only first delta carries no text
    closing = [c for c in got if c.usage is not None]
    assert closing and not closing[-1].tokens  # `choices: []`
    spec = chunks(SERVER / "chat-stream-speculative.txt", "chat")
    assert "".join(c.text for c in spec) and spec[-1].done


def test_vllm_token_ids_add_up_to_its_usage() -> None:
    got = chunks(VLLM / "completions-ngram-eager-token-ids.sse", "completions")
    usage = [c.usage for c in got if c.usage is not None][-1]
    ids = sum(len(c.token_ids or []) for c in got)
    assert ids == usage["completion_tokens"] == 128  # max_tokens with ignore_eos
    text = [c for c in chunks(VLLM / "chat-vanilla.sse", "chat") if c.text]
    assert text and all(c.token_ids is None for c in text)  # without return_token_ids: null


def test_errors_and_garbage_are_classified() -> None:
    said = (HTTP / "error-401.json").read_text()
    assert dialects.error_message(said) == "Invalid API Key"
    for event in (SseEvent("data", said), SseEvent("error", said)):
        with pytest.raises(StreamFailure) as err:
            parse_event("completions", event)
        assert err.value.kind == "server-error" and err.value.message == "Invalid API Key"
    for data, why in (("{not json", "not JSON"), ("[1, 2]", "not a JSON object")):
        with pytest.raises(StreamFailure, match=why) as err:
            parse_event("chat", SseEvent("data", data))
        assert err.value.kind == "bad-event"


def test_the_loopback_chunks_read_as_real_ones() -> None:
    real = json.loads(sse_events((VLLM / "chat-vanilla.sse").read_text().splitlines())[1].data)
    built = dialects.stream_chunk(" t0")
    assert set(built["choices"][0]) <= set(real["choices"][0])
    frame = dialects.sse_frame(built).decode()
    (event,) = sse_events(frame.splitlines())
    assert parse_event("chat", event) == Chunk(text=" t0")
    usage = {"prompt_tokens": 8, "completion_tokens": 3, "total_tokens": 11}
    last = parse_event(
        "chat", SseEvent("data", json.dumps(dialects.stream_chunk("", finish_reason="length", usage=usage)))
    )
    assert last.finish_reason == "length" and last.usage == usage and last.running == 3 and last.text == ""


# ---------------------------------------------------------------- one whole completion (think)


@pytest.mark.parametrize(
    ("name", "finish"),
    [
        ("qwen05-think-019-s1-stop.json", "eos"),
        ("qwen05-think-010-s1-checkpara-stop.json", "stop"),
        ("qwen05-think-007-s1-checkpara-stop.json", "length"),
    ],
)
def test_native_completion_body_and_answer(name: str, finish: str) -> None:
    cap = capture(THINK / name)
    sent = cap["request"]
    body = dialects.native_completion_body(
        sent["prompt"],
        sent["n_predict"],
        sent["stop"],
        temperature=sent["temperature"],
        top_p=sent["top_p"],
        top_k=sent["top_k"],
        seed=sent["seed"],
    )
    assert body == {**sent, "stream": False}  # the capture's request was not streamed either
    done = dialects.native_completion(cap["response"])
    assert done.finish == finish and done.tokens == cap["response"]["tokens_predicted"]
    assert done.stop == (cap["response"]["stopping_word"] if finish == "stop" else None)


def test_openai_completion_body_and_answers_of_vllm() -> None:
    for name, finish in (("stop", "stop"), ("eos", "eos"), ("length", "length")):
        cap = capture(THINK / f"vllm-completion-{name}.json")
        sent = cap["request"]
        body = dialects.openai_completion_body(
            sent.get("model"),
            sent["prompt"],
            sent["max_tokens"],
            sent.get("stop", []),
            temperature=sent["temperature"],
            top_p=sent["top_p"],
            top_k=sent["top_k"],
            seed=sent.get("seed"),
        )
        assert body == sent
        done = dialects.openai_completion(cap["response"], sent.get("stop", []))
        assert done.finish == finish and done.tokens == cap["response"]["usage"]["completion_tokens"]
        assert done.text == cap["response"]["choices"][0]["text"]


# ---------------------------------------------------------------- tokenizer, chat template, listings


def test_llama_server_tokenize_and_detokenize_round_trip() -> None:
    tok, detok = capture(HTTP / "llama-server-tokenize.json"), capture(HTTP / "llama-server-detokenize.json")
    assert dialects.tokenize_body("llama", P) == tok["request"] and tok["path"] == dialects.TOKENIZE
    ids = dialects.token_ids(tok["response"])
    assert ids and all(isinstance(i, int) for i in ids)
    assert dialects.detokenize_body("llama", ids) == detok["request"] and detok["path"] == dialects.DETOKENIZE
    assert dialects.detokenized(detok["response"]) == P
    with pytest.raises(ValueError, match="without tokens"):
        dialects.token_ids({"error": "no"})


def test_vllm_chat_template_through_its_tokenizer() -> None:
    tok, detok = capture(THINK / "vllm-chat-template.json")
    model = tok["request"]["model"]
    assert dialects.chat_tokenize_body(model, tok["request"]["messages"]) == tok["request"]
    ids = dialects.token_ids(tok["response"])
    assert len(ids) == tok["response"]["count"]
    assert dialects.detokenize_body("openai", ids, model) == detok["request"]
    prompt = dialects.detokenized(detok["response"])
    assert tok["request"]["messages"][0]["content"] in prompt and prompt.endswith("assistant\n")
    assert dialects.tokenize_body("openai", P, model) == {
        "model": model,
        "prompt": P,
        "add_special_tokens": False,
    }


def test_llama_server_apply_template() -> None:
    cap = capture(HTTP / "llama-server-apply-template.json")
    assert dialects.apply_template_body([{"role": "user", "content": P}]) == cap["request"]
    prompt = dialects.templated_prompt(cap["response"])
    assert prompt is not None and P in prompt and prompt.endswith("assistant\n")
    # llama-server's /tokenize of chat messages (the OpenAI route) answers no tokens at all
    tok, detok = capture(THINK / "llama-server-v1-chat-template.json")
    assert dialects.token_ids(tok["response"]) == [] and dialects.detokenized(detok["response"]) == ""
    assert dialects.templated_prompt({"error": "x"}) is None


def test_model_ids_of_both_servers() -> None:
    for path in (HTTP / "models.json", VLLM / "models-ngram.json"):
        listed = capture(path)["data"]
        assert dialects.model_ids(path.read_bytes()) == [m["id"] for m in listed] and listed
    with pytest.raises(ValueError, match="other than a model list"):
        dialects.model_ids((HTTP / "error-401.json").read_bytes())
