"""The JSON of the speculative-thinking speedup benchmark (seed 000, spec_thinking_speedup_test.py)
from a think result.

Seed 000's "JSON Output" section, field by field:

    timestamp             YYYYMMDD_HHMMSS (the seed's file-name stamp), from the result's UTC time
    config                num_problems, num_runs, target_model (velobench's large model),
                          speculative_model (the small model)
    large_model           {results, statistics} of the large model alone
    speculative_thinking  {results, statistics} of speculative thinking
    comparison            speedup (mean latency large / spec), throughput_improvement (mean
                          tokens/s spec / large), large_model_reduction (1 - mean large-model token
                          ratio of the spec runs)

The seed writes `results` and `statistics` as `{ ... }`; it reads
`statistics["latency"]["mean"]`, and its console shows per metric Mean, Median, ... for the four
metrics it measures. So `statistics` holds `latency` (s), `throughput` (tokens/s),
`total_tokens` and `large_model_ratio`, each {mean, median, std, min, max} (std: the sample
standard deviation); `results` maps each problem id to its finished runs, in order, each {run,
latency, throughput, total_tokens, large_model_tokens, large_model_ratio}.

Null where a think result cannot fill it, never invented: a mode's block when that mode did not
run (--test-mode large or spec), a statistic with no finished run, `std` of a single run, a
comparison figure velobench could not compute (no runs of one mode). Failed runs (velobench
records them, the seed had none) are left out of `results`, as of the statistics.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from velobench.results.measures import Summary
from velobench.results.think import ModeSummary, TestMode, ThinkReport


def stamp(timestamp: str) -> str:
    """ "2026-01-05T14:30:22Z" → "20260105_143022" (the seed's timestamp)."""
    return datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").strftime("%Y%m%d_%H%M%S")


def stats(s: Summary | None) -> dict[str, Any] | None:
    if s is None:
        return None
    return {"mean": s.mean, "median": s.median, "std": s.stddev, "min": s.min, "max": s.max}


def results(rep: ThinkReport, mode: TestMode) -> dict[str, list[dict[str, Any]]]:
    """Problem id → its finished runs of `mode`, in the order they ran."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rep.runs:
        if r.mode != mode or r.error is not None:
            continue
        out.setdefault(r.problem_id, []).append(
            {
                "run": r.run,
                "latency": r.latency_s,
                "throughput": r.tokens_per_s,
                "total_tokens": r.tokens,
                "large_model_tokens": r.large_tokens,
                "large_model_ratio": r.large_ratio,
            }
        )
    return out


def block(rep: ThinkReport, mode: TestMode, m: ModeSummary | None) -> dict[str, Any] | None:
    if m is None:
        return None
    return {
        "results": results(rep, mode),
        "statistics": {
            "latency": stats(m.latency_s),
            "throughput": stats(m.tokens_per_s),
            "total_tokens": stats(m.tokens),
            "large_model_ratio": stats(m.large_ratio),
        },
    }


def document(rep: ThinkReport) -> dict[str, Any]:
    s = rep.summary
    opts = rep.config.run
    return {
        "timestamp": stamp(rep.timestamp),
        "config": {
            "num_problems": len(rep.problems),
            "num_runs": opts.num_runs,
            "target_model": opts.large_model,
            "speculative_model": opts.small_model,
        },
        "large_model": block(rep, TestMode.LARGE, s.large if s else None),
        "speculative_thinking": block(rep, TestMode.SPEC, s.spec if s else None),
        "comparison": {
            "speedup": s.speedup.ratio if s and s.speedup else None,
            "throughput_improvement": s.throughput_ratio.ratio if s and s.throughput_ratio else None,
            "large_model_reduction": s.large_token_reduction if s else None,
        },
    }


def render(rep: ThinkReport) -> str:
    return json.dumps(document(rep), indent=2) + "\n"
