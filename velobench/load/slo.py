"""The highest load that meets an SLO: a bounded search per arm, and the ratio of the two maxima.

`velobench load --find-max-rate --slo ttft=500ms,tpot=50ms` (or `--find-max-concurrency`) runs,
for each mode (vanilla, speculative) against its own server, levels chosen one at a time:

    a level meets the SLO   goodput share (requests of the measure window meeting every
                            objective, failed ones counting as not good) >= --goodput-min
    grow                    start at --search-start; while every level met, × growth (2),
                            capped at --search-max; every level met up to the cap: ended "bound"
                            (the maximum is at least the cap)
    shrink                  while no level met yet, ÷ growth, down to one resolution (rate) or 1
                            (concurrency); nothing met there: ended "none-met"
    bisect                  between the highest level met (lo) and the lowest missed (hi):
                            the midpoint (concurrency: whole numbers), until hi − lo <=
                            --search-resolution ("converged")
    at most --search-levels levels per arm ("max-levels": the bracket as it stands)

The arm's maximum M lies in the bracket [lo, hi): lo met the SLO, hi did not (hi = None: no level
missed, M >= lo). The point estimate is lo, the highest level measured to meet it (conservative
by at most hi − lo). The ratio of two maxima, candidate c over baseline b, is then bounded by
interval arithmetic on the brackets:

    R = M_c / M_b,   lo_c / hi_b  <=  R  <=  hi_c / lo_b,   point lo_c / lo_b

(an open bracket, hi = None, leaves that side of the interval unbounded: None). The interval
assumes goodput falls with load (one crossing of the threshold per arm) and that each level's
met/missed is right; the levels' own sampling noise (a share from N requests) is not in it. A
simulation (tests/unit/test_slo_search.py: a logistic goodput curve, binomial shares) puts the
true maximum inside the bracket in 97% of searches with 400 requests per level, and in only
43% with 20: a level whose share is near the threshold flips. More requests per level
(--requests) make the bracket trustworthy; few make it a rough guide.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from velobench.errors import VelobenchError
from velobench.results.load import Goodput, LoadOptions
from velobench.results.maxrate import (
    ArmSearch,
    Ended,
    MaxRateRatio,
    Phase,
    SearchKind,
    SearchOptions,
    SearchStep,
)

DEFAULT_MAX = {"rate": 64.0, "concurrency": 16.0}
DEFAULT_LEVELS = 8
GROWTH = 2.0


def search_options(
    kind: SearchKind,
    *,
    goodput_min: float = 0.9,
    start: float | None = None,
    max_level: float | None = None,
    resolution: float | None = None,
    max_levels: int = DEFAULT_LEVELS,
) -> SearchOptions:
    """The search's options, checked together; bad input is one line (VelobenchError).

    Defaults: start 1; max 64 req/s or concurrency 16; resolution a quarter of the start (rate)
    or 1 (concurrency). The bound must be reachable: growing ×2 from the start must get to
    --search-max within --search-levels levels.
    """
    start = 1.0 if start is None else start
    top = DEFAULT_MAX[kind] if max_level is None else max_level
    if not (0 < goodput_min <= 1):
        raise VelobenchError(f"--goodput-min must be in (0, 1], got {goodput_min:g}")
    for name, x in (("--search-start", start), ("--search-max", top)):
        if not (0 < x < math.inf):
            raise VelobenchError(f"{name} must be a positive number, got {x:g}")
        if kind == "concurrency" and x != int(x):
            raise VelobenchError(f"{name} must be a whole concurrency for --find-max-concurrency, got {x:g}")
    if top < start:
        raise VelobenchError(f"--search-max {top:g} is below --search-start {start:g}")
    res = (1.0 if kind == "concurrency" else start / 4) if resolution is None else resolution
    if not (0 < res < math.inf):
        raise VelobenchError(f"--search-resolution must be a positive number, got {res:g}")
    if max_levels < 2:
        raise VelobenchError(f"--search-levels must be at least 2, got {max_levels}")
    need = 1 + math.ceil(math.log(top / start, GROWTH) - 1e-9)
    if need > max_levels:
        raise VelobenchError(
            f"--search-max {top:g} cannot be reached from --search-start {start:g} in --search-levels "
            f"{max_levels} (doubling needs {need} levels): raise --search-levels or --search-start, or lower --search-max"
        )
    return SearchOptions(
        kind=kind,
        goodput_min=goodput_min,
        start=start,
        max_level=top,
        resolution=max(res, 1.0) if kind == "concurrency" else res,
        max_levels=max_levels,
        growth=GROWTH,
    )


class MaxRateSearch:
    """One arm's search as a state machine (pure): `next_level()` → run it → `record(...)` → ...

    `next_level()` is None once the search has ended (`arm.ended` says why).
    """

    def __init__(self, opts: SearchOptions, mode: str) -> None:
        self.opts = opts
        self.arm = ArmSearch(mode=mode)
        self._phase: Phase = "grow"

    @property
    def lo(self) -> float | None:
        return self.arm.highest_met

    @property
    def hi(self) -> float | None:
        return self.arm.lowest_missed

    def _snap(self, x: float) -> float:
        if self.opts.kind == "concurrency":
            return float(max(1, math.floor(x)))
        return float(f"{x:.4g}")

    def _end(self, why: Ended) -> None:
        self.arm.ended = why
        self.arm.text = arm_text(self.arm, self.opts)

    def next_level(self) -> float | None:
        o, steps = self.opts, self.arm.steps
        if self.arm.ended != "running":
            return None
        if not steps:
            self._phase = "grow"
            return self._snap(o.start)
        last = steps[-1].level
        lo, hi = self.lo, self.hi
        if lo is not None and hi is not None:
            mid = self._snap((lo + hi) / 2)
            if hi - lo <= o.resolution or mid <= lo or mid >= hi:
                self._end("converged")
                return None
        if len(steps) >= o.max_levels:
            self._end("max-levels")
            return None
        if hi is None:  # everything so far met: grow, up to the bound
            if last >= o.max_level:
                self._end("bound")
                return None
            self._phase = "grow"
            return self._snap(min(last * o.growth, o.max_level))
        if lo is None:  # nothing met yet: shrink, down to the floor
            floor = 1.0 if o.kind == "concurrency" else o.resolution
            if last <= floor:
                self._end("none-met")
                return None
            self._phase = "shrink"
            return self._snap(max(last / o.growth, floor))
        self._phase = "bisect"
        return self._snap((lo + hi) / 2)

    def record(self, level: float, goodput: Goodput | None) -> SearchStep:
        """The level's goodput (None: nothing finished in its window, so nothing met)."""
        good, total = (goodput.good, goodput.total) if goodput is not None else (0, 0)
        share = good / total if total else None
        met = share is not None and share >= self.opts.goodput_min
        step = SearchStep(level=level, phase=self._phase, good=good, total=total, share=share, met=met)
        self.arm.steps.append(step)
        if met:
            self.arm.highest_met = level if self.lo is None else max(self.lo, level)
        else:
            self.arm.lowest_missed = level if self.hi is None else min(self.hi, level)
        self.arm.text = arm_text(self.arm, self.opts)
        return step

    def interrupted(self) -> None:
        self._end("interrupted")


