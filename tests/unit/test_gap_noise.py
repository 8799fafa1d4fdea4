"""The near-tie margin from measured gap noise: `gap_shifts` and `margin_from_shifts` on a real
capture (SmolLM2-135M Q4_1, llama-server's single-token decode against a batched evaluation of the
same positions, tests/fixtures/lossless/gap-noise-smollm2.json), checked against numpy directly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from velobench.analysis.lossless import NEAR_TIE_NATS, classify, gap_shifts, margin_from_shifts
from velobench.results.schema import DivergenceProbe, TokenProb

CAPTURE = Path(__file__).parents[1] / "fixtures" / "lossless" / "gap-noise-smollm2.json"


def _rows() -> list[tuple[list[tuple[int, float]], list[tuple[int, float]]]]:
    data = json.loads(CAPTURE.read_text())
    return [([tuple(x) for x in r["single"]], [tuple(x) for x in r["batched"]]) for r in data["rows"]]


def _numpy_shifts(rows: list[tuple[list[tuple[int, float]], list[tuple[int, float]]]]) -> np.ndarray:
    out = []
    for single, batched in rows:
        (a, la), (b, lb) = single
        got = dict(batched)
        if set(got) == {a, b}:
            out.append(abs((la - lb) - (got[a] - got[b])))
    return np.array(out)


def test_shifts_and_margin_match_numpy_on_the_real_capture() -> None:
    rows = _rows()
    shifts = gap_shifts(rows)
    direct = _numpy_shifts(rows)
    assert len(shifts) == len(direct) == 118
    assert np.allclose(shifts, direct)
    for q in (0.5, 0.9, 0.99, 1.0):
        assert margin_from_shifts(shifts, q) == pytest.approx(float(np.quantile(direct, q)))
    # the batching noise is real: some positions move by more than the old 0.25 nats
    assert max(shifts) > 0.25
    # the default sits at or above the measured 0.99 quantile
    assert margin_from_shifts(shifts, 0.99) <= NEAR_TIE_NATS


def test_a_flip_counts_as_a_negative_batched_gap() -> None:
    rows = [([(1, -1.0), (2, -1.1)], [(2, -1.0), (1, -1.2)])]
    assert gap_shifts(rows) == [pytest.approx(0.3)]  # 0.1 − (−0.2)


def test_rows_without_the_same_pair_are_skipped() -> None:
    assert gap_shifts([([(1, -1.0), (2, -2.0)], [(1, -1.0), (3, -2.0)]), ([(1, -1.0)], [(1, -1.0)])]) == []


def test_margin_refuses_nothing_to_measure_and_bad_quantiles() -> None:
    with pytest.raises(ValueError, match="no gap shifts"):
        margin_from_shifts([])
    with pytest.raises(ValueError, match="quantile"):
        margin_from_shifts([0.1], 0.0)


def test_classification_follows_the_margin_given() -> None:
    probe = DivergenceProbe(
        prompt_id="p",
        position=0,
        baseline_token=1,
        candidate_token=2,
        top=[TokenProb(id=1, text="a", logprob=-1.0), TokenProb(id=2, text="b", logprob=-1.4)],
    )
    assert classify(probe, margin=0.25).divergence == "decisive"
    assert classify(probe, margin=0.6).divergence == "near-tie"


@pytest.mark.parametrize(
    ("name", "positions"), [("gap-noise-gemma3.json", 111), ("gap-noise-qwen05.json", 49)]
)
def test_the_other_models_shift_less_than_the_default(name: str, positions: int) -> None:
    data = json.loads((CAPTURE.parent / name).read_text())
    rows = [([tuple(x) for x in r["single"]], [tuple(x) for x in r["batched"]]) for r in data["rows"]]
    shifts = gap_shifts(rows)
    assert len(shifts) == positions
    assert margin_from_shifts(shifts, 1.0) <= NEAR_TIE_NATS
