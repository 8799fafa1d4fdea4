"""Shared pydantic plumbing: the strict base model and a validation error as one readable line."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class Strict(BaseModel):
    """A model that rejects unknown keys (a typo in a file is an error, never silently ignored)."""

    model_config = ConfigDict(extra="forbid")


def first_error(exc: ValidationError) -> tuple[tuple[Any, ...], str]:
    """The location and message of the first error, in words a user reads."""
    first = exc.errors()[0]
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    return tuple(first["loc"]), msg


def one_line(exc: ValidationError, *, option_style: bool = False) -> str:
    """`where: message` for the first error (`(and N more)` when there are more).

    `option_style` writes the location as a command-line option (`n_draft` → `n-draft`).
    """
    loc, msg = first_error(exc)
    where = ".".join(str(p) for p in loc)
    if option_style:
        where = where.replace("_", "-")
    n = len(exc.errors())
    more = f" (and {n - 1} more)" if n > 1 and not option_style else ""
    return f"{where}: {msg}{more}" if where else f"{msg}{more}"
