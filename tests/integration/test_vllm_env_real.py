"""The real vLLM environment and conversion (velobench's cache, made by `python -m velobench.bins.vllm_env`).

No server is started here (that is the engine's integration test, one server per mode per
session): these check that the installed vLLM still knows every flag velobench passes and
that the converted SmolLM2 folder is complete and recorded.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from velobench.bins import vllm_env
from velobench.engines import vllm_args
from velobench.fetch import sha256_file
from velobench.models.convert import ConvertedModel, convert_gguf, find_converted, read_converted
from velobench.paths import cache_dir

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parent.parent / "fixtures" / "vllm" / "help-all.txt"


@pytest.fixture(scope="session")
def vllm() -> vllm_env.VllmInstall:
    """velobench's real vLLM (located before the per-test cache isolation)."""
    try:
        return vllm_env.locate()
    except Exception as exc:  # pragma: no cover - the CI prepares it
        pytest.fail(f"no vLLM: {exc} (python -m velobench.bins.vllm_env makes it)")


@pytest.fixture(scope="session")
def smol_gguf() -> Path:
    path = cache_dir() / "models" / "smollm2-135m-instruct-q4_1.gguf"
    if not path.is_file():  # pragma: no cover
        pytest.fail(f"{path} missing: velobench models pull smollm2-135m")
    return path


def test_the_installed_vllm_knows_every_flag_velobench_passes(vllm: vllm_env.VllmInstall) -> None:
    res = subprocess.run(
        [str(vllm.bin), "serve", "--help=all"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=vllm_env.child_env(vllm),
        timeout=300,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-500:]
    known = vllm_args.parse_help_flags(res.stdout)
    opts = vllm_args.ServeOptions(
        model="m", served_model_name="m", port=8000, max_model_len=2048, gpu_memory_utilization=0.9,
        tensor_parallel_size=1, dtype="bfloat16",
    )  # fmt: skip
    for spec in (None, vllm_args.SpecOptions("ngram", n_draft=4, ngram_min=2, ngram_max=4)):
        assert vllm_args.unknown_flags(vllm_args.serve_argv(vllm.bin, opts, spec, gpu=True), known) == []
    # The committed fixture is what this vLLM prints (re-capture it after an upgrade).
    assert known == vllm_args.parse_help_flags(FIXTURE.read_text())


def test_velobench_env_is_finished_and_records_versions(vllm: vllm_env.VllmInstall) -> None:
    if vllm.env is None:
        pytest.skip(f"vLLM from {vllm.source}, not velobench's env")
    info = json.loads((vllm.env.root / vllm_env.MARKER).read_text())
    assert info["versions"]["vllm"] == vllm.version
    for pkg in ("torch", "transformers", "accelerate", "gguf"):
        assert info["versions"][pkg], pkg
    if vllm.env.device == "cpu":
        assert vllm.is_cpu_build and vllm.version.endswith("+cpu")


@pytest.fixture(scope="session")
def smol_converted(vllm: vllm_env.VllmInstall, smol_gguf: Path) -> ConvertedModel:
    """SmolLM2 as a Hugging Face folder in the real cache (converted here on first use: about 30 s)."""
    assert vllm.python is not None
    done = find_converted(smol_gguf)
    return done or convert_gguf(smol_gguf, vllm.python, env=vllm_env.child_env(vllm), log=lambda s: None)


def test_smollm2_conversion_is_complete_and_recorded(smol_converted: ConvertedModel, smol_gguf: Path) -> None:
    done = smol_converted
    folder = Path(done.path)
    assert read_converted(folder) == done
    assert done.source_name == smol_gguf.name and done.architectures == ["LlamaForCausalLM"]
    assert done.source_sha256 == sha256_file(smol_gguf) and folder.name == done.source_sha256[:16]
    assert 130_000_000 < done.parameters < 140_000_000
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (folder / name).is_file(), name
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "bfloat16"
