"""The result file of `velobench lossless` (`"kind": "lossless"`): sampled outputs and the test.

    kind, schema_version, velobench_version, timestamp, status, error
    config       the RunConfig the engine was made from (models, method, engine, temperature,
                 -n = tokens per sample, seed)
    settings     the test's own settings: samples per prompt and arm, top-p, top-k, time bound,
                 alpha, the requested detectable difference
    environment, binaries
    arms         per mode (vanilla, speculative): the session it ran on and every sample
                 (prompt, seed, the tokens or, where the engine returns no ids, the text)
    test         the two-sample test recomputed from the samples (`analysis.twosample`,
                 `analysis.lossless.sampled_test`): per prompt and position the G-test's p, Holm's
                 adjusted p, the detectable difference; the verdict's figures
    lossy        settings velobench knows change the output distribution ("lossy by design")
    elapsed_s    sampling wall time; `stopped_by` says whether the time bound cut it short

Lossless schema versions (bump `LOSSLESS_SCHEMA_VERSION` and add a line for every change):
  1 — first version: the fields above.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import Field

from velobench import __version__
from velobench.results.config import RunConfig
from velobench.results.environment import Environment
from velobench.results.schema import BinaryInfo, SessionInfo
from velobench.validation import Strict

LOSSLESS_SCHEMA_VERSION = 1


class SampleSettings(Strict):
    """How each arm samples, and what the test is asked to see."""

    samples: int = Field(description="generations per prompt and arm asked for")
    tokens: int = Field(description="tokens per generation (positions tested)")
    temperature: float
    top_p: float = 1.0
    top_k: int = 0
    max_time_s: float | None = Field(default=None, description="sampling time bound, both arms together")
    alpha: float = 0.05
    detect: float = Field(default=0.1, description="the total variation the user wants to detect")


class Sample(Strict):
    prompt_id: str
    seed: int
    tokens: list[int] | None = Field(
        default=None, description="generated token ids, where the engine gives them"
    )
    text: str = ""


class Arm(Strict):
    mode: str
    binary: str
    session: SessionInfo | None = None
    samples: list[Sample] = Field(default_factory=list)


class PositionTest(Strict):
    """One prompt's token position: the two arms' outcomes compared (a 2 × K G-test)."""

    prompt_id: str
    position: int = Field(description="0-based token position in the generation")
    unit: Literal["token", "char"] = "token"
    n_baseline: int
    n_candidate: int
    categories: int = Field(description="distinct outcomes at this position in either arm")
    statistic: float
    p_value: float
    method: str = Field(description="chi-square (asymptotic) | permutation (Monte-Carlo) | none")
    p_holm: float = Field(description="Holm-adjusted over every prompt and position")
    observed_tv: float = Field(description="total variation between the two empirical distributions")
    detectable_tv: float | None = Field(
        description="smallest TV detected with 80% probability at this N (None: not even TV 1)"
    )


class SampledTest(Strict):
    """The verdict's figures: reject when any Holm-adjusted p ≤ alpha."""

    method: str
    alpha: float
    tests: list[PositionTest] = Field(default_factory=list)
    rejected: bool = False
    smallest_p_holm: float | None = None
    worst: PositionTest | None = Field(default=None, description="the position with the smallest Holm p")
    n_baseline: int = Field(
        default=0, description="samples per prompt in the baseline arm (fewest over prompts)"
    )
    n_candidate: int = 0
    detectable_tv_first: float | None = Field(
        default=None, description="first-token TV detected with 80% probability (worst over prompts)"
    )
    detectable_tv_any: float | None = Field(
        default=None, description="the same at every tested position (worst over prompts and positions)"
    )
    detect: float = 0.1
    samples_needed: int | None = Field(
        default=None, description="samples per prompt and arm to detect `detect` at the first token"
    )


class LosslessReport(Strict):
    """Everything one `velobench lossless` sampled and concluded."""

    kind: Literal["lossless"] = "lossless"
    schema_version: int = LOSSLESS_SCHEMA_VERSION
    velobench_version: str = __version__
    timestamp: str = Field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    status: Literal["running", "complete", "interrupted", "failed"] = "running"
    error: str | None = None
    config: RunConfig
    settings: SampleSettings
    environment: Environment
    binaries: list[BinaryInfo] = Field(default_factory=list)
    prompts: dict[str, str] = Field(default_factory=dict, description="prompt id → text")
    arms: dict[str, Arm] = Field(default_factory=dict)
    test: SampledTest | None = None
    lossy: list[str] = Field(default_factory=list, description="settings lossy by design")
    elapsed_s: float | None = None
    stopped_by: Literal["samples", "max-time", "interrupted"] | None = None

    def sample_count(self) -> int:
        return sum(len(a.samples) for a in self.arms.values())
