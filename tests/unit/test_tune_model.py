"""`velobench tune` predicts with advise's model at one request: the probe's per-position a_i
where the engine counts them, else a_i = α^i (the ceiling)."""

from __future__ import annotations

import pytest

from tests.unit.test_lifecycle import iteration
from tests.unit.test_runner import cfg
from velobench.advise import model
from velobench.advise.tune import probe_acceptance
from velobench.analysis import ceiling
from velobench.results.schema import ModeResult, Report
from velobench.telemetry.environment import capture


def probe(per_position: list[list[int] | None], steps: int = 10) -> Report:
    its = []
    for i, acc in enumerate(per_position, start=1):
        it = iteration(i)
        it.draft_steps = steps
        it.accepted_per_position = [float(x) for x in acc] if acc is not None else None
        its.append(it)
    rep = Report(config=cfg(), environment=capture())
    rep.modes["speculative"] = ModeResult(mode="speculative", binary="b", iterations=its)
    return rep


def test_per_position_counts_give_a_i() -> None:
    # two requests of 10 steps: a_i = Σ accepted at i / Σ steps
    got = probe_acceptance(probe([[8, 5, 2], [6, 3, 0]]), 3)
    assert got == pytest.approx([0.7, 0.4, 0.1])
    assert probe_acceptance(probe([[8, 5, 2, 1]]), 3) == pytest.approx([0.8, 0.5, 0.2])  # the first g_max


def test_no_counts_or_too_few_positions_fall_back_to_alpha() -> None:
    assert probe_acceptance(probe([None]), 3) is None  # the cli tools count no positions
    assert probe_acceptance(probe([[8, 5]]), 3) is None  # fewer positions than the largest n_draft
    assert probe_acceptance(probe([[0, 0, 0]], steps=0), 3) is None  # no step with a draft


def test_with_alpha_powers_it_is_the_ceiling() -> None:
    for alpha, g, c, v in ((0.6, 4, 0.2, 1.3), (0.9, 8, 0.05, 1.1), (0.3, 1, 0.5, 1.0)):
        accept = [alpha**i for i in range(1, 9)]
        assert model.speedup(accept, g, 1.0, c, v) == pytest.approx(ceiling.speedup_ceiling(alpha, g, c, v))


def test_measured_positions_move_the_prediction() -> None:
    """A draft whose late positions are accepted less than α^i predicts less at long drafts."""
    alpha = 0.7
    flat = [alpha**i for i in range(1, 5)]
    falling = [0.7, 0.4, 0.15, 0.05]
    assert model.speedup(falling, 4, 1.0, 0.1, 1.2) < model.speedup(flat, 4, 1.0, 0.1, 1.2)
    assert model.speedup(falling, 1, 1.0, 0.1, 1.2) == pytest.approx(model.speedup(flat, 1, 1.0, 0.1, 1.2))
