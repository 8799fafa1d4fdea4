"""The `vllm serve` command line and environment velobench launches, as pure functions.

velobench's speculative options map onto vLLM's `--speculative-config` JSON:

    --method draft|ngram|eagle|eagle3|mtp|suffix  →  "method" (draft → "draft_model")
    --draft-model (or an EAGLE head)              →  "model"
    --n-draft                                      →  "num_speculative_tokens"
    --ngram-min / --ngram-max                      →  "prompt_lookup_min" / "prompt_lookup_max"
    --draft-tp                                     →  "draft_tensor_parallel_size"

The vanilla server is the same argv without `--speculative-config`. Prefix caching is off by
default (`--no-enable-prefix-caching`): a benchmark that repeats prompts must not be served
from cache. Every flag used here is checked against `vllm serve --help=all` captured from the
installed vLLM (tests/fixtures/vllm/help-all.txt), and `parse_help_flags` lets a run check a
user's own vLLM the same way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from velobench.errors import VelobenchError

SpecMethod = Literal["draft", "ngram", "eagle", "eagle3", "mtp", "suffix"]
SPEC_METHODS: tuple[str, ...] = ("draft", "ngram", "eagle", "eagle3", "mtp", "suffix")
# velobench's name → vLLM's `method`.
VLLM_METHOD = {
    "draft": "draft_model",
    "ngram": "ngram",
    "eagle": "eagle",
    "eagle3": "eagle3",
    "mtp": "mtp",
    "suffix": "suffix",
}
# Methods that need a second model (a draft model, or an EAGLE head).
NEEDS_MODEL = frozenset({"draft", "eagle", "eagle3"})
# Methods that take no separate model at all (an MTP head is part of the target model).
NO_MODEL = frozenset({"ngram", "mtp", "suffix"})

DEFAULT_CPU_KVCACHE_GIB = 2


@dataclass(frozen=True)
class SpecOptions:
    """velobench's speculative options for one vLLM server."""

    method: SpecMethod
    n_draft: int | None = None
    draft_model: str | None = None  # draft model or EAGLE head: a Hugging Face id or folder
    ngram_min: int | None = None
    ngram_max: int | None = None
    draft_tp: int | None = None


@dataclass(frozen=True)
class ServeOptions:
    """Everything but speculation that goes on a `vllm serve` command line."""

    model: str  # Hugging Face id or folder
    served_model_name: str
    port: int
    host: str = "127.0.0.1"
    seed: int | None = 0
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None  # passed only where a GPU is used
    tensor_parallel_size: int | None = None
    dtype: str | None = None  # "auto", "bfloat16", "float16", ...
    prefix_caching: bool = False
    extra_args: tuple[str, ...] = field(default_factory=tuple)  # `-x`, appended verbatim


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise VelobenchError(f"{name} must be at least 1, got {value}")


def speculative_config(spec: SpecOptions) -> dict[str, object]:
    """The `--speculative-config` dict for `spec` (keys in vLLM's names; only the options given).

    Raises VelobenchError when the method and options do not fit together.
    """
    if spec.method not in VLLM_METHOD:
        raise VelobenchError(
            f"unknown speculative method {spec.method!r}: use one of {', '.join(SPEC_METHODS)}"
        )
    if spec.method in NEEDS_MODEL and not spec.draft_model:
        what = "a draft model (--draft-model)" if spec.method == "draft" else "an EAGLE head (--draft-model)"
        raise VelobenchError(f"--method {spec.method} needs {what}")
    if spec.method in NO_MODEL and spec.draft_model:
        raise VelobenchError(f"--method {spec.method} takes no draft model (got {spec.draft_model})")
    if spec.method != "ngram" and (spec.ngram_min is not None or spec.ngram_max is not None):
        raise VelobenchError(f"--ngram-min/--ngram-max apply to --method ngram only, not {spec.method}")
    if spec.method not in NEEDS_MODEL and spec.draft_tp is not None:
        raise VelobenchError(f"--draft-tp applies to a draft model or EAGLE head, not --method {spec.method}")
    _positive("--n-draft", spec.n_draft)
    _positive("--ngram-min", spec.ngram_min)
    _positive("--ngram-max", spec.ngram_max)
    _positive("--draft-tp", spec.draft_tp)
    if spec.ngram_min is not None and spec.ngram_max is not None and spec.ngram_min > spec.ngram_max:
        raise VelobenchError(f"--ngram-min {spec.ngram_min} is larger than --ngram-max {spec.ngram_max}")
    cfg: dict[str, object] = {"method": VLLM_METHOD[spec.method]}
    if spec.draft_model:
        cfg["model"] = spec.draft_model
    if spec.n_draft is not None:
        cfg["num_speculative_tokens"] = spec.n_draft
    if spec.ngram_min is not None:
        cfg["prompt_lookup_min"] = spec.ngram_min
    if spec.ngram_max is not None:
        cfg["prompt_lookup_max"] = spec.ngram_max
    if spec.draft_tp is not None:
        cfg["draft_tensor_parallel_size"] = spec.draft_tp
    return cfg


