"""One measured generation over HTTP, for every server engine (llama-server, vLLM, remote).

    GET /metrics → stream the request (engines.http_client) → GET /metrics → Iteration

The session is a client of a server; `server` is the process velobench started, where it
started one, and serves only to name the cause when the connection drops. A server velobench
did not start (`--server-url`) is the same session without it.

Client clock (RequestTiming): TTFT = sent → first content chunk; ITL = gaps between chunks,
spread over the tokens each chunk carried; TPOT = (last − first chunk) / (tokens − 1);
e2e = sent → last chunk. Tokens come from the server's usage, never from counting chunks.
Tokens/s is decode-phase tokens over decode-phase time, the definition the cli engine uses:
the server's own `(predicted_n − 1) / predicted_ms` where it reports timings (llama-server),
else the client's `(tokens − 1) / (last chunk − first chunk)`. Acceptance comes from the
/metrics deltas of the request (`llamacpp:` or `vllm:` spec-decode counters).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from velobench.engines.base import ServerHandle
from velobench.engines.http_client import (
    Endpoint,
    HttpClient,
    RequestFailed,
    StreamRequest,
    StreamResult,
    display_url,
)
from velobench.engines.metrics import counter_delta, spec_decode_delta
from velobench.errors import VelobenchError
from velobench.proc import ServerProcess, log_tail
from velobench.prompts import Prompt, chat_messages
from velobench.results.config import RunConfig
from velobench.results.schema import AcceptanceSource, Iteration, Mode, SessionInfo

READ_TIMEOUT_S = 120.0  # longest silence allowed: the first token after a long prompt on a CPU
DEADLINE_BASE_S = 120.0
DEADLINE_PER_TOKEN_S = 2.0  # a generous 0.5 tokens/s floor: a slower stream is a hung one


def client_timeouts(cfg: RunConfig) -> dict[str, float]:
    """Per-read timeout and per-generation deadline: --timeout, else derived from n_predict
    (DEADLINE_BASE_S + DEADLINE_PER_TOKEN_S · n_predict); a hung server ends as a one-line error."""
    deadline = cfg.timeout or DEADLINE_BASE_S + DEADLINE_PER_TOKEN_S * cfg.n_predict
    return {"read_timeout_s": min(READ_TIMEOUT_S, deadline), "deadline_s": deadline}


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (linear interpolation, numpy's default), None for no values."""
    if not values:
        return None
    import numpy as np

    return float(np.percentile(values, q))


@contextmanager
def open_session(handle: ServerHandle, cfg: RunConfig, mode: Mode) -> Iterator[HttpSession]:
    """A measuring session on `handle`'s server (the client closed on exit; the server is not ours to stop)."""
    with HttpClient(handle.base_url, api_key=handle.api_key, **client_timeouts(cfg)) as client:
        yield HttpSession(
            client,
            cfg,
            mode,
            endpoint=handle.endpoint,
            model=handle.model,
            extra_body=handle.extra_body,
            server=handle.process,
            server_name=handle.name,
            server_version=handle.version,
            facts=handle.facts,
        )


