"""`velobench load`: vanilla and speculative servers under the same load, level by level.

    prepare (models, engine, prompts: every check before anything starts)
    for mode in (vanilla, speculative):               # all levels of one mode, then the next
        with engine.serve(mode, slots=S):              # one server per mode, S = the most in flight
            prompts fitted once (first server): cut/repeated to --input-len, or too long dropped
            warm-up request(s), not recorded
            for level in levels:                       # ascending
                GET /metrics → run_load (asyncio, AsyncHttpClient) → GET /metrics
                records → JSONL; summaries, comparisons, crossover → result (atomic)
                saturated (sweep)? → stop this mode; later modes run no higher level

Both modes run the same levels with the same plans (open-loop schedules drawn once from the
seed) and the same prompts in the same order. Speculative counters are the /metrics deltas
over each level (every phase, warm-up and cool-down requests included).

Faults: bad input fails in `prepare`/`load_options`, before any server starts. Ctrl-C stops
issuing at once, waits up to `grace_s` for the requests in flight, keeps every finished level
(and the finished requests of the interrupted one), saves, and raises `Interrupted`. A server
that dies mid-level ends the run with one line naming its exit code and log; finished levels
are kept and the server context has already reaped it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from velobench import engines
from velobench.engines.base import ServerHandle, ServesHttp
from velobench.engines.http_client import AsyncHttpClient, StreamRequest, display_url
from velobench.engines.http_session import client_timeouts
from velobench.engines.metrics import Samples, spec_decode_delta
from velobench.errors import Interrupted, VelobenchError
from velobench.load.generator import LoadRun, run_load
from velobench.load.plan import level_plans
from velobench.load.recompute import analyze
from velobench.proc import log_tail
from velobench.prompts import Prompt, chat_messages
from velobench.results.config import EngineName, RunConfig
from velobench.results.load import (
    LoadLevel,
    LoadMode,
    LoadOptions,
    LoadPlan,
    LoadReport,
    Records,
    append_records,
)
from velobench.results.schema import Mode, ResultWarning, SessionInfo, WarningCode
from velobench.results.store import save
from velobench.results.timing import RequestTiming
from velobench.telemetry import environment

CHARS_PER_TOKEN = 4  # --input-len without a tokenizer: about this many characters per token
CHAT_TEMPLATE_MARGIN = 64  # tokens a chat template may add around a prompt
DIED_CHECK_S = 1.0  # after a failed request, how long to watch for the server's exit


# -x flags velobench load sets itself for its own reason (`validate.check_engine_args`).
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

    `auto` is the first of SERVER_ENGINES that can run the configuration (installed or not: a
    missing llama-server is then named, with how to get it, when the engine is made).
    """
    if cfg.engine is EngineName.CLI:
        raise VelobenchError(
            "velobench load drives a server: use --engine server (llama-server), vllm, or remote (--server-url)"
        )
    if cfg.engine is not EngineName.AUTO:
        engines.choose(cfg)  # the engine's own one-line reason if it cannot run cfg
        return cfg
    reasons = {}
    for name in SERVER_ENGINES:
        reason = engines.engine_class(name).can_run(cfg)
        if reason is None:
            return cfg.model_copy(update={"engine": name})
        reasons[name] = reason
    why = reasons[EngineName.REMOTE if cfg.server_url or cfg.baseline_url else EngineName.SERVER]
    raise VelobenchError(f"velobench load drives a server, and no server engine can run this: {why}")


# --------------------------------------------------------------------------- prompts


class Tokenizer:
    """The server's own tokenizer (`POST /tokenize`, `/detokenize`: llama-server and vLLM)."""

    def __init__(self, handle: ServerHandle) -> None:
        self.llama = handle.name == "llama-server"
        self.model = handle.model
        headers = {"Authorization": f"Bearer {handle.api_key}"} if handle.api_key else {}
        self.http = httpx.Client(base_url=handle.base_url, headers=headers, timeout=30.0)

    def close(self) -> None:
        self.http.close()

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        if not self.llama:
            body = {"model": self.model, **body}
        r = self.http.post(path, json=body)
        r.raise_for_status()
        return r.json()

    def tokenize(self, text: str) -> list[int]:
        body = (
            {"content": text, "add_special": False}
            if self.llama
            else {"prompt": text, "add_special_tokens": False}
        )
        tokens = self._post("/tokenize", body)["tokens"]
        return [int(t["id"]) if isinstance(t, dict) else int(t) for t in tokens]

    def detokenize(self, ids: Sequence[int]) -> str:
        out = self._post("/detokenize", {"tokens": list(ids)})
        return str(out.get("content", out.get("prompt", "")))


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
    """The one-line error for a server of ours that has exited, else None."""
    s = handle.process
    if s is None or s.alive():
        return None
    rc = s.process.returncode if s.process is not None else None
    return VelobenchError(
        f"{handle.name} exited with code {rc} during {where}: {log_tail(s.log_path)} (log: {s.log_path})"
    )


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


