"""A llama.cpp tool that exits 0 with the end of its log lost (its asynchronous logger, captured
for real in fixtures/llama/completion-lost-log.stderr) is run again; only a complete run is
measured, and a tool that never prints its timings still ends in one line after its attempts.

The tool here is a shell script replaying captured output (the real loss is a race that no test
can call up on demand); the parsing is the real one."""

from __future__ import annotations

from pathlib import Path

import pytest

from velobench.bins import locate
from velobench.engines import llama_batched_bench
from velobench.engines.llama_args import LOST_LOG_ATTEMPTS
from velobench.engines.llama_cli import CliSession, Unparsed
from velobench.errors import VelobenchError
from velobench.prompts import Prompt
from velobench.results.config import Method, RunConfig, build

LLAMA = Path(__file__).parent.parent / "fixtures" / "llama"
P = "Write a Python function that returns the sum of a list of integers."


def replaying_tool(tmp_path: Path, name: str, runs: list[tuple[Path, Path]]) -> Path:
    """A script that, on its k-th call, prints runs[k]'s stdout and stderr and exits 0 (the last
    pair once the list is spent), counting its calls in `calls`."""
    script = tmp_path / name
    cases = "\n".join(f"  {k}) cat '{out}'; cat '{err}' >&2 ;;" for k, (out, err) in enumerate(runs, start=1))
    last_out, last_err = runs[-1]
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in --version) echo "version: 5000 (abc1234)" >&2; exit 0 ;; --help) echo "-m -t -c"; exit 0 ;; esac\n'
        f"n=$(( $(cat '{tmp_path}/calls' 2>/dev/null || echo 0) + 1 )); echo $n > '{tmp_path}/calls'\n"
        f'case "$n" in\n{cases}\n'
        f"  *) cat '{last_out}'; cat '{last_err}' >&2 ;;\nesac\n"
    )
    script.chmod(0o755)
    return script


def calls(tmp_path: Path) -> int:
    return int((tmp_path / "calls").read_text())


def session(path: Path) -> CliSession:
    tool = locate.Tool(
        "llama-completion",
        path,
        "test",
        locate.BinaryVersion(None, None, None),
        frozenset({"-m", "-p", "-n", "-c", "--temp", "--seed", "--no-escape", "-no-cnv", "--ignore-eos"}),
    )
    cfg: RunConfig = build(main_model="m.gguf", draft_model="d.gguf", method=Method.DRAFT, n_predict=32)
    return CliSession(tool, cfg, "vanilla", timeout_s=30)


LOST = (LLAMA / "completion-noprefix.stdout", LLAMA / "completion-lost-log.stderr")
WHOLE = (LLAMA / "completion.stdout", LLAMA / "completion.stderr")


def test_a_generation_whose_log_was_lost_is_run_again(tmp_path: Path) -> None:
    tool = replaying_tool(tmp_path, "llama-completion", [LOST, WHOLE])
    it = session(tool).generate(Prompt(id="p", category="code", prompt=P, source="cli"), 0)
    assert calls(tmp_path) == 2
    assert it.decode_ms and it.decode_ms > 0 and it.generated_tokens == 32  # the complete run's figures


def test_a_tool_that_never_prints_its_timings_is_one_line_after_its_attempts(tmp_path: Path) -> None:
    tool = replaying_tool(tmp_path, "llama-completion", [LOST])
    with pytest.raises(
        Unparsed, match=rf"cannot parse .* \(in each of {LOST_LOG_ATTEMPTS} runs that exited 0\)"
    ):
        session(tool).generate(Prompt(id="p", category="code", prompt=P, source="cli"), 0)
    assert calls(tmp_path) == LOST_LOG_ATTEMPTS


def test_a_failing_tool_is_not_run_again(tmp_path: Path) -> None:
    script = tmp_path / "llama-completion"
    script.write_text(f"#!/bin/sh\necho run >> '{tmp_path}/calls.log'\necho 'error: boom' >&2\nexit 1\n")
    script.chmod(0o755)
    with pytest.raises(VelobenchError, match="exited with code 1: error: boom"):
        session(script).generate(Prompt(id="p", category="code", prompt=P, source="cli"), 0)
    assert (tmp_path / "calls.log").read_text().count("run") == 1


def test_a_cost_table_cut_short_is_measured_again(tmp_path: Path) -> None:
    table = LLAMA / "batched-bench" / "smollm2-jsonl.stdout"
    cut = tmp_path / "cut.stdout"
    lines = table.read_text().splitlines(keepends=True)
    cut.write_text("".join(lines[: len(lines) - 2]))  # the last rows never written
    err = LLAMA / "batched-bench" / "smollm2-jsonl.stderr"
    replaying_tool(tmp_path, "llama-batched-bench", [(cut, err), (table, err)])
    costs = llama_batched_bench.measure(
        "m.gguf", [1, 3, 5], [1, 2], repetitions=1, tg=8, threads=1, llama_cpp_path=tmp_path
    )
    assert calls(tmp_path) == 2 and len(costs.repetitions) == 1
