"""`velobench run` (one benchmark, vanilla vs speculative) and `velobench demo` (the whole job)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from velobench.cli import options as o
from velobench.cli.terminal import out
from velobench.errors import VelobenchError
from velobench.results.config import EngineName, Method, Schedule, SpecImpl, Telemetry


def run(
    main_model: o.MainModel = "",
    draft_model: o.DraftModel = None,
    method: o.MethodOpt = Method.DRAFT,
    spec_impl: Annotated[
        SpecImpl,
        typer.Option(
            help="draft-model program: simple = llama-speculative-simple, classic = llama-speculative"
        ),
    ] = SpecImpl.SIMPLE,
    n_draft: o.NDraft = 8,
    draft_p_min: o.DraftPMin = 0.0,
    n_predict: o.NPredict = 100,
    prompt: Annotated[
        str, typer.Option("--prompt", "-p", help="the prompt text")
    ] = "Explain quantum computing in simple terms",
    prompt_file: Annotated[
        Path | None, typer.Option("--prompt-file", "-f", help="read the prompt from a file")
    ] = None,
    iterations: Annotated[int, typer.Option("--iterations", "-i", help="measured runs per mode")] = 5,
    target_ci: o.TargetCi = None,
    max_iterations: o.MaxIterations = 100,
    max_time: o.MaxTime = None,
    redo_disturbed: o.RedoDisturbed = 0,
    schedule: o.ScheduleOpt = Schedule.INTERLEAVED,
    warmup: Annotated[
        int | None, typer.Option(help="unrecorded runs per mode before measuring [default: 1 server, 0 cli]")
    ] = None,
    threads: o.Threads = None,
    ctx_size: Annotated[int, typer.Option("--ctx-size", "-c", help="context size (tokens)")] = 2048,
    temp: o.Temp = 0.0,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 42,
    gpu_layers: o.GpuLayers = None,
    gpu_layers_draft: o.GpuLayersDraft = None,
    skip_vanilla: o.SkipVanilla = False,
    skip_speculative: o.SkipSpeculative = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="result JSON (default: results/velobench-<time>.json)"),
    ] = None,
    llama_cpp_path: o.LlamaCppPath = None,
    engine_args: o.EngineArgs = "",
    timeout: Annotated[float | None, typer.Option(help="seconds one generation may take")] = None,
    prompts: o.Prompts = None,
    num_prompts: o.NumPrompts = None,
    prompt_seed: o.PromptSeed = 0,
    category: o.Category = None,
    chat: o.Chat = False,
    engine: o.Engine = EngineName.AUTO,
    port: o.Port = None,
    server_timeout: o.ServerTimeout = None,
    ceiling: Annotated[
        bool, typer.Option(help="measure verify/draft costs with llama-bench and report the speedup ceiling")
    ] = True,
    llama_bench_reference: Annotated[
        bool,
        typer.Option(
            "--llama-bench-reference",
            help="after each vanilla iteration run llama-bench's decode test at its length and depth, and "
            "report velobench's vanilla tokens/s against it, paired",
        ),
    ] = False,
    server_url: o.ServerUrl = None,
    baseline_url: o.BaselineUrl = None,
    served_model: o.ServedModel = None,
    api_key: o.ApiKey = None,
    vllm_bin: o.VllmBin = None,
    max_model_len: o.MaxModelLen = None,
    gpu_memory_utilization: o.GpuMemoryUtilization = None,
    tensor_parallel_size: o.TensorParallelSize = None,
    devices: o.Devices = None,
    dtype: o.Dtype = None,
    draft_tp: Annotated[int | None, typer.Option(help="vLLM: tensor parallelism of the draft model")] = None,
    ngram_min: Annotated[
        int | None, typer.Option(help="vLLM --method ngram: shortest n-gram matched")
    ] = None,
    ngram_max: Annotated[int | None, typer.Option(help="vLLM --method ngram: longest n-gram matched")] = None,
    telemetry: o.TelemetryOpt = Telemetry.AUTO,
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
    output = output or o.default_output("velobench")
    # every check runs once, in runner.run.prepare, before any lookup, download, build or child
    if dry_run:
        from velobench.runner.run import dry_run as show_commands

        for line in show_commands(cfg, output):
            out.print(line, markup=False)
        return
    with validate.leave_nothing_behind(output, logs=log_dir(output)):
        execute(cfg, output, out)


def demo(
    pair: Annotated[str, typer.Option(help="catalog pair (see `velobench models list`)")] = "qwen-coder",
    per_category: Annotated[int, typer.Option(help="built-in prompts per category")] = 1,
    target_ci: Annotated[
        float,
        typer.Option(
            "--target-ci",
            help="add passes until the paired speedup's 95% interval is within ±PCT% of it (a sequential "
            "interval that keeps its coverage; at most --max-rounds passes or --max-time); 0: exactly "
            "--rounds passes",
        ),
    ] = 5.0,
    max_time: Annotated[
        float, typer.Option("--max-time", help="--target-ci: stop adding passes after this many seconds")
    ] = 600.0,
    max_rounds: Annotated[
        int, typer.Option("--max-rounds", help="--target-ci: passes per mode at most")
    ] = 20,
    rounds: Annotated[int, typer.Option(help="passes over the prompts per mode with --target-ci 0")] = 1,
    redo_disturbed: o.RedoDisturbed = 20,
    n_predict: o.NPredict = 64,
    n_draft: o.NDraft = 4,
    threads: o.Threads = None,
    schedule: o.ScheduleOpt = Schedule.INTERLEAVED,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="result JSON (default: results/demo-<time>.json)")
    ] = None,
    llama_cpp_path: o.LlamaCppPath = None,
) -> None:
    """The whole job on a fresh machine: build llama.cpp, pull a model pair, benchmark, report."""
    from velobench.analysis import stopping
    from velobench.bins import locate as binaries
    from velobench.cli.bins import bins_build
    from velobench.models.catalog import load_catalog, pull
    from velobench.prompts import builtin_categories
    from velobench.results import config
    from velobench.runner import preflight as validate
    from velobench.runner.run import execute, log_dir

    catalog = load_catalog()
    if pair not in catalog.pairs:
        raise VelobenchError(f"unknown pair {pair!r}; known: {', '.join(catalog.pairs)}")
    target, draft = catalog.pairs[pair].target, catalog.pairs[pair].draft
    if per_category < 1 or rounds < 1 or max_rounds < 1:
        raise VelobenchError("--per-category, --rounds and --max-rounds must be at least 1")
    if not 0 <= target_ci < 100 or max_time <= 0:
        raise VelobenchError("--target-ci must be in [0, 100) and --max-time above 0")
    cats = builtin_categories()
    n_prompts = per_category * len(cats)
    sequential = target_ci > 0
    # the stopping rule's first look needs MIN_PAIRS pairs: never fewer passes than that takes
    most = max(max_rounds, -(-stopping.MIN_PAIRS // n_prompts))
    cfg = config.from_options(
        {
            **locals(),
            "main_model": target,
            "draft_model": draft,
            "iterations": n_prompts * rounds,
            "prompts": "builtin",
            "num_prompts": n_prompts,
            "target_ci": target_ci if sequential else None,
            "max_time": max_time if sequential else None,
            "max_iterations": n_prompts * most,
        }
    )
    output = output or o.default_output("demo")
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
    passes = (
        f"passes until the speedup is known to ±{target_ci:g}% (at most {most} passes or {max_time:g} s)"
        if sequential
        else f"{rounds} pass(es) per mode"
    )
    out.print(
        f"[bold][3/3][/bold] benchmark: {n_prompts} built-in prompts ({', '.join(cats)}), "
        f"{passes}, {n_predict} tokens, n_draft {n_draft}"
    )
    with validate.leave_nothing_behind(output, logs=log_dir(output)):
        execute(cfg, output, out)
    timings["benchmark"] = time.monotonic() - t
    out.print("Time: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
