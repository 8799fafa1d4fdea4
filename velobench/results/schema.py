"""The result file's schema: versioned pydantic models (stored by `results.store`).

Raw per-iteration samples are the record; every summary is derived from them by
`velobench.analysis`. An undefined statistic is `null`, never NaN. A result holds named
modes (`vanilla`, `speculative`, later others) and the comparisons declared between them
(baseline → candidate); analysis, compare and every report iterate over those.

Each result kind has its own schema version and its own change log, in the module that holds
its models: `velobench run` results (this module, `RUN_SCHEMA_VERSION`; each matrix cell is one),
load results (`results.load`, `LOAD_SCHEMA_VERSION`), think results (`results.think`,
`THINK_SCHEMA_VERSION`) and matrix run folders (`results.matrix`, `MATRIX_SCHEMA_VERSION`).
`results.migrate` brings every older version of every kind to its current one, step by step, and
`results.store` reads every kind through it, rejecting versions it does not know in one line.

`velobench run` schema versions (bump `RUN_SCHEMA_VERSION` and add a line for every change):
  1 — first version: config, environment, per-mode iterations and summaries, acceptance,
      speedup with propagated stddev, Fieller 95% interval and Welch p-value, warnings;
      streaming latencies (TTFT, ITL percentiles, TPOT) and /metrics acceptance per iteration
      and the server's log and command per mode for the server engine; per-prompt ids and
      categories, per-category summaries and the temperature-0 losslessness check; the
      llama-bench costs and the speedup ceiling.
  2 — modes as data: `modes` (name → ModeResult) replaces the fixed `vanilla`/`speculative`
      fields; `comparisons` (baseline, candidate, speedup, categories, losslessness) replaces
      the top-level `speedup`, `speedup_stddev`, `speedup_detail`, `categories`, `lossless`;
      a mode's engine resources are a typed `session` (command, log, ready time, server
      version) instead of llama-server's `server_log`/`server_command`/`server_ready_s`;
      `vanilla_from` became the mode's `source`; category summaries name `baseline_`/
      `candidate_tokens_per_second`; the config holds how the run was made (engine,
      llama.cpp path, port, timeouts, ceiling). Version-1 files are read through
      `results.migrate`. Iterations of HTTP engines keep their raw client-clock `request`
      record; every iteration may carry `telemetry` (power, energy, utilization, CPU, RSS),
      summarised per mode (`telemetry`, `power_trace`) and compared (`energy_per_token`).
  3 — load results (results/load.py, `"kind": "load"`, written by `velobench load`): per mode
      and load level the plan (arrival schedule: seed and offsets), how it ended, /metrics
      speculative deltas and the level summary; comparisons per level, the crossover, where a
      sweep stopped; raw per-request records in a JSONL beside the result. `velobench run`
      results are unchanged (version-2 files migrate as they are). Until here the three kinds
      shared one number; from here each counts on its own.
  4 — warnings are values: a warning stores its `code` and `params` (the numbers and names its
      text is made of) and `velobench.report.warnings.text` renders it; `message` is kept only
      for files of version 3 and older, whose text is shown as it was written (the migration
      moves it there unchanged: an old text cannot be parsed back into parameters, and some
      were worded differently from today's).
  5 — paired analysis: a comparison stores `paired_speedup` (geometric mean of per-pair
      tokens/s ratios of the iterations sharing prompt and occurrence, t-interval on the log
      ratios, paired t p) beside `speedup` (ratio of means, propagated σ, Fieller, Welch, kept)
      and `estimator`, the one its verdict, warnings and `compare` used ("paired" from 2 pairs,
      else "ratio-of-means"); categories store their `n_pairs` and `paired_speedup`; constant
      samples leave the interval and p `null` (they were [R, R] and 0 or 1) with the
      `undefined-test` warning; a run made with `--target-ci` stores its `stopping` record (the
      rule, every look, why it stopped); acceptance per request: every iteration says where its
      counts came from (`acceptance_source`), a mode's acceptance adds the request-weighted rate,
      per-prompt acceptance and the prompts per rate bucket. Version-4 files migrate with
      `estimator` "ratio-of-means" (what their verdicts used), no pairs and no per-prompt view.
  6 — the schedule: the result says which schedule ran (`schedule`: "interleaved", both arms
      alive and alternating in balanced blocks, or "blocked", every vanilla iteration first);
      every iteration stores its `position` in the schedule (1-based, over both modes) and its
      start (`started_s`, seconds since the first measured iteration's schedule began), and the
      other processes' CPU while it ran (`interference`: their share, the busiest one named);
      new validity warnings drift, interference, prompt-cache-hits and unchecked-server.
      Temperature-0 losslessness explained: `probes` (the target's top candidates at each first
      divergence) and each compared prompt's class (identical, near-tie, decisive); the warning
      synthetic-model (random weights from `velobench models synth`).
      Version-5 files migrate as blocked runs (config and result), with no positions, start
      times or interference (null).
  7 — agreement with llama-bench (`--llama-bench-reference`): a vanilla iteration may store
      `reference_tokens_per_second` (llama-bench's decode test at its length and depth, run right
      after it) and the result `reference` (the paired ratio of velobench's vanilla tokens/s over
      llama-bench's, the command, the mean depth); the config's `llama_bench_reference` (false in
      older files). Version-6 files migrate unchanged: they have no reference.
  8 — disturbed iterations measured again (`--redo-disturbed N`): each mode's `redone` keeps the
      iterations other processes disturbed (more than a quarter of a core, `analysis.warnings.disturbed`)
      and that were measured again, out of the statistics; the config's `redo_disturbed` (0 in
      older files); the warning redone. Version-7 files migrate unchanged: nothing was redone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from velobench import __version__
from velobench.results.config import RunConfig
from velobench.results.costs import Ceiling, Costs
from velobench.results.environment import Environment
from velobench.results.measures import Ratio, Summary
from velobench.results.telemetry import Interference, TelemetrySummary
from velobench.results.timing import RequestTiming
from velobench.validation import Strict

RUN_SCHEMA_VERSION = 8

Mode = Literal["vanilla", "speculative"]  # the two modes `velobench run` measures

# Where an iteration's acceptance counts came from: llama-server's own counts in its response
# (`timings.draft_n`, `draft_n_accepted`), the /metrics counters read before and after the one
# request (requests run one at a time), or the llama.cpp cli tool's printed summary.
AcceptanceSource = Literal["server-response", "metrics-delta", "cli-output"]
ACCEPTANCE_BUCKETS = (
    (0.0, 0.5, "< 50%"),
    (0.5, 0.75, "50-75%"),
    (0.75, 0.9, "75-90%"),
    (0.9, 1.0, "90-100%"),
)


class Iteration(Strict):
    """One measured generation: what ran, and what it reported."""

    index: int
    prompt_id: str | None = None
    category: str | None = None
    command: str = Field(description="the exact command line (shlex.join)")
    returncode: int
    wall_ms: float = Field(
        description="process (or request) wall time, including model load for the cli engine"
    )
    load_ms: float | None = None
    prompt_tokens: int
    prompt_ms: float = Field(description="prompt evaluation time; reported as TTFT for the cli engine")
    ttft_ms: float
    generated_tokens: int
    decode_ms: float
    tokens_per_second: float = Field(
        description="decode tokens/s: tokens produced in the decode phase / its time"
    )
    reference_tokens_per_second: float | None = Field(
        default=None,
        description="--llama-bench-reference: llama-bench's decode tokens/s at this generation's length "
        "and depth, run right after it",
    )
    total_time_ms: float = Field(description="prompt eval + decode: generation time without model load")
    n_draft: int | None = None
    n_drafted: int | None = None
    n_accept: int | None = None
    acceptance_rate: float | None = None
    acceptance_source: AcceptanceSource | None = Field(
        default=None,
        description="where n_drafted/n_accept/draft_steps came from (None: files before version 5)",
    )
    # Streaming engines (server): client-side latencies and the server's own accounting.
    e2e_ms: float | None = Field(
        default=None, description="request sent -> last token received (client clock)"
    )
    tpot_ms: float | None = Field(
        default=None, description="time per output token after the first (client clock)"
    )
    itl_p50_ms: float | None = None
    itl_p90_ms: float | None = None
    itl_p99_ms: float | None = None
    draft_steps: int | None = Field(
        default=None, description="verification steps that had a draft (/metrics delta)"
    )
    mean_acceptance_length: float | None = Field(default=None, description="1 + accepted / draft steps")
    accepted_per_position: list[float] | None = None
    server_timings: dict[str, float] | None = Field(default=None, description="the server's `timings` object")
    output: str | None = None
    output_tokens: list[int] | None = Field(
        default=None, description="generated token ids, where the engine has them"
    )
    telemetry: TelemetrySummary | None = Field(
        default=None, description="power, energy, utilization and the engine's CPU/RSS over this generation"
    )
    request: RequestTiming | None = Field(
        default=None, description="HTTP engines: the raw client-clock record every latency is derived from"
    )
    position: int | None = Field(
        default=None, description="place in the run's schedule, 1-based over both modes (None: before v6)"
    )
    started_s: float | None = Field(
        default=None, description="start, seconds after the run's measuring began (monotonic clock)"
    )
    interference: Interference | None = Field(
        default=None,
        description="other processes' CPU while this generation ran (velobench's own tree left out)",
    )


class PromptAcceptance(Strict):
    """Draft acceptance of one prompt over its iterations (the GSM8K benchmark's per-request view)."""

    prompt_id: str | None
    category: str | None = None
    iterations: int
    drafted: int
    accepted: int
    rate: float | None = Field(description="accepted / drafted over this prompt's iterations")
    draft_steps: int | None = Field(
        default=None, description="verification steps with a draft, where counted"
    )
    mean_length: float | None = Field(default=None, description="1 + accepted / draft steps, where counted")
    sources: list[AcceptanceSource] = Field(default_factory=list, description="where its counts came from")


class Acceptance(Strict):
    """Draft acceptance over all iterations of a speculative mode."""

    drafted: int
    accepted: int
    rate: float | None = Field(description="accepted / drafted over all iterations (token-weighted)")
    request_rate: float | None = Field(
        default=None,
        description="mean of the per-iteration rates (request-weighted: token weighting favours long completions)",
    )
    per_prompt: list[PromptAcceptance] = Field(default_factory=list)
    buckets: dict[str, int] = Field(
        default_factory=dict,
        description="prompts per acceptance-rate bucket (< 50%, 50-75%, 75-90%, 90-100%)",
    )
    per_iteration: Summary | None = None
    draft_steps: int | None = Field(
        default=None, description="verification steps with a draft (server engine)"
    )
    mean_length: float | None = Field(default=None, description="1 + accepted / draft steps: tokens per step")
    accepted_per_position: list[float] | None = None


class SessionInfo(Strict):
    """What an engine's session for one mode ran on: a server velobench started, or one it did not."""

    command: str | None = Field(default=None, description="the server's exact command line (shlex.join)")
    log: str | None = Field(default=None, description="the server's log file, kept beside the result")
    ready_s: float | None = Field(default=None, description="start → ready (health check passed)")
    url: str | None = None
    server_version: str | None = None
    extra: dict[str, str] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list, description="what the session could not measure, and why")


