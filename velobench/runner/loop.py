"""The benchmark loop: both modes' iterations in the run's schedule, saved after every iteration.

    interleaved (the default where the engine can hold both arms at once, `Engine.side_by_side`):
        with engine.session(vanilla), engine.session(speculative):   # e.g. two servers, two ports
            warm-up generations in each (not recorded)
            slots in balanced order (`runner.schedule`): AB BA AB ... per prompt and round
                → Iteration (its position and start time) → summaries → result file (atomic)
    blocked (asked for, or the engine cannot hold both: the result says why):
        for mode in (vanilla, speculative):
            with engine.session(mode): warm-up, then that mode's iterations
    comparisons, warnings, status → result file (velobench.analysis)

With `--redo-disturbed N` an iteration that other processes disturbed (`analysis.warnings.disturbed`:
more than a quarter of a core besides velobench's tree while it ran) goes to its mode's `redone`
and the same slot runs again at once, at most N times in the run: the pair keeps its prompt and
(nearly) its moment, and the statistics see quiet iterations; once the budget is spent the
disturbed ones stay in and the interference warning says so.

With `--target-ci` (`until_precise`) the same happens in rounds of one iteration per prompt and
mode, with a look of the stopping rule (`analysis.stopping`) after every round; both sessions
stay open across the rounds where the engine can hold them (else each round opens its own).

A result file appears once the first iteration has finished; from then on it is rewritten
atomically after each iteration, so a crash or Ctrl-C keeps everything finished. Saving, the
rescue copy where the file system refuses a save, and how a run ends are `runner.lifecycle`'s,
the same for every command.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from velobench.analysis import stopping
from velobench.analysis.summaries import analyze, pair_iterations
from velobench.analysis.warnings import disturbed, setup_warnings
from velobench.engines.base import Engine, Session
from velobench.prompts import Prompt
from velobench.results.config import EngineName, RunConfig, Schedule, Telemetry
from velobench.results.environment import Environment
from velobench.results.schema import (
    Iteration,
    Look,
    Mode,
    ModeResult,
    Reference,
    Report,
    ResultWarning,
    Stopping,
    WarningCode,
)
from velobench.runner import schedule as order
from velobench.runner.lifecycle import Lifecycle
from velobench.telemetry.interference import OtherCpu
from velobench.telemetry.sampler import Sampler, Sources, TelemetryTrace
from velobench.telemetry.summary import power_over_time
from velobench.telemetry.summary import summarize as summarize_trace

ProgressFn = Callable[[str, int, int, Iteration | None], None]
# --llama-bench-reference: a vanilla iteration → llama-bench's command line for it and its tokens/s
ReferenceFn = Callable[[Iteration], tuple[str, float]]


def keep(report: Report, output: Path, saved: int) -> None:
    """Save `report` to `output` outside the loop (a merged baseline, the ceiling); where the file
    system refuses, a rescue copy and SaveFailed, as in the loop (`saved`: iterations in `output`
    from the last save that worked)."""
    life = Lifecycle(report, output, "iteration", count=report.iteration_count, written=saved > 0)
    life.saved = saved
    life.save()


def run_modes(cfg: RunConfig) -> list[Mode]:
    modes: list[Mode] = []
    if not cfg.skip_vanilla:
        modes.append("vanilla")
    if not cfg.skip_speculative:
        modes.append("speculative")
    return modes


def choose_schedule(cfg: RunConfig, engine: Engine, modes: Sequence[Mode]) -> tuple[Schedule, str | None]:
    """The schedule that runs: interleaved where asked and the engine can hold both arms at once,
    else blocked, with the engine's reason when interleaved was asked for and cannot run."""
    if cfg.schedule is Schedule.BLOCKED or len(modes) < 2:
        return Schedule.BLOCKED, None  # one mode: nothing to alternate
    why = engine.side_by_side()
    return (Schedule.INTERLEAVED, None) if why is None else (Schedule.BLOCKED, why)


