"""`velobench load --find-max-rate`: the persisted search for the highest load that meets an SLO.

Stored in a load result as `max_rate` (an optional field: files without it load as before). How
the search runs and how its ratio is bounded: `velobench.load.slo`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from velobench.validation import Strict

SearchKind = Literal["rate", "concurrency"]
Phase = Literal["grow", "shrink", "bisect"]
Ended = Literal["running", "converged", "max-levels", "bound", "none-met", "interrupted"]


class SearchOptions(Strict):
    """How one arm's search runs: from `start`, ×`growth` until a level misses (÷`growth` while
    the first ones miss), then bisection until the bracket is `resolution` wide, at most
    `max_levels` levels, never above `max_level`."""

    kind: SearchKind
    goodput_min: float = Field(description="a level meets the SLO when this share of its requests does")
    start: float
    max_level: float
    resolution: float = Field(description="the search ends once highest met and lowest missed are this close")
    max_levels: int = Field(description="levels per arm at most")
    growth: float = 2.0


class SearchStep(Strict):
    """One level the search ran: its goodput and whether it met the threshold."""

    level: float
    phase: Phase
    good: int = Field(description="measure-window requests meeting every objective")
    total: int = Field(description="measure-window requests (failed ones count as not good)")
    share: float | None
    met: bool


class ArmSearch(Strict):
    """One mode's search: every level in the order it ran, and the bracket it ended with (the
    maximum lies in [highest_met, lowest_missed); None: no such level)."""

    mode: str
    steps: list[SearchStep] = Field(default_factory=list)
    highest_met: float | None = None
    lowest_missed: float | None = None
    ended: Ended = "running"
    text: str = ""


class MaxRateRatio(Strict):
    """candidate's maximum ÷ baseline's: the point from the highest levels met, the interval from
    the brackets (`load.slo.ratio_bounds`); None where a bracket is open on that side."""

    baseline: str
    candidate: str
    ratio: float | None
    low: float | None
    high: float | None
    text: str


class MaxRateResult(Strict):
    """The search's options, each arm's search, and the ratio of the two maxima."""

    options: SearchOptions
    arms: dict[str, ArmSearch] = Field(default_factory=dict)
    ratio: MaxRateRatio | None = None
