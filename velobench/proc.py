"""Child-process supervision, in one place.

Every native binary velobench starts goes through `supervised()`: argv lists only (no shell),
stdin closed (llama.cpp blocks reading stdin in conversation mode), a sanitised environment,
its own process group, and terminate → wait → kill of the whole group when anything goes
wrong, including Ctrl-C. No child outlives velobench.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from velobench.errors import VelobenchError

TERMINATE_GRACE_S = 5.0


def llama_env_overrides() -> list[str]:
    """The `LLAMA_ARG_*` variables set in our environment (which `child_env` drops)."""
    return sorted(k for k in os.environ if k.startswith("LLAMA_ARG_"))


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for llama.cpp children: ours minus every `LLAMA_ARG_*` variable.

    llama.cpp reads `LLAMA_ARG_*` as defaults for its flags; a stale `LLAMA_ARG_DRAFT_MAX`
    even makes current builds exit (the flag was removed). A benchmark's configuration must
    come from its command line alone, so they are dropped.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMA_ARG_")}
    if extra:
        env.update(extra)
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGTERM this child when velobench dies, even by SIGKILL (PR_SET_PDEATHSIG).

    Context managers reap children on every exit Python sees; this covers the one it cannot.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the context managers still reap on every exit Python sees


PREEXEC = _die_with_parent if sys.platform.startswith("linux") else None


def stop_process(
    proc: subprocess.Popen[bytes] | subprocess.Popen[str], grace_s: float = TERMINATE_GRACE_S
) -> None:
    """Terminate → wait → kill a child and its process group, then reap it."""
    if proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, grace_s)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            with suppress(ProcessLookupError):
                proc.send_signal(sig)
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def supervised(
    argv: Sequence[str],
    *,
    stdout: int | IO[bytes] = subprocess.PIPE,
    stderr: int | IO[bytes] = subprocess.PIPE,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `argv` and guarantee it is stopped and reaped when the block exits, however it exits."""
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=dict(env) if env is not None else child_env(),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=PREEXEC,
        )
    except FileNotFoundError as exc:
        raise VelobenchError(f"cannot start {argv[0]}: file not found") from exc
    except PermissionError as exc:
        raise VelobenchError(f"cannot start {argv[0]}: not executable") from exc
    try:
        yield proc
    finally:
        stop_process(proc)


@dataclass(frozen=True)
class Completed:
    """A finished child: its command line, exit code, output and wall time."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    wall_s: float

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    def stderr_tail(self, lines: int = 5) -> str:
        """The last non-empty lines of stderr, joined with ' | ' to fit one error line."""
        tail = [ln.strip() for ln in self.stderr.splitlines() if ln.strip()][-lines:]
        return " | ".join(tail) if tail else "(no stderr)"


def run(
    argv: Sequence[str], *, timeout_s: float | None = None, env: Mapping[str, str] | None = None
) -> Completed:
    """Run a child to completion and capture its output (decoded as UTF-8, errors replaced).

    Ctrl-C (KeyboardInterrupt) stops the child before the exception propagates.
    """
    start = time.perf_counter()
    with supervised(argv, env=env) as proc:
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise VelobenchError(
                f"{Path(argv[0]).name} did not finish within {timeout_s:.0f} s: {shlex.join(argv)}"
            ) from exc
    wall = time.perf_counter() - start
    return Completed(
        argv=list(argv),
        returncode=proc.returncode,
        stdout=out.decode("utf-8", errors="replace"),
        stderr=err.decode("utf-8", errors="replace"),
        wall_s=wall,
    )
