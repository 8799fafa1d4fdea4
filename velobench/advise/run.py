"""`velobench advise`: measure cheap costs, predict the speedup surface, confirm it, emit a schedule.

    check       the options (draft lengths >= 1, concurrencies >= 1, a llama-server engine, a
                context that holds the output and the largest draft): one line, before anything runs
    acceptance  a short real run at the largest k (`velobench run`, server engine, vanilla and
                speculative interleaved): per speculative request the draft steps and accepted
                tokens per position (/metrics), per vanilla one the server's seconds per decoded
                token (its own cost per pass, `model.server_overhead`), and the prompts' mean
                length p
    costs       llama-batched-bench on the target (a pass over n tokens for n = b and b·(k+1):
                decode and verification; a p-token prefill) and on the draft (a pass over b
                tokens, the prefill, the re-evaluation of b verified sequences of k+1 tokens;
                self-draft: the target's own)
    predict     every (concurrency, k) with a bootstrap interval (`advise.model`), the best k per
                concurrency (the schedule) and each k's crossover
    confirm     real `velobench load` levels at the deciding points (`model.deciding_points`): one
                load per k over its points' concurrencies, vanilla and speculative alternating
                (interleaved, both servers up)
    emit        the schedule: llama-server command lines per concurrency range, vLLM's
                --speculative-config with the same ranges (num_speculative_tokens_per_batch_size)

The result is saved after every phase (`runner.lifecycle`); each measurement (the probe, every
confirmation load) is a result of its own beside it, so Ctrl-C or a crash keeps what finished
and the servers are reaped by their own contexts.

Layering: advise sits above the load wing (it runs `load.run.execute_load` for confirmations)
and below export and the CLI; nothing below imports it.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console

from velobench.advise import model
from velobench.advise.schedule import llama_server_schedule, vllm_config
from velobench.bins.locate import find_tool
from velobench.engines import llama_batched_bench
from velobench.engines.llama_args import llama_cpp_dir
from velobench.errors import VelobenchError
from velobench.load.analysis import THROUGHPUT_BATCHES, compare_level
from velobench.load.plan import load_options
from velobench.load.run import execute_load, records_file
from velobench.models.resolve import resolve_model_arg
from velobench.results.advise import (
    AcceptanceProbe,
    AdviseOptions,
    AdviseReport,
    Confirmation,
    ModelCosts,
    RequestAcceptance,
)
from velobench.results.config import EngineName, Method, RunConfig
from velobench.results.load import LoadReport, Records, read_records
from velobench.runner import preflight as validate
from velobench.runner.lifecycle import Lifecycle
from velobench.runner.loop import run_benchmark
from velobench.runner.run import build_folder, prepare
from velobench.telemetry.environment import capture

MAX_SEQUENCES = 256  # llama.cpp's LLAMA_MAX_SEQ: sequences in one context
# Decode steps per llama-batched-bench row. 2 was tried (a pass over 36 tokens of the 1.5B Qwen
# cost 286-304 ms per step at TG 2 and at TG 8 alike, in one process; the costs took 24 s instead
# of 105 s), but in the benchmark against the full grid the Qwen pair's predictions at
# concurrency 4 then missed by -19% to -27% with the intervals apart (3 of 9 points), where at
# TG 8 all 9 agreed: 8 stays until a paired comparison says which it was (issue 19's note).
COST_TG = 8


def default_output() -> Path:
    return Path("results") / time.strftime("advise-%Y%m%d-%H%M%S.json", time.gmtime())


def check(cfg: RunConfig, opts: AdviseOptions) -> RunConfig:
    """The config advise runs, or one line on what cannot run (before anything starts)."""
    if any(k < 1 for k in opts.n_drafts):
        raise VelobenchError(
            "--n-draft 0 is vanilla decoding: give draft lengths >= 1 (vanilla is always measured)"
        )
    if any(c < 1 for c in opts.concurrencies):
        raise VelobenchError("--concurrency values must be >= 1")
    if cfg.server_url or cfg.baseline_url or cfg.engine is EngineName.REMOTE:
        raise VelobenchError(
            "velobench advise restarts llama-server with every draft length; a remote server "
            "(--server-url) cannot be restarted: measure it as it is with `velobench load --server-url ...`"
        )
    if cfg.engine not in (EngineName.AUTO, EngineName.SERVER):
        raise VelobenchError(
            f"velobench advise measures costs with llama.cpp's tools and confirms on llama-server; "
            f"--engine {cfg.engine.value} is not supported (it emits vLLM's --speculative-config from them)"
        )
    if cfg.method is not Method.DRAFT or not cfg.draft_model:
        raise VelobenchError("velobench advise needs a draft model (-d; the target itself for self-drafting)")
    if opts.probe_requests < 2:
        raise VelobenchError("--probe-requests must be >= 2 (acceptance is resampled per request)")
    if opts.requests < 2:
        raise VelobenchError("--requests must be >= 2 per confirmation level")
    if opts.synthetic and not opts.confirm:
        raise VelobenchError(
            "--synthetic and --synthetic-map measure real load levels beside the confirmation's "
            "vanilla one: drop --no-confirm, or drop them"
        )
    widest = max(opts.concurrencies) * (max(opts.n_drafts) + 1)
    if widest > MAX_SEQUENCES:
        raise VelobenchError(
            f"--concurrency {max(opts.concurrencies)} × (n_draft {max(opts.n_drafts)} + 1) = {widest} sequences: "
            f"advise measures a verification step as that many one-token sequences, and llama.cpp takes at most "
            f"{MAX_SEQUENCES}; lower the concurrency or the draft length"
        )
    need = cfg.n_predict + max(opts.n_drafts) + 1
    if need > cfg.ctx_size:
        raise VelobenchError(
            f"--ctx-size {cfg.ctx_size} per slot cannot hold -n {cfg.n_predict} output tokens and a draft of "
            f"{max(opts.n_drafts)} ({need} tokens without the prompt): raise --ctx-size or lower -n"
        )
    return cfg.model_copy(update={"engine": EngineName.SERVER, "ceiling": False, "seed": opts.seed})


class Advice:
    """One advise run's state and lifecycle (saved after each phase)."""

    def __init__(self, report: AdviseReport, output: Path, console: Console) -> None:
        self.report = report
        self.output = output
        self.console = console
        self.phases = 0
        self.started = time.monotonic()
        self.life = Lifecycle(report, output, "phase", count=lambda: self.phases)

    def done(self, name: str, since: float) -> None:
        self.report.phases_s[name] = time.monotonic() - since
        self.report.wall_s = time.monotonic() - self.started
        self.phases += 1
        self.life.save()


