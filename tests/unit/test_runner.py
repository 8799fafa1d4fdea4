"""Runner logic with a scripted engine (the real engines are covered by the integration tests)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from velobench.analysis.verdict import outcome
from velobench.errors import Interrupted, VelobenchError
from velobench.report.console import verdict_text
from velobench.report.warnings import text
from velobench.results import store as results
from velobench.results.config import RunConfig
from velobench.results.schema import BinaryInfo, Iteration, Mode, WarningCode
from velobench.runner.loop import run_benchmark
from velobench.telemetry.environment import capture


class ScriptedEngine:
    """Returns given tokens/s per mode; raises what it is told at a given call."""

    name = "scripted"

    def __init__(
        self, tps: dict[Mode, list[float]], fail_at: int | None = None, exc: BaseException | None = None
    ):
        self.tps = tps
        self.calls = 0
        self.fail_at = fail_at
        self.exc = exc

    def binaries(self) -> list[BinaryInfo]:
        return []

    def binary(self, mode: Mode) -> str:
        return f"fake-{mode}"

    def side_by_side(self) -> str | None:
        return None  # both sessions can be open at once: the interleaved schedule runs

    @contextlib.contextmanager
    def session(self, mode: Mode) -> Iterator[ScriptedEngine.S]:
        yield ScriptedEngine.S(self, mode)

    class S:
        def __init__(self, engine: ScriptedEngine, mode: Mode):
            self.engine, self.mode = engine, mode

        def info(self) -> None:
            return None

        def telemetry_root(self) -> tuple[int | None, bool]:
            return None, False

        def generate(self, prompt: str, index: int) -> Iteration:
            e = self.engine
            e.calls += 1
            if e.fail_at == e.calls and e.exc is not None:
                raise e.exc
            tps = e.tps[self.mode][index - 1]
            spec = self.mode == "speculative"
            return Iteration(
                index=index,
                command="fake",
                returncode=0,
                wall_ms=100.0,
                prompt_tokens=10,
                prompt_ms=5.0,
                ttft_ms=5.0,
                generated_tokens=32,
                decode_ms=32 / tps * 1000,
                tokens_per_second=tps,
                total_time_ms=5.0 + 32 / tps * 1000,
                n_drafted=10 if spec else None,
                n_accept=6 if spec else None,
                acceptance_rate=0.6 if spec else None,
            )


def cfg(**kw: object) -> RunConfig:
    args: dict[str, object] = {"main_model": "m.gguf", "draft_model": "d.gguf", "iterations": 3, **kw}
    return RunConfig(**args)  # type: ignore[arg-type]


def test_complete_run_is_saved_with_summaries_and_warnings(tmp_path: Path) -> None:
    eng = ScriptedEngine({"vanilla": [100, 101, 99], "speculative": [50, 51, 49]})
    rep = run_benchmark(cfg(), eng, capture(), tmp_path / "r.json")
    saved = results.load(tmp_path / "r.json")
    assert saved == rep
    assert rep.status == "complete"
    assert rep.ratio_of_means is not None and rep.ratio_of_means.ratio == pytest.approx(0.5)
    # the headline is paired (issue 20): the geometric mean of 50/100, 51/101, 49/99
    assert rep.speedup == pytest.approx((50 / 100 * 51 / 101 * 49 / 99) ** (1 / 3))
    assert rep.speculative is not None and rep.speculative.acceptance is not None
    assert rep.speculative.acceptance.rate == pytest.approx(0.6) and rep.speculative.acceptance.drafted == 30
    assert WarningCode.SPECULATION_SLOWER in {w.code for w in rep.warnings}
    assert outcome(rep.speedup_detail) == "slower"
    assert verdict_text(rep.speedup_detail).startswith("speculative decoding is slower: 0.50x")


def test_failure_mid_run_keeps_finished_iterations(tmp_path: Path) -> None:
    eng = ScriptedEngine(
        {"vanilla": [100, 101, 99], "speculative": [50, 51, 49]}, fail_at=5, exc=VelobenchError("boom")
    )
    with pytest.raises(VelobenchError, match=r"boom \(4 finished iteration\(s\) kept in"):
        run_benchmark(cfg(), eng, capture(), tmp_path / "r.json")
    saved = results.load(tmp_path / "r.json")
    assert saved.status == "failed" and saved.error == "boom"
    # interleaved (the default): vanilla 1, speculative 1, speculative 2, vanilla 2, then the failure
    assert saved.vanilla is not None and [i.index for i in saved.vanilla.iterations] == [1, 2]
    assert saved.speculative is not None and [i.index for i in saved.speculative.iterations] == [1, 2]
    assert [i.position for i in saved.vanilla.iterations] == [1, 4]
    assert [i.position for i in saved.speculative.iterations] == [2, 3]


def test_blocked_failure_mid_run_keeps_every_vanilla_iteration(tmp_path: Path) -> None:
    eng = ScriptedEngine(
        {"vanilla": [100, 101, 99], "speculative": [50, 51, 49]}, fail_at=5, exc=VelobenchError("boom")
    )
    with pytest.raises(VelobenchError, match=r"boom \(4 finished iteration\(s\) kept in"):
        run_benchmark(cfg(schedule="blocked"), eng, capture(), tmp_path / "r.json")
    saved = results.load(tmp_path / "r.json")
    assert saved.schedule == "blocked"
    assert saved.vanilla is not None and len(saved.vanilla.iterations) == 3
    assert saved.speculative is not None and len(saved.speculative.iterations) == 1
    assert [i.position for i in saved.vanilla.iterations + saved.speculative.iterations] == [1, 2, 3, 4]


def test_failure_before_anything_finished_writes_nothing(tmp_path: Path) -> None:
    eng = ScriptedEngine(
        {"vanilla": [1.0] * 3, "speculative": [1.0] * 3}, fail_at=1, exc=VelobenchError("boom")
    )
    with pytest.raises(VelobenchError, match=r"^boom$"):
        run_benchmark(cfg(), eng, capture(), tmp_path / "r.json")
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_keeps_finished_iterations(tmp_path: Path) -> None:
    eng = ScriptedEngine(
        {"vanilla": [100, 101, 99], "speculative": [50, 51, 49]}, fail_at=3, exc=KeyboardInterrupt()
    )
    with pytest.raises(Interrupted, match="2 finished iteration"):
        run_benchmark(cfg(), eng, capture(), tmp_path / "r.json")
    saved = results.load(tmp_path / "r.json")
    assert saved.status == "interrupted" and saved.vanilla is not None and len(saved.vanilla.iterations) == 1
    assert saved.speculative is not None and len(saved.speculative.iterations) == 1


def test_no_significant_difference_is_not_called_a_speedup(tmp_path: Path) -> None:
    # not faster on every prompt: paired, a 1% gain on every prompt would be significant (issue 20)
    eng = ScriptedEngine({"vanilla": [100, 120, 80], "speculative": [101, 119, 81]})
    rep = run_benchmark(cfg(), eng, capture(), tmp_path / "r.json")
    assert outcome(rep.speedup_detail) == "not significant"
    assert verdict_text(rep.speedup_detail).startswith("no significant difference")
    assert WarningCode.NO_SIGNIFICANT_DIFFERENCE in {w.code for w in rep.warnings}
    assert WarningCode.HIGH_VARIANCE in {w.code for w in rep.warnings}


def test_draft_not_offloaded_and_one_iteration_warnings(tmp_path: Path) -> None:
    eng = ScriptedEngine({"vanilla": [100], "speculative": [150]})
    rep = run_benchmark(cfg(iterations=1, gpu_layers="99"), eng, capture(), tmp_path / "r.json")
    codes = {w.code for w in rep.warnings}
    assert {WarningCode.DRAFT_NOT_OFFLOADED, WarningCode.ONE_ITERATION} <= codes
    assert rep.speedup == pytest.approx(1.5)
    assert rep.speedup_detail is not None and rep.speedup_detail.stddev is None
    assert outcome(rep.speedup_detail) == "too few iterations"
    assert "too few iterations" in verdict_text(rep.speedup_detail)


def test_stale_llama_env_is_dropped_and_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from velobench.proc import child_env

    monkeypatch.setenv("LLAMA_ARG_DRAFT_MAX", "16")
    assert "LLAMA_ARG_DRAFT_MAX" not in child_env()
    eng = ScriptedEngine({"vanilla": [100] * 3, "speculative": [90] * 3})
    rep = run_benchmark(cfg(), eng, capture(), tmp_path / "r.json")
    assert any(
        w.code == WarningCode.LLAMA_ENV_IGNORED and "LLAMA_ARG_DRAFT_MAX" in text(w) for w in rep.warnings
    )


# --- --target-ci: rounds until the paired interval is narrow enough (issue 20) ------------------


def noisy(n: int, speedup: float, sd: float, seed: int = 7) -> dict[Mode, list[float]]:
    """Prompts of very different speeds (a cycle of 7), each round's speculative run `speedup`
    times its vanilla one, give or take `sd` (log scale)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    base = [40.0, 90.0, 150.0, 60.0, 120.0, 75.0, 200.0]
    van = [base[i % 7] * float(np.exp(rng.normal(0, 0.05))) for i in range(n)]
    spec = [v * speedup * float(np.exp(rng.normal(0, sd))) for v in van]
    return {"vanilla": van, "speculative": spec}


