"""Warnings are data: what is known before a run (setup) and what its results show."""

from __future__ import annotations

from collections.abc import Iterator

from velobench.analysis import stats
from velobench.proc import llama_env_overrides
from velobench.results.config import RunConfig
from velobench.results.schema import Report, ResultWarning, WarningCode

CPU_EXPLANATION = (
    "verifying k draft tokens costs close to k single-token steps when decoding is compute-bound "
    "(CPUs, few cores), so drafting only adds work; on GPUs, where decoding is memory-bound, "
    "verification is nearly free and speculation wins"
)

SETUP_WARNINGS = {WarningCode.LLAMA_ENV_IGNORED, WarningCode.DRAFT_NOT_OFFLOADED, WarningCode.DRAFT_CHOICE}


def setup_warnings(cfg: RunConfig) -> list[ResultWarning]:
    """Warnings known before anything runs."""
    out = []
    overrides = llama_env_overrides()
    if overrides:
        out.append(
            ResultWarning(
                code=WarningCode.LLAMA_ENV_IGNORED,
                message=f"ignored {', '.join(overrides)} from the environment: a run's settings come from its command line",
            )
        )
    offloaded = cfg.gpu_layers not in (None, "0")
    if cfg.draft_model and offloaded and cfg.gpu_layers_draft in (None, "0"):
        out.append(
            ResultWarning(
                code=WarningCode.DRAFT_NOT_OFFLOADED,
                message=f"the main model is offloaded (-ngl {cfg.gpu_layers}) but the draft is not "
                "(set -ngld/--gpu-layers-draft): a draft on the CPU is a classic cause of 'speculation is slower'",
            )
        )
    return out


def result_warnings(report: Report) -> Iterator[ResultWarning]:
    """Warnings the measurements call for: spread, nothing drafted, slower or not different."""
    if report.config.iterations == 1:
        yield ResultWarning(
            code=WarningCode.ONE_ITERATION,
            message="one iteration per mode: no spread, no interval, no test",
        )
    for mode in report.modes.values():
        if mode.tokens_per_second and stats.is_high_variance(mode.tokens_per_second):
            cv = mode.tokens_per_second.cv() or 0.0
            yield ResultWarning(
                code=WarningCode.HIGH_VARIANCE,
                message=f"{mode.mode} tokens/s varies by {cv:.0%} (coefficient of variation): "
                "close other programs or raise --iterations",
            )
    for mode in report.modes.values():
        for note in mode.session.notes if mode.session else []:
            yield ResultWarning(code=WarningCode.SESSION_NOTE, message=f"{mode.mode}: {note}")
    spec = report.speculative
    if spec and spec.acceptance and spec.acceptance.drafted == 0:
        yield ResultWarning(
            code=WarningCode.NOTHING_DRAFTED,
            message="no token was drafted: speculation never engaged",
        )
    for comp in report.comparisons:
        r = comp.speedup
        if r is None:
            continue
        significant = r.p_value is not None and r.p_value < 0.05
        if r.ratio < 1 and significant:
            yield ResultWarning(
                code=WarningCode.SPECULATION_SLOWER,
                message=f"{comp.candidate} is slower than {comp.baseline} ({r.ratio:.2f}x): {CPU_EXPLANATION}"
                if comp.candidate != "speculative"
                else f"speculative decoding is slower than vanilla ({r.ratio:.2f}x): {CPU_EXPLANATION}",
            )
        elif not significant and r.p_value is not None:
            yield ResultWarning(
                code=WarningCode.NO_SIGNIFICANT_DIFFERENCE,
                message=f"no significant difference between {comp.baseline} and {comp.candidate} at 95% "
                f"(Welch p = {r.p_value:.3g})",
            )
