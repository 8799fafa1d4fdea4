"""The validated configuration of one benchmark run (embedded in every result).

One source of run options: `velobench run`, `load`, `demo` and `tune` build a `RunConfig` from
their options by name (`from_options(locals())`), every matrix cell through `build(...)`, and `to_argv(cfg)` writes the `velobench run` command line
that reproduces it, from each field's `flag` (so the two cannot drift apart).
"""

from __future__ import annotations

import shlex
from collections.abc import Collection, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from velobench.errors import VelobenchError
from velobench.validation import one_line


class EngineName(StrEnum):
    AUTO = "auto"  # the first registered engine that can run the configuration and is installed
    SERVER = "server"  # llama-server, one per mode, every generation a streamed request
    CLI = "cli"  # llama.cpp's command-line tools, one process per generation
    VLLM = "vllm"  # vLLM's OpenAI-compatible server, one per mode
    REMOTE = "remote"  # a server velobench did not start (--server-url, --baseline-url)


def opt(default: Any = None, flag: str | None = None, **kw: Any) -> Any:
    """A field with the `velobench run` option that sets it (`flag`), for `to_argv`."""
    extra: dict[str, Any] = {"flag": flag} if flag else {}
    if "default_factory" in kw:
        return Field(json_schema_extra=extra, **kw)
    return Field(default, json_schema_extra=extra, **kw)


class Method(StrEnum):
    """How speculative tokens are proposed. Each engine runs the methods it has (`can_run` says)."""

    DRAFT = "draft"  # a draft model (-d): llama.cpp and vLLM
    LOOKUP = "lookup"  # llama-lookup: prompt lookup / n-gram cache, no draft model
    NGRAM_SIMPLE = "ngram-simple"  # llama-speculative-simple --spec-type ngram-*, no draft model
    NGRAM_MAP_K = "ngram-map-k"
    NGRAM_MAP_K4V = "ngram-map-k4v"
    NGRAM_MOD = "ngram-mod"
    NGRAM_CACHE = "ngram-cache"
    NGRAM = "ngram"  # vLLM's prompt lookup (--ngram-min/--ngram-max)
    EAGLE = "eagle"  # vLLM: an EAGLE head (-d names it)
    EAGLE3 = "eagle3"
    MTP = "mtp"  # vLLM: the target's own multi-token-prediction heads
    SUFFIX = "suffix"  # vLLM: suffix decoding

    @property
    def needs_draft_model(self) -> bool:
        """A second model: a draft model, or an EAGLE head."""
        return self in (Method.DRAFT, Method.EAGLE, Method.EAGLE3)

    @property
    def llama_cpp(self) -> bool:
        return self in LLAMA_CPP_METHODS

    @property
    def vllm(self) -> bool:
        return self in VLLM_METHODS


LLAMA_CPP_METHODS = frozenset(
    {
        Method.DRAFT,
        Method.LOOKUP,
        Method.NGRAM_SIMPLE,
        Method.NGRAM_MAP_K,
        Method.NGRAM_MAP_K4V,
        Method.NGRAM_MOD,
        Method.NGRAM_CACHE,
    }
)


VLLM_METHODS = frozenset({Method.DRAFT, Method.NGRAM, Method.EAGLE, Method.EAGLE3, Method.MTP, Method.SUFFIX})


class Telemetry(StrEnum):
    """Where power and utilization are read: here (`auto`: local engines only; `local`: also a
    --server-url server the user says runs on this machine), or not at all."""

    AUTO = "auto"
    LOCAL = "local"
    OFF = "off"


class Schedule(StrEnum):
    """The order of a run's iterations (`runner.schedule`)."""

    INTERLEAVED = "interleaved"  # both arms alive, alternating AB/BA per prompt and round
    BLOCKED = "blocked"  # every vanilla iteration, then every speculative one


class SpecImpl(StrEnum):
    """Which llama.cpp program runs draft-model speculation."""

    SIMPLE = "simple"  # llama-speculative-simple (common_speculative API, one draft sequence)
    CLASSIC = "classic"  # llama-speculative (its own loop; tree drafts with -np > 1)


