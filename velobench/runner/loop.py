"""The benchmark loop: modes × iterations through an engine, saved after every iteration.

    for mode in (vanilla, speculative):
        with engine.session(mode):          # e.g. one server per configuration
            warm-up generations (not recorded)
            measured generations → Iteration → summaries → result file (atomic)
    speedup, warnings, status → result file

A result file appears once the first iteration has finished; from then on it is rewritten
atomically after each iteration, so a crash or Ctrl-C keeps everything finished.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from velobench.analysis import stats
from velobench.config import RunConfig
from velobench.engines.base import Engine
from velobench.environment import Environment
from velobench.errors import Interrupted, VelobenchError
from velobench.proc import llama_env_overrides
from velobench.prompts import Prompt
from velobench.results import (
    Acceptance,
    CategorySummary,
    Iteration,
    Losslessness,
    Mode,
    ModeResult,
    PromptMatch,
    Report,
    Warning,
    WarningCode,
    save,
)

ProgressFn = Callable[[Mode, int, int, Iteration | None], None]

CPU_EXPLANATION = (
    "verifying k draft tokens costs close to k single-token steps when decoding is compute-bound "
    "(CPUs, few cores), so drafting only adds work; on GPUs, where decoding is memory-bound, "
    "verification is nearly free and speculation wins"
)


def summarize_mode(result: ModeResult) -> None:
    """Recompute a mode's summaries from its raw iterations (the samples are the record)."""
    its = result.iterations
    if not its:
        return
    result.tokens_per_second = stats.summarize([i.tokens_per_second for i in its])
    result.time_to_first_token_ms = stats.summarize([i.ttft_ms for i in its])
    result.total_time_ms = stats.summarize([i.total_time_ms for i in its])
    for field in ("e2e_ms", "tpot_ms", "itl_p50_ms", "itl_p99_ms"):  # streaming engines only
        values = [v for i in its if (v := getattr(i, field)) is not None]
        setattr(result, field, stats.summarize(values) if values else None)
    if result.mode == "speculative" and any(i.n_drafted is not None for i in its):
        drafted = sum(i.n_drafted or 0 for i in its)
        accepted = sum(i.n_accept or 0 for i in its)
        rates = [i.acceptance_rate for i in its if i.acceptance_rate is not None]
        steps = [i.draft_steps for i in its if i.draft_steps is not None]
        positions = [i.accepted_per_position for i in its if i.accepted_per_position]
        per_pos = [float(sum(col)) for col in zip(*positions, strict=False)] if positions else None
        result.acceptance = Acceptance(
            drafted=drafted,
            accepted=accepted,
            rate=stats.acceptance_rate(accepted, drafted),
            per_iteration=stats.summarize(rates) if rates else None,
            draft_steps=sum(steps) if steps else None,
            mean_length=stats.mean_acceptance_length(accepted, sum(steps)) if steps else None,
            accepted_per_position=per_pos,
        )


def compare(report: Report) -> None:
    """Speedup (ratio of mean tokens/s) with its uncertainty, and the warnings that follow."""
    van, spec = report.vanilla, report.speculative
    report.speedup = report.speedup_stddev = report.speedup_detail = None
    if van and spec and van.iterations and spec.iterations:
        r = stats.ratio_of_means(
            [i.tokens_per_second for i in spec.iterations],
            [i.tokens_per_second for i in van.iterations],
        )
        report.speedup_detail = r
        report.speedup = r.ratio
        report.speedup_stddev = r.stddev
    report.categories = category_summaries(report)
    report.lossless = losslessness(report)
    report.warnings = [w for w in report.warnings if w.code in _SETUP_WARNINGS]
    report.warnings += list(result_warnings(report))


def category_summaries(report: Report) -> list[CategorySummary]:
    """Per category: tokens/s of each mode, acceptance, and the speedup (ratio of means).

    Only when the run used more than one prompt category; prompts of a category are the same
    in both modes because iterations cycle through one prompt list.
    """
    its = [i for m in (report.vanilla, report.speculative) if m for i in m.iterations]
    cats = sorted({i.category for i in its if i.category})
    if len(cats) < 2:
        return []
    out = []
    for cat in cats:
        van = [i for i in (report.vanilla.iterations if report.vanilla else []) if i.category == cat]
        spec = [i for i in (report.speculative.iterations if report.speculative else []) if i.category == cat]
        drafted = sum(i.n_drafted or 0 for i in spec)
        accepted = sum(i.n_accept or 0 for i in spec)
        out.append(
            CategorySummary(
                category=cat,
                n_prompts=len({i.prompt_id for i in van + spec}),
                vanilla_tokens_per_second=stats.summarize([i.tokens_per_second for i in van])
                if van
                else None,
                speculative_tokens_per_second=stats.summarize([i.tokens_per_second for i in spec])
                if spec
                else None,
                acceptance_rate=stats.acceptance_rate(accepted, drafted),
                speedup=stats.ratio_of_means(
                    [i.tokens_per_second for i in spec], [i.tokens_per_second for i in van]
                )
                if van and spec
                else None,
            )
        )
    return out