class HttpSession:
    """Measures one mode's generations against one server."""

    def __init__(
        self,
        client: HttpClient,
        cfg: RunConfig,
        mode: Mode,
        *,
        endpoint: Endpoint,
        model: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        server: ServerProcess | None = None,
        server_name: str = "server",
        server_version: str | None = None,
        facts: dict[str, str] | None = None,
    ):
        self.client = client
        self.cfg = cfg
        self.mode = mode
        self.endpoint = endpoint
        self.model = model
        self.extra_body = dict(extra_body or {})
        self.server = server
        self.server_name = server_name
        self.server_version = server_version
        self.facts = dict(facts or {})
        self.notes: list[str] = []  # what could not be measured, and why (become warnings)

    def info(self) -> SessionInfo:
        s = self.server
        return SessionInfo(
            url=display_url(self.client.base_url),
            command=s.command if s else None,
            log=str(s.log_path) if s else None,
            ready_s=s.ready_s if s else None,
            server_version=self.server_version,
            extra={**({"model": self.model} if self.model else {}), **self.facts},
            notes=self.notes,
        )

    def telemetry_root(self) -> tuple[int | None, bool]:
        """The server process (and its children, e.g. vLLM's engine core), where velobench started it."""
        proc = self.server.process if self.server is not None else None
        return (proc.pid if proc is not None else None), False

    def died(self, what: str) -> VelobenchError:
        """The one-line error for a dropped connection: the process's fate where it is ours
        (`proc.server_exited` once it has exited)."""
        if self.server is None:
            return VelobenchError(f"the server at {display_url(self.client.base_url)} failed: {what}")
        dead = self.server.died("during a request", name=self.server_name)
        if dead is not None:
            return dead
        return VelobenchError(
            f"{self.server_name} is still running but: {what}; "
            f"log: {log_tail(self.server.log_path)} ({self.server.log_path})"
        )

    def request(self, prompt: Prompt) -> StreamRequest:
        """The request for `prompt`: raw text, or with --chat the first turn as chat messages."""
        chat = self.endpoint == "chat"
        return StreamRequest(
            endpoint=self.endpoint,
            prompt=chat_messages(prompt) if chat else prompt.prompt,
            max_tokens=self.cfg.n_predict,
            model=self.model,
            temperature=self.cfg.temp,
            seed=self.cfg.seed,
            ignore_eos=True,
            extra=self.extra_body,
        )

    def sample(
        self, prompt: Prompt, seed: int, *, top_p: float, top_k: int, temperature: float | None = None
    ) -> tuple[list[int] | None, str]:
        """One seeded generation at `temperature` (default: the config's) with `top_p`/`top_k`
        (0: off), not measured (`velobench lossless`): its token ids (where the server gives
        them) and its text."""
        req = dataclasses.replace(
            self.request(prompt),
            seed=seed,
            temperature=self.cfg.temp if temperature is None else temperature,
            # top-k off: 0 for llama-server's /completion, -1 on OpenAI endpoints (vLLM's "all")
            extra={
                **self.extra_body,
                "top_p": top_p,
                "top_k": top_k or (0 if self.endpoint == "native" else -1),
            },
        )
        try:
            res = self.client.stream(req)
        except RequestFailed as exc:
            if exc.kind in ("connect", "stream-ended", "timeout") or exc.kind.startswith("http-5"):
                raise self.died(str(exc)) from exc
            raise
        return res.token_ids, res.text

    def generate(self, prompt: Prompt, index: int) -> Iteration:
        before = self.client.metrics()
        req = self.request(prompt)
        try:
            res = self.client.stream(req)
        except RequestFailed as exc:
            if exc.kind in ("connect", "stream-ended", "timeout") or exc.kind.startswith("http-5"):
                raise self.died(str(exc)) from exc
            raise
        after = self.client.metrics()
        cached = int(_number(res.timings or {}, "cache_n") or 0)
        if cached and self.extra_body.get("cache_prompt") is False:
            raise VelobenchError(
                f"the server reused {cached} cached prompt tokens despite cache_prompt=false"
            )
        if cached and not any(n.startswith("prompt cache") for n in self.notes):
            self.notes.append(  # a server velobench did not start may cache prompts: say what TTFT means then
                f"prompt cache: the server reused {cached} cached prompt tokens, so TTFT includes cache hits"
            )
        it = record(self.cfg, self.mode, index, res, before, after)
        shown = {k: v for k, v in req.extra.items()}
        it.command = f"POST {display_url(self.client.base_url)}{req.path} " + json.dumps(
            {"max_tokens": req.max_tokens, "temperature": req.temperature, "seed": req.seed, **shown}
        )
        return it


def server_phases(
    before: Mapping[Any, float] | None, after: Mapping[Any, float] | None
) -> tuple[float, float] | None:
    """(prefill ms, decode ms) of the one request between two scrapes, from vLLM's histograms
    `vllm:request_prefill_time_seconds` and `vllm:request_decode_time_seconds` (decode = first →
    last token on the server's clock); None unless exactly one request finished in between.

    The server's clock, not the client's: on a busy machine the client can be descheduled while
    the server streams, and then reads a whole stream at once (a decode time near zero).
    """
    if before is None or after is None:
        return None
    try:
        count = counter_delta(before, after, "request_decode_time_seconds_count")
        decode = counter_delta(before, after, "request_decode_time_seconds_sum")
        prefill = counter_delta(before, after, "request_prefill_time_seconds_sum")
    except ValueError:
        return None
    if count != 1 or not decode or decode <= 0:
        return None
    return (prefill or 0.0) * 1000, decode * 1000


