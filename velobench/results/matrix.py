"""What a matrix run folder stores (`velobench matrix`), and its readers: no runner needed to read it.

    results/<run-id>/
        matrix.json          the resolved configuration (`MatrixConfig`, written first)
        cells.jsonl          one `CellRecord` per finished cell, appended, flushed and fsynced
        cells/<cell>.json    each cell's full `velobench run` result (`results.schema.Report`)
        summary.json         `MatrixSummary`: every finished cell with its speedup vs its target's baseline

`runner.matrix` runs the cells and writes these files; `load_summary` and `cell_reports` read them
back for `velobench report RUN_DIR`. Each cell's result is a run result with the run kind's own
versions (`results.schema`).

Matrix schema versions (`MATRIX_SCHEMA_VERSION`, carried by summary.json; bump it and add a line
for every change of summary.json, cells.jsonl or matrix.json; `results.migrate` brings older
summaries up):
  1 — first version: the configuration, one record per cell (the cell, its status, result file,
      command line, seconds, tokens/s, acceptance, speedup vs the baseline, ceiling, error), the
      summary of all finished cells.
  2 — where each cell ran (`velobench matrix --cluster`): a cell record's `node` (its Ray node
      id and address, and the node's environment: host, CPUs, GPUs and their driver), `started`
      and `finished` (Unix times on that node), the `attempts` lost with their worker or node
      before it ran to its end, and `own_baseline` (it measured its own vanilla arm: no baseline
      of its target had run on its node); the configuration's `resources` (what a cell needs on
      a node). All optional: a version 1 file is a version 2 file without them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

from pydantic import AliasChoices, BaseModel, Field, ValidationError, create_model

from velobench.errors import VelobenchError
from velobench.results.config import Method, RunConfig, SpecImpl
from velobench.results.environment import Environment
from velobench.results.measures import Ratio, Summary
from velobench.results.schema import Report
from velobench.validation import Strict, one_line

MATRIX_SCHEMA_VERSION = 2

# A cell decides these; the [run] table sets everything else a `velobench run` option sets.
CELL_FIELDS = frozenset(
    {
        "main_model",
        "draft_model",
        "method",
        "spec_impl",
        "n_draft",
        "draft_p_min",
        "skip_vanilla",
        "skip_speculative",
        "prompt_file",
    }
)


def _partial(model: type[BaseModel], exclude: frozenset[str]) -> dict[str, Any]:
    """`model`'s fields minus `exclude`, each optional (None = not set) with its constraints kept."""
    fields: dict[str, Any] = {}
    for name, f in model.model_fields.items():
        if name in exclude:
            continue
        extra: dict[str, Any] = {}
        if name == "extra_args":  # the matrix file's historical name for -x
            extra["validation_alias"] = AliasChoices("extra_args", "engine_args")
        kind: Any = Optional[f.annotation]  # noqa: UP045 (the annotation is a runtime value here)
        fields[name] = (Annotated[kind, *f.metadata] if f.metadata else kind, Field(None, **extra))
    return fields


# Settings shared by every cell: a partial RunConfig (names as `velobench run`'s options).
MatrixRun = create_model("MatrixRun", __base__=Strict, **_partial(RunConfig, CELL_FIELDS))


class CellResources(Strict):
    """What one cell needs on its node, with `--cluster` (a local matrix runs one cell at a time).

    `gpus` and `cpus` are Ray's `num_gpus`/`num_cpus` (Ray gives the cell's process its GPUs in
    CUDA_VISIBLE_DEVICES, so cells that need the same GPU never share it); `custom` are Ray custom
    resources (`{gpu_slot = 1}`), `labels` the node labels the cell must run on (`{zone = "a"}`).
    """

    gpus: float = Field(0, ge=0)
    cpus: float = Field(1, ge=0)
    custom: dict[str, float] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)


class MatrixPair(Strict):
    target: str
    draft: str | None = None
    resources: CellResources | None = None  # this pair's cells' needs (default: the [resources] table)


class MatrixMethod(Strict):
    method: Method = Method.DRAFT
    spec_impl: SpecImpl = SpecImpl.SIMPLE
    n_draft: list[int] = Field(default_factory=lambda: [8], min_length=1)
    p_min: list[float] = Field(default_factory=lambda: [0.0], min_length=1)


class MatrixConfig(Strict):
    run: MatrixRun = Field(default_factory=MatrixRun)
    resources: CellResources = Field(default_factory=CellResources)
    pairs: list[MatrixPair] = Field(min_length=1)
    methods: list[MatrixMethod] = Field(min_length=1)


class Cell(Strict):
    """One configuration to measure."""

    id: str
    target: str
    draft: str | None
    baseline: bool
    method: Method | None = None
    spec_impl: SpecImpl | None = None
    n_draft: int | None = None
    p_min: float | None = None


class NodeInfo(Strict):
    """The machine a cell ran on: its Ray node (None for a local matrix) and its environment."""

    node_id: str | None = None
    address: str | None = None
    environment: Environment

    @property
    def name(self) -> str:
        """`host (address, node 1a2b3c4d)`: how messages name a node."""
        where = [w for w in (self.address, f"node {self.node_id[:8]}" if self.node_id else None) if w]
        return f"{self.environment.hostname} ({', '.join(where)})" if where else self.environment.hostname


class CellAttempt(Strict):
    """A run of a cell lost with its worker or node (the cell was then run again)."""

    node: str | None  # NodeInfo.name of the node it was lost on, where known
    error: str


class CellRecord(Strict):
    """A finished cell, as appended to cells.jsonl and listed in summary.json."""

    cell: Cell
    status: str
    report: str
    command: str
    seconds: float
    tokens_per_second: Summary | None = None
    acceptance_rate: float | None = None
    mean_acceptance_length: float | None = None
    speedup: Ratio | None = None
    ceiling: float | None = None
    error: str | None = None
    node: NodeInfo | None = None
    started: float | None = None
    finished: float | None = None
    attempts: list[CellAttempt] = Field(default_factory=list)
    own_baseline: bool = False


class MatrixSummary(Strict):
    schema_version: int = MATRIX_SCHEMA_VERSION
    run_dir: str
    cells_total: int
    cells_done: int
    records: list[CellRecord]


def load_summary(run_dir: Path) -> MatrixSummary:
    """summary.json of a matrix run folder, of any known matrix version; anything else is one line."""
    from velobench.results.migrate import migrate

    path = run_dir / "summary.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise VelobenchError(
            f"{run_dir} has no summary.json: not a matrix run (or nothing finished)"
        ) from exc
    except (OSError, ValueError) as exc:
        raise VelobenchError(f"cannot read {path}: {exc}") from exc
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise VelobenchError(f"{path}: invalid matrix summary (not JSON: {exc})") from exc
    if not isinstance(raw, dict):
        raise VelobenchError(f"{path}: invalid matrix summary (not a JSON object)")
    try:
        return MatrixSummary.model_validate(migrate("matrix", raw))
    except ValidationError as exc:
        raise VelobenchError(f"{path}: invalid matrix summary ({one_line(exc)})") from exc
    except ValueError as exc:  # a version this velobench does not know
        raise VelobenchError(f"{path}: {exc}") from exc


def cell_reports(summary: MatrixSummary) -> Iterator[tuple[CellRecord, Report]]:
    """Each recorded cell with its run result (cells that failed before writing one are skipped)."""
    from velobench.results import store

    for rec in summary.records:
        if rec.status == "failed" and not Path(rec.report).is_file():
            continue  # failed before its first iteration: nothing to show but its error (summary.json)
        yield rec, store.load(Path(rec.report))
