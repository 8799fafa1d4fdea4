"""`velobench run` end to end: real llama.cpp binaries, real SmolLM2-135M (as its own draft)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from velobench.results import store as results
from velobench.results.schema import RUN_SCHEMA_VERSION

pytestmark = pytest.mark.integration


def run_args(llama_bin: Path, model: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--engine",
        "cli",
        "-m",
        str(model),
        "-d",
        str(model),
        "-n",
        "16",
        "-i",
        "2",
        "-t",
        "2",
        "-c",
        "512",
        "--llama-cpp-path",
        str(llama_bin),
        *extra,
    ]


def test_run_vanilla_vs_speculative(cli, llama_bin: Path, smol: Path, isolated: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli(*run_args(llama_bin, smol, "--n-draft", "4", "-o", "r.json"))
    assert code == 0, err
    # console: live progress lines, the table, the speedup with its uncertainty, a verdict
    assert "Running vanilla ..." in out and "Running speculative ..." in out
    assert "Iteration 2/2 (speculative) ... " in out and " tok/s (" in out
    assert "Tokens/s" in out and "TTFT ms (prompt eval)" in out and "Total time ms" in out
    assert "Speedup: " in out and "(Fieller" in out  # an interval, or why there is none (n = 2)
    assert "Verdict: " in out
    assert "Results saved to: r.json" in out

    data = json.loads((isolated / "r.json").read_text())
    assert data["schema_version"] == RUN_SCHEMA_VERSION
    assert data["status"] == "complete"
    cfg = data["config"]
    assert (cfg["main_model"], cfg["draft_model"], cfg["n_draft"], cfg["n_predict"], cfg["iterations"]) == (
        str(smol),
        str(smol),
        4,
        16,
        2,
    )
    van, spec = data["modes"]["vanilla"], data["modes"]["speculative"]
    assert van["binary"] == "llama-completion" and spec["binary"] == "llama-speculative-simple"
    for mode in (van, spec):
        tps = mode["tokens_per_second"]
        assert tps["n"] == 2 and len(tps["samples"]) == 2
        assert tps["samples"] == [it["tokens_per_second"] for it in mode["iterations"]]
        assert tps["min"] <= tps["mean"] <= tps["max"] and tps["stddev"] is not None
        for key in ("time_to_first_token_ms", "total_time_ms"):
            assert mode[key]["n"] == 2
        for it in mode["iterations"]:
            assert it["returncode"] == 0 and it["tokens_per_second"] > 0 and it["prompt_tokens"] > 0
            assert it["generated_tokens"] >= 16
    assert "-no-cnv" in van["iterations"][0]["command"]
    assert "--spec-type draft-simple" in spec["iterations"][0]["command"]
    assert "--spec-draft-n-max 4" in spec["iterations"][0]["command"]
    acc = spec["acceptance"]
    assert acc["drafted"] > 0 and 0 < acc["accepted"] <= acc["drafted"]
    assert acc["rate"] == pytest.approx(acc["accepted"] / acc["drafted"])
    expected = spec["tokens_per_second"]["mean"] / van["tokens_per_second"]["mean"]
    (comp,) = data["comparisons"]
    assert (comp["baseline"], comp["candidate"]) == ("vanilla", "speculative")
    assert comp["speedup"]["ratio"] == pytest.approx(expected)
    assert comp["speedup"]["stddev"] is not None and comp["speedup"]["ci_method"] == "fieller"
    assert {b["name"] for b in data["binaries"]} == {"llama-completion", "llama-speculative-simple"}
    assert all(b["commit"] for b in data["binaries"])
    assert data["environment"]["cpu_cores_logical"] >= 1
    assert "NaN" not in (isolated / "r.json").read_text()

    # a saved run re-renders without running anything
    code, out2, _ = cli("report", "r.json")
    assert code == 0 and "Speedup: " in out2 and "Verdict: " in out2


def test_skip_vanilla_and_lookup(cli, llama_bin: Path, smol: Path, isolated: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli(
        "run",
        "--engine",
        "cli",
        "-m",
        str(smol),
        "--method",
        "lookup",
        "-n",
        "16",
        "-i",
        "1",
        "-t",
        "2",
        "--skip-vanilla",
        "--llama-cpp-path",
        str(llama_bin),
        "-o",
        "l.json",
    )
    assert code == 0, err
    data = json.loads(Path("l.json").read_text())
    assert list(data["modes"]) == ["speculative"] and data["comparisons"] == []
    assert data["modes"]["speculative"]["binary"] == "llama-lookup"
    assert {w["code"] for w in data["warnings"]} >= {"one-iteration"}
    assert "only one mode was measured" in out


def test_classic_speculative(cli, llama_bin: Path, smol: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli(*run_args(llama_bin, smol, "--spec-impl", "classic", "--skip-vanilla", "-o", "c.json"))
    assert code == 0, err
    spec = json.loads(Path("c.json").read_text())["modes"]["speculative"]
    assert spec["binary"] == "llama-speculative"
    assert spec["acceptance"]["drafted"] > 0


def test_binary_failure_is_one_line_and_leaves_no_file(cli, llama_bin: Path, smol: Path) -> None:  # type: ignore[no-untyped-def]
    # a flag the binary knows (unknown and velobench-owned ones are refused before it runs)
    # whose value it cannot use at run time makes it exit 1 with its own message
    code, out, err = cli(*run_args(llama_bin, smol, "-x", "--lora /nonexistent-adapter.gguf", "-o", "f.json"))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("velobench: error: llama-completion exited with code 1")
    assert "nonexistent-adapter.gguf" in err  # the binary's own message, quoted
    assert "Traceback" not in err + out
    assert not Path("f.json").exists()


def llama_processes_with(marker: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["name", "cmdline"]):
        try:
            if "llama-" in (p.info["name"] or "") and marker in " ".join(p.info["cmdline"] or []):
                found.append(p)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_the_child_and_keeps_finished_iterations(
    llama_bin: Path, smol: Path, isolated: Path, sig: signal.Signals
) -> None:
    marker = f"interrupt-test-{os.getpid()}-{sig.name}"
    out = isolated / "i.json"
    argv = [
        sys.executable,
        "-m",
        "velobench",
        *run_args(llama_bin, smol, "-i", "200", "-o", str(out), "-p", marker),
    ]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        deadline = time.monotonic() + 120
        while not out.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no iteration finished in 120 s"
            time.sleep(0.1)
        while not llama_processes_with(marker):  # interrupt while a child is running
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert b"Traceback" not in stderr
    assert b"finished iteration(s) kept in" in stderr
    data = results.load(out)
    assert data.status == "interrupted"
    assert data.vanilla is not None and len(data.vanilla.iterations) >= 1
    assert any(w.code == "interrupted" for w in data.warnings)
    time.sleep(0.2)
    assert llama_processes_with(marker) == []


@pytest.mark.parametrize("engine", ["server", "cli"])
def test_llama_bench_reference_pairs_each_vanilla_iteration(  # type: ignore[no-untyped-def]
    cli, llama_bin: Path, smol: Path, isolated: Path, engine: str
) -> None:
    """Each vanilla iteration is followed by llama-bench's decode test at its own length and
    depth; the result pairs them (velobench ÷ llama-bench) and the report says why they differ."""
    args = run_args(llama_bin, smol, "-o", "r.json", "--skip-speculative", "--llama-bench-reference")
    args[args.index("--engine") + 1] = engine
    del args[args.index("-d") : args.index("-d") + 2]
    args[args.index("-i") + 1] = "3"
    code, out, err = cli(*args)
    assert code == 0, err
    assert "llama-bench: velobench vanilla ÷ llama-bench tg" in out and "over 3 pairs" in out
    rep = results.load(isolated / "r.json")
    assert rep.vanilla is not None and rep.reference is not None and rep.reference.n_pairs == 3
    for it in rep.vanilla.iterations:
        assert it.reference_tokens_per_second is not None and it.reference_tokens_per_second > 0
    assert " -p 0 -n 15 -d " in rep.reference.command and " -t 2" in rep.reference.command
    assert rep.reference.depth_tokens > 0
    r = rep.reference.ratio
    assert r is not None and 0.2 < r.ratio < 5 and r.ci95_low is not None
    md = isolated / "r.md"
    code, _, err = cli("report", "r.json", "--format", "md", "-o", str(md))
    assert code == 0, err
    assert "Agreement with llama-bench" in md.read_text()
