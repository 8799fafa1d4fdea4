"""velobench's load generator against `vllm bench serve`, side by side on one loopback endpoint.

A development benchmark: several rounds of what `velobench selftest loadgen` runs once where
vLLM is found (the code is the package's: `velobench.load.vs_vllm`, whose docstring says how
each figure is taken). Run it from a checkout with velobench installed, on a quiet machine: a
full test suite beside it halves every figure.

    python benchmarks/loadgen_vs_vllm.py [--concurrency 1,8,64,256] [--requests 2000] [--chunks 16]
        [--rounds 2] [--generator-procs N] [--vllm-bin PATH] [--tokenizer DIR] [--skip-vllm]
        [--json OUT.json]

Printed: every run as it ends, then per C and tool the mean over rounds, and velobench ÷ vLLM.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from velobench.bins import vllm_env
from velobench.load import vs_vllm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", default="1,8,64,256")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--chunks", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--generator-procs", type=int, default=1)
    ap.add_argument("--vllm-bin", default=None)
    ap.add_argument(
        "--tokenizer", default=None, help="a Hugging Face tokenizer folder (default: one velobench made)"
    )
    ap.add_argument("--skip-vllm", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="write every run here")
    a = ap.parse_args()
    levels = [int(x) for x in a.concurrency.split(",")]
    install = None if a.skip_vllm else vllm_env.locate(a.vllm_bin)
    tokenizer = a.tokenizer or vs_vllm.default_tokenizer()

    def show(m: vs_vllm.Measured) -> None:
        print(
            f"round {m.round} C={m.concurrency:<4} {m.tool:<17} {m.requests_per_s:8.0f} req/s "
            f"{m.chunks_per_s:9.0f} chunks/s {m.cpu_ms_per_request:6.2f} ms CPU/req "
            f"({m.requests} requests, {m.errors} errors)",
            flush=True,
        )

    runs = vs_vllm.side_by_side(
        levels,
        requests=a.requests,
        chunks=a.chunks,
        rounds=a.rounds,
        install=install,
        tokenizer=tokenizer,
        procs=a.generator_procs,
        on_run=show,
    )
    print(f"\n{a.requests} requests x {a.chunks} chunks per run, mean of {a.rounds} round(s)")
    print(f"{'C':>4}  {'tool':<17} {'req/s':>8} {'chunks/s':>9} {'CPU/req ms':>10}")
    for c in levels:
        got = {tool: vs_vllm.means(runs, tool, c) for tool in (vs_vllm.VELOBENCH, vs_vllm.VLLM)}
        for tool, m in got.items():
            if m is not None:
                print(f"{c:>4}  {tool:<17} {m[0]:8.0f} {m[1]:9.0f} {m[2]:10.2f}")
        ours, theirs = got[vs_vllm.VELOBENCH], got[vs_vllm.VLLM]
        if ours is not None and theirs is not None:
            print(
                f"{c:>4}  {'velobench ÷ vLLM':<17} {ours[0] / theirs[0]:7.2f}x {'':>9} {ours[2] / theirs[2]:9.2f}x"
            )
    if a.json is not None:
        a.json.write_text(json.dumps([m.model_dump(exclude={"ceiling"}) for m in runs], indent=2) + "\n")


if __name__ == "__main__":
    main()
