"""docs/cli.md is the CLI's --help text, regenerated from the code; --help loads nothing heavy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from velobench.cli import reference

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_docs_cli_md_is_the_generated_reference() -> None:
    assert DOCS.read_text() == reference.reference(), (
        f"docs/cli.md is out of date with the CLI: run `{reference.REGENERATE}`"
    )


def test_the_reference_covers_every_command_and_does_not_depend_on_the_terminal() -> None:
    text = reference.reference()
    for command in ("run", "load", "demo", "matrix", "compare", "tune", "think", "report"):
        assert f"## velobench {command}\n" in text
    for sub in ("bins list", "bins build", "bins vllm", "models list", "models pull", "selftest loadgen"):
        assert f"## velobench {sub}\n" in text
    narrow = subprocess.run(
        [sys.executable, "-m", "velobench.cli.reference"],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "40", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(DOCS.parents[1])},
    )
    assert narrow.stdout == text


def test_help_and_version_import_no_numpy_scipy_httpx_or_matplotlib() -> None:
    probe = (
        "import sys\n"
        "from velobench.cli import main\n"
        "for argv in (['velobench', '--help'], ['velobench', '--version'], ['velobench', 'load', '--help']):\n"
        "    sys.argv = argv\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in ('numpy', 'scipy', 'httpx', 'aiohttp', 'matplotlib') if m in sys.modules))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(DOCS.parents[1])},
    )
    assert res.stdout.strip().splitlines()[-1] == "[]", res.stdout
