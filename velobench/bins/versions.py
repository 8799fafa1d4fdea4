"""What a llama.cpp binary says of itself: `--version` and the flags its `--help` lists (pure parsers).

Parsers raise `ValueError` quoting the tail of the text they could not read (`snippet`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION_NEW = re.compile(
    r"^version: (?P<version>\S+) \(build (?P<build>\d+), commit (?P<commit>\S+)\)$",
    re.M,
)


_VERSION_OLD = re.compile(r"^version: (?P<build>\d+) \((?P<commit>[0-9a-f]+)\)$", re.M)


@dataclass(frozen=True)
class BinaryVersion:
    """What `TOOL --version` says (it prints to stderr)."""

    version: str | None
    build: int | None
    commit: str | None

    def __str__(self) -> str:
        if self.version:
            return f"{self.version} (build {self.build}, commit {self.commit})"
        if self.build is not None:
            return f"build {self.build} (commit {self.commit})"
        return "unknown"


def parse_version(text: str) -> BinaryVersion:
    """Read `version: 0.5.0-dev (build 1, commit 0c1e570)` or the older `version: 4567 (abcdef12)`."""
    m = _VERSION_NEW.search(text)
    if m:
        commit = m.group("commit")  # "unknown" when built outside a git checkout (e.g. from an sdist)
        return BinaryVersion(
            m.group("version"), int(m.group("build")), None if commit == "unknown" else commit
        )
    m = _VERSION_OLD.search(text)
    if m:
        return BinaryVersion(None, int(m.group("build")), m.group("commit"))
    raise ValueError(f"no version line in {snippet(text)}")


_HELP_FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def parse_help_flags(text: str) -> frozenset[str]:
    """The set of option names a binary's `--help` lists (e.g. `-md`, `--spec-draft-n-max`).

    Only the option column is read: for each line that starts (after indentation) with `-`,
    the comma-separated names before the first run of two spaces. Options whose description
    says "the argument has been removed" (current builds still list `--draft-max` that way)
    are left out: passing them is an error.
    """
    flags: set[str] = set()
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("-"):
            continue
        head, description = (*re.split(r"(?<![,\s])(?:\s{2,}|\t)", stripped, maxsplit=1), "")[:2]
        if "has been removed" in description:
            continue
        for part in head.split(","):
            m = _HELP_FLAG.match(part.strip())
            if m:
                flags.add(m.group(1))
    if not flags:
        raise ValueError(f"no options found in --help output {snippet(text)}")
    return frozenset(flags)


def snippet(text: str, limit: int = 300) -> str:
    """The last `limit` characters of a tool's output, quoted, for a parser's error message."""
    tail = text.strip()[-limit:]
    return repr(tail) if tail else "(empty output)"
