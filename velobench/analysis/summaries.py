"""Summaries derived from raw iterations: per mode, per category, and the whole report.

`analyze(report)` recomputes everything derived (mode summaries, every declared comparison's
speedup, categories and losslessness, and the warnings) from the raw iterations, so a result
file's summaries can always be rebuilt from its samples.
"""

from __future__ import annotations

from velobench.analysis import stats
from velobench.analysis.lossless import losslessness
from velobench.analysis.warnings import SETUP_WARNINGS, result_warnings
from velobench.results.measures import Ratio, Summary
from velobench.results.schema import (
    ACCEPTANCE_BUCKETS,
    Acceptance,
    CategorySummary,
    Estimator,
    Iteration,
    ModeComparison,
    ModeResult,
    PromptAcceptance,
    Reference,
    Report,
)

STREAMING_FIELDS = ("e2e_ms", "tpot_ms", "itl_p50_ms", "itl_p99_ms")


def summarize_mode(result: ModeResult) -> None:
    """Recompute a mode's summaries from its raw iterations (the samples are the record)."""
    its = result.iterations
    if not its:
        return
    result.tokens_per_second = stats.summarize([i.tokens_per_second for i in its])
    result.time_to_first_token_ms = stats.summarize([i.ttft_ms for i in its])
    result.total_time_ms = stats.summarize([i.total_time_ms for i in its])
    for field in STREAMING_FIELDS:  # streaming engines only
        values = [v for i in its if (v := getattr(i, field)) is not None]
        setattr(result, field, stats.summarize(values) if values else None)
    if any(i.n_drafted is not None for i in its):
        drafted = sum(i.n_drafted or 0 for i in its)
        accepted = sum(i.n_accept or 0 for i in its)
        rates = [i.acceptance_rate for i in its if i.acceptance_rate is not None]
        steps = [i.draft_steps for i in its if i.draft_steps is not None]
        positions = [i.accepted_per_position for i in its if i.accepted_per_position]
        per_pos = [float(sum(col)) for col in zip(*positions, strict=False)] if positions else None
        prompts = per_prompt_acceptance(its)
        result.acceptance = Acceptance(
            drafted=drafted,
            accepted=accepted,
            rate=stats.acceptance_rate(accepted, drafted),
            request_rate=sum(rates) / len(rates) if rates else None,
            per_prompt=prompts,
            buckets=acceptance_buckets(prompts),
            per_iteration=stats.summarize(rates) if rates else None,
            draft_steps=sum(steps) if steps else None,
            mean_length=mean_length(its),
            accepted_per_position=per_pos,
        )
    result.telemetry = telemetry_summaries(its)


def per_prompt_acceptance(its: list[Iteration]) -> list[PromptAcceptance]:
    """Per prompt, over its iterations with counts: drafted and accepted tokens, their rate,
    draft steps and mean acceptance length where counted, and where the counts came from."""
    by_prompt: dict[str | None, list[Iteration]] = {}
    for i in its:
        if i.n_drafted is not None:
            by_prompt.setdefault(i.prompt_id, []).append(i)
    out = []
    for pid, group in by_prompt.items():
        drafted = sum(i.n_drafted or 0 for i in group)
        accepted = sum(i.n_accept or 0 for i in group)
        counted = [i.draft_steps for i in group if i.draft_steps is not None]
        out.append(
            PromptAcceptance(
                prompt_id=pid,
                category=group[0].category,
                iterations=len(group),
                drafted=drafted,
                accepted=accepted,
                rate=stats.acceptance_rate(accepted, drafted),
                draft_steps=sum(counted) if counted else None,
                mean_length=mean_length(group),
                sources=sorted({i.acceptance_source for i in group if i.acceptance_source is not None}),
            )
        )
    return out


def acceptance_buckets(prompts: list[PromptAcceptance]) -> dict[str, int]:
    """Prompts per acceptance-rate bucket, the GSM8K benchmark's: [0, 50%), [50, 75%), [75, 90%),
    [90, 100%] (every bucket present, 0 where empty); prompts that drafted nothing are left out."""
    out = {name: 0 for _, _, name in ACCEPTANCE_BUCKETS}
    for p in prompts:
        if p.rate is None:
            continue
        name = next(
            n for lo, hi, n in ACCEPTANCE_BUCKETS if lo <= p.rate < hi or (hi == 1.0 and p.rate >= hi)
        )
        out[name] += 1
    return out


