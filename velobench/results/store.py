"""Result files on disk: written atomically after every iteration, loaded strictly.

A reader sees the old file or the new one, never half of one. `load_result` reads every kind
of result by its `kind`: a `velobench run` result (`Report`, no `kind`), `"load"` (`LoadReport`)
`"think"` (`ThinkReport`), `"lossless"` (`LosslessReport`) and `"advise"` (`AdviseReport`); every kind goes through the one path `results.migrate.migrate`,
which brings each schema version the kind ever had to its current one and rejects the rest with
one line. `load` is `load_result` for run results only. (Matrix folders: `results.matrix`.)
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from velobench.errors import VelobenchError
from velobench.fsutil import write_text_atomic
from velobench.results.advise import AdviseReport
from velobench.results.load import LoadReport
from velobench.results.lossless import LosslessReport
from velobench.results.migrate import kind_of, migrate
from velobench.results.schema import Report
from velobench.results.think import ThinkReport
from velobench.validation import one_line

AnyResult = Report | LoadReport | ThinkReport | LosslessReport | AdviseReport


def save(report: AnyResult, path: Path) -> None:
    write_text_atomic(path, report.model_dump_json(indent=2) + "\n")


def load(path: Path) -> Report:
    """Read a `velobench run` result file of any known schema version; anything else is one line."""
    result = load_result(path)
    if not isinstance(result, Report):
        raise VelobenchError(f"{path} is a `velobench {result.kind}` result, not a `velobench run` result")
    return result


def load_result(path: Path) -> AnyResult:
    """Read a result file of any kind (`"kind"`: absent for `run`, "load", "think", "lossless",
    "advise") and known version."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise VelobenchError(f"result file not found: {path}") from exc
    except IsADirectoryError as exc:
        raise VelobenchError(f"{path} is a folder, not a result file") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise VelobenchError(f"{path}: not a JSON file ({exc})") from exc
    except OSError as exc:
        raise VelobenchError(f"cannot read {path}: {exc.strerror}") from exc
    if not isinstance(raw, dict):
        raise VelobenchError(
            f"{path}: schema_version None is not one this velobench reads (not a JSON object)"
        )
    try:
        kind = kind_of(raw)
        current = migrate(kind, raw)
    except ValueError as exc:
        raise VelobenchError(f"{path}: {exc}") from exc
    model = _MODELS[kind]
    try:
        return model.model_validate(current)
    except ValidationError as exc:
        raise VelobenchError(f"{path}: invalid result file at {one_line(exc)}") from exc


_MODELS: dict[str, type[AnyResult]] = {
    "run": Report,
    "load": LoadReport,
    "think": ThinkReport,
    "lossless": LosslessReport,
    "advise": AdviseReport,
}