class RunConfig(BaseModel):
    """Everything that decides what a run measures, and how it was run. Paths as given and resolved."""

    model_config = ConfigDict(extra="forbid")

    main_model: str = opt(
        "", "-m", description="target model (for --server-url: a label; default: the served name)"
    )
    draft_model: str | None = opt(None, "-d")
    method: Method = opt(Method.DRAFT, "--method")
    spec_impl: SpecImpl = opt(SpecImpl.SIMPLE, "--spec-impl")
    n_draft: int = opt(8, "--n-draft", ge=1, description="maximum draft tokens per step (--spec-draft-n-max)")
    draft_p_min: float = opt(
        0.0, "--draft-p-min", ge=0.0, le=1.0, description="stop drafting below this draft probability"
    )
    n_predict: int = opt(100, "-n", ge=1)
    prompt: str = opt("Explain quantum computing in simple terms", "-p")
    prompt_file: str | None = None  # where `prompt` was read from (its text is in `prompt`)
    prompts: str | None = opt(
        None,
        "--prompts",
        description="a prompt set (builtin, humaneval, mtbench, sharegpt, gsm8k, aime2025, or a JSONL path)",
    )
    num_prompts: int | None = opt(None, "--num-prompts", ge=1)
    prompt_seed: int = opt(0, "--prompt-seed")
    categories: list[str] = opt(flag="--category", default_factory=list)
    chat: bool = opt(False, "--chat", description="apply the model's chat template (server chat endpoint)")
    iterations: int = opt(5, "-i", ge=1)
    target_ci: float | None = opt(
        None,
        "--target-ci",
        gt=0,
        lt=100,
        description="add rounds until the paired speedup's 95% interval is within ±PCT% (analysis.stopping)",
    )
    max_iterations: int = opt(
        100, "--max-iterations", ge=1, description="--target-ci: iterations per mode at most"
    )
    max_time: float | None = opt(
        None, "--max-time", gt=0, description="--target-ci: seconds of measuring at most"
    )
    schedule: Schedule = opt(
        Schedule.INTERLEAVED,
        "--schedule",
        description="interleaved: both arms alive, alternating in balanced blocks; blocked: vanilla first",
    )
    warmup: int | None = opt(
        None, "--warmup", ge=0, description="unrecorded generations per mode (None: the engine's default)"
    )
    threads: int | None = opt(None, "-t", ge=1)
    ctx_size: int = opt(2048, "-c", ge=64)
    temp: float = opt(0.0, "--temp", ge=0.0)
    seed: int = opt(42, "--seed")
    gpu_layers: str | None = opt(None, "-ngl")
    gpu_layers_draft: str | None = opt(None, "-ngld")
    skip_vanilla: bool = opt(False, "--skip-vanilla")
    skip_speculative: bool = opt(
        False, "--skip-speculative", description="measure vanilla only (a matrix baseline)"
    )
    extra_args: list[str] = opt(flag="-x", default_factory=list)
    # How the run is made (engine, where the binaries are, ports and deadlines).
    engine: EngineName = opt(EngineName.AUTO, "--engine")
    llama_cpp_path: str | None = opt(None, "--llama-cpp-path")
    port: int | None = opt(None, "--port", ge=1, le=65535)
    timeout: float | None = opt(None, "--timeout", gt=0, description="seconds one generation may take")
    server_timeout: float = opt(
        300.0, "--server-timeout", gt=0, description="seconds a server may take to load"
    )
    ceiling: bool = opt(
        True, "--ceiling", description="measure costs with llama-bench and report the ceiling"
    )
    redo_disturbed: int = opt(
        0,
        "--redo-disturbed",
        ge=0,
        description="measure an iteration again, up to N times in the run, when other processes used more "
        "than a quarter of a core while it ran (the disturbed one kept, out of the statistics)",
    )
    llama_bench_reference: bool = opt(
        False,
        "--llama-bench-reference",
        description="after each vanilla iteration, llama-bench's decode test at its length and depth: "
        "velobench's vanilla tokens/s against llama-bench's, paired",
    )
    # Servers velobench did not start (--engine remote).
    server_url: str | None = opt(None, "--server-url", description="the speculative server to measure")
    baseline_url: str | None = opt(None, "--baseline-url", description="the vanilla server to compare with")
    served_model: str | None = opt(
        None, "--served-model", description="model name on the server (default: /v1/models)"
    )
    api_key: SecretStr | None = Field(
        default=None, exclude=True, description="bearer token for the server: never written anywhere"
    )
    # vLLM (--engine vllm).
    vllm_bin: str | None = opt(None, "--vllm-bin")
    max_model_len: int | None = opt(None, "--max-model-len", ge=16)
    gpu_memory_utilization: float | None = opt(None, "--gpu-memory-utilization", gt=0, le=1)
    tensor_parallel_size: int | None = opt(None, "--tensor-parallel-size", ge=1)
    devices: str | None = opt(
        None,
        "--devices",
        description="vLLM: CUDA_VISIBLE_DEVICES of its servers (0,1), or per server vanilla/speculative (0/1)",
    )
    dtype: str | None = opt(None, "--dtype")
    draft_tp: int | None = opt(None, "--draft-tp", ge=1)
    ngram_min: int | None = opt(None, "--ngram-min", ge=1)
    ngram_max: int | None = opt(None, "--ngram-max", ge=1)
    # Telemetry: GPU (NVML) and the engine's process tree, sampled around every generation.
    telemetry: Telemetry = opt(Telemetry.AUTO, "--telemetry")

    @model_validator(mode="after")
    def _draft_matches_method(self) -> RunConfig:
        if not self.main_model and not self.server_url and not self.baseline_url:
            raise ValueError("-m/--main-model is required (or --server-url for a running server)")
        if self.ngram_min is not None and self.ngram_max is not None and self.ngram_min > self.ngram_max:
            raise ValueError("--ngram-min must not exceed --ngram-max")
        if self.skip_vanilla and self.skip_speculative:
            raise ValueError("--skip-vanilla and --skip-speculative together leave nothing to measure")
        if self.target_ci is not None and (self.skip_vanilla or self.skip_speculative):
            raise ValueError("--target-ci needs both modes: it stops on the paired speedup's interval")
        remote = bool(self.server_url or self.baseline_url)
        if self.redo_disturbed and (
            self.telemetry is Telemetry.OFF
            or ((remote or self.engine is EngineName.REMOTE) and self.telemetry is not Telemetry.LOCAL)
        ):
            raise ValueError(
                "--redo-disturbed needs the other processes' CPU read where the engine runs: not with "
                "--telemetry off, and for a server velobench did not start only with --telemetry local"
            )
        if self.llama_bench_reference and (
            self.skip_vanilla or remote or self.engine in (EngineName.VLLM, EngineName.REMOTE)
        ):
            raise ValueError(
                "--llama-bench-reference needs the vanilla arm on a llama.cpp engine (server or cli): "
                "llama-bench runs the same GGUF file beside it"
            )
        if (
            self.method.needs_draft_model
            and not self.draft_model
            and not remote
            and not self.skip_speculative
        ):
            raise ValueError(f"--method {self.method.value} needs a draft model (-d/--draft-model)")
        if not self.method.needs_draft_model and self.draft_model:
            raise ValueError(f"--method {self.method.value} uses no draft model; drop -d/--draft-model")
        return self


