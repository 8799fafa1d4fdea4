"""`velobench report` (re-render a saved result of any kind) and `velobench compare` (two runs)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from velobench.cli.terminal import err, out
from velobench.errors import VelobenchError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from velobench.results.load import LoadReport, Records
    from velobench.results.store import AnyResult as Result


def report_cmd(
    path: Annotated[Path, typer.Argument(help="a result JSON, or a matrix run folder")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-F",
            help="console, md, csv, json, html; the seed tools' shapes: velollm, gsm8k, vllm-study (a folder), "
            "spec-thinking (think results); toml: an advise result's schedule file",
        ),
    ] = "console",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="write to this file (a folder for vllm-study) instead of stdout"),
    ] = None,
) -> None:
    """Re-render a saved run (or a whole matrix) without running anything."""
    from velobench import export
    from velobench.runner import preflight as validate

    kind, results = _load(path)
    formats = export.format_names(kind)
    if fmt != "console" and fmt not in formats:
        raise VelobenchError(f"unknown format {fmt!r}: choose console, {', '.join(formats)}")
    if fmt == "console":
        if output is not None:
            choices = f"{', '.join(formats[:-1])} or {formats[-1]}" if len(formats) > 1 else formats[0]
            raise VelobenchError(f"--output needs a file format: --format {choices}")
        _console(kind, results)
        return
    if export.is_folder_format(fmt):
        if output is None:
            raise VelobenchError(f"--format {fmt} writes a folder: give it with --output DIR")
        validate.check_output(output, "folder")  # before rendering: a file, /proc, read-only
    elif output is not None:
        validate.check_output_file(output)  # before rendering: a folder, /proc, read-only
    if output is None:
        text = export.render(results, fmt)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    written = export.write(results, fmt, output)
    out.print(
        f"wrote {output}"
        if len(written) == 1 and written[0] == output
        else f"wrote {output}/: " + ", ".join(p.name for p in written)
    )


def _load(path: Path) -> tuple[str, Sequence[Result]]:
    """The kind (one of `export.KINDS`) and the results a path holds; a matrix run
    folder gives its measured cells (baselines are inside them)."""
    from velobench.results import store

    if path.is_dir():
        from velobench.results.matrix import cell_reports, load_summary

        return "matrix", [rep for rec, rep in cell_reports(load_summary(path)) if not rec.cell.baseline]
    single = store.load_result(path)
    kind = getattr(single, "kind", "run")
    return kind if isinstance(kind, str) else "run", [single]


def _console(kind: str, results: Sequence[Result]) -> None:
    """Results of one kind on the terminal, each with a note when the run did not complete."""
    from velobench.results.advise import AdviseReport
    from velobench.results.load import LoadReport
    from velobench.results.lossless import LosslessReport
    from velobench.results.think import ThinkReport

    for rep in results:
        if isinstance(rep, LosslessReport):
            from velobench.lossless.render import print_lossless

            print_lossless(out, rep)
            continue
        if isinstance(rep, ThinkReport):
            from velobench.think.console import render_console

            sys.stdout.write(render_console(rep))
            continue
        if isinstance(rep, AdviseReport):
            from velobench.advise.render import print_advice

            print_advice(out, rep)
        elif isinstance(rep, LoadReport):
            from velobench.load.render import print_load_config, print_load_report

            print_load_config(out, rep)
            print_load_report(out, rep)
        else:
            from velobench.report.console import print_config, print_report

            print_config(out, rep)
            print_report(out, rep)
        if rep.status != "complete":
            out.print(
                f"[yellow]note[/yellow]: this run is {rep.status}" + (f": {rep.error}" if rep.error else "")
            )


def compare_cmd(
    a: Annotated[Path, typer.Argument(help="result A (the reference), e.g. a matrix cell's JSON")],
    b: Annotated[Path, typer.Argument(help="result B")],
    fail_if_slower: Annotated[
        float | None, typer.Option(help="exit 1 if B is significantly slower than A by more than PCT percent")
    ] = None,
) -> None:
    """Two runs side by side: differences and ratios with uncertainty, Welch p-values, verdicts."""
    from velobench.analysis.compare import compare_reports, regression
    from velobench.report.compare import regression_text, render_comparison
    from velobench.results import store as results
    from velobench.results.load import LoadReport
    from velobench.results.schema import Report

    ra, rb = results.load_result(a), results.load_result(b)
    if isinstance(ra, LoadReport) or isinstance(rb, LoadReport):
        from velobench.load import compare as load_compare

        if not (isinstance(ra, LoadReport) and isinstance(rb, LoadReport)):
            raise VelobenchError(
                "compare a load result with a load result, and a run result with a run result"
            )
        comp = load_compare.compare_load(
            ra, rb, _records_beside(a, ra), _records_beside(b, rb), names=(str(a), str(b))
        )
        check = load_compare.regression
        from velobench.load.render import wide_console

        wide_console(out).print(render_comparison(comp))
    else:
        if not (isinstance(ra, Report) and isinstance(rb, Report)):
            kinds = sorted({r.kind for r in (ra, rb) if not isinstance(r, Report)})
            raise VelobenchError(f"compare takes run or load results, not `velobench {kinds[0]}` results")
        comp = compare_reports(ra, rb)
        check = regression
        out.print(render_comparison(comp))
    if fail_if_slower is not None:
        found = check(comp, fail_if_slower)
        if found is not None:
            err.print(f"velobench: regression: {regression_text(found)}")
            raise typer.Exit(1)


def _records_beside(path: Path, rep: LoadReport) -> Records | None:
    """The raw records beside a load result (None where its JSONL is missing)."""
    from velobench.results.load import read_records, records_path

    where = records_path(path, rep)
    return read_records(where) if where.is_file() else None
