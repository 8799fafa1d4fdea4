"""What one decode step and one verification batch cost on this hardware (llama-bench's numbers).

    llama-bench -m TARGET -p 1,γ1+1,γ2+1,... -n 32 -o json   → pp(k) tokens/s, tg tokens/s
    llama-bench -m DRAFT  -n 32 -o json                        → the draft's tg tokens/s

verify_cost(k) = (k / pp_k) / (1 / tg): the time to verify k tokens in one batch, in units of
one single-token decode step of the target. draft_cost = tg_target / tg_draft: one draft token
in the same units. On a GPU verify_cost(k) stays near 1 for small k (decoding is
memory-bound); on a 2-core CPU it grows almost like k, which is why speculation loses there.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from velobench.analysis.ceiling import draft_cost_from_tg, verify_cost


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


def parse_bench_json(text: str) -> list[dict[str, Any]]:
    """llama-bench `-o json` output: a list of test objects (`n_prompt`, `n_gen`, `avg_ts`, ...)."""
    try:
        rows = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"llama-bench output is not JSON: {text.strip()[:200]!r}") from exc
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "avg_ts" in r for r in rows):
        raise ValueError(f"llama-bench JSON is not a list of tests: {text.strip()[:200]!r}")
    return rows


def throughput(rows: list[dict[str, Any]]) -> tuple[dict[int, float], float | None]:
    """Prompt-processing tokens/s by batch size, and token-generation tokens/s."""
    pp = {int(r["n_prompt"]): float(r["avg_ts"]) for r in rows if r["n_gen"] == 0 and r["n_prompt"] > 0}
    tg = [float(r["avg_ts"]) for r in rows if r["n_prompt"] == 0 and r["n_gen"] > 0]
    return pp, (tg[0] if tg else None)