class Measuring:
    """What every measured iteration of one run goes through: its place in the schedule, its
    start time, the samplers around it, the result, the responses file and the save."""

    def __init__(
        self,
        cfg: RunConfig,
        engine: Engine,
        report: Report,
        life: Lifecycle,
        prompts: Sequence[Prompt],
        sources: Sources | None,
        progress: ProgressFn,
        responses: Path | None,
        total: int,
        reference: ReferenceFn | None = None,
    ) -> None:
        self.cfg, self.engine, self.report, self.life = cfg, engine, report, life
        self.reference = reference
        self.prompts, self.sources, self.progress, self.responses = prompts, sources, progress, responses
        self.total = total  # iterations per mode, for the progress line
        self.position = 0
        self.clock0: float | None = None  # the first measured slot's start
        self.responses_ok = True
        self.interference = interference_on(cfg)
        self.redo_left = cfg.redo_disturbed if self.interference else 0  # --redo-disturbed's budget

    def result(self, mode: Mode) -> ModeResult:
        if mode not in self.report.modes:
            self.report.modes[mode] = ModeResult(mode=mode, binary=self.engine.binary(mode), iterations=[])
        return self.report.modes[mode]

    def opened(self, mode: Mode, session: Session) -> None:
        """A session is up: its info recorded, its warm-up generations run (not recorded)."""
        self.result(mode).session = session.info()
        warmup = self.cfg.warmup or 0  # `prepare` fills in the engine's default
        for w in range(warmup):
            self.progress(mode, -(w + 1), warmup, None)
            session.generate(self.prompts[w % len(self.prompts)], -(w + 1))

    def slot(self, session: Session, slot: order.Slot) -> Iteration:
        """One measured generation in its slot, recorded and saved."""
        mode, prompt = slot.mode, self.prompts[slot.prompt]
        result = self.result(mode)
        self.progress(mode, slot.index, self.total, None)
        while True:
            now = time.monotonic()
            self.clock0 = now if self.clock0 is None else self.clock0
            self.position += 1
            it, trace = measured(session, prompt, slot.index, self.sources, self.interference)
            it.prompt_id, it.category = prompt.id, prompt.category
            it.position, it.started_s = self.position, now - self.clock0
            if self.redo_left <= 0 or not disturbed(it.interference):
                break
            # other processes disturbed it: kept aside, and the same slot measured again at once
            self.redo_left -= 1
            result.redone.append(it)
            self.life.save()
        if trace is not None and result.power_trace is None:
            result.power_trace = power_over_time(trace)
        if self.reference is not None and mode == "vanilla":  # paired in time with the iteration
            command, it.reference_tokens_per_second = self.reference(it)
            if self.report.reference is None:
                self.report.reference = Reference(command=command, n_pairs=0, depth_tokens=0, ratio=None)
        result.iterations.append(it)
        result.session = session.info()  # notes found while measuring (e.g. prompt cache hits)
        if self.responses is not None and self.responses_ok:
            self.responses_ok = respond(self.report, self.responses, mode, it)
        analyze(self.report)
        self.life.save()
        self.progress(mode, slot.index, self.total, it)
        return it

    @contextlib.contextmanager
    def both(self, modes: Sequence[Mode]) -> Iterator[dict[Mode, Session]]:
        """Every mode's session open at once (started in order, stopped in reverse however the
        block ends), each warmed up once all are up."""
        with contextlib.ExitStack() as stack:
            sessions = {m: stack.enter_context(self.engine.session(m)) for m in modes}
            for m in modes:
                self.progress(m, 0, self.total, None)
                self.opened(m, sessions[m])
            yield sessions

    def run(self, slots: Sequence[order.Slot], sessions: Mapping[Mode, Session] | None) -> None:
        """`slots` through the open `sessions`, or (None) each mode's run of slots in a session of its own."""
        if sessions is not None:
            for s in slots:
                self.slot(sessions[s.mode], s)
            return
        for mode in dict.fromkeys(s.mode for s in slots):
            self.progress(mode, 0, self.total, None)
            with self.engine.session(mode) as session:
                self.opened(mode, session)
                for s in slots:
                    if s.mode == mode:
                        self.slot(session, s)


