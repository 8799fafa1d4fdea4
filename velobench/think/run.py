"""`velobench think` from options to a saved result.

    prepare   the think configuration (defaults, --config, command-line overrides), the test
              mode, the problems, the models and the engine's programs (or, for running
              servers, what they speak): every check that can fail on bad input, before any
              server starts
    execute   both servers started once for the whole benchmark (the large model's from -m,
              the small model's from -d; only the large one for --test-mode large) with prompt
              caching on → `runner.think.ThinkLoop` over them → the result saved atomically
              after every run → the console summary

Servers velobench starts are the engines' own (`engines.make(...).serve(...)`): one engine
configuration per model, run as that engine's vanilla server (no speculation: here the two
models take turns in the text, they do not draft for each other). A server that dies, a failed
request or Ctrl-C ends the benchmark with one line; every finished run is kept and every server
stopped.

Why one module over 400 lines: it is `velobench think` end to end (prepare, the two servers,
the loop on the shared lifecycle), read top to bottom as the command runs; the loop, backends,
analysis and rendering are already their own modules.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console

from velobench import engines
from velobench.engines.base import Engine, ServesHttp
from velobench.engines.dialects import Dialect
from velobench.engines.http_client import HttpClient, RequestFailed, display_url
from velobench.engines.llama_args import N_MAX_FLAGS, N_MIN_FLAGS, P_MIN_FLAGS
from velobench.engines.vllm import VllmEngine
from velobench.errors import VelobenchError
from velobench.prompts import Prompt, load_prompts, prompts_dir, read_jsonl
from velobench.results import config
from velobench.results.config import EngineName
from velobench.results.schema import BinaryInfo
from velobench.results.think import (
    Role,
    ServerRecord,
    TestMode,
    ThinkConfig,
    ThinkEngine,
    ThinkOptions,
    ThinkProblem,
    ThinkReport,
    ThinkRun,
    ThinkSetup,
)
from velobench.runner.lifecycle import Lifecycle
from velobench.runner.preflight import check_model_arg, check_output
from velobench.runner.run import fetch_model
from velobench.telemetry import environment
from velobench.think.analysis import refresh, trigger_stop_strings
from velobench.think.backends import HttpThinkBackend, ThinkServer, answers_apply_template
from velobench.think.config import load_think_config, with_overrides
from velobench.think.console import render_think_summary
from velobench.think.loop import Problem, ThinkLoop, first_problems, parse_test_mode
from velobench.validation import one_line

BUILTIN = "builtin"
PROMPT_ROOM = 1024  # default --ctx-size = --max-tokens + this (the chat-templated problem)
DEFAULT_SERVER_TIMEOUT_S = {"server": 300.0, "vllm": 1800.0}
OPENAI_MAX_STOP = 4  # stop strings per request: OpenAI's limit, and vLLM's default


def builtin_problems_path() -> Path:
    """The built-in problems with verified answers (prompts/think/math.jsonl)."""
    return prompts_dir() / "think" / "math.jsonl"


def load_problems(spec: str, num_problems: int | None) -> list[ThinkProblem]:
    """`--prompts SPEC`: builtin[:CATEGORY] (the think problems), gsm8k, aime2025, a JSONL file
    (`prompt`, and `answer` or `reference`), or any prompt set `velobench run` reads; the first
    `num_problems` of them (all when None)."""
    prompts: list[Prompt]
    if spec == BUILTIN or spec.startswith(BUILTIN + ":"):
        prompts = read_jsonl(builtin_problems_path(), source="builtin", default_category="math")
        category = spec.partition(":")[2]
        if category:
            have = sorted({p.category for p in prompts})
            prompts = [p for p in prompts if p.category == category]
            if not prompts:
                raise VelobenchError(
                    f"no built-in think problems of category {category!r}; there are: {', '.join(have)}"
                )
    else:
        prompts = load_prompts(spec)
    chosen = first_problems([Problem(p.id, p.prompt, p.reference) for p in prompts], num_problems)
    sources = {p.id: p.source for p in prompts}
    return [ThinkProblem(id=p.id, text=p.text, reference=p.reference, source=sources[p.id]) for p in chosen]


_CACHING = "velobench think keeps prompt caching on (every request resends the text so far)"
_NO_DRAFT = "velobench think's servers run no draft model (-d is the small model, in its own server)"
# velobench think's own reasons for -x flags its engine owns (`EngineClass.check_options`).
HINTS: dict[str, str] = {
    **dict.fromkeys(("-np", "--parallel"), "velobench think sends each server one request at a time"),
    **dict.fromkeys(("--cache-prompt", "--no-cache-prompt"), _CACHING),
    **dict.fromkeys(("--enable-prefix-caching", "--no-enable-prefix-caching"), _CACHING),
    **dict.fromkeys(("-m", "--model"), "use -m/--large-model and -d/--small-model"),
    **dict.fromkeys(("-md", "--model-draft", *N_MAX_FLAGS, *N_MIN_FLAGS, *P_MIN_FLAGS), _NO_DRAFT),
    "--spec-type": _NO_DRAFT,
    "--speculative-config": _NO_DRAFT,
    "--port": "velobench think picks a free port for each server",
}


def role_config(opts: ThinkOptions, cfg: ThinkConfig, role: Role) -> config.RunConfig:
    """The engine configuration of one model's server: that model alone, vanilla only
    (`skip_speculative`: the engine prepares no speculative server, so it needs no draft model)."""
    large = role == "large"
    return config.build(
        main_model=opts.large_model if large else opts.small_model,
        skip_speculative=True,
        threads=opts.threads,
        ctx_size=opts.ctx_size,
        gpu_layers=opts.gpu_layers if large else opts.gpu_layers_draft,
        extra_args=opts.extra_args,
        engine=EngineName(opts.engine),
        llama_cpp_path=opts.llama_cpp_path,
        server_timeout=opts.server_timeout or DEFAULT_SERVER_TIMEOUT_S.get(opts.engine),
        seed=cfg.sampling.seed if cfg.sampling.seed >= 0 else None,
        vllm_bin=opts.vllm_bin,
        telemetry="off",
    )


def server_dialect(engine: ThinkEngine) -> Dialect:
    """What a server velobench starts speaks: llama-server its own API, vLLM OpenAI's."""
    return "llama" if engine is ThinkEngine.SERVER else "openai"


