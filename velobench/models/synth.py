"""Synthetic model pairs: a random-weight GGUF target and draft with one shared vocabulary.

For hardware maps where no real model can be downloaded (an air-gapped cluster, a GPU machine
without a package index): the speed of a decode step depends on the shapes (layers, hidden
size, heads, feed-forward size, vocabulary) and the weight type, not on what the weights say.

    shapes (a preset, then explicit sizes)  →  vocabulary (built-in SPM, or a real GGUF's)
    →  per tensor, numpy's PCG64 seeded by (seed, model, tensor name)  →  F32 / F16 / Q8_0
    →  GGUFWriter: header, metadata, tensor infos, then each tensor's data as it is made

The files are reproducible (the same options give the same bytes, so the same sha256) and made
one tensor at a time, so an 8B shape never has to fit in memory at once. Each file carries
`velobench.synthetic = true` (read back by `gguf_info`); every result measured with one carries
the `synthetic-model` warning: such results are speeds, never model quality.

The built-in vocabulary is llama.cpp's SPM type (`tokenizer.ggml.model = "llama"`): <unk>, <s>,
</s>, the 256 byte tokens (<0x00>..<0xFF>, so any text tokenizes by byte fallback), then
generated pieces ("▁a", "▁b", ...) up to `vocab` tokens. `tokenizer_from` copies every
`tokenizer.*` key of a real GGUF instead (its size, its pre-tokenizer), so prompts tokenize
as that model's would. Target and draft get the same one either way, so the draft passes
llama.cpp's compatibility rules (`gguf_info.check_draft_compatible`). The output rows of the
special tokens are zero, so their logit is 0 against random others: greedy decoding never ends
a sequence early.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import gguf
import numpy as np

from velobench.errors import VelobenchError
from velobench.models.gguf_info import SYNTHETIC_KEY

ARCHITECTURES = ("llama", "qwen2")
WeightType = Literal["f32", "f16", "q8_0"]
WEIGHT_TYPES: dict[str, tuple[gguf.GGMLQuantizationType, int]] = {
    # name → (tensor type, general.file_type: llama.cpp's LLAMA_FTYPE_ALL_F32, MOSTLY_F16, MOSTLY_Q8_0)
    "f32": (gguf.GGMLQuantizationType.F32, 0),
    "f16": (gguf.GGMLQuantizationType.F16, 1),
    "q8_0": (gguf.GGMLQuantizationType.Q8_0, 7),
}
INIT_STD = 0.02  # weights ~ N(0, 0.02²), as GPT-2/Llama initialise them; norms are 1
RMS_EPS = 1e-5
SPM_SPECIALS = ("<unk>", "<s>", "</s>")  # ids 0, 1, 2: unknown, BOS, EOS
MIN_VOCAB = len(SPM_SPECIALS) + 256 + 1


@dataclass(frozen=True)
class Shape:
    """One model's sizes."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    ffn: int

    def check(self, who: str) -> None:
        for name in ("layers", "hidden", "heads", "kv_heads", "ffn"):
            if getattr(self, name) < 1:
                raise VelobenchError(
                    f"{who} {name.replace('_', '-')} must be >= 1, got {getattr(self, name)}"
                )
        if self.hidden % self.heads:
            raise VelobenchError(
                f"{who} hidden size {self.hidden} is not a multiple of its {self.heads} heads"
            )
        if self.heads % self.kv_heads:
            raise VelobenchError(
                f"{who} heads {self.heads} are not a multiple of its {self.kv_heads} KV heads"
            )
        if (self.hidden // self.heads) % 2:
            raise VelobenchError(f"{who} head size {self.hidden // self.heads} must be even (RoPE)")

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


@dataclass(frozen=True)
class Preset:
    target: Shape
    draft: Shape
    vocab: int
    ctx: int


PRESETS: dict[str, Preset] = {
    # seconds to write, for tests and smoke runs
    "tiny": Preset(Shape(4, 256, 4, 2, 512), Shape(2, 128, 2, 1, 256), vocab=512, ctx=2048),
    # Llama-3.2-1B's shape, drafted by a ~100M shape
    "1b": Preset(Shape(16, 2048, 32, 8, 8192), Shape(8, 768, 12, 4, 2048), vocab=128256, ctx=8192),
    # Llama-3-8B's shape, drafted by Llama-3.2-1B's
    "8b-shape": Preset(Shape(32, 4096, 32, 8, 14336), Shape(16, 2048, 32, 8, 8192), vocab=128256, ctx=8192),
}


@dataclass(frozen=True)
class SynthSpec:
    """Everything that decides a synthetic pair's bytes."""

    preset: str
    target: Shape
    draft: Shape
    vocab: int
    ctx: int
    arch: str = "llama"
    weight_type: WeightType = "f16"
    seed: int = 0
    tokenizer_from: Path | None = None


def spec_from(
    preset: str = "tiny",
    *,
    target: dict[str, int | None] | None = None,
    draft: dict[str, int | None] | None = None,
    vocab: int | None = None,
    ctx: int | None = None,
    arch: str = "llama",
    weight_type: str = "f16",
    seed: int = 0,
    tokenizer_from: Path | None = None,
) -> SynthSpec:
    """A preset with explicit sizes laid over it, checked; bad input is one line (VelobenchError)."""
    if preset not in PRESETS:
        raise VelobenchError(f"--preset {preset}: choose one of {', '.join(PRESETS)}")
    if arch not in ARCHITECTURES:
        raise VelobenchError(f"--arch {arch}: choose one of {', '.join(ARCHITECTURES)}")
    if weight_type not in WEIGHT_TYPES:
        raise VelobenchError(f"--type {weight_type}: choose one of {', '.join(WEIGHT_TYPES)}")
    p = PRESETS[preset]
    tshape = replace(p.target, **{k: v for k, v in (target or {}).items() if v is not None})
    dshape = replace(p.draft, **{k: v for k, v in (draft or {}).items() if v is not None})
    tshape.check("target")
    dshape.check("draft")
    if tokenizer_from is not None and vocab is not None:
        raise VelobenchError("--vocab and --tokenizer-from both set the vocabulary: give one")
    n_vocab = vocab if vocab is not None else p.vocab
    if tokenizer_from is None and n_vocab < MIN_VOCAB:
        raise VelobenchError(f"--vocab {n_vocab}: the built-in vocabulary needs at least {MIN_VOCAB} tokens")
    n_ctx = ctx if ctx is not None else p.ctx
    if n_ctx < 16:
        raise VelobenchError(f"--ctx {n_ctx}: a context of at least 16 tokens")
    if weight_type == "q8_0":
        block = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0]
        for who, s in (("target", tshape), ("draft", dshape)):
            if s.hidden % block or s.ffn % block:
                raise VelobenchError(
                    f"--type q8_0 needs the {who}'s hidden ({s.hidden}) and ffn ({s.ffn}) sizes in multiples of {block}"
                )
    return SynthSpec(
        preset=preset,
        target=tshape,
        draft=dshape,
        vocab=n_vocab,
        ctx=n_ctx,
        arch=arch,
        weight_type=weight_type,  # type: ignore[arg-type]  # checked above
        seed=seed,
        tokenizer_from=tokenizer_from,
    )


