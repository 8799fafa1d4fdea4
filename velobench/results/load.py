"""The result of `velobench load` (`kind: "load"`): versioned pydantic models and the raw records.

A load result holds, per mode (vanilla, speculative) and load level, the plan that ran (with
its arrival schedule: seed and offsets, so a run can be replayed), how the level ended, the
speculative counters' growth from `/metrics`, and the level's summary; then the comparison of
the modes at every level both finished, the crossover and where the sweep stopped early.

Every finished request is one line of the JSONL beside the result (`records_file`, written as
each level ends): its mode, level and the raw `LoadRecord` (send time, first token, every
chunk's time and tokens, end, error, phase). Every summary in the result is recomputed from
those lines and the stored counters by `velobench.load.recompute.analyze`.

`results.store` reads every kind and tells them apart by `kind`; older load files are brought
to `LOAD_SCHEMA_VERSION` by `results.migrate`.

Load schema versions (bump `LOAD_SCHEMA_VERSION` and add a line for every change). The load kind
goes on from the number it was born with, when every kind shared one (3), so every load file
ever written keeps the number it has, and no number means two formats:
  3 — first version (`velobench load`): per mode and load level the plan (arrival schedule:
      seed and offsets), how it ended, /metrics speculative deltas and the level summary;
      comparisons per level, the crossover, where a sweep stopped; raw per-request records in
      a JSONL beside the result.
  4 — warnings are values: the result's warnings store `code` and `params` (as run results of
      version 4), and a level comparison's warnings, plain strings until now, are `LevelWarning`s
      (`code`, `params`); `message` holds the text of version-3 files, shown as written.
  5 — the load generator's own lag: per level `lag` (each request's send lag behind the moment
      it was due, an event-loop timer's late wake-ups, the generator's CPU share) and the
      level's `warnings` (`generator-bottleneck` where velobench fell behind or ran near its
      ceiling); each record's `ready_s`. Files of version 4 have no lag (`lag` null, no
      warnings, no `ready_s`): it was not measured. Added later to version 5 as optional fields
      whose defaults are what a file without them means: `load.generator_procs` (1), and per
      level `lag.procs` (1) and `lag.busiest_cpu_share` (null) for several generator processes.
  6 — the schedule (issue 20): `schedule` (interleaved: both servers up, the arms alternating
      level by level in ABBA order; blocked: every vanilla level first), and per level its
      `position` in the run's schedule (1-based, over both modes) and `started_s` (seconds from
      the first level's start). Files of version 5 were all blocked (config and result say so);
      their levels have no position or start offset (null: not recorded).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from velobench import __version__
from velobench.errors import VelobenchError
from velobench.results.config import RunConfig
from velobench.results.environment import Environment
from velobench.results.maxrate import MaxRateResult
from velobench.results.measures import Ratio
from velobench.results.schema import BinaryInfo, ResultWarning, SessionInfo, WarningParams
from velobench.results.timing import RequestTiming, SpecDecodeDelta
from velobench.validation import Strict, one_line

LOAD_SCHEMA_VERSION = 6

GRACE_S = 5.0  # how long Ctrl-C waits for the requests in flight


Profile = Literal["concurrency", "rate"]


Phase = Literal["warmup", "measure", "cooldown"]


ProfileKind = Literal["sequential", "concurrency", "rate"]


class ArrivalSchedule(BaseModel):
    """An open-loop schedule as recorded in a result: how it was drawn, and what was drawn."""

    model_config = ConfigDict(extra="forbid")

    process: str = Field(description="poisson (burstiness 1), gamma, or all-at-once (rate inf)")
    rate: float = Field(description="requests per second (inf: all at once)")
    burstiness: float = Field(description="gamma shape; 1 = Poisson")
    seed: int
    count: int | None = Field(default=None, description="at most this many arrivals")
    duration_s: float | None = Field(default=None, description="only arrivals strictly before this")
    offsets_s: list[float] = Field(description="send time of each request, seconds from the run's zero")

    def describe(self) -> str:
        """One line for tables and logs, e.g. `Poisson 4 req/s, seed 0, 120 requests in 30 s`."""
        kind = {"poisson": "Poisson", "gamma": f"gamma (burstiness {self.burstiness:g})"}.get(
            self.process, "all at once"
        )
        rate = "" if math.isinf(self.rate) else f" {self.rate:g} req/s"
        bound = f" in {self.duration_s:g} s" if self.duration_s is not None else ""
        return f"{kind}{rate}, seed {self.seed}, {len(self.offsets_s)} requests{bound}"


class Window(BaseModel):
    """A warm-up or cool-down window: by seconds or by request count (not both; neither = none)."""

    model_config = ConfigDict(extra="forbid")

    seconds: float | None = None
    requests: int | None = None

    @model_validator(mode="after")
    def _one(self) -> Window:
        if self.seconds is not None and self.requests is not None:
            raise ValueError("give a window in seconds or in requests, not both")
        if self.seconds is not None and not (0 <= self.seconds < math.inf):
            raise ValueError(f"window seconds must be >= 0, got {self.seconds}")
        if self.requests is not None and self.requests < 0:
            raise ValueError(f"window requests must be >= 0, got {self.requests}")
        return self


class LoadPlan(BaseModel):
    """One load level: the profile, its bounds and windows (recorded in the result)."""

    model_config = ConfigDict(extra="forbid")

    profile: ProfileKind
    concurrency: int | None = Field(default=None, description="closed loop: requests in flight")
    schedule: ArrivalSchedule | None = Field(default=None, description="open loop: when to issue")
    max_concurrency: int | None = Field(default=None, description="open loop: cap on requests in flight")
    requests: int | None = Field(default=None, description="issue at most this many")
    duration_s: float | None = Field(default=None, description="issue nothing at or after this")
    warmup: Window = Field(default_factory=Window)
    cooldown: Window = Field(default_factory=Window)

    def level(self) -> float:
        """The load level this plan stands for: C for closed loops, the rate for open loops."""
        if self.profile == "rate":
            assert self.schedule is not None
            return self.schedule.rate
        return float(self.concurrency or 1)

    def slots(self) -> int | None:
        """Most requests in flight at once (None: unbounded)."""
        if self.profile == "sequential":
            return 1
        if self.profile == "concurrency":
            return self.concurrency
        return self.max_concurrency

    def count_bound(self) -> int | None:
        """Most requests this plan issues (None: bounded by time only)."""
        bounds = [b for b in (self.requests, len(self.schedule.offsets_s) if self.schedule else None) if b]
        return min(bounds) if bounds else None


class LoadRecord(BaseModel):
    """One finished request of a load run (one line of the raw JSONL)."""

    model_config = ConfigDict(extra="forbid")

    index: int = Field(description="issue order, 0-based")
    prompt_id: str
    scheduled_s: float = Field(description="when it was due: its arrival (open loop) or a free slot (closed)")
    issued_s: float = Field(description="when the load generator called send (>= scheduled_s)")
    ready_s: float | None = Field(
        default=None,
        description="when it could be sent: scheduled_s, or later where it waited for a slot "
        "(open loop under --max-concurrency); None in files before load schema 5",
    )
    phase: Phase = "measure"
    timing: RequestTiming

    def send_lag_s(self) -> float:
        """How late the generator sent it: timing.sent_s − ready_s (scheduled_s where ready_s is None)."""
        return self.timing.sent_s - (self.scheduled_s if self.ready_s is None else self.ready_s)


class Sweep(Strict):
    """`--sweep KIND=V1,V2,...`: the levels, ascending and distinct."""

    kind: Profile
    levels: list[float]


class LoadOptions(Strict):
    """What `velobench load` runs at every level (recorded in the result)."""

    profile: Profile
    levels: list[float] = Field(
        description="concurrencies (closed loop) or requests/s (open loop), ascending"
    )
    sweep: bool = Field(description="several levels, ending early once a level saturates")
    requests: int | None = Field(description="per level: issue at most this many requests")
    duration_s: float | None = Field(description="per level: issue nothing at or after this many seconds")
    max_concurrency: int | None = Field(default=None, description="open loop: most requests in flight")
    burstiness: float = Field(default=1.0, description="gamma shape of the arrival gaps; 1 = Poisson")
    seed: int = Field(description="seed of the arrival schedules (and the sampling seed of the requests)")
    warmup: Window = Field(default_factory=Window)
    cooldown: Window = Field(default_factory=Window)
    slo: Slo | None = None
    input_len: int | None = Field(
        default=None, description="prompts cut or repeated to about this many tokens"
    )
    slots: int = Field(description="parallel slots of the server velobench starts (llama-server -np)")
    stop_on_saturation: bool = True
    grace_s: float = GRACE_S
    generator_procs: int = Field(
        default=1, description="load-generator processes sharing every level, each its own event loop"
    )

    @property
    def unit(self) -> str:
        return "concurrency" if self.profile == "concurrency" else "rate"


class Percentile(BaseModel):
    """A sample percentile and its distribution-free 95% interval (None: unbounded that side)."""

    model_config = ConfigDict(extra="forbid")

    value: float
    ci95_low: float | None
    ci95_high: float | None


class Distribution(BaseModel):
    """Mean, spread and tail of one latency (or rate) over the requests of a level."""

    model_config = ConfigDict(extra="forbid")

    n: int
    mean: float
    stddev: float | None
    mean_ci95_low: float | None
    mean_ci95_high: float | None
    min: float
    max: float
    p50: Percentile
    p90: Percentile
    p95: Percentile
    p99: Percentile


class Slo(BaseModel):
    """Service-level objectives in milliseconds; a request is good if it meets every one given."""

    model_config = ConfigDict(extra="forbid")

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    itl_ms: float | None = Field(default=None, description="every inter-token gap of the request")
    e2e_ms: float | None = None


class Goodput(BaseModel):
    """Requests of the measure window meeting the SLO: their share, and their rate per second."""

    model_config = ConfigDict(extra="forbid")

    slo: Slo
    good: int
    total: int
    share: float | None = Field(description="good / total (failed requests count as not good)")
    rate_per_s: float | None = Field(description="good / window length (vLLM's request goodput)")


class SpecCounters(BaseModel):
    """Speculative counters' growth over a level (after − before of `*:spec_decode_num_*_total`)."""

    model_config = ConfigDict(extra="forbid")

    drafts: float = Field(ge=0)
    draft_tokens: float = Field(ge=0)
    accepted_tokens: float = Field(ge=0)


