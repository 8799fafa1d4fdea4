"""What one decode step and one verification batch cost on this hardware (llama-bench's numbers), as persisted in a result.

The ceiling model that uses them is `analysis.ceiling`; the parser of llama-bench's JSON is
`engines.llama_bench`.

    llama-bench -m TARGET -p 1,γ1+1,γ2+1,... -n 32 -o json   → pp(k) tokens/s, tg tokens/s
    llama-bench -m DRAFT  -n 32 -o json                        → the draft's tg tokens/s

verify_cost(k) = (k / pp_k) / (1 / tg): the time to verify k tokens in one batch, in units of
one single-token decode step of the target. draft_cost = tg_target / tg_draft: one draft token
in the same units. On a GPU verify_cost(k) stays near 1 for small k (decoding is
memory-bound); on a 2-core CPU it grows almost like k, which is why speculation loses there.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Ceiling(BaseModel):
    """Inputs and outputs of the ceiling model, and how close a measured speedup came to it."""

    model_config = ConfigDict(extra="forbid")

    alpha: float
    gamma: int
    draft_cost: float
    verify_cost: float
    expected_tokens: float
    step_cost: float
    ceiling: float
    measured: float | None = None
    fraction_of_ceiling: float | None = None


class Costs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_tg_ts: float
    draft_tg_ts: float | None = None
    pp_ts: dict[int, float]
    commands: list[str]

    @property
    def draft_cost(self) -> float:
        """One draft token in target decode steps (0 when drafting needs no model, e.g. n-grams)."""
        return draft_cost_from_tg(self.target_tg_ts, self.draft_tg_ts) if self.draft_tg_ts else 0.0

    def verify_cost(self, k: int) -> float | None:
        """Verifying k tokens in one batch, in target decode steps (None if k was not measured)."""
        ts = self.pp_ts.get(k)
        return verify_cost(k, ts, self.target_tg_ts) if ts else None


def verify_cost(k: int, pp_ts: float, tg_ts: float) -> float:
    """Verifying k tokens in one batch, in target decode steps: (k / pp_ts) / (1 / tg_ts)."""
    return k * tg_ts / pp_ts


def draft_cost_from_tg(target_tg_ts: float, draft_tg_ts: float) -> float:
    """c = one draft decode step / one target decode step = target tg t/s ÷ draft tg t/s."""
    if target_tg_ts <= 0 or draft_tg_ts <= 0:
        raise ValueError("decode speeds must be > 0")
    return target_tg_ts / draft_tg_ts
