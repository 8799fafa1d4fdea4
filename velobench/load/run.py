"""`velobench load`: vanilla and speculative servers under the same load, level by level.

    prepare (models, engine, prompts: every check before anything starts)
    schedule (`load_schedule`): interleaved where asked and both servers can be up at once
        (`Engine.side_by_side`), else blocked; an SLO search is always blocked (said in the result)
    interleaved:
        with engine.serve(vanilla, slots=S), engine.serve(speculative, slots=S):  # two ports
            prompts fitted once (the vanilla server), warm-up request(s) on each, not recorded
            for i, level in enumerate(levels):         # ascending
                for mode in level_order(i):            # AB, BA, AB, ... (runner.schedule)
                    one level (below); saturated? → that mode stops, the other goes on alone
    blocked:
        for mode in (vanilla, speculative):            # all levels of one mode, then the next
            with engine.serve(mode, slots=S):          # one server per mode, S = the most in flight
                prompts fitted once (first server), warm-up request(s), not recorded
                for level in levels: one level (below)
                    saturated (sweep)? → stop this mode; later modes run no higher level
    one level:
        GET /metrics → run_load (asyncio, AsyncHttpClient) → GET /metrics
            (--generator-procs N: load.procs.run_procs, N processes' run_load merged)
        records → JSONL; its position and start; summaries, comparisons, crossover → result (atomic)

Both modes run the same levels with the same plans (open-loop schedules drawn once from the
seed) and the same prompts in the same order. Speculative counters are the /metrics deltas
over each level (every phase, warm-up and cool-down requests included).

Faults: bad input fails in `prepare`/`load_options`, before any server starts. Ctrl-C stops
issuing at once, waits up to `grace_s` for the requests in flight, keeps every finished level
(and the finished requests of the interrupted one), saves, and raises `Interrupted`. A server
that dies mid-level ends the run with one line naming its exit code and log; finished levels
are kept and the server context has already reaped it (both servers, interleaved: they stop in
reverse order however the run ends). A save the file system refuses puts the
result and every level's records in a rescue copy. How a run ends (the status, the one line) is
`runner.lifecycle`'s, as for every command.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
from rich.console import Console

from velobench import engines
from velobench.engines import dialects
from velobench.engines.base import Engine, ServerHandle, ServesHttp
from velobench.engines.dialects import Dialect
from velobench.engines.http_client import AsyncHttpClient, StreamRequest, display_url
from velobench.engines.http_session import client_timeouts
from velobench.engines.metrics import Samples, spec_decode_delta
from velobench.errors import VelobenchError
from velobench.load.analysis import generator_lag
from velobench.load.generator import LoadRun, run_load
from velobench.load.plan import level_plans
from velobench.load.procs import HttpOpener, Sendable, run_procs, shares
from velobench.load.recompute import BASELINE, CANDIDATE, recompute
from velobench.load.slo import MaxRateSearch, compare_arms
from velobench.prompts import Prompt, chat_messages
from velobench.results.config import EngineName, RunConfig, Schedule
from velobench.results.load import (
    LoadLevel,
    LoadMode,
    LoadOptions,
    LoadPlan,
    LoadReport,
    Records,
    append_records,
)
from velobench.results.maxrate import MaxRateResult, SearchOptions
from velobench.results.schema import Mode, ResultWarning, SessionInfo, WarningCode
from velobench.results.store import save
from velobench.results.timing import RequestTiming
from velobench.runner.lifecycle import Ending, Lifecycle, units
from velobench.runner.loop import choose_schedule, run_modes
from velobench.runner.schedule import level_order
from velobench.telemetry import environment

CHARS_PER_TOKEN = 4  # --input-len without a tokenizer: about this many characters per token
CHAT_TEMPLATE_MARGIN = 64  # tokens a chat template may add around a prompt
DIED_CHECK_S = 1.0  # after a failed request, how long to watch for the server's exit


# velobench load's own reasons for -x flags its engine owns (`EngineClass.check_options`).
OWNED_HINTS: dict[str, str] = {
    **dict.fromkeys(
        ("-np", "--parallel"),
        "velobench load gives llama-server one slot per request in flight (--concurrency)",
    ),
}


def default_output() -> Path:
    return Path("results") / time.strftime("load-%Y%m%d-%H%M%S.json", time.gmtime())


def records_file(output: Path) -> Path:
    return output.with_name(output.stem + ".records.jsonl")


SERVER_ENGINES = (EngineName.REMOTE, EngineName.SERVER)  # what `auto` picks from (vLLM only when asked)


def check_engine(cfg: RunConfig) -> RunConfig:
    """`cfg` with the engine `velobench load` will drive: only server engines take concurrent load.

    A named engine is checked by `prepare` as every run's is; `auto` becomes the first of
    SERVER_ENGINES that can run the configuration (`engines.reasons`; installed or not: a missing
    llama-server is then named, with how to get it, when the engine is made).
    """
    if cfg.engine is EngineName.CLI:
        raise VelobenchError(
            "velobench load drives a server: use --engine server (llama-server), vllm, or remote (--server-url)"
        )
    if cfg.engine is not EngineName.AUTO:
        return cfg
    why = engines.reasons(cfg)
    for name in SERVER_ENGINES:
        if why[name] is None:
            return cfg.model_copy(update={"engine": name})
    reason = why[EngineName.REMOTE if cfg.server_url or cfg.baseline_url else EngineName.SERVER]
    raise VelobenchError(f"velobench load drives a server, and no server engine can run this: {reason}")


# --------------------------------------------------------------------------- prompts


class Tokenizer:
    """The server's own tokenizer (`POST /tokenize`, `/detokenize`: llama-server and vLLM), in
    the server's dialect (`engines.dialects`)."""

    def __init__(self, handle: ServerHandle) -> None:
        self.dialect: Dialect = "llama" if handle.name == "llama-server" else "openai"
        self.model = handle.model
        headers = {"Authorization": f"Bearer {handle.api_key}"} if handle.api_key else {}
        self.http = httpx.Client(base_url=handle.base_url, headers=headers, timeout=30.0)

    def close(self) -> None:
        self.http.close()

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        r = self.http.post(path, json=body)
        r.raise_for_status()
        return r.json()

    def tokenize(self, text: str) -> list[int]:
        return dialects.token_ids(
            self._post(dialects.TOKENIZE, dialects.tokenize_body(self.dialect, text, self.model))
        )

    def detokenize(self, ids: Sequence[int]) -> str:
        body = dialects.detokenize_body(self.dialect, ids, self.model)
        return dialects.detokenized(self._post(dialects.DETOKENIZE, body))


