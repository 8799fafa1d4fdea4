"""`velobench advise` against the full `load` grid it replaces: its time, and its predictions at every grid point.

A development benchmark, not part of the package (run it from a checkout with velobench installed).

    python benchmarks/advise_vs_grid.py -m TARGET.gguf -d DRAFT.gguf [-t 2] [-n 32] [--requests 16]
        [--concurrency 1,2,4] [--n-draft 2,4,8] [--llama-cpp-path DIR] [--work DIR]

Issue 19's figures: advise (acceptance probe, costs, prediction, confirmation) takes at most a
quarter of the grid's time, and its predictions agree with the measurements at the confirmed
points (within 10%, or inside both intervals); the grid checks the prediction at every point.

The grid is the cheapest a user could run it: one vanilla `load` over the concurrencies
(`--skip-speculative`), then one speculative `load` per draft length (`--skip-vanilla`), each
level with the same requests as advise's confirmation level at its concurrency (at least 10 per
request in flight: one load per level size), every level run (no stop at
saturation, as advise's confirmations) and velobench's defaults otherwise.
Each grid point's measured speedup is speculative ÷ vanilla output tokens/s at that concurrency
(`load.analysis.compare_level`: batch means, Fieller 95% interval), the figure advise's
confirmation reports. advise runs first, then the grid, one after the other: nothing else may run
on the machine (the load average is printed before and after each).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from velobench.advise import model
from velobench.advise.run import level_requests
from velobench.load.analysis import compare_level
from velobench.load.run import records_file
from velobench.results.advise import AdviseReport
from velobench.results.load import read_records


def velobench(args: list[str], log: Path) -> float:
    """Run `velobench ARGS` (stdin closed, output to `log`); its wall time in seconds."""
    t = time.monotonic()
    with log.open("w") as f:
        subprocess.run(
            [sys.executable, "-m", "velobench", *args],
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=f,
            check=True,
        )
    return time.monotonic() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--main-model", required=True)
    ap.add_argument("-d", "--draft-model", required=True)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-n", "--n-predict", type=int, default=32)
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--concurrency", default="1,2,4")
    ap.add_argument("--n-draft", default="2,4,8")
    ap.add_argument("--prompts", default="builtin")
    ap.add_argument("--llama-cpp-path")
    ap.add_argument("--work", type=Path, default=Path("advise-vs-grid"))
    ap.add_argument("--skip-advise", action="store_true", help="reuse WORK/adv.json")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    common = ["-m", a.main_model, "-d", a.draft_model, "-t", str(a.threads), "-n", str(a.n_predict)]
    common += ["--prompts", a.prompts] + (["--llama-cpp-path", a.llama_cpp_path] if a.llama_cpp_path else [])
    ks = [int(k) for k in a.n_draft.split(",")]
    concs = [int(c) for c in a.concurrency.split(",")]

    print(f"load average before advise: {os.getloadavg()}", flush=True)
    adv_out = a.work / "adv.json"
    t_proc = None
    if not a.skip_advise:
        t_proc = velobench(
            [
                *("advise", *common, "--concurrency", a.concurrency, "--n-draft", a.n_draft),
                *("--requests", str(a.requests), "-o", str(adv_out)),
            ],
            a.work / "advise.log",
        )
    adv = AdviseReport.model_validate_json(adv_out.read_text())
    t_adv = t_proc if t_proc is not None else adv.wall_s or 0.0  # the whole command where it ran here
    print(f"advise: {t_adv:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in adv.phases_s.items()) + ")")
    print(f"load average before the grid: {os.getloadavg()}", flush=True)

    # every level runs, as advise's confirmation levels do (a sweep stops at saturation by default),
    # each with the requests advise's confirmation gives its concurrency (`level_requests`: at least
    # 10 per request in flight, so the throughput's batch means are valid): one load per level size
    sizes: dict[int, list[int]] = {}
    for c in concs:
        sizes.setdefault(level_requests(a.requests, c), []).append(c)

    def sweep(n: int) -> list[str]:
        levels = ",".join(map(str, sizes[n]))
        return ["--sweep", f"concurrency={levels}", "--requests", str(n), "--no-stop-on-saturation"]

    def tag(n: int) -> str:
        return "" if len(sizes) == 1 else f"-r{n}"

    grid_s: dict[str, float] = {}
    vanilla: dict = {}
    spec: dict[int, dict] = {k: {} for k in ks}
    for n in sorted(sizes):
        van_out = a.work / f"grid-vanilla{tag(n)}.json"
        grid_s[f"vanilla{tag(n)}"] = velobench(
            ["load", *common, "--n-draft", str(ks[0]), *sweep(n), "--skip-speculative", "-o", str(van_out)],
            a.work / f"grid-vanilla{tag(n)}.log",
        )
        vanilla.update(read_records(records_file(van_out)))
        for k in ks:
            out = a.work / f"grid-nd{k}{tag(n)}.json"
            grid_s[f"nd{k}{tag(n)}"] = velobench(
                ["load", *common, "--n-draft", str(k), *sweep(n), "--skip-vanilla", "-o", str(out)],
                a.work / f"grid-nd{k}{tag(n)}.log",
            )
            spec[k].update(read_records(records_file(out)))
    total = sum(grid_s.values())
    print(f"load average after the grid: {os.getloadavg()}")
    print(f"grid: {total:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in grid_s.items()) + ")")
    print(f"advise / grid = {t_adv / total:.2f}")

    confirmed = {(c.concurrency, c.n_draft): c for c in adv.confirmations if not c.synthetic_rates}
    print("\n| c | k | predicted | measured (grid, Fieller) | miss | agrees | advise confirmed |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for k in ks:
        for c in concs:
            pred = model.cell(adv.grid, c, k)
            m = compare_level(
                vanilla.get(("vanilla", float(c)), []), spec[k].get(("speculative", float(c)), []), level=c
            ).throughput
            if m is None:
                print(f"| {c} | {k} | {pred.speedup:.2f} | - | - | - | |")
                continue
            ok = model.agrees(pred, m.ratio, m.ci95_low, m.ci95_high)
            conf = confirmed.get((c, k))
            seen = (
                f"{conf.measured.ratio:.2f} [{conf.measured.ci95_low:.2f}, {conf.measured.ci95_high:.2f}]"
                if conf
                and conf.measured
                and conf.measured.ci95_low is not None
                and conf.measured.ci95_high is not None
                else ""
            )
            lo, hi = m.ci95_low, m.ci95_high
            ci = f"[{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else ""
            print(
                f"| {c} | {k} | {pred.speedup:.2f} [{pred.ci95_low:.2f}, {pred.ci95_high:.2f}] | {m.ratio:.2f} {ci} "
                f"| {m.ratio / pred.speedup - 1:+.0%} | {'yes' if ok else 'no'} | {seen} |"
            )
            rows.append({"c": c, "k": k, "predicted": pred.speedup, "measured": m.ratio, "agrees": ok})
    (a.work / "summary.json").write_text(
        json.dumps({"advise_s": t_adv, "grid_s": grid_s, "points": rows}, indent=2)
    )
    print(f"\nagree at {sum(r['agrees'] for r in rows)} of {len(rows)} grid points; files in {a.work}")


if __name__ == "__main__":
    main()
