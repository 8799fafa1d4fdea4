"""From a validated RunConfig to a saved report: resolve models, choose the engine, load prompts, run.

Shared by `velobench run`, `velobench demo` and matrix runs, so every cell of a matrix is
exactly what `velobench run` with the same flags would do.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

from rich.console import Console

from velobench import environment
from velobench.analysis import ceiling
from velobench.analysis.costs import measure_costs
from velobench.bins import locate as binaries
from velobench.config import Method, RunConfig, SpecImpl
from velobench.engines.llama_cli import LlamaCliEngine
from velobench.engines.llama_server import LlamaServerEngine
from velobench.errors import VelobenchError
from velobench.models.catalog import load_catalog, resolve_model
from velobench.models.gguf_info import check_draft_compatible, is_gguf
from velobench.prompts import Prompt, load_prompts
from velobench.report.console import print_config, print_report, progress_printer
from velobench.results import Report, Warning, WarningCode, save
from velobench.runner.loop import compare, run_benchmark


class EngineChoice(StrEnum):
    AUTO = "auto"
    SERVER = "server"
    CLI = "cli"


@dataclass(frozen=True)
class RunOptions:
    """How to run (not what is measured): where llama.cpp is, which engine, ports, deadlines."""

    llama_cpp_path: Path | None = None
    engine: EngineChoice = EngineChoice.AUTO
    warmup: int | None = None
    port: int | None = None
    timeout_s: float | None = None
    server_timeout_s: float = 300.0
    ceiling: bool = True


def resolve_model_arg(spec: str, what: str) -> str:
    """A model argument (path, catalog name or hf://REPO/FILE) as a verified local GGUF path.

    Checked before any binary starts: a missing file or a non-GGUF file is a one-line error.
    """
    is_file = Path(spec).expanduser().is_file()
    if not spec.startswith("hf://") and not is_file and spec not in load_catalog().models:
        raise VelobenchError(
            f"{what} not found: {spec} (not a file, not a catalog name: see `velobench models list`)"
        )
    path = resolve_model(spec)
    if not is_gguf(path):
        raise VelobenchError(f"{what} is not a GGUF file: {spec}")
    return str(path)


def load_prompt_list(cfg: RunConfig) -> list[Prompt]:
    """The prompts iterations cycle through: a prompt set, or the single -p/-f prompt."""
    if not cfg.prompts:
        if cfg.categories or cfg.num_prompts:
            raise VelobenchError("--category and --num-prompts select from a prompt set: add --prompts NAME")
        return [Prompt(id="prompt", category="default", prompt=cfg.prompt, source="cli")]
    return load_prompts(
        cfg.prompts, num_prompts=cfg.num_prompts, seed=cfg.prompt_seed, categories=cfg.categories or None
    )


def choose_engine(
    choice: EngineChoice, cfg: RunConfig, llama_cpp_path: Path | None
) -> Literal["cli", "server"]:
    """`auto`: llama-server wherever it can run the configuration and is installed, else the cli tools."""
    server_can = cfg.method is not Method.LOOKUP and cfg.spec_impl is SpecImpl.SIMPLE
    if choice is EngineChoice.CLI:
        if cfg.chat:
            raise VelobenchError(
                "--chat needs the server engine (the speculative command-line tools have no chat template)"
            )
        return "cli"
    if choice is EngineChoice.SERVER:
        if not server_can:
            what = "--method lookup" if cfg.method is Method.LOOKUP else "--spec-impl classic"
            raise VelobenchError(f"{what} needs the command-line tools: use --engine cli")
        return "server"
    if server_can and binaries.find_path("llama-server", llama_cpp_path):
        return "server"
    if cfg.chat:
        raise VelobenchError("--chat needs the server engine, and llama-server cannot run this configuration")
    return "cli"


def prepare(
    cfg: RunConfig, opts: RunOptions, output: Path
) -> tuple[RunConfig, LlamaCliEngine | LlamaServerEngine, list[Prompt], list[Warning]]:
    """Resolve and check the models, pick the engine, load the prompts; nothing runs yet.

    Every check that can fail on bad input happens here, before any model loads.
    """
    resolved: dict[str, object] = {"main_model": resolve_model_arg(cfg.main_model, "main model")}
    notes: list[Warning] = []
    if cfg.draft_model:
        resolved["draft_model"] = resolve_model_arg(cfg.draft_model, "draft model")
        notes = [
            Warning(code=WarningCode.DRAFT_CHOICE, message=note)
            for note in check_draft_compatible(str(resolved["main_model"]), str(resolved["draft_model"]))
        ]
    chosen = choose_engine(opts.engine, cfg, opts.llama_cpp_path)
    resolved["engine"] = chosen
    resolved["warmup"] = opts.warmup if opts.warmup is not None else (1 if chosen == "server" else 0)
    cfg = cfg.model_copy(update=resolved)
    prompts = load_prompt_list(cfg)
    engine: LlamaCliEngine | LlamaServerEngine
    if chosen == "server":
        engine = LlamaServerEngine(
            cfg,
            opts.llama_cpp_path,
            log_dir=output.parent / f"{output.stem}-logs",
            port=opts.port,
            timeout_s=opts.timeout_s,
            start_timeout_s=opts.server_timeout_s,
        )
    else:
        engine = LlamaCliEngine(cfg, opts.llama_cpp_path, timeout_s=opts.timeout_s)
    return cfg, engine, prompts, notes


def responses_path(output: Path) -> Path:
    return output.with_name(output.stem + ".responses.jsonl")


def execute(
    cfg: RunConfig,
    opts: RunOptions,
    output: Path,
    console: Console,
    *,
    baseline: tuple[Path, Report] | None = None,
) -> Report:
    """Prepare, show the configuration, run with live progress, print the report; return it.

    `baseline`: a vanilla-only run (a matrix baseline) whose vanilla iterations this
    speculative-only run is compared with; the report says where they came from.
    """
    cfg, engine, prompts, notes = prepare(cfg, opts, output)
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
    )
    if baseline is not None and baseline[1].vanilla is not None and report.vanilla is None:
        report.vanilla, report.vanilla_from = baseline[1].vanilla, str(baseline[0])
        compare(report)
        save(report, output)
    if opts.ceiling and report.status == "complete":
        add_ceiling(report, cfg, opts, output, console)
    print_report(console, report)
    console.print(f"\nResults saved to: {output} (generated texts: {responses})")
    return report


def add_ceiling(report: Report, cfg: RunConfig, opts: RunOptions, output: Path, console: Console) -> None:
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
    try:
        costs = measure_costs(
            cfg.main_model,
            cfg.draft_model if cfg.method is Method.DRAFT else None,
            (cfg.n_draft + 1,),
            threads=cfg.threads,
            gpu_layers=cfg.gpu_layers,
            gpu_layers_draft=cfg.gpu_layers_draft,
            llama_cpp_path=opts.llama_cpp_path,
        )
    except VelobenchError as exc:
        report.warnings.append(Warning(code=WarningCode.NO_CEILING, message=f"no speedup ceiling: {exc}"))
        save(report, output)
        return
    verify = costs.verify_cost(cfg.n_draft + 1)
    acc = spec.acceptance
    alpha = ceiling.alpha_from_acceptance(acc.rate, cfg.n_draft, acc.mean_length)
    if verify is None:
        return
    report.costs = costs
    report.ceiling = ceiling.compute(alpha, cfg.n_draft, costs.draft_cost, verify, measured=report.speedup)
    for w in report.warnings:  # say why from this machine's measured costs, not in general terms
        if w.code is WarningCode.SPECULATION_SLOWER:
            w.message = f"speculative decoding is slower than vanilla: {ceiling.explain(report.ceiling)}"
    save(report, output)
