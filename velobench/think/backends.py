"""The servers of `velobench think`: two models behind completion APIs, one request per piece.

A `ThinkServer` is one model's server, spoken to in one of two dialects (`engines.dialects`
builds every body and reads every answer):

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
the paragraph break alone (`fit_stops`). Requests are not streamed: a piece is wanted whole.
Its time is the client's wall time of the request. `body`/`piece` functions are pure (tested on captured responses); `HttpThinkBackend`
implements `velobench.think.loop.ThinkBackend` over two ThinkServers and turns a failed
request into one line that says which model's server failed and, where velobench started it,
how it ended (exit code and the tail of its log).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from velobench.engines import dialects
from velobench.engines.dialects import Completion, Dialect
from velobench.engines.http_client import HttpClient, RequestFailed, display_url
from velobench.errors import VelobenchError
from velobench.proc import ServerProcess
from velobench.results.think import Role, Sampling
from velobench.think.analysis import PARAGRAPH_BREAK
from velobench.think.loop import Piece

# ---------------------------------------------------------------- pure: what is sent, what comes back
# (the bodies and answers are engines.dialects'; a piece is a completion and its client time)


def piece(done: Completion, seconds: float) -> Piece:
    """A finished completion as the loop's Piece, timed by the client."""
    return Piece(text=done.text, tokens=done.tokens, seconds=seconds, finish=done.finish, stop=done.stop)


def llama_body(
    prompt: str, max_tokens: int, stop: list[str], sampling: Sampling, seed: int | None
) -> dict[str, Any]:
    """The body of llama-server's POST /completion for one piece; the prompt cache stays on."""
    return dialects.native_completion_body(
        prompt,
        max_tokens,
        stop,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        top_k=sampling.top_k,
        seed=seed,
    )


def llama_piece(answer: Any, seconds: float) -> Piece:
    """A /completion answer as a Piece (`dialects.native_completion`)."""
    return piece(dialects.native_completion(answer), seconds)


def openai_body(
    model: str | None, prompt: str, max_tokens: int, stop: list[str], sampling: Sampling, seed: int | None
) -> dict[str, Any]:
    """The body of POST /v1/completions for one piece (top_k: vLLM's and SGLang's extension)."""
    return dialects.openai_completion_body(
        model,
        prompt,
        max_tokens,
        stop,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        top_k=sampling.top_k,
        seed=seed,
    )


def openai_piece(answer: Any, seconds: float, stop: list[str]) -> Piece:
    """A /v1/completions answer as a Piece (`dialects.openai_completion`; `stop`: the stop
    strings that were sent)."""
    return piece(dialects.openai_completion(answer, stop), seconds)


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


# ---------------------------------------------------------------- the servers


@dataclass
class ThinkServer:
    """One model's server: how to reach it and, where velobench started it, the process."""

    role: Role
    client: HttpClient
    protocol: Dialect
    name: str  # llama-server, vllm, server: for error lines
    model: str | None = None  # the served model name (openai protocol)
    process: ServerProcess | None = None
    max_stop: int | None = None  # the most stop strings one request may carry (None: any number)

    def failed(self, what: str) -> VelobenchError:
        """One line for a failed request: the server's fate where it is ours, else its address."""
        where = f"the {self.role} model's {self.name}"
        if self.process is None:
            return VelobenchError(f"{where} at {display_url(self.client.base_url)} failed: {what}")
        dead = self.process.died("during a request", name=where)
        return dead or VelobenchError(f"{where} failed: {what}")


def answers_apply_template(client: HttpClient) -> bool:
    """Does this server speak llama-server's API (POST /apply-template answers a prompt)?"""
    try:
        said = client.post_json(
            dialects.APPLY_TEMPLATE, dialects.apply_template_body([{"role": "user", "content": "hi"}])
        )
    except RequestFailed:
        return False
    return dialects.templated_prompt(said) is not None


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
                said = s.client.post_json(dialects.APPLY_TEMPLATE, dialects.apply_template_body(messages))
                prompt = dialects.templated_prompt(said)
            else:
                ids = s.client.post_json(dialects.TOKENIZE, dialects.chat_tokenize_body(s.model, messages))
                tokens = dialects.token_ids(ids)
                said = s.client.post_json(
                    dialects.DETOKENIZE, dialects.detokenize_body("openai", tokens, s.model)
                )
                prompt = dialects.detokenized(said)
        except ValueError as exc:
            raise s.failed(f"cannot apply the chat template: {exc}") from None
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
                    dialects.PATHS["native"], llama_body(prompt, max_tokens, stop, sampling, seed)
                )
                return llama_piece(answer, time.perf_counter() - t0)
            sent = fit_stops(stop, s.max_stop)
            answer = s.client.post_json(
                dialects.PATHS["completions"], openai_body(s.model, prompt, max_tokens, sent, sampling, seed)
            )
            return openai_piece(answer, time.perf_counter() - t0, sent)
        except RequestFailed as exc:
            raise s.failed(str(exc)) from None