def execute_advise(cfg: RunConfig, opts: AdviseOptions, output: Path, console: Console) -> AdviseReport:
    """Every phase of the module docstring; the saved result."""
    cfg = check(cfg, opts)
    validate.preflight(cfg, output)
    with validate.leave_nothing_behind(output):
        return _advise(cfg, opts, output, console)


def _advise(cfg: RunConfig, opts: AdviseOptions, output: Path, console: Console) -> AdviseReport:
    from velobench.advise.render import print_advice, write_html, write_schedule

    named = (cfg.main_model, cfg.draft_model)
    assert cfg.draft_model is not None
    target, draft = (
        resolve_model_arg(cfg.main_model, "main model"),
        resolve_model_arg(cfg.draft_model, "draft model"),
    )
    cfg = cfg.model_copy(update={"main_model": target, "draft_model": draft})
    self_draft = Path(target).resolve() == Path(draft).resolve()
    work = output.with_suffix("")  # the measurements' own results: RESULT/probe.json, RESULT/load-*.json
    probe_cfg = cfg.model_copy(
        update={
            "n_draft": max(opts.n_drafts),
            "iterations": opts.probe_requests,
            "skip_vanilla": False,  # the vanilla requests measure the server's own cost per pass
            "warmup": 1,
        }
    )
    probe_cfg, engine, prompts, notes = prepare(probe_cfg, work / "probe.json")
    build = build_folder(engine) or llama_cpp_dir(cfg)
    report = AdviseReport(
        config=cfg.model_copy(update={"main_model": named[0], "draft_model": named[1]}),
        advise=opts,
        environment=capture(),
        binaries=engine.binaries(),
        self_draft=self_draft,
    )
    adv = Advice(report, output, console)
    grid = (sorted(opts.concurrencies), sorted(opts.n_drafts))
    with adv.life:
        t0 = time.monotonic()
        console.print(
            f"[bold]1/4[/bold] acceptance: {opts.probe_requests} requests at n_draft {max(grid[1])}, "
            "and as many vanilla ones (the server's own cost per pass), interleaved"
        )
        run = run_benchmark(
            probe_cfg, engine, report.environment, work / "probe.json", notes=notes, prompts=prompts
        )
        spec = run.speculative
        its = spec.iterations if spec else []
        reqs = model.request_acceptance(its)
        if not reqs or not any(r.accepted_per_position for r in reqs):
            raise VelobenchError(
                "the server reported no per-position acceptance (/metrics spec_decode_num_accepted_tokens_per_pos_total): "
                "this llama-server is too old for advise"
            )
        van = run.vanilla.iterations if run.vanilla else []
        report.acceptance = AcceptanceProbe(
            n_draft=max(grid[1]),
            requests=reqs,
            vanilla_s_per_token=[1 / it.tokens_per_second for it in van if it.tokens_per_second > 0],
            result_file=f"{work.name}/probe.json",
        )
        report.prompt_tokens = round(sum(it.prompt_tokens for it in its) / len(its)) if opts.prefill else 0
        accept = model.acceptance_profile(reqs)
        console.print(
            "  accepted per position: "
            + ", ".join(f"{a:.2f}" for a in accept)
            + (f"; prompts of {report.prompt_tokens} tokens on average" if report.prompt_tokens else "")
        )
        adv.done("acceptance", t0)

        t0 = time.monotonic()
        p = report.prompt_tokens
        passes = sorted({*grid[0], *(b * (k + 1) for b in grid[0] for k in grid[1])})
        console.print(
            f"[bold]2/4[/bold] costs: llama-batched-bench, passes over {','.join(map(str, passes))} tokens"
            + (f" and a {p}-token prefill" if p else "")
            + f", {opts.repetitions} repetition(s)"
            + (" (self-draft: the target's costs are the draft's)" if self_draft else "")
        )
        reeval = ([k + 1 for k in grid[1]], list(grid[0]))  # the draft re-runs each verified batch
        report.target_costs = costs(
            cfg, opts, target, passes, p, cfg.gpu_layers, build, reeval if self_draft else None
        )
        if not self_draft:
            report.draft_costs = costs(cfg, opts, draft, grid[0], p, cfg.gpu_layers_draft, build, reeval)
        report.server_overhead_s = model.server_overhead(
            report.acceptance.vanilla_s_per_token,
            model.StepCosts.from_rows(model.median_rows(report.target_costs.repetitions)),
        )
        console.print(
            f"  llama-server's own cost per forward pass: {1e3 * report.server_overhead_s:.2f} ms "
            "(its vanilla decode against llama-batched-bench's pass; added to every pass predicted)"
        )
        adv.done("costs", t0)

        t0 = time.monotonic()
        report.grid = model.predict(
            reqs,
            report.target_costs,
            report.draft_costs,
            grid,
            work=model.Workload(prompt_tokens=report.prompt_tokens, n_predict=cfg.n_predict),
            self_draft=self_draft,
            bootstrap=opts.bootstrap,
            seed=opts.seed,
            vanilla_s_per_token=report.acceptance.vanilla_s_per_token,
        )
        report.crossovers = model.crossovers(report.grid)
        report.schedule = llama_server_schedule(report, build)
        report.vllm_speculative_config = vllm_config(report)
        console.print("[bold]3/4[/bold] predicted (speedup, 95% bootstrap interval)")
        for note in trust_notes(report):
            report.notes.append(note)
            console.print(f"  [yellow]note:[/yellow] {note}")
        adv.done("predict", t0)

        if opts.confirm:
            t0 = time.monotonic()
            confirm(report, cfg, opts, work, console)
            adv.done("confirm", t0)
        report.wall_s = time.monotonic() - adv.started
        adv.life.complete()
    print_advice(console, report)
    sched = write_schedule(report, output.with_suffix(".schedule.toml"))
    html = write_html(report, output.with_suffix(".html"))
    console.print(f"\nResults saved to: {output} (schedule: {sched}, report: {html})")
    return report


