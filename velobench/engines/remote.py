"""Engine: servers velobench did not start (vLLM, llama-server, SGLang, any OpenAI-compatible one).

    speculative  --server-url URL      (the server with speculation configured)
    vanilla      --baseline-url URL    (the same model without it; or --skip-vanilla)

The same client and measurements as the engines that start their own servers
(`engines.http_session`): streamed `/v1/completions` (or `/v1/chat/completions` with --chat),
TTFT/ITL/TPOT from the client clock, tokens from `usage`, acceptance from `/metrics` deltas
where the server exposes them (else null, with a warning that says why). The served model name
comes from `/v1/models` unless --served-model names it. `--api-key` (or OPENAI_API_KEY) is
sent as a bearer token and written nowhere. This is how a deployment that outgrew one machine
(tensor/pipeline parallelism across GPUs and hosts) is measured: through its endpoint.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from velobench.engines.base import OwnsFlags, ServerHandle
from velobench.engines.http_client import HttpClient, RequestFailed, display_url
from velobench.engines.http_session import HttpSession, open_session
from velobench.errors import VelobenchError
from velobench.prompts import Prompt
from velobench.results.config import EngineName, RunConfig
from velobench.results.schema import BinaryInfo, Mode


class RemoteEngine(OwnsFlags):
    """Measures servers that are already running; starts and stops nothing."""

    # it starts nothing: -x flags are for programs velobench starts, so it owns none

    name = EngineName.REMOTE
    default_warmup = 1
    uses_gguf = False

    @classmethod
    def can_run(cls, cfg: RunConfig) -> str | None:
        if not cfg.server_url and not cfg.baseline_url:
            return "--engine remote needs --server-url URL (and --baseline-url URL or --skip-vanilla)"
        if not cfg.skip_speculative and not cfg.server_url:
            return "--baseline-url alone measures vanilla only: add --server-url URL or --skip-speculative"
        if not cfg.skip_vanilla and not cfg.baseline_url:
            return "--server-url is the speculative server: give --baseline-url URL for vanilla, or --skip-vanilla"
        return None

    @classmethod
    def available(cls, cfg: RunConfig) -> bool:
        return True  # nothing to install: the server is there or the first request says it is not

    def __init__(self, cfg: RunConfig, *, log_dir: Path):
        self.cfg = cfg
        self.api_key = cfg.api_key.get_secret_value() if cfg.api_key else None
        self.models: dict[Mode, str] = {}
        for mode in self.modes():  # fail now on an unreachable URL, a refused key or no model
            self.models[mode] = self._served_model(self.url(mode))

    def modes(self) -> list[Mode]:
        out: list[Mode] = []
        if not self.cfg.skip_vanilla:
            out.append("vanilla")
        if not self.cfg.skip_speculative:
            out.append("speculative")
        return out

    def url(self, mode: Mode) -> str:
        url = self.cfg.baseline_url if mode == "vanilla" else self.cfg.server_url
        assert url is not None  # can_run checked
        return url

    def _served_model(self, url: str) -> str:
        with HttpClient(url, api_key=self.api_key, connect_timeout_s=5.0, read_timeout_s=30.0) as client:
            try:
                served = client.models()
            except RequestFailed as exc:
                raise VelobenchError(f"cannot reach the server at {display_url(url)}: {exc}") from exc
        if self.cfg.served_model:
            if served and self.cfg.served_model not in served:
                raise VelobenchError(
                    f"{display_url(url)} serves {', '.join(served)}, not --served-model {self.cfg.served_model}"
                )
            return self.cfg.served_model
        if len(served) != 1:
            listed = ", ".join(served) or "none"
            raise VelobenchError(f"{display_url(url)} serves {listed}: name one with --served-model")
        return served[0]

    def command_lines(self, prompt: Prompt) -> dict[str, str]:
        """What `--dry-run` prints: the request each mode sends (velobench starts no process here)."""
        path = "/v1/chat/completions" if self.cfg.chat else "/v1/completions"
        return {m: f"POST {display_url(self.url(m))}{path} (model {self.models[m]})" for m in self.modes()}

    def binaries(self) -> list[BinaryInfo]:
        return [
            BinaryInfo(
                name=f"server ({mode})",
                path=display_url(self.url(mode)),
                source="--server-url" if mode == "speculative" else "--baseline-url",
                version=self.models[mode],
                commit=None,
            )
            for mode in self.modes()
        ]

    def binary(self, mode: Mode) -> str:
        return f"{self.models[mode]} @ {display_url(self.url(mode))}"

    @contextlib.contextmanager
    def serve(self, mode: Mode, *, slots: int = 1, cache_prompt: bool = False) -> Iterator[ServerHandle]:
        extra: dict[str, Any] = {}
        yield ServerHandle(
            base_url=self.url(mode),
            name="server",
            endpoint="chat" if self.cfg.chat else "completions",
            model=self.models[mode],
            extra_body=extra,
            api_key=self.api_key,
        )

    def side_by_side(self) -> str | None:
        return None  # two URLs already up: requests alternate between them

    @contextlib.contextmanager
    def session(self, mode: Mode) -> Iterator[HttpSession]:
        with self.serve(mode) as handle, open_session(handle, self.cfg, mode) as session:
            _, why = session.client.metrics_status()
            if why is not None and mode == "speculative":
                session.notes.append(f"no acceptance: {display_url(handle.base_url)}/metrics {why}")
            yield session
