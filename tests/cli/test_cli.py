"""Bad input: one line on stderr, exit code 2, no traceback, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from velobench.results import store as results
from velobench.results.schema import RUN_SCHEMA_VERSION


@pytest.fixture
def gguf(smol: Path) -> Path:
    """A real GGUF model (SmolLM2-135M), for the checks that come after the model pre-flight."""
    return smol


def assert_one_line_error(code: int, out: str, err: str, *needles: str) -> None:
    assert code == 2, (out, err)
    assert err.startswith("velobench: error: ")
    assert err.count("\n") == 1, err
    assert "Traceback" not in out + err
    for n in needles:
        assert n in err, err
    assert not list(Path("results").glob("*")) if Path("results").exists() else True


def test_missing_model(cli) -> None:  # type: ignore[no-untyped-def]
    assert_one_line_error(
        *cli("run", "-m", "nope.gguf", "-d", "nope.gguf"), "main model not found: nope.gguf"
    )


def test_missing_draft(cli, gguf: Path) -> None:  # type: ignore[no-untyped-def]
    assert_one_line_error(
        *cli("run", "-m", str(gguf), "-d", "draft.gguf"), "draft model not found: draft.gguf"
    )


def test_not_a_gguf(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "model.bin"
    bad.write_text("not a model")
    assert_one_line_error(*cli("run", "-m", str(bad), "-d", str(bad)), "not a GGUF file")


def test_binary_not_found(cli, gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    code, out, err = cli("run", "-m", str(gguf), "-d", str(gguf), "--llama-cpp-path", str(tmp_path))
    # --llama-cpp-path is the one place looked in: nothing is taken from PATH or the cache instead
    assert_one_line_error(
        code, out, err, "llama-speculative-simple not found in --llama-cpp-path", "one build"
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-i", "0"], "iterations: Input should be greater than or equal to 1"),
        (["--n-draft", "0"], "n-draft: Input should be greater than or equal to 1"),
        (["-n", "0"], "n-predict"),
        (["--draft-p-min", "1.5"], "draft-p-min"),
        (["--method", "nope"], "'nope' is not one of"),
        (["--spec-impl", "tree"], "'tree' is not one of"),
        (["--bogus"], "No such option: --bogus"),
        (["-x", "'unbalanced"], "--engine-args"),
        (["--method", "lookup"], "uses no draft model"),
        (["--llama-cpp-path", "/does/not/exist"], "not a directory"),
    ],
)
def test_bad_option_values(cli, gguf: Path, args: list[str], needle: str) -> None:  # type: ignore[no-untyped-def]
    assert_one_line_error(*cli("run", "-m", str(gguf), "-d", str(gguf), *args), needle)


def test_draft_method_needs_a_draft(cli, gguf: Path) -> None:  # type: ignore[no-untyped-def]
    assert_one_line_error(*cli("run", "-m", str(gguf)), "needs a draft model")


def test_missing_prompt_file(cli, gguf: Path) -> None:  # type: ignore[no-untyped-def]
    assert_one_line_error(
        *cli("run", "-m", str(gguf), "-d", str(gguf), "-f", "p.txt"), "prompt file not found"
    )


def test_report_rejects_unknown_schema_and_garbage(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "future.json").write_text('{"schema_version": 99}')
    assert_one_line_error(*cli("report", "future.json"), "schema_version 99")
    (tmp_path / "garbage.json").write_text("{")
    assert_one_line_error(*cli("report", "garbage.json"), "not a JSON file")
    assert_one_line_error(*cli("report", "missing.json"), "result file not found")
    assert RUN_SCHEMA_VERSION == 8  # 1 to 7 are still read (tests/unit/test_schema_versions.py)


def test_version_and_help(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("--version")
    assert code == 0 and out.startswith("velobench ")
    code, out, _ = cli("run", "--help")
    assert code == 0 and "--n-draft" in out and "-ngld" in out and "--skip-vanilla" in out


@pytest.mark.parametrize("args", [[], ["bins"], ["models"]])
def test_a_command_group_alone_prints_its_help(cli, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli(*args)
    assert code == 0 and out.startswith("Usage: velobench") and "Commands:" in out


def test_report_in_the_seed_tools_shapes(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`report --format` writes the predecessor's JSON to stdout and the vLLM study's folder with -o."""
    import json

    fixture = Path(__file__).parents[1] / "fixtures" / "reports" / "smollm2-135m-selfdraft-server.json"
    rep = results.load(fixture)
    code, out, err = cli("report", str(fixture), "--format", "velollm")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["vanilla"]["tokens_per_second"]["samples"] == rep.modes["vanilla"].tokens_per_second.samples
    assert doc["speedup"] == pytest.approx(rep.comparisons[0].speedup.ratio)

    assert_one_line_error(*cli("report", str(fixture), "--format", "vllm-study"), "--output DIR")
    code, out, err = cli("report", str(fixture), "--format", "vllm-study", "-o", str(tmp_path / "study"))
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "study").iterdir()) == [
        "config.yaml",
        "metrics.json",
        "responses.jsonl",
    ]
    assert_one_line_error(*cli("report", str(fixture), "--format", "spec-thinking"), "unknown format")
