"""One lifecycle for every command that keeps its result as it goes: run, matrix, tune, load, think.

    with Lifecycle(report, output, "iteration", count=...) as life:
        for unit in units:                       # an iteration, a level, a think run, a cell
            ...measure...
            life.save()                          # after each unit: every finished unit on disk
        life.complete()                          # status "complete", saved

How it ends, the same way and in the same words for every command (N = finished units):

    complete      status "complete", saved
    Ctrl-C        (KeyboardInterrupt, errors.Interrupted) status "interrupted", saved where anything
                  finished → Interrupted("interrupted; N finished <unit>(s) kept in OUT"), exit 130;
                  "interrupted; nothing finished" where nothing did
    a failure     (VelobenchError: a crashed binary or server, a failed request) status "failed" and
                  its error, saved where anything finished → Failed("<error> (N finished <unit>(s)
                  kept in OUT)"), exit 2; the error as it was where nothing finished
    save refused  (OSError: ENOSPC, EROFS, EACCES, EDQUOT, ...) status "failed", everything written to
                  a rescue copy in the cache's rescued/ folder → SaveFailed("cannot save OUT (why):
                  all N finished <unit>(s) are in RESCUE"), exit 2; where the rescue copy cannot be
                  written either, OUT keeps what its last save held and the line says so

A final save (after Ctrl-C or a failure) that the file system refuses goes the same way: the
rescue copy, and its line joined to the first one. A lifecycle around other lifecycles (matrix
cells, tune's measurements) joins its own "N finished <unit>(s) kept in OUT" to the inner line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from velobench.errors import Interrupted, VelobenchError
from velobench.paths import cache_dir
from velobench.results.store import save as store_save

Ending = Literal["interrupted", "failed"]


class SaveFailed(VelobenchError):
    """The result file could not be written; the message says where the finished work is."""


class Failed(VelobenchError):
    """A failure after which every finished unit was kept; the message says where."""


class Stopped(Interrupted):
    """Ctrl-C after which every finished unit was kept; the message says where."""


def rescue_path(output: Path) -> Path:
    """Where a result goes when its own file cannot be written: the cache's rescued/ folder."""
    return cache_dir() / "rescued" / f"{output.stem}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json"


def refused(exc: OSError) -> str:
    """Why the file system refused, in its own words ("No space left on device")."""
    return exc.strerror or str(exc)


def units(n: int, unit: str) -> str:
    """`3 finished iteration(s)`."""
    return f"{n} finished {unit}(s)"


