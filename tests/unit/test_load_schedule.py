"""`velobench load --schedule` (issue 20): the ABBA order of levels, the text that shows it, when
a load run stays blocked, and the interleaved sweep's control flow (which arm runs which level,
a saturated arm stopping while the other goes on alone). The servers themselves run for real in
tests/integration/test_load_interleave.py; here the level runner is a stub that records calls."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from velobench.load import run as load_run
from velobench.load.plan import level_plans, load_options
from velobench.load.render import order_text, schedule_text
from velobench.results import store
from velobench.results.config import Schedule
from velobench.results.load import LoadReport, Saturation
from velobench.results.maxrate import SearchOptions
from velobench.runner.schedule import level_order

FIXTURE = Path(__file__).parents[1] / "fixtures" / "schema-versions" / "load-v6.json"
AB = ["vanilla", "speculative"]


def test_levels_alternate_abba_and_a_linear_drift_cancels() -> None:
    order = [m for i in range(4) for m in level_order(i, AB)]
    assert order == ["vanilla", "speculative", "speculative", "vanilla"] * 2
    # slot t has drift t: over every two adjacent levels each arm's mean slot is the same
    for first in range(0, 8, 4):
        block = order[first : first + 4]
        mean = {m: sum(first + t for t, x in enumerate(block) if x == m) / 2 for m in AB}
        assert mean["vanilla"] == mean["speculative"]
    assert level_order(1, ["vanilla"]) == ["vanilla"]


def test_the_rendered_order_is_the_order_that_runs() -> None:
    """render.order_text writes level_order's rule out (rendering never imports the runner)."""
    for n in range(1, 6):
        text = order_text(n, AB)
        blocks = text.split(": ", 1)[1].split(" (")[0].split()
        ran = ["".join("A" if m == "vanilla" else "B" for m in level_order(i, AB)) for i in range(n)]
        assert blocks == ran, text
    assert order_text(2, AB) == "interleaved, level by level: AB BA (A = vanilla, B = speculative)"


def test_an_old_result_reads_as_blocked() -> None:
    rep = store.load_result(FIXTURE)
    assert isinstance(rep, LoadReport) and rep.schedule == "blocked"
    assert rep.config.schedule is Schedule.BLOCKED
    assert all(lvl.position is None and lvl.started_s is None for m in rep.modes.values() for lvl in m.levels)
    assert schedule_text(rep).startswith("blocked (every vanilla level")


class SideBySide:
    def side_by_side(self) -> str | None:
        return None


class Crowded:
    def side_by_side(self) -> str | None:
        return "two vLLM servers do not fit at once: 0.9 + 0.9 > 1"


def test_which_schedule_a_load_run_uses() -> None:
    rep = store.load_result(FIXTURE)
    assert isinstance(rep, LoadReport)
    cfg = rep.config.model_copy(update={"schedule": Schedule.INTERLEAVED})
    both = AB
    search = SearchOptions(kind="rate", goodput_min=0.9, start=1, max_level=8, resolution=0.25, max_levels=8)
    engine: Any = SideBySide()
    assert load_run.load_schedule(cfg, engine, both, None) == (Schedule.INTERLEAVED, None)
    assert load_run.load_schedule(cfg, engine, ["vanilla"], None) == (Schedule.BLOCKED, None)
    blocked = cfg.model_copy(update={"schedule": Schedule.BLOCKED})
    assert load_run.load_schedule(blocked, engine, both, None) == (Schedule.BLOCKED, None)
    kind, why = load_run.load_schedule(cfg, Crowded(), both, None)  # type: ignore[arg-type]
    assert kind is Schedule.BLOCKED and why is not None and "do not fit" in why
    kind, why = load_run.load_schedule(cfg, engine, both, search)
    assert kind is Schedule.BLOCKED and why == load_run.SEARCH_BLOCKED


# --------------------------------------------------------------------------- the sweep's control flow


@contextlib.asynccontextmanager
async def no_client(*_: object, **__: object) -> AsyncIterator[None]:
    yield None


def interleaved_sweep(
    monkeypatch: pytest.MonkeyPatch, levels: int, stops: dict[tuple[str, float], bool]
) -> list[tuple[str, float]]:
    """run_interleaved over `levels` concurrency levels with a stub per level; the (mode, level)
    pairs in the order they ran. `stops`: which level makes its mode stop (saturated)."""
    ran: list[tuple[str, float]] = []

    async def level(
        _client: object, _h: object, _cfg: object, _o: object, mode: str, p: Any, *_: object
    ) -> tuple[bool, bool]:
        ran.append((mode, p.level()))
        return False, stops.get((mode, p.level()), False)

    async def warm(*_: object) -> None:
        return None

    monkeypatch.setattr(load_run, "open_client", no_client)
    monkeypatch.setattr(load_run, "run_level", level)
    monkeypatch.setattr(load_run, "warm_up", warm)
    opts = load_options(sweep="concurrency=" + ",".join(str(2**i) for i in range(levels)), requests=2)
    handles: Any = {"vanilla": object(), "speculative": object()}
    cfg: Any = None
    done: Any = {"vanilla": None, "speculative": None}
    assert not asyncio.run(load_run.run_interleaved(handles, cfg, opts, level_plans(opts), [], done))
    return ran


def test_an_interleaved_sweep_runs_every_level_of_both_arms_in_abba_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran = interleaved_sweep(monkeypatch, 4, {})
    assert ran == [
        ("vanilla", 1),
        ("speculative", 1),
        ("speculative", 2),
        ("vanilla", 2),
        ("vanilla", 4),
        ("speculative", 4),
        ("speculative", 8),
        ("vanilla", 8),
    ]


def test_a_saturated_arm_stops_and_the_other_goes_on_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    ran = interleaved_sweep(monkeypatch, 4, {("speculative", 2): True})
    assert ran == [
        ("vanilla", 1),
        ("speculative", 1),
        ("speculative", 2),
        ("vanilla", 2),
        ("vanilla", 4),
        ("vanilla", 8),
    ]
    ran = interleaved_sweep(monkeypatch, 4, {("speculative", 2): True, ("vanilla", 4): True})
    assert ran[-1] == ("vanilla", 4) and len(ran) == 5  # both stopped: the sweep ends


def test_the_saturation_line_names_the_arm_that_stops_and_the_one_that_goes_on(tmp_path: Path) -> None:
    rep = store.load_result(FIXTURE)
    assert isinstance(rep, LoadReport)
    rep = rep.model_copy(deep=True, update={"schedule": "interleaved", "stopped_early": None})
    rep.load.levels = [1.0, 2.0, 4.0]
    rep.load.sweep = rep.load.stop_on_saturation = True
    sweep = load_run.Sweep(rep, tmp_path / "r.json", Console(file=io.StringIO()))
    spec = rep.modes["speculative"]
    spec.saturation = Saturation(
        level=2.0, reason="throughput", text="speculative saturated at concurrency 2"
    )
    assert sweep.saturated(spec, 2.0, False)
    assert rep.stopped_early == (
        "speculative saturated at concurrency 2: speculative stops there (concurrency 4 not run for it); "
        "vanilla goes on alone"
    )
    assert sweep.stop_at is None  # the other arm's levels are not cut
    van = rep.modes["vanilla"]
    van.saturation = Saturation(level=4.0, reason="errors", text="vanilla saturated at concurrency 4")
    assert sweep.saturated(van, 4.0, False)  # its last level: nothing more to say
    assert rep.stopped_early.endswith("vanilla goes on alone")
