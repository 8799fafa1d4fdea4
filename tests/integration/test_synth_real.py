"""`velobench models synth` pairs run by real llama.cpp tools: llama-completion and
llama-speculative-simple load and generate with them (llama and qwen2), and a real `velobench run`
passes the draft/target pre-flight and marks its result synthetic everywhere it is shown."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from velobench.engines.llama_args import LOST_LOG_ATTEMPTS
from velobench.engines.llama_output import parse_speculative
from velobench.models.gguf_info import check_draft_compatible, inspect_model

pytestmark = pytest.mark.integration


def synth(cli, out: Path, *extra: str) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    code, stdout, err = cli("models", "synth", "-o", str(out), *extra)
    assert code == 0, err
    assert "synthetic (random weights): speed only, never model quality" in stdout
    files = sorted(out.glob("*.gguf"))
    target = next(p for p in files if "-target-" in p.name)
    draft = next(p for p in files if "-draft-" in p.name)
    assert "sha256 " in stdout and str(target) in stdout
    return target, draft


def run_tool(argv: list[str], done_line: str) -> subprocess.CompletedProcess[str]:
    """Run a llama.cpp tool as velobench does: again where it exits 0 without `done_line` in its
    stderr, its log's end lost at exit (`llama_args.LOST_LOG_ATTEMPTS`; this test's qwen2
    llama-completion lost it once in CI)."""
    for _ in range(LOST_LOG_ATTEMPTS):
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        if done.returncode != 0 or done_line in done.stderr:
            break
    return done


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_llama_cpp_tools_run_a_synthetic_pair(cli, llama_bin: Path, tmp_path: Path, arch: str) -> None:  # type: ignore[no-untyped-def]
    target, draft = synth(
        cli, tmp_path / arch, "--arch", arch, "--type", "q8_0" if arch == "qwen2" else "f16"
    )
    common = ["-p", "Hello world", "-n", "16", "-t", "2", "-c", "256", "--temp", "0"]
    done = run_tool([str(llama_bin / "llama-completion"), "-m", str(target), *common, "-no-cnv"], "eval time")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "eval time" in done.stderr and "/    15 runs" in done.stderr  # 16 tokens: no early end of sequence
    spec = run_tool(
        [
            str(llama_bin / "llama-speculative-simple"),
            "-m",
            str(target),
            "-md",
            str(draft),
            *common,
            "--spec-type",
            "draft-simple",
            "--spec-draft-n-max",
            "4",
        ],
        "n_accept",
    )
    assert spec.returncode == 0, spec.stderr[-2000:]
    stats = parse_speculative(spec.stderr)
    assert stats.n_drafted and stats.n_drafted > 0  # the draft really drafted for the target


def test_velobench_run_marks_a_synthetic_result(cli, llama_bin: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target, draft = synth(cli, tmp_path / "m")
    assert inspect_model(target).synthetic and inspect_model(draft).synthetic
    code, out, err = cli(
        *("run", "--engine", "cli", "-m", str(target), "-d", str(draft), "-n", "16", "-i", "1"),
        *("-t", "2", "-c", "256", "--n-draft", "4", "--llama-cpp-path", str(llama_bin), "-o", "r.json"),
    )
    assert code == 0, err
    assert "synthetic: speed only, never model quality" in out
    data = json.loads(Path("r.json").read_text())
    marks = [w for w in data["warnings"] if w["code"] == "synthetic-model"]
    assert marks and marks[0]["params"]["models"] == f"{target.name}, {draft.name}"
    code, md, _ = cli("report", "r.json", "--format", "md")
    assert code == 0 and "synthetic: speed only, never model quality" in md


def test_tokenizer_copied_from_smollm2(cli, llama_bin: Path, smol: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A real model's tokenizer (SmolLM2's BPE, merges and all): llama.cpp loads it, and by
    llama.cpp's rules SmolLM2 itself could draft for the synthetic target."""
    target, _ = synth(cli, tmp_path / "s", "--tokenizer-from", str(smol))
    info = inspect_model(target)
    assert (info.vocab_type, info.vocab_size, info.vocab_pre) == ("BPE", 49152, inspect_model(smol).vocab_pre)
    done = subprocess.run(
        [
            str(llama_bin / "llama-completion"),
            "-m",
            str(target),
            "-p",
            "Hello world",
            "-n",
            "4",
            "-t",
            "2",
            "-c",
            "128",
            "--temp",
            "0",
            "-no-cnv",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "eval time" in done.stderr, done.stderr[-2000:]
    notes = check_draft_compatible(target, smol)  # raises if llama.cpp would refuse the pair
    assert any("not smaller than target" in n for n in notes)