class Lifecycle:
    """Saves after each unit, rescues a save the file system refuses, keeps what finished at the end.

    `report`: the result (a pydantic model; its `status` and `error` are set where it has them).
    `output`: its file (or, for `write=None`, the folder where the units saved themselves).
    `count()`: finished units now. `write(path)`: the whole result to `path`, atomically (default
    `results.store.save`); `rescue(path)`: everything to a rescue copy (default `write`).
    `kept()`: the phrase for what is kept (default `units(count(), unit)`). `on_end(ending)`:
    called before the final save after Ctrl-C or a failure (a warning, a wall time).
    `written`: the output already holds finished units (a resumed matrix). `home`: where the
    finished units are, as the lines name it (default `output`; a matrix: its run folder).
    """

    def __init__(
        self,
        report: Any,
        output: Path,
        unit: str,
        *,
        count: Callable[[], int],
        write: Callable[[Path], None] | Literal["report"] | None = "report",
        rescue: Callable[[Path], None] | None = None,
        kept: Callable[[], str] | None = None,
        on_end: Callable[[Ending], None] | None = None,
        written: bool = False,
        home: Path | None = None,
    ) -> None:
        self.report = report
        self.output = output
        self.home = home or output
        self.unit = unit
        self.count = count
        self.write = self._write_report if write == "report" else write
        self.rescue = rescue or self.write
        self.kept = kept or (lambda: units(self.count(), self.unit))
        self.on_end = on_end
        self.written = written
        self.saved = count() if written else 0  # units in the output as last saved
        self._save_failed: SaveFailed | None = None

    def _write_report(self, path: Path) -> None:
        store_save(self.report, path)

    # ------------------------------------------------------------------ saving

    def save(self, *, also: Callable[[], None] | None = None) -> None:
        """After a unit: `also` first (a unit's raw lines appended elsewhere), then the result file.

        A refusal of either writes the rescue copy and raises SaveFailed (see the module docstring).
        """
        try:
            if also is not None:
                also()
            if self.write is not None:
                self.write(self.output)
        except OSError as exc:
            self._save_failed = self._rescued(exc)
            raise self._save_failed from exc
        self.written = True
        self.saved = self.count()

    def complete(self) -> None:
        """The run finished: status "complete", saved."""
        self._mark("complete", None)
        self.save()

    def _mark(self, status: str, error: str | None) -> None:
        fields = getattr(type(self.report), "model_fields", {})
        if "status" in fields:
            self.report.status = status
        if "error" in fields and (error is not None or status == "complete"):
            self.report.error = error

    def _rescued(self, exc: OSError) -> SaveFailed:
        """The rescue copy after `exc`; the SaveFailed that says where every finished unit is."""
        why = refused(exc)
        self._mark("failed", f"cannot save {self.home}: {why}")
        where = rescue_path(self.home)
        try:
            if self.rescue is None:
                raise OSError("nothing to rescue")
            self.rescue(where)
            kept = f"all {self.kept()} are in {where}"
        except OSError:
            kept = (
                f"{self.home} keeps the {self.saved} {self.unit}(s) saved before"
                if self.saved
                else "nothing could be saved"
            )
        return SaveFailed(f"cannot save {self.home} ({why}): {kept}")

    def _final_save(self) -> str:
        """The save after Ctrl-C or a failure; "" if it worked, else the rescue's line."""
        if self.write is None:
            return ""
        try:
            self.write(self.output)
            return ""
        except OSError as exc:
            return f"; {self._rescued(exc)}"

    # ------------------------------------------------------------------ ending

    def __enter__(self) -> Lifecycle:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        if exc is None or exc is self._save_failed:
            return False
        if isinstance(exc, KeyboardInterrupt | Interrupted):
            end: BaseException = self.stopped(exc)
        elif isinstance(exc, VelobenchError):
            end = self.failed(exc)
        else:
            return False  # a bug: its traceback as it is
        if end is exc:
            return False
        raise end from exc

    def _inner(self, exc: BaseException) -> bool:
        """Whether `exc` already says what an inner lifecycle kept (a matrix cell, a tune measurement)."""
        return isinstance(exc, Stopped | Failed | SaveFailed)

    def stopped(self, exc: BaseException) -> Interrupted:
        """Ctrl-C: status "interrupted", saved where anything finished; the one line."""
        self._mark("interrupted", None)
        if not self.written:
            return exc if isinstance(exc, Interrupted) else Interrupted("interrupted; nothing finished")
        if self.on_end is not None:
            self.on_end("interrupted")
        lost = self._final_save()
        here = f"{self.kept()} kept in {self.home}{lost}"
        return Stopped(f"{exc}; {here}" if self._inner(exc) else f"interrupted; {here}")

    def failed(self, exc: VelobenchError) -> VelobenchError:
        """A failure: status "failed" and its error, saved where anything finished; the one line."""
        self._mark("failed", str(exc))
        if not self.written:
            return exc
        if self.on_end is not None:
            self.on_end("failed")
        lost = self._final_save()
        here = f"{self.kept()} kept in {self.home}"
        cls = SaveFailed if isinstance(exc, SaveFailed) else Failed
        return cls(f"{exc}; {here}{lost}" if self._inner(exc) else f"{exc} ({here}){lost}")
