"""`velobench models synth` through the CLI: the pair written and described, bad input one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from velobench.fetch import sha256_file


def test_synth_writes_and_describes_the_pair(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("models", "synth", "-o", "m", "--seed", "5", "--type", "f32")
    assert code == 0, err
    target = Path("m/synth-tiny-llama-target-f32-s5.gguf")
    draft = Path("m/synth-tiny-llama-draft-f32-s5.gguf")
    assert f"{target}: llama, 2.6M parameters, F32, vocabulary 512" in out
    assert f"sha256 {sha256_file(target)}" in out and f"sha256 {sha256_file(draft)}" in out
    code, out, _ = cli("models", "inspect", str(target))
    assert code == 0 and "synthetic: True" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--preset", "huge"], "--preset huge: choose one of tiny, 1b, 8b-shape"),
        (["--heads", "3"], "target hidden size 256 is not a multiple of its 3 heads"),
        (["--tokenizer-from", "missing.gguf"], "--tokenizer-from missing.gguf: no such file"),
        (["--type", "q4_k"], "--type q4_k: choose one of f32, f16, q8_0"),
    ],
)
def test_synth_bad_input_is_one_line(cli, args: list[str], needle: str) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("models", "synth", "-o", "m", *args)
    assert code == 2 and err.startswith("velobench: error: ") and err.count("\n") == 1, (out, err)
    assert needle in err and "Traceback" not in out + err
    assert not Path("m").exists()
