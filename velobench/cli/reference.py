"""The CLI reference, docs/cli.md, generated from the Typer app: `python -m velobench.cli.reference > docs/cli.md`.

Every command's and subcommand's `--help`, in the order `velobench --help` lists them, at a fixed
width so the text does not depend on the terminal; a test regenerates it and fails on a difference.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer
from typer.core import TyperGroup

WIDTH = 100
REGENERATE = "PYTHONPATH=. python -m velobench.cli.reference > docs/cli.md"


def _helps(cmd: Any, name: str, parent: Any) -> Iterator[tuple[str, str]]:
    """(`velobench sub ...`, its --help text) for `cmd` and, depth first, every command under it.

    `cmd` is a command of Typer's own click (typer vendors it), hence `Any`."""
    ctx = cmd.context_class(cmd, info_name=name, parent=parent, terminal_width=WIDTH, max_content_width=WIDTH)
    yield ctx.command_path, ctx.get_help()
    if isinstance(cmd, TyperGroup):
        for sub in cmd.list_commands(ctx):
            found = cmd.get_command(ctx, sub)
            if found is not None and not found.hidden:
                yield from _helps(found, sub, ctx)


def reference() -> str:
    """docs/cli.md: a heading and the --help text of every command."""
    from velobench.cli import app

    parts = [
        "# velobench command-line reference\n",
        f"Generated from the code by `{REGENERATE}`; do not edit by hand.\n",
    ]
    for path, text in _helps(typer.main.get_command(app), "velobench", None):
        parts.append(f"## {path}\n\n```text\n{text.rstrip()}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(reference(), end="")