def trust_notes(report: AdviseReport) -> list[str]:
    """What makes this prediction less sure than its table reads: cost rows whose repetitions
    disagree (`model.unsettled_rows`; one disturbed repetition the median outvoted,
    `model.cost_spread`, is named as such), and speculative choices not known to pay (`model.unsure_choices`)."""
    notes = []
    for name, costs_of in (("target", report.target_costs), ("draft", report.draft_costs)):
        if costs_of is None:
            continue
        n = len(costs_of.repetitions)
        added = n - report.advise.repetitions
        unsettled = model.unsettled_rows(costs_of)
        spread, row = model.cost_spread(costs_of)
        if unsettled:
            r = unsettled[0]
            times = ", ".join(
                f"{1e3 * model.step_s(x):.2f}"
                for rows in costs_of.repetitions
                for x in rows
                if (x.pp, x.tg, x.batch) == (r.pp, r.tg, r.batch)
            )
            notes.append(
                f"the {name}'s llama-batched-bench repetitions of {len(unsettled)} row(s) disagree with their "
                f"median after {n} repetitions ({added} added to settle them; B={r.batch}, PP={r.pp}, TG={r.tg}: "
                f"{times} ms per step): something else used the machine while its costs were measured, so the "
                "predictions are unsure; rerun on a quiet machine, or with more --repetitions"
            )
        elif row is not None and spread > model.COST_SPREAD_WARN:
            notes.append(
                f"the {name}'s llama-batched-bench repetitions differ up to {spread:.2f}x (B={row.batch}, "
                f"PP={row.pp}, TG={row.tg}): a disturbed repetition, outvoted by the median of {n}"
                + (f" ({added} repetition(s) added to settle it)" if added > 0 else "")
            )
    for e, cell in model.unsure_choices(report.grid, report.schedule):
        notes.append(
            f"concurrency {e.concurrency_from}-{e.concurrency_to}: n_draft {e.n_draft} is predicted "
            f"{cell.speedup:.2f}x but its 95% interval reaches {cell.ci95_low:.2f}: speculation there is not known to pay"
        )
    return notes


