"""The speedup ceiling model (Leviathan et al., 2023) on known values and its properties."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from velobench.analysis import ceiling
from velobench.report.console import ceiling_text
from velobench.results import costs
from velobench.results.store import load

REPORT = Path(__file__).parents[1] / "fixtures" / "reports" / "smollm2-135m-selfdraft-server.json"


def test_expected_tokens_known_values() -> None:
    assert ceiling.expected_tokens_per_step(0.0, 4) == 1.0
    assert ceiling.expected_tokens_per_step(1.0, 4) == 5.0
    assert ceiling.expected_tokens_per_step(1.0, 0) == 1.0
    assert ceiling.expected_tokens_per_step(0.8, 4) == pytest.approx((1 - 0.8**5) / 0.2)
    assert ceiling.expected_tokens_per_step(0.8, 4) == pytest.approx(3.3616)


@pytest.mark.parametrize(("alpha", "gamma"), [(-0.1, 4), (1.1, 4), (0.5, -1), (math.nan, 4)])
def test_expected_tokens_rejects_out_of_range(alpha: float, gamma: int) -> None:
    with pytest.raises(ValueError):
        ceiling.expected_tokens_per_step(alpha, gamma)


def test_ceiling_free_draft_and_verification_is_e() -> None:
    for alpha, gamma in [(0.0, 3), (0.5, 4), (0.8, 4), (1.0, 8)]:
        e = ceiling.expected_tokens_per_step(alpha, gamma)
        assert ceiling.speedup_ceiling(alpha, gamma, c=0.0, verify_cost=1.0) == pytest.approx(e)


def test_ceiling_on_a_compute_bound_machine_falls_below_one() -> None:
    # Verifying 5 tokens costs ~5 steps: even perfect acceptance cannot pay for the draft.
    assert ceiling.speedup_ceiling(1.0, 4, c=0.1, verify_cost=5.0) == pytest.approx(5 / 5.4)


def test_ceiling_rejects_bad_costs() -> None:
    with pytest.raises(ValueError):
        ceiling.speedup_ceiling(0.5, 4, c=-0.1, verify_cost=1.0)
    with pytest.raises(ValueError):
        ceiling.speedup_ceiling(0.5, 4, c=0.1, verify_cost=0.0)


@given(
    a1=st.floats(0.0, 1.0),
    a2=st.floats(0.0, 1.0),
    gamma=st.integers(0, 64),
)
def test_expected_tokens_increasing_in_alpha_and_bounded(a1: float, a2: float, gamma: int) -> None:
    lo, hi = sorted((a1, a2))
    e_lo, e_hi = ceiling.expected_tokens_per_step(lo, gamma), ceiling.expected_tokens_per_step(hi, gamma)
    assert e_lo <= e_hi
    for e in (e_lo, e_hi):
        assert 1.0 <= e <= gamma + 1


@given(alpha=st.floats(0.0, 1.0), gamma=st.integers(0, 64))
def test_expected_tokens_increasing_in_gamma(alpha: float, gamma: int) -> None:
    assert ceiling.expected_tokens_per_step(alpha, gamma) <= ceiling.expected_tokens_per_step(
        alpha, gamma + 1
    )


@given(alpha=st.floats(0.0, 1.0), gamma=st.integers(1, 16))
def test_alpha_recovered_from_mean_length_and_rate(alpha: float, gamma: int) -> None:
    e = ceiling.expected_tokens_per_step(alpha, gamma)
    assert ceiling.alpha_from_acceptance(None, gamma, mean_length=e) == pytest.approx(alpha, abs=1e-6)
    rate = (e - 1) / gamma  # accepted / drafted with full drafts of gamma tokens
    assert ceiling.alpha_from_acceptance(rate, gamma) == pytest.approx(alpha, abs=1e-6)


def test_alpha_from_rate_is_above_the_rate() -> None:
    # Tokens drafted after the first rejection are counted but never accepted: rate < α.
    alpha = ceiling.alpha_from_acceptance(0.5, 8)
    assert alpha > 0.5
    assert (ceiling.expected_tokens_per_step(alpha, 8) - 1) / 8 == pytest.approx(0.5)


def test_alpha_clamps_and_needs_a_measurement() -> None:
    assert ceiling.alpha_from_acceptance(1.0, 8) == 1.0
    assert ceiling.alpha_from_acceptance(0.0, 8) == 0.0
    assert ceiling.alpha_from_acceptance(None, 8, mean_length=12.0) == 1.0
    assert ceiling.alpha_from_acceptance(None, 8, mean_length=0.5) == 0.0
    with pytest.raises(ValueError):
        ceiling.alpha_from_acceptance(None, 8)


def test_compute_and_explain() -> None:
    c = ceiling.compute(alpha=0.8, gamma=4, draft_cost=0.35, verify_cost=4.6, measured=0.5)
    assert c.expected_tokens == pytest.approx(3.3616)
    assert c.step_cost == pytest.approx(4 * 0.35 + 4.6)
    assert c.ceiling == pytest.approx(3.3616 / 6.0)
    assert c.fraction_of_ceiling == pytest.approx(0.5 / c.ceiling)
    line = ceiling_text(c, device="this CPU")
    assert "verifying 5 tokens costs 4.6× one token on this CPU" in line
    assert "0.35× per drafted token" in line
    assert "α = 0.80" in line and "3.4 tokens" in line and "6.0 steps of cost" in line
    assert "cannot win" in line
    assert "\n" not in line
    gpu = ceiling_text(ceiling.compute(alpha=0.8, gamma=4, draft_cost=0.05, verify_cost=1.1))
    assert "can win" in gpu and "cannot" not in gpu


def test_ceiling_of_a_real_run_uses_its_measured_acceptance() -> None:
    report = load(REPORT)  # SmolLM2 drafting for itself: every draft token accepted
    acc = report.speculative.acceptance if report.speculative else None
    assert acc is not None
    gamma = report.config.n_draft
    c = ceiling.compute(
        ceiling.alpha_from_acceptance(acc.rate, gamma, acc.mean_length), gamma, 1.0, 9.0, report.speedup
    )
    assert c.gamma == gamma == 8
    assert c.alpha == 1.0
    assert c.expected_tokens == 9.0
    assert c.measured == report.speedup
    assert c.ceiling == pytest.approx(9 / 17)


def test_draft_cost_from_tg() -> None:
    assert costs.draft_cost_from_tg(40.0, 160.0) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        costs.draft_cost_from_tg(0.0, 1.0)
