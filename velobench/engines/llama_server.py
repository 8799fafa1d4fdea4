"""Engine: one persistent `llama-server` per mode; every generation is a streamed HTTP request.

    session(mode):  llama-server -m M [-md D --spec-type draft-simple --spec-draft-n-max N ...]
                    -c CTX -np 1 --metrics --no-cache-prompt --host 127.0.0.1 --port P
                    → /health ready → /slots confirms `speculative` matches the mode
    generate():     GET /metrics → POST /completion (stream, cache_prompt false) → GET /metrics

Client clock: TTFT = request sent → first token event; ITL = gaps between token events;
TPOT = (last - first token) / (tokens - 1); e2e = request sent → last token.
Tokens/s is the server's `predicted_per_second` = (predicted_n - 1) / predicted_ms: decode-phase
tokens over decode-phase time, the same definition the command-line engine uses (the first
token comes from the prompt batch). Acceptance comes from the `/metrics` deltas of the request
(drafts, drafted and accepted tokens, accepted per position), cross-checked with the response's
`draft_n`/`draft_n_accepted`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from velobench.bins.locate import Tool, find_path, find_tool
from velobench.config import Method, RunConfig, SpecImpl
from velobench.engines.http_output import delta, parse_prometheus, per_position, sse_events
from velobench.engines.llama_args import binary_info, llama_cpp_dir, speculative_args
from velobench.engines.names import EngineName
from velobench.errors import VelobenchError
from velobench.proc import HOST, ServerProcess, free_port, log_tail
from velobench.prompts import Prompt, chat_messages
from velobench.results.schema import BinaryInfo, Iteration, Mode, SessionInfo


def server_argv(tool: Tool, cfg: RunConfig, mode: Mode, port: int) -> list[str]:
    if cfg.method is Method.LOOKUP:
        raise VelobenchError(
            "--method lookup runs llama-lookup (--engine cli); llama-server's equivalent is --method ngram-cache"
        )
    argv = [
        str(tool.path),
        "-m",
        cfg.main_model,
        "-c",
        str(cfg.ctx_size),
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    argv += ["-np", "1"]  # one slot: single-stream latency, no batching with other requests
    if tool.supports("--metrics"):
        argv.append("--metrics")
    if tool.supports("--no-cache-prompt"):
        argv.append("--no-cache-prompt")
    if cfg.threads is not None:
        argv += ["-t", str(cfg.threads)]
    if cfg.gpu_layers is not None:
        argv += ["-ngl", cfg.gpu_layers]
    if mode == "speculative":
        argv += speculative_args(tool, cfg, uses_spec_type=True)
    return [*argv, *cfg.extra_args]


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def request(cfg: RunConfig, prompt: Prompt) -> tuple[str, dict[str, Any]]:
    """Endpoint and body: `/completion` with the raw prompt, or with `--chat` the OpenAI chat
    endpoint, which applies the model's chat template (first turn of multi-turn prompts)."""
    common = {
        "temperature": cfg.temp,
        "seed": cfg.seed,
        "cache_prompt": False,
        "stream": True,
        "ignore_eos": True,
    }
    if cfg.chat:
        return "/v1/chat/completions", {
            "messages": chat_messages(prompt),
            "max_tokens": cfg.n_predict,
            "stream_options": {"include_usage": True},
            **common,
        }
    return "/completion", {"prompt": prompt.prompt, "n_predict": cfg.n_predict, **common}


def event_text(event: dict[str, Any]) -> tuple[str, list[int]]:
    """The text and token ids one stream event carries (native or OpenAI chat format)."""
    if "choices" in event:
        choices = event["choices"]
        delta = choices[0].get("delta", {}) if choices else {}
        return delta.get("content") or "", []
    return event.get("content", ""), list(event.get("tokens") or [])


