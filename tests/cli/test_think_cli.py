"""`velobench think` and `velobench report` of a think result through the real entry point:
bad input is one line on stderr, exit code 2, no traceback, nothing written, no server started."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

THINK = Path(__file__).parents[1] / "fixtures" / "think"


Cli = Callable[..., tuple[int, str, str]]


def assert_refused(result: tuple[int, str, str], needle: str, cwd: Path) -> None:
    code, out, err = result
    assert code == 2, (out, err)
    assert err.startswith("velobench: error: ") and err.count("\n") == 1, err
    assert needle in err and "Traceback" not in out + err
    assert sorted(p.name for p in cwd.iterdir()) == [], "nothing may be written"
    assert not [p for p in psutil.Process().children(recursive=True) if "llama" in p.name()]


@pytest.fixture
def models(smol: Path) -> list[str]:
    """Real GGUF models (SmolLM2-135M for both), so that the checks after the model check run."""
    return ["-m", str(smol), "-d", str(smol)]


def test_unknown_test_mode(cli: Cli, models: list[str], isolated: Path) -> None:
    assert_refused(cli("think", *models, "--test-mode", "fast"), "unknown test mode 'fast'", isolated)


def test_config_without_triggers(
    cli: Cli, models: list[str], isolated: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cfg = tmp_path_factory.mktemp("cfg") / "none.toml"
    cfg.write_text("[triggers]\nwords = []\n")
    assert_refused(
        cli("think", *models, "--config", str(cfg)),
        "words is empty; speculative thinking needs at least one trigger word",
        isolated,
    )


def test_missing_models(cli: Cli, isolated: Path) -> None:
    assert_refused(cli("think", "-m", "big.gguf", "-d", "small.gguf"), "large model (-m) not found", isolated)
    assert_refused(cli("think", "-d", "small.gguf"), "needs the large model: -m LARGE", isolated)


def test_bad_numbers(cli: Cli, models: list[str], isolated: Path) -> None:
    assert_refused(cli("think", *models, "--num-runs", "0"), "num-runs", isolated)
    assert_refused(cli("think", *models, "--max-tokens", "0"), "generation.max_tokens", isolated)
    assert_refused(cli("think", *models, "--num-problems", "0"), "num-problems", isolated)


def test_report_renders_a_think_result(cli: Cli, isolated: Path) -> None:
    result = str(THINK / "result-smollm2-every-paragraph.json")
    code, out, err = cli("report", result)
    assert code == 0, err
    assert "BENCHMARK RESULTS SUMMARY" in out and "OVERALL SPEEDUP" in out
    code, out, err = cli("report", result, "-F", "html", "-o", "page.html")
    assert code == 0, err
    assert '<span class="large"' in (isolated / "page.html").read_text()
    code, out, err = cli("report", result, "-o", "x.txt")
    assert code == 2 and "--output needs a file format" in err
