"""`velobench lossless`: N seeded generations per prompt in each arm, then the two-sample test.

    prepare (runner.run.prepare: every check before a model loads)
    for arm in (vanilla, speculative):
        with engine.session(arm):                 # a server per arm, or a process per sample
            the seed check: one seed twice gives the same output, or one line (exit 2)
            rounds i = 0..N−1: one sample per prompt, seed = --seed + arm·1000003 + i·P + p,
                               saved after each round; vanilla stops at half the time bound, speculative at all of it
    the test (analysis.lossless.sampled_test) → the result (kind "lossless") → the console

Samples are independent across arms (their seeds never repeat) and within an arm (one seed
each). Both arms use the same temperature, top-p, top-k and -n, and every other sampler at
the engine's default, the same in both; `candidate_temp` (a self-check, never a real
comparison) samples the speculative arm at another temperature, to show the test sees it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import cast

from rich.console import Console

from velobench.analysis.lossless import lossy_settings, sampled_test
from velobench.engines.base import SeededSession
from velobench.errors import VelobenchError
from velobench.prompts import Prompt
from velobench.results.config import RunConfig
from velobench.results.lossless import Arm, LosslessReport, Sample, SampleSettings
from velobench.results.schema import Mode
from velobench.runner.lifecycle import Lifecycle
from velobench.telemetry import environment

ARM_SEED_STRIDE = 1_000_003  # seeds of the two arms never meet for N·P below a million


def check_settings(cfg: RunConfig, settings: SampleSettings) -> None:
    """Bad input, one line each, before anything loads."""
    if settings.samples < 1:
        raise VelobenchError(f"--samples must be at least 1, got {settings.samples}")
    if cfg.temp <= 0:
        raise VelobenchError(
            "velobench lossless samples at a temperature > 0 (--temp 0.8, say); at temperature 0 "
            "`velobench run` compares the greedy outputs and explains every divergence"
        )
    if not 0 < settings.top_p <= 1:
        raise VelobenchError(f"--top-p must be in (0, 1], got {settings.top_p}")
    if settings.top_k < 0:
        raise VelobenchError(f"--top-k must be 0 (off) or more, got {settings.top_k}")
    if not 0 < settings.alpha < 1:
        raise VelobenchError(f"--alpha must be in (0, 1), got {settings.alpha}")
    if not 0 < settings.detect <= 1:
        raise VelobenchError(f"--detect is a total variation in (0, 1], got {settings.detect}")
    if settings.max_time_s is not None and settings.max_time_s <= 0:
        raise VelobenchError(f"--max-time must be positive, got {settings.max_time_s}")
    if cfg.skip_vanilla or cfg.skip_speculative:
        raise VelobenchError("velobench lossless compares two arms: drop --skip-vanilla/--skip-speculative")


def seeded(session: object, engine_name: str, mode: Mode) -> SeededSession:
    """The session as one that samples with a seed, or one line naming the engine that cannot."""
    if not isinstance(session, SeededSession):
        raise VelobenchError(f"the {engine_name} engine cannot generate with a given seed ({mode} mode)")
    return cast(SeededSession, session)


def check_seed(
    session: SeededSession, prompt: Prompt, seed: int, settings: SampleSettings, temp: float, where: str
) -> None:
    """One seed, twice: the same output, or the engine does not seed its sampling (one line)."""
    first = session.sample(prompt, seed, top_p=settings.top_p, top_k=settings.top_k, temperature=temp)
    again = session.sample(prompt, seed, top_p=settings.top_p, top_k=settings.top_k, temperature=temp)
    if first != again:
        raise VelobenchError(
            f"{where} does not honour the seed: seed {seed} gave two different outputs "
            f"({first[1][:40]!r} and {again[1][:40]!r}), so its samples cannot be drawn with independent seeds"
        )


def recompute(report: LosslessReport) -> None:
    """The test from the samples (`analysis.lossless.sampled_test`)."""
    base, cand = report.arms.get("vanilla"), report.arms.get("speculative")
    if base is None or cand is None:
        report.test = None
        return
    s = report.settings
    report.test = sampled_test(
        base.samples,
        cand.samples,
        positions=s.tokens,
        alpha=s.alpha,
        detect=s.detect,
        prompt_order=list(report.prompts),
        seed=report.config.seed,
    )


def execute_lossless(
    cfg: RunConfig,
    settings: SampleSettings,
    output: Path,
    console: Console,
    *,
    candidate_temp: float | None = None,
) -> LosslessReport:
    """Prepare, sample both arms, test, print, save (see the module docstring)."""
    from velobench.lossless.render import print_lossless
    from velobench.runner.run import prepare

    check_settings(cfg, settings)
    if candidate_temp is not None and candidate_temp <= 0:
        raise VelobenchError(f"--candidate-temp must be positive, got {candidate_temp}")
    cfg, engine, prompts, _ = prepare(cfg.model_copy(update={"ceiling": False}), output)
    report = LosslessReport(
        config=cfg,
        settings=settings,
        environment=environment.capture(),
        binaries=engine.binaries(),
        prompts={p.id: p.prompt for p in prompts},
        lossy=lossy_settings(cfg),
    )
    if candidate_temp is not None:
        report.lossy.append(
            f"--candidate-temp {candidate_temp:g}: the speculative arm samples at another temperature (a self-check)"
        )
    console.print(
        f"Sampling {settings.samples} × {len(prompts)} prompt(s) × 2 arms, {settings.tokens} tokens each, "
        f"temperature {cfg.temp:g}, top-p {settings.top_p:g}, top-k {settings.top_k} ({cfg.engine} engine)"
    )
    start = time.monotonic()

    def on_end(ending: str) -> None:
        report.stopped_by = report.stopped_by or ("interrupted" if ending == "interrupted" else None)
        report.elapsed_s = time.monotonic() - start
        recompute(report)

    life = Lifecycle(report, output, "sample", count=report.sample_count, on_end=on_end)
    with life:
        arms: tuple[Mode, Mode] = ("vanilla", "speculative")
        for k, mode in enumerate(arms):
            arm = Arm(mode=mode, binary=engine.binary(mode))
            report.arms[mode] = arm
            temp = candidate_temp if mode == "speculative" and candidate_temp is not None else cfg.temp
            # the time bound: half of it for vanilla, the rest (what vanilla left too) for speculative
            deadline = None if settings.max_time_s is None else start + settings.max_time_s * (k + 1) / 2
            with engine.session(mode) as raw:
                arm.session = raw.info()
                session = seeded(raw, cfg.engine, mode)
                check_seed(session, prompts[0], cfg.seed + 7, settings, temp, f"the {mode} {arm.binary}")
                for i in range(settings.samples):
                    if deadline is not None and time.monotonic() > deadline:
                        report.stopped_by = "max-time"
                        break
                    for p, prompt in enumerate(prompts):
                        seed = cfg.seed + (k + 1) * ARM_SEED_STRIDE + i * len(prompts) + p
                        ids, text = session.sample(
                            prompt, seed, top_p=settings.top_p, top_k=settings.top_k, temperature=temp
                        )
                        arm.samples.append(Sample(prompt_id=prompt.id, seed=seed, tokens=ids, text=text))
                    life.save()
                    if (i + 1) % 10 == 0 or i + 1 == settings.samples:
                        console.print(
                            f"  {mode}: {i + 1}/{settings.samples} rounds ({time.monotonic() - start:.0f} s)"
                        )
        report.stopped_by = report.stopped_by or "samples"
        report.elapsed_s = time.monotonic() - start
        recompute(report)
        life.complete()
    print_lossless(console, report)
    console.print(f"\nResults saved to: {output}")
    return report