class ServerSession:
    """Measures generations over HTTP. `server` is the process velobench started, if it started
    one: it only names the cause when the connection drops (the client never touches it)."""

    def __init__(
        self,
        base_url: str,
        cfg: RunConfig,
        mode: Mode,
        timeout_s: float | None,
        server: ServerProcess | None = None,
    ):
        self.base_url = base_url
        self.server = server
        self.cfg = cfg
        self.mode = mode
        self.client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(timeout_s, connect=5.0))

    def info(self) -> SessionInfo:
        s = self.server
        return SessionInfo(
            url=self.base_url,
            command=shlex.join(s.argv) if s else None,
            log=str(s.log_path) if s else None,
            ready_s=s.ready_s if s else None,
        )

    def close(self) -> None:
        self.client.close()

    def _get(self, path: str) -> httpx.Response:
        try:
            r = self.client.get(path)
        except httpx.TransportError as exc:
            raise self._died(f"GET {path} failed ({exc})") from exc
        if r.status_code != 200:
            raise VelobenchError(f"llama-server GET {path}: HTTP {r.status_code} {r.text[:200]}")
        return r

    def _died(self, what: str) -> VelobenchError:
        if self.server is None:
            return VelobenchError(f"the server at {self.base_url} stopped answering: {what}")
        rc = self.server.exit_code()
        state = f"exited with code {rc}" if rc is not None else "is still running but"
        return VelobenchError(f"llama-server {state}: {what}; log: {log_tail(self.server.log_path)}")

    def check_speculation(self) -> None:
        """A draft model without `--spec-type` loads but never speculates: confirm via /slots."""
        slots = self._get("/slots").json()
        active = any(bool(s.get("speculative")) for s in slots) if isinstance(slots, list) else False
        if active != (self.mode == "speculative"):
            want = "on" if self.mode == "speculative" else "off"
            command = f"; command: {shlex.join(self.server.argv)}" if self.server else ""
            raise VelobenchError(
                f"llama-server reports speculation {'on' if active else 'off'} but the {self.mode} mode needs it {want} "
                f"(/slots speculative={active}){command}"
            )

    def metrics(self) -> dict[Any, float]:
        return parse_prometheus(self._get("/metrics").text)

    def generate(self, prompt: Prompt, index: int) -> Iteration:
        before = self.metrics()
        endpoint, body = request(self.cfg, prompt)
        token_times: list[float] = []
        pieces: list[str] = []
        tokens: list[int] = []
        final: dict[str, Any] | None = None
        t0 = time.perf_counter()
        try:
            with self.client.stream("POST", endpoint, json=body) as r:
                if r.status_code != 200:
                    raise VelobenchError(
                        f"llama-server POST {endpoint}: HTTP {r.status_code} {r.read()[:200]!r}"
                    )
                for event in sse_events(r.iter_lines()):
                    now = time.perf_counter()
                    if "timings" in event:  # the final event (native: stop=true; chat: the last chunk)
                        final = event
                        if not self.cfg.chat:
                            break
                        continue
                    content, ids = event_text(event)
                    if content or ids:
                        token_times.append(now)
                        pieces.append(content)
                        tokens.extend(ids)
        except httpx.TransportError as exc:
            raise self._died(f"the request failed ({exc})") from exc
        except ValueError as exc:
            raise VelobenchError(f"cannot parse llama-server's stream: {exc}") from exc
        wall = time.perf_counter() - t0
        if final is None:
            raise self._died("the stream ended without its final event")
        after = self.metrics()
        it = self._record(index, final, token_times, t0, wall, "".join(pieces), before, after)
        shown = {k: ("…" if k in ("prompt", "messages") else v) for k, v in body.items()}
        it.command = f"POST {self.base_url}{endpoint} {json.dumps(shown)}"
        it.output_tokens = tokens or None
        return it

    def _record(
        self,
        index: int,
        final: dict[str, Any],
        token_times: list[float],
        t0: float,
        wall: float,
        text: str,
        before: dict[Any, float],
        after: dict[Any, float],
    ) -> Iteration:
        t = final["timings"]
        if t.get("cache_n", 0):
            raise VelobenchError(
                f"llama-server reused {t['cache_n']} cached prompt tokens despite cache_prompt=false"
            )
        n = int(t["predicted_n"])
        if n < 2 or float(t["predicted_ms"]) <= 0:
            raise VelobenchError(
                f"llama-server generated {n} tokens in {t['predicted_ms']} ms: nothing to measure"
            )
        itl = [(b - a) * 1000 for a, b in itertools.pairwise(token_times)]
        ttft = (token_times[0] - t0) * 1000 if token_times else float(t["prompt_ms"])
        e2e = (token_times[-1] - t0) * 1000 if token_times else wall * 1000
        tpot = (
            (token_times[-1] - token_times[0]) * 1000 / (len(token_times) - 1)
            if len(token_times) > 1
            else None
        )
        drafted = delta(after, before, "spec_decode_num_draft_tokens_total")
        accepted = delta(after, before, "spec_decode_num_accepted_tokens_total")
        steps = delta(after, before, "spec_decode_num_drafts_total")
        pos_after = per_position(after, "spec_decode_num_accepted_tokens_per_pos_total")
        pos_before = per_position(before, "spec_decode_num_accepted_tokens_per_pos_total")
        per_pos = [a - (pos_before[i] if i < len(pos_before) else 0.0) for i, a in enumerate(pos_after)]
        spec = self.mode == "speculative"
        n_drafted = n_accept = None
        if spec:  # /metrics deltas; the response's own counts where the server has no --metrics
            n_drafted = int(drafted) if drafted is not None else int(t.get("draft_n", 0))
            n_accept = int(accepted) if accepted is not None else int(t.get("draft_n_accepted", 0))
        return Iteration(
            index=index,
            command="",  # set by generate()
            returncode=0,
            wall_ms=wall * 1000,
            prompt_tokens=int(t["prompt_n"]),
            prompt_ms=float(t["prompt_ms"]),
            ttft_ms=ttft,
            generated_tokens=n,
            decode_ms=float(t["predicted_ms"]),
            tokens_per_second=(n - 1) / float(t["predicted_ms"]) * 1000,
            total_time_ms=float(t["prompt_ms"]) + float(t["predicted_ms"]),
            n_draft=self.cfg.n_draft if spec else None,
            n_drafted=n_drafted,
            n_accept=n_accept,
            acceptance_rate=(n_accept / n_drafted) if n_accept is not None and n_drafted else None,
            e2e_ms=e2e,
            tpot_ms=tpot,
            itl_p50_ms=percentile(itl, 50),
            itl_p90_ms=percentile(itl, 90),
            itl_p99_ms=percentile(itl, 99),
            draft_steps=int(steps) if spec and steps is not None else None,
            mean_acceptance_length=(1 + n_accept / steps)
            if spec and steps and n_accept is not None
            else None,
            accepted_per_position=per_pos if spec and per_pos else None,
            server_timings={k: float(v) for k, v in t.items() if isinstance(v, int | float)},
            output=text,
        )


