"""The JSON of velollm-bench-speculative (seed 002, velobench's direct predecessor) from a run result.

Seed 002's "JSON Output Format", field by field:

    config       main_model, draft_model, n_draft, n_predict, prompt, iterations
    vanilla      mode ("Vanilla"), tokens_per_second, time_to_first_token_ms, total_time_ms,
                 each {mean, stddev, min, max, samples}
    speculative  the same, mode "Speculative"
    speedup      mean tokens/s speculative / mean tokens/s vanilla
    speedup_stddev  speedup · √((σ_spec/μ_spec)² + (σ_vanilla/μ_vanilla)²) (velobench's Ratio.stddev,
                 the same propagation, covariance assumed 0)
    timestamp    ISO 8601 UTC, as velobench writes it

What a velobench result cannot fill is null, never invented: `vanilla` (and so `speedup`,
`speedup_stddev`) with --skip-vanilla, `speculative` with --skip-speculative, a statistic with
no samples, and `stddev` of a single iteration (the predecessor printed 0 there; velobench
stores an undefined sample stddev as null). `prompt` is the run's single prompt, null for a run
over a prompt set (the predecessor had one prompt only). Samples are the measured iterations,
warm-ups excluded, as in the predecessor.
"""

from __future__ import annotations

import json
from typing import Any

from velobench.results.measures import Summary
from velobench.results.schema import ModeResult, Report

STATS = ("tokens_per_second", "time_to_first_token_ms", "total_time_ms")


def stats(s: Summary | None) -> dict[str, Any] | None:
    """The predecessor's statistics object: mean, stddev, min, max, samples."""
    if s is None:
        return None
    return {"mean": s.mean, "stddev": s.stddev, "min": s.min, "max": s.max, "samples": list(s.samples)}


def mode(m: ModeResult | None, name: str) -> dict[str, Any] | None:
    """One mode's block, `name` as the predecessor's enum spelled it ("Vanilla", "Speculative")."""
    if m is None:
        return None
    return {"mode": name, **{k: stats(getattr(m, k)) for k in STATS}}


def document(report: Report) -> dict[str, Any]:
    c = report.config
    ratio = report.ratio_of_means  # the predecessor's speedup: ratio of means, propagated σ
    return {
        "config": {
            "main_model": c.main_model,
            "draft_model": c.draft_model,
            "n_draft": c.n_draft,
            "n_predict": c.n_predict,
            "prompt": c.prompt if c.prompts is None else None,
            "iterations": c.iterations,
        },
        "vanilla": mode(report.vanilla, "Vanilla"),
        "speculative": mode(report.speculative, "Speculative"),
        "speedup": ratio.ratio if ratio else None,
        "speedup_stddev": ratio.stddev if ratio else None,
        "timestamp": report.timestamp,
    }


def render(report: Report) -> str:
    return json.dumps(document(report), indent=2) + "\n"