def mean_length(its: list[Iteration]) -> float | None:
    """1 + Σ accepted / Σ draft steps over the iterations that counted their draft steps: accepted
    tokens of iterations without a step count would inflate it (None where none counted)."""
    counted = [i for i in its if i.draft_steps is not None]
    if not counted:
        return None
    return stats.mean_acceptance_length(
        sum(i.n_accept or 0 for i in counted), sum(i.draft_steps or 0 for i in counted)
    )


def pair_iterations(
    baseline: list[Iteration], candidate: list[Iteration]
) -> list[tuple[Iteration, Iteration]]:
    """(candidate, baseline) iterations that measured the same prompt at the same occurrence.

    Each mode's iterations are taken in schedule order (their index); the k-th iteration of
    prompt p in one mode pairs with the k-th of p in the other, so a blocked run pairs
    iteration i with iteration i, and an interleaved one each prompt's neighbours. Iterations
    without a prompt id count as one prompt; a pair needs tokens/s > 0 on both sides.
    """

    def keyed(its: list[Iteration]) -> dict[tuple[str | None, int], Iteration]:
        seen: dict[str | None, int] = {}
        out = {}
        for it in sorted(its, key=lambda i: i.index):
            k = seen[it.prompt_id] = seen.get(it.prompt_id, 0) + 1
            out[(it.prompt_id, k)] = it
        return out

    base = keyed(baseline)
    return [
        (c, base[key])
        for key, c in keyed(candidate).items()
        if key in base and c.tokens_per_second > 0 and base[key].tokens_per_second > 0
    ]


def paired_speedup(pairs: list[tuple[Iteration, Iteration]]) -> Ratio | None:
    """The paired estimate (`stats.paired_ratio`) of candidate ÷ baseline tokens/s over `pairs`."""
    if not pairs:
        return None
    return stats.paired_ratio([(c.tokens_per_second, b.tokens_per_second) for c, b in pairs])


def estimator(n_pairs: int) -> Estimator:
    """ "paired" from 2 pairs on (an interval and a test exist), else "ratio-of-means"."""
    return "paired" if n_pairs >= 2 else "ratio-of-means"


def telemetry_summaries(its: list[Iteration]) -> dict[str, Summary]:
    """Each telemetry metric (telemetry.iteration_metrics) summarised over the iterations that have it."""
    from velobench.telemetry.summary import iteration_metrics

    columns: dict[str, list[float]] = {}
    for it in its:
        if it.telemetry is None:
            continue
        for name, value in iteration_metrics(it.telemetry, it.generated_tokens).items():
            if value is not None:
                columns.setdefault(name, []).append(value)
    return {name: stats.summarize(values) for name, values in columns.items()}


def energy_ratio(base: ModeResult, cand: ModeResult) -> Ratio | None:
    """Candidate ÷ baseline mean energy per token, with the same propagation and Fieller interval
    as the speedup (the iterations of the two modes independent)."""
    from velobench.telemetry.summary import energy_per_token

    def per_token(m: ModeResult) -> list[float]:
        values = [
            energy_per_token(i.telemetry, i.generated_tokens) if i.telemetry else None for i in m.iterations
        ]
        return [v for v in values if v is not None]

    a, b = per_token(cand), per_token(base)
    if not a or not b or sum(b) == 0:
        return None
    return stats.ratio_of_means(a, b)


