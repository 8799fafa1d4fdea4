"""The one lifecycle (runner/lifecycle.py) on a real file system that fills up or goes read-only.

Root ignores chmod, so the folder is a small tmpfs (tests/fullfs.py): filled to the last byte
it refuses a save with ENOSPC, remounted read-only with EROFS, as a real disk does.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fullfs import fill, read_only, small_tmpfs
from tests.unit.test_runner import ScriptedEngine, cfg
from velobench.errors import Interrupted, VelobenchError
from velobench.results import store
from velobench.results.config import RunConfig
from velobench.results.schema import Iteration, Mode, ModeResult, Report
from velobench.runner.lifecycle import Failed, Lifecycle, SaveFailed, Stopped
from velobench.runner.loop import run_benchmark
from velobench.telemetry.environment import capture


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: room for a few small results, then full when the test says so."""
    with small_tmpfs(tmp_path / "disk", 256) as folder:
        yield folder


def iteration(i: int) -> Iteration:
    return Iteration(
        index=i,
        command="real command line",
        returncode=0,
        wall_ms=100.0,
        prompt_tokens=10,
        prompt_ms=5.0,
        ttft_ms=5.0,
        generated_tokens=32,
        decode_ms=320.0,
        tokens_per_second=100.0 + i,
        total_time_ms=325.0,
    )


def report() -> Report:
    rep = Report(config=cfg(), environment=capture())
    rep.modes["vanilla"] = ModeResult(mode="vanilla", binary="b", iterations=[])
    return rep


def add(rep: Report, life: Lifecycle, n: int) -> None:
    """n more finished iterations, each saved."""
    its = rep.modes["vanilla"].iterations
    for _ in range(n):
        its.append(iteration(len(its) + 1))
        life.save()


def rescued(isolated: Path) -> list[Path]:
    return sorted((isolated / "cache" / "rescued").glob("*.json"))


def test_a_full_disk_rescues_every_finished_unit(disk: Path, isolated: Path) -> None:
    rep, out = report(), disk / "r.json"
    life = Lifecycle(rep, out, "iteration", count=rep.iteration_count)
    with pytest.raises(SaveFailed) as exc, life:
        add(rep, life, 2)
        fill(disk)
        add(rep, life, 1)
    (copy,) = rescued(isolated)
    assert str(exc.value) == (
        f"cannot save {out} (No space left on device): all 3 finished iteration(s) are in {copy}"
    )
    kept, saved = store.load(out), store.load(copy)
    assert kept.iteration_count() == 2 and kept.status == "running"  # the file as last saved
    assert saved.iteration_count() == 3 and saved.status == "failed"
    assert saved.error == f"cannot save {out}: No space left on device"
    assert saved.modes["vanilla"].iterations[:2] == kept.modes["vanilla"].iterations


def test_a_read_only_folder_rescues_too(disk: Path, isolated: Path) -> None:
    rep, out = report(), disk / "r.json"
    life = Lifecycle(rep, out, "iteration", count=rep.iteration_count)
    ro = r"\(Read-only file system\): all 2 finished iteration\(s\) are in "
    with pytest.raises(SaveFailed, match=ro), life:
        add(rep, life, 1)
        read_only(disk)
        add(rep, life, 1)
    assert store.load(rescued(isolated)[0]).iteration_count() == 2


