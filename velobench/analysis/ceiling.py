"""The speedup ceiling of speculative decoding, and why a run wins or loses.

Model (Leviathan, Kalman and Matias, 2023, "Fast Inference from Transformers via Speculative
Decoding", ICML, §3): the draft proposes γ tokens per step; the target verifies them in one
batched pass of γ+1 tokens; each drafted token is accepted independently with probability α
until the first rejection. Then, per step,

    E(α, γ) = (1 − α^(γ+1)) / (1 − α) = Σ_{k=0..γ} α^k   tokens   (E = γ+1 at α = 1)
    cost    = γ·c + v(γ)                                     target decode steps

with c the cost of one draft step and v(γ) the cost of verifying γ+1 tokens, both relative to
one target decode step. The ceiling is E / cost, the speedup over vanilla decoding that a
run reaching the model's assumptions would get. Leviathan et al. take v = 1 (verification as
cheap as one step, true when decoding is memory-bound, e.g. on a GPU); on a CPU, where
decoding is compute-bound, v(γ) approaches γ+1 and the ceiling falls below 1.

Pure functions returning values: the inputs come from a result file and from llama-bench rows
measured elsewhere; report.console.ceiling_text writes the line that explains a Ceiling.
"""

from __future__ import annotations

from collections.abc import Callable

from velobench.results.costs import Ceiling

_BISECTION_STEPS = 100  # halves [0, 1] far below float resolution


def expected_tokens_per_step(alpha: float, gamma: int) -> float:
    """E(α, γ) = (1 − α^(γ+1)) / (1 − α) = Σ_{k=0..γ} α^k, tokens produced per verification step.

    Computed as the sum, which is exact at α = 1 (E = γ+1) and monotone in α and γ.
    E(0, γ) = 1: the target always contributes one token. Raises ValueError outside
    0 ≤ α ≤ 1 or for γ < 0.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma!r}")
    return sum(alpha**k for k in range(gamma + 1))


def speedup_ceiling(alpha: float, gamma: int, c: float, verify_cost: float) -> float:
    """Ceiling = E(α, γ) / (γ·c + v(γ)): tokens per step over the step's cost in target steps.

    `c`: one draft step relative to one target decode step (≥ 0); `verify_cost`: v(γ), one
    target pass over γ+1 tokens relative to one target decode step (> 0). With c = 0 and
    v = 1 the ceiling is E itself.
    """
    if c < 0:
        raise ValueError(f"draft cost c must be >= 0, got {c!r}")
    if verify_cost <= 0:
        raise ValueError(f"verify cost must be > 0, got {verify_cost!r}")
    return expected_tokens_per_step(alpha, gamma) / (gamma * c + verify_cost)


def _solve_alpha(f: Callable[[float], float], target: float) -> float:
    """The α in [0, 1] with f(α) = target, for f non-decreasing, by bisection."""
    lo, hi = 0.0, 1.0
    if target <= f(lo):
        return lo
    if target >= f(hi):
        return hi
    for _ in range(_BISECTION_STEPS):
        mid = (lo + hi) / 2
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def alpha_from_acceptance(rate: float | None, gamma: int, mean_length: float | None = None) -> float:
    """Estimate the per-token acceptance probability α from what a run measured.

    The measured rate accepted/drafted is not α: tokens drafted after the first rejection
    count as drafted but can never be accepted, so with full drafts of γ tokens
    rate = (E(α, γ) − 1) / γ < α for 0 < α < 1.

    Estimator (both assume i.i.d. acceptance with probability α and that every step drafts
    γ tokens, i.e. drafts never stop early, as with draft p_min 0):
      * with the mean acceptance length L = 1 + accepted / draft steps (server engine):
        solve E(α, γ) = L for α by bisection;
      * otherwise solve (E(α, γ) − 1) / γ = rate by bisection.
    When drafts do stop early, fewer tokens are drafted per step: L is smaller than E(α, γ)
    (α is underestimated) and the rate is closer to α (α is overestimated from the rate).
    Values beyond the model's range clamp to α = 0 or 1.
    """
    if gamma < 1:
        raise ValueError(f"gamma must be >= 1, got {gamma!r}")
    if mean_length is not None:
        return _solve_alpha(lambda a: expected_tokens_per_step(a, gamma), mean_length)
    if rate is None:
        raise ValueError("alpha_from_acceptance needs an acceptance rate or a mean acceptance length")
    return _solve_alpha(lambda a: (expected_tokens_per_step(a, gamma) - 1) / gamma, rate)


def compute(
    alpha: float, gamma: int, draft_cost: float, verify_cost: float, measured: float | None = None
) -> Ceiling:
    """The ceiling for (α, γ, c, v(γ)); `measured`: the run's speedup, giving measured / ceiling."""
    e = expected_tokens_per_step(alpha, gamma)
    limit = speedup_ceiling(alpha, gamma, draft_cost, verify_cost)
    return Ceiling(
        alpha=alpha,
        gamma=gamma,
        draft_cost=draft_cost,
        verify_cost=verify_cost,
        expected_tokens=e,
        step_cost=gamma * draft_cost + verify_cost,
        ceiling=limit,
        measured=measured,
        fraction_of_ceiling=None if measured is None else measured / limit,
    )