def fit_prompts(
    prompts: Sequence[Prompt],
    *,
    tokenize: Callable[[str], list[int]] | None,
    detokenize: Callable[[Sequence[int]], str] | None,
    input_len: int | None,
    max_tokens: int,
) -> tuple[list[Prompt], list[int] | None, list[str]]:
    """The prompts a load run cycles through, their token counts (None without a tokenizer), notes.

    With `input_len` N: each prompt's tokens repeated until there are N and cut there, turned back
    into text (re-tokenizing that text can differ by a token or two at the seams); without a
    tokenizer, the text repeated/cut to N·CHARS_PER_TOKEN characters (about N tokens). Without
    `input_len`: prompts longer than `max_tokens` tokens are dropped (they would not fit the
    context with the output), as vLLM's benchmark filters ShareGPT.
    """
    notes: list[str] = []
    out: list[Prompt] = []
    counts: list[int] = []
    dropped = 0
    for p in prompts:
        text = p.turns[0] if p.turns else p.prompt
        if not text.strip():
            continue
        if input_len is not None:
            if tokenize is not None and detokenize is not None:
                ids = tokenize(text)
                if not ids:
                    continue
                ids = (ids * math.ceil(input_len / len(ids)))[:input_len]
                fitted = detokenize(ids)
                counts.append(len(ids))
            else:
                chars = input_len * CHARS_PER_TOKEN
                fitted = (text + "\n\n") * math.ceil(chars / (len(text) + 2))
                fitted = fitted[:chars]
            out.append(p.model_copy(update={"prompt": fitted, "turns": None}))
            continue
        if tokenize is not None:
            n = len(tokenize(text))
            if n > max_tokens:
                dropped += 1
                continue
            counts.append(n)
        out.append(p)
    if input_len is not None and tokenize is None:
        notes.append(
            f"--input-len {input_len}: no tokenizer on this server, prompts cut/repeated to "
            f"{input_len * CHARS_PER_TOKEN} characters (about {input_len} tokens)"
        )
    if dropped:
        notes.append(f"{dropped} of {len(prompts)} prompts dropped: longer than {max_tokens} tokens")
    if not out:
        raise VelobenchError(
            f"no prompt fits: all {len(prompts)} are longer than {max_tokens} tokens "
            "(raise --ctx-size, lower --output-len, or use --input-len)"
        )
    return out, (counts if tokenize is not None else None), notes


