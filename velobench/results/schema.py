"""The result file: a versioned pydantic schema, written atomically, loaded strictly.

Raw per-iteration samples are the record; every summary is derived from them by
`velobench.stats`. An undefined statistic is `null`, never NaN.

Schema versions (bump `SCHEMA_VERSION` and add a line for every change of format):
  1 — first version: config, environment, per-mode iterations and summaries, acceptance,
      speedup with propagated stddev, Fieller 95% interval and Welch p-value, warnings;
      streaming latencies (TTFT, ITL percentiles, TPOT) and /metrics acceptance per iteration
      and the server's log and command per mode for the server engine; per-prompt ids and
      categories, per-category summaries and the temperature-0 losslessness check; the
      llama-bench costs and the speedup ceiling.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from velobench import __version__
from velobench.analysis.ceiling import Ceiling
from velobench.analysis.costs import Costs
from velobench.analysis.stats import Ratio, Summary
from velobench.config import RunConfig
from velobench.environment import Environment
from velobench.errors import VelobenchError

SCHEMA_VERSION = 1

Mode = Literal["vanilla", "speculative"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    total_time_ms: float = Field(description="prompt eval + decode: generation time without model load")
    n_draft: int | None = None
    n_drafted: int | None = None
    n_accept: int | None = None
    acceptance_rate: float | None = None
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


class Acceptance(Strict):
    """Draft acceptance over all iterations of a speculative mode."""

    drafted: int
    accepted: int
    rate: float | None = Field(description="accepted / drafted over all iterations (token-weighted)")
    per_iteration: Summary | None = None
    draft_steps: int | None = Field(
        default=None, description="verification steps with a draft (server engine)"
    )
    mean_length: float | None = Field(default=None, description="1 + accepted / draft steps: tokens per step")
    accepted_per_position: list[float] | None = None


class ModeResult(Strict):
    mode: Mode
    binary: str
    server_log: str | None = None
    server_command: str | None = None
    server_ready_s: float | None = None
    iterations: list[Iteration]
    tokens_per_second: Summary | None = None
    time_to_first_token_ms: Summary | None = None
    total_time_ms: Summary | None = None
    e2e_ms: Summary | None = None
    tpot_ms: Summary | None = None
    itl_p50_ms: Summary | None = None
    itl_p99_ms: Summary | None = None
    acceptance: Acceptance | None = None


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
    INTERRUPTED = "interrupted"


class CategorySummary(Strict):
    """Per prompt category: tokens/s per mode, acceptance and the speedup with its uncertainty."""

    category: str
    n_prompts: int
    vanilla_tokens_per_second: Summary | None = None
    speculative_tokens_per_second: Summary | None = None
    acceptance_rate: float | None = None
    speedup: Ratio | None = None


class PromptMatch(Strict):
    prompt_id: str
    identical: bool
    first_difference: int | None = Field(
        default=None, description="index of the first differing token (server) or character (cli)"
    )
    unit: Literal["token", "char"] = "char"


class Losslessness(Strict):
    """At temperature 0, does speculative decoding reproduce vanilla's output, prompt by prompt?"""

    compared: int
    identical: int
    match_rate: float
    prompts: list[PromptMatch]


class Warning(Strict):
    code: WarningCode
    message: str


class BinaryInfo(Strict):
    name: str
    path: str
    source: str
    version: str
    commit: str | None


class Report(Strict):
    """Everything one `velobench run` measured, with how and where."""

    schema_version: int = SCHEMA_VERSION
    velobench_version: str = __version__
    timestamp: str = Field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    status: Literal["running", "complete", "interrupted", "failed"] = "running"
    error: str | None = None
    config: RunConfig
    environment: Environment
    binaries: list[BinaryInfo] = Field(default_factory=list)
    vanilla: ModeResult | None = None
    vanilla_from: str | None = Field(
        default=None, description="the baseline run the vanilla section was taken from"
    )
    speculative: ModeResult | None = None
    speedup: float | None = None
    speedup_stddev: float | None = None
    speedup_detail: Ratio | None = None
    costs: Costs | None = Field(default=None, description="llama-bench: decode and verification speeds")
    ceiling: Ceiling | None = Field(
        default=None, description="the speedup theory allows (Leviathan et al., 2023)"
    )
    categories: list[CategorySummary] = Field(default_factory=list)
    lossless: Losslessness | None = None
    warnings: list[Warning] = Field(default_factory=list)


def write_atomic(path: Path, data: str) -> None:
    """Write via a temp file in the same folder + rename: readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(report: Report, path: Path) -> None:
    write_atomic(path, report.model_dump_json(indent=2) + "\n")


def load(path: Path) -> Report:
    """Read a result file; reject unknown schema versions and malformed files with one line."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise VelobenchError(f"result file not found: {path}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise VelobenchError(f"{path}: not a JSON file ({exc})") from exc
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != SCHEMA_VERSION:
        raise VelobenchError(
            f"{path}: schema_version {version!r} is not one this velobench reads ({SCHEMA_VERSION})"
        )
    try:
        return Report.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise VelobenchError(f"{path}: invalid result file at {where}: {first['msg']}") from exc
