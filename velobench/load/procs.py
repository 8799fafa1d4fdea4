"""Several load-generator processes on one clock: one level's schedule shared out, each share run
by `generator.run_load` on its own event loop in its own process, the records merged.

One asyncio loop is one core; past its ceiling (`velobench selftest loadgen`) the client, not the
server, is measured. With N processes the ceiling grows with the cores the machine has to spare.

One clock: every process times its requests with `time.perf_counter()` from one zero the parent
chooses. On Linux perf_counter is `clock_gettime(CLOCK_MONOTONIC)`, one clock for the whole
system (not one per process), so the records of every process lie on one time axis, as those of
one process do. It is checked, not assumed: each worker reads the clock when it is ready, and
that reading must lie between the parent's readings before it started the worker and after it
heard from it (else VelobenchError, and nothing runs).

The shares (`split`): worker k of n takes the global indices k, k + n, k + 2n, ...
    concurrency C   C // n in flight (one more for k < C mod n); of R requests, those i ≡ k (mod n)
    rate            the arrivals offsets[k::n], each at its own time; --max-concurrency shared as C
    sequential      not shared (one process)
n is at most C (or the cap, or the request count), so every worker has a slot and a request. A
duration bound is the same for all (one zero). Request i uses prompts[i % len(prompts)], as in
one process. Warm-up and cool-down are assigned after the merge, over the global indices.

The merged `LoadRun` (`merge`): records by global index; issued = Σ; cancelled as global
indices; interrupted where any was; max_in_flight = Σ of the workers' (exact for a closed loop,
an upper bound for an open one); loop_lag_s: every loop's probe samples; cpu_s: the workers' CPU
(`process_cpu_s`, each over its level) and this process's; cpu_wall_s: the longest worker's.

Lifecycle: workers are started by multiprocessing (`_context`: "forkserver", else "spawn"; this
process, its event loop and threads, is never forked; a script that runs a level in several
processes needs multiprocessing's `if __name__ == "__main__":` guard, the CLI has it), each opens
its client (`Opener.open`, picklable), says it is ready, and waits for the zero; the parent sets
zero = now + START_MARGIN_S once all are ready. Workers ignore SIGINT: Ctrl-C cancels
`run_procs`, which sends every worker "stop" (run_load's own stop: nothing more issued, requests
in flight given `grace_s`) and returns what finished with interrupted=True. A worker's exception,
a worker that exits, or `watch()` returning an error (the server of ours has exited) stops every
worker and raises. Every worker is joined, and killed past JOIN_S: none is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Protocol

from velobench.engines.http_client import AsyncHttpClient, StreamRequest
from velobench.errors import VelobenchError
from velobench.load.generator import PROBE_S, LoadRun, Send, assign_phases, run_load
from velobench.paths import repo_root
from velobench.results.load import LoadPlan, Window
from velobench.results.timing import RequestTiming

START_TIMEOUT_S = 60.0  # a worker imports velobench and opens its client: about a second
START_MARGIN_S = 0.05  # zero is this far after the last worker said it was ready
WATCH_S = 0.5  # how often the parent asks `watch` while the workers run
JOIN_S = 5.0  # after its result (or a stop), how long a worker may take to exit before it is killed
MIN_CORES_PER_PROC = 4  # auto: one generator process per this many cores (the server needs some)
MAX_AUTO_PROCS = 8
_ROOT = str(repo_root())  # where this `velobench` imports from (the folder above the package)


def auto_procs(cores: int | None = None) -> int:
    """The default number of generator processes: 1 below 2 · MIN_CORES_PER_PROC cores, else one
    per MIN_CORES_PER_PROC cores, at most MAX_AUTO_PROCS (on 2 cores: 1, which measured best:
    the server under test needs the other core)."""
    cores = (os.cpu_count() or 1) if cores is None else cores
    if cores < 2 * MIN_CORES_PER_PROC:
        return 1
    return min(cores // MIN_CORES_PER_PROC, MAX_AUTO_PROCS)


class Opener(Protocol):
    """How a worker sends (picklable: it crosses to the worker process). `open()` is entered once
    in the worker; it yields `make`, and `make(zero)` is the `send` of run_load, timing on
    `time.perf_counter()` from `zero`."""

    def open(self) -> AbstractAsyncContextManager[Callable[[float], Send[Any]]]: ...


@dataclass(frozen=True)
class Sendable:
    """A prompt as a worker sends it: its id (the record's prompt_id) and its whole request."""

    id: str
    request: StreamRequest


@dataclass
class HttpOpener:
    """A worker's client: `AsyncHttpClient(base_url, api_key=..., **client)`; its prompts are
    `Sendable`s, each sent as its request; a failed request is a record with its error (never an
    exception)."""

    base_url: str
    api_key: str | None = None
    client: Mapping[str, Any] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[Callable[[float], Send[Any]]]:
        async with AsyncHttpClient(self.base_url, api_key=self.api_key, **self.client) as client:

            def make(zero: float) -> Send[Any]:
                async def send(index: int, prompt: Sendable) -> RequestTiming:
                    return (await client.stream(prompt.request, zero=zero, raise_errors=False)).timing

                return send

            yield make


# --------------------------------------------------------------------------- the shares (pure)


def shares(plan: LoadPlan, procs: int) -> int:
    """How many processes `plan` is shared among: procs, at most its slots and its request count."""
    if procs <= 1 or plan.profile == "sequential":
        return 1
    n = procs
    slots, count = plan.slots(), plan.count_bound()
    if slots is not None:
        n = min(n, slots)
    if count is not None:
        n = min(n, count)
    return max(n, 1)


def split(plan: LoadPlan, n: int) -> list[LoadPlan]:
    """Worker k's plan of n (module docstring), without windows (they are assigned after the merge)."""
    if n == 1:
        return [plan.model_copy(update={"warmup": Window(), "cooldown": Window()})]
    out = []
    for k in range(n):
        update: dict[str, Any] = {"warmup": Window(), "cooldown": Window()}
        if plan.requests is not None:
            update["requests"] = len(range(k, plan.requests, n))
        if plan.concurrency is not None:
            update["concurrency"] = plan.concurrency // n + (k < plan.concurrency % n)
        if plan.max_concurrency is not None:
            update["max_concurrency"] = plan.max_concurrency // n + (k < plan.max_concurrency % n)
        if plan.schedule is not None:
            offsets = plan.schedule.offsets_s[k::n]
            update["schedule"] = plan.schedule.model_copy(
                update={"offsets_s": offsets, "count": len(offsets)}
            )
        out.append(plan.model_copy(update=update))
    return out


def share_prompts(prompts: Sequence[Any], k: int, n: int) -> list[Any]:
    """Worker k's prompts: its j-th request (global index j·n + k) uses prompts[(j·n + k) % L],
    and that is this list's entry j % L (L = len(prompts))."""
    return [prompts[(j * n + k) % len(prompts)] for j in range(len(prompts))]


def merge(
    plan: LoadPlan, runs: Mapping[int, LoadRun], n: int, zero: float, parent_cpu_s: float, interrupted: bool
) -> LoadRun:
    """One LoadRun from the workers' runs by k (worker k's local index j is global index j·n + k;
    a worker stopped without a result, after Ctrl-C, contributes nothing)."""
    records = [
        r.model_copy(update={"index": r.index * n + k}) for k, run in runs.items() for r in run.records
    ]
    records.sort(key=lambda r: r.index)
    issued = sum(run.issued for run in runs.values())
    cancelled = sorted(i * n + k for k, run in runs.items() for i in run.cancelled)
    process_cpu = [runs[k].cpu_s for k in sorted(runs)]
    return LoadRun(
        plan=plan,
        zero_perf_s=zero,
        records=assign_phases(records, issued, plan.warmup, plan.cooldown),
        issued=issued,
        cancelled=cancelled,
        interrupted=interrupted or any(run.interrupted for run in runs.values()),
        max_in_flight=sum(run.max_in_flight for run in runs.values()),
        wall_s=max((run.wall_s for run in runs.values()), default=0.0),
        probe_s=next(iter(runs.values())).probe_s if runs else PROBE_S,
        loop_lag_s=[x for k in sorted(runs) for x in runs[k].loop_lag_s],
        cpu_s=sum(process_cpu) + parent_cpu_s,
        cpu_wall_s=max((run.cpu_wall_s for run in runs.values()), default=0.0),
        procs=n,
        process_cpu_s=process_cpu,
    )


# --------------------------------------------------------------------------- the worker


def _message(conn: Connection) -> asyncio.Future[Any]:
    """The next message on `conn`, as a future of this loop (EOFError where the other end went)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()
    fd = conn.fileno()

    def readable() -> None:
        loop.remove_reader(fd)
        if fut.done():
            return
        try:
            fut.set_result(conn.recv())
        except (EOFError, OSError) as exc:
            fut.set_exception(EOFError(str(exc) or "closed"))

    loop.add_reader(fd, readable)
    fut.add_done_callback(lambda f: loop.remove_reader(fd) if f.cancelled() else None)
    return fut


async def _work(
    conn: Connection, opener: Opener, prompts: Sequence[Any], plan: LoadPlan, grace_s: float
) -> None:
    async with opener.open() as make:
        conn.send(("ready", time.perf_counter()))
        msg = await _message(conn)
        if msg[0] != "go":
            conn.send(("run", None))
            return
        zero = float(msg[1])
        await asyncio.sleep(max(zero - time.perf_counter(), 0.0))
        main = asyncio.current_task()
        assert main is not None
        stop = _message(conn)  # "stop": run_load's own stop (its cancellation)
        stop.add_done_callback(lambda f: None if f.cancelled() else (f.exception(), main.cancel()))
        try:
            run = await run_load(make(zero), prompts, plan, zero=zero, grace_s=grace_s)
        finally:
            stop.cancel()
    conn.send(("run", run))


def _worker(conn: Connection, opener: Opener, prompts: Sequence[Any], plan: LoadPlan, grace_s: float) -> None:
    """A worker process: run its share, send ("run", LoadRun) or ("error", one line)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it (Ctrl-C reaches the whole group)
    try:
        asyncio.run(_work(conn, opener, prompts, plan, grace_s))
    except Exception as exc:  # reported to the parent, which raises it as one line
        with contextlib.suppress(OSError):
            conn.send(
                ("error", f"{type(exc).__name__}: {exc}" if not isinstance(exc, VelobenchError) else str(exc))
            )
    finally:
        conn.close()


# --------------------------------------------------------------------------- the parent


def _context() -> Any:
    """multiprocessing's "forkserver" where the platform has it (a clean server process started
    once, this module imported there; each worker forked from it in milliseconds, where "spawn"
    imports velobench again for every worker of every level), else "spawn". Neither forks this
    process (its event loop, its threads)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        return ctx
    return multiprocessing.get_context("spawn")


@contextlib.contextmanager
def _importable() -> Iterator[None]:
    """PYTHONPATH led by the folder this velobench imports from, while a worker starts: the
    forkserver (started with the first worker) imports this module by the environment's path
    (Python 3.11's forkserver does not take this process's sys.path), and must find this
    velobench, not another one installed."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_ROOT, old]))
    try:
        yield
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old


@dataclass
class _Proc:
    k: int
    process: Any  # multiprocessing's SpawnProcess
    conn: Connection
    started_perf: float


async def run_procs(
    opener: Opener,
    prompts: Sequence[Any],
    plan: LoadPlan,
    procs: int,
    *,
    grace_s: float = 5.0,
    watch: Callable[[], BaseException | None] | None = None,
) -> LoadRun:
    """Run one level (`run_load`'s contract) in `shares(plan, procs)` worker processes; see the
    module docstring. `watch()` is asked every WATCH_S while they run: an exception it returns
    stops them all and is raised."""
    if not prompts:
        raise VelobenchError("a load run needs at least one prompt")
    n = shares(plan, procs)
    ctx = _context()
    workers: list[_Proc] = []
    cpu0 = time.process_time()
    try:
        for k, p in enumerate(split(plan, n)):
            parent_end, child_end = ctx.Pipe()
            started = time.perf_counter()
            proc = ctx.Process(
                target=_worker,
                args=(child_end, opener, share_prompts(prompts, k, n), p, grace_s),
                name=f"velobench-generator-{k}",
                daemon=True,
            )
            with _importable():
                proc.start()
            child_end.close()
            workers.append(_Proc(k, proc, parent_end, started))
        await _ready(workers)
        zero = time.perf_counter() + START_MARGIN_S
        for w in workers:
            w.conn.send(("go", zero))
        runs, interrupted = await _collect(workers, grace_s, watch)
        return merge(plan, runs, n, zero, time.process_time() - cpu0, interrupted)
    finally:
        _reap(workers)


async def _ready(workers: Sequence[_Proc]) -> None:
    """Every worker's ready message, its clock reading checked against ours (one clock)."""
    futures = {w.k: _message(w.conn) for w in workers}
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            for w in workers:
                msg = await _answer(w, futures[w.k])
                heard = time.perf_counter()
                if msg[0] != "ready":
                    raise VelobenchError(f"generator process {w.k}: expected ready, got {msg[0]!r}")
                if not w.started_perf <= float(msg[1]) <= heard:
                    raise VelobenchError(
                        f"generator process {w.k} does not share this process's clock "
                        f"(time.perf_counter: {msg[1]!r} outside [{w.started_perf!r}, {heard!r}])"
                    )
    except TimeoutError:
        raise VelobenchError(f"a generator process did not start within {START_TIMEOUT_S:g} s") from None
    finally:
        for f in futures.values():
            f.cancel()


async def _answer(w: _Proc, fut: asyncio.Future[Any]) -> Any:
    """A worker's message; its error raised as one line, its exit as an error."""
    try:
        msg = await fut
    except EOFError:
        w.process.join(1.0)
        raise VelobenchError(f"generator process {w.k} exited (code {w.process.exitcode})") from None
    if msg[0] == "error":
        raise VelobenchError(f"generator process {w.k}: {msg[1]}")
    return msg


async def _collect(
    workers: Sequence[_Proc], grace_s: float, watch: Callable[[], BaseException | None] | None
) -> tuple[dict[int, LoadRun], bool]:
    """Every worker's LoadRun, and whether it was cancelled (Ctrl-C): then every worker is stopped
    and what finished kept."""
    futures = {w.k: _message(w.conn) for w in workers}
    runs: dict[int, LoadRun] = {}

    async def take(done: Sequence[_Proc]) -> None:
        for w in done:
            msg = await _answer(w, futures.pop(w.k))
            if msg[1] is not None:
                runs[w.k] = msg[1]

    def stop_all() -> None:
        for w in workers:
            if w.k in futures:
                with contextlib.suppress(OSError):
                    w.conn.send(("stop",))

    try:
        while futures:
            await asyncio.wait(futures.values(), timeout=WATCH_S, return_when=asyncio.FIRST_COMPLETED)
            await take([w for w in workers if w.k in futures and futures[w.k].done()])
            dead = watch() if watch is not None else None
            if dead is not None:
                raise dead
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        stop_all()
        if futures:
            await asyncio.wait(futures.values(), timeout=grace_s + JOIN_S)
        await take([w for w in workers if w.k in futures and futures[w.k].done()])
        return runs, True
    except BaseException:
        stop_all()
        raise
    finally:
        for f in futures.values():
            f.cancel()
    return runs, False


def _reap(workers: Sequence[_Proc]) -> None:
    """Every pipe closed (a worker still waiting for its zero then ends), every worker joined
    (killed past JOIN_S)."""
    for w in workers:
        w.conn.close()
    deadline = time.monotonic() + JOIN_S
    for w in workers:
        w.process.join(max(deadline - time.monotonic(), 0.0))
        if w.process.is_alive():
            w.process.kill()
            w.process.join()
