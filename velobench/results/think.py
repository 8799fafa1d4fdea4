"""The result file of `velobench think` (`"kind": "think"`), versioned with every result.

    kind, schema_version, velobench_version, timestamp, status, error
    config        the think configuration (triggers, segment, generation, prompt, sampling) and
                  how the run was made (models, engine, test mode, problems, runs, server options)
    environment   the machine (velobench.telemetry.environment)
    binaries      the server programs (llama-server, vLLM) or the URLs of servers already running
    servers       per model: the server's command line, log, start-up time, URL, served name
    problems      the problems run: id, text, reference answer, where it came from
    runs          every run in the order it ran: measurements, the answer, the full text and its
                  segments marked by writer (velobench.think.analysis.ThinkRun)
    summary       velobench.think.analysis.ThinkSummary of the runs (recomputed after each run)
    warnings      what a reader must not miss (the summary's warnings, at the top level)
    wall_s        wall time from the first server start to the last run

The file is written atomically after every run (`results.store.save`), so a crash, a dead
server or Ctrl-C keeps every finished run; `status` says how the benchmark ended.

Think schema versions (bump `THINK_SCHEMA_VERSION` and add a line for every change). Think
results go on from the number they were born with, when every kind shared one (2; load results
moved the shared number to 3 before each kind got its own): every think file ever written keeps
its number, and no number means two formats.
  2 — first version (`velobench think`): the fields above; warnings carry `code` and `message`.
  3 — unchanged (the shared number moved to 3 with the load kind; think files of 2 and 3 differ
      only in it).
  4 — warnings are values: a `ThinkWarning` (in `warnings` and `summary.warnings`) stores `code`
      and `params` and `velobench.report.warnings.text` renders it; `message` holds the text of
      version-3 files, shown as written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from velobench import __version__
from velobench.results.environment import Environment
from velobench.results.measures import Ratio, Summary
from velobench.results.schema import BinaryInfo, WarningParams
from velobench.validation import Strict

THINK_SCHEMA_VERSION = 4

PROBLEM_PLACEHOLDER = "{problem}"


class TestMode(StrEnum):
    """How `velobench think` runs: the large model alone, speculative thinking (the small model
    reasons, the large one steps in at triggers), or both in turn. A run is in `large` or `spec`."""

    __test__ = False  # not a pytest test class

    LARGE = "large"
    SPEC = "spec"
    BOTH = "both"

    @property
    def runs(self) -> tuple[TestMode, ...]:
        """The modes whose runs this test mode makes (both: large, then spec)."""
        return (TestMode.LARGE, TestMode.SPEC) if self is TestMode.BOTH else (self,)


def one_mode(mode: TestMode) -> TestMode:
    """`mode` where it is one run's mode (large or spec); ValueError for both."""
    if mode is TestMode.BOTH:
        raise ValueError("a run is in one test mode, large or spec, not both")
    return mode


Role = Literal["small", "large"]  # which model: the one that reasons, or the one that steps in


Finish = Literal["eos", "stop", "length"]


StoppedBy = Literal["eos", "max_tokens", "answer", "error"]


class TriggerHit(BaseModel):
    """One trigger in a text: text[start:end] is the paragraph break and the trigger word."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: int
    end: int
    word: str  # the trigger word as configured (lower case)


class ThinkSegment(Strict):
    """One request's contribution to a run's text: who wrote it, where, and what it cost."""

    writer: Role
    text: str = Field(description="the text kept, in the order it appears in the run's text")
    tokens: int = Field(description="tokens the server generated for this request (its cost)")
    seconds: float = Field(description="client wall time of the request")
    start_char: int = Field(description="offset of `text` in the run's text")
    start_token: int = Field(description="tokens generated in the run before this request")
    finish: Finish
    trigger: str | None = Field(
        default=None, description="large segments: the trigger word that handed the text over"
    )
    discarded: str = Field(
        default="", description="text the server returned past a trigger it did not stop at, dropped"
    )


class ThinkRun(Strict):
    """One generation of one problem in one test mode: the measurements and the whole text."""

    problem_id: str
    run: int
    mode: TestMode
    seed: int | None
    latency_s: float
    tokens: int
    small_tokens: int
    large_tokens: int
    small_seconds: float
    large_seconds: float
    tokens_per_s: float | None
    large_ratio: float | None = Field(description="large_tokens / tokens; 1.0 for the large model alone")
    interventions: int = Field(description="large segments started by a trigger")
    stopped_by: StoppedBy
    answer: str | None
    reference: str | None
    correct: bool | None
    text: str
    segments: list[ThinkSegment]
    error: str | None = None

    @field_validator("mode")
    @classmethod
    def _one_mode(cls, mode: TestMode) -> TestMode:
        return one_mode(mode)


class Proportion(Strict):
    """k successes of n with Wilson's 95% score interval."""

    k: int
    n: int
    rate: float
    ci95_low: float
    ci95_high: float


