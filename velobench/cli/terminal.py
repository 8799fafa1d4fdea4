"""The two consoles every command prints to: results on stdout, progress and errors on stderr."""

from __future__ import annotations

from rich.console import Console

out = Console(highlight=False, soft_wrap=True)  # commands and paths stay whole and greppable
err = Console(stderr=True, highlight=False, soft_wrap=True)
