"""The benchmark loop: modes × iterations through an engine, saved after every iteration.

    for mode in (vanilla, speculative):
        with engine.session(mode):          # e.g. one server per configuration
            warm-up generations (not recorded)
            measured generations → Iteration → summaries → result file (atomic)
    comparisons, warnings, status → result file (velobench.analysis)

With `--target-ci` (`until_precise`) the same happens in rounds, one iteration per prompt and
mode each, with a look of the stopping rule (`analysis.stopping`) after every round.

A result file appears once the first iteration has finished; from then on it is rewritten
atomically after each iteration, so a crash or Ctrl-C keeps everything finished. Saving, the
rescue copy where the file system refuses a save, and how a run ends are `runner.lifecycle`'s,
the same for every command.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from velobench.analysis import stopping
from velobench.analysis.summaries import analyze, pair_iterations
from velobench.analysis.warnings import setup_warnings
from velobench.engines.base import Engine, Session
from velobench.prompts import Prompt
from velobench.results.config import EngineName, RunConfig, Telemetry
from velobench.results.environment import Environment
from velobench.results.schema import (
    Iteration,
    Look,
    Mode,
    ModeResult,
    Report,
    ResultWarning,
    Stopping,
    WarningCode,
)
from velobench.runner.lifecycle import Lifecycle
from velobench.telemetry.sampler import Sampler, Sources, TelemetryTrace
from velobench.telemetry.summary import power_over_time
from velobench.telemetry.summary import summarize as summarize_trace

ProgressFn = Callable[[str, int, int, Iteration | None], None]


def keep(report: Report, output: Path, saved: int) -> None:
    """Save `report` to `output` outside the loop (a merged baseline, the ceiling); where the file
    system refuses, a rescue copy and SaveFailed, as in the loop (`saved`: iterations in `output`
    from the last save that worked)."""
    life = Lifecycle(report, output, "iteration", count=report.iteration_count, written=saved > 0)
    life.saved = saved
    life.save()


def run_benchmark(
    cfg: RunConfig,
    engine: Engine,
    environment: Environment,
    output: Path,
    progress: ProgressFn = lambda mode, i, n, it: None,
    notes: list[ResultWarning] | None = None,
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
    warmup = cfg.warmup or 0  # `prepare` fills in the engine's default
    responses_ok = True
    sources = open_telemetry(cfg)
    life = Lifecycle(
        report, output, "iteration", count=report.iteration_count, on_end=lambda e: noted(report, e)
    )
    try:
        with life:
            if cfg.target_ci is not None:
                until_precise(cfg, engine, report, life, prompts, sources, progress, responses)
                analyze(report)
                life.complete()
                return report
            for mode in modes:
                result = ModeResult(mode=mode, binary=engine.binary(mode), iterations=[])
                report.modes[mode] = result
                progress(mode, 0, cfg.iterations, None)
                with engine.session(mode) as session:
                    result.session = session.info()
                    for w in range(warmup):
                        progress(mode, -(w + 1), warmup, None)
                        session.generate(prompts[w % len(prompts)], -(w + 1))
                    for i in range(1, cfg.iterations + 1):
                        progress(mode, i, cfg.iterations, None)
                        prompt = prompts[(i - 1) % len(prompts)]
                        it, trace = measured(session, prompt, i, sources)
                        it.prompt_id, it.category = prompt.id, prompt.category
                        if trace is not None and result.power_trace is None:
                            result.power_trace = power_over_time(trace)
                        result.iterations.append(it)
                        result.session = (
                            session.info()
                        )  # notes found while measuring (e.g. prompt cache hits)
                        if responses is not None and responses_ok:
                            responses_ok = respond(report, responses, mode, it)
                        analyze(report)
                        life.save()
                        progress(mode, i, cfg.iterations, it)
            analyze(report)
            life.complete()
    finally:
        if sources is not None:
            sources.close()
    return report


def noted(report: Report, ending: str) -> None:
    """The interrupted warning, recorded before the final save after Ctrl-C (and, for a
    `--target-ci` run, why it stopped)."""
    if ending == "interrupted":
        report.warnings.append(ResultWarning(code=WarningCode.INTERRUPTED, params={"kept": "iterations"}))
        if report.stopping is not None and report.stopping.stopped_by is None:
            report.stopping.stopped_by = "interrupted"


def until_precise(
    cfg: RunConfig,
    engine: Engine,
    report: Report,
    life: Lifecycle,
    prompts: Sequence[Prompt],
    sources: Sources | None,
    progress: ProgressFn,
    responses: Path | None,
) -> None:
    """`--target-ci`: rounds of one iteration per prompt in each mode (vanilla, then speculative,
    each in its own session) until the stopping rule (`analysis.stopping`) says the paired
    speedup's interval is within the target, or `--max-iterations` per mode or `--max-time` is
    reached; each round ends with a look, recorded with why the run stopped in `report.stopping`.
    A session lasts one round, so a server engine restarts its servers every round (warm-up
    included); the pairs still share their prompt and their round."""
    target = (cfg.target_ci or 0.0) / 100
    report.stopping = Stopping(
        rule=STOPPING_RULE,
        target=target,
        max_iterations=cfg.max_iterations,
        max_time_s=cfg.max_time,
        min_pairs=stopping.MIN_PAIRS,
    )
    rec = report.stopping
    both: tuple[Mode, Mode] = ("vanilla", "speculative")
    for mode in both:
        report.modes[mode] = ModeResult(mode=mode, binary=engine.binary(mode), iterations=[])
    start, look, index = time.monotonic(), 0, 0
    responses_ok = True
    while rec.stopped_by is None:
        round_size = min(len(prompts), cfg.max_iterations - index)
        for mode in both:
            result = report.modes[mode]
            with engine.session(mode) as session:
                result.session = session.info()
                for w in range(cfg.warmup or 0):
                    progress(mode, -(w + 1), cfg.warmup or 0, None)
                    session.generate(prompts[w % len(prompts)], -(w + 1))
                for k in range(round_size):
                    i = index + k + 1
                    progress(mode, i, cfg.max_iterations, None)
                    prompt = prompts[(i - 1) % len(prompts)]
                    it, trace = measured(session, prompt, i, sources)
                    it.prompt_id, it.category = prompt.id, prompt.category
                    if trace is not None and result.power_trace is None:
                        result.power_trace = power_over_time(trace)
                    result.iterations.append(it)
                    result.session = session.info()
                    if responses is not None and responses_ok:
                        responses_ok = respond(report, responses, mode, it)
                    analyze(report)
                    life.save()
                    progress(mode, i, cfg.max_iterations, it)
        index += round_size
        elapsed = time.monotonic() - start
        pairs = [
            (c.tokens_per_second, b.tokens_per_second)
            for c, b in pair_iterations(
                report.modes["vanilla"].iterations, report.modes["speculative"].iterations
            )
        ]
        if len(pairs) >= stopping.MIN_PAIRS:
            look += 1
            d = stopping.decide(pairs, look, target)
            rec.looks.append(
                Look(
                    look=look,
                    n_pairs=d.n_pairs,
                    elapsed_s=elapsed,
                    ratio=d.ratio,
                    ci95_low=d.ci_low,
                    ci95_high=d.ci_high,
                    relative_half_width=d.relative_half_width,
                )
            )
            if d.reached:
                rec.stopped_by = "target"
        if rec.stopped_by is None and index >= cfg.max_iterations:
            rec.stopped_by = "max-iterations"
        elif rec.stopped_by is None and cfg.max_time is not None and elapsed >= cfg.max_time:
            rec.stopped_by = "max-time"
        life.save()


STOPPING_RULE = (
    "paired t-interval on the log ratios with alpha spent over the looks: "
    "alpha_k = 0.05 * 6 / (pi^2 k^2), looks after each round from the first with "
    f"{stopping.MIN_PAIRS} pairs"
)


def respond(report: Report, responses: Path, mode: Mode, it: Iteration) -> bool:
    """Append the generated text to `responses`; False (and a warning) once that file is refused:
    the texts are in the result too, so it is a warning, not a stop."""
    try:
        append_response(responses, mode, it)
        return True
    except OSError as exc:
        report.warnings.append(
            ResultWarning(
                code=WarningCode.SESSION_NOTE,
                params={"note": f"generated texts not written to {responses}: {exc.strerror or exc}"},
            )
        )
        return False


TELEMETRY_HZ = 10.0  # overhead measured: 0.6% of one core, no significant slowdown (see README)


def open_telemetry(cfg: RunConfig) -> Sources | None:
    """NVML and RAPL, opened once per run: off with --telemetry off; for a server velobench did not
    start only where the user says it runs here (--telemetry local), since another host's watts
    cannot be read from this one."""
    if cfg.telemetry is Telemetry.OFF:
        return None
    if cfg.engine is EngineName.REMOTE and cfg.telemetry is not Telemetry.LOCAL:
        return None
    return Sources.open(gpus=True)


def measured(
    session: Session, prompt: Prompt, index: int, sources: Sources | None
) -> tuple[Iteration, TelemetryTrace | None]:
    """One generation, with the telemetry sampler running around it where telemetry is on."""
    if sources is None:
        return session.generate(prompt, index), None
    pid, children_only = session.telemetry_root()
    with Sampler(sources, pid=pid, hz=TELEMETRY_HZ, children_only=children_only) as sampler:
        it = session.generate(prompt, index)
    trace = sampler.trace
    it.telemetry = summarize_trace(trace)
    return it, trace


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
