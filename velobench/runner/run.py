"""From a validated RunConfig to a saved report: resolve models, choose the engine, load prompts, run.

Shared by `velobench run`, `velobench demo`, `tune` and matrix cells, so every cell of a
matrix is exactly what `velobench run` with the same flags would do.

    prepare   every check, once, in one order (see `prepare`): options and files
              (validate.preflight), the engine chosen and made (its programs probed), models
              resolved (downloads) and checked, prompts loaded: every check that can fail on
              bad input, before any model loads
    execute   prepare → show the configuration → run_benchmark (saved after every iteration)
              → the speedup ceiling (llama-bench) → the report on the console; every save
              after the loop (a merged baseline, the ceiling) goes through `loop.keep`, so a
              refused one is rescued as in the loop (`runner.lifecycle`)
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from pathlib import Path

from rich.console import Console

from velobench import engines
from velobench.analysis import ceiling
from velobench.analysis.summaries import analyze
from velobench.analysis.warnings import CEILING_CHECKS, ceiling_warnings
from velobench.bins.locate import find_tool
from velobench.engines import llama_bench
from velobench.engines.base import Engine, RunsFiles
from velobench.engines.llama_args import llama_cpp_dir
from velobench.engines.llama_bench import measure_costs
from velobench.errors import VelobenchError
from velobench.models.catalog import provenance_note
from velobench.models.gguf_info import check_complete, check_draft_compatible, inspect_model
from velobench.models.resolve import resolve_model_arg
from velobench.prompts import Prompt, load_prompts
from velobench.report.console import ceiling_text, print_config, print_report, progress_printer
from velobench.results.config import EngineName, Method, RunConfig
from velobench.results.schema import Iteration, ModeComparison, Report, ResultWarning, WarningCode
from velobench.runner import preflight as validate
from velobench.runner.divergence import explain_divergences
from velobench.runner.loop import keep, run_benchmark
from velobench.telemetry import environment


def load_prompt_list(cfg: RunConfig) -> list[Prompt]:
    """The prompts iterations cycle through: a prompt set, or the single -p/-f prompt (the filters
    without a set were refused by the pre-flight)."""
    if not cfg.prompts:
        return [Prompt(id="prompt", category="default", prompt=cfg.prompt, source="cli")]
    return load_prompts(
        cfg.prompts, num_prompts=cfg.num_prompts, seed=cfg.prompt_seed, categories=cfg.categories or None
    )


def log_dir(output: Path) -> Path:
    """Where a run's server logs are kept: beside its result file."""
    return output.parent / f"{output.stem}-logs"


def prepare(
    cfg: RunConfig, output: Path, *, hints: Mapping[str, str] | None = None
) -> tuple[RunConfig, Engine, list[Prompt], list[ResultWarning]]:
    """Check every option, pick the engine, resolve and check the models, load the prompts; nothing runs yet.

    The one place a run's checks happen (`run`, `demo`, `tune`, `load`, matrix cells), each once,
    cheapest first; nothing is looked up, downloaded or started before step 7:

        1. the output location             `output` a file that can be written (validate.preflight,
        2. --llama-cpp-path                 as are 2-6: no lookup, no network, no child process)
        3. -x flags                        each engine that may run cfg refuses the flags it owns
                                           (`check_options`), with `hints`' reasons where given
        4. prompts                         -f / --prompts files read and parsed
        5. models on the command line      GGUF files complete (header parsed, length as it
                                           declares); catalog names and hf:// specs well-formed
        6. the engine can run cfg          the named one, or for auto at least one (`can_run`)
        7. the engine chosen and made      auto: the first installed; programs located and probed
                                           (one build), every -x flag known to them: still no download
        8. models fetched                  catalog names and hf:// resolved (downloads) and checked
                                           complete; the draft's vocabulary against the target's
        9. prompts loaded                  the prompt set the iterations cycle through

    `hints`: a command's own reasons for owned -x flags (`velobench load` sets -np itself). The
    returned config has the models resolved, the engine chosen and the warm-up count decided.
    """
    chosen = engines.choose(cfg, validate.preflight(cfg, output, hints=hints))
    cls = engines.engine_class(chosen)
    cfg = cfg.model_copy(
        update={"engine": chosen, "warmup": cfg.warmup if cfg.warmup is not None else cls.default_warmup}
    )
    engine = engines.make(cfg, log_dir=log_dir(output))
    build_folder(engine)  # one build per run, recorded as the binaries' common folder
    notes: list[ResultWarning] = []
    if cls.uses_gguf:  # GGUF files fetched and checked now; other engines resolve their own model names
        if not isinstance(engine, RunsFiles):
            raise TypeError(f"the {chosen} engine takes GGUF files: it must implement RunsFiles.use_models")
        cfg, notes = fetch_models(cfg)
        engine.use_models(cfg)
    return cfg, engine, load_prompt_list(cfg), notes


