"""The think backends' request bodies and answer mapping, on answers captured from real servers.

llama-server /completion: tests/fixtures/think/qwen05-*.json (capture.py); OpenAI completions of
vLLM 0.32 (CPU) and llama-server's /v1/completions: tests/fixtures/think/{vllm,llama-server-v1}-*.json
(capture_openai.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from velobench.errors import VelobenchError
from velobench.results.think import Sampling
from velobench.think.analysis import trigger_stop_strings
from velobench.think.backends import fit_stops, llama_body, llama_piece, openai_body, openai_piece

THINK = Path(__file__).parents[1] / "fixtures" / "think"
SAMPLING = Sampling(temperature=0.6, top_p=0.95, top_k=20, seed=0)


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((THINK / name).read_text())
    return data


@pytest.mark.parametrize(
    ("name", "finish", "stop"),
    [
        ("qwen05-think-019-s1-stop.json", "eos", None),
        ("qwen05-think-010-s1-checkpara-stop.json", "stop", "\n\nWait"),
        ("qwen05-think-007-s1-checkpara-stop.json", "length", None),
    ],
)
def test_llama_piece_from_real_completions(name: str, finish: str, stop: str | None) -> None:
    answer = fixture(name)["response"]
    piece = llama_piece(answer, 1.5)
    assert piece.finish == finish and piece.stop == stop
    assert piece.text == answer["content"] and piece.tokens == answer["tokens_predicted"]
    assert piece.seconds == 1.5


def test_llama_piece_refuses_what_is_not_a_finished_completion() -> None:
    answer = fixture("qwen05-think-019-s1-stop.json")["response"]
    with pytest.raises(VelobenchError, match="stop_type 'none'"):
        llama_piece({**answer, "stop_type": "none"}, 1.0)
    with pytest.raises(VelobenchError, match="without content"):
        llama_piece({"error": "x"}, 1.0)


def test_llama_body_is_what_the_captured_requests_sent() -> None:
    captured = fixture("qwen05-think-010-s1-checkpara-stop.json")["request"]
    sampling = Sampling(temperature=captured["temperature"], top_p=captured["top_p"], top_k=captured["top_k"])
    body = llama_body(
        captured["prompt"],
        captured["n_predict"],
        trigger_stop_strings(["wait", "but"]),
        sampling,
        captured["seed"],
    )
    for key in ("prompt", "n_predict", "temperature", "top_p", "top_k", "seed", "cache_prompt"):
        assert body[key] == captured[key], key
    assert body["cache_prompt"] is True and body["stream"] is False
    assert llama_body("p", 4, [], SAMPLING, None)["seed"] == -1  # the server's own seed


def test_openai_piece_from_real_vllm() -> None:
    stop = fixture("vllm-completion-stop.json")
    sent = stop["request"]["stop"]
    piece = openai_piece(stop["response"], 2.0, sent)
    choice = stop["response"]["choices"][0]
    assert piece.finish == "stop" and piece.stop == choice["stop_reason"] == "\n\n"
    assert piece.text == choice["text"] and piece.tokens == stop["response"]["usage"]["completion_tokens"]
    eos = fixture("vllm-completion-eos.json")["response"]
    assert eos["choices"][0]["stop_reason"] is None
    assert openai_piece(eos, 1.0, []).finish == "eos"
    assert openai_piece(eos, 1.0, ["\n\nWait"]).finish == "eos"  # stop_reason null: not a stop string
    length = openai_piece(fixture("vllm-completion-length.json")["response"], 1.0, [])
    assert length.finish == "length" and length.tokens == 8


def test_openai_piece_from_llama_servers_v1_endpoint_cannot_name_the_stop_string() -> None:
    stop = fixture("llama-server-v1-completion-stop.json")
    assert "stop_reason" not in stop["response"]["choices"][0]
    with pytest.raises(VelobenchError, match="does not say which stop string"):
        openai_piece(stop["response"], 1.0, stop["request"]["stop"])
    eos = fixture("llama-server-v1-completion-eos.json")["response"]
    assert openai_piece(eos, 1.0, []).finish == "eos"  # no stop strings sent: only the end of sequence
    assert (
        openai_piece(fixture("llama-server-v1-completion-length.json")["response"], 1.0, []).finish
        == "length"
    )


def test_openai_piece_refuses_other_endings() -> None:
    answer = fixture("vllm-completion-stop.json")["response"]
    aborted = {**answer, "choices": [{**answer["choices"][0], "finish_reason": "abort"}]}
    with pytest.raises(VelobenchError, match="finish_reason 'abort'"):
        openai_piece(aborted, 1.0, ["\n\n"])
    with pytest.raises(VelobenchError, match="not one of the stop strings"):
        openai_piece(answer, 1.0, ["\n\nWait"])
    with pytest.raises(VelobenchError, match="without choices"):
        openai_piece({"object": "error"}, 1.0, [])


def test_openai_body_is_what_the_captured_request_sent() -> None:
    captured = fixture("vllm-completion-stop.json")["request"]
    greedy = Sampling(temperature=0.0, top_p=1.0, top_k=0, seed=0)
    assert openai_body(captured["model"], captured["prompt"], 200, captured["stop"], greedy, 0) == captured
    body = openai_body(None, "p", 4, [], SAMPLING, None)
    assert "model" not in body and "seed" not in body and "stop" not in body


def test_chat_templates_of_both_routes_agree() -> None:
    """vLLM's /tokenize + /detokenize renders the same prompt as llama-server's /apply-template
    (SmolLM2's template), and llama-server's /tokenize ignores messages (hence /apply-template)."""
    vllm: list[dict[str, Any]] = json.loads((THINK / "vllm-chat-template.json").read_text())
    llama: list[dict[str, Any]] = json.loads((THINK / "llama-server-v1-chat-template.json").read_text())
    rendered = vllm[1]["response"]["prompt"]
    assert rendered.startswith("<|im_start|>system\n") and rendered.endswith("<|im_start|>assistant\n")
    assert llama[0]["response"]["tokens"] == []
    prompt = fixture("llama-server-v1-completion-stop.json")["request"]["prompt"]
    assert prompt == rendered


def test_too_many_trigger_stops_become_the_paragraph_break() -> None:
    stops = trigger_stop_strings(["wait", "but"])
    assert fit_stops(stops, None) == stops and fit_stops(stops, len(stops)) == stops
    assert fit_stops(stops, 4) == ["\n\n"]
    assert fit_stops(["\n\n"], 4) == ["\n\n"]
    with pytest.raises(VelobenchError, match="at most 1"):
        fit_stops(["x", "y"], 1)
