"""`velobench tune`: the best n_draft (and p_min) for a pair on this machine, in few runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from velobench.cli import options as o
from velobench.cli.terminal import out
from velobench.errors import VelobenchError
from velobench.results.config import EngineName


def tune_cmd(
    main_model: o.MainModel,
    draft_model: o.DraftModel,
    candidates: Annotated[str, typer.Option(help="n_draft values to consider")] = "1,2,3,4,6,8",
    p_min_candidates: Annotated[
        str, typer.Option(help="draft p_min values to try at the chosen n_draft ('' = keep --draft-p-min)")
    ] = "0.5,0.8",
    top: Annotated[int, typer.Option(help="predicted-best candidates to confirm by measurement")] = 2,
    runs_per_round: Annotated[  # not RunConfig.iterations: tune sets that per candidate
        int, typer.Option("--iterations", "-i", help="runs per candidate per round")
    ] = 3,
    max_rounds: Annotated[int, typer.Option(help="confirmation rounds at most")] = 3,
    n_predict: o.NPredict = 64,
    draft_p_min: o.DraftPMin = 0.0,
    threads: o.Threads = None,
    prompts: o.Prompts = None,
    num_prompts: o.NumPrompts = None,
    engine: o.Engine = EngineName.AUTO,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="folder for every run's JSON")] = None,
    llama_cpp_path: o.LlamaCppPath = None,
) -> None:
    """Find the best n_draft for a pair on this machine, in fewer runs than a full sweep."""
    from velobench.advise.tune import tune
    from velobench.results import config
    from velobench.runner import preflight as validate

    cands = [int(c) for c in o.csv_numbers(candidates, "--candidates", int, "1,2,4,8")]
    p_mins = [float(p) for p in o.csv_numbers(p_min_candidates, "--p-min-candidates", float, "0.5,0.8")]
    if any(not 0 <= p <= 1 for p in p_mins):
        raise VelobenchError("--p-min-candidates: values must lie in [0, 1]")
    if not cands or cands[0] < 1:
        raise VelobenchError("--candidates: n_draft values must be >= 1")
    if top < 1 or runs_per_round < 2 or max_rounds < 1:
        raise VelobenchError("--top and --max-rounds must be >= 1 and --iterations >= 2")
    cfg = config.from_options(locals())
    work = output or o.default_output("tune", suffix="")
    validate.preflight(cfg, work, kind="folder")  # every check before llama-bench or a download
    with validate.leave_nothing_behind(work / "probe.json", logs=work / "probe-logs"):
        res = tune(
            cfg,
            work,
            out,
            candidates=cands,
            p_mins=p_mins,
            top=top,
            iterations=runs_per_round,
            max_rounds=max_rounds,
        )
    out.rule("tune")
    r = res.speedup
    if res.best is None or r is None:
        out.print("no candidate could be measured")
        return
    ci = (
        f", 95% CI {r.ci95_low:.2f}–{r.ci95_high:.2f}"
        if r.ci95_low is not None and r.ci95_high is not None
        else ""
    )
    best = f"best: n_draft {res.best.n_draft}, p_min {res.best.p_min:g}: speedup {r.ratio:.2f}x{ci}"
    out.print(f"{best} (Welch p = {r.p_value:.2g})" if r.p_value is not None else best)
    if r.ci95_high is not None and r.ci95_high < 1:
        out.print("  no setting beats vanilla decoding on this machine: this is the least slow one")
    out.print(
        f"generations measured: {res.generations} (a sweep of every candidate as deep: {res.sweep_generations})"
    )
    out.print(f"use it: {res.command}")
    out.print(f"runs kept in {work}")
