"""What velobench says to inference servers and what it reads back: one table, pure functions.

    endpoint                   dialect  request body                        what is read back
    POST /completion           llama    stream_body("native") | native_     parse_event("native") | native_
                                        completion_body (not streamed)      completion
    POST /v1/completions       openai   stream_body("completions") |        parse_event("completions") |
                                        openai_completion_body              openai_completion
    POST /v1/chat/completions  openai   stream_body("chat")                 parse_event("chat")
    POST /tokenize             both     tokenize_body | chat_tokenize_body  token_ids
    POST /detokenize           both     detokenize_body                     detokenized
    POST /apply-template       llama    apply_template_body                 templated_prompt
    GET  /v1/models            openai   -                                   model_ids
    GET  /metrics              both     -                                   engines.metrics.parse
    GET  /health               both     -                                   200 = ready (proc.ServerProcess)
    GET  /slots                llama    -                                   engines.llama_server.check_speculation
    any error body             both     -                                   error_message

`llama` is llama-server's own API; `openai` the OpenAI-compatible one that vLLM, SGLang and
llama-server serve. Streams are server-sent events (`SseParser` reads them, `sse_frame` writes
one, for the loopback server); `parse_event` turns one event into a `Chunk`: its text, token ids,
the server's running output count, finish reason, `usage`, llama-server's `timings`. Anything
unreadable or an error the server sends is a `StreamFailure` (kind + one-line message).
Every function here is pure and tested on responses captured from the real servers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from velobench.errors import VelobenchError

Endpoint = Literal["completions", "chat", "native"]
Dialect = Literal["llama", "openai"]
Finish = Literal["eos", "stop", "length"]

PATHS: dict[str, str] = {
    "completions": "/v1/completions",
    "chat": "/v1/chat/completions",
    "native": "/completion",
}
HEALTH = "/health"
MODELS = "/v1/models"
METRICS = "/metrics"
TOKENIZE = "/tokenize"
DETOKENIZE = "/detokenize"
APPLY_TEMPLATE = "/apply-template"

# llama-server's /completion says how generation stopped in `stop_type`: OpenAI's words for it
# (streams) and velobench's (eos: end of sequence, stop: a stop string, length: the limit).
NATIVE_FINISH = {"limit": "length", "eos": "stop", "word": "stop"}
NATIVE_STOP: dict[str, Finish] = {"eos": "eos", "word": "stop", "limit": "length"}


def flatten(text: str, limit: int = 200) -> str:
    """`text` on one line, at most `limit` characters (a server's words; pydantic errors go
    through `validation.one_line`)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def error_message(body: bytes | str) -> str:
    """The server's own words from an error body (`{"error": {"message": ...}}`, `{"error": "..."}`,
    `{"message": ...}`, FastAPI's `{"detail": ...}`), else the body itself; one line."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        obj: Any = json.loads(text)
    except ValueError:
        return flatten(text) or "(empty body)"
    for key in ("error", "message", "detail"):
        if isinstance(obj, dict) and key in obj:
            obj = obj[key]
            if isinstance(obj, dict) and "message" in obj:
                obj = obj["message"]
            break
    return flatten(obj if isinstance(obj, str) else json.dumps(obj))


class StreamFailure(Exception):
    """A classified failure: `kind` (connect, timeout, http-<status>, stream-ended, bad-event,
    server-error) and a one-line message."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


# ---------------------------------------------------------------------------------------------
# Streamed generation: the request body
# ---------------------------------------------------------------------------------------------


