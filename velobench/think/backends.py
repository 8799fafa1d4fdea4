"""The servers of `velobench think`: two models behind completion APIs, one request per piece.

A `ThinkServer` is one model's server, spoken to in one of two protocols:

    llama    llama-server's own API (velobench's llama-servers, and a --large-url/--small-url
             that answers POST /apply-template):
               chat template  POST /apply-template {"messages"} -> "prompt"
               completion     POST /completion {"prompt", "n_predict", "stop", "temperature", "top_p",
                              "top_k", "seed", "cache_prompt": true} -> content, tokens_predicted,
                              stop_type (eos | word | limit -> eos | stop | length), stopping_word
    openai   OpenAI-compatible completions (vLLM, SGLang, other servers):
               chat template  POST /tokenize {"model", "messages", "add_generation_prompt": true}
                              -> token ids, then POST /detokenize {"model", "tokens"} -> "prompt"
               completion     POST /v1/completions {"model", "prompt", "max_tokens", "stop", ...}
                              -> choices[0].text, finish_reason (length | stop), stop_reason (the
                              stop string; null or a token id for the end of sequence: vLLM; SGLang
                              calls it matched_stop), usage.completion_tokens

A server that takes fewer stop strings than the triggers need (OpenAI's API and vLLM: 4) gets
the paragraph break alone (`fit_stops`). Requests are not streamed: a piece is wanted whole. Its time is the client's wall time of the
request. `body`/`piece` functions are pure (tested on captured responses); `HttpThinkBackend`
implements `velobench.think.loop.ThinkBackend` over two ThinkServers and turns a failed
request into one line that says which model's server failed and, where velobench started it,
how it ended (exit code and the tail of its log).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from velobench.engines.http_client import HttpClient, RequestFailed, display_url
from velobench.errors import VelobenchError
from velobench.proc import ServerProcess, log_tail
from velobench.results.think import Sampling
from velobench.think.analysis import PARAGRAPH_BREAK
from velobench.think.loop import Piece, Role

Protocol = Literal["llama", "openai"]
LLAMA_FINISH = {"eos": "eos", "word": "stop", "limit": "length"}


# ---------------------------------------------------------------- pure: what is sent, what comes back


def llama_body(
    prompt: str, max_tokens: int, stop: list[str], sampling: Sampling, seed: int | None
) -> dict[str, Any]:
    """The body of llama-server's POST /completion for one piece; the prompt cache stays on."""
    return {
        "prompt": prompt,
        "n_predict": max_tokens,
        "stop": stop,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": sampling.top_k,
        "seed": -1 if seed is None else seed,
        "cache_prompt": True,
        "stream": False,
    }


def llama_piece(answer: Any, seconds: float) -> Piece:
    """A /completion answer as a Piece; anything it does not say clearly is a VelobenchError."""
    try:
        text, tokens, stop_type = answer["content"], answer["tokens_predicted"], answer["stop_type"]
    except (KeyError, TypeError):
        raise VelobenchError("/completion answered without content, tokens_predicted or stop_type") from None
    finish = LLAMA_FINISH.get(stop_type)
    if finish is None or not isinstance(text, str) or not isinstance(tokens, int):
        raise VelobenchError(f"/completion answered stop_type {stop_type!r}: not a finished completion")
    stop = (answer.get("stopping_word") or None) if finish == "stop" else None
    return Piece(text=text, tokens=tokens, seconds=seconds, finish=finish, stop=stop)  # type: ignore[arg-type]


def openai_body(
    model: str | None, prompt: str, max_tokens: int, stop: list[str], sampling: Sampling, seed: int | None
) -> dict[str, Any]:
    """The body of POST /v1/completions for one piece (top_k: vLLM's and SGLang's extension)."""
    body: dict[str, Any] = {
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": sampling.top_k,
        "stream": False,
    }
    if stop:
        body["stop"] = stop
    if model is not None:
        body["model"] = model
    if seed is not None:
        body["seed"] = seed
    return body


def fit_stops(stop: list[str], limit: int | None) -> list[str]:
    """The stop strings to send to a server that takes at most `limit` (None: any number).

    The loop's stop strings are the trigger stops ("\\n\\nWait", ...) or the paragraph break
    alone. Too many trigger stops become the paragraph break: the server then pauses at every
    paragraph, and the loop's peek (`ThinkLoop.open_tail`) finds a trigger word in the next
    piece; the same texts, one more request per paragraph. OpenAI's API takes 4 stop strings,
    as does vLLM unless VLLM_MAX_STOP_STRINGS says more.
    """
    if limit is None or len(stop) <= limit:
        return stop
    if limit >= 1 and all(s.startswith(PARAGRAPH_BREAK) for s in stop):
        return [PARAGRAPH_BREAK]
    raise VelobenchError(f"{len(stop)} stop strings, and the server takes at most {limit}")


_MISSING = object()