def run_search(opts: SearchOptions, mode: str, goodput_at: Callable[[float], Goodput | None]) -> ArmSearch:
    """The whole search against `goodput_at(level) -> Goodput | None` (tests; the load run drives
    `MaxRateSearch` level by level itself)."""
    s = MaxRateSearch(opts, mode)
    while (x := s.next_level()) is not None:
        s.record(x, goodput_at(x))
    return s.arm


def unit_of(kind: SearchKind) -> str:
    return "requests/s" if kind == "rate" else "requests in flight"


def _lvl(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"


def best_step(arm: ArmSearch) -> SearchStep | None:
    """The level with the highest goodput share (the highest level among equals)."""
    steps = [s for s in arm.steps if s.share is not None]
    return max(steps, key=lambda s: (s.share or 0.0, s.level)) if steps else None


def arm_text(arm: ArmSearch, opts: SearchOptions) -> str:
    """One line: `vanilla: max rate 3 requests/s (meets the SLO at 3, misses at 3.5; 6 levels, converged)`."""
    what = "rate" if opts.kind == "rate" else "concurrency"
    n = len(arm.steps)
    if arm.highest_met is None:
        best = best_step(arm)
        at = (
            f"; best goodput {best.share:.0%} at {what} {best.level:g}"
            if best is not None and best.share is not None
            else ""
        )
        return f"{arm.mode}: no {what} tried meets the SLO ({n} level(s), down to {_lvl(min((s.level for s in arm.steps), default=None))}{at})"
    if arm.lowest_missed is None:
        return (
            f"{arm.mode}: meets the SLO at every {what} tried, up to {arm.highest_met:g} {unit_of(opts.kind)}"
            f" ({n} level(s)): the maximum is at least that"
        )
    return (
        f"{arm.mode}: max {what} {arm.highest_met:g} {unit_of(opts.kind)} (meets the SLO at "
        f"{arm.highest_met:g}, misses at {arm.lowest_missed:g}; {n} level(s), {arm.ended})"
    )


def ratio_bounds(
    base_lo: float, base_hi: float | None, cand_lo: float, cand_hi: float | None
) -> tuple[float, float | None, float | None]:
    """(point, low, high) of M_c / M_b from the brackets (module docstring):
    point = cand_lo / base_lo, low = cand_lo / base_hi, high = cand_hi / base_lo."""
    return (
        cand_lo / base_lo,
        cand_lo / base_hi if base_hi is not None else None,
        cand_hi / base_lo if cand_hi is not None else None,
    )


def compare_arms(base: ArmSearch, cand: ArmSearch, kind: SearchKind) -> MaxRateRatio:
    """The two maxima and their ratio, in one sentence."""
    what = "rate" if kind == "rate" else "concurrency"
    unit = unit_of(kind)
    if base.highest_met is None or cand.highest_met is None:
        none = [a.mode for a in (base, cand) if a.highest_met is None]
        return MaxRateRatio(
            baseline=base.mode,
            candidate=cand.mode,
            ratio=None,
            low=None,
            high=None,
            text=f"no ratio: {' and '.join(none)} met the SLO at no {what} tried",
        )
    point, low, high = ratio_bounds(
        base.highest_met, base.lowest_missed, cand.highest_met, cand.lowest_missed
    )
    verb = "raises" if point > 1 else "lowers" if point < 1 else "keeps"
    interval = f"[{'-' if low is None else f'{low:.2f}'}, {'-' if high is None else f'{high:.2f}'}]"
    plus = "" if cand.lowest_missed is not None else " or more"
    plus_b = "" if base.lowest_missed is not None else " or more"
    return MaxRateRatio(
        baseline=base.mode,
        candidate=cand.mode,
        ratio=point,
        low=low,
        high=high,
        text=(
            f"speculation {verb} the SLO-compliant {what} from {base.highest_met:g}{plus_b} to "
            f"{cand.highest_met:g}{plus} {unit} ({point:.2f}x, bracket interval {interval})"
        ),
    )


def search_options_from_cli(
    *,
    find_max_rate: bool,
    find_max_concurrency: bool,
    slo: str | None,
    sweep: str | None,
    rate: float | None,
    concurrency: int | None,
    goodput_min: float,
    start: float | None,
    max_level: float | None,
    resolution: float | None,
    max_levels: int,
) -> SearchOptions:
    """`velobench load`'s search options checked against the rest of its options (one line each)."""
    if find_max_rate and find_max_concurrency:
        raise VelobenchError("--find-max-rate and --find-max-concurrency: search one of them")
    flag = "--find-max-rate" if find_max_rate else "--find-max-concurrency"
    if slo is None:
        raise VelobenchError(f"{flag} needs the objectives to meet: --slo ttft=500ms,tpot=50ms")
    if sweep is not None:
        raise VelobenchError(f"{flag} chooses the levels itself: drop --sweep")
    if rate is not None:
        raise VelobenchError(f"{flag} chooses the levels itself: drop --rate (--search-start sets the first)")
    if find_max_concurrency and concurrency is not None:
        raise VelobenchError("--find-max-concurrency chooses the concurrency: drop --concurrency")
    return search_options(
        "rate" if find_max_rate else "concurrency",
        goodput_min=goodput_min,
        start=start,
        max_level=max_level,
        resolution=resolution,
        max_levels=max_levels,
    )


def searched_options(opts: LoadOptions, search: SearchOptions) -> LoadOptions:
    """The load options of a search: no levels yet (each arm's search adds the ones it runs), no
    sweep (saturation does not stop a search), and for concurrency as many server slots as the
    highest level the search may try."""
    update: dict[str, object] = {"levels": [], "sweep": False}
    if search.kind == "concurrency":
        update["slots"] = int(search.max_level)
    return opts.model_copy(update=update)
