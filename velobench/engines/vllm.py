"""Engine: vLLM's OpenAI-compatible server, one per mode, every generation a streamed request.

    session(mode):  vllm serve MODEL --served-model-name NAME --host 127.0.0.1 --port P --seed S
                    --no-enable-prefix-caching [--speculative-config JSON] [-x flags]
                    → /health ready (a deadline, while the process lives) → streamed requests
    generate():     GET /metrics → POST /v1/completions (or /chat/completions) → GET /metrics

vLLM is found by `bins.vllm_env.locate` (--vllm-bin, `vllm` on PATH, velobench's own env from
`velobench bins vllm`). Models: a Hugging Face id or folder as vLLM takes them; a GGUF (path,
catalog name, hf://) is converted once into a bf16 Hugging Face folder in velobench's cache
(`models.convert`), and the result records which file and digest it came from. The vanilla
server is the same command without --speculative-config. The API key of each run goes in
VLLM_API_KEY, never on the command line. Measurement is `engines.http_session`'s.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import shlex
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import psutil

from velobench.bins import vllm_env
from velobench.engines import vllm_args
from velobench.engines.base import OwnsFlags, ServerHandle
from velobench.engines.http_session import HttpSession, open_session
from velobench.errors import VelobenchError
from velobench.models.gguf_info import check_complete, is_gguf
from velobench.proc import ServerProcess, mode_port
from velobench.prompts import Prompt
from velobench.results.config import EngineName, RunConfig, Schedule, prepared_modes
from velobench.results.schema import BinaryInfo, Mode

# What velobench sets on every `vllm serve` it starts; `VllmEngine.check_options` refuses them in -x.
OWNED_FLAGS: dict[str, str] = {
    "--host": "velobench binds servers to 127.0.0.1 only",
    "--port": "use --port",
    "--api-key": "velobench gives vLLM a random API key per run",
    "--model": "use -m/--main-model",
    "--served-model-name": "velobench names the served model itself",
    "--seed": "use --seed",
    "--max-model-len": "use --max-model-len",
    **dict.fromkeys(("-tp", "--tensor-parallel-size"), "use --tensor-parallel-size"),
    "--gpu-memory-utilization": "use --gpu-memory-utilization (velobench sizes it per server otherwise)",
    "--dtype": "use --dtype",
    **dict.fromkeys(
        ("--enable-prefix-caching", "--no-enable-prefix-caching"),
        "velobench turns prefix caching off (every request is measured whole)",
    ),
    "--speculative-config": "velobench builds it from --method, --n-draft, -d, --ngram-min/--ngram-max, --draft-tp",
}

DEFAULT_START_TIMEOUT_S = 1800.0  # on 2 CPU cores a compiled start takes 3 to 6 minutes


def resolve_model(spec: str, install: vllm_env.VllmInstall, what: str) -> tuple[str, dict[str, str]]:
    """A model argument as vLLM takes it, and what the result records about where it came from.

    A GGUF (a file, a catalog name, hf://) is converted once into a Hugging Face folder; anything
    else (a Hugging Face id, a folder) is passed to vLLM as it is.
    """
    from velobench.models.catalog import load_catalog
    from velobench.models.catalog import resolve_model as resolve_gguf

    path = Path(spec).expanduser()
    is_catalog = spec in load_catalog().models or spec.startswith("hf://")
    if not is_catalog and not (path.is_file() and is_gguf(path)):
        if path.is_file():
            raise VelobenchError(
                f"{what} {spec} is a file but not a GGUF: vLLM takes a Hugging Face id or folder"
            )
        return spec, {}
    gguf = resolve_gguf(spec)
    if not path.is_file():  # fetched now; a file named on the command line was checked up front
        check_complete(gguf, what)
    if install.python is None:
        raise VelobenchError(f"cannot convert {spec} for vLLM: the Python of {install.bin} is unknown")
    from velobench.models.convert import convert_gguf

    done = convert_gguf(gguf, install.python, env=vllm_env.child_env(install))
    return done.path, {"converted_from": done.source_name, "source_sha256": done.source_sha256}


def weights_bytes(folder: str) -> int | None:
    """The size of a Hugging Face folder's weights (*.safetensors, else *.bin); None for a Hub id
    or a folder without them."""
    path = Path(folder)
    if not path.is_dir():
        return None
    for pattern in ("*.safetensors", "*.bin"):
        files = list(path.glob(pattern))
        if files:
            return sum(f.stat().st_size for f in files)
    return None


def kv_bytes(folder: str, context: int) -> int | None:
    """One sequence's KV cache at `context` tokens from the folder's config.json (`kv_cache_bytes`)."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return vllm_args.kv_cache_bytes(config, context) if isinstance(config, dict) else None


NODE_MEMINFO = Path("/sys/devices/system/node/node0/meminfo")


def node_memory(meminfo: Path | None = None) -> tuple[int, int]:
    """NUMA node 0's total and free bytes (what vLLM's CPU backend checks its share against);
    the machine's total and available where the node is not listed."""
    try:
        text = (meminfo or NODE_MEMINFO).read_text()
    except OSError:
        vm = psutil.virtual_memory()
        return int(vm.total), int(vm.available)
    kb = dict(re.findall(r"Node \d+ (\w+):\s+(\d+) kB", text))
    if not int(kb.get("MemTotal", 0)):
        return node_memory(Path("/nonexistent"))
    return int(kb["MemTotal"]) * 1024, int(kb.get("MemFree", 0)) * 1024


class VllmEngine(OwnsFlags):
    """vLLM's server: the model loads once per mode (minutes on a CPU); every generation a request."""

    OWNED = OWNED_FLAGS

    name = EngineName.VLLM
    default_warmup = 1  # vLLM's first request is several times slower than the next
    uses_gguf = False

    @classmethod
    def can_run(cls, cfg: RunConfig) -> str | None:
        if not cfg.method.vllm:
            return f"--method {cfg.method.value} is a llama.cpp method; vLLM has draft, ngram, eagle, eagle3, mtp, suffix"
        if cfg.server_url or cfg.baseline_url:
            return "--server-url/--baseline-url measure a running server: use --engine remote"
        return None

    @classmethod
    def available(cls, cfg: RunConfig) -> bool:
        try:
            vllm_env.locate(cfg.vllm_bin)
        except VelobenchError:
            return False
        return True

    def __init__(self, cfg: RunConfig, *, log_dir: Path):
        self.cfg = cfg
        self.log_dir = log_dir
        self.install = vllm_env.locate(cfg.vllm_bin)
        self.gpu = not self.install.is_cpu_build and vllm_env.cuda_device_count() > 0
        self.model, self.model_facts = resolve_model(cfg.main_model, self.install, "main model")
        self.draft: str | None = None
        self.draft_facts: dict[str, str] = {}
        if cfg.draft_model:
            self.draft, self.draft_facts = resolve_model(cfg.draft_model, self.install, "draft model")
        # servers up at once: both arms in an interleaved run; `velobench think` sets its own count
        both = not cfg.skip_vanilla and not cfg.skip_speculative
        self.peers = 2 if cfg.schedule is Schedule.INTERLEAVED and both else 1
        for mode in prepared_modes(cfg):
            self.argv(mode, 0)  # fail now on a bad option, before any model loads

    def placements(self) -> dict[Mode, vllm_args.Placement]:
        """Each mode's server placement (`vllm_args`): on GPUs the memory split among the servers
        up at once (unless --gpu-memory-utilization says), the devices from --devices; on vLLM's
        CPU backend each server's share of the NUMA node sized from its weights and context."""
        cfg, modes = self.cfg, prepared_modes(self.cfg)
        if self.gpu:
            ps = vllm_args.gpu_placements(
                len(modes),
                cfg.gpu_memory_utilization,
                cfg.tensor_parallel_size,
                cfg.devices,
                together=self.peers > 1,
            )
            return dict(zip(modes, ps, strict=True))
        context = cfg.max_model_len or cfg.ctx_size
        out: dict[Mode, vllm_args.Placement] = {}
        for mode in modes:
            folders = [self.model] + ([self.draft] if mode == "speculative" and self.draft else [])
            sizes = [weights_bytes(f) for f in folders]
            weights = None if any(w is None for w in sizes) else sum(w or 0 for w in sizes)
            kv = kv_bytes(self.model, context)
            p = vllm_args.cpu_placement(weights, kv, node_memory()[0], self.peers)
            if cfg.gpu_memory_utilization is not None:
                p = replace(p, gpu_memory_utilization=cfg.gpu_memory_utilization)
            out[mode] = replace(p, tensor_parallel_size=cfg.tensor_parallel_size)
        return out

    def side_by_side(self) -> str | None:
        """Both servers fit at once: on GPUs their shares of a shared device add up to at most 1;
        on a CPU to at most the NUMA node's share free now."""
        placed = list(self.placements().values())
        if self.gpu:
            why = vllm_args.crowded(placed)
        else:
            total, free = node_memory()
            why = vllm_args.crowded(placed, free_share=free / total)
        return None if why is None else f"two vLLM servers do not fit at once: {why}"

    def served_name(self) -> str:
        return Path(self.cfg.main_model).name.removesuffix(".gguf") or "model"

    def argv(self, mode: Mode, port: int, *, cache_prompt: bool = False) -> list[str]:
        cfg = self.cfg
        place = self.placements()[mode]
        opts = vllm_args.ServeOptions(
            model=self.model,
            served_model_name=self.served_name(),
            port=port or 8000,
            seed=cfg.seed,
            max_model_len=cfg.max_model_len or cfg.ctx_size,
            gpu_memory_utilization=place.gpu_memory_utilization,
            tensor_parallel_size=place.tensor_parallel_size,
            dtype=cfg.dtype,
            extra_args=tuple(cfg.extra_args),
            prefix_caching=cache_prompt,
        )
        spec = None
        if mode == "speculative":
            spec = vllm_args.SpecOptions(
                method=cfg.method.value,  # type: ignore[arg-type]  # can_run allows vLLM's methods only
                n_draft=cfg.n_draft,
                draft_model=self.draft,
                ngram_min=cfg.ngram_min,
                ngram_max=cfg.ngram_max,
                draft_tp=cfg.draft_tp,
            )
        return vllm_args.serve_argv(self.install.bin, opts, spec, gpu=self.gpu)

    def command_lines(self, prompt: Prompt) -> dict[str, str]:
        """What `--dry-run` prints: each mode's exact command line (the port is chosen at start)."""
        return {mode: shlex.join(self.argv(mode, self.cfg.port or 0)) for mode in prepared_modes(self.cfg)}

    def binaries(self) -> list[BinaryInfo]:
        versions = ", ".join(f"{k} {v}" for k, v in self.install.versions.items() if v and k != "vllm")
        return [
            BinaryInfo(
                name="vllm",
                path=str(self.install.bin),
                source=self.install.source,
                version=f"{self.install.version} ({versions})" if versions else self.install.version,
                commit=None,
            )
        ]

    def binary(self, mode: Mode) -> str:
        return "vllm serve"

    def server_env(self, mode: Mode) -> dict[str, str]:
        """This mode's server's own variables: its devices (CUDA_VISIBLE_DEVICES), and on CPU its
        KV cache (VLLM_CPU_KVCACHE_SPACE) and thread binding."""
        place = self.placements()[mode]
        return {**vllm_args.server_env(gpu=self.gpu, kvcache_gib=place.kvcache_gib), **place.env()}

    @contextlib.contextmanager
    def serve(
        self, mode: Mode, *, slots: int = 1, cache_prompt: bool = False, env: Mapping[str, str] | None = None
    ) -> Iterator[ServerHandle]:
        """`vllm serve` for `mode`; `env`: more variables for this server's environment alone."""
        port = mode_port(self.cfg.port, mode)
        key = secrets.token_urlsafe(24)
        tmp = Path(tempfile.mkdtemp(prefix="velobench-vllm-"))  # vLLM leaves a file per server in TMPDIR
        child = vllm_env.child_env(
            self.install,
            tmpdir=tmp,
            extra={**self.server_env(mode), **(env or {}), "VLLM_API_KEY": key},
        )
        timeout = self.cfg.server_timeout or DEFAULT_START_TIMEOUT_S
        facts = {**self.model_facts, **{f"draft_{k}": v for k, v in self.draft_facts.items()}}
        try:
            with ServerProcess(
                self.argv(mode, port, cache_prompt=cache_prompt),
                port,
                self.log_dir / f"vllm-{mode}.log",
                name="vllm",
                start_timeout_s=timeout,
                env=child,
            ) as server:
                yield ServerHandle(
                    base_url=server.base_url,
                    name="vllm",
                    endpoint="chat" if self.cfg.chat else "completions",
                    model=self.served_name(),
                    extra_body={"return_token_ids": True},  # exact tokens per chunk
                    api_key=key,
                    process=server,
                    version=self.install.version,
                    facts=facts,
                )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @contextlib.contextmanager
    def session(self, mode: Mode) -> Iterator[HttpSession]:
        with self.serve(mode) as handle, open_session(handle, self.cfg, mode) as session:
            yield session
