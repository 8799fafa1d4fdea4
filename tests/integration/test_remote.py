"""`velobench run --server-url`: two real llama-servers velobench did not start, behind an API key.

The servers (SmolLM2, one vanilla, one drafting for itself) are started here with
`--api-key`, as a user would; velobench only sends requests. Checked: the served model comes
from /v1/models, acceptance from /metrics, the key is sent (a wrong one is one clean line)
and written to no file velobench made.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from velobench.proc import ServerProcess, child_env, free_port

pytestmark = pytest.mark.integration

KEY = "vb-remote-test-key-93b1d0f2"
CliResult = tuple[int, str, str]


@pytest.fixture(scope="module")
def servers(
    llama_bin: Path, smol: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    logs = tmp_path_factory.mktemp("servers")
    urls = []
    with (
        ServerProcess(
            [
                str(llama_bin / "llama-server"),
                "-m",
                str(smol),
                "--host",
                "127.0.0.1",
                "--port",
                str(p1 := free_port()),
                "-np",
                "1",
                "-c",
                "1024",
                "-t",
                "2",
                "--metrics",
                "--api-key",
                KEY,
            ],
            p1,
            logs / "vanilla.log",
            name="llama-server",
            env=child_env(),
        ) as vanilla,
        ServerProcess(
            [
                str(llama_bin / "llama-server"),
                "-m",
                str(smol),
                "-md",
                str(smol),
                "--spec-type",
                "draft-simple",
                "--spec-draft-n-max",
                "4",
                "--host",
                "127.0.0.1",
                "--port",
                str(p2 := free_port()),
                "-np",
                "1",
                "-c",
                "1024",
                "-t",
                "2",
                "--metrics",
                "--api-key",
                KEY,
            ],
            p2,
            logs / "speculative.log",
            name="llama-server",
            env=child_env(),
        ) as speculative,
    ):
        urls = [vanilla.base_url, speculative.base_url]
        yield urls[0], urls[1]


def every_file_text(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


def test_remote_run_measures_acceptance_and_writes_the_key_nowhere(
    cli: Callable[..., CliResult], servers: tuple[str, str], isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vanilla, speculative = servers
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # the key from the environment, as users pass it
    code, out, err = cli(
        "run",
        "--server-url",
        speculative,
        "--baseline-url",
        vanilla,
        "-n",
        "16",
        "-i",
        "2",
        "-p",
        "Write a Python function that adds two numbers.",
        "-o",
        "r.json",
    )
    assert code == 0, err
    data = json.loads((isolated / "r.json").read_text())
    assert data["config"]["engine"] == "remote" and "api_key" not in data["config"]
    spec = data["modes"]["speculative"]
    assert spec["session"]["extra"]["model"]  # the served name, from /v1/models
    for it in spec["iterations"]:
        assert it["n_drafted"] > 0 and it["draft_steps"] > 0  # /metrics answered with the key
        assert it["generated_tokens"] == 16 == it["request"]["output_tokens"]
    assert data["comparisons"][0]["speedup"]["ratio"] > 0
    assert KEY not in out + err
    assert KEY not in every_file_text(isolated)


def test_a_wrong_key_is_one_clean_line(
    cli: Callable[..., CliResult], servers: tuple[str, str], isolated: Path
) -> None:
    code, out, err = cli(
        "run", "--server-url", servers[1], "--skip-vanilla", "--api-key", "wrong-key-123", "-o", "w.json"
    )
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "401" in lines[0] or "refused" in lines[0] or "key" in lines[0]
    assert "wrong-key-123" not in out + err
    assert not (isolated / "w.json").exists()


def test_an_unreachable_url_is_one_clean_line(cli: Callable[..., CliResult]) -> None:
    port = free_port()  # nothing listens there
    code, _, err = cli("run", "--server-url", f"http://127.0.0.1:{port}", "--skip-vanilla", "-o", "u.json")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cannot reach" in err
    assert os.listdir(".") == [] or not Path("u.json").exists()