def _number(timings: Mapping[str, Any], key: str) -> float | None:
    """A numeric field of the server's `timings`, None where it is missing or not a number."""
    value = timings.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def record(
    cfg: RunConfig,
    mode: Mode,
    index: int,
    res: StreamResult,
    before: Mapping[Any, float] | None,
    after: Mapping[Any, float] | None,
) -> Iteration:
    """An Iteration from one streamed request and the /metrics scrapes around it (pure)."""
    t = res.timing
    n = t.output_tokens if t.output_tokens is not None else sum(t.chunk_tokens)
    timings = res.timings if isinstance(res.timings, Mapping) else {}
    if n < 2 or t.first_token_s is None or not t.chunk_s:
        raise VelobenchError(f"the server generated {n} token(s): nothing to measure (at least 2 are needed)")
    ttft = t.ttft_ms() or 0.0
    server = server_phases(before, after)
    predicted_ms = _number(timings, "predicted_ms")
    predicted_n = _number(timings, "predicted_n")
    if predicted_ms is not None and predicted_ms > 0 and (predicted_n if predicted_n is not None else n) >= 2:
        # The server's own decode timing; without predicted_n, the token count from usage.
        decode_ms = predicted_ms
        server_prompt_ms = _number(timings, "prompt_ms")
        prompt_ms = server_prompt_ms if server_prompt_ms is not None else ttft
        tps = ((predicted_n if predicted_n is not None else n) - 1) / decode_ms * 1000
    elif server is not None:  # vLLM: its own per-request decode time, first → last token
        prompt_ms, decode_ms = server
        tps = (n - 1) / decode_ms * 1000
    else:
        decode_ms = (t.chunk_s[-1] - t.first_token_s) * 1000
        prompt_ms = ttft
        if decode_ms <= 0:
            raise VelobenchError(f"all {n} tokens arrived in one chunk: no decode time to measure")
        tps = (n - 1) / decode_ms * 1000
    itl = t.itl_ms()
    spec = mode == "speculative"
    delta = spec_decode_delta(before, after) if spec and before is not None and after is not None else None
    n_drafted = n_accept = steps = None
    per_pos: list[float] | None = None
    source: AcceptanceSource | None = None
    if delta is not None:
        n_drafted, n_accept, steps = delta.draft_tokens, delta.accepted_tokens, delta.drafts
        per_pos = [float(x) for x in delta.accepted_per_position] or None
        source = "metrics-delta"
    elif spec and _number(timings, "draft_n") is not None:  # llama-server without --metrics: its own counts
        n_drafted, n_accept = int(timings["draft_n"]), int(_number(timings, "draft_n_accepted") or 0)
        source = "server-response"
    prompt_tokens = t.prompt_tokens if t.prompt_tokens is not None else int(_number(timings, "prompt_n") or 0)
    return Iteration(
        index=index,
        command="",
        returncode=0,
        wall_ms=((t.end_s or t.chunk_s[-1]) - t.sent_s) * 1000,
        prompt_tokens=prompt_tokens,
        prompt_ms=prompt_ms,
        ttft_ms=ttft,
        generated_tokens=n,
        decode_ms=decode_ms,
        tokens_per_second=tps,
        total_time_ms=prompt_ms + decode_ms,
        n_draft=cfg.n_draft if spec and not cfg.server_url else None,  # a remote server sets its own
        n_drafted=n_drafted,
        n_accept=n_accept,
        acceptance_rate=(n_accept / n_drafted) if n_accept is not None and n_drafted else None,
        acceptance_source=source,
        e2e_ms=t.e2e_ms(),
        tpot_ms=t.tpot_ms(),
        itl_p50_ms=percentile(itl, 50),
        itl_p90_ms=percentile(itl, 90),
        itl_p99_ms=percentile(itl, 99),
        draft_steps=steps,
        mean_acceptance_length=(1 + n_accept / steps) if steps and n_accept is not None else None,
        accepted_per_position=per_pos,
        server_timings={k: float(v) for k, v in timings.items() if isinstance(v, int | float)} or None,
        output=res.text,
        output_tokens=res.token_ids,
        request=t,
    )
