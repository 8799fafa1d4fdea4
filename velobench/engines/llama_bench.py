"""llama-bench: measures what one decode step and one verification batch cost on this machine.

    llama-bench -m TARGET -p 1,γ1+1,γ2+1,... -n 32 -o json   → pp(k) tokens/s, tg tokens/s
    llama-bench -m DRAFT  -n 32 -o json                        → the draft's tg tokens/s

The numbers become `results.costs.Costs`, the inputs of the speedup ceiling.
"""

from __future__ import annotations

import functools
import json
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from velobench import proc
from velobench.bins.locate import find_tool
from velobench.errors import VelobenchError
from velobench.results.costs import Costs


def _bench(argv: list[str]) -> list[dict[str, Any]]:
    done = proc.run(argv)
    if done.returncode != 0:
        raise VelobenchError(f"llama-bench exited with code {done.returncode}: {done.stderr_tail(2)}")
    try:
        return parse_bench_json(done.stdout)
    except ValueError as exc:
        raise VelobenchError(f"cannot parse llama-bench output: {exc}") from exc


@functools.lru_cache(maxsize=32)
def measure_costs(
    target: str,
    draft: str | None,
    batch_sizes: Sequence[int],
    *,
    threads: int | None = None,
    gpu_layers: str | None = None,
    gpu_layers_draft: str | None = None,
    repetitions: int = 3,
    llama_cpp_path: Path | None = None,
) -> Costs:
    """Run llama-bench on the target (pp at each batch size and tg) and on the draft (tg).

    Cached per process: a matrix measures each (model, settings) once. Pass hashable
    arguments (a tuple of batch sizes).
    """
    tool = find_tool("llama-bench", llama_cpp_path)
    sizes = sorted({1, *batch_sizes})

    def argv(model: str, prompt_sizes: list[int], ngl: str | None) -> list[str]:
        a = [str(tool.path), "-m", model, "-n", "32", "-r", str(repetitions), "-o", "json"]
        a += ["-p", ",".join(map(str, prompt_sizes))] if prompt_sizes else ["-p", "0"]
        if threads:
            a += ["-t", str(threads)]
        if ngl is not None:
            a += ["-ngl", "99" if ngl in ("all", "auto") else ngl]
        return a

    t_argv = argv(target, sizes, gpu_layers)
    pp, tg = throughput(_bench(t_argv))
    if tg is None:
        raise VelobenchError("llama-bench reported no token-generation test for the target")
    commands = [shlex.join(t_argv)]
    draft_tg = None
    if draft:
        d_argv = argv(draft, [], gpu_layers_draft)
        _, draft_tg = throughput(_bench(d_argv))
        commands.append(shlex.join(d_argv))
    return Costs(target_tg_ts=tg, draft_tg_ts=draft_tg, pp_ts=pp, commands=commands)


def parse_bench_json(text: str) -> list[dict[str, Any]]:
    """llama-bench `-o json` output: a list of test objects (`n_prompt`, `n_gen`, `avg_ts`, ...)."""
    try:
        rows = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"llama-bench output is not JSON: {text.strip()[:200]!r}") from exc
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "avg_ts" in r for r in rows):
        raise ValueError(f"llama-bench JSON is not a list of tests: {text.strip()[:200]!r}")
    return rows


def throughput(rows: list[dict[str, Any]]) -> tuple[dict[int, float], float | None]:
    """Prompt-processing tokens/s by batch size, and token-generation tokens/s."""
    pp = {int(r["n_prompt"]): float(r["avg_ts"]) for r in rows if r["n_gen"] == 0 and r["n_prompt"] > 0}
    tg = [float(r["avg_ts"]) for r in rows if r["n_prompt"] == 0 and r["n_gen"] > 0]
    return pp, (tg[0] if tg else None)


def reference_argv(
    tool: Path, model: str, n_gen: int, depth: int, *, threads: int | None, gpu_layers: str | None
) -> list[str]:
    """llama-bench's decode test for one generation: `-p 0 -n N -d P` (N tokens decoded after a
    context of P, one repetition after llama-bench's own warm-up run), at the run's threads and
    offload."""
    a = [str(tool), "-m", model, "-p", "0", "-n", str(max(1, n_gen)), "-d", str(max(0, depth))]
    a += ["-r", "1", "-o", "json"]
    if threads:
        a += ["-t", str(threads)]
    if gpu_layers is not None:
        a += ["-ngl", "99" if gpu_layers in ("all", "auto") else gpu_layers]
    return a


def reference_tg(argv: list[str]) -> float:
    """Run `reference_argv`; its decode tokens/s (the tg row's `avg_ts`)."""
    _, tg = throughput(_bench(argv))
    if tg is None:
        raise VelobenchError(f"llama-bench reported no token-generation test: {shlex.join(argv)}")
    return tg
