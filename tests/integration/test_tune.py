"""`velobench tune` on SmolLM2 drafting for itself: predicts with measured costs, confirms by runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from velobench.results import store as results

pytestmark = pytest.mark.integration


def test_tune_on_smollm(cli, llama_bin: Path, smol: Path, isolated: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli(
        "tune",
        "-m",
        "smollm2-135m",  # a catalog name: tune must resolve it before llama-bench sees it
        "-d",
        str(smol),
        "--candidates",
        "1,2,4",
        "--top",
        "2",
        "-i",
        "2",
        "--max-rounds",
        "1",
        "--p-min-candidates",
        "0.9",
        "-n",
        "16",
        "-t",
        "2",
        "--llama-cpp-path",
        str(llama_bin),
        "-o",
        "tune",
    )
    assert code == 0, err
    assert (
        "1/4" in out
        and "v(4) = " in out
        and "α ≈ " in out
        and "predicted (advise's model at one request):" in out
    )
    assert "best: n_draft " in out and "use it: velobench run -m smollm2-135m -d " in out
    assert "p_min 0.9: " in out  # measured at the chosen n_draft
    # 1 probe + (baseline + 2 finalists) × 2 runs + p_min 0.9 × 2 runs = 9, against
    # (baseline + 3 n_draft × 2 p_min) × 2 = 14 for a sweep
    assert "generations measured: 9 (a sweep of every candidate as deep: 14)" in out
    runs = sorted(p.name for p in Path("tune").glob("*.json"))
    assert "probe.json" in runs and "vanilla-1.json" in runs and len(runs) == 5
    for name in runs:
        assert results.load(Path("tune") / name).status == "complete"


def test_tune_rejects_bad_candidates(cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("tune", "-m", "a", "-d", "b", "--candidates", "x,2")
    assert code == 2 and "--candidates: expected numbers" in err
    code, _, err = cli("tune", "-m", "a", "-d", "b", "--p-min-candidates", "1.5")
    assert code == 2 and "--p-min-candidates: values must lie in [0, 1]" in err
