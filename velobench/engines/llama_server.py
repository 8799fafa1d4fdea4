"""Engine: one persistent `llama-server` per mode; every generation is a streamed HTTP request.

    session(mode):  llama-server -m M [-md D --spec-type draft-simple --spec-draft-n-max N ...]
                    -c CTX -np 1 --metrics --no-cache-prompt --host 127.0.0.1 --port P
                    → /health ready → /slots confirms `speculative` matches the mode
    generate():     GET /metrics → POST /completion (stream, cache_prompt false) → GET /metrics

What is measured and how is `engines.http_session` (shared with vLLM and remote servers):
tokens/s is the server's (predicted_n − 1) / predicted_ms, the definition the cli engine uses;
acceptance comes from the `/metrics` deltas of each request.
"""

from __future__ import annotations

import contextlib
import secrets
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from velobench.bins.locate import Tool, find_path, find_tool
from velobench.engines.base import OwnsFlags, ServerHandle
from velobench.engines.http_client import Endpoint, HttpClient
from velobench.engines.http_session import HttpSession, open_session
from velobench.engines.llama_args import (
    LLAMA_OWNED_FLAGS,
    binary_info,
    extra_args,
    gpu_layers_value,
    llama_cpp_can_run,
    llama_cpp_dir,
    speculative_args,
)
from velobench.errors import VelobenchError
from velobench.proc import HOST, ServerProcess, child_env, mode_port
from velobench.prompts import Prompt
from velobench.results.config import EngineName, Method, RunConfig, SpecImpl, prepared_modes
from velobench.results.schema import BinaryInfo, Mode

# What velobench sets on every llama-server it starts; `LlamaServerEngine.check_options` refuses them in -x.
OWNED_FLAGS: dict[str, str] = {
    **LLAMA_OWNED_FLAGS,
    "--host": "velobench binds servers to 127.0.0.1 only",
    "--port": "use --port",
    **dict.fromkeys(("-np", "--parallel"), "velobench serves one request at a time (one slot per server)"),
    "--metrics": "velobench turns /metrics on itself (acceptance is read there)",
    **dict.fromkeys(
        ("--cache-prompt", "--no-cache-prompt"),
        "velobench turns prompt caching off (every request is measured whole)",
    ),
    **dict.fromkeys(("--api-key", "--api-key-file"), "velobench gives llama-server a random API key per run"),
}


