"""llama-bench output (captured from the real binary) → decode/verify costs."""

from __future__ import annotations

from pathlib import Path

import pytest

from velobench.engines.llama_bench import parse_bench_json, throughput
from velobench.results.costs import Costs

LLAMA = Path(__file__).parents[1] / "fixtures" / "llama"


def test_bench_json_to_costs() -> None:
    rows = parse_bench_json((LLAMA / "bench-smollm.json").read_text())
    pp, tg = throughput(rows)
    assert sorted(pp) == [1, 3, 5, 9]
    assert tg == pytest.approx(34.958706)
    costs = Costs(target_tg_ts=tg, draft_tg_ts=tg, pp_ts=pp, commands=[])
    assert costs.draft_cost == pytest.approx(1.0)  # a model drafting for itself
    assert costs.verify_cost(9) == pytest.approx(9 / pp[9] * tg)
    assert costs.verify_cost(7) is None


def test_failed_bench_output_is_rejected_quoting_it() -> None:
    with pytest.raises(ValueError, match=r"not JSON: '\['"):
        parse_bench_json((LLAMA / "bench-badmodel.json").read_text())
    with pytest.raises(ValueError, match="not a list of tests"):
        parse_bench_json('{"avg_ts": 1}')
