"""Exporters, checked against golden files rendered from a committed real result.

The input, tests/fixtures/reports/smollm2-135m-selfdraft-server.json, is a result of
`velobench run` on the 2-core CPU machine (SmolLM2-135M drafting for itself, server engine).
Markdown and CSV are compared byte for byte with the committed <name>.md / <name>.csv; HTML is
checked for structure (it parses, N embedded PNGs, the verdict), never for PNG bytes.

To regenerate the golden files after an intended change of output, run

    VELOBENCH_REGENERATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_export.py

and review the diff of tests/fixtures/reports/ before committing it.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import os
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path

import pytest

from velobench import export
from velobench.analysis.summaries import analyze, category_mean_length, summarize_mode
from velobench.analysis.verdict import best_configuration, speedup_call
from velobench.errors import VelobenchError
from velobench.report import csv as csv_report
from velobench.report import html as html_report
from velobench.report import json as json_report
from velobench.report import markdown
from velobench.report.console import verdict_text
from velobench.report.tables import group_pairs
from velobench.results.measures import Ratio
from velobench.results.schema import RUN_SCHEMA_VERSION, Report
from velobench.results.store import load

REPORTS = Path(__file__).parents[1] / "fixtures" / "reports"
NAME = "smollm2-135m-selfdraft-server"
REGENERATE = os.environ.get("VELOBENCH_REGENERATE_GOLDEN") == "1"


def check_golden(filename: str, text: str) -> None:
    path = REPORTS / filename
    if REGENERATE:  # never a pass: a regenerated file is reviewed, then checked by a normal run
        path.write_text(text)
        pytest.skip(
            f"regenerated {filename}: review the diff, then run again without VELOBENCH_REGENERATE_GOLDEN"
        )
    assert path.exists(), f"{path} missing: run with VELOBENCH_REGENERATE_GOLDEN=1"
    assert text == path.read_text(), f"{filename} changed: VELOBENCH_REGENERATE_GOLDEN=1 regenerates it"


@pytest.fixture
def golden() -> Report:
    return load(REPORTS / f"{NAME}.json")


class Page(HTMLParser):
    """Collects <img> sources and checks that every non-void tag is closed in order."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self, text: str) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.images: list[str] = []
        self.tags: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unexpected </{tag}>")


def check_page(text: str, images: int) -> Page:
    assert text.startswith("<!DOCTYPE html>")
    page = Page(text)
    assert page.errors == [] and page.stack == []
    assert len(page.images) == images
    prefix = "data:image/png;base64,"
    for src in page.images:
        assert src.startswith(prefix)
        assert base64.b64decode(src[len(prefix) :], validate=True).startswith(b"\x89PNG\r\n\x1a\n")
    assert text.count(f'<img src="{prefix}') == images
    assert "http://" not in text.replace("http://127.0.0.1", "")  # self-contained: nothing to fetch
    return page


# ------------------------------------------------------------------ one report


def test_markdown_golden(golden: Report) -> None:
    text = markdown.render(golden)
    check_golden(f"{NAME}.md", text)
    assert f"**Verdict:** {verdict_text(golden.speedup_detail)}" in text
    assert "| Tokens/s |" in text and "speculation-slower" in text


def test_csv_golden(golden: Report) -> None:
    text = csv_report.render(golden)
    check_golden(f"{NAME}.csv", text)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(csv_report.CSV_COLUMNS)
    assert [(r["row"], r["mode"]) for r in rows] == [("mode", "vanilla"), ("mode", "speculative")]
    spec = rows[1]
    assert golden.speculative is not None and golden.speculative.tokens_per_second is not None
    assert float(spec["tokens_per_second_mean"]) == golden.speculative.tokens_per_second.mean
    assert float(spec["speedup"]) == golden.speedup
    assert float(spec["mean_acceptance_length"]) == 9.0
    assert rows[0]["speedup"] == ""  # undefined is empty, never NaN


def test_json_round_trips(golden: Report) -> None:
    text = json_report.render(golden)
    assert text.startswith(f'{{\n  "schema_version": {RUN_SCHEMA_VERSION},')  # the v1 input, as current
    assert Report.model_validate_json(text) == golden


def test_html_structure(golden: Report) -> None:
    text = html_report.render(golden)
    page = check_page(text, images=2)  # tokens/s per mode, speedup
    assert html.escape(verdict_text(golden.speedup_detail)) in text
    assert "table" in page.tags and "h1" in page.tags
    for w in golden.warnings:
        assert w.code.value in text
    assert "Speedup:" in text and "Tokens/s" in text


def test_formats_for_the_cli(golden: Report) -> None:
    assert set(export.format_names("matrix")) == {"md", "csv", "json", "html"}
    assert set(export.format_names("run")) >= {"md", "csv", "json", "html"}
    assert export.render([golden], "md") == markdown.render(golden)
    assert export.render([golden, golden], "csv").count("\n") == 5  # one header, 2 rows each
    with pytest.raises(VelobenchError, match="unknown export format"):
        export.render([golden], "xlsx")
    with pytest.raises(VelobenchError):
        export.render([], "md")


