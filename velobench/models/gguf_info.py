"""Read a GGUF file's header: what model it is, and whether it can draft for another.

`gguf.GGUFReader` (llama.cpp's Python reader) builds a numpy view for every array element, which
takes seconds for a 150k-token vocabulary; this module walks the header itself with `struct`
over an mmap (tenths of a second) and uses the `gguf` package for the format's constants.

Why one module over 400 lines: it is one file format's reader (header walk, metadata, llama.cpp's
vocabulary-compatibility rules, completeness); splitting the walk from its users would expose its
offsets.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
from pydantic import BaseModel

from velobench.errors import VelobenchError

GGUF_MAGIC_BYTES = b"GGUF"
# llama.cpp's own reader (ggml/src/gguf.cpp) rejects nested arrays outright; a few levels are read
# here, and deeper nesting (which would otherwise end in a RecursionError) is a corrupt file.
MAX_ARRAY_DEPTH = 8
# A count (of keys, tensors, array elements) above this is corrupt whatever the file's length
# (2^40: a terabyte of one-byte elements); below it, one the file cannot hold means it was cut short.
MAX_COUNT = 1 << 40

SYNTHETIC_KEY = "velobench.synthetic"  # set by `velobench models synth` (models/synth.py)

# llama.cpp common/speculative.cpp
SPEC_VOCAB_MAX_SIZE_DIFFERENCE = 128
SPEC_VOCAB_CHECK_START_TOKEN_ID = 5

_VT = gguf.GGUFValueType
_SCALAR_FORMATS: dict[int, str] = {
    _VT.UINT8: "<B",
    _VT.INT8: "<b",
    _VT.UINT16: "<H",
    _VT.INT16: "<h",
    _VT.UINT32: "<I",
    _VT.INT32: "<i",
    _VT.FLOAT32: "<f",
    _VT.BOOL: "<?",
    _VT.UINT64: "<Q",
    _VT.INT64: "<q",
    _VT.FLOAT64: "<d",
}

# tokenizer.ggml.model -> llama_vocab_type (src/llama-vocab.cpp, llama_vocab::impl::load)
_VOCAB_TYPES = {
    "no_vocab": "NONE",
    "none": "NONE",
    "llama": "SPM",
    "bert": "WPM",
    "gpt2": "BPE",
    "hybriddna": "BPE",
    "whitespace": "BPE",
    "gemma4": "BPE",
    "t5": "UGM",
    "rwkv": "RWKV",
    "test": "TEST",
    "plamo2": "PLAMO2",
}
# Default special token ids per vocab type, before the file's own keys override them.
_DEFAULT_BOS_EOS: dict[str, tuple[int | None, int | None]] = {
    "SPM": (1, 2),
    "WPM": (101, None),
    "BPE": (11, 11),
    "UGM": (None, 1),
    "RWKV": (None, None),
    "TEST": (None, None),
    "PLAMO2": (1, 2),
    "NONE": (None, None),
}
# Default add_bos / add_eos per vocab type; BPE pre-tokenizers that turn add_bos on.
_DEFAULT_ADD: dict[str, tuple[bool, bool]] = {
    "SPM": (True, False),
    "WPM": (True, False),
    "UGM": (False, True),
}
_BPE_PRE_ADD_BOS = {
    "llama3",
    "llama-v3",
    "llama-bpe",
    "falcon3",
    "falcon-h1",
    "pixtral",
    "midm-2.0",
    "lfm2",
    "jina-v5-nano",
    "tekken",
    "chameleon",
    "gemma4",
}


class ModelInfo(BaseModel):
    """What a GGUF file's header says about the model in it."""

    path: Path
    file_size: int
    gguf_version: int
    architecture: str
    name: str | None = None
    size_label: str | None = None
    parameter_count: int
    tensor_count: int
    file_type: int | None = None
    quantization: str | None = None
    context_length: int | None = None
    vocab_model: str | None = None
    vocab_pre: str | None = None
    vocab_type: str
    vocab_size: int
    bos_id: int | None = None
    eos_id: int | None = None
    add_bos: bool
    add_eos: bool
    has_chat_template: bool
    synthetic: bool = False  # random weights from `velobench models synth`: speed only, never quality


@dataclass
class _Header:
    version: int
    metadata: dict[str, Any] = field(default_factory=dict)
    array_lengths: dict[str, int] = field(default_factory=dict)
    tokens: list[bytes] | None = None
    tensors: list[tuple[str, tuple[int, ...], int]] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)  # each tensor's data offset, from the data start
    end: int = 0  # where the header (key-values and tensor infos) ends


