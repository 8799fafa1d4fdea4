"""Warnings are data: what is known before a run (setup) and what its results show.

Each warning is a code and the figures its text needs (`params`); the words are made in one
place, `velobench.report.warnings.text`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator

from velobench.analysis import stats
from velobench.proc import llama_env_overrides
from velobench.results.config import EngineName, RunConfig
from velobench.results.schema import Iteration, ModeComparison, Report, ResultWarning, WarningCode
from velobench.results.telemetry import MIN_WINDOW_S, Interference

SETUP_WARNINGS = {
    WarningCode.LLAMA_ENV_IGNORED,
    WarningCode.DRAFT_NOT_OFFLOADED,
    WarningCode.DRAFT_CHOICE,
    WarningCode.SYNTHETIC_MODEL,
    WarningCode.SCHEDULE_BLOCKED,  # decided before the first iteration (`runner.loop.choose_schedule`)
}


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
            if note.startswith(CACHE_NOTE):
                continue  # the prompt-cache-hits check says it, from the iterations
            yield ResultWarning(code=WarningCode.SESSION_NOTE, params={"mode": mode.mode, "note": note})
    yield from validity_warnings(report)
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


# Validity checks: results that contradict themselves or compare unlike work.

CEILING_CHECKS = {WarningCode.CEILING_EXCEEDED, WarningCode.SPEEDUP_ABOVE_ACCEPTANCE}
"""The checks that read `report.ceiling`: made again once the ceiling is measured after the run."""


def validity_warnings(report: Report) -> Iterator[ResultWarning]:
    """Every validity check of a run result, in the order the report lists them."""
    yield from ceiling_warnings(report)
    for comp in report.comparisons:
        w = unequal_lengths(report, comp)
        if w:
            yield w
    for mode in report.modes.values():
        w = degenerate_output(mode.mode, mode.iterations)
        if w:
            yield w
    base = report.vanilla
    checks = [
        drift(base.mode, base.iterations) if base else None,
        interference(report),
        redone(report),
        *(prompt_cache_hits(m.mode, m.iterations) for m in report.modes.values()),
        unchecked_server(report),
    ]
    yield from (w for w in checks if w)


def ceiling_warnings(report: Report) -> list[ResultWarning]:
    """The checks that compare the headline speedup with the ceiling and the acceptance length."""
    return [w for w in (ceiling_exceeded(report), speedup_above_acceptance(report)) if w]


def ceiling_exceeded(report: Report) -> ResultWarning | None:
    """The speedup is above what theory allows by more than its interval.

    Fires when the headline speedup's lower 95% bound > `ceiling.ceiling` (Leviathan et al.'s
    bound from this machine's measured costs): the baseline was disturbed (slowed) or the costs
    were mis-measured. Without an interval (under two samples) nothing is claimed.
    """
    r, ceil = report.speedup_detail, report.ceiling
    if r is None or ceil is None or r.ci95_low is None or r.ci95_low <= ceil.ceiling:
        return None
    return ResultWarning(
        code=WarningCode.CEILING_EXCEEDED,
        params={"speedup": r.ratio, "ci95_low": r.ci95_low, "ceiling": ceil.ceiling},
    )


def speedup_above_acceptance(report: Report) -> ResultWarning | None:
    """The speedup is above the mean acceptance length L where that is impossible.

    A verification step yields L tokens on average (1 + accepted / draft steps) and costs
    verify_cost decode steps plus the drafting, so speedup ≤ L / verify_cost ≤ L whenever
    verify_cost ≥ 1. That holds when the ceiling measured verify_cost ≥ 1 (`basis`
    "verify-cost"), or, with no ceiling measured, when decoding ran on the CPU: no GPU in the
    environment or -ngl 0 (`basis` "cpu-only"). Fires when the headline speedup exceeds L by
    more than its interval (its lower 95% bound > L; the estimate itself without an interval).
    """
    r, spec = report.speedup_detail, report.speculative
    length = spec.acceptance.mean_length if spec and spec.acceptance else None
    if r is None or length is None:
        return None
    if report.ceiling is not None:
        if report.ceiling.verify_cost < 1:
            return None
        basis, verify = "verify-cost", report.ceiling.verify_cost
    elif not report.environment.gpus or report.config.gpu_layers == "0":
        basis, verify = "cpu-only", None
    else:
        return None
    low = r.ci95_low if r.ci95_low is not None else r.ratio
    if low <= length:
        return None
    return ResultWarning(
        code=WarningCode.SPEEDUP_ABOVE_ACCEPTANCE,
        params={"speedup": r.ratio, "mean_length": length, "basis": basis, "verify_cost": verify},
    )


def unequal_lengths(report: Report, comp: ModeComparison) -> ResultWarning | None:
    """The two arms generated different numbers of tokens for the same prompt.

    The k-th iteration of a prompt in one arm is set beside the k-th of that prompt in the other
    (as the pairs of the paired estimate); a prompt counts when any such pair differs in
    `generated_tokens` (one arm stopped at end of sequence early), and tokens/s then compares
    different work. Params: how many prompts, and the largest difference in tokens.
    """
    base, cand = report.modes.get(comp.baseline), report.modes.get(comp.candidate)
    if base is None or cand is None:
        return None
    a, b = _lengths_by_prompt(base.iterations), _lengths_by_prompt(cand.iterations)
    diffs = {p: max(abs(x - y) for x, y in zip(a[p], b[p], strict=False)) for p in a.keys() & b.keys()}
    diffs = {p: d for p, d in diffs.items() if d > 0}
    if not diffs:
        return None
    return ResultWarning(
        code=WarningCode.UNEQUAL_LENGTHS,
        params={
            "baseline": comp.baseline,
            "candidate": comp.candidate,
            "prompts": len(diffs),
            "of": len(a.keys() & b.keys()),
            "max_difference": max(diffs.values()),
        },
    )


def _lengths_by_prompt(its: list[Iteration]) -> dict[str | None, list[int]]:
    """Generated tokens of each prompt's successful iterations, in schedule order."""
    out: dict[str | None, list[int]] = {}
    for it in sorted(its, key=lambda i: i.index):
        if it.returncode == 0:
            out.setdefault(it.prompt_id, []).append(it.generated_tokens)
    return out


