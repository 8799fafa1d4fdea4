"""`run --llama-bench-reference`: the command llama-bench gets, and the paired agreement."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from velobench.analysis.summaries import analyze, reference_agreement
from velobench.engines import llama_bench
from velobench.report.console import reference_text
from velobench.results import config
from velobench.results.schema import Iteration, ModeResult, Reference, Report
from velobench.telemetry.environment import capture


def test_argv_decodes_the_iterations_length_at_its_depth(tmp_path: object) -> None:
    from pathlib import Path

    a = llama_bench.reference_argv(Path("/b/llama-bench"), "m.gguf", 31, 42, threads=2, gpu_layers="all")
    assert a == [
        *["/b/llama-bench", "-m", "m.gguf", "-p", "0", "-n", "31", "-d", "42", "-r", "1", "-o", "json"],
        *["-t", "2", "-ngl", "99"],
    ]
    assert llama_bench.reference_argv(Path("b"), "m", 0, -1, threads=None, gpu_layers=None)[5:9] == [
        "-n",
        "1",
        "-d",
        "0",
    ]


def it(i: int, tps: float, ref: float | None, prompt_tokens: int = 40) -> Iteration:
    return Iteration(
        index=i,
        command="",
        returncode=0,
        wall_ms=1000,
        prompt_tokens=prompt_tokens,
        prompt_ms=10,
        ttft_ms=10,
        generated_tokens=32,
        decode_ms=1000,
        tokens_per_second=tps,
        total_time_ms=1010,
        reference_tokens_per_second=ref,
    )


def test_the_agreement_is_the_paired_geometric_mean_with_a_t_interval() -> None:
    v = [90.0, 95.0, 88.0, 101.0, 93.0]
    ref = [100.0, 99.0, 97.0, 104.0, 102.0]
    cfg = config.build(main_model="m.gguf", skip_speculative=True, llama_bench_reference=True)
    rep = Report(config=cfg, environment=capture())
    rep.modes["vanilla"] = ModeResult(
        mode="vanilla",
        binary="llama-server",
        iterations=[it(i, a, b, 40 + i) for i, (a, b) in enumerate(zip(v, ref, strict=True))],
    )
    rep.reference = Reference(command="llama-bench ...", n_pairs=0, depth_tokens=0, ratio=None)
    analyze(rep)
    r = rep.reference
    assert r is not None and r.n_pairs == 5 and r.command == "llama-bench ..." and r.depth_tokens == 42
    d = np.log(np.array(v) / np.array(ref))
    half = sps.t.ppf(0.975, 4) * d.std(ddof=1) / np.sqrt(5)
    assert r.ratio is not None and r.ratio.ratio == pytest.approx(np.exp(d.mean()))
    assert (r.ratio.ci95_low, r.ratio.ci95_high) == pytest.approx(
        (np.exp(d.mean() - half), np.exp(d.mean() + half))
    )
    assert r.ratio.p_value == pytest.approx(sps.ttest_rel(np.log(v), np.log(ref)).pvalue)
    assert "llama-bench decodes without sampling" in reference_text(r) and "over 5 pairs" in reference_text(r)
    one = Report(config=cfg, environment=capture())
    one.modes["vanilla"] = ModeResult(
        mode="vanilla", binary="x", iterations=[it(0, 90, 100), it(1, 91, None)]
    )
    agreement = reference_agreement(one, "c")
    assert agreement is not None and agreement.ratio is None and agreement.n_pairs == 1
    assert "no interval (1 pair)" in reference_text(agreement)


def test_it_needs_vanilla_on_llama_cpp() -> None:
    for bad in ({"skip_vanilla": True, "draft_model": "d.gguf"}, {"engine": "vllm", "draft_model": "d.gguf"}):
        with pytest.raises(Exception, match="--llama-bench-reference needs the vanilla arm"):
            config.build(main_model="m.gguf", llama_bench_reference=True, **bad)