# --------------------------------------------------------------------------- vocabulary


@dataclass(frozen=True)
class Vocab:
    """The tokenizer.* metadata both models get: (key, value, type, element type) in order."""

    size: int
    special_ids: tuple[int, ...]  # their output rows are zero
    kvs: tuple[tuple[str, Any, gguf.GGUFValueType, gguf.GGUFValueType | None], ...]


def _piece(i: int) -> str:
    """The i-th generated piece: "▁" + i in base 26 over a-z, shortest first (a, b, ..., z, aa, ab, ...)."""
    letters = ""
    i += 1
    while i > 0:
        i, r = divmod(i - 1, 26)
        letters = chr(ord("a") + r) + letters
    return "▁" + letters


def builtin_vocab(size: int) -> Vocab:
    """The SPM vocabulary of `size` tokens (module docstring)."""
    tt = gguf.TokenType
    tokens = list(SPM_SPECIALS) + [f"<0x{b:02X}>" for b in range(256)]
    types = [tt.UNKNOWN, tt.CONTROL, tt.CONTROL] + [tt.BYTE] * 256
    scores = [0.0] * len(tokens)
    n_pieces = size - len(tokens)
    tokens += [_piece(i) for i in range(n_pieces)]
    types += [tt.NORMAL] * n_pieces
    scores += [-float(i) for i in range(n_pieces)]  # earlier (shorter) pieces first
    vt = gguf.GGUFValueType
    k = gguf.Keys.Tokenizer
    return Vocab(
        size=size,
        special_ids=(0, 1, 2),
        kvs=(
            (k.MODEL, "llama", vt.STRING, None),
            (k.LIST, tokens, vt.ARRAY, vt.STRING),
            (k.SCORES, scores, vt.ARRAY, vt.FLOAT32),
            (k.TOKEN_TYPE, [int(t) for t in types], vt.ARRAY, vt.INT32),
            (k.BOS_ID, 1, vt.UINT32, None),
            (k.EOS_ID, 2, vt.UINT32, None),
            (k.UNK_ID, 0, vt.UINT32, None),
            (k.ADD_BOS, True, vt.BOOL, None),
            (k.ADD_EOS, False, vt.BOOL, None),
        ),
    )


