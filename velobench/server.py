"""Running an inference server as a child: start, wait until ready, stop. One place for all.

    ServerProcess(argv, port, log) as server:   # port checked free, log file kept with results
        start → poll GET /health every 100 ms until 200 (503 = loading), while the process lives
        ... requests ...
    exit (normal, error, Ctrl-C/SIGTERM) → terminate → wait → kill the process group, reaped

Used by the llama-server engine and meant for vLLM's server too.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

from velobench import proc
from velobench.errors import VelobenchError

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A port nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


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
    ):
        self.argv = argv
        self.port = port
        self.log_path = log_path
        self.name = name
        self.health_path = health_path
        self.start_timeout_s = start_timeout_s
        self.base_url = f"http://{HOST}:{port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
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
        self._log = self.log_path.open("wb")
        self._log.write(f"# {' '.join(self.argv)}\n".encode())
        self._log.flush()
        started = time.monotonic()
        try:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=proc.child_env(),
                start_new_session=True,
                preexec_fn=proc.PREEXEC,  # dies with velobench, even on SIGKILL
            )
        except OSError as exc:
            raise VelobenchError(f"cannot start {self.argv[0]}: {exc.strerror}") from exc
        self.wait_ready(started)

    def wait_ready(self, started: float) -> None:
        assert self.process is not None
        deadline = started + self.start_timeout_s
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while True:
                rc = self.process.poll()
                if rc is not None:
                    raise VelobenchError(
                        f"{self.name} exited with code {rc} while starting: {log_tail(self.log_path)} (log: {self.log_path})"
                    )
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

    def stop(self) -> None:
        if self.process is not None:
            proc.stop_process(self.process)
        if self._log is not None:
            self._log.close()
            self._log = None