def max_stop_strings(dialect: Dialect, triggers: list[str]) -> int | None:
    """The stop strings a started server must take per request: any number (llama-server), else
    what the triggers need and at least OpenAI's 4 (vLLM, raised by VLLM_MAX_STOP_STRINGS)."""
    return None if dialect == "llama" else max(OPENAI_MAX_STOP, len(trigger_stop_strings(triggers)))


def server_env(max_stop: int | None) -> dict[str, str]:
    """Variables for one started server's own environment (never velobench's): vLLM reads
    VLLM_MAX_STOP_STRINGS (default 4; the triggers need more)."""
    return {"VLLM_MAX_STOP_STRINGS": str(max_stop)} if max_stop else {}


@dataclass
class RemoteServer:
    url: str
    protocol: Dialect
    model: str | None


def probe_remote(url: str, api_key: str | None, role: Role, name: str | None) -> RemoteServer:
    """What a running server speaks: llama-server's API where POST /apply-template answers, else
    OpenAI completions with the served model (`name`, or the one /v1/models lists)."""
    what = f"the {role} model's server at {display_url(url)}"
    with HttpClient(url, api_key=api_key, connect_timeout_s=5.0, read_timeout_s=30.0) as client:
        llama = answers_apply_template(client)
        try:
            served = client.models()
        except RequestFailed as exc:
            if llama:
                return RemoteServer(url, "llama", name)
            raise VelobenchError(f"cannot reach {what}: {exc}") from exc
    if name:
        if served and name not in served:
            raise VelobenchError(f"{what} serves {', '.join(served)}, not {name}")
        return RemoteServer(url, "llama" if llama else "openai", name)
    if len(served) != 1 and not llama:
        listed = ", ".join(served) or "none"
        flag = "-m" if role == "large" else "-d"
        raise VelobenchError(f"{what} serves {listed}: name the model with {flag}")
    return RemoteServer(url, "llama" if llama else "openai", served[0] if served else None)


