"""Result files: version 1 (committed, from a real run) still loads; v2 round-trips; unknown versions fail."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from velobench.errors import VelobenchError
from velobench.results.schema import RUN_SCHEMA_VERSION
from velobench.results.store import load, save

V1 = Path(__file__).parents[1] / "fixtures" / "reports" / "smollm2-135m-selfdraft-server.json"


def test_a_version_1_file_is_migrated_to_modes_and_comparisons() -> None:
    raw = json.loads(V1.read_text())
    assert raw["schema_version"] == 1
    rep = load(V1)
    assert rep.schema_version == RUN_SCHEMA_VERSION == 4
    assert list(rep.modes) == ["vanilla", "speculative"]
    spec = rep.modes["speculative"]
    assert spec.session is not None and spec.session.command == raw["speculative"]["server_command"]
    assert spec.session.log == raw["speculative"]["server_log"]
    assert len(spec.iterations) == len(raw["speculative"]["iterations"])
    (comp,) = rep.comparisons
    assert (comp.baseline, comp.candidate) == ("vanilla", "speculative")
    assert comp.speedup is not None and comp.speedup.ratio == raw["speedup_detail"]["ratio"] == rep.speedup


def test_v2_round_trips_and_is_readable_by_others(tmp_path: Path) -> None:
    rep = load(V1)
    out = tmp_path / "r.json"
    save(rep, out)
    assert load(out) == rep
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temp file left behind


@pytest.mark.parametrize(
    ("content", "needle"), [('{"schema_version": 5}', "schema_version 5"), ("[]", "None")]
)
def test_unknown_versions_are_one_line(tmp_path: Path, content: str, needle: str) -> None:
    (tmp_path / "x.json").write_text(content)
    with pytest.raises(VelobenchError, match=needle):
        load(tmp_path / "x.json")
    with pytest.raises(VelobenchError, match="is a folder"):
        load(tmp_path)
