"""`velobench advise` on bad input: one line on stderr, exit code 2, no traceback, no file
written, nothing started."""

from __future__ import annotations

import pytest

from tests.cli.test_load_cli import assert_refused

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
    ],
)
def test_bad_advise_options(cli, args: list[str], needle: str) -> None:  # type: ignore[no-untyped-def]
    assert_refused(*cli(*BASE, *args), needle)


def test_missing_model_is_one_line(cli) -> None:  # type: ignore[no-untyped-def]
    assert_refused(*cli(*BASE), "model.gguf")