@dataclass
class Prepared:
    """Everything checked: what to run, and how to start (or reach) the servers."""

    setup: ThinkSetup
    modes: tuple[TestMode, ...]
    problems: list[ThinkProblem]
    binaries: list[BinaryInfo]
    roles: tuple[Role, ...]
    engines: dict[Role, Engine]
    remote: dict[Role, RemoteServer]
    api_key: str | None


def _options(raw: dict[str, Any]) -> ThinkOptions:
    try:
        return ThinkOptions.model_validate({k: v for k, v in raw.items() if v is not None})
    except ValidationError as exc:
        raise VelobenchError(one_line(exc, option_style=True)) from exc


def prepare(
    raw: dict[str, Any], overrides: dict[str, Any], log_dir: Path, *, output: Path | None = None
) -> Prepared:
    """Check every input and locate every program; nothing starts. `raw`: ThinkOptions fields as
    the command line gave them (None = not given; engine None = remote when URLs are given, else
    server); `overrides`: think_config.with_overrides options; `output`: the result file, checked
    first (a folder, /proc or a read-only place is one line)."""
    if output is not None:
        check_output(output)
    modes = parse_test_mode(str(raw.get("test_mode") or "both"))
    config_file = raw.get("config_file")
    cfg = with_overrides(load_think_config(Path(config_file) if config_file else None), **overrides)
    urls = raw.get("large_url") or raw.get("small_url")
    named = raw.get("engine") or ("remote" if urls else "server")
    try:
        engine = ThinkEngine(named)
    except ValueError:
        raise VelobenchError(
            f"unknown engine {named!r} for velobench think: use server, vllm or remote"
        ) from None
    roles: tuple[Role, ...] = ("large", "small") if TestMode.SPEC in modes else ("large",)
    if engine is ThinkEngine.REMOTE:
        for role in roles:
            if not raw.get(f"{role}_url"):
                raise VelobenchError(f"--engine remote needs --{role}-url URL (the {role} model's server)")
    else:
        if urls:
            raise VelobenchError("--large-url/--small-url are servers already running: use --engine remote")
        if not raw.get("large_model"):
            raise VelobenchError("velobench think needs the large model: -m LARGE")
        if not raw.get("small_model") and TestMode.SPEC in modes:
            raise VelobenchError("velobench think needs the small model: -d SMALL (or --test-mode large)")
    max_tokens = cfg.generation.max_tokens
    ctx = raw.get("ctx_size") or max_tokens + PROMPT_ROOM
    if ctx <= max_tokens:
        raise VelobenchError(
            f"--ctx-size {ctx} must exceed --max-tokens {max_tokens}: the whole text stays in context"
        )
    opts = _options(
        {
            **raw,
            "engine": engine,
            "test_mode": raw.get("test_mode") or "both",
            "large_model": raw.get("large_model") or "",
            "small_model": raw.get("small_model") or "",
            "ctx_size": ctx,
            "timeout": raw.get("timeout") or 120.0 + 2.0 * max_tokens,
        }
    )
    if engine is ThinkEngine.REMOTE and opts.extra_args:
        raise VelobenchError(
            "-x/--engine-args is for servers velobench starts; --large-url/--small-url are running"
        )
    if engine != "remote":  # the engine checks its options (both servers take the same -x) before any fetch
        stand_in = opts if opts.small_model else opts.model_copy(update={"small_model": opts.large_model})
        engines.engine_class(EngineName(engine)).check_options(role_config(stand_in, cfg, "large"), HINTS)
    problems = load_problems(opts.prompts, opts.num_problems)
    api_key = opts.api_key.get_secret_value() if opts.api_key else None
    made: dict[Role, Engine] = {}
    remote: dict[Role, RemoteServer] = {}
    binaries: list[BinaryInfo] = []
    if engine is ThinkEngine.REMOTE:
        for role in roles:
            url = raw[f"{role}_url"]
            remote[role] = probe_remote(url, api_key, role, raw.get(f"{role}_model"))
            binaries.append(
                BinaryInfo(
                    name=f"server ({role})",
                    path=display_url(url),
                    source=f"--{role}-url",
                    version=remote[role].model or remote[role].protocol,
                    commit=None,
                )
            )
        opts = opts.model_copy(
            update={
                "large_model": opts.large_model or remote["large"].model or display_url(remote["large"].url),
                "small_model": opts.small_model
                or (remote["small"].model or display_url(remote["small"].url) if "small" in remote else ""),
            }
        )
    else:
        name = EngineName(engine)
        cls = engines.engine_class(name)
        models = {"large_model": (opts.large_model, "large model (-m)")}
        if opts.small_model:
            models["small_model"] = (opts.small_model, "small model (-d)")
        for spec, what in models.values():  # every file complete before anything is fetched or started
            check_model_arg(spec, what, gguf=cls.uses_gguf)
        if cls.uses_gguf:
            opts = opts.model_copy(update={k: fetch_model(spec, what) for k, (spec, what) in models.items()})
        if not opts.small_model:  # --test-mode large: recorded as the large model (as results always were)
            opts = opts.model_copy(update={"small_model": opts.large_model})
        for role in roles:
            rc = role_config(opts, cfg, role)
            reason = cls.can_run(rc)
            if reason:
                raise VelobenchError(reason)
            made[role] = engines.make(rc, log_dir=log_dir / role)
        for made_engine in made.values():  # both models' servers run at once: vLLM splits the GPU memory
            if isinstance(made_engine, VllmEngine):
                made_engine.peers = len(made)
        for info in made["large"].binaries():
            binaries.append(info)
    setup = ThinkSetup(think=cfg, run=opts)
    return Prepared(setup, modes, problems, binaries, roles, made, remote, api_key)