def prepare_prompts(
    handle: ServerHandle, cfg: RunConfig, opts: LoadOptions, prompts: Sequence[Prompt]
) -> tuple[list[Prompt], list[int] | None, list[str]]:
    """`fit_prompts` with the server's tokenizer where it has one (else without)."""
    ctx = cfg.max_model_len or cfg.ctx_size if cfg.engine is EngineName.VLLM else cfg.ctx_size
    max_tokens = ctx - cfg.n_predict - (CHAT_TEMPLATE_MARGIN if cfg.chat else 0) - 1
    tok = Tokenizer(handle)
    try:
        tok.tokenize("probe")
        have = True
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        have = False
    try:
        return fit_prompts(
            prompts,
            tokenize=tok.tokenize if have else None,
            detokenize=tok.detokenize if have else None,
            input_len=opts.input_len,
            max_tokens=max_tokens,
        )
    except httpx.HTTPError as exc:
        raise VelobenchError(f"{handle.name} failed to tokenize a prompt: {exc}") from exc
    finally:
        tok.close()


def stream_request(handle: ServerHandle, cfg: RunConfig, prompt: Prompt) -> StreamRequest:
    """One load request: the prompt (chat: as its first user turn), -n tokens, ignore_eos."""
    chat = handle.endpoint == "chat"
    return StreamRequest(
        endpoint=handle.endpoint,
        prompt=chat_messages(prompt) if chat else prompt.prompt,
        max_tokens=cfg.n_predict,
        model=handle.model,
        temperature=cfg.temp,
        seed=cfg.seed,
        ignore_eos=True,
        extra=handle.extra_body,
    )


# --------------------------------------------------------------------------- one mode


def session_info(handle: ServerHandle) -> SessionInfo:
    s = handle.process
    return SessionInfo(
        url=display_url(handle.base_url),
        command=s.command if s else None,
        log=str(s.log_path) if s else None,
        ready_s=s.ready_s if s else None,
        server_version=handle.version,
        extra={**({"model": handle.model} if handle.model else {}), **handle.facts},
    )


def died(handle: ServerHandle, where: str) -> VelobenchError | None:
    """The one-line error for a server of ours that has exited (`proc.server_exited`), else None."""
    s = handle.process
    return None if s is None else s.died(f"during {where}", name=handle.name, wait_s=0)


def sender(
    client: AsyncHttpClient, handle: ServerHandle, cfg: RunConfig, zero: float, where: str
) -> Callable[[int, Prompt], Awaitable[RequestTiming]]:
    """`send` for run_load: stream one request (times from `zero`); a failed request whose server
    (ours) has exited raises the one-line error, which stops the level at once."""

    async def send(index: int, prompt: Prompt) -> RequestTiming:
        res = await client.stream(stream_request(handle, cfg, prompt), zero=zero, raise_errors=False)
        if res.timing.error is not None and handle.process is not None:
            for _ in range(int(DIED_CHECK_S / 0.1)):
                dead = died(handle, where)
                if dead is not None:
                    raise dead
                await asyncio.sleep(0.1)
        return res.timing

    return send


