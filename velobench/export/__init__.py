"""The one exporter seam: any saved result (run, matrix, load, think) in any file format.

`render(results, fmt)` turns saved results into text; `format_names(kind)` lists what a kind
can be written as. Each result kind keeps its renderers where it lives (`report` for run and
matrix results, `load.render`, `think.render`); this module only dispatches, so the CLI has one
call for every kind instead of a branch per kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from velobench.errors import VelobenchError

if TYPE_CHECKING:
    from velobench.results.load import LoadReport
    from velobench.results.schema import Report
    from velobench.results.think import ThinkReport

    Result = Report | LoadReport | ThinkReport

FILE_FORMATS = ("md", "csv", "json", "html")


def format_names(kind: str) -> tuple[str, ...]:
    """The file formats a result of `kind` ("run", "matrix", "load", "think") can be written as."""
    return FILE_FORMATS


def render(results: Sequence[Result], fmt: str) -> str:
    """One result (or a matrix run's cell results) in file format `fmt`."""
    from velobench.results.load import LoadReport
    from velobench.results.think import ThinkReport

    if not results:
        raise VelobenchError("no results to export")
    first = results[0]
    kind = "think" if isinstance(first, ThinkReport) else "load" if isinstance(first, LoadReport) else "run"
    if fmt not in format_names(kind):
        raise VelobenchError(f"unknown export format {fmt!r}: choose one of {', '.join(format_names(kind))}")
    if isinstance(first, ThinkReport):
        from velobench.think.render import render as render_think

        return render_think(first, fmt)
    if isinstance(first, LoadReport):
        from velobench.load.render import render as render_load

        return render_load(first, fmt)
    from velobench import report

    return report.render(list(results), fmt)  # type: ignore[arg-type]
