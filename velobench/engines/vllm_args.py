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

    `--gpu-memory-utilization` is passed wherever given: on a GPU the share of each device's
    memory, on vLLM's CPU backend the share of the NUMA node's memory it reserves (`placement`
    sizes both); `gpu` only says which backend this argv is for.
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
    if util is not None:
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


# ---------------------------------------------------------------- placement: where each server runs

GPU_SHARE = 0.9  # vLLM's default --gpu-memory-utilization for a server alone on its devices
CPU_OVERHEAD_GIB = 1.0  # a vLLM CPU server's own memory beside weights and KV cache (torch, buffers)
CPU_MIN_SHARE = 0.05
GIB = 2**30


@dataclass(frozen=True)
class Placement:
    """Where one vLLM server runs: its memory share, tensor parallelism and devices."""

    gpu_memory_utilization: float
    tensor_parallel_size: int | None = None
    devices: str | None = None  # CUDA_VISIBLE_DEVICES for this child alone (None: inherited)
    kvcache_gib: float | None = None  # CPU: VLLM_CPU_KVCACHE_SPACE

    def env(self) -> dict[str, str]:
        """Variables for this server's environment alone (never velobench's own)."""
        return {"CUDA_VISIBLE_DEVICES": self.devices} if self.devices is not None else {}


def split_devices(devices: str | None, servers: int) -> list[str | None]:
    """Each server's CUDA_VISIBLE_DEVICES from `--devices`: one list for all ("0" or "0,1"), or
    one per server separated by "/" ("0/1": the first server on GPU 0, the second on GPU 1)."""
    if devices is None:
        return [None] * servers
    parts: list[str | None] = [d.strip() for d in devices.split("/")]
    if any(not re.fullmatch(r"[0-9A-Za-z-]+(,[0-9A-Za-z-]+)*", d or "") for d in parts):
        raise VelobenchError(
            f"--devices {devices!r}: give GPU indices like 0 or 0,1, one list per server as 0/1"
        )
    if len(parts) == 1:
        return parts * servers
    if len(parts) != servers:
        raise VelobenchError(f"--devices {devices!r} names {len(parts)} servers' devices, and {servers} run")
    return list(parts)


def _overlap(a: str | None, b: str | None) -> bool:
    """Do two servers' device lists share a GPU? (None: every GPU is visible.)"""
    return a is None or b is None or bool(set(a.split(",")) & set(b.split(",")))


def sharing(devices: list[str | None]) -> list[int]:
    """How many of the servers share a device with each one (itself included): servers without
    their own devices all see every GPU, so they share."""
    return [sum(1 for b in devices if _overlap(a, b)) for a in devices]


def gpu_placements(
    servers: int,
    utilization: float | None,
    tensor_parallel_size: int | None,
    devices: str | None,
    *,
    together: bool = True,
) -> list[Placement]:
    """One Placement per server on GPUs: `utilization` where given, else vLLM's 0.9 split evenly
    among the servers that share a device when they run `together` (0.45 each for two on one
    GPU), so both can start; 0.9 for a server that runs alone on its devices."""
    where = split_devices(devices, servers)
    return [
        Placement(
            gpu_memory_utilization=utilization
            if utilization is not None
            else round(GPU_SHARE / (n if together else 1), 2),
            tensor_parallel_size=tensor_parallel_size,
            devices=d,
        )
        for d, n in zip(where, sharing(where), strict=True)
    ]


def kv_cache_bytes(config: dict[str, object], context: int, dtype_bytes: int = 2) -> int | None:
    """K and V of one sequence of `context` tokens: 2 · layers · kv_heads · head_dim · context ·
    dtype_bytes, from a Hugging Face config.json (None where it lacks the sizes)."""

    def num(*names: str) -> int | None:
        for n in names:
            v = config.get(n)
            if isinstance(v, int) and v > 0:
                return v
        return None

    layers = num("num_hidden_layers", "n_layer")
    heads = num("num_attention_heads", "n_head")
    hidden = num("hidden_size", "n_embd")
    if layers is None or heads is None or hidden is None:
        return None
    kv_heads = num("num_key_value_heads") or heads
    head_dim = num("head_dim") or hidden // heads
    return 2 * layers * kv_heads * head_dim * context * dtype_bytes


def cpu_share(weights_bytes: int, kvcache_gib: float, node_bytes: int) -> float:
    """The share of the NUMA node's memory one CPU server reserves (its --gpu-memory-utilization):
    (weights + KV cache + CPU_OVERHEAD_GIB) / node memory, rounded up to 0.01, at least 0.05 and at
    most 0.9 (vLLM refuses to start unless that share of the node is free)."""
    need = weights_bytes + (kvcache_gib + CPU_OVERHEAD_GIB) * GIB
    share = -(-need * 100 // node_bytes) / 100
    return min(GPU_SHARE, max(CPU_MIN_SHARE, share))


def cpu_placement(
    weights_bytes: int | None, kv_bytes: int | None, node_bytes: int, servers: int
) -> Placement:
    """A CPU server's Placement: its KV cache (VLLM_CPU_KVCACHE_SPACE) the default 2 GiB or, where
    the context needs more (`kv_bytes`, from `kv_cache_bytes`), that rounded up to 0.5 GiB; its
    share from `cpu_share`, or 0.9 split among the `servers` where the weights' size is unknown."""
    kv = float(DEFAULT_CPU_KVCACHE_GIB)
    if kv_bytes is not None and kv_bytes > kv * GIB:
        kv = -(-kv_bytes * 2 // GIB) / 2
    if weights_bytes is None:
        return Placement(gpu_memory_utilization=round(GPU_SHARE / servers, 2), kvcache_gib=kv)
    return Placement(gpu_memory_utilization=cpu_share(weights_bytes, kv, node_bytes), kvcache_gib=kv)


def crowded(placements: list[Placement], free_share: float = 1.0) -> str | None:
    """Why these servers cannot all run at once, or None: the shares of the servers that share a
    device with one of them add up to more than `free_share` (1.0 on GPUs; on a CPU the node's
    share free now)."""
    for p in placements:
        peers = [q for q in placements if _overlap(p.devices, q.devices)]
        total = sum(q.gpu_memory_utilization for q in peers)
        if len(peers) > 1 and total > free_share + 1e-9:
            shares = " + ".join(f"{q.gpu_memory_utilization:g}" for q in peers)
            return f"--gpu-memory-utilization {shares} is more than the {free_share:.2g} of the memory they share"
    return None


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