def copied_vocab(path: Path) -> Vocab:
    """Every `tokenizer.*` key of a real GGUF, as it is there (one line if it has none)."""
    try:
        reader = gguf.GGUFReader(path)
    except (OSError, ValueError) as exc:
        raise VelobenchError(f"--tokenizer-from {path}: cannot read it as GGUF ({exc})") from None
    kvs = []
    size = 0
    special: set[int] = set()
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        value = field.contents()
        if key == gguf.Keys.Tokenizer.LIST:
            size = len(value)
        if key == gguf.Keys.Tokenizer.TOKEN_TYPE:
            special |= {
                i for i, t in enumerate(value) if t in (gguf.TokenType.CONTROL, gguf.TokenType.UNKNOWN)
            }
        if key.endswith("_token_id") and isinstance(value, int):
            special.add(value)
        kvs.append((key, value, vtype, sub))
    if not size:
        raise VelobenchError(f"--tokenizer-from {path}: it has no tokenizer.ggml.tokens to copy")
    return Vocab(size=size, special_ids=tuple(sorted(i for i in special if i < size)), kvs=tuple(kvs))


# --------------------------------------------------------------------------- tensors


def tensor_shapes(arch: str, s: Shape, n_vocab: int) -> Iterator[tuple[str, tuple[int, ...]]]:
    """(name, numpy shape (rows, columns)) of every tensor, in file order; llama.cpp's
    dimensions are these reversed (`token_embd` is {n_embd, n_vocab})."""
    q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim
    yield "token_embd.weight", (n_vocab, s.hidden)
    for i in range(s.layers):
        b = f"blk.{i}."
        yield b + "attn_norm.weight", (s.hidden,)
        yield b + "attn_q.weight", (q, s.hidden)
        yield b + "attn_k.weight", (kv, s.hidden)
        yield b + "attn_v.weight", (kv, s.hidden)
        if arch == "qwen2":  # qwen2: biases on q, k, v
            yield b + "attn_q.bias", (q,)
            yield b + "attn_k.bias", (kv,)
            yield b + "attn_v.bias", (kv,)
        yield b + "attn_output.weight", (s.hidden, q)
        yield b + "ffn_norm.weight", (s.hidden,)
        yield b + "ffn_gate.weight", (s.ffn, s.hidden)
        yield b + "ffn_up.weight", (s.ffn, s.hidden)
        yield b + "ffn_down.weight", (s.hidden, s.ffn)
    yield "output_norm.weight", (s.hidden,)
    yield "output.weight", (n_vocab, s.hidden)


def _rng(seed: int, role: str, name: str) -> np.random.Generator:
    """A generator of its own per (seed, model, tensor): the same tensor whatever else changes."""
    digest = hashlib.sha256(f"{seed}|{role}|{name}".encode()).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little")))


def tensor_values(
    name: str, shape: tuple[int, ...], rng: np.random.Generator, special: tuple[int, ...]
) -> np.ndarray:
    """float32 values: norms 1, biases 0, weights N(0, INIT_STD²); output rows of special tokens 0."""
    if name.endswith("_norm.weight"):
        return np.ones(shape, dtype=np.float32)
    if name.endswith(".bias"):
        return np.zeros(shape, dtype=np.float32)
    x = rng.standard_normal(shape, dtype=np.float32)
    x *= INIT_STD
    if name == "output.weight":
        x[list(special)] = 0.0
    return x


