"""Child-process supervision, in one place.

Every native binary velobench starts goes through `supervised()`: argv lists only (no shell),
stdin closed (llama.cpp blocks reading stdin in conversation mode), a sanitised environment,
its own process group, and terminate → wait → kill of the whole group when anything goes
wrong, including Ctrl-C. No child outlives velobench.

Servers are children too: `ServerProcess` starts one through `supervised()` on 127.0.0.1,
logging to a file kept with the results, polls GET /health every 100 ms until 200 (503 =
loading) while the process lives and within a deadline, and stops it on every exit.

Why one module over 400 lines: supervision is one concern (start, readiness, deadlines, process
groups, the watchdog, reaping, the one description of a dead server); split, its pieces would
have to know each other's internals.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
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
    if proc.poll() is None:
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, grace_s)):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                with suppress(ProcessLookupError):
                    proc.send_signal(sig)
            try:
                proc.wait(timeout=wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
    stop_group(proc.pid, grace_s)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_group(pgid: int, grace_s: float = TERMINATE_GRACE_S) -> None:
    """What is left of a child's process group once the child itself is gone (a server's
    workers, e.g. vLLM's engine core and resource tracker): SIGTERM, then SIGKILL after `grace_s`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _group_alive(pgid):
            return
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(0.05)


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
    except OSError as exc:
        if exc.errno == errno.E2BIG:
            size = sum(len(a.encode()) + 1 for a in argv)
            raise VelobenchError(
                f"cannot start {Path(argv[0]).name}: its command line ({size:,} bytes) is over the system's "
                "argument limit; pass long prompts by file"
            ) from exc
        raise VelobenchError(f"cannot start {argv[0]}: {exc.strerror or exc}") from exc
    try:
        yield proc
    finally:
        stop_process(proc)


# The watchdog: reads the group to guard (one line), waits for EOF on stdin (the pipe's write
# end lives only in velobench, so EOF means velobench is gone, however it died), then
# SIGTERM → grace → SIGKILL to that group, unless it is gone already.
_WATCHDOG = """
import os, signal, sys, time
grace, line = float(sys.argv[1]), sys.stdin.buffer.readline()
while sys.stdin.buffer.read(1):
    pass
for sig in (signal.SIGTERM, signal.SIGKILL) if line.strip() else ():
    try:
        os.killpg(int(line), sig)
    except OSError:
        break
    end = time.monotonic() + grace
    while time.monotonic() < end:
        try:
            os.killpg(int(line), 0)
        except OSError:
            sys.exit(0)
        time.sleep(0.1)
"""


@contextmanager
def group_watchdog(grace_s: float = 10.0) -> Iterator[Callable[[int], None]]:
    """A small process that stops a process group when velobench dies, even by SIGKILL.

    PR_SET_PDEATHSIG reaches only the direct child; a server's own workers (vLLM's engine core)
    are its children, and a server slow over its SIGTERM leaves them behind. Enter this before
    starting the child and call the function it yields with the child's pid (= its group). The
    watchdog holds the read end of a pipe whose write end only velobench holds: EOF means
    velobench is gone. Leaving the block (after the child was stopped) closes the pipe and the
    watchdog exits at once, finding the group gone.
    """
    read_end, write_end = os.pipe()
    try:
        dog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(grace_s)],
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            start_new_session=True,  # not in velobench's group: a Ctrl-C must not reach it
        )
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)

    def watch(pgid: int) -> None:
        os.write(write_end, f"{pgid}\n".encode())

    try:
        yield watch
    finally:
        os.close(write_end)
        with suppress(subprocess.TimeoutExpired):
            dog.wait(timeout=grace_s * 2 + 5)


class DeadlinePassed(VelobenchError):
    """A child ran past its deadline; it has been killed (its whole process group) and reaped."""


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


