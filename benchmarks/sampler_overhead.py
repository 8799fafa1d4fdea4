"""How much the telemetry sampler slows the work it measures: an A/B experiment, re-runnable anywhere.

A development benchmark, not part of the package (run it from a checkout with velobench installed).

    python benchmarks/sampler_overhead.py --reps 8 --hz 10 50 [--llama-completion BIN --model GGUF]

Two workloads, each run `reps` times per condition (sampler off, on at each rate), the
conditions interleaved in a shuffled order every round so drift (thermal, other users of the
machine) falls on all of them alike:

* `python`: a CPU-bound pure-Python loop in this process, the sampler reading this process's
  tree. The sampler thread competes for the GIL, as it would with velobench's own HTTP client
  streaming tokens.
* `llama`: one real generation by `llama-completion` (stdin closed), its eval tokens/s parsed
  from the `common_perf_print` eval line and its CPU seconds (getrusage), the sampler reading the
  child's process tree. CPU seconds are far less disturbed than tokens/s by other load on a
  shared machine.

`--skip-python` runs the llama workload only. Per condition: mean ± sd, and against "off" the relative difference of the means and Welch's
t-test p-value (t = (m₁ − m₀)/√(s₁²/n₁ + s₀²/n₀), Welch–Satterthwaite degrees of freedom;
scipy.stats.ttest_ind(equal_var=False)). Also the sampler thread's own CPU time per second of
window (time.thread_time() in the thread / window duration).

Measured on the 2-core shared development machine (no GPU, no RAPL: the sampler read the
process tree only), 20 runs per condition, SmolLM2-135M Q4_1, 128 tokens, `-t 1` (with `-t 2`
other users' load made single runs vary 3-160 t/s, so no A/B was possible):
llama eval 157.0 ± 3.8 t/s off, 156.1 ± 4.6 at 10 Hz (−0.6 %, p = 0.52), 155.2 ± 4.0 at 50 Hz
(−1.1 %, p = 0.17); child CPU seconds +0.8 % (p = 0.27) and +0.3 % (p = 0.65); sampler thread
0.60 % of a core at 10 Hz, 1.6 % at 50 Hz. No difference was significant.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from scipy import stats

from velobench.engines.llama_output import parse_vanilla
from velobench.errors import VelobenchError
from velobench.telemetry.sampler import Sampler, Sources

Run = Callable[[Sources, "float | None"], dict[str, float]]


def _sampler_cpu(sampler: Sampler | None) -> dict[str, float]:
    """Stop the sampler (if any) and give its thread's CPU seconds per second of window."""
    if sampler is None:
        return {}
    trace = sampler.stop()
    return {"sampler_cpu_frac": trace.sampler_cpu_s / trace.duration_s}


def python_loop(n: int = 15_000_000) -> Run:
    """Seconds for `n` iterations of a pure-Python loop, with the sampler on this process at `hz` (None = off)."""

    def once(sources: Sources, hz: float | None) -> dict[str, float]:
        sampler = Sampler(sources, hz=hz, pid=os.getpid()).start() if hz else None
        t0 = time.perf_counter()
        x = 0
        for i in range(n):
            x += i * i % 7
        return {"loop_s": time.perf_counter() - t0, **_sampler_cpu(sampler)}

    return once


def llama_generation(binary: Path, model: Path, tokens: int, threads: int) -> Run:
    """One llama-completion generation: eval tokens/s and the child's CPU seconds (user + system,
    from getrusage(RUSAGE_CHILDREN) around it), with the sampler on its pid at `hz` (None = off)."""
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

    def once(sources: Sources, hz: float | None) -> dict[str, float]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        sampler = Sampler(sources, hz=hz, pid=proc.pid).start() if hz else None
        _, err = proc.communicate(timeout=600)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = _sampler_cpu(sampler)
        if proc.returncode != 0:
            raise VelobenchError(f"llama-completion exited {proc.returncode}: {err[-300:]!r}")
        child = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        return {"eval_tps": parse_vanilla(err).eval_tokens_per_second, "child_cpu_s": child, **cpu}

    return once


Results = dict["float | None", dict[str, list[float]]]


def experiment(once: Run, rates: list[float], reps: int, seed: int = 0) -> Results:
    """Every metric of every run per condition (None = sampler off), conditions shuffled per round."""
    sources = Sources.open()
    conditions: list[float | None] = [None, *rates]
    out: Results = {c: {} for c in conditions}
    rng = random.Random(seed)
    try:
        once(sources, None)  # warm-up: page cache, CPU frequency
        for _ in range(reps):
            order = conditions[:]
            rng.shuffle(order)
            for c in order:
                for k, v in once(sources, c).items():
                    out[c].setdefault(k, []).append(v)
    finally:
        sources.close()
    return out


def report(name: str, results: Results) -> str:
    """mean ± sd per condition and metric; against "off": Δ of the means and Welch's p."""
    off = results[None]
    lines = [f"{name}, n={len(next(iter(off.values())))} per condition"]
    for c, metrics in results.items():
        parts = []
        for k, values in metrics.items():
            m, sd = statistics.mean(values), statistics.stdev(values)
            if k == "sampler_cpu_frac":
                parts.append(f"sampler CPU {m * 100:.2f} ± {sd * 100:.2f}% of a core")
                continue
            text = f"{k} {m:.4g} ± {sd:.2g}"
            if c is not None:
                diff = (m - statistics.mean(off[k])) / statistics.mean(off[k]) * 100
                p = stats.ttest_ind(values, off[k], equal_var=False).pvalue
                text += f" (Δ {diff:+.2f}%, Welch p={p:.3f})"
            parts.append(text)
        lines.append(f"  {'off' if c is None else f'{c:g} Hz':>6}: " + "; ".join(parts))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--hz", type=float, nargs="+", default=[10.0, 50.0])
    ap.add_argument("--llama-completion", type=Path)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-python", action="store_true")
    args = ap.parse_args()
    if not args.skip_python:
        print(report("python loop (seconds, lower is better)", experiment(python_loop(), args.hz, args.reps)))
    if args.llama_completion and args.model:
        once = llama_generation(args.llama_completion, args.model, args.tokens, args.threads)
        print(report("llama-completion (eval tokens/s; child CPU s)", experiment(once, args.hz, args.reps)))


if __name__ == "__main__":
    main()