LevelDone = Callable[[LoadPlan, LoadRun, Samples | None, Samples | None, str | None, str, float], bool]


def connections(opts: LoadOptions) -> int | None:
    """The most in flight at any level: the largest concurrency (the server's slots), or the cap."""
    return opts.slots if opts.profile == "concurrency" else opts.max_concurrency


def open_client(handle: ServerHandle, cfg: RunConfig, opts: LoadOptions) -> AsyncHttpClient:
    return AsyncHttpClient(
        handle.base_url, api_key=handle.api_key, max_connections=connections(opts), **client_timeouts(cfg)
    )


async def warm_up(
    client: AsyncHttpClient, handle: ServerHandle, cfg: RunConfig, mode: Mode, prompts: Sequence[Prompt]
) -> None:
    """The warm-up request(s) of one server, not recorded; a failed one is one line."""
    for w in range(cfg.warmup or 0):
        res = await client.stream(stream_request(handle, cfg, prompts[w % len(prompts)]), raise_errors=False)
        if res.timing.error is not None:
            dead = died(handle, f"the {mode} warm-up request")
            raise dead or VelobenchError(f"the {mode} warm-up request failed: {res.timing.error}")


async def run_level(
    client: AsyncHttpClient,
    handle: ServerHandle,
    cfg: RunConfig,
    opts: LoadOptions,
    mode: Mode,
    p: LoadPlan,
    prompts: Sequence[Prompt],
    on_level: LevelDone,
) -> tuple[bool, bool]:
    """One level against one server, stored by `on_level`; (interrupted, stop this mode)."""
    before, why = await client.metrics_status()
    started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    started = time.monotonic()
    zero = time.perf_counter()
    where = f"the {mode} run at {opts.unit} {p.level():g}"
    if shares(p, opts.generator_procs) > 1:  # else this process, as with --generator-procs 1
        run = await run_procs(
            HttpOpener(handle.base_url, handle.api_key, client_timeouts(cfg)),
            [Sendable(q.id, stream_request(handle, cfg, q)) for q in prompts],
            p,
            opts.generator_procs,
            grace_s=opts.grace_s,
            watch=lambda: died(handle, where),
        )
    else:
        run = await run_load(
            sender(client, handle, cfg, zero, where), prompts, p, zero=zero, grace_s=opts.grace_s
        )
    after, why_after = await client.metrics_status()
    stop = on_level(p, run, before, after, why or why_after, started_at, started)
    return run.interrupted, stop


async def run_mode(
    handle: ServerHandle,
    cfg: RunConfig,
    opts: LoadOptions,
    mode: Mode,
    plans: Iterable[LoadPlan],
    prompts: Sequence[Prompt],
    on_level: LevelDone,
) -> bool:
    """Warm-up, then every level against one server; True if interrupted (Ctrl-C) mid-level.

    `on_level(plan, run, before, after, metrics_note, started_at, started)` stores a level and
    returns True to stop the sweep. `plans` may be lazy (an SLO search picks each level from the
    one before: `Sweep.searched`). A server of ours that exits makes `send` raise, which ends the
    level at once (run_load cancels the rest) and propagates.
    """
    async with open_client(handle, cfg, opts) as client:
        await warm_up(client, handle, cfg, mode, prompts)
        for p in plans:
            interrupted, stop = await run_level(client, handle, cfg, opts, mode, p, prompts, on_level)
            if interrupted:
                return True
            if stop:
                break
    return False


async def run_interleaved(
    handles: Mapping[Mode, ServerHandle],
    cfg: RunConfig,
    opts: LoadOptions,
    plans: Sequence[LoadPlan],
    prompts: Sequence[Prompt],
    on_level: Mapping[Mode, LevelDone],
) -> bool:
    """Every level against both servers, up side by side, the arms in `level_order` (ABBA); True
    if interrupted (Ctrl-C) mid-level. Each server is warmed up once, before the first level.
    A mode whose `on_level` says stop (saturated) runs no further level; the other goes on alone."""
    modes = list(handles)
    async with contextlib.AsyncExitStack() as stack:
        clients = {m: await stack.enter_async_context(open_client(handles[m], cfg, opts)) for m in modes}
        for m in modes:
            await warm_up(clients[m], handles[m], cfg, m, prompts)
        active = set(modes)
        for i, p in enumerate(plans):
            for m in level_order(i, modes):
                if m not in active:
                    continue
                interrupted, stop = await run_level(
                    clients[m], handles[m], cfg, opts, m, p, prompts, on_level[m]
                )
                if interrupted:
                    return True
                if stop:
                    active.discard(m)
            if not active:
                break
    return False


