"""The benchmark loop: modes × iterations through an engine, saved after every iteration.

    for mode in (vanilla, speculative):
        with engine.session(mode):          # e.g. one server per configuration
            warm-up generations (not recorded)
            measured generations → Iteration → summaries → result file (atomic)
    comparisons, warnings, status → result file (velobench.analysis)

A result file appears once the first iteration has finished; from then on it is rewritten
atomically after each iteration, so a crash or Ctrl-C keeps everything finished.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from velobench.analysis.summaries import analyze
from velobench.analysis.warnings import setup_warnings
from velobench.config import RunConfig
from velobench.engines.base import Engine
from velobench.environment import Environment
from velobench.errors import Interrupted, VelobenchError
from velobench.prompts import Prompt
from velobench.results.schema import Iteration, Mode, ModeResult, Report, Warning, WarningCode
from velobench.results.store import save

ProgressFn = Callable[[str, int, int, Iteration | None], None]


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
    warmup = cfg.warmup or 0  # `prepare` fills in the engine's default
    written = False
    try:
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
                    it = session.generate(prompt, i)
                    it.prompt_id, it.category = prompt.id, prompt.category
                    result.iterations.append(it)
                    if responses is not None:
                        append_response(responses, mode, it)
                    analyze(report)
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
            f"interrupted; {report.iteration_count()} finished iteration(s) kept in {output}"
            if written
            else "interrupted; nothing finished"
        ) from exc
    except VelobenchError as exc:
        report.status = "failed"
        report.error = str(exc)
        if written:
            save(report, output)
            raise VelobenchError(
                f"{exc} ({report.iteration_count()} finished iteration(s) kept in {output})"
            ) from exc
        raise
    report.status = "complete"
    analyze(report)
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
