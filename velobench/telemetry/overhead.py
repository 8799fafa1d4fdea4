"""How much the telemetry sampler slows the work it measures: an A/B experiment, re-runnable anywhere.

    python -m velobench.telemetry.overhead --reps 8 --hz 10 50 [--llama-completion BIN --model GGUF]

Two workloads, each run `reps` times per condition (sampler off, on at each rate), the
conditions interleaved in a shuffled order every round so drift (thermal, other users of the
machine) falls on all of them alike:

* `python`: a CPU-bound pure-Python loop in this process, the sampler reading this process's
  tree. The sampler thread competes for the GIL, as it would with velobench's own HTTP client
  streaming tokens.
* `llama`: one real generation by `llama-completion` (stdin closed), its eval tokens/s parsed
  from the `common_perf_print` eval line, the sampler reading the child's process tree.

Per condition: mean ± sd, and against "off" the relative difference of the means and Welch's
t-test p-value (t = (m₁ − m₀)/√(s₁²/n₁ + s₀²/n₀), Welch–Satterthwaite degrees of freedom;
scipy.stats.ttest_ind(equal_var=False)). Also the sampler thread's own CPU time per second of
window (time.thread_time() in the thread / window duration).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from scipy import stats

from velobench.errors import VelobenchError
from velobench.telemetry.sampler import Sampler, Sources

EVAL = re.compile(
    r"^\S*\s+eval time =\s*[\d.]+ ms /\s*\d+ (?:runs|tokens)\s*\(\s*[\d.]+ ms per token,\s*([\d.]+) tokens per second\)",
    re.MULTILINE,
)


def parse_eval_tps(stderr: str) -> float:
    """Generation tokens/s from the last `eval time` perf line (not `prompt eval time`)."""
    found = [m for m in EVAL.finditer(stderr) if "prompt" not in m.group(0)]
    if not found:
        raise VelobenchError(f"no eval time line in llama-completion output: {stderr[-300:]!r}")
    return float(found[-1].group(1))


def python_loop(n: int = 15_000_000) -> Callable[[Sources, float | None], tuple[float, float | None]]:
    """Seconds for `n` iterations of a pure-Python loop, with the sampler on this process at `hz` (None = off)."""

    def once(sources: Sources, hz: float | None) -> tuple[float, float | None]:
        sampler = Sampler(sources, hz=hz, pid=os.getpid()).start() if hz else None
        t0 = time.perf_counter()
        x = 0
        for i in range(n):
            x += i * i % 7
        elapsed = time.perf_counter() - t0
        cpu = None
        if sampler is not None:
            trace = sampler.stop()
            cpu = trace.sampler_cpu_s / trace.duration_s
        return elapsed, cpu

    return once


def llama_generation(
    binary: Path, model: Path, tokens: int, threads: int
) -> Callable[[Sources, float | None], tuple[float, float | None]]:
    """Eval tokens/s of one llama-completion generation, with the sampler on its pid at `hz` (None = off)."""
    argv = [
        str(binary),
        "-m",
        str(model),
        "-p",
        "Write a story about a lighthouse keeper.",
        "-n",
        str(tokens),
    ]
    argv += ["-t", str(threads), "-c", "512", "--temp", "0", "--seed", "42", "-no-cnv", "--ignore-eos"]

    def once(sources: Sources, hz: float | None) -> tuple[float, float | None]:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        sampler = Sampler(sources, hz=hz, pid=proc.pid).start() if hz else None
        _, err = proc.communicate(timeout=600)
        cpu = None
        if sampler is not None:
            trace = sampler.stop()
            cpu = trace.sampler_cpu_s / trace.duration_s
        if proc.returncode != 0:
            raise VelobenchError(f"llama-completion exited {proc.returncode}: {err[-300:]!r}")
        return parse_eval_tps(err), cpu

    return once


def experiment(
    once: Callable[[Sources, float | None], tuple[float, float | None]],
    rates: list[float],
    reps: int,
    seed: int = 0,
) -> dict[float | None, tuple[list[float], list[float]]]:
    """Values and sampler CPU fractions per condition (None = sampler off), conditions shuffled per round."""
    sources = Sources.open()
    conditions: list[float | None] = [None, *rates]
    out: dict[float | None, tuple[list[float], list[float]]] = {c: ([], []) for c in conditions}
    rng = random.Random(seed)
    try:
        once(sources, None)  # warm-up: page cache, CPU frequency
        for _ in range(reps):
            order = conditions[:]
            rng.shuffle(order)
            for c in order:
                value, cpu = once(sources, c)
                out[c][0].append(value)
                if cpu is not None:
                    out[c][1].append(cpu)
    finally:
        sources.close()
    return out


def report(name: str, unit: str, results: dict[float | None, tuple[list[float], list[float]]]) -> str:
    off = results[None][0]
    lines = [f"{name} ({unit}), n={len(off)} per condition"]
    for c, (values, cpu) in results.items():
        m, sd = statistics.mean(values), statistics.stdev(values)
        line = f"  {'off' if c is None else f'{c:g} Hz':>6}: {m:10.4f} ± {sd:.4f}"
        if c is not None:
            diff = (m - statistics.mean(off)) / statistics.mean(off) * 100
            p = stats.ttest_ind(values, off, equal_var=False).pvalue
            line += (
                f"   Δ {diff:+.2f}%  Welch p={p:.3f}  sampler CPU {statistics.mean(cpu) * 100:.2f}% of a core"
            )
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--hz", type=float, nargs="+", default=[10.0, 50.0])
    ap.add_argument("--llama-completion", type=Path)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    print(report("python loop", "seconds, lower is better", experiment(python_loop(), args.hz, args.reps)))
    if args.llama_completion and args.model:
        once = llama_generation(args.llama_completion, args.model, args.tokens, args.threads)
        print(
            report(
                "llama-completion eval", "tokens/s, higher is better", experiment(once, args.hz, args.reps)
            )
        )


if __name__ == "__main__":
    main()
