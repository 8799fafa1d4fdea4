"""`velobench selftest`: what velobench itself can do on this machine, before it measures an engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from velobench.cli.options import csv_numbers
from velobench.cli.terminal import out
from velobench.errors import VelobenchError
from velobench.report import fmt
from velobench.results.load import LagStats

if TYPE_CHECKING:
    from velobench.load.loopback import GeneratorCeiling

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
) -> None:
    """The load generator's ceiling: requests/s and chunks/s against a server that does no work.

    A loopback server in a child process streams CHUNKS chunks per request; what velobench
    reaches against it is the most `velobench load` can issue and complete here, so a server
    measured near these rates is measured against velobench, not against itself. Each level
    also shows the generator's own lag as a load result records it (p50/p99/max): its send lag
    (sent − due), its event-loop lag (a 5 ms timer's late wake-ups: how late a chunk may be
    timestamped) and its CPU share (one core = 100%).
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
    out.print(
        f"load generator against a loopback server: {requests} requests x {chunks} chunks per level, "
        f"{procs} generator process{'es' if procs > 1 else ''}"
    )
    table = Table(title="load generator ceiling")
    for col in ("concurrency", "requests/s", "chunks/s", "client CPU/req", "errors", "in flight"):
        table.add_column(col, justify="right", no_wrap=True)
    ceilings = measure_ceilings(levels, tokens=chunks, requests=requests, procs=procs)
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
    out.print(f"vllm: {vllm_whereabouts()}; a side-by-side with `vllm bench serve` is a later step")


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