def openai_piece(answer: Any, seconds: float, stop: list[str]) -> Piece:
    """A /v1/completions answer as a Piece. `stop`: the stop strings that were sent.

    finish_reason "length" -> length. "stop" -> the stop string in stop_reason (vLLM) or
    matched_stop (SGLang) when it is one of `stop`; null or a token id -> end of sequence. A
    server that says neither (llama-server's /v1/completions) cannot tell a stop string from the
    end of sequence: with stop strings sent, that is an error, without, the end of sequence.
    """
    try:
        choice = answer["choices"][0]
        text, reason = choice["text"], choice["finish_reason"]
        tokens = answer["usage"]["completion_tokens"]
    except (KeyError, IndexError, TypeError):
        raise VelobenchError(
            "/v1/completions answered without choices[0].text, finish_reason or usage.completion_tokens"
        ) from None
    if not isinstance(text, str) or not isinstance(tokens, int):
        raise VelobenchError("/v1/completions answered a text or token count of the wrong type")
    if reason == "length":
        return Piece(text=text, tokens=tokens, seconds=seconds, finish="length")
    if reason != "stop":
        raise VelobenchError(f"/v1/completions answered finish_reason {reason!r}: not a finished completion")
    said = choice.get("stop_reason", _MISSING)
    if said is _MISSING or (said is None and "matched_stop" in choice):
        said = choice.get("matched_stop", _MISSING)
    if isinstance(said, str) and said in stop:
        return Piece(text=text, tokens=tokens, seconds=seconds, finish="stop", stop=said)
    if said is None or isinstance(said, int) or (said is _MISSING and not stop):
        return Piece(text=text, tokens=tokens, seconds=seconds, finish="eos")
    if said is _MISSING:
        raise VelobenchError(
            "the server does not say which stop string ended a completion (no stop_reason): "
            "speculative thinking cannot tell a trigger from the end of the text"
        )
    raise VelobenchError(f"/v1/completions stopped at {said!r}, which is not one of the stop strings sent")


# ---------------------------------------------------------------- the servers


@dataclass
class ThinkServer:
    """One model's server: how to reach it and, where velobench started it, the process."""

    role: Role
    client: HttpClient
    protocol: Protocol
    name: str  # llama-server, vllm, server: for error lines
    model: str | None = None  # the served model name (openai protocol)
    process: ServerProcess | None = None
    max_stop: int | None = None  # the most stop strings one request may carry (None: any number)

    def failed(self, what: str) -> VelobenchError:
        """One line for a failed request: the server's fate where it is ours, else its address."""
        where = f"the {self.role} model's {self.name}"
        if self.process is None:
            return VelobenchError(f"{where} at {display_url(self.client.base_url)} failed: {what}")
        rc = self.process.exit_code()
        if rc is None:
            return VelobenchError(f"{where} failed: {what}")
        return VelobenchError(
            f"{where} exited with code {rc}: {log_tail(self.process.log_path)} (log: {self.process.log_path})"
        )


def answers_apply_template(client: HttpClient) -> bool:
    """Does this server speak llama-server's API (POST /apply-template answers a prompt)?"""
    try:
        said = client.post_json("/apply-template", {"messages": [{"role": "user", "content": "hi"}]})
    except RequestFailed:
        return False
    return isinstance(said, dict) and isinstance(said.get("prompt"), str)


class HttpThinkBackend:
    """`ThinkBackend` over two servers; the chat template is the large model's."""

    def __init__(self, large: ThinkServer, small: ThinkServer | None = None) -> None:
        """`small` may be None when only the large model runs (--test-mode large)."""
        self.servers: dict[Role, ThinkServer] = {"large": large}
        if small is not None:
            self.servers["small"] = small

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        s = self.servers["large"]
        try:
            if s.protocol == "llama":
                said = s.client.post_json("/apply-template", {"messages": messages})
                prompt = said.get("prompt") if isinstance(said, dict) else None
            else:
                ids = s.client.post_json(
                    "/tokenize", {"model": s.model, "messages": messages, "add_generation_prompt": True}
                )
                tokens = ids.get("tokens") if isinstance(ids, dict) else None
                said = s.client.post_json("/detokenize", {"model": s.model, "tokens": tokens})
                prompt = said.get("prompt") if isinstance(said, dict) else None
        except RequestFailed as exc:
            raise s.failed(f"cannot apply the chat template: {exc}") from None
        if not isinstance(prompt, str) or not prompt:
            raise VelobenchError(f"the large model's {s.name} returned no chat-templated prompt")
        return prompt

    def complete(
        self,
        role: Role,
        prompt: str,
        *,
        max_tokens: int,
        stop: list[str],
        sampling: Sampling,
        seed: int | None,
    ) -> Piece:
        s = self.servers.get(role)
        if s is None:
            raise VelobenchError(f"no server for the {role} model was started")
        t0 = time.perf_counter()
        try:
            if s.protocol == "llama":
                answer = s.client.post_json(
                    "/completion", llama_body(prompt, max_tokens, stop, sampling, seed)
                )
                return llama_piece(answer, time.perf_counter() - t0)
            sent = fit_stops(stop, s.max_stop)
            answer = s.client.post_json(
                "/v1/completions", openai_body(s.model, prompt, max_tokens, sent, sampling, seed)
            )
            return openai_piece(answer, time.perf_counter() - t0, sent)
        except RequestFailed as exc:
            raise s.failed(str(exc)) from None