def costs(
    cfg: RunConfig,
    opts: AdviseOptions,
    model_path: str,
    passes: list[int],
    prompt_tokens: int | None,
    gpu_layers: str | None,
    build: Path | None,
    reeval: tuple[list[int], list[int]] | None = None,
) -> ModelCosts:
    """llama-batched-bench on one model: a pass over n tokens for every n (PP = 1, B = n, COST_TG
    steps); where prompts are prefilled, one p-token prompt (PP = p, B = 1, one step); for the
    model that drafts, `reeval` = (widths k+1, batches b): its re-evaluation of each verified
    batch (PP = k+1, B = b, one step); the runs' rows of each repetition together.
    `opts.repetitions` repetitions (one process per run: `llama_batched_bench.measure`), then one
    more at a time while a row's median is unsettled (`model.unsettled_rows`: no majority of
    repetitions agrees with it), at most `opts.repetitions` more: a disturbed measurement is measured again
    rather than tolerated; what stays unsettled `trust_notes` names."""

    def bench(widths: list[int], batches: list[int], tg: int, reps: int) -> ModelCosts:
        return llama_batched_bench.measure(
            model_path,
            widths,
            batches,
            repetitions=reps,
            tg=tg,
            threads=cfg.threads,
            gpu_layers=gpu_layers,
            llama_cpp_path=build,
        )

    runs = [([1], passes, COST_TG)]
    if prompt_tokens:
        runs.append(([prompt_tokens], [1], 1))
    if reeval is not None:
        runs.append((reeval[0], reeval[1], 1))

    def measured(reps: int) -> ModelCosts:
        out = [bench(w, b, tg, reps) for w, b, tg in runs]
        return ModelCosts(
            model=model_path,
            commands=[c for o in out for c in o.commands],
            repetitions=[[r for o in out for r in o.repetitions[i]] for i in range(reps)],
        )

    return settle(measured(opts.repetitions), lambda: measured(1), extra=opts.repetitions)


def settle(costs_of: ModelCosts, again: Callable[[], ModelCosts], *, extra: int) -> ModelCosts:
    """`costs_of` with repetitions from `again()` added one at a time while `model.unsettled_rows`
    finds a row, at most `extra` of them."""
    for _ in range(extra):
        if not model.unsettled_rows(costs_of):
            break
        costs_of = costs_of.model_copy(update={"repetitions": [*costs_of.repetitions, *again().repetitions]})
    return costs_of


