"""`velobench demo`, `report` over a matrix folder and `compare`, through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from velobench.results import store as results

pytestmark = pytest.mark.integration


def test_demo_with_the_small_pair(cli, llama_bin: Path, smol: Path, isolated: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli(
        "demo",
        "--pair",
        "smollm2-self",
        "-n",
        "16",
        "-t",
        "2",
        "--max-time",
        "15",
        "--llama-cpp-path",
        str(llama_bin),
        "-o",
        "demo.json",
    )
    assert code == 0, err
    for step in (
        "[1/3] llama.cpp tools",
        "[2/3] models: pair smollm2-self",
        "[3/3] benchmark: 7 built-in prompts",
    ):
        assert step in out
    assert "Time: build " in out and "download " in out and "benchmark " in out
    rep = results.load(Path("demo.json"))
    assert rep.status == "complete" and rep.config.prompts == "builtin"
    assert {c.category for c in rep.categories} == {
        "conversation",
        "translation",
        "summarization",
        "qa",
        "math",
        "rag",
        "code",
    }
    assert rep.lossless is not None and rep.lossless.compared == 7
    assert rep.ceiling is not None and rep.ceiling.measured == pytest.approx(rep.speedup)
    # the stopping rule: passes until ±5% or the time bound, never fewer than its first look needs
    assert "passes until the speedup is known to ±5%" in out
    stop = rep.stopping
    assert stop is not None and stop.target == pytest.approx(0.05)
    assert stop.stopped_by in {"target", "max-time", "max-iterations"} and stop.looks
    n = len(rep.modes["vanilla"].iterations)
    assert n % 7 == 0 and n >= 21 and len(rep.modes["speculative"].iterations) == n
    lines = Path("demo.responses.jsonl").read_text().splitlines()
    assert len(lines) == 2 * n and {json.loads(x)["mode"] for x in lines} == {"vanilla", "speculative"}


def test_demo_fixed_passes_without_the_stopping_rule(
    cli, llama_bin: Path, smol: Path, isolated: Path
) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli(
        "demo", "--pair", "smollm2-self", "-n", "8", "-t", "2", "--target-ci", "0",
        "--llama-cpp-path", str(llama_bin), "-o", "demo.json",
    )  # fmt: skip
    assert code == 0, err
    assert "1 pass(es) per mode" in out
    rep = results.load(Path("demo.json"))
    assert rep.stopping is None and len(rep.modes["vanilla"].iterations) == 7


def test_unknown_pair(cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("demo", "--pair", "nope")
    assert code == 2 and "unknown pair 'nope'; known: qwen-coder, smollm2-self" in err


def test_compare_two_real_runs_and_gate_on_regression(cli, llama_bin: Path, smol: Path) -> None:  # type: ignore[no-untyped-def]
    common = [
        "-m",
        str(smol),
        "-d",
        str(smol),
        "-n",
        "16",
        "-i",
        "3",
        "-t",
        "2",
        "--no-ceiling",
        "--llama-cpp-path",
        str(llama_bin),
    ]
    assert cli("run", *common, "--n-draft", "2", "-o", "a.json")[0] == 0
    assert cli("run", *common, "--n-draft", "8", "-o", "b.json")[0] == 0
    code, out, err = cli("compare", "a.json", "b.json")
    assert code == 0, err
    assert "n_draft: 2 → 8" in out
    assert "tokens/s" in out.lower()
    # identical runs never count as a regression
    code, _, err = cli("compare", "a.json", "a.json", "--fail-if-slower", "1")
    assert code == 0, err


def test_report_formats_from_a_saved_run(cli, llama_bin: Path, smol: Path) -> None:  # type: ignore[no-untyped-def]
    assert (
        cli(
            "run",
            "-m",
            str(smol),
            "-d",
            str(smol),
            "-n",
            "16",
            "-i",
            "2",
            "-t",
            "2",
            "--no-ceiling",
            "--llama-cpp-path",
            str(llama_bin),
            "-o",
            "r.json",
        )[0]
        == 0
    )
    for fmt in ("md", "csv", "json", "html"):
        code, _out, err = cli("report", "r.json", "--format", fmt, "-o", f"r.{fmt}")
        assert code == 0, err
        assert Path(f"r.{fmt}").stat().st_size > 100
    assert '<img src="data:image/png;base64,' in Path("r.html").read_text()
    assert results.load(Path("r.json")) == results.Report.model_validate_json(Path("r.json").read_text())
    code, _, err = cli("report", "r.json", "--format", "pdf")
    assert code == 2 and err.startswith("velobench: error:")
