"""`velobench lossless`: does the speculative arm sample from the target's own distribution?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from velobench.cli import options as o
from velobench.cli.terminal import out
from velobench.results.config import EngineName, Method


def lossless(
    main_model: o.MainModel = "",
    draft_model: o.DraftModel = None,
    method: o.MethodOpt = Method.DRAFT,
    n_draft: o.NDraft = 8,
    draft_p_min: o.DraftPMin = 0.0,
    n_predict: Annotated[
        int, typer.Option("--n-predict", "-n", help="tokens per sample: the positions tested")
    ] = 8,
    samples: Annotated[int, typer.Option("--samples", "-N", help="samples per prompt and arm")] = 100,
    temp: Annotated[float, typer.Option("--temp", help="sampling temperature (> 0)")] = 0.8,
    top_p: Annotated[float, typer.Option("--top-p", help="nucleus sampling (1 = off)")] = 1.0,
    top_k: Annotated[int, typer.Option("--top-k", help="top-k sampling (0 = off)")] = 0,
    seed: Annotated[int, typer.Option(help="first seed: every sample has its own, never reused")] = 42,
    max_time: Annotated[
        float | None, typer.Option("--max-time", help="seconds of sampling at most (vanilla stops at half)")
    ] = None,
    alpha: Annotated[float, typer.Option(help="family-wise false-positive rate of the test")] = 0.05,
    detect: Annotated[
        float,
        typer.Option(help="total variation you want detected: the samples needed for it are reported"),
    ] = 0.1,
    candidate_temp: Annotated[
        float | None,
        typer.Option(
            "--candidate-temp",
            help="self-check: sample the speculative arm at this temperature, to see the test detect it",
        ),
    ] = None,
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="the prompt text")] = "Once upon a time",
    prompts: o.Prompts = None,
    num_prompts: o.NumPrompts = None,
    prompt_seed: o.PromptSeed = 0,
    category: o.Category = None,
    chat: o.Chat = False,
    threads: o.Threads = None,
    ctx_size: Annotated[int, typer.Option("--ctx-size", "-c", help="context size (tokens)")] = 2048,
    gpu_layers: o.GpuLayers = None,
    gpu_layers_draft: o.GpuLayersDraft = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="result JSON (default: results/lossless-<time>.json)"),
    ] = None,
    llama_cpp_path: o.LlamaCppPath = None,
    engine_args: o.EngineArgs = "",
    engine: o.Engine = EngineName.AUTO,
    port: o.Port = None,
    timeout: Annotated[float | None, typer.Option(help="seconds one generation may take")] = None,
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
    """Sample both arms with independent seeds and test whether their output distributions differ,
    with the smallest difference the test would have seen (its power)."""
    from velobench.lossless.run import execute_lossless
    from velobench.results import config
    from velobench.results.lossless import SampleSettings

    settings = SampleSettings(
        samples=samples,
        tokens=n_predict,
        temperature=temp,
        top_p=top_p,
        top_k=top_k,
        max_time_s=max_time,
        alpha=alpha,
        detect=detect,
    )
    cfg = config.from_options({**locals(), "telemetry": "off", "warmup": 0})
    execute_lossless(
        cfg, settings, output or o.default_output("lossless"), out, candidate_temp=candidate_temp
    )
