"""Matrix runs: model pairs × methods × draft settings, from a TOML file, crash-safe and resumable.

    results/<run-id>/
        matrix.json          the resolved configuration (written first)
        cells.jsonl          one line per finished cell, appended, flushed and fsynced
        cells/<cell>.json    each cell's full report (atomic), its responses and server logs
        summary.json         every finished cell with its speedup vs its target's baseline (atomic)

The vanilla baseline runs once per target and serves every speculative cell of that target.
A cell is exactly `velobench run` with the same flags (`command` in each cell record says
which). Every cell's options and every model are checked before the run folder is made. A
cell that fails is recorded in cells.jsonl with its error and the matrix goes on (`fail_fast`
stops it instead). `--resume RUN_DIR` skips cells already in cells.jsonl (failed ones too,
unless `retry_failed`); a SIGKILL loses at most the cell in progress, and every file stays
parseable (a torn last line of cells.jsonl is ignored). Ctrl-C and a save the file system
refuses end the matrix the way they end every command (`runner.lifecycle`): the finished cells
stay in the run folder (or, where its ledger cannot be written, in a rescue copy of the summary)
and the cell in progress is run again on resume. The files' types and their readers
(`load_summary`, `cell_reports`) live in `results.matrix`.

Why one module over 400 lines: a matrix run is one resumable state machine (cells, shared
baselines, resume, retry, fail-fast, the ledger); its persisted types already live apart, in
`results.matrix`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from velobench.errors import Interrupted, VelobenchError
from velobench.fsutil import write_text_atomic
from velobench.report.fmt import ratio_short
from velobench.results.config import Method, RunConfig, SpecImpl, build, to_argv
from velobench.results.matrix import Cell, CellRecord, MatrixConfig, MatrixSummary, NodeInfo
from velobench.results.schema import Report
from velobench.runner.executor import Baseline, CellJob, CellOutcome, Executor, LocalExecutor
from velobench.runner.lifecycle import Lifecycle, SaveFailed, units
from velobench.runner.preflight import leave_nothing_behind
from velobench.runner.run import execute, log_dir
from velobench.validation import first_error, one_line

MATRIX_DEFAULTS: dict[str, Any] = {"iterations": 3, "n_predict": 64}  # a sweep is many runs: shorter ones


def _line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """The line of the key a validation error points to (`pairs.1.target` → its line)."""
    lines = text.splitlines()
    start, end = 0, len(lines)
    parts = list(loc)
    if parts and isinstance(parts[0], str):
        table = parts.pop(0)
        index = parts.pop(0) if parts and isinstance(parts[0], int) else 0
        headers = [
            k for k, ln in enumerate(lines) if re.match(rf"^\s*\[\[?\s*{re.escape(table)}\s*\]\]?\s*$", ln)
        ]
        if index < len(headers):
            start = headers[index]
            nxt = [k for k, ln in enumerate(lines) if k > start and re.match(r"^\s*\[", ln)]
            end = nxt[0] if nxt else len(lines)
        elif headers:
            return headers[-1] + 1
    key = next((p for p in parts if isinstance(p, str)), None)
    if key is None:
        return start + 1 if start else None
    for k in range(start, end):
        if re.match(rf"^\s*{re.escape(key)}\s*=", lines[k]):
            return k + 1
    return start + 1


def load_config(path: Path) -> MatrixConfig:
    """Parse and validate a matrix TOML file; errors name the key and its line."""
    from velobench.runner.preflight import read_text_file

    text = read_text_file(path, "matrix file")  # missing, a folder, binary: one line each
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise VelobenchError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return MatrixConfig.model_validate(data)
    except ValidationError as exc:
        loc, _ = first_error(exc)
        line = _line_of(text, loc)
        where = f"{path}:{line}" if line else str(path)
        raise VelobenchError(f"{where}: {one_line(exc)}") from exc


def _slug(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(value).name.removesuffix(".gguf"))


def model_slugs(cfg: MatrixConfig) -> dict[str, str]:
    """Each model argument's part of a cell id: its file name, plus a short hash of the whole
    argument where two different arguments share a file name (a/m.gguf and b/m.gguf must not
    share ids, or one target's baseline and cells would silently be dropped)."""
    specs = list(dict.fromkeys(s for p in cfg.pairs for s in (p.target, p.draft) if s))
    groups: dict[str, list[str]] = {}
    for spec in specs:
        groups.setdefault(_slug(spec), []).append(spec)
    out: dict[str, str] = {}
    for slug, group in groups.items():
        for spec in group:
            out[spec] = slug if len(group) == 1 else f"{slug}-{hashlib.sha256(spec.encode()).hexdigest()[:6]}"
    return out


def cells(cfg: MatrixConfig) -> list[Cell]:
    """Baselines first (one per target), then every speculative configuration of every pair."""
    out: dict[str, Cell] = {}
    slug = model_slugs(cfg)
    for pair in cfg.pairs:
        bid = f"{slug[pair.target]}__vanilla"
        out.setdefault(bid, Cell(id=bid, target=pair.target, draft=pair.draft, baseline=True))
    for pair in cfg.pairs:
        for m in cfg.methods:
            if m.method.needs_draft_model and not pair.draft:
                continue
            draft = pair.draft if m.method.needs_draft_model else None
            for nd in m.n_draft:
                for pm in m.p_min if m.method is Method.DRAFT else [0.0]:
                    parts = [slug[pair.target], slug[draft] if draft else "nodraft", m.method.value]
                    if m.spec_impl is not SpecImpl.SIMPLE:
                        parts.append(m.spec_impl.value)
                    parts += [f"nd{nd}", f"pmin{pm:g}"]
                    cid = "__".join(parts)
                    out.setdefault(
                        cid,
                        Cell(
                            id=cid,
                            target=pair.target,
                            draft=draft,
                            baseline=False,
                            method=m.method,
                            spec_impl=m.spec_impl,
                            n_draft=nd,
                            p_min=pm,
                        ),
                    )
    return list(out.values())


def cell_config(cfg: MatrixConfig, cell: Cell, *, both_arms: bool = False) -> RunConfig:
    """The RunConfig of one cell: the [run] table (over the matrix defaults) plus the cell's own
    fields. `both_arms`: a speculative cell that measures its vanilla arm too (no shared baseline)."""
    return build(
        **{
            **MATRIX_DEFAULTS,
            **cfg.run.model_dump(exclude_none=True),
            "main_model": cell.target,
            "draft_model": cell.draft
            if (cell.baseline or (cell.method and cell.method.needs_draft_model))
            else None,
            "method": cell.method or (Method.DRAFT if cell.draft else Method.NGRAM_SIMPLE),
            "spec_impl": cell.spec_impl or SpecImpl.SIMPLE,
            "n_draft": cell.n_draft or 8,
            "draft_p_min": cell.p_min or 0.0,
            "skip_vanilla": not (cell.baseline or both_arms),
            "skip_speculative": cell.baseline,
        }
    )


def cell_command(cfg: MatrixConfig, cell: Cell, output: Path, *, both_arms: bool = False) -> str:
    """The `velobench run` command line that measures exactly this cell."""
    return shlex.join(to_argv(cell_config(cfg, cell, both_arms=both_arms), str(output)))


def read_records(path: Path) -> list[CellRecord]:
    """Finished cells from cells.jsonl; a torn last line (killed mid-write) is ignored."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            out.append(CellRecord.model_validate_json(line))
        except ValidationError:
            continue
    return out


def append_record(path: Path, record: CellRecord) -> None:
    with path.open("a") as f:
        f.write(record.model_dump_json() + "\n")
        f.flush()
        os.fsync(f.fileno())


def record_for(cell: Cell, report: Report, path: Path, command: str, seconds: float) -> CellRecord:
    mode = report.vanilla if cell.baseline else report.speculative
    acc = mode.acceptance if mode else None
    return CellRecord(
        cell=cell,
        status=report.status,
        report=str(path),
        command=command,
        seconds=seconds,
        tokens_per_second=mode.tokens_per_second if mode else None,
        acceptance_rate=acc.rate if acc else None,
        mean_acceptance_length=acc.mean_length if acc else None,
        speedup=None if cell.baseline else report.speedup_detail,
        ceiling=report.ceiling.ceiling if report.ceiling else None,
        error=report.error,
    )


def _eta(durations: list[float], remaining: int, parallel: int = 1) -> str:
    if remaining <= 0:
        return "done"
    if not durations:
        return "-"
    s = sum(durations) / len(durations) * remaining / max(parallel, 1)
    return f"{int(s // 60)}m{int(s % 60):02d}s"


def check_cells(cfg: MatrixConfig, todo: list[Cell] | None = None) -> list[Cell]:
    """Every cell's options, models and engine, checked before anything is made or run (here:
    a cluster's nodes run this same check, each on its own files).

    The same checks as `velobench run` (validate.preflight), for every cell; pairs of local
    GGUF files are checked for draft compatibility too. The first problem is one line naming
    the cell.
    """
    from velobench.runner.preflight import preflight

    todo = cells(cfg) if todo is None else todo
    for cell in todo:
        try:
            preflight(cell_config(cfg, cell))
        except VelobenchError as exc:
            raise VelobenchError(f"cell {cell.id}: {exc}") from exc
    check_local_pairs(cfg)
    return todo


def check_local_pairs(cfg: MatrixConfig) -> None:
    """Draft/target vocabulary compatibility of every pair whose files are already here (no download)."""
    from velobench.models.catalog import load_catalog, model_cache_dir
    from velobench.models.gguf_info import check_draft_compatible

    catalog = load_catalog()

    def local(spec: str) -> str | None:
        if Path(spec).expanduser().is_file():
            return str(Path(spec).expanduser())
        if spec in catalog.models and (model_cache_dir() / catalog.models[spec].filename).is_file():
            return str(model_cache_dir() / catalog.models[spec].filename)
        return None

    needs_draft = any(m.method.needs_draft_model for m in cfg.methods)
    for pair in cfg.pairs:
        if not pair.draft or not needs_draft:
            continue
        target, draft = local(pair.target), local(pair.draft)
        if target and draft:
            try:
                check_draft_compatible(target, draft)
            except VelobenchError as exc:
                raise VelobenchError(f"pair {pair.target} / {pair.draft}: {exc}") from exc


def open_run_dir(cfg: MatrixConfig, run_dir: Path, *, resume: bool) -> None:
    """Check the run folder (new and empty, or a matrix run made with this very configuration)."""
    from velobench.runner.preflight import check_output_dir

    config_file = run_dir / "matrix.json"
    if resume:
        if not run_dir.is_dir():
            raise VelobenchError(f"--resume {run_dir}: no such run folder")
        if any(run_dir.iterdir()) and not config_file.is_file():
            raise VelobenchError(f"--resume {run_dir}: not a matrix run folder (no matrix.json)")
    elif run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise VelobenchError(f"{run_dir} already holds a run: pass --resume {run_dir} to continue it")
    check_output_dir(run_dir, "run folder")
    if resume and config_file.is_file():
        try:
            saved = MatrixConfig.model_validate_json(config_file.read_text(encoding="utf-8"))
        except (ValidationError, ValueError, OSError) as exc:
            why = one_line(exc) if isinstance(exc, ValidationError) else str(exc)
            raise VelobenchError(
                f"{config_file} is damaged ({why}): this run cannot be resumed; start a new one"
            ) from exc
        if saved != cfg:
            raise VelobenchError(
                f"{config_file} was made with another configuration; resume it with the same file and flags"
            )


def latest_records(records: list[CellRecord]) -> dict[str, CellRecord]:
    """The last record of each cell (a retried cell appends a newer line)."""
    return {r.cell.id: r for r in records}


def run_matrix(
    cfg: MatrixConfig,
    run_dir: Path,
    console: Console,
    *,
    resume: bool = False,
    fail_fast: bool = False,
    retry_failed: bool = False,
    executor: Executor | None = None,
) -> MatrixSummary:
    """Run every cell not yet finished in `run_dir`; return the summary (also written there).

    A cell that fails is recorded with its error and the next one runs (`fail_fast`: the
    failure ends the matrix, after it is recorded). On resume, failed cells are run again
    only with `retry_failed`. `executor` runs the cells (default: here, one at a time); every
    finished cell comes back here and is recorded the same way, wherever it ran.
    """
    from velobench.results import store as results

    run = executor or LocalExecutor(run_cell, console)
    open_run_dir(cfg, run_dir, resume=resume)
    todo = cells(cfg)
    run.check(cfg, todo)  # before the run folder exists: a typo costs nothing
    (run_dir / "cells").mkdir(parents=True, exist_ok=True)
    config_file = run_dir / "matrix.json"
    write_text_atomic(config_file, cfg.model_dump_json(indent=2))
    ledger = run_dir / "cells.jsonl"
    ids = {c.id for c in todo}
    latest = {k: r for k, r in latest_records(read_records(ledger)).items() if k in ids}
    done = {
        k: r
        for k, r in latest.items()
        if r.status == "complete" or (r.status == "failed" and not retry_failed)
    }
    if latest:
        failed = sum(1 for r in done.values() if r.status != "complete")
        retry = sum(1 for r in latest.values() if r.status == "failed" and retry_failed)
        console.print(
            f"resuming {run_dir}: {len(done) - failed} of {len(todo)} cells finished"
            + (f", {failed} failed (kept; --retry-failed runs them again)" if failed else "")
            + (f", {retry} failed cell(s) to retry" if retry else "")
        )
    baselines: dict[str, list[Baseline]] = {}
    for r in done.values():
        if r.cell.baseline and r.status == "complete":
            baselines.setdefault(r.cell.target, []).append(
                Baseline(Path(r.report), results.load(Path(r.report)), r.node)
            )
    summary = MatrixSummary(
        run_dir=str(run_dir), cells_total=len(todo), cells_done=len(done), records=list(done.values())
    )
    life = Lifecycle(
        summary,
        run_dir / "summary.json",
        "cell",
        count=lambda: len(done),
        write=functools.partial(write_summary_file, summary),
        written=bool(done),
        home=run_dir,
    )
    durations: list[float] = []
    remaining = [c for c in todo if c.id not in done]
    pending = list(remaining)
    in_flight = 0
    stop: VelobenchError | None = None  # raised once the bar and the lifecycle are closed
    with (
        Progress(
            TextColumn("[bold]matrix[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("cells · elapsed"),
            TimeElapsedColumn(),
            TextColumn("· {task.fields[eta]}{task.fields[nodes]}"),
            console=console,
        ) as bar,
        life,
    ):
        task = bar.add_task(
            "matrix", total=len(todo), completed=len(done), eta="ETA after the first cell", nodes=""
        )
        try:
            while pending or in_flight:
                while pending and run.free():
                    cell = pending.pop(0)
                    out = run_dir / "cells" / f"{cell.id}.json"
                    where = "" if run.name == "local" else f" (to {run.name})"
                    console.rule(f"cell {todo.index(cell) + 1}/{len(todo)}: {cell.id}{where}")
                    run.submit(CellJob(cfg, cell, out, baselines.get(cell.target, [])))
                    in_flight += 1
                bar.update(task, nodes=_running_text(run.running()))
                try:
                    outcome = run.wait()
                except SaveFailed as exc:  # the disk refused a cell's file: the next cells would fail too
                    stop = SaveFailed(
                        f"{exc}; {units(len(done), 'cell')} kept in {run_dir} (resume with --resume {run_dir})"
                    )
                    break
                in_flight -= 1
                cell, report = outcome.job.cell, outcome.result
                seconds = outcome.finished - outcome.started
                durations.append(seconds)
                rec = outcome_record(cfg, outcome)
                if cell.baseline and not isinstance(report, VelobenchError):
                    baselines.setdefault(cell.target, []).append(Baseline(outcome.job.out, report, rec.node))
                done[cell.id] = rec
                summary.records, summary.cells_done = list(done.values()), len(done)
                life.save(also=functools.partial(append_record, ledger, rec))
                console.print(status_line(rec, todo.index(cell) + 1, len(todo)), markup=False)
                left = len(pending) + in_flight
                bar.update(task, advance=1, eta=f"ETA {_eta(durations, left, in_flight or 1)}")
                if isinstance(report, VelobenchError) and fail_fast:
                    stop = VelobenchError(
                        f"cell {cell.id} failed: {report} (--fail-fast; recorded in {ledger}; "
                        f"resume with --resume {run_dir} --retry-failed)"
                    )
                    stop.__cause__ = report
                    break
        finally:
            run.close()  # cells still in flight are stopped (and run again on resume)
        if stop is None:
            life.complete()  # summary.json as the ledger says, even where no cell was left to run
    if stop is not None:
        raise stop
    return summary


def _running_text(running: dict[str, int]) -> str:
    """` · running: a 1, b 2` (nothing for a local matrix, whose one cell prints its own progress)."""
    if not running or set(running) == {"here"}:
        return ""
    return " · running: " + ", ".join(f"{node} {n}" for node, n in sorted(running.items()))


def outcome_record(cfg: MatrixConfig, outcome: CellOutcome) -> CellRecord:
    """The ledger line of a finished cell, wherever it ran."""
    cell, report, out = outcome.job.cell, outcome.result, outcome.job.out
    command = cell_command(cfg, cell, out, both_arms=outcome.own_baseline)
    seconds = outcome.finished - outcome.started
    if isinstance(report, VelobenchError):
        rec = CellRecord(
            cell=cell, status="failed", report=str(out), command=command, seconds=seconds, error=str(report)
        )
    else:
        rec = record_for(cell, report, out, command, seconds)
    node = outcome.node or (NodeInfo(environment=report.environment) if isinstance(report, Report) else None)
    return rec.model_copy(
        update={
            "node": node,
            "started": outcome.started,
            "finished": outcome.finished,
            "attempts": outcome.attempts,
            "own_baseline": outcome.own_baseline,
        }
    )


def run_cell(
    cfg: MatrixConfig,
    cell: Cell,
    out: Path,
    console: Console,
    baseline: tuple[Path, Report] | None,
    *,
    both_arms: bool = False,
) -> Report | VelobenchError:
    """One cell, exactly as `velobench run` with its flags; its failure as a value (the matrix goes
    on). Ctrl-C and a save the file system refuses end the matrix: they propagate. `both_arms`: a
    speculative cell measures its own vanilla arm too (on a node where no baseline ran)."""
    try:
        with leave_nothing_behind(out, logs=log_dir(out)):  # an empty log folder is not kept
            return execute(cell_config(cfg, cell, both_arms=both_arms), out, console, baseline=baseline)
    except (Interrupted, SaveFailed):
        raise
    except VelobenchError as exc:
        return exc


def status_line(rec: CellRecord, n: int, total: int) -> str:
    if rec.status == "failed":
        return f"[{n}/{total}] {rec.cell.id}: FAILED: {rec.error} ({rec.seconds:.0f} s)"
    tps = f"{rec.tokens_per_second.mean:.2f} tok/s" if rec.tokens_per_second else "-"
    sp = f", speedup {ratio_short(rec.speedup)}" if rec.speedup is not None else ""
    acc = f", acceptance {rec.acceptance_rate:.0%}" if rec.acceptance_rate is not None else ""
    return f"[{n}/{total}] {rec.cell.id}: {tps}{acc}{sp} ({rec.seconds:.0f} s)"


def write_summary_file(summary: MatrixSummary, path: Path) -> None:
    """summary.json (or its rescue copy), atomically."""
    write_text_atomic(path, summary.model_dump_json(indent=2) + "\n")