def first_difference(a: Sequence[object], b: Sequence[object]) -> int | None:
    """Index of the first position where two sequences differ (None if identical)."""
    for k, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return k
    return None if len(a) == len(b) else min(len(a), len(b))


def losslessness(report: Report) -> Losslessness | None:
    """At temperature 0, compare each prompt's first vanilla and speculative output.

    Token ids are compared where the engine returns them (server), else the text. Both modes
    generate the same number of tokens except the cli speculative tools, which overshoot
    `-n`; their output is compared up to vanilla's length.
    """
    if report.config.temp != 0 or not report.vanilla or not report.speculative:
        return None
    first_van = {i.prompt_id: i for i in reversed(report.vanilla.iterations)}
    first_spec = {i.prompt_id: i for i in reversed(report.speculative.iterations)}
    matches = []
    for pid, v in first_van.items():
        sp = first_spec.get(pid)
        if sp is None or pid is None:
            continue
        a: Sequence[object]
        b: Sequence[object]
        if v.output_tokens is not None and sp.output_tokens is not None:
            a, b, unit = v.output_tokens, sp.output_tokens, "token"
        elif v.output is not None and sp.output is not None:
            a, b, unit = v.output, sp.output, "char"
        else:
            continue
        b = b[: len(a)]
        diff = first_difference(a, b)
        matches.append(PromptMatch(prompt_id=pid, identical=diff is None, first_difference=diff, unit=unit))
    if not matches:
        return None
    same = sum(m.identical for m in matches)
    return Losslessness(
        compared=len(matches), identical=same, match_rate=same / len(matches), prompts=matches
    )


_SETUP_WARNINGS = {WarningCode.LLAMA_ENV_IGNORED, WarningCode.DRAFT_NOT_OFFLOADED, WarningCode.DRAFT_CHOICE}


def setup_warnings(cfg: RunConfig) -> list[Warning]:
    """Warnings known before anything runs."""
    out = []
    overrides = llama_env_overrides()
    if overrides:
        out.append(
            Warning(
                code=WarningCode.LLAMA_ENV_IGNORED,
                message=f"ignored {', '.join(overrides)} from the environment: a run's settings come from its command line",
            )
        )
    offloaded = cfg.gpu_layers not in (None, "0")
    if cfg.draft_model and offloaded and cfg.gpu_layers_draft in (None, "0"):
        out.append(
            Warning(
                code=WarningCode.DRAFT_NOT_OFFLOADED,
                message=f"the main model is offloaded (-ngl {cfg.gpu_layers}) but the draft is not "
                "(set -ngld/--gpu-layers-draft): a draft on the CPU is a classic cause of 'speculation is slower'",
            )
        )
    return out


def result_warnings(report: Report) -> Iterator[Warning]:
    cfg = report.config
    if cfg.iterations == 1:
        yield Warning(
            code=WarningCode.ONE_ITERATION,
            message="one iteration per mode: no spread, no interval, no test",
        )
    for mode in (report.vanilla, report.speculative):
        if mode and mode.tokens_per_second and stats.is_high_variance(mode.tokens_per_second):
            cv = mode.tokens_per_second.cv() or 0.0
            yield Warning(
                code=WarningCode.HIGH_VARIANCE,
                message=f"{mode.mode} tokens/s varies by {cv:.0%} (coefficient of variation): "
                "close other programs or raise --iterations",
            )
    spec = report.speculative
    if spec and spec.acceptance and spec.acceptance.drafted == 0:
        yield Warning(
            code=WarningCode.NOTHING_DRAFTED,
            message="no token was drafted: speculation never engaged",
        )
    r = report.speedup_detail
    if r is None:
        return
    significant = r.p_value is not None and r.p_value < 0.05
    if r.ratio < 1 and significant:
        yield Warning(
            code=WarningCode.SPECULATION_SLOWER,
            message=f"speculative decoding is slower than vanilla ({r.ratio:.2f}x): {CPU_EXPLANATION}",
        )
    elif not significant and r.p_value is not None:
        yield Warning(
            code=WarningCode.NO_SIGNIFICANT_DIFFERENCE,
            message=f"no significant difference between the modes at 95% (Welch p = {r.p_value:.3g})",
        )