class PairedRatio(Strict):
    """Geometric mean of per-pair ratios a_i / b_i with a t interval (see `paired_ratio`)."""

    ratio: float
    ci95_low: float | None
    ci95_high: float | None
    p_value: float | None
    n_pairs: int


class AccuracyTest(Strict):
    """Is the accuracy of speculative thinking different from the large model's alone?"""

    method: Literal["mcnemar-exact", "fisher-exact"]
    large: Proportion
    spec: Proportion
    difference: float = Field(description="spec rate - large rate")
    large_only: int | None = Field(default=None, description="McNemar: pairs right only with the large model")
    spec_only: int | None = Field(default=None, description="McNemar: pairs right only with spec thinking")
    p_value: float


class ModeSummary(Strict):
    """The complete runs of one test mode, summarised (failed runs only counted)."""

    mode: TestMode
    runs: int
    failed: int

    @field_validator("mode")
    @classmethod
    def _one_mode(cls, mode: TestMode) -> TestMode:
        return one_mode(mode)

    latency_s: Summary | None
    tokens_per_s: Summary | None
    tokens: Summary | None
    large_tokens: Summary | None
    large_ratio: Summary | None
    interventions: Summary | None
    accuracy: Proportion | None


class ProblemSummary(Strict):
    """Per problem: mean latency of each mode, the speedup, the large-model share, answers right."""

    problem_id: str
    large_latency_s: float | None
    spec_latency_s: float | None
    speedup: float | None
    spec_large_ratio: float | None
    large_correct: str | None = Field(description='"k/n" runs right, None without a reference')
    spec_correct: str | None


class ThinkWarningCode(StrEnum):
    FAILED_RUNS = "failed-runs"
    ONE_RUN = "one-run"
    SPEC_SLOWER = "spec-slower"
    NO_SIGNIFICANT_SPEEDUP = "no-significant-speedup"
    ACCURACY_DROP = "accuracy-drop"
    NO_TRIGGERS = "no-triggers"
    MAX_TOKENS = "max-tokens"


class ThinkWarning(Strict):
    """A think warning as data (rendered by `velobench.report.warnings.text`)."""

    code: ThinkWarningCode
    params: WarningParams = Field(default_factory=dict)
    message: str | None = Field(
        default=None, description="files of think version 3: the text as written then (shown as is)"
    )


class ThinkSummary(Strict):
    """Everything `velobench think` concludes from its runs."""

    large: ModeSummary | None
    spec: ModeSummary | None
    speedup: Ratio | None = Field(
        default=None, description="mean latency large / mean latency spec (Fieller CI, Welch p)"
    )
    speedup_paired: PairedRatio | None = Field(
        default=None, description="geometric mean of latency large / spec per (problem, run) pair"
    )
    throughput_ratio: Ratio | None = Field(default=None, description="mean tokens/s spec / large")
    large_token_reduction: float | None = Field(
        default=None, description="1 - mean large-model token ratio of the spec runs (the seed's figure)"
    )
    large_work_ratio: Ratio | None = Field(
        default=None, description="mean large-model tokens per spec run / mean tokens per large run"
    )
    accuracy: AccuracyTest | None = None
    problems: list[ProblemSummary] = Field(default_factory=list)
    warnings: list[ThinkWarning] = Field(default_factory=list)


class Triggers(Strict):
    words: list[str] = Field(min_length=1)

    @field_validator("words")
    @classmethod
    def _words(cls, v: list[str]) -> list[str]:
        out: list[str] = []
        for w in v:
            if not w.strip() or w != w.strip() or "\n" in w:
                raise ValueError(
                    f"trigger word {w!r} must be non-empty, without surrounding spaces or newlines"
                )
            if w.lower() not in out:
                out.append(w.lower())
        return out


class Segment(Strict):
    tokens: int = Field(ge=1)
    stop_at_paragraph: bool = True
    peek_tokens: int = Field(default=8, ge=1)