def degenerate_output(mode: str, its: list[Iteration]) -> ResultWarning | None:
    """Repetition loops in a mode's generated texts (they inflate n-gram and draft acceptance).

    An iteration's text is degenerate when `is_degenerate` says so. Params: the mode, how many
    iterations, and which prompts (their ids, `-` for iterations without one).
    """
    bad = [it for it in its if it.output and is_degenerate(it.output)]
    if not bad:
        return None
    prompts = sorted({it.prompt_id or "-" for it in bad})
    return ResultWarning(
        code=WarningCode.DEGENERATE_OUTPUT,
        params={"mode": mode, "iterations": len(bad), "of": len(its), "prompts": ", ".join(prompts)},
    )


MIN_WORDS = 16  # shorter texts are not judged by word n-grams
MAX_NGRAM = 16  # a looping sentence of up to 16 words
TAIL_CHARS = 64
MAX_PERIOD = 16  # a period of at most 16 characters repeats at least 4 times in the tail


def is_degenerate(text: str) -> bool:
    """A repetition loop: `ngram_coverage(words) > 1/2` for some n ≤ 16 on a text of at least 16
    whitespace words, or the last 64 characters one period of at most 16 characters repeated."""
    words = text.split()
    if len(words) >= MIN_WORDS and any(ngram_coverage(words, n) > 0.5 for n in range(1, MAX_NGRAM + 1)):
        return True
    return tail_period(text) is not None


def ngram_coverage(words: list[str], n: int) -> float:
    """Share of the words covered by the occurrences of the most frequent n-gram:
    |⋃ [i, i+n) over positions i where it occurs| / len(words) (overlaps counted once)."""
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    top, count = Counter(grams).most_common(1)[0]
    if count < 2:
        return 0.0
    covered: set[int] = set()
    for i, g in enumerate(grams):
        if g == top:
            covered.update(range(i, i + n))
    return len(covered) / len(words)


def tail_period(text: str) -> int | None:
    """The smallest p ≤ 16 with tail[i] == tail[i + p] for every i, tail the last 64 characters
    (None when the text is shorter or the tail has no such period)."""
    tail = text[-TAIL_CHARS:]
    if len(tail) < TAIL_CHARS:
        return None
    for p in range(1, MAX_PERIOD + 1):
        if tail[p:] == tail[:-p]:
            return p
    return None


DRIFT_ALPHA = 0.025  # each of the two tests: at most 5% false alarms on a stationary arm together


def drift(mode: str, its: list[Iteration]) -> ResultWarning | None:
    """The vanilla arm's speed changed over the run: the machine changed while measuring.

    `stats.drift` over the successful iterations with a start time (`started_s`, from version
    6): ln tokens/s regressed on start time within each prompt, and its first half in time
    against its second half (Welch). Fires when either p < 0.025 (Bonferroni over the two: at
    most 5% false alarms on a stationary arm; the simulation in tests/unit/test_validity.py
    checks it). Params: the fitted change over the run (exp(b · span) − 1), the halves' change
    (exp(Δ) − 1) and both p-values. An interleaved run's pairs cancel a linear drift; a blocked
    run's speedup carries it.
    """
    ok = [i for i in its if i.returncode == 0 and i.started_s is not None and i.tokens_per_second > 0]
    if not ok:
        return None
    times = [i.started_s or 0.0 for i in ok]
    found = stats.drift(times, [i.tokens_per_second for i in ok], [i.prompt_id for i in ok])
    if found is None:
        return None
    slope, p_trend, halves, p_halves = found
    if not any(p is not None and p < DRIFT_ALPHA for p in (p_trend, p_halves)):
        return None
    span = max(times) - min(times)
    return ResultWarning(
        code=WarningCode.DRIFT,
        params={
            "mode": mode,
            "change": math.expm1(slope * span),
            "p_trend": p_trend,
            "halves_change": math.expm1(halves),
            "p_halves": p_halves,
            "span_s": span,
        },
    )