def verdict(report: Report) -> str:
    """One line that answers 'is speculation faster here?'."""
    r = report.speedup_detail
    if r is None:
        return "no comparison: only one mode was measured"
    ci = (
        f"95% CI {r.ci95_low:.2f}–{r.ci95_high:.2f}"
        if r.ci95_low is not None and r.ci95_high is not None
        else "no interval"
    )
    p = f"p = {r.p_value:.2g}" if r.p_value is not None else "no test"
    if r.p_value is None:
        return f"speculative/vanilla = {r.ratio:.2f}x ({ci}); too few iterations to call a winner"
    if r.p_value >= 0.05:
        return f"no significant difference: {r.ratio:.2f}x ({ci}, {p})"
    if r.ratio >= 1:
        return f"speculative decoding is {r.ratio:.2f}x faster ({ci}, {p})"
    return f"speculative decoding is slower: {r.ratio:.2f}x vanilla ({ci}, {p})"


def run_benchmark(
    cfg: RunConfig,
    engine: Engine,
    environment: Environment,
    output: Path,
    progress: ProgressFn = lambda mode, i, n, it: None,
    notes: list[Warning] | None = None,
    prompts: Sequence[Prompt] = (),
    responses: Path | None = None,
) -> Report:
    """Run every mode, saving after each finished iteration; return the complete report.

    Iterations cycle through `prompts` (default: the config's single prompt), in the same
    order in every mode, so both modes see the same prompts. `notes` are warnings found
    before the run (e.g. by the draft/target pre-flight). Each generated text is appended to
    `responses` (JSONL) as it finishes.
    """
    prompts = list(prompts) or [Prompt(id="prompt", category="default", prompt=cfg.prompt, source="cli")]
    report = Report(
        config=cfg,
        environment=environment,
        binaries=engine.binaries(),
        warnings=[*(notes or []), *setup_warnings(cfg)],
    )
    modes: list[Mode] = []
    if not cfg.skip_vanilla:
        modes.append("vanilla")
    if not cfg.skip_speculative:
        modes.append("speculative")
    written = False
    try:
        for mode in modes:
            result = ModeResult(mode=mode, binary=engine.binary(mode), iterations=[])
            setattr(report, mode, result)
            progress(mode, 0, cfg.iterations, None)
            with engine.session(mode) as session:
                for key, value in session.describe().items():
                    setattr(result, key, value)
                for w in range(cfg.warmup):
                    progress(mode, -(w + 1), cfg.warmup, None)
                    session.generate(prompts[w % len(prompts)], -(w + 1))
                for i in range(1, cfg.iterations + 1):
                    progress(mode, i, cfg.iterations, None)
                    prompt = prompts[(i - 1) % len(prompts)]
                    it = session.generate(prompt, i)
                    it.prompt_id, it.category = prompt.id, prompt.category
                    result.iterations.append(it)
                    if responses is not None:
                        append_response(responses, mode, it)
                    summarize_mode(result)
                    compare(report)
                    save(report, output)
                    written = True
                    progress(mode, i, cfg.iterations, it)
    except KeyboardInterrupt as exc:
        report.status = "interrupted"
        report.warnings.append(
            Warning(code=WarningCode.INTERRUPTED, message="interrupted: finished iterations kept")
        )
        if written:
            save(report, output)
        raise Interrupted(
            f"interrupted; {_count(report)} finished iteration(s) kept in {output}"
            if written
            else "interrupted; nothing finished"
        ) from exc
    except VelobenchError as exc:
        report.status = "failed"
        report.error = str(exc)
        if written:
            save(report, output)
            raise VelobenchError(f"{exc} ({_count(report)} finished iteration(s) kept in {output})") from exc
        raise
    report.status = "complete"
    compare(report)
    save(report, output)
    return report


def append_response(path: Path, mode: Mode, it: Iteration) -> None:
    """One JSON line per generation (the format sibling tools keep), flushed at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "mode": mode,
        "iteration": it.index,
        "prompt_id": it.prompt_id,
        "category": it.category,
        "generated_tokens": it.generated_tokens,
        "tokens_per_second": it.tokens_per_second,
        "output": it.output,
    }
    with path.open("a") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")


def _count(report: Report) -> int:
    return sum(len(m.iterations) for m in (report.vanilla, report.speculative) if m)