def _short(text: str, limit: int = 400) -> str:
    """A command line cut to fit one error line (a long prompt would make it pages long)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
            stop_process(proc)  # killed now, before the error is reported (supervised() would too)
            raise DeadlinePassed(
                f"{Path(argv[0]).name} did not finish within {timeout_s:g} s and was killed: {_short(shlex.join(argv))}"
            ) from exc
    wall = time.perf_counter() - start
    return Completed(
        argv=list(argv),
        returncode=proc.returncode,
        stdout=out.decode("utf-8", errors="replace"),
        stderr=err.decode("utf-8", errors="replace"),
        wall_s=wall,
    )


# ---------------------------------------------------------------- servers

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A port nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def mode_port(port: int | None, mode: str) -> int:
    """The port a mode's server listens on: with --port P the vanilla server takes P and the
    speculative one P + 1 (P − 1 for 65535), so both can run side by side; else a free port."""
    if port is None:
        return free_port()
    if mode != "speculative":
        return port
    return port + 1 if port < 65535 else port - 1


def port_in_use(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def log_tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    tail = [ln.strip() for ln in text.splitlines() if ln.strip()][-lines:]
    return " | ".join(tail) if tail else "(empty log)"


def server_exited(name: str, code: int | None, log_path: Path, during: str | None = None) -> str:
    """How every dead server is told, in one line:

        NAME exited with code CODE[ DURING]: LAST LOG LINES (log: LOG PATH)

    `name` names the server as the reader knows it ("llama-server", "the large model's vllm"),
    `during` what it was doing ("while starting", "during the vanilla run at concurrency 2").
    """
    when = f" {during}" if during else ""
    return f"{name} exited with code {code}{when}: {log_tail(log_path)} (log: {log_path})"


class ServerProcess:
    """A server child process bound to 127.0.0.1:`port`, logging to `log_path`."""

    def __init__(
        self,
        argv: list[str],
        port: int,
        log_path: Path,
        *,
        name: str = "server",
        health_path: str = "/health",
        start_timeout_s: float = 300.0,
        env: Mapping[str, str] | None = None,
    ):
        self.argv = argv
        self.port = port
        self.log_path = log_path
        self.name = name
        self.health_path = health_path
        self.start_timeout_s = start_timeout_s
        self.base_url = f"http://{HOST}:{port}"
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._stack: ExitStack | None = None
        self.ready_s: float | None = None

    def __enter__(self) -> ServerProcess:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        if port_in_use(self.port):
            raise VelobenchError(f"port {self.port} on {HOST} is already in use; choose another with --port")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb", buffering=0)  # unbuffered: nothing left to flush at close
        with suppress(OSError):  # a full disk: the server runs without its log; the result's save says so
            self._log.write(f"# {shlex.join(self.argv)}\n".encode())
        started = time.monotonic()
        self._stack = ExitStack()
        # entered before the child, so left after it: `supervised` stops the group on every exit
        # Python sees; the watchdog covers the one it does not (velobench killed by SIGKILL)
        watch = self._stack.enter_context(group_watchdog())
        self.process = self._stack.enter_context(
            supervised(self.argv, stdout=self._log, stderr=subprocess.STDOUT, env=self.env)
        )
        watch(self.process.pid)
        self.wait_ready(started)

    def wait_ready(self, started: float) -> None:
        assert self.process is not None
        deadline = started + self.start_timeout_s
        import httpx  # only servers need it; keeps `velobench --help` fast

        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while True:
                rc = self.process.poll()
                if rc is not None:
                    raise VelobenchError(server_exited(self.name, rc, self.log_path, "while starting"))
                try:
                    if client.get(self.health_path).status_code == 200:
                        self.ready_s = time.monotonic() - started
                        return
                except httpx.TransportError:
                    pass  # not listening yet
                if time.monotonic() > deadline:
                    raise VelobenchError(
                        f"{self.name} was not ready within {self.start_timeout_s:.0f} s: {log_tail(self.log_path)}"
                    )
                time.sleep(0.1)

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_code(self, wait_s: float = 2.0) -> int | None:
        """The exit code if the server has died (waiting up to `wait_s` for it), else None.

        A dropped connection is seen before the dying process can be reaped, so wait a little.
        """
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return None

    def died(
        self, during: str | None = None, *, name: str | None = None, wait_s: float = 2.0
    ) -> VelobenchError | None:
        """The one-line error (`server_exited`) if the server has exited (waiting up to `wait_s`
        for it to be reaped), else None; `name` replaces the process's own name in the line."""
        rc = self.exit_code(wait_s)
        if rc is None:
            return None
        return VelobenchError(server_exited(name or self.name, rc, self.log_path, during))

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()  # supervised(): terminate → wait → kill the group, reaped
            self._stack = None
        if self._log is not None:
            self._log.close()
            self._log = None