# --------------------------------------------------------------------------- the whole run


def execute_load(
    cfg: RunConfig,
    opts: LoadOptions,
    output: Path,
    console: Console,
    search: SearchOptions | None = None,
) -> LoadReport:
    """Prepare, run every mode's levels, print the report; return it (see the module docstring).
    With `search` (--find-max-rate), each mode's levels are its SLO search's (`load.slo`)."""
    from velobench.load.render import print_load_config, print_load_report
    from velobench.runner.run import prepare

    cfg = check_engine(cfg).model_copy(update={"ceiling": False})
    cfg, engine, prompts, notes = prepare(cfg, output, hints=OWNED_HINTS)
    if not isinstance(engine, ServesHttp):
        raise VelobenchError(f"the {cfg.engine} engine cannot serve concurrent requests")
    report = LoadReport(
        config=cfg,
        load=opts,
        environment=environment.capture(),
        binaries=engine.binaries(),
        prompt_ids=[p.id for p in prompts],
        records_file=records_file(output).name,
        warnings=list(notes),
    )
    if search is not None:
        report.max_rate = MaxRateResult(options=search)
    modes = run_modes(cfg)
    kind, why = load_schedule(cfg, engine, modes, search)
    report.schedule = kind.value
    if why is not None:
        report.warnings.append(ResultWarning(code=WarningCode.SCHEDULE_BLOCKED, params={"reason": why}))
    print_load_config(console, report, len(prompts))
    sweep = Sweep(report, output, console)
    with sweep.life:
        if kind is Schedule.INTERLEAVED:
            sweep.run_both(engine, modes, prompts)
        else:
            for name in modes:
                plans = None if search is None else sweep.searched(MaxRateSearch(search, name))
                prompts = sweep.run_mode(engine, name, prompts, plans=plans)
        sweep.complete()
    print_load_report(console, report)
    console.print(f"\nResults saved to: {output} (raw requests: {sweep.records_path})")
    return report


SEARCH_BLOCKED = (
    "the SLO search picks each mode's next level from that mode's last one, so the arms run "
    "different levels and there is no pair of levels to alternate"
)


def load_schedule(
    cfg: RunConfig, engine: Engine, modes: Sequence[Mode], search: SearchOptions | None
) -> tuple[Schedule, str | None]:
    """The schedule a load run uses: `runner.loop.choose_schedule`'s (interleaved where asked and
    both servers can be up at once), except under an SLO search, which stays blocked and says why."""
    kind, why = choose_schedule(cfg, engine, modes)
    if kind is Schedule.INTERLEAVED and search is not None:
        return Schedule.BLOCKED, SEARCH_BLOCKED
    return kind, why


def level_result(
    mode: str,
    p: LoadPlan,
    run: LoadRun,
    before: Samples | None,
    after: Samples | None,
    note: str | None,
    started_at: str,
    position: int | None = None,
    started_s: float | None = None,
) -> LoadLevel:
    """One finished (or interrupted) level, with the speculative counters' delta over it where the
    server's /metrics has them (else the note that says why not), and the generator's own lag."""
    delta = None
    if mode == "speculative" and before is not None and after is not None:
        try:
            delta = spec_decode_delta(before, after)
        except ValueError as exc:
            note = str(exc)
        if delta is None and note is None:
            note = "the server's /metrics has no speculative-decoding counters"
    return LoadLevel(
        mode=mode,
        level=p.level(),
        plan=p,
        issued=run.issued,
        finished=len(run.records),
        cancelled=run.cancelled,
        interrupted=run.interrupted,
        max_in_flight=run.max_in_flight,
        wall_s=run.wall_s,
        started_at=started_at,
        position=position,
        started_s=started_s,
        spec_decode=delta,
        metrics_note=note,
        lag=generator_lag(
            run.records,
            run.loop_lag_s,
            probe_s=run.probe_s,
            cpu_s=run.cpu_s,
            wall_s=run.cpu_wall_s,
            process_cpu_s=run.process_cpu_s,
        ),
    )


