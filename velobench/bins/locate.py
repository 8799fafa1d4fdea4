"""Finding llama.cpp's tools and learning what each build supports.

Search order (see bins/README.md): `--llama-cpp-path` (and nothing else when it is given: one
build per run, never a gap filled from another folder), `$VELOBENCH_LLAMA_CPP`, velobench's own
builds in the cache, `PATH`. For every tool found, `--version` and `--help` are read once and
cached by (path, size, mtime), so velobench can build argv lists for both current and
2024-2025 llama.cpp builds without ever passing a flag the binary does not know.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from velobench import proc
from velobench.bins.versions import BinaryVersion, parse_help_flags, parse_version
from velobench.errors import VelobenchError
from velobench.fsutil import write_text_atomic
from velobench.paths import cache_dir

TOOLS = (
    "llama-completion",
    "llama-speculative-simple",
    "llama-speculative",
    "llama-lookup",
    "llama-server",
    "llama-bench",
    "llama-batched-bench",
)
ENV_VAR = "VELOBENCH_LLAMA_CPP"
HOW_TO_GET = "run `velobench bins build`, or pass --llama-cpp-path DIR (or set VELOBENCH_LLAMA_CPP)"


@dataclass(frozen=True)
class Tool:
    """A located llama.cpp binary and what it told us about itself."""

    name: str
    path: Path
    source: str  # "--llama-cpp-path", "VELOBENCH_LLAMA_CPP", "velobench build", "PATH"
    version: BinaryVersion
    flags: frozenset[str]

    def supports(self, *flags: str) -> bool:
        return any(f in self.flags for f in flags)

    def first_flag(self, *flags: str) -> str | None:
        """The first of `flags` (newest name first) this build knows, or None."""
        return next((f for f in flags if f in self.flags), None)


def expand_dir(path: Path) -> list[Path]:
    """`DIR`, `DIR/bin` and `DIR/build/bin`: the places a llama.cpp tree keeps its binaries."""
    return [path, path / "bin", path / "build" / "bin"]


def builds_root() -> Path:
    return cache_dir() / "llama.cpp"


def cached_build_dirs() -> list[Path]:
    """Finished velobench builds (those with build-info.json), newest first."""
    root = builds_root()
    if not root.is_dir():
        return []
    done = [d for d in root.iterdir() if (d / "build-info.json").is_file()]
    done.sort(key=lambda d: (d / "build-info.json").stat().st_mtime, reverse=True)
    return [d / "build" / "bin" for d in done]


def build_commit(bin_dir: Path) -> str | None:
    """The llama.cpp commit a velobench build was made from (its sdist carries no git metadata)."""
    try:
        return json.loads((bin_dir.parent.parent / "build-info.json").read_text()).get("commit")
    except (OSError, ValueError):
        return None


def search_dirs(llama_cpp_path: Path | None) -> list[tuple[str, Path]]:
    """Where to look, in order, each with the label shown to users.

    `--llama-cpp-path DIR` is the only place looked in when given: a tool DIR lacks is missing,
    never taken from another build.
    """
    dirs: list[tuple[str, Path]] = []
    if llama_cpp_path is not None:
        path = llama_cpp_path.expanduser()
        if not path.is_dir():
            raise VelobenchError(f"--llama-cpp-path {llama_cpp_path}: not a directory")
        return [("--llama-cpp-path", d) for d in expand_dir(path)]
    env = os.environ.get(ENV_VAR)
    if env:
        dirs += [(ENV_VAR, d) for d in expand_dir(Path(env).expanduser())]
    dirs += [("velobench build", d) for d in cached_build_dirs()]
    return dirs


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_path(name: str, llama_cpp_path: Path | None = None) -> tuple[Path, str] | None:
    """The first `name` in the search order, with where it was found; None if nowhere."""
    for label, d in search_dirs(llama_cpp_path):
        if _executable(d / name):
            return d / name, label
    if llama_cpp_path is not None:
        return None
    on_path = shutil.which(name)
    return (Path(on_path), "PATH") if on_path else None


def _probe_cache_file(path: Path) -> Path:
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return cache_dir() / "tools" / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".json")


def probe(path: Path) -> tuple[BinaryVersion, frozenset[str]]:
    """Version and supported flags of a binary, from `--version` and `--help` (cached)."""
    cache_file = _probe_cache_file(path)
    if cache_file.is_file():
        try:
            data = json.loads(cache_file.read_text())
            return BinaryVersion(**data["version"]), frozenset(data["flags"])
        except (ValueError, KeyError, TypeError):
            pass  # a damaged cache entry is simply re-probed
    ver = proc.run([str(path), "--version"], timeout_s=60)
    try:
        version = parse_version(ver.stderr + ver.stdout)
    except ValueError:
        version = BinaryVersion(None, None, None)
    hlp = proc.run([str(path), "--help"], timeout_s=60)
    try:
        flags = parse_help_flags(hlp.stdout + "\n" + hlp.stderr)
    except ValueError as exc:
        raise VelobenchError(f"{path}: cannot read its --help ({exc})") from exc
    write_text_atomic(cache_file, json.dumps({"version": version.__dict__, "flags": sorted(flags)}))
    return version, flags


def find_tool(name: str, llama_cpp_path: Path | None = None) -> Tool:
    """Locate and probe one tool, or raise a one-line error saying how to get it."""
    found = find_path(name, llama_cpp_path)
    if found is None:
        if llama_cpp_path is not None:
            raise VelobenchError(
                f"{name} not found in --llama-cpp-path {llama_cpp_path} (nor its bin/, build/bin/): every tool"
                " of a run comes from that one build"
            )
        raise VelobenchError(f"{name} not found; {HOW_TO_GET}")
    return tool_at(name, *found)


def find_beside(name: str, other: Tool) -> Tool | None:
    """`name` from the very folder `other` came from (the same build), or None if that build lacks it."""
    path = other.path.parent / name
    return tool_at(name, path, other.source) if _executable(path) else None


def tool_at(name: str, path: Path, source: str) -> Tool:
    """Probe the tool at `path` (found in `source`)."""
    version, flags = probe(path)
    if version.commit is None:  # a velobench build: its build-info.json knows the commit
        version = BinaryVersion(version.version, version.build, build_commit(path.parent))
    return Tool(name=name, path=path, source=source, version=version, flags=flags)
