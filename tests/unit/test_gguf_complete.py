"""`gguf_info.check_complete`: a GGUF file as long as its header declares, read from the header alone.

The files are written by llama.cpp's own Python writer (`gguf.GGUFWriter`), then cut at points in
each part of the file: the fixed header, the key-values, the tensor infos, the tensor data, and
one byte short of the end. The declared length is checked against the writer's own file size.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import gguf
import numpy as np
import pytest

from velobench.errors import VelobenchError
from velobench.models import gguf_info


def write_gguf(path: Path, *, alignment: int | None = None, bad_alignment: int | None = None) -> Path:
    """Two tensors (F32, F16), the last one's data a multiple of the alignment (no trailing padding)."""
    w = gguf.GGUFWriter(str(path), "llama")
    if alignment is not None:
        w.add_custom_alignment(alignment)
    if bad_alignment is not None:  # the writer refuses one: written as a plain key
        w.add_uint32(gguf.Keys.General.ALIGNMENT, bad_alignment)
    w.add_name("tiny")
    w.add_context_length(64)
    w.add_tensor("a", np.arange(10, dtype=np.float32))  # 40 bytes, padded to the alignment
    w.add_tensor("b", np.ones((4, 16), dtype=np.float16))  # 128 bytes, the last tensor
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def cut(src: Path, tmp_path: Path, size: int) -> Path:
    out = tmp_path / f"cut-{size}.gguf"
    shutil.copyfile(src, out)
    os.truncate(out, size)
    return out


@pytest.mark.parametrize("alignment", [None, 64])
def test_the_declared_length_is_the_writers_file_size(tmp_path: Path, alignment: int | None) -> None:
    path = write_gguf(tmp_path / "m.gguf", alignment=alignment)
    header = gguf_info._read_header(path, want_tokens=False)
    align = alignment or gguf.GGUF_DEFAULT_ALIGNMENT
    data_start = -(-header.end // align) * align
    assert gguf_info.declared_size(header) == data_start + header.offsets[-1] + 128
    assert gguf_info.declared_size(header) == path.stat().st_size
    gguf_info.check_complete(path, "main model")  # complete: nothing raised


def test_a_complete_file_with_trailing_bytes_passes(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf")
    with path.open("ab") as f:
        f.write(b"\0" * 7)  # longer than declared: llama.cpp loads it, so does the check
    gguf_info.check_complete(path, "main model")


def test_truncated_anywhere_is_one_line_with_both_lengths(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", alignment=64)
    full = path.stat().st_size
    header = gguf_info._read_header(path, want_tokens=False)
    data_start = -(-header.end // 64) * 64
    for size in (data_start, data_start + 50, full - 1):  # at the data, inside it, one byte short
        short = cut(path, tmp_path, size)
        with pytest.raises(VelobenchError) as exc:
            gguf_info.check_complete(short, "draft model")
        assert str(exc.value) == (
            f"draft model {short} is truncated: {size:,} bytes, its header declares {full:,}"
            " (a partial download? pull it again)"
        )


def test_truncated_inside_the_header_says_so(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf")
    end = gguf_info._read_header(path, want_tokens=False).end
    # the fixed part (version, counts), the key-values, the tensor infos (last offset field)
    for size in (10, 40, end - 4):
        short = cut(path, tmp_path, size)
        with pytest.raises(VelobenchError) as exc:
            gguf_info.check_complete(short, "main model")
        assert str(exc.value) == (
            f"main model {short} is truncated: {size:,} bytes end inside its header"
            " (a partial download? pull it again)"
        )


def test_the_header_alone_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No tensor data is touched: a file whose data is all garbage (same length) passes."""
    path = write_gguf(tmp_path / "m.gguf")
    end = gguf_info._read_header(path, want_tokens=False).end
    data = bytearray(path.read_bytes())
    data[end:] = b"\xff" * (len(data) - end)
    path.write_bytes(bytes(data))
    gguf_info.check_complete(path, "main model")


def test_not_gguf_and_corrupt_headers_keep_their_messages(tmp_path: Path) -> None:
    text = tmp_path / "m.txt"
    text.write_text("hello there")
    with pytest.raises(VelobenchError, match="not a GGUF file"):
        gguf_info.check_complete(text, "main model")
    with pytest.raises(VelobenchError, match="model file not found"):
        gguf_info.check_complete(tmp_path / "missing.gguf", "main model")
    bad_version = tmp_path / "v9.gguf"
    bad_version.write_bytes(b"GGUF" + (9).to_bytes(4, "little") + bytes(16))
    with pytest.raises(VelobenchError, match=r"not a valid GGUF file: .*unsupported GGUF version 9"):
        gguf_info.check_complete(bad_version, "main model")


def test_an_alignment_that_is_not_a_power_of_two_is_corrupt(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", bad_alignment=48)
    with pytest.raises(VelobenchError, match=r"general\.alignment 48 is not a power of two"):
        gguf_info.check_complete(path, "main model")


def test_tensor_bytes_follow_ggml_block_sizes() -> None:
    q8 = gguf.GGMLQuantizationType.Q8_0  # blocks of 32 values in 34 bytes
    assert gguf_info.tensor_nbytes((64, 3), q8) == 64 * 3 // 32 * 34
    assert gguf_info.tensor_nbytes((5,), gguf.GGMLQuantizationType.F32) == 20
    assert gguf_info.tensor_nbytes((5,), 9999) is None  # a type newer than the gguf package