def serve_argv(
    vllm_bin: str | Path, opts: ServeOptions, spec: SpecOptions | None = None, *, gpu: bool
) -> list[str]:
    """`vllm serve MODEL ...` for one server; `spec=None` is the vanilla server (no --speculative-config).

    `--gpu-memory-utilization` is passed only when `gpu` (vLLM's CPU backend sizes its KV cache
    from VLLM_CPU_KVCACHE_SPACE instead, see `server_env`).
    """
    _positive("--max-model-len", opts.max_model_len)
    _positive("--tensor-parallel-size", opts.tensor_parallel_size)
    if not 1 <= opts.port <= 65535:
        raise VelobenchError(f"port {opts.port} is not in 1..65535")
    util = opts.gpu_memory_utilization
    if util is not None and not 0.0 < util <= 1.0:
        raise VelobenchError(f"--gpu-memory-utilization must be in (0, 1], got {util}")
    argv = [
        str(vllm_bin),
        "serve",
        opts.model,
        "--served-model-name",
        opts.served_model_name,
        "--host",
        opts.host,
        "--port",
        str(opts.port),
    ]
    if opts.seed is not None:
        argv += ["--seed", str(opts.seed)]
    if opts.max_model_len is not None:
        argv += ["--max-model-len", str(opts.max_model_len)]
    if gpu and util is not None:
        argv += ["--gpu-memory-utilization", f"{util:g}"]
    if opts.tensor_parallel_size is not None:
        argv += ["--tensor-parallel-size", str(opts.tensor_parallel_size)]
    if opts.dtype is not None:
        argv += ["--dtype", opts.dtype]
    argv.append("--enable-prefix-caching" if opts.prefix_caching else "--no-enable-prefix-caching")
    if spec is not None:
        argv += ["--speculative-config", json.dumps(speculative_config(spec), separators=(",", ":"))]
    argv += list(opts.extra_args)
    return argv


def server_env(
    *, gpu: bool, kvcache_gib: float | None = None, omp_threads_bind: str = "auto"
) -> dict[str, str]:
    """Variables a vLLM server needs on top of `vllm_env.child_env` (empty on a GPU).

    On CPU: `VLLM_CPU_KVCACHE_SPACE` (GiB of KV cache; default 2) and
    `VLLM_CPU_OMP_THREADS_BIND=auto` (vLLM pins its OpenMP threads to cores itself).
    """
    if gpu:
        return {}
    gib = DEFAULT_CPU_KVCACHE_GIB if kvcache_gib is None else kvcache_gib
    if gib <= 0:
        raise VelobenchError(f"the CPU KV cache must be larger than 0 GiB, got {gib}")
    return {"VLLM_CPU_KVCACHE_SPACE": f"{gib:g}", "VLLM_CPU_OMP_THREADS_BIND": omp_threads_bind}


_OPTION_LINE = re.compile(r"^  -[^ ]")
_HELP_FLAG = re.compile(r"(?<![\w-])(--[A-Za-z0-9][\w-]*|-[A-Za-z]{1,3})(?=[\s,=\[]|$)")


def parse_help_flags(help_text: str) -> frozenset[str]:
    """Every flag `vllm serve --help=all` lists, read from its option lines only.

    argparse indents option lines by exactly two spaces (`  --speculative-config
    SPECULATIVE_CONFIG, -sc SPECULATIVE_CONFIG`, `  --enable-prefix-caching,
    --no-enable-prefix-caching`) and their descriptions by more, so a flag merely mentioned in
    a description (`--port instead of ...`) is not taken. An inline description starts after
    two or more spaces and is cut off first.
    """
    flags: set[str] = set()
    for line in help_text.splitlines():
        if not _OPTION_LINE.match(line):
            continue
        head = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
        flags.update(m.group(1) for m in _HELP_FLAG.finditer(head))
    return frozenset(flags)


def argv_flags(argv: list[str]) -> list[str]:
    """The flags (`--x`, `-x`, `--x=v` → `--x`) in an argv, in order, excluding values."""
    out = []
    for word in argv:
        if word.startswith("-") and not _is_number(word):
            out.append(word.split("=", 1)[0])
    return out


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def unknown_flags(argv: list[str], known: frozenset[str]) -> list[str]:
    """Flags in `argv` that this vLLM's help does not list (pass-through values are not flags)."""
    return [f for f in argv_flags(argv) if f not in known]
