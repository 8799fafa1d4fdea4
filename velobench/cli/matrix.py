"""`velobench matrix`: model pairs × methods × draft settings from a TOML file, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from velobench.cli import options as o
from velobench.cli.terminal import out
from velobench.errors import VelobenchError
from velobench.results.config import EngineName


def matrix(
    config: Annotated[Path, typer.Argument(help="matrix TOML file (see examples/matrix-smoke.toml)")],
    resume: Annotated[
        Path | None, typer.Option(help="continue this run folder, skipping finished cells")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="run folder (default: results/<run-id>)")
    ] = None,
    iterations: Annotated[
        int | None, typer.Option("--iterations", "-i", help="override [run] iterations")
    ] = None,
    n_predict: Annotated[
        int | None, typer.Option("--n-predict", "-n", help="override [run] n_predict")
    ] = None,
    threads: Annotated[int | None, typer.Option("--threads", "-t", help="override [run] threads")] = None,
    engine: Annotated[EngineName | None, typer.Option(help="override [run] engine")] = None,
    llama_cpp_path: o.LlamaCppPath = None,
    fail_fast: Annotated[
        bool, typer.Option("--fail-fast", help="stop at the first failed cell (default: record it and go on)")
    ] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="with --resume: run the failed cells again")
    ] = False,
    cluster: Annotated[
        str | None,
        typer.Option(
            metavar="ADDRESS",
            help="run the cells on a Ray cluster: ray://HEAD:10001, HEAD:6379, or auto (RAY_ADDRESS, "
            "else the local cluster); needs pip install 'velobench[ray]'",
        ),
    ] = None,
    cluster_retries: Annotated[
        int,
        typer.Option(min=0, help="with --cluster: times a cell lost with its worker or node runs again"),
    ] = 2,
) -> None:
    """Sweep model pairs × methods × draft settings; every finished cell is kept (resume with --resume)."""
    from pydantic import ValidationError

    from velobench.results.config import option_values
    from velobench.runner.matrix import load_config, run_matrix, status_line
    from velobench.validation import one_line

    cfg = load_config(config)
    overrides = option_values(locals(), type(cfg.run).model_fields)  # the options given, over [run]
    if overrides:
        try:
            run = type(cfg.run).model_validate({**cfg.run.model_dump(exclude_none=True), **overrides})
        except ValidationError as exc:
            raise VelobenchError(one_line(exc, option_style=True)) from exc
        cfg = cfg.model_copy(update={"run": run})
    if resume is not None and output is not None and resume != output:
        raise VelobenchError("give either --resume RUN_DIR or --output RUN_DIR, not two different folders")
    if retry_failed and resume is None:
        raise VelobenchError("--retry-failed goes with --resume RUN_DIR")
    run_dir = resume or output or o.default_output(f"matrix-{config.stem}", suffix="")
    executor = None
    if cluster is not None:
        from velobench.runner.executor_ray import RayExecutor  # Ray is imported here only

        executor = RayExecutor(cluster, out, retries=cluster_retries)
    elif cluster_retries != 2:
        raise VelobenchError("--cluster-retries goes with --cluster ADDRESS")
    summary = run_matrix(
        cfg,
        run_dir,
        out,
        resume=resume is not None,
        fail_fast=fail_fast,
        retry_failed=retry_failed,
        executor=executor,
    )
    out.rule("matrix finished")
    for n, rec in enumerate(summary.records, 1):
        out.print(status_line(rec, n, summary.cells_total), markup=False)
    failed = sum(1 for r in summary.records if r.status == "failed")
    out.print(f"Run folder: {run_dir} (summary.json, cells.jsonl, cells/)")
    if failed:
        out.print(
            f"{failed} cell(s) failed (errors in summary.json); `--resume {run_dir} --retry-failed` runs them again"
        )