LevelDone = Callable[[LoadPlan, LoadRun, Samples | None, Samples | None, str | None, str], bool]


async def run_mode(
    handle: ServerHandle,
    cfg: RunConfig,
    opts: LoadOptions,
    mode: Mode,
    plans: Sequence[LoadPlan],
    prompts: Sequence[Prompt],
    on_level: LevelDone,
) -> bool:
    """Warm-up, then every level against one server; True if interrupted (Ctrl-C) mid-level.

    `on_level(plan, run, before, after, metrics_note, started_at)` stores a level and returns
    True to stop the sweep. A server of ours that exits makes `send` raise, which ends the level
    at once (run_load cancels the rest) and propagates.
    """
    slots = [p.slots() for p in plans]
    conns = None if any(s is None for s in slots) else max((s or 1) for s in slots)
    async with AsyncHttpClient(
        handle.base_url, api_key=handle.api_key, max_connections=conns, **client_timeouts(cfg)
    ) as client:
        for w in range(cfg.warmup or 0):
            res = await client.stream(
                stream_request(handle, cfg, prompts[w % len(prompts)]), raise_errors=False
            )
            if res.timing.error is not None:
                dead = died(handle, f"the {mode} warm-up request")
                raise dead or VelobenchError(f"the {mode} warm-up request failed: {res.timing.error}")
        for p in plans:
            before, why = await client.metrics_status()
            started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            zero = time.perf_counter()
            send = sender(client, handle, cfg, zero, f"the {mode} run at {opts.unit} {p.level():g}")
            run = await run_load(send, prompts, p, zero=zero, grace_s=opts.grace_s)
            after, why_after = await client.metrics_status()
            stop = on_level(p, run, before, after, why or why_after, started_at)
            if run.interrupted:
                return True
            if stop:
                break
    return False


# --------------------------------------------------------------------------- the whole run