class Sweep:
    """One load run's state across modes and levels: the result, its raw records, where the sweep
    stops, and its lifecycle (`runner.lifecycle`: saved after every level, the records JSONL first)."""

    def __init__(self, report: LoadReport, output: Path, console: Console) -> None:
        self.report = report
        self.opts = report.load
        self.output = output
        self.console = console
        self.records_path = records_file(output)
        self.records: Records = {}
        self.started = time.monotonic()
        self.mode_started = self.started
        self.stop_at: float | None = None  # saturated here: later modes run no higher level
        self.position = 0  # levels measured so far, both modes (each level's place in the schedule)
        self.clock0: float | None = None  # the first level's start
        self.stopped: set[str] = set()  # interleaved: modes saturated before their last level
        self.life = Lifecycle(
            report, output, "level", count=self.levels, kept=self.kept, rescue=self.rescue, on_end=self.ended
        )

    def levels(self) -> int:
        return sum(len(m.levels) for m in self.report.modes.values())

    def kept(self) -> str:
        """What is kept: the interrupted level counts too (its finished requests), so not "finished"."""
        cut = any(lvl.interrupted for m in self.report.modes.values() for lvl in m.levels)
        return f"{self.levels()} level(s)" if cut else units(self.levels(), "level")

    def rescue(self, path: Path) -> None:
        """Everything to a rescue copy: the result beside its own records JSONL, every level's records."""
        records = records_file(path)
        records.unlink(missing_ok=True)
        for (mode, level), recs in self.records.items():
            append_records(records, mode, self.opts.profile, level, recs)
        save(self.report.model_copy(update={"records_file": records.name}), path)

    def ended(self, ending: Ending) -> None:
        self.report.wall_s = time.monotonic() - self.started
        if self.report.max_rate is not None and ending == "interrupted":
            for arm in self.report.max_rate.arms.values():
                if arm.ended == "running":
                    arm.ended = "interrupted"
        if ending == "interrupted":
            self.report.warnings.append(
                ResultWarning(code=WarningCode.INTERRUPTED, params={"kept": "levels"})
            )

    def run_mode(
        self, engine: Engine, name: Mode, prompts: list[Prompt], *, plans: Iterable[LoadPlan] | None = None
    ) -> list[Prompt]:
        """Every level (up to where a saturated mode stopped; or `plans`, e.g. a search's) against
        one server; the prompts as fitted by the first mode's server. Ctrl-C mid-level is
        KeyboardInterrupt, after that level is kept."""
        cfg, opts, console = self.report.config, self.opts, self.console
        todo = plans
        if todo is None:
            todo = [p for p in level_plans(opts) if self.stop_at is None or p.level() <= self.stop_at]
        mres = LoadMode(mode=name, binary=engine.binary(name), slots=opts.slots)
        first = not self.report.modes
        self.report.modes[name] = mres
        console.print(f"\nStarting {name} ({engine.binary(name)}, {opts.slots} slot(s)) ...")
        self.mode_started = time.monotonic()
        with cast(ServesHttp, engine).serve(name, slots=opts.slots) as handle:
            mres.session = session_info(handle)
            if first:
                prompts = self.fit(handle, prompts)
            ready = (
                f" (ready in {handle.process.ready_s:.1f} s)"
                if handle.process and handle.process.ready_s
                else ""
            )
            console.print(f"  {handle.name} at {display_url(handle.base_url)}{ready}")
            on_level = functools.partial(self.level_done, mres)
            interrupted = asyncio.run(run_mode(handle, cfg, opts, name, todo, prompts, on_level))
        if interrupted:
            raise KeyboardInterrupt
        return prompts

    def run_both(self, engine: Engine, modes: Sequence[Mode], prompts: list[Prompt]) -> None:
        """Every level against every mode's server, all up side by side (each on its own port),
        the arms alternating level by level in ABBA order (`load.plan.level_order`). The servers
        start in order and stop in reverse however this ends (Ctrl-C, a crash, a server that
        dies); a saturated mode stops and the other goes on alone. Ctrl-C mid-level is
        KeyboardInterrupt, after that level is kept."""
        from velobench.load.render import order_text

        cfg, opts, console = self.report.config, self.opts, self.console
        results: dict[str, LoadMode] = {
            m: LoadMode(mode=m, binary=engine.binary(m), slots=opts.slots) for m in modes
        }
        self.report.modes.update(results)
        self.mode_started = time.monotonic()
        with contextlib.ExitStack() as stack:
            handles: dict[Mode, ServerHandle] = {}
            for m in modes:
                console.print(f"\nStarting {m} ({engine.binary(m)}, {opts.slots} slot(s)) ...")
                handles[m] = h = stack.enter_context(cast(ServesHttp, engine).serve(m, slots=opts.slots))
                results[m].session = session_info(h)
                ready = f" (ready in {h.process.ready_s:.1f} s)" if h.process and h.process.ready_s else ""
                console.print(f"  {h.name} at {display_url(h.base_url)}{ready}")
            prompts = self.fit(handles[modes[0]], prompts)
            console.print(f"\nSchedule: {order_text(len(opts.levels), modes)}")
            on_level = {m: functools.partial(self.level_done, results[m]) for m in modes}
            plans = level_plans(opts)
            interrupted = asyncio.run(run_interleaved(handles, cfg, opts, plans, prompts, on_level))
        if interrupted:
            raise KeyboardInterrupt

    def searched(self, search: MaxRateSearch) -> Iterator[LoadPlan]:
        """The levels of one mode's SLO search, one at a time: each chosen from the goodput of
        the level before (`load.slo`), which is recorded in the result's `max_rate` and saved."""
        result = self.report.max_rate
        assert result is not None
        mode = search.arm.mode
        result.arms[mode] = search.arm
        while (x := search.next_level()) is not None:
            yield level_plans(self.opts.model_copy(update={"levels": [x]}))[0]
            lvl = self.report.level(mode, x)
            summary = lvl.summary if lvl is not None and not lvl.interrupted else None
            step = search.record(x, summary.goodput if summary is not None else None)
            self.opts.levels = sorted({s.level for a in result.arms.values() for s in a.steps})
            share = "-" if step.share is None else f"{step.share:.0%}"
            verdict = "meets" if step.met else "misses"
            self.console.print(f"  search: {self.opts.unit} {x:g} {verdict} the SLO (goodput {share})")
            self.life.save()
        self.console.print(f"  [bold]{search.arm.text}[/bold]")

    def search_done(self) -> None:
        """Every arm searched: the ratio of the maxima; an SLO no arm meets at any level is one
        line (VelobenchError, the result kept) naming the best level found."""
        result = self.report.max_rate
        if result is None:
            return
        base, cand = result.arms.get(BASELINE), result.arms.get(CANDIDATE)
        if base is not None and cand is not None:
            result.ratio = compare_arms(base, cand, result.options.kind)
        none = [a for a in result.arms.values() if a.ended == "none-met"]
        if none and len(none) == len(result.arms):
            what = "; ".join(a.text for a in none)
            raise VelobenchError(
                f"no level meets the SLO: {what}: loosen --slo, lower --goodput-min or --search-start"
            )

    def fit(self, handle: ServerHandle, prompts: list[Prompt]) -> list[Prompt]:
        """The prompts fitted by the first server's tokenizer, with their notes in the result."""
        prompts, self.report.prompt_tokens, notes = prepare_prompts(
            handle, self.report.config, self.opts, prompts
        )
        self.report.prompt_ids = [p.id for p in prompts]
        self.report.warnings += [
            ResultWarning(code=WarningCode.SESSION_NOTE, params={"note": n}) for n in notes
        ]
        for n in notes:
            self.console.print(f"  note: {n}")
        return prompts

    def level_done(
        self,
        mode: LoadMode,
        p: LoadPlan,
        run: LoadRun,
        before: Samples | None,
        after: Samples | None,
        note: str | None,
        started_at: str,
        started: float,
    ) -> bool:
        """`run_mode`'s `on_level`: the level recorded with its place in the schedule and its start
        (from the first level's), and saved (its records appended first); True to stop this mode
        (saturated)."""
        from velobench.load.render import progress_line
        from velobench.report.warnings import text as warning_text

        self.position += 1
        self.clock0 = started if self.clock0 is None else self.clock0
        lvl = level_result(
            mode.mode, p, run, before, after, note, started_at, self.position, started - self.clock0
        )
        if not self.life.written:
            self.records_path.unlink(missing_ok=True)  # a previous run's records under this name
        mode.levels.append(lvl)
        self.records[(mode.mode, lvl.level)] = list(run.records)
        recompute(self.report, self.records)
        mode.wall_s = time.monotonic() - self.mode_started
        self.report.wall_s = time.monotonic() - self.started
        self.life.save(
            also=functools.partial(
                append_records, self.records_path, mode.mode, self.opts.profile, lvl.level, run.records
            )
        )
        self.console.print(progress_line(self.report, lvl))
        for w in lvl.warnings:  # velobench itself fell behind: say so while the sweep runs
            self.console.print(f"  [yellow]warning[/yellow] ({w.code.value}): {warning_text(w)}")
        return self.saturated(mode, lvl.level, run.interrupted)

    def saturated(self, mode: LoadMode, level: float, interrupted: bool) -> bool:
        """Whether a sweep stops at `level` (saturated there, --stop-on-saturation); said and saved."""
        opts, sat = self.opts, mode.saturation
        if not (opts.sweep and opts.stop_on_saturation and sat is not None and sat.level == level):
            return False
        if interrupted:
            return False
        if self.report.schedule == "interleaved":
            return self.saturated_alone(mode, level, sat.text)
        higher = [x for x in opts.levels if x > level and (self.stop_at is None or x <= self.stop_at)]
        self.stop_at = level
        if higher:
            self.report.stopped_early = f"{sat.text}: the sweep stops there ({opts.unit} {', '.join(f'{x:g}' for x in higher)} not run)"
            self.console.print(f"  [yellow]saturated[/yellow]: {self.report.stopped_early}")
            self.life.save()
        return True

    def saturated_alone(self, mode: LoadMode, level: float, text: str) -> bool:
        """Interleaved: the saturated mode stops at `level`; any other mode still running its levels
        goes on alone (said in `stopped_early`, saved)."""
        opts = self.opts
        self.stopped.add(mode.mode)
        higher = [x for x in opts.levels if x > level]
        if higher:
            others = [m for m in self.report.modes if m != mode.mode and m not in self.stopped]
            rest = f"; {' and '.join(others)} goes on alone" if others else ""
            line = f"{text}: {mode.mode} stops there ({opts.unit} {', '.join(f'{x:g}' for x in higher)} not run for it){rest}"
            prev = self.report.stopped_early
            self.report.stopped_early = line if prev is None else f"{prev}; then {line}"
            self.console.print(f"  [yellow]saturated[/yellow]: {line}")
            self.life.save()
        return True

    def complete(self) -> None:
        """Every mode done: the no-acceptance note, the final analysis, status "complete", saved."""
        report = self.report
        report.wall_s = time.monotonic() - self.started
        for m in report.modes.values():
            for lvl in m.levels:
                if lvl.metrics_note and m.mode == "speculative":
                    report.warnings.append(
                        ResultWarning(
                            code=WarningCode.SESSION_NOTE,
                            params={
                                "note": f"no acceptance at {self.opts.unit} {lvl.level:g}: {lvl.metrics_note}"
                            },
                        )
                    )
                    break
        recompute(report, self.records)
        self.search_done()
        self.life.complete()
