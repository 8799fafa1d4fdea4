"""The JSON of the GSM8K speculative benchmark (seed 001, benchmark_gsm8k.py) from a run result.

Seed 001's "JSON File" section, field by field (the speculative mode's measured iterations,
warm-ups excluded; one entry of `results` per prompt, its iterations pooled):

    config   draft_model, target_model (velobench's main model), num_samples (prompts),
             max_tokens (n_predict), temperature
    summary  avg_acceptance_rate  mean over the questions of each one's acceptance rate
             avg_speed            mean over the questions of each one's tokens/s
             total_tokens         generated tokens, all questions
             total_draft_generated, total_draft_accepted  draft tokens proposed / accepted
    results  per question: question_id, question, tokens_generated, draft_generated,
             draft_accepted, acceptance_rate (= draft_accepted / draft_generated), speed (mean
             decode tokens/s of its iterations), speculation_rounds (draft→verify cycles)

The seed writes `results` as `[...]`; the names of a question's fields above are the seed's own
metric names ("Acceptance Rate", "Tokens Per Second" as `speed` like `avg_speed`, "Draft
Efficiency", "Speculation Rounds"). Null where a velobench result cannot fill it, never
invented: `question` for a run over a prompt set (a result keeps prompt ids, not their text;
`question_id` is null for a single-prompt run), the draft counts and rates of an engine that does
not report them, `speculation_rounds` where the engine does not count verification steps (the
cli engine), and every figure of a run without a speculative mode.
"""

from __future__ import annotations

import json
from typing import Any

from velobench.results.schema import Iteration, Report


def _sum(values: list[int | None]) -> int | None:
    """Σ values, or None when any is unknown (a partial total would read as the whole)."""
    return None if not values or any(v is None for v in values) else sum(v for v in values if v is not None)


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def by_prompt(iterations: list[Iteration]) -> dict[str | None, list[Iteration]]:
    """Iterations grouped by prompt id, in the order the prompts first ran."""
    out: dict[str | None, list[Iteration]] = {}
    for it in iterations:
        out.setdefault(it.prompt_id, []).append(it)
    return out


def question(report: Report, prompt_id: str | None, its: list[Iteration]) -> dict[str, Any]:
    drafted = _sum([i.n_drafted for i in its])
    accepted = _sum([i.n_accept for i in its])
    return {
        "question_id": prompt_id,
        "question": report.config.prompt if report.config.prompts is None else None,
        "tokens_generated": sum(i.generated_tokens for i in its),
        "draft_generated": drafted,
        "draft_accepted": accepted,
        "acceptance_rate": accepted / drafted if drafted and accepted is not None else None,
        "speed": _mean([i.tokens_per_second for i in its]),
        "speculation_rounds": _sum([i.draft_steps for i in its]),
    }


def document(report: Report) -> dict[str, Any]:
    spec = report.speculative
    groups = by_prompt(spec.iterations) if spec else {}
    results = [question(report, pid, its) for pid, its in groups.items()]
    c = report.config
    return {
        "config": {
            "draft_model": c.draft_model,
            "target_model": c.main_model,
            "num_samples": len(groups) if groups else None,
            "max_tokens": c.n_predict,
            "temperature": c.temp,
        },
        "summary": {
            "avg_acceptance_rate": _mean([q["acceptance_rate"] for q in results]),
            "avg_speed": _mean([q["speed"] for q in results]),
            "total_tokens": sum(q["tokens_generated"] for q in results) if results else None,
            "total_draft_generated": _sum([q["draft_generated"] for q in results]),
            "total_draft_accepted": _sum([q["draft_accepted"] for q in results]),
        },
        "results": results,
    }


def render(report: Report) -> str:
    return json.dumps(document(report), indent=2) + "\n"
