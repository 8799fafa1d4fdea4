"""Options shared by several commands, each written once as an `Annotated` type.

An option here means the same in every command that takes it (`run`, `load`, `tune`, `demo`,
`matrix`, `think`); where a command gives a flag a different meaning (`load`'s `--timeout` is per
request, `matrix`'s `-n` overrides the TOML), the command declares that option itself.

A command's parameters are named after the config fields they set (`main_model`, `n_draft`, ...):
`results.config.option_values(locals(), fields)` picks them by name (through `from_options` for a
RunConfig, `think.think_options` for think, directly for matrix's [run] overrides), so the path
from options to a validated config is the same in every command.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from velobench.results.config import EngineName, Method, Schedule, Telemetry


def default_output(prefix: str, suffix: str = ".json") -> Path:
    """`results/<prefix>-<UTC time><suffix>`: where a command writes when -o is not given."""
    return Path("results") / time.strftime(f"{prefix}-%Y%m%d-%H%M%S{suffix}", time.gmtime())


# ---------------------------------------------------------------- models and drafting

MainModel = Annotated[
    str,
    typer.Option(
        "--main-model",
        "-m",
        help="target model: GGUF path, catalog name or hf://REPO/FILE (vLLM: also a Hugging Face id or folder)",
    ),
]
DraftModel = Annotated[
    str | None,
    typer.Option("--draft-model", "-d", help="draft model: GGUF path, catalog name or hf://REPO/FILE"),
]
MethodOpt = Annotated[
    Method,
    typer.Option("--method", help="how drafts are made: a draft model, llama-lookup, or an n-gram spec type"),
]
NDraft = Annotated[int, typer.Option("--n-draft", help="max draft tokens per step (--spec-draft-n-max)")]
DraftPMin = Annotated[float, typer.Option("--draft-p-min", help="stop drafting below this draft probability")]
NPredict = Annotated[int, typer.Option("--n-predict", "-n", help="tokens to generate")]

# ---------------------------------------------------------------- prompts

Prompts = Annotated[
    str | None,
    typer.Option(
        "--prompts",
        help="prompt set: builtin, builtin:CATEGORY, humaneval, mtbench, sharegpt, gsm8k, aime2025, or a JSONL file",
    ),
]
NumPrompts = Annotated[
    int | None, typer.Option("--num-prompts", help="sample this many prompts (stratified by category)")
]
PromptSeed = Annotated[int, typer.Option("--prompt-seed", help="seed of the prompt sample")]
Category = Annotated[
    list[str] | None, typer.Option("--category", help="only prompts of this category (repeatable)")
]
Chat = Annotated[
    bool,
    typer.Option("--chat", help="apply the model's chat template (server engine: /v1/chat/completions)"),
]

# ---------------------------------------------------------------- sampling and hardware

Threads = Annotated[int | None, typer.Option("--threads", "-t", help="CPU threads")]
Temp = Annotated[float, typer.Option("--temp", help="sampling temperature (0 = greedy)")]
GpuLayers = Annotated[
    str | None,
    typer.Option("--gpu-layers", "-ngl", help="layers of the main model on the GPU (N, auto, all)"),
]
GpuLayersDraft = Annotated[
    str | None, typer.Option("--gpu-layers-draft", "-ngld", help="layers of the draft model on the GPU")
]
SkipVanilla = Annotated[bool, typer.Option("--skip-vanilla", help="measure the speculative mode only")]
SkipSpeculative = Annotated[
    bool, typer.Option("--skip-speculative", help="measure the vanilla mode only (a baseline)")
]

# ---------------------------------------------------------------- engines and servers

LlamaCppPath = Annotated[
    Path | None,
    typer.Option(
        "--llama-cpp-path",
        "-l",
        help="llama.cpp folder: DIR, DIR/bin or DIR/build/bin are searched",
    ),
]
EngineArgs = Annotated[
    str,
    typer.Option(
        "--engine-args",
        "-x",
        help="extra flags passed to every llama.cpp/vLLM process started, e.g. '-fa on'",
    ),
]
Engine = Annotated[
    EngineName,
    typer.Option(
        "--engine",
        help="server = one llama-server per mode; cli = one process per generation; vllm = vLLM's server; "
        "remote = --server-url; auto = remote if a URL is given, else server where possible, else cli",
    ),
]
Port = Annotated[int | None, typer.Option("--port", help="server port (default: a free one)")]
ServerTimeout = Annotated[
    float | None,
    typer.Option("--server-timeout", help="seconds a server may take to load [default: 300, vLLM 1800]"),
]
ServerUrl = Annotated[
    str | None,
    typer.Option(
        "--server-url", help="a running OpenAI-compatible server with speculation (--engine remote)"
    ),
]
BaselineUrl = Annotated[
    str | None,
    typer.Option("--baseline-url", help="a running server without speculation, the vanilla baseline"),
]
ServedModel = Annotated[
    str | None,
    typer.Option("--served-model", help="model name on the server [default: the one /v1/models lists]"),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="OPENAI_API_KEY",
        show_envvar=True,
        help="bearer token for --server-url and --baseline-url (never saved)",
    ),
]
VllmBin = Annotated[
    str | None,
    typer.Option("--vllm-bin", help="vllm executable or venv [default: PATH, then `velobench bins vllm`]"),
]
MaxModelLen = Annotated[
    int | None, typer.Option("--max-model-len", help="vLLM --max-model-len [default: --ctx-size]")
]
GpuMemoryUtilization = Annotated[
    float | None,
    typer.Option(
        "--gpu-memory-utilization",
        help="vLLM: each server's share of its GPUs' memory (on CPU: of the NUMA node's) "
        "[default: 0.9 split among the servers up at once; on CPU sized from the model and context]",
    ),
]
Devices = Annotated[
    str | None,
    typer.Option(
        "--devices",
        help="vLLM: CUDA_VISIBLE_DEVICES of its servers (0,1), or per server VANILLA/SPECULATIVE (0/1)",
    ),
]
ScheduleOpt = Annotated[
    Schedule,
    typer.Option(
        "--schedule",
        help="interleaved: both arms up at once, alternating AB/BA per prompt and round (drift cancels); "
        "blocked: every vanilla iteration first",
    ),
]
TensorParallelSize = Annotated[
    int | None, typer.Option("--tensor-parallel-size", help="vLLM --tensor-parallel-size")
]
Dtype = Annotated[str | None, typer.Option("--dtype", help="vLLM --dtype")]
TelemetryOpt = Annotated[
    Telemetry,
    typer.Option(
        "--telemetry",
        help="auto: power, energy and utilization of local engines; local: also --server-url; off",
    ),
]


def csv_numbers(text: str, option: str, kind: type[int] | type[float], example: str) -> list[int | float]:
    """`"1,8,64"` → `[1, 8, 64]` (sorted, duplicates dropped); a bad item is one line naming `option`."""
    from velobench.errors import VelobenchError

    try:
        return sorted({kind(x) for x in text.split(",") if x.strip()})
    except ValueError as exc:
        raise VelobenchError(f"{option}: expected numbers like {example}, got {text!r}") from exc


# ---------------------------------------------------------------- how long to measure

TargetCi = Annotated[
    float | None,
    typer.Option(
        "--target-ci",
        help="add rounds (one iteration per prompt and mode) until the paired speedup's 95% interval "
        "is within ±PCT% of it (a sequential interval that keeps its coverage; --iterations is ignored)",
    ),
]
MaxIterations = Annotated[
    int, typer.Option("--max-iterations", help="--target-ci: stop after this many iterations per mode")
]
RedoDisturbed = Annotated[
    int,
    typer.Option(
        "--redo-disturbed",
        help="measure an iteration again, up to N times in the run, when other processes used more than a "
        "quarter of a core while it ran (the disturbed one is kept in the result, out of the statistics)",
    ),
]
MaxTime = Annotated[
    float | None, typer.Option("--max-time", help="--target-ci: stop after this many seconds of measuring")
]