def stream_body(
    endpoint: Endpoint,
    prompt: str | Sequence[Mapping[str, str]],
    max_tokens: int,
    *,
    model: str | None = None,
    temperature: float = 0.0,
    seed: int | None = None,
    ignore_eos: bool = False,
    extra: Mapping[str, Any] | None = None,
    continuous_usage: bool = True,
) -> dict[str, Any]:
    """The JSON body of one streamed request; `extra` is merged last (engine-specific fields such
    as llama-server's `timings_per_token` or `cache_prompt`, vLLM's `return_token_ids`).

    OpenAI endpoints ask for `stream_options.include_usage` (the closing chunk carries `usage`)
    and, with `continuous_usage`, `continuous_usage_stats` (vLLM then puts the running `usage` in
    every chunk; servers that do not know it ignore it, a strict one may refuse it). A chat prompt
    given as a string becomes one user message.
    """
    body: dict[str, Any]
    if endpoint == "native":
        if not isinstance(prompt, str):
            raise VelobenchError("llama-server's /completion takes a prompt string, not chat messages")
        body = {"prompt": prompt, "n_predict": max_tokens}
    else:
        body = {"max_tokens": max_tokens}
        if endpoint == "chat":
            msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
            body["messages"] = [dict(m) for m in msgs]
        else:
            if not isinstance(prompt, str):
                raise VelobenchError(
                    "/v1/completions takes a prompt string; use the chat endpoint for messages"
                )
            body["prompt"] = prompt
        if model is not None:
            body["model"] = model
        options: dict[str, Any] = {"include_usage": True}
        if continuous_usage:
            options["continuous_usage_stats"] = True
        body["stream_options"] = options
    body["stream"] = True
    body["temperature"] = temperature
    if seed is not None:
        body["seed"] = seed
    if ignore_eos:
        body["ignore_eos"] = True
    body.update(extra or {})
    return body