def _stored(
    name: str, x: np.ndarray, weight_type: WeightType
) -> tuple[np.ndarray, gguf.GGMLQuantizationType]:
    """The data as written: 1-D tensors (norms, biases) stay F32, as llama.cpp's converter keeps them."""
    qtype = WEIGHT_TYPES[weight_type][0] if x.ndim == 2 else gguf.GGMLQuantizationType.F32
    if qtype == gguf.GGMLQuantizationType.F16:
        return x.astype(np.float16), qtype
    if qtype == gguf.GGMLQuantizationType.Q8_0:
        return gguf.quants.quantize(x, qtype), qtype
    return x, qtype


def _nbytes(shape: tuple[int, ...], qtype: gguf.GGMLQuantizationType) -> int:
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    return int(np.prod(shape)) // block * size


# --------------------------------------------------------------------------- files


def file_name(spec: SynthSpec, role: str) -> str:
    """`synth-tiny-llama-target-f16-s0.gguf`; sizes other than the preset's (or a copied tokenizer)
    add a short digest of them, so different shapes never share a name."""
    p = PRESETS[spec.preset]
    custom = (spec.target, spec.draft, spec.vocab, spec.ctx, spec.tokenizer_from) != (
        p.target,
        p.draft,
        p.vocab,
        p.ctx,
        None,
    )
    tag = ""
    if custom:
        what = repr((spec.target, spec.draft, spec.vocab, spec.ctx, str(spec.tokenizer_from)))
        tag = "-" + hashlib.sha256(what.encode()).hexdigest()[:8]
    return f"synth-{spec.preset}{tag}-{spec.arch}-{role}-{spec.weight_type}-s{spec.seed}.gguf"


def write_model(path: Path, spec: SynthSpec, role: str, shape: Shape, vocab: Vocab) -> Path:
    """One synthetic GGUF at `path`, written under a temporary name and renamed when complete."""
    arch = spec.arch
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    w = gguf.GGUFWriter(tmp, arch)
    try:
        w.add_name(f"velobench synthetic {spec.preset} {role} ({arch}, random weights, seed {spec.seed})")
        w.add_description(
            "random weights made by `velobench models synth`: for speed only, never model quality"
        )
        w.add_bool(SYNTHETIC_KEY, True)
        w.add_string("velobench.synthetic.role", role)
        w.add_uint32("velobench.synthetic.seed", spec.seed)
        w.add_context_length(spec.ctx)
        w.add_embedding_length(shape.hidden)
        w.add_block_count(shape.layers)
        w.add_feed_forward_length(shape.ffn)
        w.add_head_count(shape.heads)
        w.add_head_count_kv(shape.kv_heads)
        w.add_rope_dimension_count(shape.head_dim)
        w.add_rope_freq_base(10000.0 if arch == "llama" else 1000000.0)
        w.add_layer_norm_rms_eps(RMS_EPS)
        w.add_vocab_size(vocab.size)
        w.add_file_type(WEIGHT_TYPES[spec.weight_type][1])
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
        for key, value, vtype, sub in vocab.kvs:
            w.add_key_value(key, value, vtype, sub_type=sub)
        shapes = list(tensor_shapes(arch, shape, vocab.size))
        for name, shp in shapes:
            qtype = WEIGHT_TYPES[spec.weight_type][0] if len(shp) == 2 else gguf.GGMLQuantizationType.F32
            w.add_tensor_info(name, shp, np.dtype(np.float32), _nbytes(shp, qtype), raw_dtype=qtype)
        w.write_header_to_file(tmp)
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        for name, shp in shapes:
            x = tensor_values(name, shp, _rng(spec.seed, role, name), vocab.special_ids)
            data, _ = _stored(name, x, spec.weight_type)
            w.write_tensor_data(data)
        w.close()
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException:
        w.close()
        tmp.unlink(missing_ok=True)
        raise
    return path


def synth_pair(spec: SynthSpec, out_dir: Path) -> tuple[Path, Path]:
    """Write the target and the draft into `out_dir`; return their paths (target, draft)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise VelobenchError(f"--output-dir {out_dir}: not a directory")
    vocab = copied_vocab(spec.tokenizer_from) if spec.tokenizer_from else builtin_vocab(spec.vocab)
    target = write_model(out_dir / file_name(spec, "target"), spec, "target", spec.target, vocab)
    draft = write_model(out_dir / file_name(spec, "draft"), spec, "draft", spec.draft, vocab)
    return target, draft


def parameter_count(arch: str, shape: Shape, n_vocab: int) -> int:
    return sum(int(np.prod(s)) for _, s in tensor_shapes(arch, shape, n_vocab))