INTERFERENCE_PCT = 25.0  # other processes' CPU above a quarter of one core while an iteration ran


def interference(report: Report, threshold: float = INTERFERENCE_PCT) -> ResultWarning | None:
    """Other processes used the CPU while iterations ran (`Iteration.interference`).

    An iteration counts when `disturbed` says so (other processes' CPU above `threshold`, % of
    one core, a window shorter than `MIN_WINDOW_S` judged by its CPU seconds over that long:
    shorter readings are tens of percent off, see `telemetry.interference`). Params: how many
    iterations of how many read, the highest share, and the busiest other processes of that
    iteration, named (the first, then up to two more).
    """
    judged = [(m.mode, i.interference) for m in report.modes.values() for i in m.iterations if i.interference]
    hit = [(mode, x) for mode, x in judged if disturbed(x, threshold)]
    if not hit:
        return None
    worst = max((x for _, x in hit), key=lambda x: x.other_cpu_pct)
    return ResultWarning(
        code=WarningCode.INTERFERENCE,
        params={
            **_hit_params(hit),
            "of": len(judged),
            "busiest_pct": worst.busiest_cpu_pct,
            "others": ", ".join(f"{name} (pid {pid}, {pct:.0f}%)" for name, pid, pct in worst.top[1:]),
            "threshold": threshold,
        },
    )


def _hit_params(hit: list[tuple[str, Interference]]) -> dict[str, object]:
    """The params the interference and redone warnings share: how many iterations, per mode, and
    the worst one's share and busiest other process."""
    worst = max((x for _, x in hit), key=lambda x: x.other_cpu_pct)
    return {
        "iterations": len(hit),
        "modes": ", ".join(f"{m} {n}" for m, n in Counter(mode for mode, _ in hit).items()),
        "max_pct": worst.other_cpu_pct,
        "busiest": worst.busiest,
        "busiest_pid": worst.busiest_pid,
    }


def disturbed(x: Interference | None, threshold: float = INTERFERENCE_PCT) -> bool:
    """Other processes disturbed this iteration (`--redo-disturbed` measures it again): their CPU
    over the window, as a share of one core, above `threshold`, the share taken over at least
    `MIN_WINDOW_S`,

        share = other_cpu_pct · duration / max(duration, MIN_WINDOW_S)

    so that a short window, whose reading is tens of percent off (CPU times tick in 10 ms), counts
    only when its other CPU seconds would exceed the threshold over MIN_WINDOW_S: a 0.3 s window
    whose share reads 30% from three stray ticks stays undisturbed, one that read 88% (0.26 s of a
    spinning hog) does not. Unread (None): not disturbed."""
    if x is None:
        return False
    return x.other_cpu_pct * x.duration_s / max(x.duration_s, MIN_WINDOW_S) > threshold


def redone(report: Report) -> ResultWarning | None:
    """Iterations measured again because other processes disturbed them (`ModeResult.redone`).
    Params: how many per mode, the budget (--redo-disturbed), the highest share among them and its
    busiest other process."""
    hit = [(m.mode, i.interference) for m in report.modes.values() for i in m.redone if i.interference]
    if not hit:
        return None
    return ResultWarning(
        code=WarningCode.REDONE,
        params={
            **_hit_params(hit),
            "budget": report.config.redo_disturbed,
            "threshold": INTERFERENCE_PCT,
        },
    )


CACHE_NOTE = "prompt cache"  # how `engines.http_session` starts its note on cache hits


def prompt_cache_hits(mode: str, its: list[Iteration]) -> ResultWarning | None:
    """The server reused cached prompt tokens (`server_timings.cache_n` > 0, llama-server's count):
    TTFT and prompt time then measure cache hits, not prompt processing. Params: the mode, how
    many iterations, and the most tokens one reused."""
    hits = [int(c) for i in its if i.server_timings and (c := i.server_timings.get("cache_n") or 0) > 0]
    if not hits:
        return None
    return ResultWarning(
        code=WarningCode.PROMPT_CACHE_HITS,
        params={"mode": mode, "iterations": len(hits), "of": len(its), "max_tokens": max(hits)},
    )


def unchecked_server(report: Report) -> ResultWarning | None:
    """The servers were not started by velobench (--engine remote): their settings (threads,
    batching, prompt caching, what else runs beside them) could not be checked. Params: their
    addresses as recorded."""
    if report.config.engine is not EngineName.REMOTE:
        return None
    where = ", ".join(b.path for b in report.binaries) or "the --server-url/--baseline-url servers"
    return ResultWarning(code=WarningCode.UNCHECKED_SERVER, params={"servers": where})