@contextlib.contextmanager
def open_servers(prep: Prepared) -> Iterator[tuple[HttpThinkBackend, list[ServerRecord]]]:
    """Start (or connect to) each model's server once; all stopped on exit, however it ends."""
    opts = prep.setup.run
    triggers = prep.setup.think.triggers.words
    with contextlib.ExitStack() as stack:
        servers: dict[Role, ThinkServer] = {}
        records: list[ServerRecord] = []
        for role in prep.roles:
            if role in prep.remote:
                r = prep.remote[role]
                client = stack.enter_context(
                    HttpClient(r.url, api_key=prep.api_key, read_timeout_s=opts.timeout)
                )
                limit = None if r.protocol == "llama" else OPENAI_MAX_STOP
                servers[role] = ThinkServer(role, client, r.protocol, "server", r.model, max_stop=limit)
                records.append(
                    ServerRecord(
                        role=role,
                        name="server",
                        url=display_url(r.url),
                        model=r.model,
                        protocol=r.protocol,
                        max_stop_strings=limit,
                    )
                )
                continue
            engine = prep.engines[role]
            if not isinstance(engine, ServesHttp):
                raise VelobenchError(f"the {engine.name} engine starts no server: velobench think needs one")
            protocol = server_dialect(opts.engine)
            max_stop = max_stop_strings(protocol, triggers)
            handle = stack.enter_context(engine.serve("vanilla", cache_prompt=True, env=server_env(max_stop)))
            client = stack.enter_context(
                HttpClient(handle.base_url, api_key=handle.api_key, read_timeout_s=opts.timeout)
            )
            servers[role] = ThinkServer(
                role, client, protocol, handle.name, handle.model, handle.process, max_stop=max_stop
            )
            p = handle.process
            records.append(
                ServerRecord(
                    role=role,
                    name=handle.name,
                    url=display_url(handle.base_url),
                    model=handle.model or (opts.large_model if role == "large" else opts.small_model),
                    protocol=protocol,
                    command=p.command if p else None,
                    log=str(p.log_path) if p else None,
                    ready_s=p.ready_s if p else None,
                    version=handle.version,
                    max_stop_strings=max_stop,
                )
            )
        yield HttpThinkBackend(servers["large"], servers.get("small")), records


def log_dir(output: Path) -> Path:
    """Where the servers' logs are kept: beside the result (`<stem>-logs/large`, `.../small`)."""
    return output.parent / f"{output.stem}-logs"


