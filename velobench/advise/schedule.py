"""The deployable schedule from a prediction: llama-server command lines per concurrency range,
and vLLM's `--speculative-config` with the same ranges.

llama-server takes one draft length per server (`--spec-draft-n-max`, or the name the binary
lists), so the schedule is one command line per range of expected concurrency: the grid's
concurrencies with the same best choice merged, each range up to the next grid point − 1 (the
last ends at the largest concurrency predicted; beyond it nothing is predicted). Where no draft
length is predicted to pay, the range runs vanilla (no draft model).

vLLM: `--speculative-config` with `num_speculative_tokens` the largest draft length of the
schedule and, because the installed vLLM (0.32) takes a batch-size schedule,
`num_speculative_tokens_per_batch_size`: the same ranges as `[from, to, k]` (k = 0 where the
range runs vanilla; vLLM's `validate_and_normalize_dynamic_sd_schedule` wants them sorted,
non-overlapping, from 1; beyond the last range vLLM carries its k forward). Where speculation is
predicted not to pay at any concurrency, None (serve without --speculative-config).
`vllm_config(report, per_batch_size=False)` gives the best single value at the highest
concurrency asked instead, for a vLLM without the schedule.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from velobench.advise import model
from velobench.bins.locate import find_tool
from velobench.engines import vllm_args
from velobench.engines.llama_server import server_argv
from velobench.results.advise import AdviseReport, ScheduleEntry
from velobench.results.schema import Mode

DEPLOY_PORT = 8080


def llama_server_schedule(report: AdviseReport, build: Path | None) -> list[ScheduleEntry]:
    """One entry per range of concurrency with the same best choice (see the module docstring)."""
    best = model.best_per_concurrency(report.grid)
    concs = sorted(best)
    tool = find_tool("llama-server", build)
    entries: list[ScheduleEntry] = []
    for c in concs:
        cell = best[c]
        k = cell.n_draft if cell else None
        if entries and entries[-1].n_draft == k:
            last = entries[-1]
            entries[-1] = last.model_copy(
                update={"concurrency_to": c, "predicted": min(last.predicted, cell.speedup if cell else 1.0)}
            )
            continue
        entries.append(
            ScheduleEntry(
                concurrency_from=c,
                concurrency_to=c,
                n_draft=k,
                predicted=cell.speedup if cell else 1.0,
                llama_server="",
            )
        )
    # each range reaches up to the next one's start − 1; the command line for its largest concurrency
    for i, e in enumerate(entries):
        to = entries[i + 1].concurrency_from - 1 if i + 1 < len(entries) else concs[-1]
        mode: Mode = "speculative" if e.n_draft else "vanilla"
        cfg = report.config.model_copy(update={"n_draft": e.n_draft or report.config.n_draft})
        argv = server_argv(tool, cfg, mode, DEPLOY_PORT, slots=to, cache_prompt=True)
        entries[i] = e.model_copy(update={"concurrency_to": to, "llama_server": shlex.join(argv)})
    return entries


def vllm_config(report: AdviseReport, *, per_batch_size: bool = True) -> dict[str, object] | None:
    """`--speculative-config` from the schedule (see the module docstring); None: serve vanilla."""
    if per_batch_size:
        ks = [e.n_draft for e in report.schedule if e.n_draft]
        if not ks:
            return None
        cfg = vllm_args.speculative_config(
            vllm_args.SpecOptions(method="draft", n_draft=max(ks), draft_model=report.config.draft_model)
        )
        cfg["num_speculative_tokens_per_batch_size"] = [
            [e.concurrency_from, e.concurrency_to, e.n_draft or 0] for e in report.schedule
        ]
        return cfg
    best = model.best_per_concurrency(report.grid)
    cell = best[max(best)]
    if cell is None:
        return None
    return vllm_args.speculative_config(
        vllm_args.SpecOptions(method="draft", n_draft=cell.n_draft, draft_model=report.config.draft_model)
    )
