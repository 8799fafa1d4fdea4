"""velobench's load generator against `vllm bench serve`, side by side on one loopback endpoint.

A development benchmark, not part of the package (run it from a checkout with velobench
installed, on a quiet machine: a full test suite beside it halves every figure).

    python benchmarks/loadgen_vs_vllm.py [--concurrency 1,8,64,256] [--requests 2000] [--chunks 16]
        [--rounds 2] [--vllm-bin PATH] [--tokenizer DIR] [--json OUT.json]

One loopback server (`velobench.load.loopback`, its own process: a trivial OpenAI-style chat
stream of CHUNKS content chunks per request, no work) serves both tools. Per round and
concurrency C, each tool runs one closed-loop level of REQUESTS requests with C in flight, in
its own process, the two tools alternating (velobench first in odd rounds, vLLM first in even
ones) so drift falls on both alike:

* velobench: `velobench.load.loopback.generator_ceiling(C, REQUESTS, CHUNKS, url)`, the client
  `velobench load` uses (`AsyncHttpClient` under `run_load`), in a child Python;
* vLLM: `vllm bench serve --backend openai-chat --endpoint /v1/chat/completions --dataset-name
  random --random-input-len 8 --random-output-len CHUNKS --num-prompts REQUESTS
  --max-concurrency C --request-rate inf --ignore-eos` (velobench's own vLLM environment, found
  as `velobench.bins.vllm_env.locate` finds it; its tokenizer only makes the random prompts).

Figures per run: requests/s = completed requests / the tool's own duration (first send to last
completion: `GeneratorCeiling.wall_s`, vLLM's `duration`); chunks/s = streamed content chunks /
that duration (vLLM does not count chunks: completed × CHUNKS, which the loopback server sends to
each); client CPU per request = the tool process's CPU time (user + system, psutil) from the
loopback server's first request of the run to the process's exit, / requests (so neither
tool's start-up, ~10 s of CPU for vLLM's imports, is counted; its end, vLLM's statistics, is).
The server's `GET /stats` says when the first request arrived (polled every 10 ms).

Printed: per C and tool the mean over rounds (and each round), and velobench ÷ vLLM.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
POLL_S = 0.01


@dataclass
class Measured:
    tool: str
    concurrency: int
    round: int
    requests: int
    errors: int
    duration_s: float
    requests_per_s: float
    chunks_per_s: float
    cpu_ms_per_request: float


class Loopback:
    """The loopback server in a child process (stopped however this ends)."""

    def __init__(self, chunks: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "velobench.load.loopback", "serve", str(chunks)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            },
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            self.close()
            raise SystemExit(f"the loopback server did not start (printed {self.url!r})")
        self.http = httpx.Client(base_url=self.url, timeout=5.0)

    def requests(self) -> int:
        return int(self.http.get("/stats").json()["requests"])

    def close(self) -> None:
        if hasattr(self, "http"):
            self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def cpu_of(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def run_measured(
    argv: list[str], env: dict[str, str], server: Loopback, timeout_s: float
) -> tuple[str, float]:
    """Run `argv`; its stdout and its CPU seconds from the server's first new request to its exit
    (the last CPU reading taken while it still runs, every POLL_S)."""
    before = server.requests()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    start = last = None
    deadline = time.monotonic() + timeout_s
    try:
        while proc.poll() is None:
            if time.monotonic() > deadline:
                raise SystemExit(f"{argv[0]} ran past {timeout_s:g} s")
            try:
                cpu = cpu_of(ps)
            except psutil.NoSuchProcess:
                break
            if start is None and server.requests() > before:
                start = cpu
            last = cpu
            time.sleep(POLL_S)
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {err.strip().splitlines()[-1:]}")
    if start is None or last is None:
        raise SystemExit(f"{argv[0]} sent no request to the loopback server")
    return out, last - start


def velobench(server: Loopback, c: int, requests: int, chunks: int, rnd: int) -> Measured:
    code = (
        "import asyncio; from velobench.load.loopback import generator_ceiling; "
        f"print(asyncio.run(generator_ceiling({c}, {requests}, {chunks}, {server.url!r})).model_dump_json())"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    out, cpu = run_measured([sys.executable, "-c", code], env, server, 600)
    g = json.loads(out.strip().splitlines()[-1])
    n = g["requests"]
    return Measured(
        "velobench",
        c,
        rnd,
        n,
        g["errors"],
        g["wall_s"],
        g["requests_per_s"],
        g["chunks_per_s"],
        cpu * 1000 / n,
    )


def vllm(
    server: Loopback, c: int, requests: int, chunks: int, rnd: int, vllm_bin: str | None, tokenizer: str
) -> Measured:
    from velobench.bins import vllm_env

    install = vllm_env.locate(vllm_bin)
    env = vllm_env.child_env(install)
    with tempfile.TemporaryDirectory() as tmp:
        argv = [
            str(install.bin), "bench", "serve",
            "--backend", "openai-chat", "--base-url", server.url, "--endpoint", "/v1/chat/completions",
            "--model", "loopback", "--tokenizer", tokenizer,
            "--dataset-name", "random", "--random-input-len", "8", "--random-output-len", str(chunks),
            "--num-prompts", str(requests), "--max-concurrency", str(c), "--request-rate", "inf",
            "--ignore-eos", "--disable-tqdm",
            "--save-result", "--result-dir", tmp, "--result-filename", "r.json",
        ]  # fmt: skip
        _, cpu = run_measured(argv, env, server, 900)
        r = json.loads((Path(tmp) / "r.json").read_text())
    done, duration = int(r["completed"]), float(r["duration"])
    failed = int(r.get("failed", requests - done))
    return Measured(
        "vllm bench serve", c, rnd, done + failed, failed, duration, done / duration, done * chunks / duration,
        cpu * 1000 / max(done + failed, 1),
    )  # fmt: skip


def default_tokenizer() -> str | None:
    """A Hugging Face tokenizer velobench already has (its GGUF → HF conversions), for vLLM's prompts."""
    from velobench.paths import cache_dir

    found = sorted((cache_dir() / "hf-from-gguf").glob("*/tokenizer.json"))
    return str(found[0].parent) if found else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", default="1,8,64,256")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--chunks", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--vllm-bin", default=None)
    ap.add_argument(
        "--tokenizer", default=None, help="a Hugging Face tokenizer folder (default: one velobench made)"
    )
    ap.add_argument("--skip-vllm", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="write every run here")
    a = ap.parse_args()
    levels = [int(x) for x in a.concurrency.split(",")]
    tokenizer = a.tokenizer or default_tokenizer()
    if tokenizer is None and not a.skip_vllm:
        raise SystemExit("no tokenizer for vLLM's prompts: pass --tokenizer DIR (or --skip-vllm)")
    server = Loopback(a.chunks)
    runs: list[Measured] = []
    try:
        for rnd in range(1, a.rounds + 1):
            for c in levels:
                tools = ["velobench"] if a.skip_vllm else ["velobench", "vllm"]
                for tool in tools if rnd % 2 else tools[::-1]:
                    if tool == "velobench":
                        m = velobench(server, c, a.requests, a.chunks, rnd)
                    else:
                        assert tokenizer is not None
                        m = vllm(server, c, a.requests, a.chunks, rnd, a.vllm_bin, tokenizer)
                    runs.append(m)
                    print(
                        f"round {rnd} C={c:<4} {m.tool:<17} {m.requests_per_s:8.0f} req/s {m.chunks_per_s:9.0f} chunks/s "
                        f"{m.cpu_ms_per_request:6.2f} ms CPU/req ({m.requests} requests, {m.errors} errors)",
                        flush=True,
                    )
    finally:
        server.close()
    print(f"\n{a.requests} requests x {a.chunks} chunks per run, mean of {a.rounds} round(s)")
    print(f"{'C':>4}  {'tool':<17} {'req/s':>8} {'chunks/s':>9} {'CPU/req ms':>10}")
    for c in levels:
        means = {}
        for tool in ("velobench", "vllm bench serve"):
            got = [m for m in runs if m.tool == tool and m.concurrency == c]
            if not got:
                continue
            rps = statistics.mean(m.requests_per_s for m in got)
            cps = statistics.mean(m.chunks_per_s for m in got)
            cpu = statistics.mean(m.cpu_ms_per_request for m in got)
            means[tool] = (rps, cpu)
            print(f"{c:>4}  {tool:<17} {rps:8.0f} {cps:9.0f} {cpu:10.2f}")
        if len(means) == 2:
            (v_rps, v_cpu), (l_rps, l_cpu) = means["velobench"], means["vllm bench serve"]
            print(f"{c:>4}  {'velobench ÷ vLLM':<17} {v_rps / l_rps:7.2f}x {'':>9} {v_cpu / l_cpu:9.2f}x")
    if a.json is not None:
        a.json.write_text(json.dumps([asdict(m) for m in runs], indent=2) + "\n")


if __name__ == "__main__":
    main()