class Generation(Strict):
    max_tokens: int = Field(ge=1)
    stop_at_answer: bool = True


class PromptTemplate(Strict):
    template: str
    system: str = ""

    @field_validator("template")
    @classmethod
    def _template(cls, v: str) -> str:
        if PROBLEM_PLACEHOLDER not in v:
            raise ValueError(f"the template must contain {PROBLEM_PLACEHOLDER} (where the problem goes)")
        return v

    def messages(self, problem: str) -> list[dict[str, str]]:
        """The chat messages for one problem: [system,] user."""
        out = [{"role": "system", "content": self.system}] if self.system else []
        out.append({"role": "user", "content": self.template.replace(PROBLEM_PLACEHOLDER, problem)})
        return out


class Sampling(Strict):
    temperature: float = Field(ge=0)
    top_p: float = Field(gt=0, le=1)
    top_k: int = Field(ge=0)
    seed: int = -1

    def for_run(self, run: int) -> int | None:
        """The seed of run `run` (seed + run), or None when the seed is left to the server (< 0)."""
        return None if self.seed < 0 else self.seed + run


class ThinkConfig(Strict):
    triggers: Triggers
    segment: Segment
    generation: Generation
    prompt: PromptTemplate
    sampling: Sampling


class ThinkEngine(StrEnum):
    """What runs the two models: llama-servers or vLLM servers velobench starts, or servers
    already running (the values are `EngineName`'s)."""

    SERVER = "server"
    VLLM = "vllm"
    REMOTE = "remote"


class ThinkOptions(Strict):
    """How `velobench think` ran: every option beyond the think configuration."""

    large_model: str = Field(
        description="-m: the model that steps in (GGUF, catalog name; remote: served name)"
    )
    small_model: str = Field(description="-d: the model that reasons")
    engine: ThinkEngine = ThinkEngine.SERVER
    test_mode: TestMode = TestMode.BOTH
    prompts: str = Field(default="builtin", description="builtin[:CATEGORY], gsm8k, aime2025 or a JSONL file")
    num_problems: int | None = Field(default=None, ge=1)
    num_runs: int = Field(default=1, ge=1)
    config_file: str | None = Field(default=None, description="--config: the TOML laid over the defaults")
    threads: int | None = Field(default=None, ge=1)
    ctx_size: int = Field(ge=64, description="per server (vLLM: --max-model-len)")
    gpu_layers: str | None = None
    gpu_layers_draft: str | None = Field(default=None, description="-ngld: GPU layers of the small model")
    extra_args: list[str] = Field(default_factory=list)
    llama_cpp_path: str | None = None
    vllm_bin: str | None = None
    server_timeout: float | None = Field(default=None, gt=0)
    timeout: float = Field(gt=0, description="seconds one request may take")
    large_url: str | None = None
    small_url: str | None = None
    api_key: SecretStr | None = Field(default=None, exclude=True, description="never written anywhere")


class ThinkSetup(Strict):
    think: ThinkConfig
    run: ThinkOptions


class ThinkProblem(Strict):
    id: str
    text: str
    reference: str | None = None
    source: str


class ServerRecord(Strict):
    """One model's server: what velobench started (command, log) or where it found it (url)."""

    role: Role
    name: str
    url: str
    model: str | None = None
    protocol: Literal["llama", "openai"]
    command: str | None = None
    log: str | None = None
    ready_s: float | None = None
    version: str | None = None
    max_stop_strings: int | None = Field(
        default=None, description="stop strings one request may carry (None: any); fewer: see fit_stops"
    )


class ThinkReport(Strict):
    """Everything one `velobench think` measured, with how and where."""

    kind: Literal["think"] = "think"
    schema_version: int = THINK_SCHEMA_VERSION
    velobench_version: str = __version__
    timestamp: str = Field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    status: Literal["running", "complete", "interrupted", "failed"] = "running"
    error: str | None = None
    config: ThinkSetup
    environment: Environment
    binaries: list[BinaryInfo] = Field(default_factory=list)
    servers: list[ServerRecord] = Field(default_factory=list)
    problems: list[ThinkProblem] = Field(default_factory=list)
    runs: list[ThinkRun] = Field(default_factory=list)
    summary: ThinkSummary | None = None
    warnings: list[ThinkWarning] = Field(default_factory=list)
    wall_s: float | None = Field(default=None, description="first server start to the last run")

    def finished_runs(self) -> int:
        return sum(1 for r in self.runs if r.error is None)
