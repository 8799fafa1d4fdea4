"""`velobench load`: vanilla vs speculative servers under the same concurrent load."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from velobench.cli import options as o
from velobench.cli.terminal import out
from velobench.results.config import EngineName, Method, Schedule


def load(
    main_model: o.MainModel = "",
    draft_model: o.DraftModel = None,
    method: o.MethodOpt = Method.DRAFT,
    n_draft: o.NDraft = 8,
    draft_p_min: o.DraftPMin = 0.0,
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
    prompts: o.Prompts = "sharegpt",
    num_prompts: Annotated[
        int, typer.Option(help="prompts sampled from the set (requests cycle through them)")
    ] = 256,
    prompt_seed: o.PromptSeed = 0,
    category: o.Category = None,
    chat: o.Chat = False,
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
        float | None,
        typer.Option(
            "--duration",
            help="seconds per level: nothing is issued after it (--rate: no arrival after it; one before it is issued however late)",
        ),
    ] = None,
    sweep: Annotated[
        str | None,
        typer.Option(help="levels: concurrency=1,2,4,8 or rate=0.5,1,2; ends early once a level saturates"),
    ] = None,
    schedule: Annotated[
        Schedule,
        typer.Option(
            "--schedule",
            help="interleaved: both servers up at once, the arms alternating level by level in ABBA order "
            "(drift cancels); blocked: every vanilla level first",
        ),
    ] = Schedule.INTERLEAVED,
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
    find_max_rate: Annotated[
        bool,
        typer.Option(
            help="per mode, search the highest request rate whose goodput meets --goodput-min (needs --slo)"
        ),
    ] = False,
    find_max_concurrency: Annotated[
        bool, typer.Option(help="the same search over concurrency (closed loop) instead of rate")
    ] = False,
    goodput_min: Annotated[
        float, typer.Option(help="search: a level meets the SLO when this share of its requests does")
    ] = 0.9,
    search_start: Annotated[float | None, typer.Option(help="search: the first level [default: 1]")] = None,
    search_max: Annotated[
        float | None, typer.Option(help="search: the highest level tried [default: rate 64, concurrency 16]")
    ] = None,
    search_resolution: Annotated[
        float | None,
        typer.Option(
            help="search: stop once met and missed levels are this close [default: start/4; concurrency 1]"
        ),
    ] = None,
    search_levels: Annotated[int, typer.Option(help="search: at most this many levels per mode")] = 8,
    generator_procs: Annotated[
        int | None,
        typer.Option(
            help="load-generator processes, each its own event loop and share of every level, on one clock "
            "[default: 1 below 8 cores, else one per 4 cores, at most 8]"
        ),
    ] = None,
    threads: o.Threads = None,
    ctx_size: Annotated[int, typer.Option("--ctx-size", "-c", help="context per slot")] = 2048,
    temp: o.Temp = 0.0,
    seed: Annotated[int, typer.Option(help="seed of the arrival schedules and of sampling")] = 42,
    gpu_layers: o.GpuLayers = None,
    gpu_layers_draft: o.GpuLayersDraft = None,
    skip_vanilla: o.SkipVanilla = False,
    skip_speculative: o.SkipSpeculative = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="result JSON (default: results/load-<time>.json)")
    ] = None,
    llama_cpp_path: o.LlamaCppPath = None,
    engine_args: o.EngineArgs = "",
    engine: Annotated[
        EngineName, typer.Option(help="server (llama-server), vllm, or remote (--server-url); auto picks")
    ] = EngineName.AUTO,
    port: o.Port = None,
    timeout: Annotated[float | None, typer.Option(help="seconds one request may take")] = None,
    server_timeout: o.ServerTimeout = None,
    server_url: o.ServerUrl = None,
    baseline_url: o.BaselineUrl = None,
    served_model: o.ServedModel = None,
    api_key: o.ApiKey = None,
    vllm_bin: o.VllmBin = None,
    max_model_len: o.MaxModelLen = None,
    gpu_memory_utilization: o.GpuMemoryUtilization = None,
    tensor_parallel_size: o.TensorParallelSize = None,
    dtype: o.Dtype = None,
) -> None:
    """Vanilla vs speculative servers under the same concurrent load: where does speculation stop paying?"""
    from velobench.load.plan import load_options
    from velobench.load.run import default_output as load_output
    from velobench.load.run import execute_load
    from velobench.load.slo import search_options_from_cli as search_options
    from velobench.load.slo import searched_options
    from velobench.results import config

    search = None
    if find_max_rate or find_max_concurrency:
        search = search_options(
            find_max_rate=find_max_rate,
            find_max_concurrency=find_max_concurrency,
            slo=slo,
            sweep=sweep,
            rate=rate,
            concurrency=concurrency,
            goodput_min=goodput_min,
            start=search_start,
            max_level=search_max,
            resolution=search_resolution,
            max_levels=search_levels,
        )
        if search.kind == "rate":
            rate = search.start
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
        generator_procs=generator_procs,
    )
    if search is not None:
        opts = searched_options(opts, search)
    cfg = config.from_options(locals())
    output = output or load_output()
    # every check (runner.run.prepare) before a server starts: the engine, -o, -x flags, models, prompts
    execute_load(cfg, opts, output, out, search=search)
