"""Result files: version 1 (committed, from a real run) still loads; a saved result round-trips; unknown
versions fail; warnings are values whose words are made in one place."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from velobench.errors import VelobenchError
from velobench.report.warnings import CPU_EXPLANATION, LEVEL, RUN, THINK, AnyWarning, text
from velobench.results.load import LevelWarning, LevelWarningCode
from velobench.results.schema import RUN_SCHEMA_VERSION, ResultWarning, WarningCode
from velobench.results.store import load, save
from velobench.results.think import ThinkWarning, ThinkWarningCode

V1 = Path(__file__).parents[1] / "fixtures" / "reports" / "smollm2-135m-selfdraft-server.json"


def test_a_version_1_file_is_migrated_to_modes_and_comparisons() -> None:
    raw = json.loads(V1.read_text())
    assert raw["schema_version"] == 1
    rep = load(V1)
    assert rep.schema_version == RUN_SCHEMA_VERSION == 8
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
    ("content", "needle"), [('{"schema_version": 9}', "schema_version 9"), ("[]", "None")]
)
def test_unknown_versions_are_one_line(tmp_path: Path, content: str, needle: str) -> None:
    (tmp_path / "x.json").write_text(content)
    with pytest.raises(VelobenchError, match=needle):
        load(tmp_path / "x.json")
    with pytest.raises(VelobenchError, match="is a folder"):
        load(tmp_path)


@pytest.mark.parametrize(
    ("warning", "words"),
    [
        (
            ResultWarning(code=WarningCode.HIGH_VARIANCE, params={"mode": "vanilla", "cv": 0.123}),
            "vanilla tokens/s varies by 12% (coefficient of variation): close other programs or raise --iterations",
        ),
        (
            ResultWarning(
                code=WarningCode.NO_SIGNIFICANT_DIFFERENCE,
                params={"baseline": "vanilla", "candidate": "speculative", "p_value": 0.41234},
            ),
            "no significant difference between vanilla and speculative at 95% (Welch p = 0.412)",
        ),
        (
            ResultWarning(
                code=WarningCode.SPECULATION_SLOWER,
                params={"baseline": "a", "candidate": "b", "ratio": 0.8},
            ),
            f"b is slower than a (0.80x): {CPU_EXPLANATION}",
        ),
        (
            ResultWarning(
                code=WarningCode.SPECULATION_SLOWER,
                params={"baseline": "vanilla", "candidate": "speculative", "ratio": 0.8, "why": "costs"},
            ),
            "speculative decoding is slower than vanilla: costs",
        ),
        (
            ResultWarning(code=WarningCode.INTERRUPTED, params={"kept": "levels"}),
            "interrupted: finished levels kept",
        ),
        (
            ResultWarning(code=WarningCode.SESSION_NOTE, params={"mode": "speculative", "note": "n"}),
            "speculative: n",
        ),
        (ResultWarning(code=WarningCode.SESSION_NOTE, params={"note": "n"}), "n"),
        (
            ResultWarning(code=WarningCode.NO_CEILING, params={"reason": "no llama-bench"}),
            "no speedup ceiling: no llama-bench",
        ),
        (
            ThinkWarning(
                code=ThinkWarningCode.ACCURACY_DROP,
                params={"spec_rate": 0.5, "large_rate": 0.75, "method": "mcnemar-exact", "p_value": 0.031},
            ),
            "speculative thinking answers fewer problems right (50% vs 75%, mcnemar-exact p = 0.031)",
        ),
        (
            LevelWarning(code=LevelWarningCode.REQUESTS_FAILED, params={"mode": "vanilla"}),
            "vanilla: some requests failed; ratios use the successful ones",
        ),
        (ResultWarning(code=WarningCode.ONE_ITERATION, message="as written"), "as written"),  # an old file
        (
            ResultWarning(code=WarningCode.HIGH_VARIANCE, params={"mode": "vanilla"}),
            "high-variance (mode=vanilla)",
        ),
    ],
)
def test_warnings_are_values_rendered_in_one_place(warning: AnyWarning, words: str) -> None:
    assert text(warning) == words


def test_every_warning_code_has_its_words() -> None:
    assert (
        set(RUN) == set(WarningCode)
        and set(THINK) == set(ThinkWarningCode)
        and set(LEVEL) == set(LevelWarningCode)
    )