def run_benchmark(
    cfg: RunConfig,
    engine: Engine,
    environment: Environment,
    output: Path,
    progress: ProgressFn = lambda mode, i, n, it: None,
    notes: list[ResultWarning] | None = None,
    prompts: Sequence[Prompt] = (),
    responses: Path | None = None,
    reference: ReferenceFn | None = None,
) -> Report:
    """Run every mode in the run's schedule, saving after each finished iteration; return the report.

    Iteration i of every mode runs prompt (i − 1) mod P of `prompts` (default: the config's
    single prompt), so both modes see the same prompts. `notes` are warnings found before the
    run (e.g. by the draft/target pre-flight). Each generated text is appended to `responses`
    (JSONL) as it finishes. `reference` (--llama-bench-reference) runs after every vanilla
    iteration, so each reference measurement shares its iteration's moment.
    """
    prompts = list(prompts) or [Prompt(id="prompt", category="default", prompt=cfg.prompt, source="cli")]
    modes = run_modes(cfg)
    kind, why = choose_schedule(cfg, engine, modes)
    report = Report(
        config=cfg,
        environment=environment,
        binaries=engine.binaries(),
        warnings=[*(notes or []), *setup_warnings(cfg)],
        schedule=kind.value,
    )
    if why is not None:
        report.warnings.append(ResultWarning(code=WarningCode.SCHEDULE_BLOCKED, params={"reason": why}))
    sources = open_telemetry(cfg)
    life = Lifecycle(
        report, output, "iteration", count=report.iteration_count, on_end=lambda e: noted(report, e)
    )
    total = cfg.max_iterations if cfg.target_ci is not None else cfg.iterations
    m = Measuring(cfg, engine, report, life, prompts, sources, progress, responses, total, reference)
    try:
        with life:
            if cfg.target_ci is not None:
                until_precise(m, kind, side_by_side=why is None and engine.side_by_side() is None)
            elif kind is Schedule.INTERLEAVED:
                with m.both(modes) as sessions:
                    m.run(order.interleaved(0, cfg.iterations, len(prompts), modes), sessions)
            else:
                m.run(order.blocked(0, cfg.iterations, len(prompts), modes), None)
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


def until_precise(m: Measuring, kind: Schedule, *, side_by_side: bool) -> None:
    """`--target-ci`: rounds of one iteration per prompt in each mode, in the run's schedule, until
    the stopping rule (`analysis.stopping`) says the paired speedup's interval is within the
    target, or `--max-iterations` per mode or `--max-time` is reached; each round ends with a
    look, recorded with why the run stopped in `report.stopping`.

    Where the engine can hold both arms at once (`side_by_side`) both sessions open once, before
    the first round, and stay open until the last (warm-up once per session); otherwise (vLLM
    without room for two servers) each round opens each mode's session in turn, warm-up included.
    The pairs share their prompt and their round either way."""
    cfg, report = m.cfg, m.report
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
        m.result(mode)
    plan = order.interleaved if kind is Schedule.INTERLEAVED else order.blocked
    with contextlib.ExitStack() as stack:
        sessions = stack.enter_context(m.both(both)) if side_by_side else None
        start, look, index = time.monotonic(), 0, 0
        while rec.stopped_by is None:
            round_size = min(len(m.prompts), cfg.max_iterations - index)
            m.run(plan(index, round_size, len(m.prompts), both), sessions)
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
            elif rec.stopped_by is None and cfg.max_time is not None and elapsed >= cfg.max_time and look:
                # the time bound never cuts the rule's minimum sample: a look is always taken
                rec.stopped_by = "max-time"
            m.life.save()


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


def interference_on(cfg: RunConfig) -> bool:
    """Other processes' CPU is read where the engine runs on this machine: telemetry on, and for a
    server velobench did not start only with --telemetry local (as `open_telemetry`)."""
    if cfg.telemetry is Telemetry.OFF:
        return False
    return cfg.engine is not EngineName.REMOTE or cfg.telemetry is Telemetry.LOCAL


def measured(
    session: Session, prompt: Prompt, index: int, sources: Sources | None, interference: bool = False
) -> tuple[Iteration, TelemetryTrace | None]:
    """One generation, with the telemetry sampler running around it where telemetry is on, and
    the other processes' CPU read around it (`telemetry.interference`) where `interference`."""
    with OtherCpu() if interference else contextlib.nullcontext() as other:
        if sources is None:
            it, trace = session.generate(prompt, index), None
        else:
            pid, children_only = session.telemetry_root()
            with Sampler(sources, pid=pid, hz=TELEMETRY_HZ, children_only=children_only) as sampler:
                it = session.generate(prompt, index)
            trace = sampler.trace
            it.telemetry = summarize_trace(trace)
    if other is not None:
        it.interference = other.result
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
