"""velobench's load generator beside `vllm bench serve`, on one loopback endpoint, alternating.

One loopback server (`load.loopback.loopback_process`, its own process: an OpenAI-style chat
stream of CHUNKS content chunks per request, no work) serves both tools. Per round and
concurrency C, each tool runs one closed-loop level of REQUESTS requests with C in flight, in
its own process, the two alternating (velobench first in odd rounds, vLLM first in even ones)
so drift falls on both alike:

* velobench: `load.loopback.generator_ceiling(C, REQUESTS, CHUNKS, url, procs)` in a child
  Python (the client `velobench load` uses: `AsyncHttpClient` under `run_load`, or
  `load.procs` with several processes);
* vLLM: `vllm bench serve --backend openai-chat --endpoint /v1/chat/completions --dataset-name
  random --random-input-len 8 --random-output-len CHUNKS --num-prompts REQUESTS
  --max-concurrency C --request-rate inf --ignore-eos` (its tokenizer only makes the random
  prompts).

Figures per run: requests/s = completed requests / the tool's own duration (first send to last
completion: `GeneratorCeiling.wall_s`, vLLM's `duration`); chunks/s = streamed content chunks
/ that duration (vLLM does not count chunks: completed × CHUNKS, which the loopback server
sends to each); client CPU per request = the tool's CPU time (user + system of its process and
its children, psutil) from the loopback server's first request of the run to the tool's exit,
/ requests (so neither tool's start-up, ~10 s of CPU for vLLM's imports, is counted; its end,
vLLM's statistics, is). The server's `GET /stats` says when the first request arrived (polled
every POLL_S).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from velobench.bins.vllm_env import VllmInstall, child_env
from velobench.errors import VelobenchError
from velobench.load.loopback import GeneratorCeiling, loopback_process
from velobench.paths import repo_root

POLL_S = 0.01
_ROOT = str(repo_root())  # where this `velobench` imports from, for the child
Tool = Literal["velobench", "vllm bench serve"]
VELOBENCH: Tool = "velobench"
VLLM: Tool = "vllm bench serve"


class Measured(BaseModel):
    """One tool's closed-loop level against the loopback server."""

    model_config = ConfigDict(extra="forbid")

    tool: Tool
    concurrency: int
    round: int
    requests: int
    errors: int
    duration_s: float
    requests_per_s: float
    chunks_per_s: float
    cpu_ms_per_request: float
    ceiling: GeneratorCeiling | None = None  # velobench's own record of the level (its lag too)