def test_target_ci_adds_rounds_until_the_interval_is_narrow(tmp_path: Path) -> None:
    from velobench.report.console import stopping_text

    eng = ScriptedEngine(noisy(200, 1.5, 0.03))
    rep = run_benchmark(cfg(target_ci=3.0), eng, capture(), tmp_path / "r.json")
    s = rep.stopping
    assert s is not None and s.stopped_by == "target" and s.target == pytest.approx(0.03)
    assert s.looks and s.looks[0].n_pairs == 20  # the minimum sample, one pair per round
    last = s.looks[-1]
    assert last.relative_half_width is not None and last.relative_half_width <= 0.03
    assert all(w.relative_half_width is not None and w.relative_half_width > 0.03 for w in s.looks[:-1])
    assert rep.vanilla is not None and rep.speculative is not None
    assert len(rep.vanilla.iterations) == len(rep.speculative.iterations) == last.n_pairs < 200
    assert rep.primary is not None and rep.primary.estimator == "paired"
    assert last.ci95_low is not None and last.ci95_low < 1.5 < (last.ci95_high or 0)
    saved = results.load(tmp_path / "r.json")
    assert saved.stopping == s and saved.status == "complete"
    assert "the interval reached the target" in stopping_text(saved)


def test_target_ci_stops_at_max_iterations_and_says_so(tmp_path: Path) -> None:
    eng = ScriptedEngine(noisy(40, 1.2, 0.3))
    rep = run_benchmark(cfg(target_ci=1.0, max_iterations=25), eng, capture(), tmp_path / "r.json")
    assert rep.stopping is not None and rep.stopping.stopped_by == "max-iterations"
    assert rep.vanilla is not None and len(rep.vanilla.iterations) == 25
    assert [w.n_pairs for w in rep.stopping.looks] == [20, 21, 22, 23, 24, 25]


def test_target_ci_stops_at_max_time(tmp_path: Path) -> None:
    eng = ScriptedEngine(noisy(40, 1.2, 0.3))
    rep = run_benchmark(cfg(target_ci=1.0, max_time=1e-6), eng, capture(), tmp_path / "r.json")
    assert rep.stopping is not None and rep.stopping.stopped_by == "max-time"
    # the clock never cuts the rule's minimum sample: 20 pairs, one look, then the clock stops it
    assert rep.vanilla is not None and len(rep.vanilla.iterations) == 20
    assert [w.n_pairs for w in rep.stopping.looks] == [20]


def test_target_ci_needs_both_modes() -> None:
    with pytest.raises(ValueError, match="--target-ci needs both modes"):
        cfg(target_ci=5.0, skip_vanilla=True)