def prepared_modes(cfg: RunConfig) -> tuple[Literal["vanilla", "speculative"], ...]:
    """The modes an engine prepares for `cfg`: both, or vanilla alone for a configuration that
    skips speculation and names no draft model its method needs (one model's vanilla server, as
    `velobench think` starts)."""
    if cfg.skip_speculative and cfg.method.needs_draft_model and not cfg.draft_model:
        return ("vanilla",)
    return ("vanilla", "speculative")


def build(**values: Any) -> RunConfig:
    """A RunConfig from option values (None = the default); a bad value is one line naming the option."""
    try:
        return RunConfig.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        raise VelobenchError(one_line(exc, option_style=True)) from exc


# Command-line spellings of config fields: `-x` is one shell string, repeatable options are singular.
_SPELLINGS = {"engine_args": "extra_args", "category": "categories", "trigger": "triggers"}


def option_values(options: Mapping[str, Any], fields: Collection[str]) -> dict[str, Any]:
    """The options given (not None) that set one of `fields`, by parameter name, in the config's terms.

    A command names its parameters after the fields they set and passes `locals()`; paths become
    text, `engine_args` (one shell string) is split into `extra_args`, `category` → `categories`,
    `trigger` → `triggers`. Every other parameter (a command's own, e.g. `--concurrency`) is left out.
    """
    values: dict[str, Any] = {}
    for name, value in options.items():
        field = _SPELLINGS.get(name, name)
        if field not in fields or value is None:
            continue
        if name == "engine_args":
            try:
                value = shlex.split(value)
            except ValueError as exc:
                raise VelobenchError(f"--engine-args: {exc}") from exc
        values[field] = str(value) if isinstance(value, Path) else value
    return values


def from_options(options: Mapping[str, Any]) -> RunConfig:
    """The RunConfig of a command's options, given by parameter name (see `option_values`)."""
    return build(**option_values(options, RunConfig.model_fields))


def to_argv(cfg: RunConfig, output: str | None = None) -> list[str]:
    """The `velobench run` command line that measures exactly `cfg` (options at their default omitted)."""
    argv = ["velobench", "run"]
    for name, field in RunConfig.model_fields.items():
        extra = field.json_schema_extra
        flag = extra.get("flag") if isinstance(extra, dict) else None
        value = getattr(cfg, name)
        if not isinstance(flag, str) or value == field.get_default(call_default_factory=True):
            continue
        if name == "prompt" and cfg.prompts:
            continue  # a prompt set replaces the single prompt
        if isinstance(value, bool):
            argv.append(flag if value else f"--no-{flag.removeprefix('--')}")
        elif name == "extra_args":
            argv += [flag, shlex.join(value)]
        elif isinstance(value, list):
            for v in value:
                argv += [flag, str(v)]
        else:
            argv += [flag, str(value.value if isinstance(value, StrEnum) else value)]
    if output:
        argv += ["-o", output]
    return argv
