"""Where velobench keeps things outside the repository."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache root: `$VELOBENCH_CACHE`, else `$XDG_CACHE_HOME/velobench`, else `~/.cache/velobench`.

    Builds of llama.cpp, downloaded models and data sets, and parsed `--help` texts live here,
    so a second run on the same machine never rebuilds or re-downloads.
    """
    env = os.environ.get("VELOBENCH_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "velobench"


def data_dir() -> Path:
    """Files packaged inside an installed velobench (the wheel's force-include: `velobench/_data`)."""
    return Path(__file__).resolve().parent / "_data"


def repo_root() -> Path:
    """The source checkout (for `bins/`, `models/`, `prompts/` when run from a clone)."""
    return Path(__file__).resolve().parent.parent
