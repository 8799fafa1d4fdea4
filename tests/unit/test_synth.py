"""`velobench models synth`: random-weight GGUF pairs (pure: the files are written and read back)."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from velobench.errors import VelobenchError
from velobench.fetch import sha256_file
from velobench.models import synth
from velobench.models.gguf_info import check_complete, check_draft_compatible, inspect_model, read_tokens


def _pair(tmp: Path, **kw: object) -> tuple[Path, Path]:
    return synth.synth_pair(synth.spec_from(**kw), tmp)  # type: ignore[arg-type]


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a = _pair(tmp_path / "a", seed=3)
    b = _pair(tmp_path / "b", seed=3)
    c = _pair(tmp_path / "c", seed=4)
    assert [sha256_file(p) for p in a] == [sha256_file(p) for p in b]
    assert sha256_file(a[0]) != sha256_file(c[0]) and sha256_file(a[1]) != sha256_file(c[1])


@pytest.mark.parametrize("wtype", ["f32", "f16", "q8_0"])
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_pair_is_complete_marked_and_compatible(tmp_path: Path, arch: str, wtype: str) -> None:
    target, draft = _pair(tmp_path, arch=arch, weight_type=wtype)
    for path, role, shape in (
        (target, "target", synth.PRESETS["tiny"].target),
        (draft, "draft", synth.PRESETS["tiny"].draft),
    ):
        check_complete(path, role)  # as long as the header declares
        info = inspect_model(path)
        assert info.synthetic and info.architecture == arch
        assert info.vocab_type == "SPM" and info.vocab_size == 512
        assert info.parameter_count == synth.parameter_count(arch, shape, 512)
        assert info.quantization == wtype.upper()
        assert role in (info.name or "") and path.stat().st_mode & 0o644 == 0o644
    assert check_draft_compatible(target, draft) == []  # llama.cpp's vocabulary rules pass, no warning


def test_tensor_values_and_layout(tmp_path: Path) -> None:
    target, _ = _pair(tmp_path, arch="qwen2", weight_type="f32")
    r = gguf.GGUFReader(target)
    t = {x.name: x for x in r.tensors}
    s = synth.PRESETS["tiny"].target
    assert list(t["token_embd.weight"].shape) == [s.hidden, 512]  # ggml order: {n_embd, n_vocab}
    assert list(t["blk.0.attn_k.weight"].shape) == [s.hidden, s.kv_heads * s.head_dim]
    assert "blk.0.attn_q.bias" in t and f"blk.{s.layers - 1}.ffn_down.weight" in t
    w = np.asarray(t["blk.1.ffn_up.weight"].data)
    assert abs(float(w.std()) - synth.INIT_STD) < 0.002 and abs(float(w.mean())) < 0.002
    assert np.all(np.asarray(t["output_norm.weight"].data) == 1.0)
    out = np.asarray(t["output.weight"].data)
    assert not out[:3].any() and out[3:].any()  # <unk>, <s>, </s> never win a greedy step
    assert r.fields[synth.SYNTHETIC_KEY].contents() is True


def test_builtin_vocab_bytes_and_pieces() -> None:
    v = synth.builtin_vocab(300)
    tokens = dict((k, val) for k, val, _, _ in v.kvs)[gguf.Keys.Tokenizer.LIST]
    assert len(tokens) == 300 == len(set(tokens))
    assert tokens[:3] == ["<unk>", "<s>", "</s>"] and tokens[3 + 0x0A] == "<0x0A>"
    assert tokens[259:262] == ["▁a", "▁b", "▁c"] and synth._piece(26) == "▁aa"


def test_tokenizer_copied_from_another_gguf(tmp_path: Path) -> None:
    src, _ = _pair(tmp_path / "src", vocab=400)
    target, draft = _pair(tmp_path / "copy", tokenizer_from=src, seed=1)
    assert read_tokens(target) == read_tokens(src) == read_tokens(draft)
    assert inspect_model(target).vocab_size == 400 and "-" in target.name.removeprefix("synth-tiny")


def test_explicit_sizes_override_the_preset(tmp_path: Path) -> None:
    target, _ = _pair(tmp_path, target={"layers": 3, "ffn": 384}, draft={"hidden": 64})
    assert inspect_model(target).tensor_count == 2 + 3 * 9 + 1
    preset = synth.spec_from()
    assert synth.file_name(preset, "target") == "synth-tiny-llama-target-f16-s0.gguf"
    assert target.name != synth.file_name(preset, "target")  # another shape, another name


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"preset": "70b"}, "--preset 70b: choose one of tiny, 1b, 8b-shape"),
        ({"arch": "gpt2"}, "--arch gpt2: choose one of llama, qwen2"),
        ({"weight_type": "q4_0"}, "--type q4_0: choose one of f32, f16, q8_0"),
        ({"target": {"hidden": 250}}, "target hidden size 250 is not a multiple of its 4 heads"),
        ({"draft": {"kv_heads": 3}}, "draft heads 2 are not a multiple of its 3 KV heads"),
        ({"target": {"layers": 0}}, "target layers must be >= 1, got 0"),
        ({"vocab": 100}, "--vocab 100: the built-in vocabulary needs at least 260 tokens"),
        (
            {"weight_type": "q8_0", "draft": {"ffn": 100}},
            "--type q8_0 needs the draft's hidden (128) and ffn (100)",
        ),
        ({"vocab": 300, "tokenizer_from": Path("x.gguf")}, "--vocab and --tokenizer-from both set"),
    ],
)
def test_bad_input_is_one_line(kw: dict[str, object], message: str) -> None:
    with pytest.raises(VelobenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        synth.spec_from(**kw)  # type: ignore[arg-type]


def test_tokenizer_from_a_file_without_one(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all")
    with pytest.raises(VelobenchError, match=r"--tokenizer-from .*cannot read it as GGUF"):
        synth.copied_vocab(bad)