def server_argv(
    tool: Tool, cfg: RunConfig, mode: Mode, port: int, *, slots: int = 1, cache_prompt: bool = False
) -> list[str]:
    """llama-server's argv. `slots` parallel slots share `-c`, so it gets --ctx-size per slot.
    Prompt caching is off unless `cache_prompt` (`velobench think` resends the growing text)."""
    if cfg.method is Method.LOOKUP:
        raise VelobenchError(
            "--method lookup runs llama-lookup (--engine cli); llama-server's equivalent is --method ngram-cache"
        )
    argv = [
        str(tool.path),
        "-m",
        cfg.main_model,
        "-c",
        str(cfg.ctx_size * slots),
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    argv += ["-np", str(slots)]  # one slot: single-stream latency, no batching with other requests
    if tool.supports("--metrics"):
        argv.append("--metrics")
    if not cache_prompt and tool.supports("--no-cache-prompt"):
        argv.append("--no-cache-prompt")
    if cfg.threads is not None:
        argv += ["-t", str(cfg.threads)]
    if cfg.gpu_layers is not None:
        argv += ["-ngl", gpu_layers_value(tool, cfg.gpu_layers)]
    if mode == "speculative":
        argv += speculative_args(tool, cfg, uses_spec_type=True)
    return [*argv, *extra_args(tool, cfg)]


def endpoint(cfg: RunConfig) -> tuple[Endpoint, dict[str, Any]]:
    """`/completion` with the raw prompt (token ids and the server's timings in the stream), or with
    `--chat` the OpenAI chat endpoint, which applies the model's chat template; prompt caching off."""
    if cfg.chat:
        return "chat", {"cache_prompt": False, "timings_per_token": True}
    return "native", {"cache_prompt": False}


def check_speculation(client: HttpClient, mode: Mode, command: str) -> None:
    """A draft model without `--spec-type` loads but never speculates: confirm via /slots."""
    slots = client.get_json("/slots")
    active = any(bool(s.get("speculative")) for s in slots) if isinstance(slots, list) else False
    if active != (mode == "speculative"):
        want = "on" if mode == "speculative" else "off"
        raise VelobenchError(
            f"llama-server reports speculation {'on' if active else 'off'} but the {mode} mode needs it {want} "
            f"(/slots speculative={active}); command: {command}"
        )


DEFAULT_START_TIMEOUT_S = 300.0


def unusable(tool: Tool) -> str | None:
    """Why this llama-server cannot be measured the way velobench measures, or None.

    Builds without --no-cache-prompt (llama.cpp of 2025, e.g. 8733e0c) draft only while a
    request caches its prompt (`can_speculate()` needs `cache_prompt`) and answer /slots only
    with --slots: with caching off, as velobench measures, their "speculative" server never drafts.
    """
    if tool.supports("--no-cache-prompt"):
        return None
    return (
        f"llama-server ({tool.version}) at {tool.path} drafts only with prompt caching on (it has no "
        "--no-cache-prompt), and velobench measures with caching off: use --engine cli with this build"
    )


class LlamaServerEngine(OwnsFlags):
    """llama.cpp's server: the model loads once per mode; every generation is a streamed request."""

    OWNED = OWNED_FLAGS

    name = EngineName.SERVER
    default_warmup = 1  # the first request after a load pays one-off costs
    uses_gguf = True

    @classmethod
    def can_run(cls, cfg: RunConfig) -> str | None:
        if reason := llama_cpp_can_run(cfg):
            return reason
        if cfg.method is Method.LOOKUP:
            return "--method lookup needs the command-line tools: use --engine cli (llama-server's equivalent is --method ngram-cache)"
        if cfg.spec_impl is not SpecImpl.SIMPLE:
            return "--spec-impl classic needs the command-line tools: use --engine cli"
        return None

    @classmethod
    def available(cls, cfg: RunConfig) -> bool:
        """Installed, and a build this engine can measure (auto falls back to cli for older ones)."""
        if find_path("llama-server", llama_cpp_dir(cfg)) is None:
            return False
        return unusable(find_tool("llama-server", llama_cpp_dir(cfg))) is None

    def __init__(self, cfg: RunConfig, *, log_dir: Path):
        self.cfg = cfg
        self.tool = find_tool("llama-server", llama_cpp_dir(cfg))
        reason = unusable(self.tool)
        if reason:
            raise VelobenchError(reason)
        self.log_dir = log_dir
        for mode in prepared_modes(cfg):
            server_argv(self.tool, cfg, mode, 0)  # fail now on a missing flag, before any model loads

    def use_models(self, cfg: RunConfig) -> None:
        self.cfg = cfg  # the same configuration, its models resolved to files (`RunsFiles`)

    def command_lines(self, prompt: Prompt) -> dict[str, str]:
        """What `--dry-run` prints: each mode's llama-server command line (the port is chosen at start)."""
        port = self.cfg.port
        return {
            mode: shlex.join(server_argv(self.tool, self.cfg, mode, mode_port(port, mode) if port else 0))
            for mode in prepared_modes(self.cfg)
        }

    def binaries(self) -> list[BinaryInfo]:
        return [binary_info(self.tool)]

    def binary(self, mode: Mode) -> str:
        return self.tool.name

    @contextlib.contextmanager
    def serve(
        self, mode: Mode, *, slots: int = 1, cache_prompt: bool = False, env: Mapping[str, str] | None = None
    ) -> Iterator[ServerHandle]:
        """llama-server for `mode` on 127.0.0.1 with `slots` parallel slots of --ctx-size each, and a
        random API key for this run, passed in the environment (never on the command line); `env`:
        more variables for this server's environment alone."""
        port = mode_port(self.cfg.port, mode)
        argv = server_argv(self.tool, self.cfg, mode, port, slots=slots, cache_prompt=cache_prompt)
        log = self.log_dir / f"llama-server-{mode}.log"
        key = secrets.token_urlsafe(24)
        kind, extra = endpoint(self.cfg)
        with ServerProcess(
            argv,
            port,
            log,
            name="llama-server",
            start_timeout_s=self.cfg.server_timeout or DEFAULT_START_TIMEOUT_S,
            env=child_env({**(env or {}), "LLAMA_API_KEY": key}),
        ) as server:
            yield ServerHandle(
                base_url=server.base_url,
                name="llama-server",
                endpoint=kind,
                extra_body=extra,
                api_key=key,
                process=server,
                version=str(self.tool.version),
            )

    def side_by_side(self) -> str | None:
        return None  # two llama-servers on two ports (an idle one costs no CPU, only memory)

    @contextlib.contextmanager
    def session(self, mode: Mode) -> Iterator[HttpSession]:
        with self.serve(mode) as handle, open_session(handle, self.cfg, mode) as session:
            check_speculation(session.client, mode, handle.process.command if handle.process else "")
            yield session
