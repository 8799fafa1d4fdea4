"""Temperature 0: the target's own distribution at every first divergence, read after a run.

    for each prompt whose candidate output differs from vanilla's (`analysis.lossless`):
        the vanilla server (started again, or the --baseline-url server) is asked for one token
        after the prompt + vanilla's tokens up to the divergence, with its top candidates
        (`engines.probes`) → a DivergenceProbe in the report → near-tie or decisive

Only server engines are asked (llama.cpp's cli tools print no probabilities; their divergences
stay unclassified, and the result says why). A probe that fails leaves its divergence
unclassified: a finished run is never lost to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from velobench.analysis.summaries import analyze
from velobench.engines.base import Engine, ServesHttp
from velobench.engines.http_client import HttpClient
from velobench.engines.probes import target_candidates
from velobench.errors import VelobenchError
from velobench.prompts import Prompt
from velobench.results.schema import DivergenceProbe, Report, TokenProb
from velobench.runner.loop import keep


def explain_divergences(
    report: Report, engine: Engine, prompts: Sequence[Prompt], output: Path, console: Console
) -> None:
    """Probe every unclassified token divergence of the run's comparisons; save the report."""
    if report.config.temp != 0 or report.status != "complete" or not isinstance(engine, ServesHttp):
        return
    texts = {p.id: p.prompt for p in prompts}
    todo = []
    for comp in report.comparisons:
        if comp.lossless is None:
            continue
        base, cand = report.modes[comp.baseline], report.modes[comp.candidate]
        first_base = {i.prompt_id: i for i in reversed(base.iterations)}
        first_cand = {i.prompt_id: i for i in reversed(cand.iterations)}
        for m in comp.lossless.prompts:
            b, c = first_base.get(m.prompt_id), first_cand.get(m.prompt_id)
            k = m.first_difference
            if m.divergence != "unclassified" or m.unit != "token" or k is None or b is None or c is None:
                continue
            if (
                b.output_tokens is None
                or c.output_tokens is None
                or k >= min(len(b.output_tokens), len(c.output_tokens))
            ):
                continue
            if m.prompt_id in texts:
                todo.append((comp.candidate, m.prompt_id, k, b.output_tokens, c.output_tokens[k]))
    if not todo:
        return
    console.print(f"\nReading the target's probabilities at {len(todo)} divergence(s) ...")
    try:
        with engine.serve("vanilla") as handle, HttpClient(handle.base_url, api_key=handle.api_key) as client:
            for candidate, pid, k, base_tokens, cand_token in todo:
                top = target_candidates(handle, client, texts[pid], base_tokens[:k])
                report.probes.append(
                    DivergenceProbe(
                        prompt_id=pid,
                        candidate=candidate,
                        position=k,
                        baseline_token=base_tokens[k],
                        candidate_token=cand_token,
                        top=[TokenProb(id=i, text=t, logprob=lp) for i, t, lp in top],
                    )
                )
    except VelobenchError as exc:
        console.print(f"  divergences left unclassified: {exc}", markup=False)
    analyze(report)
    keep(report, output, report.iteration_count())