class ModeResult(Strict):
    mode: str = Field(description="the mode's name (vanilla, speculative, ...)")
    binary: str
    session: SessionInfo | None = None
    source: str | None = Field(default=None, description="the run this mode's iterations were taken from")
    iterations: list[Iteration]
    redone: list[Iteration] = Field(
        default_factory=list,
        description="iterations measured again (--redo-disturbed) because other processes used the CPU "
        "while they ran: kept, left out of the statistics",
    )
    tokens_per_second: Summary | None = None
    time_to_first_token_ms: Summary | None = None
    total_time_ms: Summary | None = None
    e2e_ms: Summary | None = None
    tpot_ms: Summary | None = None
    itl_p50_ms: Summary | None = None
    itl_p99_ms: Summary | None = None
    acceptance: Acceptance | None = None
    telemetry: dict[str, Summary] = Field(
        default_factory=dict,
        description="per-iteration telemetry summarised (power W, energy J, J/token, ...)",
    )
    power_trace: list[tuple[float, float]] | None = Field(
        default=None, description="(s, W) over the first measured iteration, for plots"
    )


class WarningCode(StrEnum):
    ONE_ITERATION = "one-iteration"
    HIGH_VARIANCE = "high-variance"
    SPECULATION_SLOWER = "speculation-slower"
    NO_SIGNIFICANT_DIFFERENCE = "no-significant-difference"
    NO_CEILING = "no-ceiling"
    DRAFT_NOT_OFFLOADED = "draft-not-offloaded"
    DRAFT_CHOICE = "draft-choice"
    NOTHING_DRAFTED = "nothing-drafted"
    LLAMA_ENV_IGNORED = "llama-env-ignored"
    SESSION_NOTE = "session-note"
    INTERRUPTED = "interrupted"
    UNDEFINED_TEST = "undefined-test"  # constant samples: no interval and no p-value
    UNVERIFIED_MODEL = (
        "unverified-model"  # a downloaded model no pinned sha256 vouches for (its digest is said)
    )
    # Validity checks: the result contradicts itself or compares unlike work (analysis.warnings).
    CEILING_EXCEEDED = "ceiling-exceeded"
    SPEEDUP_ABOVE_ACCEPTANCE = "speedup-above-acceptance"
    UNEQUAL_LENGTHS = "unequal-lengths"
    DEGENERATE_OUTPUT = "degenerate-output"
    SYNTHETIC_MODEL = "synthetic-model"  # random weights (`velobench models synth`): speed only
    DRIFT = "drift"  # the vanilla arm's speed trends over time
    INTERFERENCE = "interference"  # other processes used the CPU while iterations ran
    PROMPT_CACHE_HITS = "prompt-cache-hits"
    UNCHECKED_SERVER = "unchecked-server"  # a server velobench did not start
    SCHEDULE_BLOCKED = "schedule-blocked"  # interleaved asked, both arms could not be up at once
    REDONE = "redone"  # iterations measured again because other processes disturbed them