def level_requests(requests: int, concurrency: int) -> int:
    """Requests of a confirmation level at `concurrency`: at least `requests`, and at least
    THROUGHPUT_BATCHES·c, so that each of the throughput's batch means spans about one request's
    latency or more (a closed loop of c in flight and N requests lasts about N/c latencies;
    `load.analysis.compare_level` warns `short-batches` below that, and at concurrency 8 with 16
    requests the measured interval was [0.17, 1.12]: too wide to confirm anything)."""
    return max(requests, THROUGHPUT_BATCHES * concurrency)


def confirm(report: AdviseReport, cfg: RunConfig, opts: AdviseOptions, work: Path, console: Console) -> None:
    """Real load levels at the deciding points: one load per draft length and level size
    (`level_requests`) over its points' concurrencies, vanilla and speculative in the same load
    (both servers up, the arms alternating level by level where `--schedule interleaved`, the
    default: a drift of the machine falls on both); each point's measured speedup against the
    prediction."""
    points = model.deciding_points(report.grid)
    console.print(
        "[bold]4/4[/bold] confirm: "
        + "; ".join(f"concurrency {c} × n_draft {k} ({why})" for c, k, why in points)
    )
    quiet = Console(file=io.StringIO())

    def level_load(
        c_list: list[int],
        n_draft: int,
        name: str,
        extra: Sequence[str] = (),
        *,
        vanilla: bool = True,
        seed: int | None = None,
    ) -> Path:
        n = level_requests(opts.requests, max(c_list))
        lo = load_options(
            requests=n,
            sweep="concurrency=" + ",".join(map(str, c_list)),
            seed=opts.seed,
            stop_on_saturation=False,
            warmup_requests=None,
        )
        lcfg = cfg.model_copy(
            update={
                "n_draft": n_draft,
                "skip_vanilla": not vanilla,
                "skip_speculative": False,
                "warmup": 1,
                "iterations": 1,
                "extra_args": [*cfg.extra_args, *extra],
                **({} if seed is None else {"seed": seed}),
            }
        )
        out = work / f"{name}.json"
        arms = "vanilla and n_draft" if vanilla else "n_draft"
        console.print(f"  {name}: {arms} {n_draft}, concurrency {','.join(map(str, c_list))} × {n} requests")
        execute_load(lcfg, lo, out, quiet)
        report.confirm_files.append(f"{work.name}/{out.name}")
        return out

    vanilla: Records = {}
    loads: dict[tuple[int, int], list[int]] = {}  # (k, level size) -> its concurrencies
    for c, k, _ in sorted(points):
        loads.setdefault((k, level_requests(opts.requests, c)), []).append(c)
    split = {k for k, _ in loads if sum(kk == k for kk, _ in loads) > 1}  # k with several level sizes
    for (k, _), mine in sorted(loads.items()):
        name = f"load-nd{k}-c{max(mine)}" if k in split else f"load-nd{k}"
        both = read_records(records_file(level_load(mine, k, name)))
        for c in mine:
            why = next(w for cc, kk, w in points if (cc, kk) == (c, k))
            base = both.get(("vanilla", float(c)), [])
            vanilla.setdefault(("vanilla", float(c)), base)
            cmp = compare_level(base, both.get(("speculative", float(c)), []), level=c)
            pred = model.cell(report.grid, c, k)
            m = cmp.throughput
            report.confirmations.append(
                Confirmation(
                    concurrency=c,
                    n_draft=k,
                    why=why,
                    predicted=pred,
                    measured=m,
                    agrees=None if m is None else model.agrees(pred, m.ratio, m.ci95_low, m.ci95_high),
                    miss=None if m is None else m.ratio / pred.speedup - 1,
                )
            )
    if opts.synthetic:
        synthetic(report, opts, points, vanilla, level_load, console)


SYNTHETIC_SEED = -1  # llama-server's LLAMA_DEFAULT_SEED as JSON: each request seeds itself at random


def synthetic_rates(alpha: float, k: int) -> list[float]:
    """llama-server's `--spec-synth-rates`: unconditional per-position acceptance a_i = α^i, i = 1..k
    (the model's a_i exactly: P(the first i drafts all accepted), non-increasing as it requires)."""
    return [float(f"{alpha**i:.6g}") for i in range(1, k + 1)]


