"""Warnings are data: what is known before a run (setup) and what its results show.

Each warning is a code and the figures its text needs (`params`); the words are made in one
place, `velobench.report.warnings.text`.
"""

from __future__ import annotations

from collections.abc import Iterator

from velobench.analysis import stats
from velobench.proc import llama_env_overrides
from velobench.results.config import RunConfig
from velobench.results.schema import Report, ResultWarning, WarningCode

SETUP_WARNINGS = {WarningCode.LLAMA_ENV_IGNORED, WarningCode.DRAFT_NOT_OFFLOADED, WarningCode.DRAFT_CHOICE}


def setup_warnings(cfg: RunConfig) -> list[ResultWarning]:
    """Warnings known before anything runs."""
    out = []
    overrides = llama_env_overrides()
    if overrides:
        out.append(
            ResultWarning(code=WarningCode.LLAMA_ENV_IGNORED, params={"variables": ", ".join(overrides)})
        )
    offloaded = cfg.gpu_layers not in (None, "0")
    if cfg.draft_model and offloaded and cfg.gpu_layers_draft in (None, "0"):
        out.append(ResultWarning(code=WarningCode.DRAFT_NOT_OFFLOADED, params={"gpu_layers": cfg.gpu_layers}))
    return out


def result_warnings(report: Report) -> Iterator[ResultWarning]:
    """Warnings the measurements call for: spread, nothing drafted, slower or not different."""
    if report.config.iterations == 1:
        yield ResultWarning(code=WarningCode.ONE_ITERATION)
    for mode in report.modes.values():
        if mode.tokens_per_second and stats.is_high_variance(mode.tokens_per_second):
            cv = mode.tokens_per_second.cv() or 0.0
            yield ResultWarning(code=WarningCode.HIGH_VARIANCE, params={"mode": mode.mode, "cv": cv})
    for mode in report.modes.values():
        for note in mode.session.notes if mode.session else []:
            yield ResultWarning(code=WarningCode.SESSION_NOTE, params={"mode": mode.mode, "note": note})
    spec = report.speculative
    if spec and spec.acceptance and spec.acceptance.drafted == 0:
        yield ResultWarning(code=WarningCode.NOTHING_DRAFTED)
    for comp in report.comparisons:
        r = comp.headline  # the paired estimate where pairs exist
        if r is None:
            continue
        if stats.undefined_test(r):
            yield ResultWarning(
                code=WarningCode.UNDEFINED_TEST,
                params={"baseline": comp.baseline, "candidate": comp.candidate, "estimator": comp.estimator},
            )
            continue
        test = "paired t" if comp.estimator == "paired" else "Welch"
        significant = r.p_value is not None and r.p_value < 0.05
        if r.ratio < 1 and significant:
            yield ResultWarning(
                code=WarningCode.SPECULATION_SLOWER,
                params={"baseline": comp.baseline, "candidate": comp.candidate, "ratio": r.ratio},
            )
        elif not significant and r.p_value is not None:
            yield ResultWarning(
                code=WarningCode.NO_SIGNIFICANT_DIFFERENCE,
                params={
                    "baseline": comp.baseline,
                    "candidate": comp.candidate,
                    "p_value": r.p_value,
                    "test": test,
                },
            )
