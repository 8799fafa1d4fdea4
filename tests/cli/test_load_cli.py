"""`velobench load` on bad input: one line on stderr, exit code 2, no traceback, no file written,
no server started."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import llama_processes


def assert_refused(code: int, out: str, err: str, needle: str) -> None:
    assert code == 2, (out, err)
    assert err.startswith("velobench: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in out + err
    assert needle in err, err
    assert [p.name for p in Path(".").iterdir() if p.name != "cache"] == []  # no result, records or logs
    assert llama_processes() == []


BASE = ["load", "-m", "model.gguf", "-d", "model.gguf", "--prompts", "builtin"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--concurrency", "0"], "--concurrency must be a whole number > 0, got 0"),
        (["--concurrency", "-3"], "--concurrency must be a whole number > 0"),
        (["--rate", "0"], "request rate must be > 0 requests/s"),
        (["--rate", "-2"], "request rate must be > 0 requests/s"),
        (["--sweep", "concurrency="], "has no levels"),
        (["--sweep", "rate=,"], "has no levels"),
        (["--sweep", "concurrency=0,2"], "whole number >= 1"),
        (["--sweep", "threads=1,2"], "expected concurrency=1,2,4"),
        (["--requests", "0"], "--requests must be"),
        (["--duration", "-1"], "--duration must be"),
        (["--warmup-s", "1", "--warmup-requests", "2"], "not both"),
        (["--requests", "3", "--warmup-requests", "3"], "leave nothing"),
        (["--slo", "ttft=500"], "bad SLO item"),
        (["--burstiness", "0.5"], "needs --rate"),
        (["--engine", "cli"], "velobench load drives a server"),
        (["--find-max-rate"], "--find-max-rate needs the objectives to meet: --slo"),
        (["--find-max-rate", "--slo", "ttft=1s", "--sweep", "rate=1,2"], "drop --sweep"),
        (["--find-max-rate", "--slo", "ttft=1s", "--rate", "2"], "drop --rate"),
        (["--find-max-concurrency", "--slo", "ttft=1s", "--concurrency", "2"], "drop --concurrency"),
        (["--find-max-rate", "--find-max-concurrency", "--slo", "ttft=1s"], "search one of them"),
        (["--find-max-rate", "--slo", "ttft=1s", "--goodput-min", "0"], "--goodput-min must be in (0, 1]"),
        (
            ["--find-max-rate", "--slo", "ttft=1s", "--search-max", "1000", "--search-levels", "4"],
            "--search-max 1000 cannot be reached from --search-start 1 in --search-levels 4",
        ),
        (["--find-max-concurrency", "--slo", "ttft=1s", "--search-start", "0.5"], "whole concurrency"),
        (["--method", "lookup", "-d", ""], "velobench load drives a server"),
    ],
)
def test_bad_load_options(cli, args: list[str], needle: str) -> None:  # type: ignore[no-untyped-def]
    argv = list(BASE)
    if "--method" in args:  # lookup takes no draft model
        argv = ["load", "-m", "model.gguf", "--prompts", "builtin"]
        args = [a for a in args if a not in ("-d", "")]
    assert_refused(*cli(*argv, *args), needle)


def test_unreachable_server_url(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli(
        "load",
        "--server-url",
        "http://127.0.0.1:9",
        "--skip-vanilla",
        "--prompts",
        "builtin",
        "--concurrency",
        "2",
    )
    assert_refused(code, out, err, "cannot reach the server at http://127.0.0.1:9")


def test_missing_model_before_any_server(cli) -> None:  # type: ignore[no-untyped-def]
    assert_refused(*cli(*BASE, "--concurrency", "2"), "main model not found: model.gguf")


def test_load_help_lists_the_profiles(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("load", "--help")
    assert code == 0
    for flag in (
        "--requests",
        "--concurrency",
        "--rate",
        "--burstiness",
        "--duration",
        "--sweep",
        "--slo",
        "--input-len",
    ):
        assert flag in out


def test_load_takes_a_schedule_and_refuses_an_unknown_one(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("load", "--help")
    assert code == 0 and "--schedule" in out and "ABBA" in out
    # a known schedule is taken: the run gets as far as the missing model, before any server
    assert_refused(*cli(*BASE, "--schedule", "blocked", "--concurrency", "2"), "main model not found")
    code, out, err = cli(*BASE, "--schedule", "sideways")
    assert code == 2 and "Traceback" not in out + err and "sideways" in err, err
    assert llama_processes() == []
