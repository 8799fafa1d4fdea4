"""`velobench advise` on bad input: one line on stderr, exit code 2, no traceback, no file
written, nothing started."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.cli.test_load_cli import assert_refused
from velobench.results.advise import ADVISE_SCHEMA_VERSION, AdviseReport

BASE = ["advise", "-m", "model.gguf", "-d", "model.gguf", "--prompts", "builtin"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--n-draft", "0,2"], "--n-draft 0 is vanilla decoding"),
        (["--concurrency", "0,2"], "--concurrency values must be >= 1"),
        (["--concurrency", "one"], "--concurrency: expected numbers like 1,2,4"),
        (["--server-url", "http://127.0.0.1:9"], "a remote server (--server-url) cannot be restarted"),
        (["--engine", "vllm"], "--engine vllm is not supported"),
        (["-n", "2040", "--n-draft", "8"], "--ctx-size 2048 per slot cannot hold -n 2040"),
        (["--probe-requests", "1"], "--probe-requests must be >= 2"),
        (["--concurrency", "64", "--n-draft", "4"], "= 320 sequences"),
        (["--bootstrap", "-1"], "--bootstrap must be >= 0"),
        (["--synthetic-map", "--no-confirm"], "drop --no-confirm"),
        (["--synthetic", "1.5"], "--synthetic: acceptance α must lie in [0, 1]"),
    ],
)
def test_bad_advise_options(cli, args: list[str], needle: str) -> None:  # type: ignore[no-untyped-def]
    assert_refused(*cli(*BASE, *args), needle)


def test_missing_model_is_one_line(cli) -> None:  # type: ignore[no-untyped-def]
    assert_refused(*cli(*BASE), "model.gguf")


ADVISE = Path(__file__).parents[1] / "fixtures" / "advise"


@pytest.mark.parametrize(
    "name", ["advise-qwen-busy.json", "advise-qwen-quiet.json", "advise-smollm2-synthmap.json"]
)
def test_report_renders_an_advise_result_of_each_version(cli, isolated: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    """`velobench report` on real advise results (schema 1, migrated, and 2): the console tables,
    Markdown, HTML with the heat map, JSON that reads back as the current version, and the
    schedule file, parsed as TOML."""
    path = str(ADVISE / name)
    saved = AdviseReport.model_validate_json((ADVISE / name).read_text())  # as written
    code, out, err = cli("report", path)
    assert code == 0, err
    assert "Predicted speedup" in out and "Schedule" in out and "confirmed" in out.lower()
    code, out, err = cli("report", path, "-F", "md")
    assert code == 0, err
    assert "| concurrency |" in out and "```toml" in out
    for c in saved.confirmations:  # every confirmed point, with its measured ratio
        assert c.measured is not None and f"{c.measured.ratio:.2f}x" in out
    # the synthetic-acceptance map (schema 3), apart from the confirmations
    assert ("Synthetic acceptance a_i = α^i" in out) == any(c.synthetic_rates for c in saved.confirmations)
    code, _, err = cli("report", path, "-F", "html", "-o", "adv.html")
    assert code == 0, err
    assert 'src="data:image/png;base64,' in (isolated / "adv.html").read_text()
    code, out, err = cli("report", path, "-F", "json")
    assert code == 0, err
    back = AdviseReport.model_validate_json(out)
    assert back.schema_version == ADVISE_SCHEMA_VERSION and back.grid == saved.grid
    code, out, err = cli("report", path, "-F", "toml")
    assert code == 0, err
    sched = tomllib.loads(out)
    assert [(e["concurrency_from"], e["concurrency_to"], e["n_draft"]) for e in sched["llama_server"]] == [
        (e.concurrency_from, e.concurrency_to, e.n_draft or 0) for e in saved.schedule
    ]
    code, _, err = cli("report", path, "-F", "csv")
    assert code == 2 and "choose console, md, json, html, toml" in err


@pytest.mark.parametrize("name", ["advise-qwen-quiet", "advise-smollm2-synthmap"])
def test_report_gives_back_the_schedule_advise_wrote(cli, name: str) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("report", str(ADVISE / f"{name}.json"), "-F", "toml")
    assert code == 0, err
    assert out == (ADVISE / f"{name}.schedule.toml").read_text()


def test_compare_refuses_an_advise_result(cli) -> None:  # type: ignore[no-untyped-def]
    path = str(ADVISE / "advise-qwen-quiet.json")
    code, _, err = cli("compare", path, path)
    assert code == 2 and "not `velobench advise` results" in err
