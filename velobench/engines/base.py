"""The engine seam: the small interface the runner owns. One module per engine implements it.

An engine hands out a `Session` per mode (vanilla or speculative); a session may hold
resources (a server process, or only a client of a server velobench did not start) for all
iterations of that mode and releases them on exit, however the block ends. Both modes'
sessions may be open at once (the interleaved schedule) unless `side_by_side` says why not. An engine class
also says, before anything runs, whether it can run a configuration (`can_run`), which -x
flags it sets itself (`owned_flags`) and whether a configuration's options are its to take
(`check_options`: pure, no lookup), and whether its programs are installed (`available`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from velobench.errors import VelobenchError
from velobench.proc import ServerProcess
from velobench.prompts import Prompt
from velobench.results.config import EngineName, RunConfig
from velobench.results.schema import BinaryInfo, Iteration, Mode, SessionInfo

__all__ = [
    "Engine",
    "EngineClass",
    "EngineName",
    "RunsFiles",
    "SeededSession",
    "ServerHandle",
    "ServesHttp",
    "Session",
    "SessionInfo",
    "refuse_owned",
]


def refuse_owned(
    extra: Sequence[str], owned: Mapping[str, str], hints: Mapping[str, str] | None = None
) -> None:
    """The first of `extra` (`--flag` or `--flag=value`) in `owned` is one line with its reason.

    `hints`: a command's own reasons for some of those flags (`velobench load` sets `-np`); a hint
    for a flag the engine does not own refuses nothing.
    """
    for arg in extra:
        flag = arg.split("=", 1)[0]
        if flag in owned:
            raise VelobenchError(f"-x {flag}: {(hints or {}).get(flag, owned[flag])}")


class OwnsFlags:
    """The -x flags an engine sets itself, refused in -x with the velobench option to use instead.

    An engine lists them in `OWNED` (flag → reason); one that starts nothing owns none.
    """

    OWNED: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def owned_flags(cls, cfg: RunConfig) -> Mapping[str, str]:
        return cls.OWNED

    @classmethod
    def check_options(cls, cfg: RunConfig, hints: Mapping[str, str] | None = None) -> None:
        refuse_owned(cfg.extra_args, cls.owned_flags(cfg), hints)


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

    def side_by_side(self) -> str | None:
        """None if both modes' sessions can be open at once (the interleaved schedule), else the
        one-line reason they cannot (the run then falls back to blocked and says why)."""
        ...

    def command_lines(self, prompt: Prompt) -> dict[str, str]:
        """What each mode would launch (`--dry-run`): a command line, or the request it would send."""
        ...


@runtime_checkable
class SeededSession(Protocol):
    """Sessions that generate with a given seed and sampling settings, unmeasured (`velobench lossless`)."""

    def sample(
        self, prompt: Prompt, seed: int, *, top_p: float, top_k: int, temperature: float | None = None
    ) -> tuple[list[int] | None, str]:
        """One generation at `temperature` (default: the config's) and -n: its token ids (None
        where the engine gives none) and its text."""
        ...


@runtime_checkable
class RunsFiles(Protocol):
    """Engines whose models are GGUF files (`uses_gguf`): made before catalog names and hf:// specs
    are fetched (a missing program or flag is named before a download), then given the files."""

    def use_models(self, cfg: RunConfig) -> None:
        """Run `cfg` from now on: the configuration it was made with, its models resolved to files."""
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
    def owned_flags(cls, cfg: RunConfig) -> Mapping[str, str]:
        """The -x flags it sets itself on what it starts (flag → the velobench option to use instead)."""
        ...

    @classmethod
    def check_options(cls, cfg: RunConfig, hints: Mapping[str, str] | None = None) -> None:
        """Raise VelobenchError (one line) for an option of `cfg` it cannot take: an -x flag it owns,
        with `hints`' reason where the command gives one. Pure: nothing is looked up."""
        ...

    @classmethod
    def available(cls, cfg: RunConfig) -> bool:
        """Whether its programs are installed (checked only when choosing for --engine auto)."""
        ...

    def __call__(self, cfg: RunConfig, *, log_dir: Path) -> Engine:
        """Locate and probe the programs, check every flag; nothing is started yet."""
        ...