class CategorySummary(Strict):
    """Per prompt category: tokens/s of baseline and candidate, acceptance and the speedup with its uncertainty."""

    category: str
    n_prompts: int
    baseline_tokens_per_second: Summary | None = None
    candidate_tokens_per_second: Summary | None = None
    acceptance_rate: float | None = None
    speedup: Ratio | None = Field(default=None, description="ratio of means (Fieller, Welch)")
    n_pairs: int = Field(
        default=0, description="candidate/baseline iterations paired by prompt and occurrence"
    )
    paired_speedup: Ratio | None = Field(
        default=None, description="geometric mean of per-pair ratios; no interval under 2 pairs"
    )

    @property
    def headline(self) -> Ratio | None:
        """The paired estimate from 2 pairs on, else the ratio of means."""
        return self.paired_speedup if self.n_pairs >= 2 and self.paired_speedup else self.speedup


class TokenProb(Strict):
    """One candidate token at a position, as the target model ranks it."""

    id: int
    text: str = ""
    logprob: float


class DivergenceProbe(Strict):
    """The target's own distribution at a first differing token: the vanilla server re-asked
    with the prompt and the shared prefix (raw data; `analysis.lossless` classifies it)."""

    prompt_id: str
    candidate: str = Field(default="speculative", description="the mode whose output diverged")
    position: int
    baseline_token: int
    candidate_token: int
    top: list[TokenProb] = Field(description="the target's top candidates at the position, best first")