class LlamaServerEngine:
    """llama.cpp's server: the model loads once per mode; every generation is a streamed request."""

    name = EngineName.SERVER
    default_warmup = 1  # the first request after a load pays one-off costs

    @classmethod
    def can_run(cls, cfg: RunConfig) -> str | None:
        if cfg.method is Method.LOOKUP:
            return "--method lookup needs the command-line tools: use --engine cli (llama-server's equivalent is --method ngram-cache)"
        if cfg.spec_impl is not SpecImpl.SIMPLE:
            return "--spec-impl classic needs the command-line tools: use --engine cli"
        return None

    @classmethod
    def available(cls, cfg: RunConfig) -> bool:
        return find_path("llama-server", llama_cpp_dir(cfg)) is not None

    def __init__(self, cfg: RunConfig, *, log_dir: Path):
        self.cfg = cfg
        self.tool = find_tool("llama-server", llama_cpp_dir(cfg))
        self.log_dir = log_dir
        for mode in ("vanilla", "speculative"):
            server_argv(self.tool, cfg, mode, 0)  # fail now on a missing flag, before any model loads

    def binaries(self) -> list[BinaryInfo]:
        return [binary_info(self.tool)]

    def binary(self, mode: Mode) -> str:
        return self.tool.name

    @contextlib.contextmanager
    def session(self, mode: Mode) -> Iterator[ServerSession]:
        port = self.cfg.port or free_port()
        argv = server_argv(self.tool, self.cfg, mode, port)
        log = self.log_dir / f"llama-server-{mode}.log"
        with ServerProcess(
            argv, port, log, name="llama-server", start_timeout_s=self.cfg.server_timeout
        ) as server:
            session = ServerSession(server.base_url, self.cfg, mode, self.cfg.timeout, server)
            try:
                session.check_speculation()
                yield session
            finally:
                session.close()
