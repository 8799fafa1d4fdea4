"""The one exporter seam: any saved result (run, matrix, load, think, lossless, advise) in any file
or folder format.

`render(results, fmt)` turns saved results into text; `write(results, fmt, output)` writes them
to a file, or to a folder for the formats that are one (`is_folder_format`); `format_names(kind)`
lists what a kind can be written as. Each result kind keeps its renderers where it lives
(`report` for run and matrix results, `load.render`, `think.render`); the shapes of the tools
velobench replaces are one module each here (`velollm`, `gsm8k`, `spec_thinking`,
`vllm_study`). `EXPORTS` below is the only dispatch: (kind, format) → exporter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from velobench.errors import VelobenchError

if TYPE_CHECKING:
    from velobench.results.store import AnyResult as Result

KINDS = ("run", "matrix", "load", "think", "lossless", "advise")


@dataclass(frozen=True)
class Exporter:
    """How one kind is written in one format: `text` for a file, `files` (name → text) for a folder."""

    text: Callable[[Sequence[Any]], str] | None = None
    files: Callable[[Sequence[Any]], dict[str, str]] | None = None


def _one(fn: Callable[[Any], Any]) -> Callable[[Sequence[Any]], Any]:
    """A renderer of one result, called with the one result of a sequence."""
    return lambda results: fn(results[0])


@cache
def exports() -> dict[tuple[str, str], Exporter]:
    """(kind, format) → exporter. Imported on first use: `velobench --help` needs none of them."""
    from velobench.advise import render as advise
    from velobench.export import gsm8k, spec_thinking, velollm, vllm_study
    from velobench.load import render as load
    from velobench.lossless import render as lossless
    from velobench.report import csv, html, json, markdown
    from velobench.think import render as think

    return {
        ("run", "md"): Exporter(_one(markdown.render)),
        ("run", "csv"): Exporter(_one(csv.render)),
        ("run", "json"): Exporter(_one(json.render)),
        ("run", "html"): Exporter(_one(html.render)),
        ("run", "velollm"): Exporter(_one(velollm.render)),
        ("run", "gsm8k"): Exporter(_one(gsm8k.render)),
        ("run", "vllm-study"): Exporter(files=_one(vllm_study.render)),
        ("matrix", "md"): Exporter(markdown.render_many),
        ("matrix", "csv"): Exporter(csv.render_many),
        ("matrix", "json"): Exporter(json.render_many),
        ("matrix", "html"): Exporter(html.render_many),
        ("load", "md"): Exporter(_one(load.render_md)),
        ("load", "csv"): Exporter(_one(load.render_csv)),
        ("load", "json"): Exporter(_one(json.render)),
        ("load", "html"): Exporter(_one(load.render_html)),
        ("think", "md"): Exporter(_one(think.render_md)),
        ("think", "csv"): Exporter(_one(think.render_csv)),
        ("think", "json"): Exporter(_one(json.render)),
        ("think", "html"): Exporter(_one(think.render_html)),
        ("think", "spec-thinking"): Exporter(_one(spec_thinking.render)),
        ("lossless", "md"): Exporter(_one(lossless.render_md)),
        ("lossless", "json"): Exporter(_one(json.render)),
        ("lossless", "html"): Exporter(_one(lossless.render_html)),
        ("advise", "md"): Exporter(_one(advise.render_md)),
        ("advise", "json"): Exporter(_one(json.render)),
        ("advise", "html"): Exporter(_one(advise.render_html)),
        ("advise", "toml"): Exporter(_one(advise.schedule_toml)),
    }


def format_names(kind: str) -> tuple[str, ...]:
    """The formats a result of `kind` (one of `KINDS`) can be written as."""
    if kind not in KINDS:
        raise VelobenchError(f"unknown result kind {kind!r}: one of {', '.join(KINDS)}")
    return tuple(fmt for k, fmt in exports() if k == kind)


def is_folder_format(fmt: str) -> bool:
    """Does `fmt` write a folder of files (vllm-study) rather than one file?"""
    return any(f == fmt and e.files is not None for (_, f), e in exports().items())


def kind_of(results: Sequence[Result]) -> str:
    """ "think", "load", "lossless", "advise", "run" (one run result) or "matrix" (several)."""
    from velobench.results.advise import AdviseReport
    from velobench.results.load import LoadReport
    from velobench.results.lossless import LosslessReport
    from velobench.results.think import ThinkReport

    if not results:
        raise VelobenchError("no results to export")
    first = results[0]
    if isinstance(first, ThinkReport):
        return "think"
    if isinstance(first, LoadReport):
        return "load"
    if isinstance(first, LosslessReport):
        return "lossless"
    if isinstance(first, AdviseReport):
        return "advise"
    return "run" if len(results) == 1 else "matrix"


def exporter(results: Sequence[Result], fmt: str) -> Exporter:
    kind = kind_of(results)
    found = exports().get((kind, fmt))
    if found is None:
        names = ", ".join(format_names(kind))
        raise VelobenchError(f"unknown export format {fmt!r} for a {kind} result: choose one of {names}")
    return found


def render(results: Sequence[Result], fmt: str) -> str:
    """One result (or a matrix run's cell results) in file format `fmt`."""
    e = exporter(results, fmt)
    if e.text is None:
        raise VelobenchError(f"format {fmt!r} writes a folder, not text: give it an output folder")
    return e.text(results)


def files(results: Sequence[Result], fmt: str) -> dict[str, str]:
    """What `write` writes: {file name: text}, one entry for a file format."""
    e = exporter(results, fmt)
    return e.files(results) if e.files is not None else {"": render(results, fmt)}


def write(results: Sequence[Result], fmt: str, output: Path) -> list[Path]:
    """Write `results` in `fmt` to the file `output`, or into the folder `output` (created) for a
    folder format; each file atomically. Returns the paths written."""
    from velobench.fsutil import write_text_atomic

    out = files(results, fmt)
    folder = is_folder_format(fmt)
    if folder and output.exists() and not output.is_dir():
        raise VelobenchError(f"{output} is a file: format {fmt!r} writes a folder")
    if not folder and output.is_dir():
        raise VelobenchError(f"{output} is a folder: format {fmt!r} writes a file")
    paths = [output / name if folder else output for name in out]
    try:
        for path, text in zip(paths, out.values(), strict=True):
            write_text_atomic(path, text)
    except OSError as exc:
        raise VelobenchError(f"cannot write {output}: {exc.strerror or exc}") from exc
    return paths