Divergence = Literal["near-tie", "decisive", "unclassified"]


class PromptMatch(Strict):
    prompt_id: str
    identical: bool
    first_difference: int | None = Field(
        default=None, description="index of the first differing token (server) or character (cli)"
    )
    unit: Literal["token", "char"] = "char"
    divergence: Divergence | None = Field(
        default=None,
        description="at the first difference: near-tie, decisive, or unclassified (no probabilities)",
    )
    baseline_token: TokenProb | None = None
    candidate_token: TokenProb | None = Field(
        default=None,
        description="the candidate's token, ranked by the target (logprob ≤ the last listed if not listed)",
    )
    gap_nats: float | None = Field(
        default=None,
        description="log p(target's top token) − log p(candidate's token), in the target's distribution",
    )
    top: list[TokenProb] = Field(default_factory=list, description="the target's top candidates there")


class Losslessness(Strict):
    """At temperature 0, does speculative decoding reproduce vanilla's output, prompt by prompt?
    Every divergence is explained where probabilities are known: a near-tie (the candidate's
    token within `margin_nats` of the target's top token) or decisive."""

    compared: int
    identical: int
    match_rate: float
    prompts: list[PromptMatch]
    near_ties: int = 0
    decisive: int = 0
    unclassified: int = 0
    margin_nats: float | None = Field(default=None, description="near-tie: gap ≤ this many nats")
    lossy: list[str] = Field(default_factory=list, description="settings lossy by design")
    note: str | None = Field(default=None, description="why divergences are unclassified, where they are")


WarningParams = dict[str, float | int | str | None]


class ResultWarning(Strict):
    """A warning as data: what happened (`code`) and its figures (`params`); rendered by
    `velobench.report.warnings.text`."""

    code: WarningCode
    params: WarningParams = Field(default_factory=dict)
    message: str | None = Field(
        default=None, description="files of version 3 and older: the text as written then (shown as is)"
    )


class BinaryInfo(Strict):
    name: str
    path: str
    source: str
    version: str
    commit: str | None


Estimator = Literal["paired", "ratio-of-means"]


