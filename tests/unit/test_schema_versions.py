"""Every schema version of every result kind still loads, renders and compares as the current one.

The committed fixtures (tests/fixtures/schema-versions/README.md says how each was made) hold one
file per version of each kind; an old file must give the figures, the reports (console, md, csv,
html) and the warnings' words of the current file it migrates to, and compare with it as equal.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from velobench import export
from velobench.analysis.compare import compare_reports
from velobench.errors import VelobenchError
from velobench.load.compare import compare_load
from velobench.load.render import print_load_config, print_load_report
from velobench.report.console import print_config, print_report
from velobench.report.warnings import text
from velobench.results import store
from velobench.results.advise import AdviseReport
from velobench.results.load import LoadReport, read_records, records_path
from velobench.results.matrix import cell_reports, load_summary
from velobench.results.migrate import LINEAGES
from velobench.results.schema import Report
from velobench.results.think import ThinkReport
from velobench.think.console import render_console as think_console

FIXTURES = Path(__file__).parents[1] / "fixtures"
HERE = FIXTURES / "schema-versions"
RUN_V1 = FIXTURES / "reports" / "smollm2-135m-selfdraft-server.json"
THINK_V2 = FIXTURES / "think" / "result-smollm2-every-paragraph.json"

# kind -> {version: fixture}; the last one of each kind is its current version.
FILES = {
    "run": {
        1: RUN_V1,
        2: HERE / "run-v2.json",
        3: HERE / "run-v3.json",
        4: HERE / "run-v4.json",
        5: HERE / "run-v5.json",
        6: HERE / "run-v6.json",
        7: HERE / "run-v7.json",
        8: HERE / "run-v8.json",
    },
    "load": {
        3: HERE / "load-v3.json",
        4: HERE / "load-v4.json",
        5: HERE / "load-v5.json",
        6: HERE / "load-v6.json",
    },
    "think": {2: THINK_V2, 3: HERE / "think-v3.json", 4: HERE / "think-v4.json"},
    "matrix": {1: HERE / "matrix-v1" / "summary.json", 2: HERE / "matrix-v2" / "summary.json"},
    "lossless": {1: HERE / "lossless-v1.json"},
    # real advise runs (not one file migrated): version 1 had no server overhead or re-evaluation,
    # version 3 adds the synthetic-acceptance map, version 4 maps the highest concurrency too
    "advise": {
        1: FIXTURES / "advise" / "advise-qwen-busy.json",
        2: FIXTURES / "advise" / "advise-qwen-quiet.json",
        3: FIXTURES / "advise" / "advise-smollm2-synthmap.json",
        4: FIXTURES / "advise" / "advise-smollm2-synthmap2.json",
    },
}
FILE_FORMATS = ("md", "csv", "html")  # json: compared field by field below


def old_files(kind: str) -> list[Path]:
    versions = FILES[kind]
    return [versions[v] for v in sorted(versions)[:-1]]


def current(kind: str) -> Path:
    return FILES[kind][max(FILES[kind])]


@pytest.mark.parametrize("kind", sorted(FILES))
def test_every_version_of_every_kind_has_its_fixture(kind: str) -> None:
    line = LINEAGES[kind]  # type: ignore[index]
    assert sorted(FILES[kind]) == list(range(line.first, line.current + 1))
    for version, path in FILES[kind].items():
        assert json.loads(path.read_text())["schema_version"] == version, path


def console_text(*prints: object) -> str:
    con = Console(record=True, width=160, color_system=None, force_terminal=False)
    for show in prints:
        show(con)  # type: ignore[operator]
    return con.export_text()


def without_warnings(data: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in data.items() if k not in ("warnings", "schema_version")}


# --- run results -------------------------------------------------------------------------------


def run_console(rep: Report) -> str:
    return console_text(lambda c: print_config(c, rep), lambda c: print_report(c, rep))


# The newest run file whose verdict used the ratio of means: files of versions 1-3 must read as it
# does (version 5 added the paired estimate, which older files do not have: see below).
RUN_V4 = FILES["run"][4]


@pytest.mark.parametrize("old", [FILES["run"][v] for v in (1, 2, 3)], ids=lambda p: p.name)
def test_an_old_run_result_reads_renders_and_compares_as_the_current_one(old: Path) -> None:
    a, b = store.load(old), store.load(RUN_V4)
    assert a.schema_version == b.schema_version == LINEAGES["run"].current
    assert a.warnings and all(w.message for w in a.warnings)  # the old texts, kept
    assert b.warnings and all(w.message is None and w.params for w in b.warnings)  # values
    assert [w.code for w in a.warnings] == [w.code for w in b.warnings]
    assert [text(w) for w in a.warnings] == [text(w) for w in b.warnings]
    assert without_warnings(a.model_dump()) == without_warnings(b.model_dump())
    for fmt in FILE_FORMATS:
        assert export.render([a], fmt) == export.render([b], fmt), fmt
    assert run_console(a) == run_console(b)
    assert "speculative decoding is slower than vanilla (0.53x)" in run_console(a)
    again = Report.model_validate_json(export.render([a], "json"))
    assert without_warnings(again.model_dump()) == without_warnings(b.model_dump())
    comp = compare_reports(a, b)
    assert comp.differences == [] and comp.metrics
    for m in comp.metrics:
        assert (m.a, m.n_a) == (m.b, m.n_b) and m.difference == 0, m.metric


def test_a_version_4_run_result_keeps_its_ratio_of_means_verdict() -> None:
    """v4 → v5: the old file's verdict used the ratio of means and says so; it has no pairs. The
    version-5 file of the same samples adds the paired estimate and its verdict uses it; the ratio
    of means is the same in both, and re-analysing the old file gives the new one."""
    from velobench.analysis.summaries import analyze

    a, b = store.load(RUN_V4), store.load(current("run"))
    assert a.schema_version == b.schema_version == 8  # both read as the current version
    ca, cb = a.primary, b.primary
    assert ca is not None and cb is not None
    assert (ca.estimator, ca.paired_speedup) == ("ratio-of-means", None)
    assert all(c.n_pairs == 0 and c.paired_speedup is None for c in ca.categories)
    assert a.speedup_detail == ca.speedup and a.ratio_of_means == ca.speedup
    assert cb.estimator == "paired" and cb.paired_speedup is not None
    assert b.speedup_detail == cb.paired_speedup and b.ratio_of_means == cb.speedup
    assert cb.speedup == ca.speedup
    old_text, new_text = run_console(a), run_console(b)
    assert "Speedup: 0.53x ± " in old_text and "Ratio of means" not in old_text
    assert "Speedup: 0.53x, 95% CI 0.42–0.67 (paired, 3 pairs), paired t p = 0.0072" in new_text
    assert "Ratio of means: 0.53x ± " in new_text and "(Fieller), Welch p = " in new_text
    assert "speculative decoding is slower than vanilla (0.53x)" in new_text
    for fmt in FILE_FORMATS:
        export.render([a], fmt)  # the old file renders in every format
    analyze(a)
    assert without_warnings(a.model_dump()) == without_warnings(b.model_dump())


# --- load results ------------------------------------------------------------------------------


def load_console(rep: LoadReport) -> str:
    return console_text(lambda c: print_load_config(c, rep), lambda c: print_load_report(c, rep))


@pytest.mark.parametrize("old", old_files("load"), ids=lambda p: p.name)
def test_an_old_load_result_reads_renders_and_compares_as_the_current_one(old: Path) -> None:
    a, b = store.load_result(old), store.load_result(current("load"))
    assert isinstance(a, LoadReport) and isinstance(b, LoadReport)
    assert a.schema_version == b.schema_version == LINEAGES["load"].current
    level_a = [w for c in a.comparisons for w in c.warnings]
    level_b = [w for c in b.comparisons for w in c.warnings]
    if json.loads(old.read_text())["schema_version"] < 4:  # warnings were text until load version 4
        assert level_a and all(w.message for w in level_a)
    else:
        assert level_a == level_b
    assert level_b and all(w.message is None and w.params for w in level_b)
    assert [(w.code, text(w)) for w in level_a] == [(w.code, text(w)) for w in level_b]
    assert [text(w) for w in a.warnings] == [text(w) for w in b.warnings]
    # the generator's lag was not measured before version 5: none, and no level warning
    assert all(lvl.lag is None and not lvl.warnings for m in a.modes.values() for lvl in m.levels)
    for fmt in FILE_FORMATS:
        assert export.render([a], fmt) == export.render([b], fmt), fmt
    assert load_console(a) == load_console(b)
    assert "throughput batches (0.23 s) are shorter than a request (0.46 s)" in load_console(a)
    again = LoadReport.model_validate_json(export.render([a], "json"))
    assert again.modes == b.modes and again.crossover == b.crossover
    ra, rb = read_records(records_path(old, a)), read_records(records_path(current("load"), b))
    comp = compare_load(a, b, ra, rb)
    assert comp.differences == [] and comp.metrics
    for m in comp.metrics:
        assert (m.a, m.n_a) == (m.b, m.n_b) and m.difference == 0, m.metric


# --- think results -----------------------------------------------------------------------------


@pytest.mark.parametrize("old", old_files("think"), ids=lambda p: p.name)
def test_an_old_think_result_reads_and_renders_as_the_current_one(old: Path) -> None:
    a, b = store.load_result(old), store.load_result(current("think"))
    assert isinstance(a, ThinkReport) and isinstance(b, ThinkReport)
    assert a.schema_version == b.schema_version == LINEAGES["think"].current
    assert a.summary is not None and b.summary is not None
    assert all(w.message for w in a.summary.warnings) and all(w.message is None for w in b.summary.warnings)
    assert (
        [text(w) for w in a.warnings]
        == [text(w) for w in b.warnings]
        == [
            "2 run(s) hit --max-tokens before an answer or end of sequence",
            "the latency difference is not significant (Welch p = 0.744)",
        ]
    )
    assert a.summary.model_copy(update={"warnings": []}) == b.summary.model_copy(update={"warnings": []})
    assert a.runs == b.runs and a.config == b.config
    for fmt in FILE_FORMATS:
        assert export.render([a], fmt) == export.render([b], fmt), fmt
    assert think_console(a) == think_console(b)
    again = ThinkReport.model_validate_json(export.render([a], "json"))
    assert again.runs == b.runs


# --- matrix run folders ------------------------------------------------------------------------


def test_a_version_1_matrix_folder_renders_its_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(HERE)  # the folder records its cells' files relative to where it ran
    summary = load_summary(Path("matrix-v1"))
    assert summary.schema_version == LINEAGES["matrix"].current
    pairs = list(cell_reports(summary))
    assert [r.cell.baseline for r, _ in pairs] == [True, False]
    spec = pairs[1][1]
    assert spec.schema_version == LINEAGES["run"].current
    assert pairs[1][0].speedup == spec.speedup_detail
    # a cell is a run result: it renders as the run result it was measured as
    same = store.load(HERE / "run-v3.json")
    for fmt in FILE_FORMATS:
        assert export.render([spec], fmt) == export.render([same], fmt), fmt
    assert export.render([rep for _, rep in pairs], "md").count("smollm2") >= 2


def test_the_lossless_result_loads_and_renders_in_every_format() -> None:
    rep = store.load_result(current("lossless"))
    assert rep.kind == "lossless" and rep.schema_version == LINEAGES["lossless"].current
    for fmt in export.format_names("lossless"):
        assert export.render([rep], fmt)
    assert "No difference found" in export.render([rep], "md")


@pytest.mark.parametrize("version", sorted(FILES["advise"]))
def test_every_advise_version_loads_as_the_current_one_and_renders(version: int) -> None:
    """An advise file of any version reads as the current version and renders in every format;
    version 1 (no vanilla probe arm, no re-evaluation rows) keeps its own prediction."""
    path = FILES["advise"][version]
    rep = store.load_result(path)
    assert rep.kind == "advise" and rep.schema_version == LINEAGES["advise"].current
    raw = json.loads(path.read_text())
    assert rep.model_dump(mode="json", exclude={"schema_version"}) == {
        k: v
        for k, v in AdviseReport.model_validate(raw).model_dump(mode="json").items()
        if k != "schema_version"
    }
    assert (rep.server_overhead_s is None) == (version == 1)
    for fmt in export.format_names("advise"):
        assert export.render([rep], fmt)


def test_rendering_a_matrix_folder_does_not_import_the_runner() -> None:
    code = (
        "import sys; from pathlib import Path; "
        "from velobench.results.matrix import cell_reports, load_summary; from velobench import export; "
        "reps = [r for rec, r in cell_reports(load_summary(Path('matrix-v1'))) if not rec.cell.baseline]; "
        "assert export.render(reps, 'md'); "
        "print(sorted(m for m in sys.modules if m.startswith('velobench.runner')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=HERE, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


# --- versions a kind never had -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (
            {"schema_version": 0},
            r"schema_version 0 is not one this velobench reads for run results \(1 to 8\)",
        ),
        ({"schema_version": 9}, "schema_version 9 is not one .* run results"),
        ({"kind": "load", "schema_version": 2}, r"schema_version 2 .* load results \(3 to 6\)"),
        ({"kind": "load", "schema_version": 7}, "schema_version 7 .* load results"),
        ({"kind": "think", "schema_version": 1}, r"schema_version 1 .* think results \(2 to 4\)"),
        ({"kind": "think", "schema_version": "4"}, "schema_version '4' .* think results"),
        ({"kind": "chat", "schema_version": 4}, "kind 'chat' is not a result kind"),
    ],
)
def test_a_version_a_kind_never_had_is_one_line(tmp_path: Path, raw: dict[str, object], needle: str) -> None:
    (tmp_path / "r.json").write_text(json.dumps(raw))
    with pytest.raises(VelobenchError, match=needle) as err:
        store.load_result(tmp_path / "r.json")
    assert "\n" not in str(err.value)


def test_a_matrix_summary_of_an_unknown_version_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text('{"schema_version": 3}')
    with pytest.raises(VelobenchError, match=r"schema_version 3 .* matrix results \(1 to 2\)"):
        load_summary(tmp_path)


def test_a_level_warning_velobench_never_wrote_is_refused(tmp_path: Path) -> None:
    raw = json.loads((HERE / "load-v3.json").read_text())
    raw["comparisons"][0]["warnings"] = ["something else"]
    (tmp_path / "r.json").write_text(json.dumps(raw))
    with pytest.raises(VelobenchError, match="a level warning velobench never wrote: 'something else'"):
        store.load_result(tmp_path / "r.json")