def execute_load(cfg: RunConfig, opts: LoadOptions, output: Path, console: Console) -> LoadReport:
    """Prepare, run every mode's levels, print the report; return it (see the module docstring)."""
    from velobench.load.render import print_load_config, print_load_report, progress_line
    from velobench.runner.run import prepare

    cfg = check_engine(cfg).model_copy(update={"ceiling": False})
    cfg, engine, prompts, notes = prepare(cfg, output)
    if not isinstance(engine, ServesHttp):
        raise VelobenchError(f"the {cfg.engine} engine cannot serve concurrent requests")
    plans = level_plans(opts)
    env = environment.capture()
    records_path = records_file(output)
    report = LoadReport(
        config=cfg,
        load=opts,
        environment=env,
        binaries=engine.binaries(),
        prompt_ids=[p.id for p in prompts],
        records_file=records_path.name,
        warnings=list(notes),
    )
    print_load_config(console, report, len(prompts))
    modes: list[Mode] = []
    if not cfg.skip_vanilla:
        modes.append("vanilla")
    if not cfg.skip_speculative:
        modes.append("speculative")
    records: Records = {}
    started = time.monotonic()
    written = False
    stop_at: float | None = None

    def finish_level(
        mode: LoadMode,
        p: LoadPlan,
        run: LoadRun,
        before: Samples | None,
        after: Samples | None,
        note: str | None,
        started_at: str,
    ) -> bool:
        nonlocal written, stop_at
        level = p.level()
        delta = None
        if mode.mode == "speculative" and before is not None and after is not None:
            try:
                delta = spec_decode_delta(before, after)
            except ValueError as exc:
                note = str(exc)
            if delta is None and note is None:
                note = "the server's /metrics has no speculative-decoding counters"
        lvl = LoadLevel(
            mode=mode.mode,
            level=level,
            plan=p,
            issued=run.issued,
            finished=len(run.records),
            cancelled=run.cancelled,
            interrupted=run.interrupted,
            max_in_flight=run.max_in_flight,
            wall_s=run.wall_s,
            started_at=started_at,
            spec_decode=delta,
            metrics_note=note,
        )
        if written is False:
            records_path.unlink(missing_ok=True)
        mode.levels.append(lvl)
        records[(mode.mode, level)] = list(run.records)
        append_records(records_path, mode.mode, opts.profile, level, run.records)
        analyze(report, records)
        mode.wall_s = time.monotonic() - mode_started
        report.wall_s = time.monotonic() - started
        save(report, output)
        written = True
        console.print(progress_line(report, lvl))
        sat = mode.saturation
        if (
            opts.sweep
            and opts.stop_on_saturation
            and sat is not None
            and sat.level == level
            and not run.interrupted
        ):
            higher = [x for x in opts.levels if x > level and (stop_at is None or x <= stop_at)]
            stop_at = level
            if higher:
                report.stopped_early = f"{sat.text}: the sweep stops there ({opts.unit} {', '.join(f'{x:g}' for x in higher)} not run)"
                console.print(f"  [yellow]saturated[/yellow]: {report.stopped_early}")
                save(report, output)
            return True
        return False

    mode_started = started
    try:
        for name in modes:
            todo = [p for p in plans if stop_at is None or p.level() <= stop_at]
            mres = LoadMode(mode=name, binary=engine.binary(name), slots=opts.slots)
            report.modes[name] = mres
            console.print(f"\nStarting {name} ({engine.binary(name)}, {opts.slots} slot(s)) ...")
            mode_started = time.monotonic()
            with engine.serve(name, slots=opts.slots) as handle:
                mres.session = session_info(handle)
                if name == modes[0]:
                    prompts, report.prompt_tokens, prompt_notes = prepare_prompts(handle, cfg, opts, prompts)
                    report.prompt_ids = [p.id for p in prompts]
                    report.warnings += [
                        ResultWarning(code=WarningCode.SESSION_NOTE, params={"note": n}) for n in prompt_notes
                    ]
                    for n in prompt_notes:
                        console.print(f"  note: {n}")
                ready = (
                    f" (ready in {handle.process.ready_s:.1f} s)"
                    if handle.process and handle.process.ready_s
                    else ""
                )
                console.print(f"  {handle.name} at {display_url(handle.base_url)}{ready}")

                def on_level(
                    p: LoadPlan,
                    run: LoadRun,
                    b: Samples | None,
                    a: Samples | None,
                    note: str | None,
                    at: str,
                    mres: LoadMode = mres,
                ) -> bool:
                    return finish_level(mres, p, run, b, a, note, at)

                interrupted = asyncio.run(run_mode(handle, cfg, opts, name, todo, prompts, on_level))
            if interrupted:
                raise KeyboardInterrupt
    except KeyboardInterrupt as exc:
        report.status = "interrupted"
        report.wall_s = time.monotonic() - started
        report.warnings.append(ResultWarning(code=WarningCode.INTERRUPTED, params={"kept": "levels"}))
        kept = sum(len(m.levels) for m in report.modes.values())
        if written:
            save(report, output)
        raise Interrupted(
            f"interrupted; {kept} level(s) kept in {output} (records: {records_path})"
            if written
            else "interrupted; nothing finished"
        ) from exc
    except VelobenchError as exc:
        report.status = "failed"
        report.error = str(exc)
        report.wall_s = time.monotonic() - started
        if written:
            save(report, output)
            kept = sum(len(m.levels) for m in report.modes.values())
            raise VelobenchError(f"{exc} ({kept} finished level(s) kept in {output})") from exc
        raise
    report.status = "complete"
    report.wall_s = time.monotonic() - started
    for m in report.modes.values():
        for lvl in m.levels:
            if lvl.metrics_note and m.mode == "speculative":
                report.warnings.append(
                    ResultWarning(
                        code=WarningCode.SESSION_NOTE,
                        params={"note": f"no acceptance at {opts.unit} {lvl.level:g}: {lvl.metrics_note}"},
                    )
                )
                break
    analyze(report, records)
    save(report, output)
    print_load_report(console, report)
    console.print(f"\nResults saved to: {output} (raw requests: {records_path})")
    return report