class _Corrupt(Exception):
    pass


class _Truncated(_Corrupt):
    """The header itself runs past the end of the file."""


def is_gguf(path: str | os.PathLike[str]) -> bool:
    """True when the file starts with the GGUF magic bytes."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC_BYTES
    except OSError:
        return False


def _open_checked(path: Path) -> None:
    if not path.exists():
        raise VelobenchError(f"model file not found: {path}")
    if not path.is_file():
        raise VelobenchError(f"model path is not a file: {path}")
    if not is_gguf(path):
        raise VelobenchError(f"not a GGUF file: {path}")


class _Walker:
    """Sequential little-endian reads over a buffer, with bounds checks."""

    def __init__(self, buf: mmap.mmap) -> None:
        self.buf = buf
        self.off = 0
        self.end = len(buf)

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.off + size > self.end:
            raise _Truncated("unexpected end of file")
        (value,) = struct.unpack_from(fmt, self.buf, self.off)
        self.off += size
        return value

    def string(self) -> bytes:
        n = self.unpack("<Q")
        if self.off + n > self.end:
            raise _Truncated("string runs past end of file")
        s = self.buf[self.off : self.off + n]
        self.off += n
        return s

    def skip_strings(self, count: int) -> None:
        buf, off, end = self.buf, self.off, self.end
        unpack_from = struct.unpack_from
        for _ in range(count):
            if off + 8 > end:
                raise _Truncated("string array runs past end of file")
            (n,) = unpack_from("<Q", buf, off)
            off += 8 + n
            if off > end:
                raise _Truncated("string array runs past end of file")
        self.off = off

    def read_strings(self, count: int) -> list[bytes]:
        buf, off, end = self.buf, self.off, self.end
        unpack_from = struct.unpack_from
        out: list[bytes] = []
        append = out.append
        for _ in range(count):
            if off + 8 > end:
                raise _Truncated("string array runs past end of file")
            (n,) = unpack_from("<Q", buf, off)
            off += 8
            if off + n > end:
                raise _Truncated("string array runs past end of file")
            append(buf[off : off + n])
            off += n
        self.off = off
        return out

    def value(self, vtype: int) -> Any:
        if vtype == _VT.STRING:
            return self.string().decode("utf-8", errors="replace")
        fmt = _SCALAR_FORMATS.get(vtype)
        if fmt is None:
            raise _Corrupt(f"unknown value type {vtype}")
        return self.unpack(fmt)

    def skip_array(self, etype: int, count: int, depth: int = 1) -> None:
        if etype == _VT.STRING:
            self.skip_strings(count)
        elif etype == _VT.ARRAY:
            if depth >= MAX_ARRAY_DEPTH:
                raise _Corrupt(f"arrays nested more than {MAX_ARRAY_DEPTH} deep")
            for _ in range(count):
                inner_type = self.unpack("<I")
                inner_count = self.unpack("<Q")
                self.skip_array(inner_type, inner_count, depth + 1)
        else:
            fmt = _SCALAR_FORMATS.get(etype)
            if fmt is None:
                raise _Corrupt(f"unknown array element type {etype}")
            self.off += struct.calcsize(fmt) * count
            if self.off > self.end:
                raise _Truncated("array runs past end of file")


PULL_AGAIN = "(a partial download? pull it again)"


def _read_header(path: Path, *, want_tokens: bool, what: str | None = None) -> _Header:
    """The parsed header; with `what` (e.g. "draft model"), a header cut short says truncated."""
    _open_checked(path)
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(buf, want_tokens=want_tokens)
    except _Truncated as e:
        if what is None:
            raise VelobenchError(f"not a valid GGUF file: {path} ({e})") from None
        size = path.stat().st_size
        raise VelobenchError(
            f"{what} {path} is truncated: {size:,} bytes end inside its header {PULL_AGAIN}"
        ) from None
    except _Corrupt as e:
        raise VelobenchError(f"not a valid GGUF file: {path} ({e})") from None
    except (struct.error, ValueError, OverflowError) as e:
        raise VelobenchError(f"not a valid GGUF file: {path} ({e})") from None
    except RecursionError:
        raise VelobenchError(f"not a valid GGUF file: {path} (its header nests too deep to read)") from None
    except OSError as e:
        raise VelobenchError(f"cannot read {path}: {e.strerror or e}") from None


def _parse(buf: mmap.mmap, *, want_tokens: bool) -> _Header:
    w = _Walker(buf)
    w.off = 4
    version = w.unpack("<I")
    if version not in (2, 3):
        raise _Corrupt(f"unsupported GGUF version {version}")
    n_tensors = w.unpack("<Q")
    n_kv = w.unpack("<Q")
    if n_kv > MAX_COUNT or n_tensors > MAX_COUNT:
        raise _Corrupt("implausible header counts")
    if n_kv > w.end or n_tensors > w.end:  # plausible counts the rest of the file cannot hold
        raise _Truncated("the header's counts run past the end of the file")
    header = _Header(version=version)
    for _ in range(n_kv):
        key = w.string().decode("utf-8", errors="replace")
        vtype = w.unpack("<I")
        if vtype != _VT.ARRAY:
            header.metadata[key] = w.value(vtype)
            continue
        etype = w.unpack("<I")
        count = w.unpack("<Q")
        if count > MAX_COUNT:
            raise _Corrupt(f"implausible array length for {key}")
        if count > w.end:  # every element takes a byte at least: the file ends before the array
            raise _Truncated(f"array {key} runs past end of file")
        header.array_lengths[key] = count
        if key == gguf.Keys.Tokenizer.LIST and etype == _VT.STRING and want_tokens:
            header.tokens = w.read_strings(count)
        else:
            w.skip_array(etype, count)
    for _ in range(n_tensors):
        name = w.string().decode("utf-8", errors="replace")
        n_dims = w.unpack("<I")
        if n_dims > 8:
            raise _Corrupt(f"tensor {name} has {n_dims} dimensions")
        dims = tuple(w.unpack("<Q") for _ in range(n_dims))
        ttype = w.unpack("<I")
        header.offsets.append(w.unpack("<Q"))
        header.tensors.append((name, dims, ttype))
    header.end = w.off
    return header


def _quant_name(file_type: int | None, tensors: list[tuple[str, tuple[int, ...], int]]) -> str | None:
    if file_type is not None:
        try:
            name = gguf.LlamaFileType(file_type).name
        except ValueError:
            return f"file_type {file_type}"
        return name.removeprefix("MOSTLY_").removeprefix("ALL_")
    # No general.file_type: name the tensor type holding most of the weights.
    counts: Counter[int] = Counter()
    for _, dims, ttype in tensors:
        counts[ttype] += _n_elements(dims)
    if not counts:
        return None
    ttype = counts.most_common(1)[0][0]
    try:
        return gguf.GGMLQuantizationType(ttype).name
    except ValueError:
        return f"ggml type {ttype}"


def _n_elements(dims: tuple[int, ...]) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def _vocab_settings(md: dict[str, Any], n_vocab: int) -> tuple[str, int | None, int | None, bool, bool]:
    """vocab type, BOS id, EOS id, add_bos, add_eos, as llama.cpp's vocab loader works them out."""
    model = md.get(gguf.Keys.Tokenizer.MODEL)
    pre = md.get(gguf.Keys.Tokenizer.PRE)
    vtype = _VOCAB_TYPES.get(str(model), "UNKNOWN") if model is not None else "NONE"
    bos, eos = _DEFAULT_BOS_EOS.get(vtype, (None, None))
    # Defaults out of the vocab's range are disabled; the file's own ids win when in range.
    bos = bos if bos is not None and bos < n_vocab else None
    eos = eos if eos is not None and eos < n_vocab else None
    file_bos = md.get(gguf.Keys.Tokenizer.BOS_ID)
    file_eos = md.get(gguf.Keys.Tokenizer.EOS_ID)
    if isinstance(file_bos, int) and 0 <= file_bos < n_vocab:
        bos = file_bos
    if isinstance(file_eos, int) and 0 <= file_eos < n_vocab:
        eos = file_eos
    add_bos, add_eos = _DEFAULT_ADD.get(vtype, (False, False))
    if vtype == "BPE" and pre in _BPE_PRE_ADD_BOS:
        add_bos = True
    if gguf.Keys.Tokenizer.ADD_BOS in md:
        add_bos = bool(md[gguf.Keys.Tokenizer.ADD_BOS])
    if gguf.Keys.Tokenizer.ADD_EOS in md:
        add_eos = bool(md[gguf.Keys.Tokenizer.ADD_EOS])
    if pre == "gemma4":
        add_bos = True
    return vtype, bos, eos, add_bos, add_eos


