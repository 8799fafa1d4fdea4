"""Where each vLLM server runs (issue 20): the memory share, tensor parallelism and devices of
every server when two run at once (the interleaved arms, think's two models), on GPUs and on
vLLM's CPU backend; the argv and the environment each server gets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from velobench.bins import vllm_env
from velobench.engines import vllm as vllm_engine
from velobench.engines import vllm_args
from velobench.engines.vllm_args import (
    GIB,
    Placement,
    cpu_placement,
    cpu_share,
    crowded,
    gpu_placements,
    kv_cache_bytes,
    split_devices,
)
from velobench.errors import VelobenchError
from velobench.results.config import RunConfig

SMOL = {"num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "hidden_size": 576}


def test_two_servers_on_one_gpu_split_vllms_share() -> None:
    a, b = gpu_placements(2, None, None, None)
    assert a.gpu_memory_utilization == b.gpu_memory_utilization == 0.45
    assert crowded([a, b]) is None
    # alone (a blocked run, one server at a time): vLLM's own 0.9
    assert [p.gpu_memory_utilization for p in gpu_placements(2, None, None, None, together=False)] == [
        0.9,
        0.9,
    ]


def test_devices_per_server_and_their_environment() -> None:
    a, b = gpu_placements(2, None, 2, "0,1/2,3")
    assert (a.devices, b.devices) == ("0,1", "2,3") and a.tensor_parallel_size == 2
    assert a.gpu_memory_utilization == b.gpu_memory_utilization == 0.9  # no device shared
    assert a.env() == {"CUDA_VISIBLE_DEVICES": "0,1"} and b.env() == {"CUDA_VISIBLE_DEVICES": "2,3"}
    assert Placement(0.45).env() == {}  # no --devices: the child inherits what velobench sees
    assert split_devices("0", 2) == ["0", "0"]
    with pytest.raises(VelobenchError, match="names 3 servers' devices, and 2 run"):
        split_devices("0/1/2", 2)
    with pytest.raises(VelobenchError, match="--devices 'gpu 0'"):
        split_devices("gpu 0", 2)


def test_a_given_share_too_large_for_two_is_crowded() -> None:
    placed = gpu_placements(2, 0.8, None, None)
    assert crowded(placed) == "--gpu-memory-utilization 0.8 + 0.8 is more than the 1 of the memory they share"
    assert crowded(gpu_placements(2, 0.8, None, "0/1")) is None  # each on its own GPU


def test_cpu_share_from_weights_kv_cache_and_overhead() -> None:
    # SmolLM2-135M in bf16 (260 MB), 2 GiB KV cache, 1 GiB overhead on a 15 GiB node: 0.22
    node = 15 * GIB
    assert cpu_share(260 * 2**20, 2.0, node) == pytest.approx(0.22)
    assert cpu_share(0, 0.0, 100 * GIB) == 0.05  # at least 5%
    assert cpu_share(64 * GIB, 2.0, 16 * GIB) == 0.9  # at most vLLM's 0.9
    # a context too long for the 2 GiB default gets the KV cache it needs, rounded up to 0.5 GiB
    kv = kv_cache_bytes(SMOL, 2048)
    assert kv == 2 * 30 * 3 * 64 * 2048 * 2
    assert cpu_placement(260 * 2**20, kv, node, 2).kvcache_gib == 2.0
    assert cpu_placement(260 * 2**20, 5 * GIB + 1, node, 2).kvcache_gib == 5.5
    assert cpu_placement(None, None, node, 2).gpu_memory_utilization == 0.45  # weights unknown: split
    assert kv_cache_bytes({"hidden_size": 8}, 16) is None


def install(tmp_path: Path, version: str) -> vllm_env.VllmInstall:
    return vllm_env.VllmInstall(
        bin=tmp_path / "vllm", source="--vllm-bin", python=None, versions={"vllm": version}
    )


def hf_folder(root: Path, name: str, weights: int) -> Path:
    d = root / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps(SMOL))
    (d / "model.safetensors").write_bytes(b"\0" * weights)
    return d


def engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, gpus: int, **cfg: object
) -> vllm_engine.VllmEngine:
    version = "0.32.0" if gpus else "0.32.0+cpu"
    monkeypatch.setattr(vllm_env, "locate", lambda b=None: install(tmp_path, version))
    monkeypatch.setattr(vllm_env, "cuda_device_count", lambda: gpus)
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("Node 0 MemTotal:       15728640 kB\nNode 0 MemFree:        12582912 kB\n")
    monkeypatch.setattr(vllm_engine, "NODE_MEMINFO", meminfo)
    target = hf_folder(tmp_path, "target", 3 * 2**20)
    values: dict[str, object] = {"main_model": str(target), "engine": "vllm", **cfg}
    if values.get("method", "draft") == "draft":
        values["draft_model"] = str(hf_folder(tmp_path, "draft", 2**20))
    return vllm_engine.VllmEngine(RunConfig.model_validate(values), log_dir=tmp_path / "logs")


def flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_interleaved_vllm_on_one_gpu_gives_each_server_half(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng = engine(tmp_path, monkeypatch, gpus=1, tensor_parallel_size=1, devices="0")
    for mode in ("vanilla", "speculative"):
        argv = eng.argv(mode, 8000)
        assert flag(argv, "--gpu-memory-utilization") == "0.45"
        assert flag(argv, "--tensor-parallel-size") == "1"
        assert eng.server_env(mode) == {"CUDA_VISIBLE_DEVICES": "0"}
    assert eng.side_by_side() is None


def test_blocked_vllm_gives_each_server_the_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    eng = engine(tmp_path, monkeypatch, gpus=1, schedule="blocked")
    assert flag(eng.argv("vanilla", 8000), "--gpu-memory-utilization") == "0.9"


def test_a_share_too_large_for_both_falls_back_to_blocked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng = engine(tmp_path, monkeypatch, gpus=1, gpu_memory_utilization=0.9)
    why = eng.side_by_side()
    assert why is not None and why.startswith(
        "two vLLM servers do not fit at once: --gpu-memory-utilization 0.9 + 0.9"
    )
    apart = tmp_path / "apart"
    apart.mkdir()
    eng = engine(apart, monkeypatch, gpus=2, devices="0/1", gpu_memory_utilization=0.9)
    assert eng.side_by_side() is None
    assert eng.server_env("speculative") == {"CUDA_VISIBLE_DEVICES": "1"}


def test_vllm_on_cpu_sizes_each_servers_share_of_the_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng = engine(tmp_path, monkeypatch, gpus=0)
    # weights (3 MiB; the draft adds 1 MiB) + 2 GiB KV cache + 1 GiB overhead of a 15 GiB node
    assert flag(eng.argv("vanilla", 8000), "--gpu-memory-utilization") == "0.21"
    assert flag(eng.argv("speculative", 8000), "--gpu-memory-utilization") == "0.21"
    env = eng.server_env("vanilla")
    assert env == {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_OMP_THREADS_BIND": "auto"}
    assert eng.side_by_side() is None  # 0.42 of the node, 0.8 of it free
    monkeypatch.setattr(vllm_args, "CPU_OVERHEAD_GIB", 5.0)  # 0.47 each: 0.94 > 0.8 free
    why = eng.side_by_side()
    assert why is not None and "0.47 + 0.47 is more than the 0.8 of the memory they share" in why


def test_think_sets_both_servers_up_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """think's two models, each its own vanilla-only engine: `peers` says two run at once."""
    eng = engine(tmp_path, monkeypatch, gpus=1, skip_speculative=True, method="ngram")
    assert eng.peers == 1 and flag(eng.argv("vanilla", 8000), "--gpu-memory-utilization") == "0.9"
    eng.peers = 2
    assert flag(eng.argv("vanilla", 8000), "--gpu-memory-utilization") == "0.45"