# ------------------------------------------------------------------ categories (derived)


@pytest.fixture
def categorized(golden: Report) -> Report:
    """The golden run with its iterations labelled as two prompt categories (synthetic labels)."""
    r = golden.model_copy(deep=True)
    for m in (r.vanilla, r.speculative):
        assert m is not None
        for it in m.iterations:
            it.category = "code" if it.index % 2 else "chat"
            it.prompt_id = f"{it.category}-1"
    analyze(r)
    assert [c.category for c in r.categories] == ["chat", "code"]
    return r


def test_categories_in_every_format(categorized: Report) -> None:
    md = markdown.render(categorized)
    assert "## Per category" in md and "| code | 1 |" in md
    rows = list(csv.DictReader(io.StringIO(csv_report.render(categorized))))
    cats = [(r["category"], r["mode"]) for r in rows if r["row"] == "category"]
    assert cats == [
        ("chat", "vanilla"),
        ("chat", "speculative"),
        ("code", "vanilla"),
        ("code", "speculative"),
    ]
    code_spec = rows[-1]
    assert code_spec["n"] == "2" and code_spec["acceptance_rate"] == "1.0"
    assert code_spec["mean_acceptance_length"] == "9.0" and code_spec["speedup"] != ""
    check_page(html_report.render(categorized), images=4)  # + acceptance per category, per prompt (issue 20)
    assert category_mean_length(categorized, "code") == 9.0


# ------------------------------------------------------------------ matrix (derived)


def configuration(golden: Report, n_draft: int, factors: Sequence[float], draft: str | None = None) -> Report:
    """The golden run as if made with `n_draft`, each speculative iteration's speed × a factor."""
    r = golden.model_copy(deep=True)
    update: dict[str, object] = {"n_draft": n_draft}
    if draft is not None:
        update["draft_model"] = draft
    r.config = r.config.model_copy(update=update)
    assert r.speculative is not None
    for it, f in zip(r.speculative.iterations, factors, strict=True):
        it.tokens_per_second *= f
        it.total_time_ms /= f
    summarize_mode(r.speculative)
    analyze(r)
    return r


@pytest.fixture
def matrix(golden: Report) -> list[Report]:
    pair = [
        configuration(golden, 8, [1.0, 1.0, 1.0]),  # 0.53x: slowdown
        configuration(golden, 2, [2.6, 2.6, 2.6]),  # 1.37x, interval above 1
        configuration(golden, 16, [1.5, 3.0, 9.0]),  # highest ratio, interval reaches below 1
        configuration(golden, 4, [3.0, 3.0, 3.0]),  # 1.58x: the best
        configuration(golden, 6, [2.0, 2.0, 2.0]),  # 1.05x: no significant speedup
    ]
    other = [configuration(golden, n, [2.0, 2.0, 2.0], draft="synthetic-draft.gguf") for n in (2, 4)]
    return pair + other


def test_speedup_calls() -> None:
    def ratio(lo: float | None, hi: float | None, r: float = 1.5) -> Ratio:
        return Ratio(ratio=r, stddev=0.1, ci95_low=lo, ci95_high=hi, p_value=0.01, n_a=5, n_b=5)

    assert speedup_call(ratio(1.01, 2.0)) == "speedup"
    assert speedup_call(ratio(0.99, 2.0)) == "no significant speedup"
    assert speedup_call(ratio(None, None)) == "no significant speedup"
    assert speedup_call(None) == "no significant speedup"
    assert speedup_call(ratio(0.5, 0.9, r=0.7)) == "slowdown"


def test_best_configuration(matrix: list[Report]) -> None:
    pair, other = group_pairs(matrix)
    assert [r.config.n_draft for r in pair] == [2, 4, 6, 8, 16]
    assert [speedup_call(r.speedup_detail) for r in pair] == [
        "speedup",
        "speedup",
        "no significant speedup",
        "slowdown",
        "no significant speedup",
    ]
    n16 = pair[-1]
    assert n16.speedup is not None and pair[1].speedup is not None and n16.speedup > pair[1].speedup
    best = best_configuration(pair)
    assert best is not None and best.config.n_draft == 4
    assert best_configuration(other) is None


def test_markdown_many_golden(matrix: list[Report]) -> None:
    text = markdown.render_many(matrix)
    check_golden("matrix-synthetic.md", text)
    assert text.count("\n| **4** |") == 1
    assert "Best: n_draft 4" in text
    assert "No significant speedup" in text


def test_html_many_structure(matrix: list[Report]) -> None:
    text = html_report.render_many(matrix)
    check_page(text, images=2)  # one speedup-vs-n_draft plot per pair
    assert text.count('<tr class="best">') == 1
    assert "Best: n_draft 4" in text and "No significant speedup" in text
    assert export.render(matrix, "html").count("<table>") == 2