class ModeComparison(Strict):
    """A declared comparison: `candidate` measured against `baseline` (e.g. speculative vs vanilla)."""

    baseline: str
    candidate: str
    speedup: Ratio | None = Field(
        default=None, description="candidate ÷ baseline mean tokens/s, with stddev, Fieller CI and Welch p"
    )
    paired_speedup: Ratio | None = Field(
        default=None,
        description="geometric mean of candidate/baseline tokens/s per pair (same prompt, same occurrence)",
    )
    estimator: Estimator | None = Field(
        default=None, description="the estimate the verdict, warnings and compare used"
    )
    categories: list[CategorySummary] = Field(default_factory=list)
    lossless: Losslessness | None = None
    energy_per_token: Ratio | None = Field(
        default=None, description="candidate ÷ baseline energy per generated token (J/token)"
    )

    @property
    def headline(self) -> Ratio | None:
        """The speedup the verdict uses: the paired estimate where `estimator` says so."""
        return self.paired_speedup if self.estimator == "paired" else self.speedup


Schedule = Literal["interleaved", "blocked"]

StopReason = Literal["target", "max-iterations", "max-time", "interrupted"]


class Look(Strict):
    """One look of the stopping rule, after a round: the interval valid at this look, whatever
    the looks before said (`analysis.stopping`)."""

    look: int
    n_pairs: int
    elapsed_s: float
    ratio: float
    ci95_low: float | None
    ci95_high: float | None
    relative_half_width: float | None = Field(description="max(hi/R − 1, 1 − lo/R); None under the minimum")


class Reference(Strict):
    """velobench's vanilla decode speed against llama-bench's at the same length, depth and settings."""

    tool: Literal["llama-bench"] = "llama-bench"
    command: str = Field(description="the first iteration's llama-bench command line")
    n_pairs: int
    depth_tokens: float = Field(description="mean context before decoding (the prompts' tokens)")
    ratio: Ratio | None = Field(
        description="paired: geometric mean of velobench ÷ llama-bench tokens/s per iteration, t-interval"
    )


class Stopping(Strict):
    """How a `--target-ci` run decided it had measured enough."""

    rule: str = Field(description="the rule and its spending of the 5% over the looks")
    target: float = Field(description="relative half-width aimed at (0.05 for --target-ci 5)")
    max_iterations: int = Field(description="iterations per mode at most")
    max_time_s: float | None = None
    min_pairs: int
    looks: list[Look] = Field(default_factory=list)
    stopped_by: StopReason | None = None

    @property
    def last(self) -> Look | None:
        return self.looks[-1] if self.looks else None


class Report(Strict):
    """Everything one `velobench run` measured, with how and where."""

    schema_version: int = RUN_SCHEMA_VERSION
    velobench_version: str = __version__
    timestamp: str = Field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    status: Literal["running", "complete", "interrupted", "failed"] = "running"
    error: str | None = None
    config: RunConfig
    environment: Environment
    binaries: list[BinaryInfo] = Field(default_factory=list)
    modes: dict[str, ModeResult] = Field(default_factory=dict)
    comparisons: list[ModeComparison] = Field(default_factory=list)
    costs: Costs | None = Field(default=None, description="llama-bench: decode and verification speeds")
    ceiling: Ceiling | None = Field(
        default=None, description="the speedup theory allows (Leviathan et al., 2023)"
    )
    stopping: Stopping | None = Field(default=None, description="--target-ci: the rule, its looks, the stop")
    reference: Reference | None = Field(
        default=None, description="--llama-bench-reference: velobench's vanilla speed against llama-bench's"
    )
    probes: list[DivergenceProbe] = Field(
        default_factory=list, description="temperature 0: the target's distribution at each first divergence"
    )
    schedule: Schedule | None = Field(
        default=None, description="the order the iterations ran in (None: files before version 6, blocked)"
    )
    warnings: list[ResultWarning] = Field(default_factory=list)

    # Shorthands for the run's own two modes and its first comparison (what `run` reports).
    @property
    def vanilla(self) -> ModeResult | None:
        return self.modes.get("vanilla")

    @property
    def speculative(self) -> ModeResult | None:
        return self.modes.get("speculative")

    @property
    def primary(self) -> ModeComparison | None:
        return self.comparisons[0] if self.comparisons else None

    @property
    def speedup_detail(self) -> Ratio | None:
        """The headline speedup: the paired estimate where the comparison's estimator is paired."""
        return self.primary.headline if self.primary else None

    @property
    def ratio_of_means(self) -> Ratio | None:
        return self.primary.speedup if self.primary else None

    @property
    def speedup(self) -> float | None:
        return self.speedup_detail.ratio if self.speedup_detail else None

    @property
    def categories(self) -> list[CategorySummary]:
        return self.primary.categories if self.primary else []

    @property
    def lossless(self) -> Losslessness | None:
        return self.primary.lossless if self.primary else None

    def iteration_count(self) -> int:
        return sum(len(m.iterations) for m in self.modes.values())