def synthetic(
    report: AdviseReport,
    opts: AdviseOptions,
    points: Sequence[tuple[int, int, str]],
    vanilla: Records,
    level_load: Callable[..., Path],
    console: Console,
) -> None:
    """The cost model checked independently of the draft: llama-server's synthetic acceptance
    (`--spec-synth-rates`, benchmarking only: the output is not valid text), for each α asked, at
    the first deciding point (its concurrency and draft length: `--synthetic`), or at every draft
    length of the grid at the lowest and at the highest concurrency (`--synthetic-map`: the
    hardware's own map of speedup over acceptance × draft length, and how batching moves it);
    predicted with a_i = α^i and the same measured costs. The deciding points always include the
    lowest and the highest concurrency, so each mapped concurrency has its confirmation's vanilla
    level."""
    tool = find_tool("llama-server", Path(report.binaries[0].path).parent if report.binaries else None)
    if not tool.supports("--spec-synth-rates"):
        report.notes.append("this llama-server has no --spec-synth-rates: no synthetic-acceptance check")
        console.print(f"  note: {report.notes[-1]}")
        return
    assert report.target_costs is not None
    if opts.synthetic_map:
        concs = sorted({min(opts.concurrencies), max(opts.concurrencies)})
        cells = [(c, k) for c in concs for k in sorted(opts.n_drafts)]
        console.print(
            f"  synthetic map at concurrency {' and '.join(map(str, concs))}: "
            f"α {', '.join(f'{a:g}' for a in opts.synthetic)} × n_draft {', '.join(map(str, sorted(opts.n_drafts)))}"
        )
    else:
        cells = [points[0][:2]]
    for c, k in cells:
        for alpha in opts.synthetic:
            report.confirmations.append(synthetic_point(report, opts, c, k, alpha, vanilla, level_load))


def synthetic_point(
    report: AdviseReport,
    opts: AdviseOptions,
    c: int,
    k: int,
    alpha: float,
    vanilla: Records,
    level_load: Callable[..., Path],
) -> Confirmation:
    """One speculative level at concurrency c, draft length k, with a_i = α^i injected; its
    prediction from the measured costs with those a_i exactly."""
    assert report.target_costs is not None
    rates = synthetic_rates(alpha, k)
    steps = 1 << 20
    exact = [
        RequestAcceptance(draft_steps=steps, accepted_per_position=[round(steps * a) for a in rates])
    ] * 2
    pred = model.cell(
        model.predict(
            exact,
            report.target_costs,
            report.draft_costs,
            ([c], [k]),
            work=model.Workload(prompt_tokens=report.prompt_tokens or 0, n_predict=report.config.n_predict),
            self_draft=report.self_draft,
            bootstrap=opts.bootstrap,
            seed=opts.seed,
            vanilla_s_per_token=report.acceptance.vanilla_s_per_token if report.acceptance else (),
        ),
        c,
        k,
    )
    name = f"load-nd{k}-c{c}-synth{alpha:g}"
    rates_arg = ["--spec-synth-rates", ",".join(f"{r:g}" for r in rates)]
    # Seed -1 (llama-server: a random seed per request): the synthetic accept decisions draw from
    # the request's sampling seed, so with one seed for all every request repeats one path of
    # decisions (16 requests at α 0.5 measured a_1 = 0.64). Greedy output does not depend on it.
    out = level_load([c], k, name, rates_arg, vanilla=False, seed=SYNTHETIC_SEED)
    spec = read_records(records_file(out))
    level = LoadReport.model_validate_json(out.read_text()).level("speculative", float(c))
    delta = level.spec_decode if level else None
    got = [a / delta.drafts for a in delta.accepted_per_position] if delta and delta.drafts else None
    m = compare_level(
        vanilla.get(("vanilla", float(c)), []), spec.get(("speculative", float(c)), []), level=c
    ).throughput
    return Confirmation(
        concurrency=c,
        n_draft=k,
        why=f"synthetic acceptance α = {alpha:g}",
        predicted=pred,
        measured=m,
        agrees=None if m is None else model.agrees(pred, m.ratio, m.ci95_low, m.ci95_high),
        miss=None if m is None else m.ratio / pred.speedup - 1,
        synthetic_rates=rates,
        measured_acceptance=got,
    )
