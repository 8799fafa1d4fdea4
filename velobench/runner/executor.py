"""Where a matrix's cells run: the seam between `runner.matrix` and whatever runs a cell.

    Executor.check(cfg, cells)   every cell checked where it will run, before the run folder is made
    Executor.free()              room for one more cell now?
    Executor.submit(job)         start a cell (a `CellJob`)
    Executor.wait()              the next finished cell (a `CellOutcome`), blocking
    Executor.running()           cells in flight per node (for the progress line)
    Executor.close()             stop what is in flight (their processes die with it)

`LocalExecutor` runs one cell at a time in this process, exactly as the matrix always has;
`runner.executor_ray.RayExecutor` runs them on a Ray cluster (`velobench matrix --cluster`),
where each cell is the same `run_cell` in a child process of its Ray task. Another scheduler
(Slurm, Kubernetes jobs) is one more module with these six methods.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rich.console import Console

from velobench.errors import VelobenchError
from velobench.results.matrix import Cell, CellAttempt, MatrixConfig, NodeInfo
from velobench.results.schema import Report
from velobench.runner.lifecycle import SaveFailed


@dataclass(frozen=True)
class Baseline:
    """A finished baseline cell: its result file (in the run folder), its result, where it ran."""

    path: Path
    report: Report
    node: NodeInfo | None


@dataclass(frozen=True)
class CellJob:
    """One cell to run: its result goes to `out` (in the run folder); `baselines` are its target's
    finished baselines, of which only one measured on the cell's own node may serve it."""

    cfg: MatrixConfig
    cell: Cell
    out: Path
    baselines: list[Baseline] = field(default_factory=list)


@dataclass
class CellOutcome:
    """A cell that ran to its end: its result (or its failure, a value: the matrix goes on)."""

    job: CellJob
    result: Report | VelobenchError
    started: float  # Unix time, on the node that ran it
    finished: float
    node: NodeInfo | None = None
    own_baseline: bool = False  # it measured its own vanilla arm (no baseline of its node)
    attempts: list[CellAttempt] = field(default_factory=list)  # runs lost with their worker or node


class Executor(Protocol):
    name: str

    def check(self, cfg: MatrixConfig, cells: list[Cell]) -> None: ...

    def free(self) -> bool: ...

    def submit(self, job: CellJob) -> None: ...

    def wait(self) -> CellOutcome: ...

    def running(self) -> dict[str, int]: ...

    def close(self) -> None: ...


RunCell = Callable[[MatrixConfig, Cell, Path, Console, tuple[Path, Report] | None], Report | VelobenchError]


class LocalExecutor:
    """One cell at a time, in this process: `submit` keeps the job, `wait` runs it.

    A speculative cell is compared with its target's baseline (any finished one: every cell of a
    local matrix runs on this machine). Ctrl-C and a refused save propagate from `wait`.
    """

    name = "local"

    def __init__(self, run_cell: RunCell, console: Console) -> None:
        self._run_cell, self._console = run_cell, console
        self._job: CellJob | None = None

    def check(self, cfg: MatrixConfig, cells: list[Cell]) -> None:
        from velobench.runner.matrix import check_cells

        check_cells(cfg, cells)

    def free(self) -> bool:
        return self._job is None

    def submit(self, job: CellJob) -> None:
        if self._job is not None:
            raise RuntimeError("LocalExecutor runs one cell at a time")
        self._job = job

    def wait(self) -> CellOutcome:
        job, self._job = self._job, None
        if job is None:
            raise RuntimeError("LocalExecutor.wait with no cell submitted")
        base = job.baselines[-1] if job.baselines else None
        started = time.time()
        try:
            result = self._run_cell(
                job.cfg, job.cell, job.out, self._console, (base.path, base.report) if base else None
            )
        except SaveFailed as exc:  # the run folder's disk refused: say which cell, the matrix stops
            raise SaveFailed(f"cell {job.cell.id}: {exc}") from exc
        return CellOutcome(job=job, result=result, started=started, finished=time.time())

    def running(self) -> dict[str, int]:
        return {"here": 1} if self._job is not None else {}

    def close(self) -> None:
        self._job = None