def _info(path: Path, header: _Header) -> ModelInfo:
    md = header.metadata
    arch = str(md.get(gguf.Keys.General.ARCHITECTURE, "unknown"))
    n_vocab = header.array_lengths.get(gguf.Keys.Tokenizer.LIST, 0)
    vtype, bos, eos, add_bos, add_eos = _vocab_settings(md, n_vocab)
    file_type = md.get(gguf.Keys.General.FILE_TYPE)
    ctx = md.get(f"{arch}.context_length")
    return ModelInfo(
        path=path,
        file_size=path.stat().st_size,
        gguf_version=header.version,
        architecture=arch,
        name=md.get(gguf.Keys.General.NAME),
        size_label=md.get(gguf.Keys.General.SIZE_LABEL),
        parameter_count=sum(_n_elements(dims) for _, dims, _ in header.tensors),
        tensor_count=len(header.tensors),
        file_type=file_type if isinstance(file_type, int) else None,
        quantization=_quant_name(file_type if isinstance(file_type, int) else None, header.tensors),
        context_length=ctx if isinstance(ctx, int) else None,
        vocab_model=md.get(gguf.Keys.Tokenizer.MODEL),
        vocab_pre=md.get(gguf.Keys.Tokenizer.PRE),
        vocab_type=vtype,
        vocab_size=n_vocab,
        bos_id=bos,
        eos_id=eos,
        add_bos=add_bos,
        add_eos=add_eos,
        has_chat_template=bool(md.get(gguf.Keys.Tokenizer.CHAT_TEMPLATE)),
        synthetic=md.get(SYNTHETIC_KEY) is True,
    )


