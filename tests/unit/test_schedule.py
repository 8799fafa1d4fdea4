"""The schedule (runner.schedule) and how the loop runs it: order, balance, drift cancelled,
both sessions open together, the blocked fallback, sessions kept across --target-ci rounds."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from tests.unit.test_runner import ScriptedEngine, cfg, noisy
from velobench.report.warnings import text
from velobench.results.schema import Mode, WarningCode
from velobench.runner import schedule
from velobench.runner.loop import run_benchmark
from velobench.telemetry.environment import capture


def codes(slots: list[schedule.Slot]) -> str:
    return "".join("A" if s.mode == "vanilla" else "B" for s in slots)


def test_interleaved_alternates_in_abba_blocks_per_prompt_and_round() -> None:
    assert codes(schedule.interleaved(0, 6, 3)) == "ABBAABBAABBA"  # P odd: round 2 continues
    assert codes(schedule.interleaved(0, 4, 2)) == "ABBABAAB"  # P even: round 2 flips
    assert codes(schedule.interleaved(0, 4, 1)) == "ABBAABBA"
    slots = schedule.interleaved(0, 5, 3)
    assert [(s.index, s.prompt) for s in slots[::2]] == [(1, 0), (2, 1), (3, 2), (4, 0), (5, 1)]
    # each pair's two slots are adjacent and share iteration number and prompt
    assert all(
        a.index == b.index and a.prompt == b.prompt for a, b in zip(slots[::2], slots[1::2], strict=True)
    )
    # later rounds continue the same design: --target-ci asks for it one round at a time
    assert schedule.interleaved(3, 3, 3) == schedule.interleaved(0, 6, 3)[6:]


@pytest.mark.parametrize("n_prompts", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("rounds", [2, 4])
def test_interleaved_is_balanced_and_cancels_a_linear_drift(n_prompts: int, rounds: int) -> None:
    slots = schedule.interleaved(0, n_prompts * rounds, n_prompts)
    # every prompt runs AB as often as BA, and each arm as often as the other
    first = Counter((s.prompt, s.mode) for s in slots[::2])
    assert all(first[(p, "vanilla")] == first[(p, "speculative")] for p in range(n_prompts))
    assert Counter(s.mode for s in slots) == {
        "vanilla": n_prompts * rounds,
        "speculative": n_prompts * rounds,
    }
    # a linear drift (slot t costs t) moves both arms' mean time equally: it cancels
    t = {m: [i for i, s in enumerate(slots) if s.mode == m] for m in ("vanilla", "speculative")}
    assert sum(t["vanilla"]) == sum(t["speculative"])
    # the blocked order does not: the speculative arm runs n slots later on average
    b = schedule.blocked(0, n_prompts * rounds, n_prompts)
    tb = {m: [i for i, s in enumerate(b) if s.mode == m] for m in ("vanilla", "speculative")}
    assert sum(tb["speculative"]) - sum(tb["vanilla"]) == (n_prompts * rounds) ** 2


def test_blocked_and_one_mode() -> None:
    assert codes(schedule.blocked(0, 3, 2)) == "AAABBB"
    assert [s.prompt for s in schedule.blocked(0, 3, 2)] == [0, 1, 0, 0, 1, 0]
    only: tuple[Mode, ...] = ("speculative",)
    assert codes(schedule.interleaved(0, 3, 2, only)) == "BBB"


class Counting(ScriptedEngine):
    """Counts the sessions it opens and how many are open at once; `refuse` says why both cannot."""

    def __init__(self, tps: dict[Mode, list[float]], refuse: str | None = None) -> None:
        super().__init__(tps)
        self.refuse = refuse
        self.opened: list[Mode] = []
        self.open_now = 0
        self.most_open = 0

    def side_by_side(self) -> str | None:
        return self.refuse

    @contextlib.contextmanager
    def session(self, mode: Mode) -> Iterator[ScriptedEngine.S]:
        self.opened.append(mode)
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            yield ScriptedEngine.S(self, mode)
        finally:
            self.open_now -= 1


def test_interleaved_run_holds_both_sessions_and_records_positions_and_start_times(tmp_path: Path) -> None:
    eng = Counting({"vanilla": [100.0] * 4, "speculative": [150.0] * 4})
    rep = run_benchmark(cfg(iterations=4, warmup=1), eng, capture(), tmp_path / "r.json")
    assert rep.schedule == "interleaved"
    assert eng.opened == ["vanilla", "speculative"] and eng.most_open == 2
    assert rep.vanilla is not None and rep.speculative is not None
    its = sorted(rep.vanilla.iterations + rep.speculative.iterations, key=lambda i: i.position or 0)
    assert [i.position for i in its] == list(range(1, 9))
    assert "".join("A" if i in rep.vanilla.iterations else "B" for i in its) == "ABBAABBA"
    starts = [i.started_s for i in its]
    assert starts[0] == 0.0 and all(a is not None and b is not None and a <= b for a, b in pairwise(starts))
    assert WarningCode.SCHEDULE_BLOCKED not in {w.code for w in rep.warnings}


def test_an_engine_that_cannot_hold_both_runs_blocked_and_says_why(tmp_path: Path) -> None:
    eng = Counting({"vanilla": [100.0] * 3, "speculative": [150.0] * 3}, refuse="two vLLM servers do not fit")
    rep = run_benchmark(cfg(), eng, capture(), tmp_path / "r.json")
    assert rep.schedule == "blocked" and eng.most_open == 1
    w = next(w for w in rep.warnings if w.code is WarningCode.SCHEDULE_BLOCKED)
    assert "two vLLM servers do not fit" in text(w) and "blocked schedule" in text(w)
    assert rep.vanilla is not None and [i.position for i in rep.vanilla.iterations] == [1, 2, 3]


def test_target_ci_keeps_both_sessions_open_across_rounds(tmp_path: Path) -> None:
    eng = Counting(noisy(60, 1.2, 0.3))
    rep = run_benchmark(cfg(target_ci=1.0, max_iterations=25), eng, capture(), tmp_path / "r.json")
    assert rep.stopping is not None and rep.stopping.stopped_by == "max-iterations"
    assert eng.opened == ["vanilla", "speculative"] and eng.most_open == 2  # once, for all 25 rounds
    assert rep.vanilla is not None and len(rep.vanilla.iterations) == 25


def test_target_ci_without_room_for_both_opens_each_mode_per_round(tmp_path: Path) -> None:
    eng = Counting(noisy(60, 1.2, 0.3), refuse="no room")
    rep = run_benchmark(cfg(target_ci=1.0, max_iterations=21), eng, capture(), tmp_path / "r.json")
    assert rep.schedule == "blocked" and eng.most_open == 1
    assert eng.opened == ["vanilla", "speculative"] * 21  # one iteration per prompt and mode per round