def fetch_model(spec: str, what: str) -> str:
    """A model argument that passed the pre-flight as a complete local GGUF file: a catalog name or
    hf:// spec is fetched (or found in the cache) and checked now (`check_complete`); a file named
    on the command line was checked by the pre-flight."""
    path = resolve_model_arg(spec, what)
    if not Path(spec).expanduser().is_file():
        check_complete(path, what)
    return path


def fetch_models(cfg: RunConfig) -> tuple[RunConfig, list[ResultWarning]]:
    """`cfg` with its models as complete local files, and the notes on that choice of draft."""
    resolved: dict[str, object] = {"main_model": fetch_model(cfg.main_model, "main model")}
    notes: list[ResultWarning] = []
    if cfg.draft_model:
        resolved["draft_model"] = fetch_model(cfg.draft_model, "draft model")
        notes = [
            ResultWarning(code=WarningCode.DRAFT_CHOICE, params={"note": note})
            for note in check_draft_compatible(str(resolved["main_model"]), str(resolved["draft_model"]))
        ]
    notes += [
        ResultWarning(code=WarningCode.UNVERIFIED_MODEL, params={"note": note})
        for spec, what in ((cfg.main_model, "main model"), (cfg.draft_model, "draft model"))
        if spec and (note := provenance_note(spec, what))
    ]
    synthetic = [
        Path(str(path)).name
        for path in (resolved["main_model"], resolved.get("draft_model"))
        if path and inspect_model(str(path)).synthetic
    ]
    if synthetic:
        notes.append(ResultWarning(code=WarningCode.SYNTHETIC_MODEL, params={"models": ", ".join(synthetic)}))
    return cfg.model_copy(update=resolved), notes


def build_folder(engine: Engine) -> Path | None:
    """The folder every native program of this run comes from (None for engines with none)."""
    folders = {Path(b.path).parent for b in engine.binaries()}
    if len(folders) > 1:  # engines take every tool from one build; this is a bug if it happens
        raise VelobenchError(f"one run would mix programs from {', '.join(sorted(map(str, folders)))}")
    return folders.pop() if folders else None


def dry_run(cfg: RunConfig, output: Path) -> list[str]:
    """The exact command lines a run would launch, one per mode; nothing is started."""
    cfg, engine, prompts, _ = prepare(cfg, output)
    lines = engine.command_lines(prompts[0])
    return [
        f"{mode}: {line}" for mode, line in lines.items() if cfg.skip_vanilla is False or mode != "vanilla"
    ]


def responses_path(output: Path) -> Path:
    return output.with_name(output.stem + ".responses.jsonl")


def execute(
    cfg: RunConfig,
    output: Path,
    console: Console,
    *,
    baseline: tuple[Path, Report] | None = None,
) -> Report:
    """Prepare, show the configuration, run with live progress, print the report; return it.

    `baseline`: a vanilla-only run (a matrix baseline) whose vanilla iterations this
    speculative-only run is compared with; the report says where they came from.
    """
    cfg, engine, prompts, notes = prepare(cfg, output)
    env = environment.capture()
    print_config(console, Report(config=cfg, environment=env, binaries=engine.binaries()))
    if cfg.prompts:
        cats = sorted({p.category for p in prompts})
        console.print(f"  Prompts:     {len(prompts)} from {cfg.prompts} ({', '.join(cats)})")
    responses = responses_path(output)
    report = run_benchmark(
        cfg,
        engine,
        env,
        output,
        progress=progress_printer(console),
        notes=notes,
        prompts=prompts,
        responses=responses,
        reference=llama_bench_reference(cfg, engine) if cfg.llama_bench_reference else None,
    )
    base = baseline[1].vanilla if baseline is not None else None
    if baseline is not None and base is not None and report.vanilla is None:
        report.modes = {"vanilla": base.model_copy(update={"source": str(baseline[0])}), **report.modes}
        report.comparisons = [ModeComparison(baseline="vanilla", candidate="speculative")]
        analyze(report)
        keep(report, output, report.iteration_count())
    explain_divergences(report, engine, prompts, output, console)  # temperature 0: near-tie or decisive
    if cfg.ceiling and report.status == "complete" and engines.engine_class(cfg.engine).uses_gguf:
        add_ceiling(report, cfg, output, console)
    print_report(console, report)
    console.print(f"\nResults saved to: {output} (generated texts: {responses})")
    return report


