"""Reading GGUF headers and llama.cpp's draft/target compatibility rules.

Small synthetic GGUFs (written with gguf.GGUFWriter) cover each rule; the real SmolLM2-135M and
Gemma-3-270M files (integration) cover the real cases.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from velobench.errors import VelobenchError
from velobench.models.gguf_info import check_draft_compatible, inspect_model, is_gguf

BASE_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<x>"] + [f"tok{i}" for i in range(200)]


def make_gguf(
    path: Path,
    tokens: list[str] = BASE_TOKENS,
    *,
    tokenizer: str = "gpt2",
    bos: int | None = 1,
    eos: int | None = 2,
    add_bos: bool | None = False,
    n_params: int = 12,
    chat_template: str | None = None,
) -> Path:
    """A small valid GGUF with a tokenizer and one F32 tensor of N_PARAMS elements."""
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("synthetic")
    w.add_context_length(2048)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model(tokenizer)
    w.add_token_list(tokens)
    if bos is not None:
        w.add_bos_token_id(bos)
    if eos is not None:
        w.add_eos_token_id(eos)
    if add_bos is not None:
        w.add_add_bos_token(add_bos)
    if chat_template is not None:
        w.add_chat_template(chat_template)
    w.add_tensor("weight", np.zeros(n_params, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# --- reading ----------------------------------------------------------------------------------


def test_is_gguf(tmp_path: Path) -> None:
    assert is_gguf(make_gguf(tmp_path / "m.gguf"))
    (tmp_path / "t.txt").write_text("hello")
    assert not is_gguf(tmp_path / "t.txt")
    assert not is_gguf(tmp_path / "absent.gguf")


def test_inspect_synthetic(tmp_path: Path) -> None:
    info = inspect_model(make_gguf(tmp_path / "m.gguf", n_params=30, chat_template="{{ x }}"))
    assert info.architecture == "llama"
    assert info.name == "synthetic"
    assert info.parameter_count == 30
    assert info.quantization == "F32"
    assert info.context_length == 2048
    assert (info.vocab_model, info.vocab_type, info.vocab_size) == ("gpt2", "BPE", len(BASE_TOKENS))
    assert (info.bos_id, info.eos_id, info.add_bos, info.add_eos) == (1, 2, False, False)
    assert info.has_chat_template


def test_spm_defaults_to_adding_bos(tmp_path: Path) -> None:
    info = inspect_model(make_gguf(tmp_path / "m.gguf", tokenizer="llama", add_bos=None))
    assert (info.vocab_type, info.add_bos, info.bos_id) == ("SPM", True, 1)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VelobenchError, match=r"^model file not found: .*absent\.gguf$"):
        inspect_model(tmp_path / "absent.gguf")


def test_not_a_gguf(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_text("this is not a model\n")
    with pytest.raises(VelobenchError, match=r"^not a GGUF file: .*model\.gguf$"):
        inspect_model(path)
    empty = tmp_path / "empty.gguf"
    empty.touch()
    with pytest.raises(VelobenchError, match="not a GGUF file"):
        inspect_model(empty)


def test_truncated_gguf(tmp_path: Path) -> None:
    full = make_gguf(tmp_path / "full.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(full[:200])
    with pytest.raises(VelobenchError, match=r"^not a valid GGUF file: .*cut\.gguf \("):
        inspect_model(cut)


def test_identical_vocab_is_compatible(tmp_path: Path) -> None:
    tgt = make_gguf(tmp_path / "t.gguf", n_params=1000)
    dft = make_gguf(tmp_path / "d.gguf", n_params=100)
    assert check_draft_compatible(tgt, dft) == []


def test_vocab_size_difference_up_to_128_is_allowed(tmp_path: Path) -> None:
    tgt = make_gguf(tmp_path / "t.gguf", BASE_TOKENS + [f"extra{i}" for i in range(128)], n_params=99)
    dft = make_gguf(tmp_path / "d.gguf")
    warnings = check_draft_compatible(tgt, dft)
    assert any("differ by 128 tokens" in w for w in warnings)


def test_vocab_size_difference_over_128_fails(tmp_path: Path) -> None:
    tgt = make_gguf(tmp_path / "t.gguf", BASE_TOKENS + [f"extra{i}" for i in range(129)])
    dft = make_gguf(tmp_path / "d.gguf")
    with pytest.raises(VelobenchError) as err:
        check_draft_compatible(tgt, dft)
    assert str(err.value) == (
        "draft d.gguf is incompatible with target t.gguf: vocabulary 205 tokens vs 334"
        " (llama.cpp allows a difference of at most 128)"
    )


def test_token_text_difference_fails_from_id_5(tmp_path: Path) -> None:
    tokens = list(BASE_TOKENS)
    tokens[7] = "other"
    tgt = make_gguf(tmp_path / "t.gguf", n_params=99)
    with pytest.raises(VelobenchError, match=r"1 token texts differ \(first: id 7 'other' vs 'tok2'\)"):
        check_draft_compatible(tgt, make_gguf(tmp_path / "d.gguf", tokens))
    # llama.cpp skips ids 0-4 (special tokens)
    tokens = list(BASE_TOKENS)
    tokens[4] = "<different>"
    assert check_draft_compatible(tgt, make_gguf(tmp_path / "d2.gguf", tokens)) == []


def test_bos_rules(tmp_path: Path) -> None:
    tgt = make_gguf(tmp_path / "t.gguf", add_bos=True, bos=1, n_params=99)
    with pytest.raises(VelobenchError, match=r"BOS token add=off id=1 vs add=on id=1"):
        check_draft_compatible(tgt, make_gguf(tmp_path / "d.gguf", add_bos=False, bos=1))
    with pytest.raises(VelobenchError, match=r"BOS token add=on id=3 vs add=on id=1"):
        check_draft_compatible(tgt, make_gguf(tmp_path / "d2.gguf", add_bos=True, bos=3))
    # BOS ids only matter when BOS is added
    tgt_no_bos = make_gguf(tmp_path / "t2.gguf", add_bos=False, bos=1, n_params=99)
    assert check_draft_compatible(tgt_no_bos, make_gguf(tmp_path / "d3.gguf", bos=3)) == []


def test_vocab_type_must_match(tmp_path: Path) -> None:
    tgt = make_gguf(tmp_path / "t.gguf", tokenizer="llama", add_bos=False, n_params=99)
    with pytest.raises(VelobenchError, match=r"tokenizer type BPE \(gpt2\) vs SPM \(llama\)"):
        check_draft_compatible(tgt, make_gguf(tmp_path / "d.gguf"))


def test_larger_draft_warns(tmp_path: Path) -> None:
    tgt = make_gguf(tmp_path / "t.gguf", n_params=10)
    dft = make_gguf(tmp_path / "d.gguf", n_params=1000)
    (warning,) = check_draft_compatible(tgt, dft)
    assert warning.startswith("draft d.gguf (1,000 parameters")
    assert "is not smaller than target t.gguf" in warning
