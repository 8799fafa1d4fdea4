"""`velobench think`: speculative thinking against the large model alone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from velobench.cli import options as o
from velobench.cli.terminal import out


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
    threads: o.Threads = None,
    ctx_size: Annotated[
        int | None, typer.Option("--ctx-size", "-c", help="per server [default: --max-tokens + 1024]")
    ] = None,
    gpu_layers: Annotated[
        str | None, typer.Option("--gpu-layers", "-ngl", help="layers of the large model on the GPU")
    ] = None,
    gpu_layers_draft: Annotated[
        str | None, typer.Option("--gpu-layers-draft", "-ngld", help="layers of the small model on the GPU")
    ] = None,
    engine_args: o.EngineArgs = "",
    llama_cpp_path: o.LlamaCppPath = None,
    vllm_bin: o.VllmBin = None,
    server_timeout: o.ServerTimeout = None,
    timeout: Annotated[
        float | None, typer.Option(help="seconds one request may take [default: 120 + 2 per token]")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="result JSON (default: results/think-<time>.json)")
    ] = None,
) -> None:
    """Speculative thinking: a small model reasons, the large model steps in at the turns;
    measured against the large model alone (latency, tokens, large-model ratio, accuracy)."""
    from velobench.think.run import execute, log_dir, prepare

    raw, overrides = think_options(locals())
    output = output or o.default_output("think")
    # every check (the output first: a folder, /proc or a read-only place) before any server
    execute(prepare(raw, overrides, log_dir(output), output=output), output, out)


def think_options(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A think command's parameters, by name, as `prepare` takes them: the run's options
    (`ThinkOptions` fields) and the overrides of the think configuration (`with_overrides`)."""
    from velobench.results.config import option_values
    from velobench.results.think import ThinkOptions

    return option_values(params, ThinkOptions.model_fields), option_values(params, _OVERRIDES)


# The options `think.config.with_overrides` lays over the think configuration.
_OVERRIDES = ("triggers", "segment_tokens", "max_tokens", "temperature", "top_p", "top_k", "seed")
