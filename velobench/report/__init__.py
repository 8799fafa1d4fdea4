"""Reports: every renderer is a pure function of saved results (none imports the runner).

`render(reports, fmt)` picks the format; a single result renders with `FORMATS`, a matrix
run (several results) with `FORMATS_MANY`. Load and think results render
in their own wings (`load.render`, `think.render`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from velobench.errors import VelobenchError
from velobench.results.schema import Report


def _formats() -> tuple[dict[str, Callable[[Report], str]], dict[str, Callable[[Sequence[Report]], str]]]:
    from velobench.report import csv, html, json, markdown

    one: dict[str, Callable[[Report], str]] = {
        "md": markdown.render,
        "csv": csv.render,
        "json": json.render,
        "html": html.render,
    }
    many: dict[str, Callable[[Sequence[Report]], str]] = {
        "md": markdown.render_many,
        "csv": csv.render_many,
        "json": json.render_many,
        "html": html.render_many,
    }
    return one, many


FORMAT_NAMES = ("md", "csv", "json", "html")


def render(reports: Sequence[Report], fmt: str) -> str:
    """One report in `fmt`, or several (a matrix) with the format's many-report renderer.

    Kept only while cli.py calls it: `velobench.export` is the dispatch (the branch
    wt-export-drop-old-dispatch removes this once the CLI calls export).
    """
    if fmt not in FORMAT_NAMES:
        raise VelobenchError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMAT_NAMES)}")
    if not reports:
        raise VelobenchError("no results to export")
    one, many = _formats()
    return one[fmt](reports[0]) if len(reports) == 1 else many[fmt](reports)