def category_summaries(baseline: ModeResult, candidate: ModeResult) -> list[CategorySummary]:
    """Per category: tokens/s of each mode, acceptance, the speedup (ratio of means) and the
    paired speedup of its pairs (no interval under 2 pairs: the report says so).

    Only when the run used more than one prompt category; prompts of a category are the same
    in both modes because iterations cycle through one prompt list.
    """
    cats = sorted({i.category for m in (baseline, candidate) for i in m.iterations if i.category})
    if len(cats) < 2:
        return []
    out = []
    for cat in cats:
        base = [i.tokens_per_second for i in baseline.iterations if i.category == cat]
        cand_its = [i for i in candidate.iterations if i.category == cat]
        cand = [i.tokens_per_second for i in cand_its]
        drafted = sum(i.n_drafted or 0 for i in cand_its)
        accepted = sum(i.n_accept or 0 for i in cand_its)
        ids = {i.prompt_id for m in (baseline, candidate) for i in m.iterations if i.category == cat}
        pairs = pair_iterations([i for i in baseline.iterations if i.category == cat], cand_its)
        out.append(
            CategorySummary(
                category=cat,
                n_prompts=len(ids),
                baseline_tokens_per_second=stats.summarize(base) if base else None,
                candidate_tokens_per_second=stats.summarize(cand) if cand else None,
                acceptance_rate=stats.acceptance_rate(accepted, drafted),
                speedup=stats.ratio_of_means(cand, base) if base and cand else None,
                n_pairs=len(pairs),
                paired_speedup=paired_speedup(pairs),
            )
        )
    return out


def compare_modes(report: Report, baseline: str, candidate: str) -> ModeComparison:
    """Candidate vs baseline: the paired speedup and the ratio of mean tokens/s with their
    uncertainty (the estimator the verdict uses: paired from 2 pairs on), categories, and at
    temperature 0 whether the candidate reproduced the baseline's output."""
    base, cand = report.modes.get(baseline), report.modes.get(candidate)
    comp = ModeComparison(baseline=baseline, candidate=candidate)
    if base and cand and base.iterations and cand.iterations:
        comp.speedup = stats.ratio_of_means(
            [i.tokens_per_second for i in cand.iterations],
            [i.tokens_per_second for i in base.iterations],
        )
        pairs = pair_iterations(base.iterations, cand.iterations)
        comp.paired_speedup = paired_speedup(pairs)
        comp.estimator = estimator(len(pairs))
        comp.categories = category_summaries(base, cand)
        if report.config.temp == 0:
            comp.lossless = losslessness(base, cand, report.probes, report.config)
        comp.energy_per_token = energy_ratio(base, cand)
    return comp


def declared_comparisons(report: Report) -> list[tuple[str, str]]:
    """The comparisons a report makes: those it declares, else speculative vs vanilla when both ran."""
    if report.comparisons:
        return [(c.baseline, c.candidate) for c in report.comparisons]
    if "vanilla" in report.modes and "speculative" in report.modes:
        return [("vanilla", "speculative")]
    return []


def analyze(report: Report) -> None:
    """Recompute every summary, comparison and warning of `report` from its raw iterations."""
    for mode in report.modes.values():
        summarize_mode(mode)
    report.comparisons = [compare_modes(report, b, c) for b, c in declared_comparisons(report)]
    report.warnings = [w for w in report.warnings if w.code in SETUP_WARNINGS]
    report.warnings += list(result_warnings(report))
    if report.reference is not None:
        report.reference = reference_agreement(report, report.reference.command)


def reference_agreement(report: Report, command: str) -> Reference | None:
    """velobench's vanilla tokens/s over llama-bench's decode test run right after each iteration
    at its length and depth: `stats.paired_ratio` of (v_i, l_i), the geometric mean of v_i/l_i with
    a t-interval on the log ratios (None below 2 pairs); the mean depth Σ P_i / n."""
    its = [i for i in (report.vanilla.iterations if report.vanilla else []) if i.reference_tokens_per_second]
    if not its:
        return None
    pairs = [(i.tokens_per_second, i.reference_tokens_per_second or 0.0) for i in its]
    return Reference(
        command=command,
        n_pairs=len(its),
        depth_tokens=sum(i.prompt_tokens for i in its) / len(its),
        ratio=stats.paired_ratio(pairs) if len(pairs) >= 2 else None,
    )


def category_mean_length(report: Report, category: str) -> float | None:
    """1 + accepted / draft steps over the category's speculative iterations (server engine only)."""
    its = [i for i in (report.speculative.iterations if report.speculative else []) if i.category == category]
    return mean_length(its)
