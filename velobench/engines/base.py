"""The engine seam: the small interface the runner owns. One module per engine implements it.

An engine hands out a `Session` per mode (vanilla or speculative); a session may hold
resources (a server process, or only a client of a server velobench did not start) for all
iterations of that mode and releases them on exit, however the block ends. An engine class
also says, before anything runs, whether it can run a configuration (`can_run`) and whether
its programs are installed (`available`); `engines.make` uses both.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from velobench.proc import ServerProcess
from velobench.prompts import Prompt
from velobench.results.config import EngineName, RunConfig
from velobench.results.schema import BinaryInfo, Iteration, Mode, SessionInfo

__all__ = ["Engine", "EngineClass", "EngineName", "ServerHandle", "ServesHttp", "Session", "SessionInfo"]


@dataclass
class ServerHandle:
    """A server one mode runs on: where it listens, how to ask it, and the process if it is ours."""

    base_url: str
    name: str  # "llama-server", "vllm", "server": for error lines
    endpoint: Literal["completions", "chat", "native"]
    model: str | None = None  # the served model name (OpenAI endpoints)
    extra_body: dict[str, Any] = field(default_factory=dict)
    api_key: str | None = field(default=None, repr=False)  # never printed, never saved
    process: ServerProcess | None = None
    version: str | None = None
    facts: dict[str, str] = field(default_factory=dict)  # e.g. which GGUF a vLLM model was converted from


class Session(Protocol):
    def generate(self, prompt: Prompt, index: int) -> Iteration:
        """Run one generation of `prompt` and return what was measured."""
        ...

    def info(self) -> SessionInfo | None:
        """What this mode ran on (a server's command, log, ready time), for its ModeResult."""
        ...

    def telemetry_root(self) -> tuple[int | None, bool]:
        """The process tree telemetry reads: (pid, children_only); (None, False) for none of ours."""
        ...


class Engine(Protocol):
    name: ClassVar[EngineName]
    default_warmup: ClassVar[int]  # unrecorded generations per mode unless --warmup says otherwise

    def binaries(self) -> list[BinaryInfo]:
        """The native programs this engine will run (located and probed up front)."""
        ...

    def binary(self, mode: Mode) -> str:
        """The program that runs `mode` (shown in tables and stored in results)."""
        ...

    def session(self, mode: Mode) -> AbstractContextManager[Session]:
        """Resources for all iterations of one mode; released on exit."""
        ...

    def command_lines(self, prompt: Prompt) -> dict[str, str]:
        """What each mode would launch (`--dry-run`): a command line, or the request it would send."""
        ...


@runtime_checkable
class ServesHttp(Protocol):
    """Server engines also hand out the server itself (load and think drive it directly)."""

    def serve(
        self, mode: Mode, *, slots: int = 1, cache_prompt: bool = False, env: Mapping[str, str] | None = None
    ) -> AbstractContextManager[ServerHandle]:
        """A server for `mode` with `slots` requests served in parallel; stopped on exit. Prompt
        (prefix) caching stays off unless `cache_prompt` (`velobench think` resends its text);
        `env` adds variables to this server's environment alone (never velobench's own)."""
        ...


class EngineClass(Protocol):
    """What `engines.make` needs of an engine module's class, before any instance exists."""

    name: ClassVar[EngineName]
    default_warmup: ClassVar[int]
    uses_gguf: ClassVar[bool]  # models are GGUF files (checked up front); else names/folders it resolves

    @classmethod
    def can_run(cls, cfg: RunConfig) -> str | None:
        """None if this engine can run `cfg`, else the one-line reason it cannot."""
        ...

    @classmethod
    def available(cls, cfg: RunConfig) -> bool:
        """Whether its programs are installed (checked only when choosing for --engine auto)."""
        ...

    def __call__(self, cfg: RunConfig, *, log_dir: Path) -> Engine:
        """Locate and probe the programs, check every flag; nothing is started yet."""
        ...
