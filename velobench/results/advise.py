"""The result of `velobench advise` (`kind: "advise"`): measured costs, acceptance, the predicted
grid, the schedule, and the confirmations.

An advise result holds what was measured (every row of every llama-batched-bench repetition for
the target and the draft; every probe request's draft steps and accepted tokens per position),
what the model predicted from it (`velobench.advise.model`: speedup per concurrency × draft
length with a bootstrap interval), the schedule chosen from the prediction, and the points
confirmed by real `velobench load` levels (each a load result of its own beside this file).
Everything predicted is recomputed from the stored measurements by `advise.model.predict`.

Advise schema versions (bump `ADVISE_SCHEMA_VERSION` and add a line for every change):
  1 — first version.
  2 — the server's own cost per forward pass: the probe runs the vanilla arm too (interleaved with
      the speculative one) and keeps each vanilla request's seconds per decoded token
      (`acceptance.vanilla_s_per_token`); the result keeps the overhead derived from them
      (`server_overhead_s`); the draft's costs (the target's when it drafts for itself) add
      rows PP = k+1, B = b: its re-evaluation of every verified batch. Version-1 files read with
      neither, predicted without them (as they were).
  3 — `advise.synthetic_map`: the synthetic-acceptance checks ran at every draft length of the
      grid (the hardware's map), not only the first deciding point's. Optional (False): a
      version-2 file reads as it was.
  4 — `advise.synthetic_map` maps the lowest and the highest concurrency of the grid (the
      confirmations' own vanilla levels beside them); each synthetic level's file names its
      concurrency (`load-nd{k}-c{c}-synth{α}.json`). The fields are the same: a version-3 file
      reads as it was (a map at the lowest concurrency only).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import Field

from velobench import __version__
from velobench.results.config import RunConfig
from velobench.results.environment import Environment
from velobench.results.measures import Ratio
from velobench.results.schema import BinaryInfo
from velobench.validation import Strict

ADVISE_SCHEMA_VERSION = 4


class CostRow(Strict):
    """One row of llama-batched-bench: B sequences, PP prompt tokens each, then TG decode steps."""

    pp: int
    tg: int
    batch: int
    t_pp_s: float = Field(description="prompt phase: one batch of B·PP tokens, seconds")
    t_tg_s: float = Field(description="TG steps of B tokens each, seconds")


class ModelCosts(Strict):
    """Every repetition of llama-batched-bench on one model."""

    model: str
    commands: list[str]
    repetitions: list[list[CostRow]] = Field(description="each repetition's rows, of every command")


class RequestAcceptance(Strict):
    """One probe request: its verification steps with a draft, and per draft position i the
    steps whose first i+1 drafted tokens were all accepted (the server's per-position counters)."""

    prompt_id: str | None = None
    draft_steps: int
    accepted_per_position: list[int]


class AcceptanceProbe(Strict):
    """The short real speculative run acceptance per position is read from."""

    n_draft: int
    requests: list[RequestAcceptance]
    vanilla_s_per_token: list[float] = Field(
        default_factory=list,
        description="per vanilla probe request: the server's seconds per decoded token (1 / decode tokens/s)",
    )
    result_file: str = Field(
        description="the probe's own `velobench run` result, relative to this result's folder"
    )


class Cell(Strict):
    """The prediction at one (concurrency, draft length), with its 95% bootstrap interval."""

    concurrency: int
    n_draft: int
    speedup: float = Field(description="whole requests, prefill included (the measured closed loop's ratio)")
    ci95_low: float | None
    ci95_high: float | None
    decode_speedup: float = Field(
        description="the decode phase alone: E(k)·d(b)/T(b,k) (the ceiling at b = 1)"
    )
    expected_tokens: float = Field(description="E(k): tokens per verification step per sequence")
    step_ms: float = Field(description="T(b, k): draft k steps + verify k+1 tokens, at batch b")
    decode_ms: float = Field(description="T_dec(b): one vanilla decode step at batch b")


class ScheduleEntry(Strict):
    """What to deploy for a range of concurrency: a draft length, or none (vanilla)."""

    concurrency_from: int
    concurrency_to: int
    n_draft: int | None = Field(description="None: speculation does not pay here, run vanilla")
    predicted: float = Field(description="the predicted speedup of that choice (1 for vanilla)")
    llama_server: str = Field(description="the llama-server command line for this range")


class CrossoverPrediction(Strict):
    """Per draft length, the lowest concurrency of the grid at which speculation stops paying."""

    n_draft: int
    concurrency: int | None = Field(description="None: it pays at every concurrency of the grid")


class Confirmation(Strict):
    """One deciding point measured for real: prediction vs measurement, both with intervals."""

    concurrency: int
    n_draft: int
    why: str
    predicted: Cell
    measured: Ratio | None = Field(description="speculative ÷ vanilla output tokens/s at this level")
    agrees: bool | None = Field(description="within 10% of the prediction, or the two 95% intervals overlap")
    miss: float | None = Field(description="measured / predicted − 1")
    synthetic_rates: list[float] | None = Field(
        default=None,
        description="llama-server's --spec-synth-rates at this point (the cost model's own check)",
    )
    measured_acceptance: list[float] | None = Field(
        default=None, description="a_i the server counted at this level (/metrics), to compare with the rates"
    )


class AdviseOptions(Strict):
    """What `velobench advise` was asked (recorded in the result)."""

    concurrencies: list[int]
    n_drafts: list[int]
    probe_requests: int
    requests: int = Field(
        description="requests per confirmation level, at the least (a level at concurrency c runs at least 10·c)"
    )
    repetitions: int = Field(description="llama-batched-bench runs per model")
    bootstrap: int
    seed: int
    confirm: bool
    prefill: bool = Field(default=True, description="the prediction includes each request's prefill")
    synthetic: list[float] = Field(
        default_factory=list,
        description="α of the synthetic-acceptance checks (a_i = α^i), at the first deciding point's concurrency",
    )
    synthetic_map: bool = Field(
        default=False,
        description="the synthetic checks ran at every draft length of the grid, at its lowest and highest "
        "concurrency (schema 3: the lowest only; else at the first deciding point only)",
    )


class AdviseReport(Strict):
    """Everything one `velobench advise` measured, predicted, chose and confirmed."""

    kind: Literal["advise"] = "advise"
    schema_version: int = ADVISE_SCHEMA_VERSION
    velobench_version: str = __version__
    timestamp: str = Field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    status: Literal["running", "complete", "interrupted", "failed"] = "running"
    error: str | None = None
    config: RunConfig
    advise: AdviseOptions
    environment: Environment
    binaries: list[BinaryInfo] = Field(default_factory=list)
    target_costs: ModelCosts | None = None
    draft_costs: ModelCosts | None = Field(
        default=None, description="None: the draft is the target itself (same costs), or no draft model"
    )
    self_draft: bool = False
    acceptance: AcceptanceProbe | None = None
    server_overhead_s: float | None = Field(
        default=None,
        description="llama-server's own seconds per forward pass beyond llama-batched-bench's "
        "(`advise.model.server_overhead`), added to every pass the prediction counts",
    )
    prompt_tokens: int | None = Field(
        default=None,
        description="the probe's mean prompt length, prefilled per request in the prediction (0: decode only)",
    )
    grid: list[Cell] = Field(default_factory=list)
    schedule: list[ScheduleEntry] = Field(default_factory=list)
    crossovers: list[CrossoverPrediction] = Field(default_factory=list)
    vllm_speculative_config: dict[str, object] | None = Field(
        default=None,
        description="vLLM's --speculative-config: the schedule as num_speculative_tokens_per_batch_size",
    )
    confirmations: list[Confirmation] = Field(default_factory=list)
    confirm_files: list[str] = Field(
        default_factory=list, description="the confirmation load results, relative to this result's folder"
    )
    phases_s: dict[str, float] = Field(default_factory=dict, description="wall seconds per phase")
    wall_s: float | None = None
    notes: list[str] = Field(default_factory=list)