def run_line(r: ThinkRun, num_runs: int) -> str:
    """One finished run, for the console."""
    if r.error is not None:
        return f"  {r.problem_id} run {r.run + 1}/{num_runs} {r.mode:>5}: failed: {r.error}"
    tps = f"{r.tokens_per_s:.1f} t/s" if r.tokens_per_s is not None else "- t/s"
    ratio = f"large {r.large_ratio:.0%}" if r.large_ratio is not None else "large -"
    mark = {True: "right", False: "wrong", None: "no reference"}[r.correct]
    return (
        f"  {r.problem_id} run {r.run + 1}/{num_runs} {r.mode:>5}: {r.latency_s:.1f} s, {r.tokens} tokens, "
        f"{tps}, {ratio}, {r.interventions} interventions, stopped by {r.stopped_by}, "
        f"answer {r.answer!r} ({mark})"
    )


def print_setup(console: Console, prep: Prepared) -> None:
    o, t = prep.setup.run, prep.setup.think
    console.print("velobench think", markup=False)
    console.print(f"  Large model: {o.large_model}", markup=False)
    if "spec" in prep.modes:
        console.print(f"  Small model: {o.small_model}", markup=False)
    console.print(f"  Engine:      {o.engine}; test mode {o.test_mode}", markup=False)
    console.print(
        f"  Problems:    {len(prep.problems)} from {o.prompts}, {o.num_runs} run(s) each", markup=False
    )
    s = t.sampling
    console.print(
        f"  Sampling:    temperature {s.temperature:g}, top_p {s.top_p:g}, top_k {s.top_k}, seed {s.seed}; "
        f"max tokens {t.generation.max_tokens}, segment {t.segment.tokens} tokens",
        markup=False,
    )
    console.print(f"  Triggers:    {', '.join(t.triggers.words)}", markup=False)


def execute(
    prep: Prepared, output: Path, console: Console, *, clock: Callable[[], float] = time.perf_counter
) -> ThinkReport:
    """Start the servers, run every problem × run × mode, save after every run, print the summary.

    Saving, the rescue copy where the file system refuses a save, and how the benchmark ends
    (the status, the one line) are `runner.lifecycle`'s, as for every command.
    """
    report = ThinkReport(
        config=prep.setup,
        environment=environment.capture(),
        binaries=prep.binaries,
        problems=prep.problems,
    )
    print_setup(console, prep)
    problems = [Problem(p.id, p.text, p.reference) for p in prep.problems]
    life = Lifecycle(report, output, "run", count=report.finished_runs)
    t0 = clock()
    on_run = functools.partial(record_run, report, life, console, clock, t0)
    with life:
        with open_servers(prep) as (backend, records):
            report.servers = records
            console.print(
                "  Servers:     "
                + "; ".join(
                    f"{s.role} {s.url} ready in {s.ready_s:.1f} s" if s.ready_s else f"{s.role} {s.url}"
                    for s in records
                ),
                markup=False,
            )
            loop = ThinkLoop(backend, prep.setup.think)
            outcome = loop.run_all(problems, prep.modes, prep.setup.run.num_runs, on_run=on_run)
        report.wall_s = clock() - t0
        refresh(report)
        if outcome.error is not None:  # a failed request ended the benchmark: what finished is shown
            if report.summary is not None and report.finished_runs():
                console.print(render_think_summary(report.summary), markup=False)
            raise VelobenchError(outcome.error)
        life.complete()
    if report.summary is not None:
        console.print("")
        console.print(render_think_summary(report.summary), markup=False)
    console.print(
        f"Wall time: {report.wall_s:.1f} s (servers started once, {len(report.runs)} runs)", markup=False
    )
    console.print(f"Results saved to: {output}", markup=False)
    return report


def record_run(
    report: ThinkReport, life: Lifecycle, console: Console, clock: Callable[[], float], t0: float, r: ThinkRun
) -> None:
    """The loop's `on_run`: one finished run into the result, saved, and its console line."""
    report.runs.append(r)
    report.wall_s = clock() - t0
    refresh(report)
    life.save()
    console.print(run_line(r, report.config.run.num_runs), markup=False)