def test_where_no_rescue_copy_fits_the_file_keeps_what_it_held(
    disk: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VELOBENCH_CACHE", str(disk / "cache"))  # the cache is on the full disk too
    rep, out = report(), disk / "r.json"
    life = Lifecycle(rep, out, "iteration", count=rep.iteration_count)
    with pytest.raises(SaveFailed) as exc, life:
        add(rep, life, 2)
        fill(disk)
        add(rep, life, 1)
    assert str(exc.value).endswith(f": {out} keeps the 2 iteration(s) saved before")
    assert store.load(out).iteration_count() == 2


def test_nothing_saved_and_no_rescue_says_so(disk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VELOBENCH_CACHE", str(disk / "cache"))
    fill(disk)
    rep = report()
    life = Lifecycle(rep, disk / "r.json", "iteration", count=rep.iteration_count)
    with pytest.raises(SaveFailed, match=r"\(No space left on device\): nothing could be saved$"), life:
        add(rep, life, 1)


def test_ctrl_c_and_a_failure_keep_what_finished(tmp_path: Path) -> None:
    for raised, kind, status in (
        (KeyboardInterrupt(), Stopped, "interrupted"),
        (VelobenchError("the server died"), Failed, "failed"),
    ):
        rep, out = report(), tmp_path / f"{status}.json"
        with pytest.raises(kind) as exc, Lifecycle(rep, out, "iteration", count=rep.iteration_count) as life:
            add(rep, life, 2)
            raise raised
        head = "interrupted; " if status == "interrupted" else "the server died ("
        assert str(exc.value).startswith(f"{head}2 finished iteration(s) kept in {out}")
        saved = store.load(out)
        assert saved.status == status and saved.iteration_count() == 2
        assert saved.error == (None if status == "interrupted" else "the server died")
    assert Stopped.exit_code == 130 and Failed.exit_code == 2


def test_nothing_finished_is_said_and_nothing_written(tmp_path: Path) -> None:
    rep = report()
    out = tmp_path / "r.json"
    with (
        pytest.raises(Interrupted, match=r"^interrupted; nothing finished$"),
        Lifecycle(rep, out, "iteration", count=rep.iteration_count),
    ):
        raise KeyboardInterrupt
    with (
        pytest.raises(VelobenchError, match=r"^boom$"),
        Lifecycle(rep, out, "iteration", count=rep.iteration_count),
    ):
        raise VelobenchError("boom")
    assert list(tmp_path.iterdir()) == []


def test_a_failure_whose_final_save_is_refused_is_rescued(disk: Path, isolated: Path) -> None:
    rep, out = report(), disk / "r.json"
    with pytest.raises(Failed) as exc, Lifecycle(rep, out, "iteration", count=rep.iteration_count) as life:
        add(rep, life, 1)
        fill(disk)
        raise VelobenchError("the server died")
    (copy,) = rescued(isolated)
    assert str(exc.value) == (
        f"the server died (1 finished iteration(s) kept in {out}); "
        f"cannot save {out} (No space left on device): all 1 finished iteration(s) are in {copy}"
    )
    assert json.loads(copy.read_text())["status"] == "failed"


def test_an_outer_lifecycle_joins_its_line_to_the_inner_one(tmp_path: Path) -> None:
    """A matrix or tune around runs: the inner line says what the run kept, the outer what it did."""
    done = [1, 2]
    outer = Lifecycle(None, tmp_path, "measurement", count=lambda: len(done), write=None, written=True)
    rep = report()
    inner = Lifecycle(rep, tmp_path / "r.json", "iteration", count=rep.iteration_count)
    with pytest.raises(Stopped) as exc, outer, inner:
        add(rep, inner, 1)
        raise KeyboardInterrupt
    assert str(exc.value) == (
        f"interrupted; 1 finished iteration(s) kept in {tmp_path / 'r.json'}; "
        f"2 finished measurement(s) kept in {tmp_path}"
    )


def test_run_benchmark_on_a_disk_that_fills_mid_run(disk: Path, isolated: Path) -> None:
    """The real loop: the disk fills while the third iteration runs; the two before are in the
    file, all finished ones in the rescue copy, and the run ends with SaveFailed."""

    class Filling(ScriptedEngine.S):
        def generate(self, prompt: str, index: int) -> Iteration:
            if self.engine.calls == 2:  # two iterations measured and saved
                fill(disk)
            return super().generate(prompt, index)

    class FillsUp(ScriptedEngine):
        def __init__(self) -> None:
            super().__init__({"vanilla": [100, 101, 99], "speculative": [50, 51, 49]})

        @contextlib.contextmanager
        def session(self, mode: Mode) -> Iterator[ScriptedEngine.S]:
            yield Filling(self, mode)

    out = disk / "r.json"
    with pytest.raises(SaveFailed, match=r"all 3 finished iteration\(s\) are in "):
        run_benchmark(cfg(schedule="blocked"), FillsUp(), capture(), out)  # type: ignore[arg-type]
    assert store.load(out).iteration_count() == 2
    assert [i.tokens_per_second for i in store.load(rescued(isolated)[0]).vanilla.iterations] == [
        100,
        101,
        99,
    ]


def test_a_matrix_whose_ledger_the_disk_refuses_rescues_its_finished_cells(
    disk: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second cell's report is saved, then the disk is full: its ledger line or summary.json
    cannot be written, so the summary of both finished cells goes to a rescue copy and the
    matrix stops."""
    from rich.console import Console

    from tests.unit.test_hardening import FakeExecute, matrix_config
    from velobench.runner import matrix

    cfg2 = matrix_config(isolated, ["m.gguf"])
    ids = [c.id for c in matrix.cells(cfg2)]

    class FillsAfterSecond(FakeExecute):
        def __call__(self, rc: RunConfig, out: Path, console: object, *, baseline: object = None) -> Report:
            rep = super().__call__(rc, out, console, baseline=baseline)
            if len(self.calls) == 2:
                fill(disk)
            return rep

    fake = FillsAfterSecond(set())
    monkeypatch.setattr(matrix, "execute", fake)
    run_dir = disk / "run"
    with pytest.raises(SaveFailed) as exc:
        matrix.run_matrix(cfg2, run_dir, Console(file=open(os.devnull, "w")))  # noqa: SIM115
    assert fake.calls == ids[:2]  # the third cell never started
    (copy,) = rescued(isolated)
    assert str(exc.value) == (
        f"cannot save {run_dir} (No space left on device): all 2 finished cell(s) are in {copy}"
    )
    summary = matrix.MatrixSummary.model_validate_json(copy.read_text())
    assert [r.cell.id for r in summary.records] == ids[:2] and summary.cells_done == 2
    ledger = [r.cell.id for r in matrix.read_records(run_dir / "cells.jsonl")]
    assert ledger in (ids[:1], ids[:2])  # the line may fit in the ledger's last page; summary.json not


def test_ctrl_c_between_matrix_cells_names_the_finished_cells(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rich.console import Console

    from tests.unit.test_hardening import FakeExecute, matrix_config
    from velobench.runner import matrix

    cfg2 = matrix_config(tmp_path, ["m.gguf"])

    class CtrlCAtSecond(FakeExecute):
        def __call__(self, rc: RunConfig, out: Path, console: object, *, baseline: object = None) -> Report:
            if self.calls:
                raise KeyboardInterrupt
            return super().__call__(rc, out, console, baseline=baseline)

    monkeypatch.setattr(matrix, "execute", CtrlCAtSecond(set()))
    run_dir = tmp_path / "run"
    with pytest.raises(
        Stopped, match=rf"^interrupted; 1 finished cell\(s\) kept in {re.escape(str(run_dir))}$"
    ):
        matrix.run_matrix(cfg2, run_dir, Console(file=open(os.devnull, "w")))  # noqa: SIM115
    assert len(matrix.read_records(run_dir / "cells.jsonl")) == 1
