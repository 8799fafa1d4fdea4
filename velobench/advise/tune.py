"""`velobench tune`: the best draft length for a pair on this hardware, in fewer runs than a sweep.

    1. costs      llama-bench: verify cost v(k) for every candidate k = γ+1, draft cost c
    2. probe      one short speculative run at the largest γ: acceptance α (from the mean
                  acceptance length where the engine reports it)
    3. predict    advise's model at one request (`advise.model.speedup` with b = 1, costs in units
                  of a target step): E(γ) / (γ·c + v(γ)), E(γ) = 1 + Σ_{i≤γ} a_i, with the
                  probe's per-position a_i where the engine counts them (llama-server), else
                  a_i = α^i (then it is the ceiling, `analysis.ceiling.speedup_ceiling`)
    4. confirm    a vanilla baseline and the top candidates, measured with repeated runs;
                  more rounds only while the best and the runner-up are not separated at 95%
                  (Welch's test), up to `max_rounds`; then each extra p_min at the chosen
                  n_draft (where the binary has the option), kept only if significantly faster

Counts every measured generation so the report can say what the tuning cost compared with
measuring every candidate as a full sweep would have. Each measurement is a `velobench run`
result of its own in the work folder; Ctrl-C, a failure or a refused save ends tuning the way it
ends every command (`runner.lifecycle`), naming the run's kept iterations and the finished
measurements.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from velobench.advise import model
from velobench.analysis import ceiling, stats
from velobench.bins import locate as binaries
from velobench.engines.llama_args import P_MIN_FLAGS, llama_cpp_dir
from velobench.engines.llama_bench import measure_costs
from velobench.models.resolve import resolve_model_arg
from velobench.results.config import RunConfig, to_argv
from velobench.results.costs import Costs
from velobench.results.measures import Ratio
from velobench.results.schema import Report
from velobench.runner.lifecycle import Lifecycle
from velobench.runner.loop import run_benchmark
from velobench.runner.run import build_folder, prepare
from velobench.telemetry.environment import capture


@dataclass
class Candidate:
    n_draft: int
    predicted: float | None = None
    samples: list[float] = field(default_factory=list)
    acceptance: float | None = None
    p_min: float = 0.0


@dataclass
class TuneResult:
    best: Candidate | None
    baseline: list[float]
    candidates: list[Candidate]
    costs: Costs
    alpha: float
    generations: int
    sweep_generations: int
    speedup: Ratio | None
    command: str


# What tune varies or decides itself: left out of the `velobench run` command it recommends.
_NOT_SHOWN = {"iterations", "skip_vanilla", "skip_speculative", "warmup"}


def probe_acceptance(probe: Report, g_max: int) -> list[float] | None:
    """a_i, i = 1..g_max, from the probe's per-position counters (`model.acceptance_profile`), or
    None where the engine counts no positions (the cli tools) or fewer than g_max."""
    spec = probe.speculative
    reqs = model.request_acceptance(spec.iterations if spec else [])
    if not reqs or not all(r.accepted_per_position for r in reqs):
        return None
    try:
        accept = model.acceptance_profile(reqs)
    except ValueError:  # no verification step with a draft
        return None
    return accept[:g_max] if len(accept) >= g_max else None


def supports_p_min(cfg: RunConfig, where: Path | None = None) -> bool:
    """Whether the build that runs speculation (server, else speculative-simple) has a p_min option."""
    where = where or llama_cpp_dir(cfg)
    for name in ("llama-server", "llama-speculative-simple"):
        found = binaries.find_path(name, where)
        if found:
            return binaries.find_tool(name, where).first_flag(*P_MIN_FLAGS) is not None
    return False


class Measurements:
    """Tune's measurements, each a `velobench run` result of its own in the work folder, under one
    lifecycle: Ctrl-C, a failure or a refused save says which finished measurements are kept."""

    def __init__(self, work_dir: Path) -> None:
        self.done = 0
        self.life = Lifecycle(None, work_dir, "measurement", count=self.count, write=None)

    def count(self) -> int:
        return self.done

    def __call__(self, cfg: RunConfig, out: Path) -> Report:
        cfg2, engine, prompts, notes = prepare(cfg, out)
        report = run_benchmark(cfg2, engine, capture(), out, notes=notes, prompts=prompts)
        self.done += 1
        self.life.save()  # saved by run_benchmark: counted here
        return report


def tune(
    cfg: RunConfig,
    work_dir: Path,
    console: Console,
    *,
    candidates: Sequence[int] = (1, 2, 3, 4, 6, 8),
    top: int = 2,
    iterations: int = 3,
    max_rounds: int = 3,
    p_mins: Sequence[float] = (),
) -> TuneResult:
    """Find the n_draft with the highest measured speedup (see the module docstring)."""
    measure = Measurements(work_dir)
    with measure.life:
        return _tune(cfg, work_dir, console, measure, candidates, top, iterations, max_rounds, p_mins)


def _tune(
    cfg: RunConfig,
    work_dir: Path,
    console: Console,
    _measure: Measurements,
    candidates: Sequence[int],
    top: int,
    iterations: int,
    max_rounds: int,
    p_mins: Sequence[float],
) -> TuneResult:
    assert cfg.draft_model is not None
    named = (cfg.main_model, cfg.draft_model)  # as the user wrote them, for the command we print
    # llama-bench needs files: resolve catalog names and hf:// specs first, as `run` does.
    cfg = cfg.model_copy(
        update={
            "main_model": resolve_model_arg(cfg.main_model, "main model"),
            "draft_model": resolve_model_arg(cfg.draft_model, "draft model"),
        }
    )
    gammas = sorted(set(candidates))
    # Every program of the tuning from one build: the one the engine takes (llama-bench included).
    _, engine, _, _ = prepare(cfg.model_copy(update={"skip_vanilla": False}), work_dir / "probe.json")
    build = build_folder(engine) or llama_cpp_dir(cfg)
    console.print(
        f"[bold]1/4[/bold] costs: llama-bench on the target (batches {', '.join(str(g + 1) for g in gammas)}) and the draft"
    )
    costs = measure_costs(
        cfg.main_model,
        cfg.draft_model,
        tuple(g + 1 for g in gammas),
        threads=cfg.threads,
        gpu_layers=cfg.gpu_layers,
        gpu_layers_draft=cfg.gpu_layers_draft,
        llama_cpp_path=build,
    )
    console.print(
        f"  target decode {costs.target_tg_ts:.1f} tok/s, draft {costs.draft_tg_ts or 0:.1f} tok/s (c = {costs.draft_cost:.2f}); "
        + ", ".join(f"v({g}) = {costs.verify_cost(g + 1):.2f}" for g in gammas)
    )
    generations = 0

    g_max = gammas[-1]
    console.print(f"[bold]2/4[/bold] probe: acceptance at n_draft {g_max}")
    probe_cfg = cfg.model_copy(update={"n_draft": g_max, "iterations": 1, "skip_vanilla": True})
    probe = _measure(probe_cfg, work_dir / "probe.json")
    generations += 1
    acc = probe.speculative.acceptance if probe.speculative else None
    alpha = ceiling.alpha_from_acceptance(acc.rate if acc else 0.0, g_max, acc.mean_length if acc else None)
    accept = probe_acceptance(probe, g_max)
    console.print(
        f"  α ≈ {alpha:.2f} (acceptance {acc.rate if acc and acc.rate is not None else 0:.0%})"
        + (
            "; accepted per position " + ", ".join(f"{a:.2f}" for a in accept)
            if accept is not None
            else "; no per-position counts from this engine: a_i = α^i"
        )
    )
    accept = accept if accept is not None else [alpha**i for i in range(1, g_max + 1)]

    cands = []
    for g in gammas:
        v = costs.verify_cost(g + 1)
        cands.append(Candidate(g, model.speedup(accept, g, 1.0, costs.draft_cost, v) if v else None))
    ranked = sorted(cands, key=lambda c: c.predicted or 0.0, reverse=True)
    console.print(
        "[bold]3/4[/bold] predicted (advise's model at one request): "
        + ", ".join(f"n_draft {c.n_draft}: {c.predicted:.2f}x" for c in ranked if c.predicted)
    )
    chosen = ranked[:top]

    console.print(
        f"[bold]4/4[/bold] confirm: vanilla and n_draft {', '.join(str(c.n_draft) for c in chosen)}, {iterations} runs each per round"
    )
    baseline: list[float] = []
    for rnd in range(1, max_rounds + 1):
        base_cfg = cfg.model_copy(update={"iterations": iterations, "skip_speculative": True})
        rep = _measure(base_cfg, work_dir / f"vanilla-{rnd}.json")
        baseline += [i.tokens_per_second for i in rep.vanilla.iterations] if rep.vanilla else []
        generations += iterations
        for c in chosen:
            c_cfg = cfg.model_copy(
                update={"n_draft": c.n_draft, "iterations": iterations, "skip_vanilla": True}
            )
            rep = _measure(c_cfg, work_dir / f"nd{c.n_draft}-{rnd}.json")
            spec = rep.speculative
            c.samples += [i.tokens_per_second for i in spec.iterations] if spec else []
            c.acceptance = spec.acceptance.rate if spec and spec.acceptance else None
            generations += iterations
        chosen.sort(key=lambda c: sum(c.samples) / len(c.samples), reverse=True)
        summary = ", ".join(
            f"n_draft {c.n_draft}: {sum(c.samples) / len(c.samples):.2f} tok/s" for c in chosen
        )
        console.print(f"  round {rnd}: vanilla {sum(baseline) / len(baseline):.2f} tok/s; {summary}")
        if len(chosen) < 2:
            break
        sep = stats.ratio_of_means(chosen[0].samples, chosen[1].samples)
        if sep.p_value is not None and sep.p_value < 0.05:
            console.print(
                f"  separated: n_draft {chosen[0].n_draft} beats {chosen[1].n_draft} (Welch p = {sep.p_value:.2g})"
            )
            break
    best = chosen[0]
    best.p_min = cfg.draft_p_min
    p_extra = [p for p in sorted(set(p_mins)) if p != cfg.draft_p_min]
    if p_extra and supports_p_min(cfg, build):
        # p_min has no place in the model, so it is measured directly at the chosen n_draft.
        console.print(f"  p_min at n_draft {best.n_draft}: trying {', '.join(f'{p:g}' for p in p_extra)}")
        for p in p_extra:
            p_cfg = cfg.model_copy(
                update={
                    "n_draft": best.n_draft,
                    "draft_p_min": p,
                    "iterations": len(best.samples),
                    "skip_vanilla": True,
                }
            )
            rep = _measure(p_cfg, work_dir / f"nd{best.n_draft}-pmin{p:g}.json")
            samples = [i.tokens_per_second for i in rep.speculative.iterations] if rep.speculative else []
            generations += len(samples)
            test = stats.ratio_of_means(samples, best.samples)
            verdict = (
                "better"
                if test.ratio > 1 and test.p_value is not None and test.p_value < 0.05
                else "not better"
            )
            console.print(
                f"  p_min {p:g}: {sum(samples) / len(samples):.2f} tok/s ({verdict}, Welch p = {test.p_value:.2g})"
            )
            if verdict == "better":
                best = Candidate(best.n_draft, best.predicted, samples, p_min=p)
    speedup = stats.ratio_of_means(best.samples, baseline)
    # A sweep measures the baseline and every candidate as deeply as tuning measured its finalists.
    sweep = (len(gammas) * max(1, len(set(p_mins) | {cfg.draft_p_min})) + 1) * iterations * rnd
    chosen_cfg = cfg.model_copy(
        update={
            "main_model": named[0],
            "draft_model": named[1],
            "n_draft": best.n_draft,
            "draft_p_min": best.p_min,
        }
    )
    cmd = shlex.join(
        to_argv(
            chosen_cfg.model_copy(
                update={k: f.default for k, f in RunConfig.model_fields.items() if k in _NOT_SHOWN}
            )
        )
    )
    return TuneResult(best, baseline, cands, costs, alpha, generations, sweep, speedup, cmd)