def llama_bench_reference(cfg: RunConfig, engine: Engine) -> Callable[[Iteration], tuple[str, float]]:
    """--llama-bench-reference: llama-bench located now (a clear line before anything runs where
    it is missing); each vanilla iteration then gets llama-bench's decode test at its own length
    (generated tokens − 1: velobench's decode phase starts after the first token) and depth (its
    prompt tokens), at the run's threads and offload."""
    if cfg.engine not in (EngineName.SERVER, EngineName.CLI):
        raise VelobenchError(
            f"--llama-bench-reference needs a llama.cpp engine (server or cli), not {cfg.engine.value}"
        )
    folders = {Path(b.path).parent for b in engine.binaries()}  # the build that runs the benchmark
    tool = find_tool("llama-bench", folders.pop() if len(folders) == 1 else llama_cpp_dir(cfg))

    def measure(it: Iteration) -> tuple[str, float]:
        argv = llama_bench.reference_argv(
            tool.path,
            cfg.main_model,
            it.generated_tokens - 1,
            it.prompt_tokens,
            threads=cfg.threads,
            gpu_layers=cfg.gpu_layers,
        )
        return shlex.join(argv), llama_bench.reference_tg(argv)

    return measure


def add_ceiling(report: Report, cfg: RunConfig, output: Path, console: Console) -> None:
    """Measure what verification and drafting cost here (llama-bench) and the speedup theory allows.

    Failing to measure it is a warning, never the loss of a finished run.
    """
    spec = report.speculative
    if (
        spec is None
        or spec.acceptance is None
        or (spec.acceptance.rate is None and spec.acceptance.mean_length is None)
    ):
        return  # nothing was drafted: no acceptance to build a ceiling on (the nothing-drafted warning says so)
    console.print("\nMeasuring the speedup ceiling (llama-bench) ...")
    # llama-bench from the build that ran the benchmark, never another one.
    folders = {Path(b.path).parent for b in report.binaries}
    where = folders.pop() if len(folders) == 1 else llama_cpp_dir(cfg)
    try:
        costs = measure_costs(
            cfg.main_model,
            cfg.draft_model if cfg.method is Method.DRAFT else None,
            (cfg.n_draft + 1,),
            threads=cfg.threads,
            gpu_layers=cfg.gpu_layers,
            gpu_layers_draft=cfg.gpu_layers_draft,
            llama_cpp_path=where,
        )
    except VelobenchError as exc:
        report.warnings.append(ResultWarning(code=WarningCode.NO_CEILING, params={"reason": str(exc)}))
        keep(report, output, report.iteration_count())
        return
    verify = costs.verify_cost(cfg.n_draft + 1)
    acc = spec.acceptance
    alpha = ceiling.alpha_from_acceptance(acc.rate, cfg.n_draft, acc.mean_length)
    if verify is None:
        return
    report.costs = costs
    report.ceiling = ceiling.compute(alpha, cfg.n_draft, costs.draft_cost, verify, measured=report.speedup)
    report.warnings = [w for w in report.warnings if w.code not in CEILING_CHECKS] + ceiling_warnings(report)
    for w in report.warnings:  # say why from this machine's measured costs, not in general terms
        if w.code is WarningCode.SPECULATION_SLOWER:
            w.params = {**w.params, "why": ceiling_text(report.ceiling)}
    keep(report, output, report.iteration_count())
