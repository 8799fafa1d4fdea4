"""Engines: how a generation is run and measured. One module per engine.

The runner owns this small interface. An engine hands out a `Session` per mode (vanilla or
speculative); a session may hold resources (a server process) for all iterations of that
mode and releases them on exit, however the block ends.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from velobench.prompts import Prompt
from velobench.results import BinaryInfo, Iteration, Mode


class Session(Protocol):
    def generate(self, prompt: Prompt, index: int) -> Iteration:
        """Run one generation of `prompt` and return what was measured."""
        ...

    def describe(self) -> dict[str, Any]:
        """Facts about this mode's resources for its ModeResult (e.g. a server's log file)."""
        ...


class Engine(Protocol):
    name: str

    def binaries(self) -> list[BinaryInfo]:
        """The native programs this engine will run (located and probed up front)."""
        ...

    def binary(self, mode: Mode) -> str:
        """The program that runs `mode` (shown in tables and stored in results)."""
        ...

    def session(self, mode: Mode) -> AbstractContextManager[Session]:
        """Resources for all iterations of one mode; released on exit."""
        ...
