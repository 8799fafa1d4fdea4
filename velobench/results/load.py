"""The result of `velobench load` (`kind: "load"`): versioned pydantic models and the raw records.

A load result holds, per mode (vanilla, speculative) and load level, the plan that ran (with
its arrival schedule: seed and offsets, so a run can be replayed), how the level ended, the
speculative counters' growth from `/metrics`, and the level's summary; then the comparison of
the modes at every level both finished, the crossover and where the sweep stopped early.

Every finished request is one line of the JSONL beside the result (`records_file`, written as
each level ends): its mode, level and the raw `LoadRecord` (send time, first token, every
chunk's time and tokens, end, error, phase). Every summary in the result is recomputed from
those lines and the stored counters by `velobench.analysis.load_result.analyze`.

The schema version is `results.schema.SCHEMA_VERSION` (3 introduced this kind); `results.store`
reads both kinds and tells them apart by `kind`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from velobench import __version__
from velobench.analysis.load import Crossover, LevelComparison, LevelSummary, Saturation, SpecCounters
from velobench.config import RunConfig
from velobench.engines.metrics import SpecDecodeDelta
from velobench.environment import Environment
from velobench.errors import VelobenchError
from velobench.results.schema import SCHEMA_VERSION, BinaryInfo, SessionInfo, Warning
from velobench.runner.load_plan import LoadOptions
from velobench.runner.loadgen import LoadPlan, LoadRecord
from velobench.validation import Strict, one_line


class LoadLevel(Strict):
    """One load level in one mode: what ran, how it ended, what the server counted, the summary."""

    mode: str
    level: float
    plan: LoadPlan = Field(description="the profile, bounds, windows and (open loop) the arrival schedule")
    issued: int
    finished: int = Field(description="records of this level in the JSONL")
    cancelled: list[int] = Field(default_factory=list, description="indices cancelled by an interruption")
    interrupted: bool = False
    max_in_flight: int
    wall_s: float = Field(description="the level's zero to its last request's end")
    started_at: str = Field(description="UTC time the level started")
    spec_decode: SpecDecodeDelta | None = Field(
        default=None, description="/metrics speculative counters, after − before the level (all phases)"
    )
    metrics_note: str | None = Field(
        default=None, description="why /metrics could not be read, if it could not"
    )
    summary: LevelSummary | None = Field(default=None, description="None when nothing finished in the window")

    def counters(self) -> SpecCounters | None:
        d = self.spec_decode
        if d is None:
            return None
        return SpecCounters(drafts=d.drafts, draft_tokens=d.draft_tokens, accepted_tokens=d.accepted_tokens)


class LoadMode(Strict):
    """One mode's server and its levels, in the order they ran."""

    mode: str
    binary: str
    session: SessionInfo | None = None
    slots: int
    levels: list[LoadLevel] = Field(default_factory=list)
    saturation: Saturation | None = None
    wall_s: float | None = Field(default=None, description="server start to the last level's end")


class LoadReport(Strict):
    """Everything one `velobench load` measured, with how and where."""

    kind: Literal["load"] = "load"
    schema_version: int = SCHEMA_VERSION
    velobench_version: str = __version__
    timestamp: str = Field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    status: Literal["running", "complete", "interrupted", "failed"] = "running"
    error: str | None = None
    config: RunConfig
    load: LoadOptions
    environment: Environment
    binaries: list[BinaryInfo] = Field(default_factory=list)
    prompt_ids: list[str] = Field(description="the prompts request i cycles through (i mod len)")
    prompt_tokens: list[int] | None = Field(
        default=None, description="each prompt's length in the server's tokens, where it could be counted"
    )
    records_file: str = Field(description="the raw per-request JSONL, beside this file")
    modes: dict[str, LoadMode] = Field(default_factory=dict)
    comparisons: list[LevelComparison] = Field(
        default_factory=list, description="speculative ÷ vanilla at every level both finished"
    )
    crossover: Crossover | None = None
    stopped_early: str | None = Field(default=None, description="why the sweep ended before its last level")
    wall_s: float | None = None
    warnings: list[Warning] = Field(default_factory=list)

    def level(self, mode: str, level: float) -> LoadLevel | None:
        m = self.modes.get(mode)
        return next((x for x in m.levels if x.level == level), None) if m else None


class RecordLine(LoadRecord):
    """One line of the records JSONL: a finished request, with its mode and level."""

    mode: str
    profile: str
    level: float


def record_line(mode: str, profile: str, level: float, rec: LoadRecord) -> str:
    return RecordLine(mode=mode, profile=profile, level=level, **rec.model_dump()).model_dump_json() + "\n"


def append_records(path: Path, mode: str, profile: str, level: float, records: Iterable[LoadRecord]) -> None:
    """Append one level's records to the JSONL, flushed and fsynced (a crash keeps finished levels)."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for r in records:
            f.write(record_line(mode, profile, level, r))
        f.flush()
        os.fsync(f.fileno())


Records = dict[tuple[str, float], list[LoadRecord]]


def read_records(path: Path) -> Records:
    """The JSONL as {(mode, level): records in index order}; a bad line is one error line."""
    out: Records = {}
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise VelobenchError(f"records file not found: {path} (it is written beside the result)") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = RecordLine.model_validate(json.loads(line))
        except (ValueError, ValidationError) as exc:
            why = one_line(exc) if isinstance(exc, ValidationError) else str(exc)
            raise VelobenchError(f"{path}:{n}: not a load record ({why})") from None
        base = LoadRecord(**rec.model_dump(exclude={"mode", "profile", "level"}))
        out.setdefault((rec.mode, rec.level), []).append(base)
    for recs in out.values():
        recs.sort(key=lambda r: r.index)
    return out


def records_path(result: Path, report: LoadReport) -> Path:
    return result.parent / report.records_file