class _Stats:
    """The loopback server's request count (`GET /stats`)."""

    def __init__(self, url: str) -> None:
        import httpx

        self.http = httpx.Client(base_url=url, timeout=5.0)

    def requests(self) -> int:
        return int(self.http.get("/stats").json()["requests"])

    def close(self) -> None:
        self.http.close()


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of `pid` and its children: the live ones read directly, the ones
    already reaped through their parent's `children_user`/`children_system` (without those, the
    CPU of `--generator-procs` workers that had exited vanished from the sum: CPU per request
    read below 0)."""
    import psutil

    p = psutil.Process(pid)
    total = 0.0
    for q in [p, *p.children(recursive=True)]:
        try:
            t = q.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def run_measured(argv: list[str], env: dict[str, str], stats: _Stats, timeout_s: float) -> tuple[str, float]:
    """Run `argv`; its stdout and its CPU seconds from the server's first new request to its exit
    (the last reading taken while it still runs, every POLL_S). Killed and reaped however this ends."""
    import psutil

    before = stats.requests()
    proc = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    start = last = None
    deadline = time.monotonic() + timeout_s
    try:
        while proc.poll() is None:
            if time.monotonic() > deadline:
                raise VelobenchError(f"{Path(argv[0]).name} ran past {timeout_s:g} s")
            try:
                cpu = _cpu_s(proc.pid)
            except psutil.NoSuchProcess:
                break
            if start is None and stats.requests() > before:
                start = cpu
            last = cpu
            time.sleep(POLL_S)
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if proc.returncode != 0:
        tail = " ".join(err.strip().splitlines()[-1:])
        raise VelobenchError(f"{Path(argv[0]).name} failed (exit code {proc.returncode}): {tail}")
    if start is None or last is None:
        raise VelobenchError(f"{Path(argv[0]).name} sent no request to the loopback server")
    return out, last - start


def velobench_level(
    url: str, stats: _Stats, c: int, requests: int, chunks: int, rnd: int, procs: int
) -> Measured:
    """velobench's level, in a child Python (as vLLM's runs in its own process)."""
    code = (
        "import asyncio\n"
        "from velobench.load.loopback import generator_ceiling\n"
        "if __name__ == '__main__':\n"
        f"    c = asyncio.run(generator_ceiling({c}, {requests}, {chunks}, {url!r}, {procs}))\n"
        "    print(c.model_dump_json())\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")]))}
    out, cpu = run_measured([sys.executable, "-c", code], env, stats, 600)
    g = GeneratorCeiling.model_validate_json(out.strip().splitlines()[-1])
    return Measured(
        tool=VELOBENCH,
        concurrency=c,
        round=rnd,
        requests=g.requests,
        errors=g.errors,
        duration_s=g.wall_s,
        requests_per_s=g.requests_per_s,
        chunks_per_s=g.chunks_per_s,
        cpu_ms_per_request=cpu * 1000 / g.requests,
        ceiling=g,
    )


def vllm_argv(
    install: VllmInstall, url: str, c: int, requests: int, chunks: int, tokenizer: str, out: Path
) -> list[str]:
    """`vllm bench serve` for one closed-loop level against the loopback server (module docstring)."""
    return [
        str(install.bin), "bench", "serve",
        "--backend", "openai-chat", "--base-url", url, "--endpoint", "/v1/chat/completions",
        "--model", "loopback", "--tokenizer", tokenizer,
        "--dataset-name", "random", "--random-input-len", "8", "--random-output-len", str(chunks),
        "--num-prompts", str(requests), "--max-concurrency", str(c), "--request-rate", "inf",
        "--ignore-eos", "--disable-tqdm",
        "--save-result", "--result-dir", str(out.parent), "--result-filename", out.name,
    ]  # fmt: skip


def vllm_level(
    install: VllmInstall,
    url: str,
    stats: _Stats,
    c: int,
    requests: int,
    chunks: int,
    rnd: int,
    tokenizer: str,
) -> Measured:
    """`vllm bench serve`'s level (its own result JSON read back)."""
    with tempfile.TemporaryDirectory(prefix="velobench-vllm-bench-") as tmp:
        out = Path(tmp) / "r.json"
        argv = vllm_argv(install, url, c, requests, chunks, tokenizer, out)
        _, cpu = run_measured(argv, child_env(install, tmpdir=Path(tmp)), stats, 900)
        r = json.loads(out.read_text())
    done, duration = int(r["completed"]), float(r["duration"])
    failed = int(r.get("failed", requests - done))
    return Measured(
        tool=VLLM,
        concurrency=c,
        round=rnd,
        requests=done + failed,
        errors=failed,
        duration_s=duration,
        requests_per_s=done / duration,
        chunks_per_s=done * chunks / duration,
        cpu_ms_per_request=cpu * 1000 / max(done + failed, 1),
    )


def default_tokenizer() -> str | None:
    """A Hugging Face tokenizer velobench already has (its GGUF → HF conversions), for vLLM's prompts."""
    from velobench.models.convert import converted_root

    found = sorted(converted_root().glob("*/tokenizer.json"))
    return str(found[0].parent) if found else None


def side_by_side(
    levels: Sequence[int],
    *,
    requests: int,
    chunks: int,
    rounds: int = 1,
    install: VllmInstall | None,
    tokenizer: str | None,
    procs: int = 1,
    on_run: Callable[[Measured], None] | None = None,
) -> list[Measured]:
    """Every round × level × tool (velobench only where `install` is None), alternating (module
    docstring); `on_run` sees each run as it finishes."""
    if install is not None and tokenizer is None:
        raise VelobenchError(
            "vLLM's random prompts need a Hugging Face tokenizer: pass --tokenizer DIR_OR_NAME"
        )
    runs: list[Measured] = []
    with loopback_process(chunks) as url:
        stats = _Stats(url)
        try:
            for rnd in range(1, rounds + 1):
                for c in levels:
                    tools: list[Tool] = [VELOBENCH] if install is None else [VELOBENCH, VLLM]
                    for tool in tools if rnd % 2 else tools[::-1]:
                        if tool == VELOBENCH:
                            m = velobench_level(url, stats, c, requests, chunks, rnd, procs)
                        else:
                            assert install is not None and tokenizer is not None
                            m = vllm_level(install, url, stats, c, requests, chunks, rnd, tokenizer)
                        runs.append(m)
                        if on_run is not None:
                            on_run(m)
        finally:
            stats.close()
    return runs


def means(runs: Sequence[Measured], tool: Tool, c: int) -> tuple[float, float, float] | None:
    """(requests/s, chunks/s, CPU ms per request) of `tool` at concurrency `c`, each the mean over rounds."""
    got = [m for m in runs if m.tool == tool and m.concurrency == c]
    if not got:
        return None
    n = len(got)
    return (
        sum(m.requests_per_s for m in got) / n,
        sum(m.chunks_per_s for m in got) / n,
        sum(m.cpu_ms_per_request for m in got) / n,
    )
