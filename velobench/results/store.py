"""Result files on disk: written atomically after every iteration, loaded strictly.

A reader sees the old file or the new one, never half of one. `load` reads every schema
version this velobench knows (older ones through `results.migrate`) and rejects the rest
with one line. `load_result` reads every kind of result by its `kind`: a `velobench run` result
(`Report`, no `kind`), `"load"` (`LoadReport`) and `"think"` (`ThinkReport`).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from velobench.errors import VelobenchError
from velobench.fsutil import write_text_atomic
from velobench.results.load import LoadReport
from velobench.results.migrate import migrate
from velobench.results.schema import SCHEMA_VERSION, Report
from velobench.results.think import ThinkReport
from velobench.validation import one_line


def save(report: Report | LoadReport | ThinkReport, path: Path) -> None:
    write_text_atomic(path, report.model_dump_json(indent=2) + "\n")


def load(path: Path) -> Report:
    """Read a `velobench run` result file of any known schema version; anything else is one line."""
    result = load_result(path)
    if not isinstance(result, Report):
        raise VelobenchError(f"{path} is a `velobench {result.kind}` result, not a `velobench run` result")
    return result


def load_result(path: Path) -> Report | LoadReport | ThinkReport:
    """Read a result file of any kind (`"kind"`: absent for `run`, "load", "think") and known version."""
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
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        raise VelobenchError(
            f"{path}: schema_version {version!r} is not one this velobench reads (1 to {SCHEMA_VERSION})"
        )
    try:
        if raw.get("kind") == "load":
            return LoadReport.model_validate(raw)
        if raw.get("kind") == "think":
            return ThinkReport.model_validate(raw)
        return Report.model_validate(migrate(raw))
    except ValidationError as exc:
        raise VelobenchError(f"{path}: invalid result file at {one_line(exc)}") from exc