def inspect_model(path: str | os.PathLike[str]) -> ModelInfo:
    """Architecture, size, quantization, context length and vocabulary of a GGUF model."""
    p = Path(path).expanduser()
    return _info(p, _read_header(p, want_tokens=False))


def read_tokens(path: str | os.PathLike[str]) -> list[bytes]:
    """The token texts (`tokenizer.ggml.tokens`) of a GGUF model, as raw bytes."""
    p = Path(path).expanduser()
    return _read_header(p, want_tokens=True).tokens or []


def tensor_nbytes(dims: tuple[int, ...], ttype: int) -> int | None:
    """Bytes of one tensor's data, as ggml_nbytes counts them: n_elements / block_size · type_size
    (rows of whole blocks); None for a type the `gguf` package does not know (a newer llama.cpp)."""
    try:
        block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(ttype)]
    except (ValueError, KeyError):
        return None
    return _n_elements(dims) // block * size


def declared_size(header: _Header) -> int:
    """The length a GGUF file must have for everything its header declares to be in it.

        data_start = header_end rounded up to general.alignment (default 32)
        length     = data_start + max over tensors of (offset + n_bytes)      (header_end without tensors)

    llama.cpp's loader refuses a tensor whose data is not within the file; a tensor of a type
    unknown here counts from its offset only (a lower bound).
    """
    if not header.tensors:
        return header.end
    align = header.metadata.get(gguf.Keys.General.ALIGNMENT, gguf.GGUF_DEFAULT_ALIGNMENT)
    if not isinstance(align, int) or align <= 0 or align & (align - 1):
        raise _Corrupt(f"general.alignment {align} is not a power of two")
    data_start = -(-header.end // align) * align
    ends = (
        off + (tensor_nbytes(dims, ttype) or 0)
        for off, (_, dims, ttype) in zip(header.offsets, header.tensors, strict=True)
    )
    return data_start + max(ends)


def check_complete(path: str | os.PathLike[str], what: str) -> None:
    """A GGUF file whose header parses and which is as long as its header declares (`declared_size`).

    Reads only the header, never tensor data. Raises VelobenchError in one line: not found, not
    GGUF, corrupt, or truncated (a partial download, most likely).
    """
    p = Path(path).expanduser()
    header = _read_header(p, want_tokens=False, what=what)
    try:
        need = declared_size(header)
    except _Corrupt as e:
        raise VelobenchError(f"not a valid GGUF file: {path} ({e})") from None
    size = p.stat().st_size
    if size < need:
        raise VelobenchError(
            f"{what} {path} is truncated: {size:,} bytes, its header declares {need:,} {PULL_AGAIN}"
        )


def _show(token: bytes) -> str:
    text = token.decode("utf-8", errors="replace")
    return repr(text if len(text) <= 20 else text[:20] + "…")


def _flag(value: bool) -> str:
    return "on" if value else "off"


def _id(value: int | None) -> str:
    return "none" if value is None else str(value)


def check_draft_compatible(target: str | os.PathLike[str], draft: str | os.PathLike[str]) -> list[str]:
    """Apply llama.cpp's draft/target vocabulary rules; raise VelobenchError if they fail.

    The rules are those of `common_speculative_are_compatible` (common/speculative.cpp): same
    vocab type; same add_bos and, when BOS is added, the same BOS id (likewise EOS); vocab sizes
    within 128 tokens; equal token texts from id 5 up to the smaller vocab. Returns warnings
    about choices that are legal but unlikely to pay off.
    """
    tgt_path, dft_path = Path(target).expanduser(), Path(draft).expanduser()
    tgt_header = _read_header(tgt_path, want_tokens=True)
    dft_header = _read_header(dft_path, want_tokens=True)
    tgt, dft = _info(tgt_path, tgt_header), _info(dft_path, dft_header)

    problems: list[str] = []
    if dft.vocab_type != tgt.vocab_type:
        problems.append(
            f"tokenizer type {dft.vocab_type} ({dft.vocab_model}) vs {tgt.vocab_type} ({tgt.vocab_model})"
        )
    if dft.add_bos != tgt.add_bos or (tgt.add_bos and dft.bos_id != tgt.bos_id):
        problems.append(
            f"BOS token add={_flag(dft.add_bos)} id={_id(dft.bos_id)}"
            f" vs add={_flag(tgt.add_bos)} id={_id(tgt.bos_id)}"
        )
    if dft.add_eos != tgt.add_eos or (tgt.add_eos and dft.eos_id != tgt.eos_id):
        problems.append(
            f"EOS token add={_flag(dft.add_eos)} id={_id(dft.eos_id)}"
            f" vs add={_flag(tgt.add_eos)} id={_id(tgt.eos_id)}"
        )
    diff = abs(dft.vocab_size - tgt.vocab_size)
    if diff > SPEC_VOCAB_MAX_SIZE_DIFFERENCE:
        problems.append(
            f"vocabulary {dft.vocab_size:,} tokens vs {tgt.vocab_size:,} (llama.cpp allows a"
            f" difference of at most {SPEC_VOCAB_MAX_SIZE_DIFFERENCE})"
        )
    elif not problems:
        tgt_tokens, dft_tokens = tgt_header.tokens or [], dft_header.tokens or []
        n = min(len(tgt_tokens), len(dft_tokens))
        differing = [i for i in range(SPEC_VOCAB_CHECK_START_TOKEN_ID, n) if tgt_tokens[i] != dft_tokens[i]]
        if differing:
            i = differing[0]
            problems.append(
                f"{len(differing):,} token texts differ (first: id {i} {_show(dft_tokens[i])}"
                f" vs {_show(tgt_tokens[i])})"
            )
    if problems:
        raise VelobenchError(
            f"draft {dft_path.name} is incompatible with target {tgt_path.name}: " + "; ".join(problems)
        )

    warnings: list[str] = []
    same = tgt_path.resolve() == dft_path.resolve()
    if same:
        warnings.append(
            f"draft and target are the same model ({tgt_path.name}): every drafted token costs as"
            " much as a target step, so expect a slowdown (useful as a test)"
        )
    elif dft.parameter_count >= tgt.parameter_count or dft.file_size >= tgt.file_size:
        warnings.append(
            f"draft {dft_path.name} ({_human(dft.parameter_count)} parameters,"
            f" {dft.file_size / 1e6:,.0f} MB) is not smaller than target {tgt_path.name}"
            f" ({_human(tgt.parameter_count)}, {tgt.file_size / 1e6:,.0f} MB):"
            " speculation is unlikely to help"
        )
    if diff:
        warnings.append(
            f"vocabulary sizes differ by {diff} tokens ({dft.vocab_size:,} vs {tgt.vocab_size:,});"
            " llama.cpp allows this"
        )
    if dft.context_length and tgt.context_length and dft.context_length < tgt.context_length:
        warnings.append(
            f"draft context length {dft.context_length:,} is shorter than the target's"
            f" {tgt.context_length:,}: prompts longer than that cannot be drafted"
        )
    return warnings


def _human(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e6:
        return f"{n / 1e6:.0f}M"
    return f"{n:,}"
