"""Small file-system helpers shared by caches and markers: unique temp names, atomic replace.

A fixed temp name (`x.tmp`) races between two velobench processes writing the same file (two
runs probing the same binary, two pulls of one model): one renames the other's half-written
file into place. `write_text_atomic` writes through a uniquely named temp file in the same
folder (`tempfile.mkstemp`), flushes and fsyncs it, renames it over the target, and fsyncs the
folder, so a reader sees the old content or the new, never a mix, and nobody else's.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_text_atomic(path: Path, text: str, *, mode: int = 0o644, encoding: str = "utf-8") -> None:
    """Replace `path` with `text` atomically (unique temp file, fsync, rename, fsync the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding=encoding) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (best effort: some file systems refuse a folder fsync)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    with contextlib.suppress(OSError):
        os.fsync(fd)
    os.close(fd)
