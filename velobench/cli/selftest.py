"""`velobench selftest`: what velobench itself can do on this machine, before it measures an engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from velobench.cli import options as o
from velobench.cli.options import csv_numbers
from velobench.cli.terminal import out
from velobench.errors import VelobenchError
from velobench.report import fmt
from velobench.results.load import LagStats

if TYPE_CHECKING:
    from rich.table import Table

    from velobench.bins.vllm_env import VllmInstall
    from velobench.load.loopback import GeneratorCeiling
    from velobench.load.vs_vllm import Measured

app = typer.Typer(help="velobench's own limits on this machine.", no_args_is_help=True)


@app.command("loadgen")
def loadgen(
    concurrency: Annotated[
        str, typer.Option("--concurrency", help="requests in flight, one closed-loop level each")
    ] = "1,8,64",
    requests: Annotated[int, typer.Option("--requests", help="requests per level")] = 2000,
    chunks: Annotated[
        int, typer.Option("--chunks", help="streamed content chunks per response (one token each)")
    ] = 16,
    generator_procs: Annotated[
        int | None,
        typer.Option(
            help="load-generator processes sharing each level, as `velobench load --generator-procs` "
            "[default: 1 below 8 cores, else one per 4 cores, at most 8]"
        ),
    ] = None,
    vllm: Annotated[
        bool | None,
        typer.Option(
            "--vllm/--no-vllm",
            help="also run `vllm bench serve` at every level, alternating with velobench [default: where vLLM is found]",
        ),
    ] = None,
    vllm_bin: o.VllmBin = None,
    tokenizer: Annotated[
        str | None,
        typer.Option(
            help="Hugging Face tokenizer (folder or name) for vLLM's random prompts "
            "[default: one velobench converted for vLLM]"
        ),
    ] = None,
) -> None:
    """The load generator's ceiling: requests/s and chunks/s against a server that does no work.

    A loopback server in a child process streams CHUNKS chunks per request; what velobench
    reaches against it is the most `velobench load` can issue and complete here, so a server
    measured near these rates is measured against velobench, not against itself. Each level
    also shows the generator's own lag as a load result records it (p50/p99/max): its send lag
    (sent − due), its event-loop lag (a 5 ms timer's late wake-ups: how late a chunk may be
    timestamped) and its CPU share (one core = 100%). Where vLLM is found, `vllm bench serve`
    runs the same levels against the same server, the two tools alternating, each in its own
    process, and both figures are printed side by side.
    """
    from rich.table import Table

    from velobench.load.loopback import measure_ceilings
    from velobench.load.procs import auto_procs

    levels = [int(c) for c in csv_numbers(concurrency, "--concurrency", int, "1,8,64")]
    if not levels or levels[0] < 1:
        raise VelobenchError("--concurrency: levels must be >= 1")
    if requests < 1 or chunks < 1:
        raise VelobenchError("--requests and --chunks must be at least 1")
    if generator_procs is not None and generator_procs < 1:
        raise VelobenchError(f"--generator-procs must be at least 1, got {generator_procs}")
    procs = generator_procs if generator_procs is not None else auto_procs()
    install, why = find_vllm(vllm, vllm_bin, tokenizer)
    out.print(
        f"load generator against a loopback server: {requests} requests x {chunks} chunks per level, "
        f"{procs} generator process{'es' if procs > 1 else ''}"
    )
    runs: list[Measured] = []
    if install is not None:
        from velobench.load import vs_vllm

        tok = tokenizer or vs_vllm.default_tokenizer()
        out.print(
            f"vllm: {install.bin} ({install.source}), alternating with velobench, each in its own process"
        )
        runs = vs_vllm.side_by_side(
            levels,
            requests=requests,
            chunks=chunks,
            install=install,
            tokenizer=tok,
            procs=procs,
            on_run=lambda m: out.print(f"  {run_line(m)}", markup=False),
        )
        ceilings = [m.ceiling for m in runs if m.ceiling is not None]
    else:
        ceilings = measure_ceilings(levels, tokens=chunks, requests=requests, procs=procs)
    table = Table(title="load generator ceiling")
    for col in ("concurrency", "requests/s", "chunks/s", "client CPU/req", "errors", "in flight"):
        table.add_column(col, justify="right", no_wrap=True)
    for c in ceilings:
        table.add_row(
            str(c.concurrency),
            f"{c.requests_per_s:.0f}",
            f"{c.chunks_per_s:.0f}",
            f"{c.client_cpu_s_per_request * 1000:.3f} ms",
            str(c.errors),
            str(c.max_in_flight),
        )
    out.print(table)
    out.print("the generator's own lag (p50/p99/max; a load result records the same per level):")
    for c in ceilings:
        out.print(f"  {lag_line(c)}", markup=False)
    top = max(ceilings, key=lambda c: c.requests_per_s)
    out.print(
        f"ceiling: {top.requests_per_s:.0f} requests/s, {top.chunks_per_s:.0f} chunks/s "
        f"(at concurrency {top.concurrency}); above these rates velobench, not the server, is the bottleneck"
    )
    if runs:
        out.print(side_by_side_table(runs, levels))
    else:
        out.print(f"vllm: {why}", markup=False)


def find_vllm(
    wanted: bool | None, vllm_bin: str | None, tokenizer: str | None
) -> tuple[VllmInstall | None, str]:
    """vLLM to run beside velobench, or None and why not. `wanted` None: where found (and a
    tokenizer is at hand); True: it must be (else VelobenchError); False: not asked for."""
    from velobench.bins import vllm_env
    from velobench.load import vs_vllm

    if wanted is False:
        return None, f"not run (--no-vllm); {vllm_whereabouts()}"
    try:
        install = vllm_env.locate(vllm_bin)
    except VelobenchError as exc:
        if wanted:
            raise
        return None, f"{exc}; nothing to compare with"
    if tokenizer is None and vs_vllm.default_tokenizer() is None:
        msg = (
            f"found ({install.bin}), but its random prompts need a Hugging Face tokenizer: "
            "pass --tokenizer DIR_OR_NAME (velobench converts one with `velobench run --engine vllm`)"
        )
        if wanted:
            raise VelobenchError(f"vllm {msg}")
        return None, msg
    return install, ""


def run_line(m: Measured) -> str:
    """`round 1 C=8  velobench          1711 req/s   27376 chunks/s  0.41 ms CPU/req (2000 requests, 0 errors)`."""
    return (
        f"round {m.round} C={m.concurrency:<4} {m.tool:<17} {m.requests_per_s:7.0f} req/s "
        f"{m.chunks_per_s:8.0f} chunks/s {m.cpu_ms_per_request:6.2f} ms CPU/req "
        f"({m.requests} requests, {m.errors} errors)"
    )


def side_by_side_table(runs: list[Measured], levels: list[int]) -> Table:
    """velobench and `vllm bench serve` per concurrency, and velobench ÷ vLLM."""
    from rich.table import Table

    from velobench.load.vs_vllm import VELOBENCH, VLLM, means

    table = Table(
        title="velobench vs vllm bench serve (one loopback server, alternating)",
        caption="CPU/req: each tool's process, from its first request to its exit",
    )
    for col in ("concurrency", "tool", "requests/s", "chunks/s", "CPU/req"):
        table.add_column(col, justify="right", no_wrap=True)
    for c in levels:
        ours, theirs = means(runs, VELOBENCH, c), means(runs, VLLM, c)
        for tool, m in ((VELOBENCH, ours), (VLLM, theirs)):
            if m is not None:
                table.add_row(str(c), tool, f"{m[0]:.0f}", f"{m[1]:.0f}", f"{m[2]:.3f} ms")
        if ours is not None and theirs is not None:
            table.add_row(
                str(c),
                "velobench ÷ vLLM",
                f"{ours[0] / theirs[0]:.2f}x",
                f"{ours[1] / theirs[1]:.2f}x",
                f"{ours[2] / theirs[2]:.2f}x",
            )
    return table


def lag_text(s: LagStats | None) -> str:
    """`0.05/0.61/3.20 ms`: p50 / p99 / max of a lag."""
    return fmt.MISSING if s is None else f"{s.p50:.2f}/{s.p99:.2f}/{s.max:.2f} ms"


def lag_line(c: GeneratorCeiling) -> str:
    """`concurrency 8: send lag 1.16/4.29/4.80 ms, event-loop lag 4.56/6.92/7.10 ms, CPU 100% of a core`."""
    lag = c.lag
    procs = (
        f" ({lag.procs} processes, the busiest {fmt.percent(lag.busiest_cpu_share)})" if lag.procs > 1 else ""
    )
    return (
        f"concurrency {c.concurrency}: send lag {lag_text(lag.send_ms)}, "
        f"event-loop lag {lag_text(lag.loop_ms)}, CPU {fmt.percent(lag.cpu_share)} of a core{procs}"
    )


def vllm_whereabouts() -> str:
    """Where a `vllm` executable is (PATH, else velobench's own environment), without running it."""
    import shutil

    from velobench.bins import vllm_env

    on_path = shutil.which("vllm")
    if on_path:
        return f"found on PATH ({on_path})"
    env = vllm_env.read_env(vllm_env.envs_root() / vllm_env.env_spec().key())
    if env is not None:
        return f"found in velobench's environment ({env.vllm})"
    return f"not found ({vllm_env.HOW_TO_GET})"