# ---------------------------------------------------------------------------------------------
# Streamed generation: server-sent events, then one chunk per event
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event: `field` is `data`, or `error` (older llama-server's error events)."""

    field: str
    data: str


class SseParser:
    """Server-sent events from a stream's lines, one line at a time (W3C EventSource rules, the
    subset servers use): `field: value` lines accumulate, a blank line ends the event, `:` lines
    are comments (pings). `data` lines of one event are joined with newlines."""

    def __init__(self) -> None:
        self._field: str | None = None
        self._data: list[str] = []

    def feed(self, line: str) -> SseEvent | None:
        """The event `line` completes, if it completes one."""
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name in ("data", "error"):
            if self._field is not None and self._field != name:
                done = self._dispatch()
                self._field, self._data = name, [value]
                return done
            self._field = name
            self._data.append(value)
        return None  # event:, id:, retry: and unknown fields carry nothing velobench reads

    def close(self) -> SseEvent | None:
        """The last event, where the stream ended without its blank line."""
        return self._dispatch()

    def _dispatch(self) -> SseEvent | None:
        if self._field is None:
            return None
        event = SseEvent(self._field, "\n".join(self._data))
        self._field, self._data = None, []
        return event


def sse_events(lines: Iterable[str]) -> list[SseEvent]:
    """Every event of a whole captured stream."""
    parser = SseParser()
    out = [e for e in (parser.feed(line) for line in lines) if e is not None]
    last = parser.close()
    return [*out, last] if last is not None else out


def sse_frame(payload: Mapping[str, Any] | str) -> bytes:
    """One `data:` event as it goes on the wire (`payload` a JSON object, or `[DONE]`)."""
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n".encode()


@dataclass(frozen=True)
class Chunk:
    """What one stream event says. `tokens` is False for an event that carries no generated text
    (OpenAI's closing usage-only chunk); `running` is the server's running output-token count
    (vLLM's continuous `usage.completion_tokens`, llama-server's `timings.predicted_n`)."""

    text: str = ""
    token_ids: list[int] | None = None
    running: int | None = None
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    timings: dict[str, Any] | None = None
    model: str | None = None
    done: bool = False  # OpenAI: `[DONE]`; /completion: the `stop: true` event
    tokens: bool = True


def parse_event(endpoint: Endpoint, event: SseEvent) -> Chunk:
    """One event of an `endpoint` stream as a Chunk. Raises StreamFailure for errors the server
    sends (`server-error`) and events that are not JSON objects (`bad-event`)."""
    if event.field == "error":
        raise StreamFailure("server-error", error_message(event.data))
    if event.data.strip() == "[DONE]":
        return Chunk(done=True, tokens=False)
    try:
        payload = json.loads(event.data)
    except ValueError:
        raise StreamFailure("bad-event", f"not JSON: {flatten(event.data, 120)!r}") from None
    if not isinstance(payload, dict):
        raise StreamFailure("bad-event", f"not a JSON object: {flatten(event.data, 120)!r}")
    if "error" in payload:
        raise StreamFailure("server-error", error_message(event.data))
    return native_chunk(payload) if endpoint == "native" else openai_chunk(endpoint, payload)


def _dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _ids(value: Any) -> list[int] | None:
    return value if isinstance(value, list) else None


def openai_chunk(endpoint: Endpoint, payload: Mapping[str, Any]) -> Chunk:
    """A `/v1/completions` (`choices[0].text`) or `/v1/chat/completions` chunk (`delta`: reasoning
    and content, a role-only first delta carries nothing); `token_ids`: vLLM's `return_token_ids`."""
    model = payload["model"] if isinstance(payload.get("model"), str) else None
    usage, timings = _dict(payload.get("usage")), _dict(payload.get("timings"))
    choices = payload.get("choices") or []
    if not choices:  # the closing usage-only chunk
        return Chunk(usage=usage, timings=timings, model=model, tokens=False)
    choice = choices[0]
    if endpoint == "chat":
        delta = choice.get("delta") or {}
        parts = (delta.get("reasoning_content"), delta.get("reasoning"), delta.get("content"))
        text = "".join(p for p in parts if isinstance(p, str))
    else:
        text = choice.get("text") or ""
    running = None
    if usage is not None and isinstance(usage.get("completion_tokens"), int):
        running = usage["completion_tokens"]
    elif timings is not None and isinstance(timings.get("predicted_n"), int):
        running = timings["predicted_n"]
    return Chunk(
        text=text,
        token_ids=_ids(choice.get("token_ids")),
        running=running,
        finish_reason=choice.get("finish_reason") or None,
        usage=usage,
        timings=timings,
        model=model,
    )


def native_chunk(payload: Mapping[str, Any]) -> Chunk:
    """A llama-server `/completion` event: `content` and its `tokens`; the last (`stop: true`)
    also the model, `timings` and `stop_type` (as OpenAI's finish reason)."""
    stop = bool(payload.get("stop"))
    stop_type = payload.get("stop_type")
    return Chunk(
        text=payload.get("content") or "",
        token_ids=_ids(payload.get("tokens")),
        finish_reason=NATIVE_FINISH.get(stop_type, stop_type)
        if stop and isinstance(stop_type, str)
        else None,
        timings=_dict(payload.get("timings")) if stop else None,
        model=payload["model"] if stop and isinstance(payload.get("model"), str) else None,
        done=stop,
    )


def stream_chunk(
    text: str, *, finish_reason: str | None = None, usage: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """A `/v1/chat/completions` stream chunk as servers send it (for the loopback server)."""
    choice: dict[str, Any] = {"index": 0, "delta": {"content": text} if text else {}}
    if finish_reason is not None:
        choice["finish_reason"] = finish_reason
    chunk: dict[str, Any] = {"choices": [choice]}
    if usage is not None:
        chunk["usage"] = dict(usage)
    return chunk


def token_counts(
    endpoint: Endpoint, usage: Mapping[str, Any] | None, timings: Mapping[str, Any] | None
) -> tuple[int | None, int | None]:
    """(output tokens, prompt tokens) by the server's own closing accounting: `usage`, else on
    `/completion` `timings.predicted_n` and `prompt_n + cache_n` (cached prompt tokens count)."""
    if usage is not None:
        out, prompt = usage.get("completion_tokens"), usage.get("prompt_tokens")
        return (out if isinstance(out, int) else None), (prompt if isinstance(prompt, int) else None)
    if endpoint == "native" and timings is not None:
        out, prompt = timings.get("predicted_n"), timings.get("prompt_n")
        return (
            out if isinstance(out, int) else None,
            prompt + int(timings.get("cache_n") or 0) if isinstance(prompt, int) else None,
        )
    return None, None


# ---------------------------------------------------------------------------------------------
# One whole completion, not streamed (velobench think)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Completion:
    """A finished completion: eos (end of sequence), stop (the stop string `stop` matched) or
    length (max_tokens reached); `tokens` as the server counted them."""

    text: str
    tokens: int
    finish: Finish
    stop: str | None = None


def native_completion_body(
    prompt: str,
    max_tokens: int,
    stop: list[str],
    *,
    temperature: float,
    top_p: float,
    top_k: int,
    seed: int | None,
) -> dict[str, Any]:
    """llama-server's POST /completion, not streamed; the prompt cache stays on (seed -1: the
    server's own)."""
    return {
        "prompt": prompt,
        "n_predict": max_tokens,
        "stop": stop,
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k,
        "seed": -1 if seed is None else seed,
        "cache_prompt": True,
        "stream": False,
    }


def native_completion(answer: Any) -> Completion:
    """A /completion answer: content, tokens_predicted, stop_type (eos | word | limit) and the
    stopping_word; anything it does not say clearly is a VelobenchError."""
    try:
        text, tokens, stop_type = answer["content"], answer["tokens_predicted"], answer["stop_type"]
    except (KeyError, TypeError):
        raise VelobenchError("/completion answered without content, tokens_predicted or stop_type") from None
    finish = NATIVE_STOP.get(stop_type)
    if finish is None or not isinstance(text, str) or not isinstance(tokens, int):
        raise VelobenchError(f"/completion answered stop_type {stop_type!r}: not a finished completion")
    stop = (answer.get("stopping_word") or None) if finish == "stop" else None
    return Completion(text=text, tokens=tokens, finish=finish, stop=stop)


def openai_completion_body(
    model: str | None,
    prompt: str,
    max_tokens: int,
    stop: list[str],
    *,
    temperature: float,
    top_p: float,
    top_k: int,
    seed: int | None,
) -> dict[str, Any]:
    """POST /v1/completions, not streamed (top_k: vLLM's and SGLang's extension)."""
    body: dict[str, Any] = {
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k,
        "stream": False,
    }
    if stop:
        body["stop"] = stop
    if model is not None:
        body["model"] = model
    if seed is not None:
        body["seed"] = seed
    return body


_MISSING = object()


def openai_completion(answer: Any, stop: list[str]) -> Completion:
    """A /v1/completions answer. `stop`: the stop strings that were sent.

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
        return Completion(text=text, tokens=tokens, finish="length")
    if reason != "stop":
        raise VelobenchError(f"/v1/completions answered finish_reason {reason!r}: not a finished completion")
    said = choice.get("stop_reason", _MISSING)
    if said is _MISSING or (said is None and "matched_stop" in choice):
        said = choice.get("matched_stop", _MISSING)
    if isinstance(said, str) and said in stop:
        return Completion(text=text, tokens=tokens, finish="stop", stop=said)
    if said is None or isinstance(said, int) or (said is _MISSING and not stop):
        return Completion(text=text, tokens=tokens, finish="eos")
    if said is _MISSING:
        raise VelobenchError(
            "the server does not say which stop string ended a completion (no stop_reason): "
            "speculative thinking cannot tell a trigger from the end of the text"
        )
    raise VelobenchError(f"/v1/completions stopped at {said!r}, which is not one of the stop strings sent")


# ---------------------------------------------------------------------------------------------
# Tokenizer and chat template
# ---------------------------------------------------------------------------------------------


def tokenize_body(dialect: Dialect, text: str, model: str | None = None) -> dict[str, Any]:
    """POST /tokenize of raw text without special tokens: llama-server's `content`/`add_special`,
    vLLM's `model`/`prompt`/`add_special_tokens`."""
    if dialect == "llama":
        return {"content": text, "add_special": False}
    return {"model": model, "prompt": text, "add_special_tokens": False}


def chat_tokenize_body(model: str | None, messages: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    """vLLM's POST /tokenize of chat messages with the model's template and generation prompt."""
    return {"model": model, "messages": [dict(m) for m in messages], "add_generation_prompt": True}


def token_ids(answer: Any) -> list[int]:
    """The ids of a /tokenize answer (`tokens`: ids, or llama-server's `{"id", "piece"}` objects
    with `with_pieces`). Raises ValueError quoting an answer that has none."""
    tokens = answer.get("tokens") if isinstance(answer, dict) else None
    if not isinstance(tokens, list):
        raise ValueError(f"/tokenize answered without tokens: {flatten(json.dumps(answer), 120)!r}")
    try:
        return [int(t["id"]) if isinstance(t, dict) else int(t) for t in tokens]
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"/tokenize answered tokens that are not ids: {flatten(str(tokens), 120)!r}"
        ) from None


def detokenize_body(dialect: Dialect, ids: Sequence[int], model: str | None = None) -> dict[str, Any]:
    """POST /detokenize of token ids (vLLM's names the model)."""
    if dialect == "llama":
        return {"tokens": list(ids)}
    return {"model": model, "tokens": list(ids)}


def detokenized(answer: Any) -> str:
    """The text of a /detokenize answer: llama-server's `content`, vLLM's `prompt` ("" if neither)."""
    if not isinstance(answer, dict):
        return ""
    return str(answer.get("content", answer.get("prompt", "")))


def apply_template_body(messages: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    """llama-server's POST /apply-template: the messages, rendered with the model's chat template."""
    return {"messages": [dict(m) for m in messages]}


def templated_prompt(answer: Any) -> str | None:
    """The prompt of an /apply-template answer, None where it has none."""
    prompt = answer.get("prompt") if isinstance(answer, dict) else None
    return prompt if isinstance(prompt, str) else None


# ---------------------------------------------------------------------------------------------
# Listings
# ---------------------------------------------------------------------------------------------


def model_ids(body: bytes | str) -> list[str]:
    """The ids of a GET /v1/models answer (`{"data": [{"id": ...}]}`). Raises ValueError quoting
    an answer that is not a model list."""
    try:
        return [str(m["id"]) for m in json.loads(body)["data"]]
    except (ValueError, KeyError, TypeError):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        raise ValueError(f"something other than a model list: {flatten(text, 120)!r}") from None


# ---------------------------------------------------------------------------------------------
# The target's distribution after a prefix (losslessness at temperature 0)
# ---------------------------------------------------------------------------------------------


def native_probe_body(prompt: str, prefix: Sequence[int], n_probs: int) -> dict[str, Any]:
    """llama-server's POST /completion asking one token after `prompt` + the token ids `prefix`
    (a mixed prompt: the text is tokenized as a request's own prompt is) with the `n_probs` most
    likely candidates: their log-probabilities before sampling (the model's own softmax)."""
    return {
        "prompt": [prompt, *prefix],
        "n_predict": 1,
        "n_probs": n_probs,
        "temperature": 0,
        "cache_prompt": False,
        "stream": False,
    }


def native_candidates(answer: Any) -> list[tuple[int, str, float]]:
    """(id, text, logprob) of the first position's candidates in a /completion answer with
    `n_probs` (`completion_probabilities[0].top_logprobs`), best first. Raises ValueError quoting
    an answer without them."""
    try:
        top = answer["completion_probabilities"][0]["top_logprobs"]
        out = [(int(t["id"]), str(t.get("token", "")), float(t["logprob"])) for t in top]
    except (KeyError, IndexError, TypeError, ValueError):
        raise ValueError(
            f"/completion answered without completion_probabilities: {flatten(json.dumps(answer), 160)!r}"
        ) from None
    return sorted(out, key=lambda t: -t[2])


def openai_probe_body(model: str | None, prompt_ids: Sequence[int], n_probs: int) -> dict[str, Any]:
    """POST /v1/completions of one token after the token ids `prompt_ids` with the `n_probs` most
    likely candidates, named by id (`return_tokens_as_token_ids`: vLLM's extension)."""
    body: dict[str, Any] = {
        "prompt": list(prompt_ids),
        "max_tokens": 1,
        "temperature": 0,
        "logprobs": n_probs,
        "return_tokens_as_token_ids": True,
        "stream": False,
    }
    if model is not None:
        body["model"] = model
    return body


def openai_candidates(answer: Any) -> list[tuple[int, str, float]]:
    """(id, text, logprob) of the first position's candidates in a /v1/completions answer with
    `logprobs` (`choices[0].logprobs.top_logprobs[0]`, keys `token_id:N`), best first."""
    try:
        top = answer["choices"][0]["logprobs"]["top_logprobs"][0]
        out = [(int(str(k).removeprefix("token_id:")), str(k), float(v)) for k, v in top.items()]
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        raise ValueError(
            f"/v1/completions answered without top_logprobs by token id: {flatten(json.dumps(answer), 160)!r}"
        ) from None
    return sorted(out, key=lambda t: -t[2])