class LevelAcceptance(BaseModel):
    """acceptance_rate = accepted / draft tokens; mean_acceptance_length = 1 + accepted / drafts
    (each verification step yields its accepted drafts plus one token of the target)."""

    model_config = ConfigDict(extra="forbid")

    counters: SpecCounters
    acceptance_rate: float | None
    mean_acceptance_length: float | None


class LevelSummary(BaseModel):
    """Everything measured at one load level in one mode (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    profile: str
    level: float
    mode: str
    n_records: int = Field(description="finished requests, all phases")
    n_measure: int
    n_ok: int = Field(description="successful measure requests")
    n_errors: int = Field(description="failed measure requests")
    n_errors_all: int = Field(description="failed requests of every phase")
    errors_by_kind: dict[str, int] = Field(description="failed measure requests by kind")
    window_start_s: float | None
    window_end_s: float | None
    window_s: float | None
    request_throughput: float | None = Field(
        description="successful requests ending in the window / its length"
    )
    output_tok_s: float | None = Field(description="output tokens emitted in the window / its length")
    output_tok_s_batches: list[float] = Field(
        description="output tokens/s in equal sub-windows (batch means)"
    )
    output_tokens: int = Field(description="output tokens of the successful measure requests")
    per_request_tok_s: Distribution | None
    ttft_ms: Distribution | None
    itl_ms: Distribution | None
    tpot_ms: Distribution | None
    e2e_ms: Distribution | None
    goodput: Goodput | None = None
    acceptance: LevelAcceptance | None = None


class LagStats(BaseModel):
    """A lag's distribution over one level, in milliseconds (numpy's default percentiles)."""

    model_config = ConfigDict(extra="forbid")

    n: int
    p50: float
    p99: float
    max: float


class GeneratorLag(BaseModel):
    """How far velobench's own load generator fell behind at one level (its limits, not the server's).

    send_ms: per request, timing.sent_s − ready_s (`LoadRecord.send_lag_s`): the event loop and
    the request's own preparation between the moment it was due and its send.
    loop_ms: a timer task on the generator's event loop wakes every `probe_interval_ms`; each
    sample is actual − scheduled wake-up. A chunk that arrives waits as long before the loop
    reads and timestamps it, so this bounds how late chunk times (TTFT, ITL) are.
    cpu_share = cpu_s / wall_s: the generator process's CPU time over the level's wall time, in
    cores (1.0 = one core busy all the time; the event loop runs on one).
    procs > 1 (`--generator-procs`, load.procs): cpu_s is every generator process's CPU time
    (and the parent's) and cpu_share their sum in cores; busiest_cpu_share = the busiest
    process's CPU time / wall_s (each runs its own event loop on one core).
    """

    model_config = ConfigDict(extra="forbid")

    send_ms: LagStats | None
    loop_ms: LagStats | None
    probe_interval_ms: float
    cpu_s: float
    wall_s: float
    cpu_share: float | None
    procs: int = Field(default=1, description="generator processes, each with its own event loop")
    busiest_cpu_share: float | None = Field(
        default=None, description="procs > 1: the busiest generator process's CPU time / wall_s"
    )


class LevelWarningCode(StrEnum):
    SHORT_BATCHES = "short-batches"  # throughput batches shorter than a request: optimistic interval
    REQUESTS_FAILED = "requests-failed"
    GENERATOR_BOTTLENECK = "generator-bottleneck"  # velobench fell behind its schedule or near its ceiling


class LevelWarning(Strict):
    """A warning of one level's comparison as data (rendered by `velobench.report.warnings.text`)."""

    code: LevelWarningCode
    params: WarningParams = Field(default_factory=dict)
    message: str | None = Field(
        default=None, description="files of load version 3: the text as written then (shown as is)"
    )


class LevelComparison(BaseModel):
    """Speculative / vanilla at one level. Throughput: ratio of mean batch throughputs (> 1 is
    better); latencies: ratio of mean per-request values (< 1 is better)."""

    model_config = ConfigDict(extra="forbid")

    level: float
    throughput: Ratio | None
    ttft: Ratio | None
    tpot: Ratio | None
    e2e: Ratio | None
    worse: list[str] = Field(description="metrics where speculation is significantly worse (p < 0.05)")
    better: list[str] = Field(description="metrics where speculation is significantly better (p < 0.05)")
    warnings: list[LevelWarning] = Field(default_factory=list)


class Crossover(BaseModel):
    """The lowest level at which speculation is significantly worse, or None up to `up_to`."""

    model_config = ConfigDict(extra="forbid")

    level: float | None
    up_to: float | None = Field(description="the highest level compared")
    criteria: list[str]
    by: list[str] = Field(
        default_factory=list, description="the criteria that were significantly worse there"
    )
    text: str


class Saturation(BaseModel):
    """The first level of a sweep at which one mode saturated, and why."""

    model_config = ConfigDict(extra="forbid")

    level: float
    reason: Literal["errors", "throughput"]
    gain: float | None = Field(default=None, description="output tok/s relative to the previous level, − 1")
    p_value: float | None = None
    text: str


class LoadLevel(Strict):
    """One load level in one mode: what ran, how it ended, what the server counted, the summary."""

    mode: str
    level: float
    plan: LoadPlan = Field(description="the profile, bounds, windows and (open loop) the arrival schedule")
    issued: int
    finished: int = Field(description="records of this level in the JSONL")
    cancelled: list[int] = Field(default_factory=list, description="indices cancelled by an interruption")
    interrupted: bool = False
    max_in_flight: int
    wall_s: float = Field(description="the level's zero to its last request's end")
    started_at: str = Field(description="UTC time the level started")
    position: int | None = Field(
        default=None,
        description="1-based place in the run's schedule, over both modes (None before load schema 6)",
    )
    started_s: float | None = Field(
        default=None,
        description="seconds from the first level's start to this one's (None before load schema 6)",
    )
    spec_decode: SpecDecodeDelta | None = Field(
        default=None, description="/metrics speculative counters, after − before the level (all phases)"
    )
    metrics_note: str | None = Field(
        default=None, description="why /metrics could not be read, if it could not"
    )
    summary: LevelSummary | None = Field(default=None, description="None when nothing finished in the window")
    lag: GeneratorLag | None = Field(
        default=None, description="the load generator's own lag and CPU share (None before load schema 5)"
    )
    warnings: list[LevelWarning] = Field(
        default_factory=list, description="this level's own warnings (the generator's lag)"
    )

    def counters(self) -> SpecCounters | None:
        d = self.spec_decode
        if d is None:
            return None
        return SpecCounters(drafts=d.drafts, draft_tokens=d.draft_tokens, accepted_tokens=d.accepted_tokens)


class LoadMode(Strict):
    """One mode's server and its levels, in the order they ran."""

    mode: str
    binary: str
    session: SessionInfo | None = None
    slots: int
    levels: list[LoadLevel] = Field(default_factory=list)
    saturation: Saturation | None = None
    wall_s: float | None = Field(default=None, description="server start to the last level's end")


class LoadReport(Strict):
    """Everything one `velobench load` measured, with how and where."""

    kind: Literal["load"] = "load"
    schema_version: int = LOAD_SCHEMA_VERSION
    velobench_version: str = __version__
    timestamp: str = Field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    status: Literal["running", "complete", "interrupted", "failed"] = "running"
    error: str | None = None
    config: RunConfig
    load: LoadOptions
    environment: Environment
    binaries: list[BinaryInfo] = Field(default_factory=list)
    prompt_ids: list[str] = Field(description="the prompts request i cycles through (i mod len)")
    prompt_tokens: list[int] | None = Field(
        default=None, description="each prompt's length in the server's tokens, where it could be counted"
    )
    records_file: str = Field(description="the raw per-request JSONL, beside this file")
    schedule: Literal["interleaved", "blocked"] = Field(
        default="blocked",
        description="the order that ran: interleaved (both servers up, ABBA level by level) or blocked",
    )
    modes: dict[str, LoadMode] = Field(default_factory=dict)
    comparisons: list[LevelComparison] = Field(
        default_factory=list, description="speculative ÷ vanilla at every level both finished"
    )
    crossover: Crossover | None = None
    stopped_early: str | None = Field(default=None, description="why the sweep ended before its last level")
    max_rate: MaxRateResult | None = Field(
        default=None,
        description="--find-max-rate/--find-max-concurrency: each arm's SLO search and the ratio",
    )
    wall_s: float | None = None
    warnings: list[ResultWarning] = Field(default_factory=list)

    def level(self, mode: str, level: float) -> LoadLevel | None:
        m = self.modes.get(mode)
        return next((x for x in m.levels if x.level == level), None) if m else None


class RecordLine(LoadRecord):
    """One line of the records JSONL: a finished request, with its mode and level."""

    mode: str
    profile: str
    level: float


def record_line(mode: str, profile: str, level: float, rec: LoadRecord) -> str:
    return RecordLine(mode=mode, profile=profile, level=level, **rec.model_dump()).model_dump_json() + "\n"


def append_records(path: Path, mode: str, profile: str, level: float, records: Iterable[LoadRecord]) -> None:
    """Append one level's records to the JSONL, flushed and fsynced (a crash keeps finished levels)."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for r in records:
            f.write(record_line(mode, profile, level, r))
        f.flush()
        os.fsync(f.fileno())


Records = dict[tuple[str, float], list[LoadRecord]]


def read_records(path: Path) -> Records:
    """The JSONL as {(mode, level): records in index order}; a bad line is one error line."""
    out: Records = {}
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise VelobenchError(f"records file not found: {path} (it is written beside the result)") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = RecordLine.model_validate(json.loads(line))
        except (ValueError, ValidationError) as exc:
            why = one_line(exc) if isinstance(exc, ValidationError) else str(exc)
            raise VelobenchError(f"{path}:{n}: not a load record ({why})") from None
        base = LoadRecord(**rec.model_dump(exclude={"mode", "profile", "level"}))
        out.setdefault((rec.mode, rec.level), []).append(base)
    for recs in out.values():
        recs.sort(key=lambda r: r.index)
    return out


def records_path(result: Path, report: LoadReport) -> Path:
    return result.parent / report.records_file
