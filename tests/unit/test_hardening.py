"""Hardening (issue 13), the pure parts and small real processes: each class of failure, closed.

Pre-flight checks, owned -x flags, the crash log, unique temp names, the GGUF reader on nested
arrays, server responses without predicted_n, the rescue copy when a save fails, matrix cells
that fail (recorded, the sweep goes on, resumed only with retry_failed), distinct cell ids for
same-named models, one build per run (fake build folders of shell scripts whose --help is a
real one), deadlines, and prompts too long for a command line.
"""

from __future__ import annotations

import json
import os
import stat
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from velobench import proc
from velobench.bins import locate
from velobench.cli import crash
from velobench.engines.http_client import StreamResult
from velobench.engines.http_session import record
from velobench.engines.llama_cli import (
    PROMPT_ARG_MAX_BYTES,
    CliSession,
    generation_deadline_s,
    prompt_by_file,
    vanilla_tool,
)
from velobench.errors import VelobenchError
from velobench.fsutil import write_text_atomic
from velobench.models import gguf_info
from velobench.results.config import Method, RunConfig, build
from velobench.results.matrix import MatrixPair
from velobench.results.schema import Report
from velobench.results.timing import RequestTiming
from velobench.runner import lifecycle, loop, matrix
from velobench.runner import preflight as validate
from velobench.telemetry.environment import capture

LLAMA = Path(__file__).parents[1] / "fixtures" / "llama"
CliResult = tuple[int, str, str]


# ---------------------------------------------------------------- pre-flight


def cfg(**kw: Any) -> RunConfig:
    return build(**{"main_model": "m.gguf", "draft_model": "m.gguf", **kw})


@pytest.fixture
def gguf_file(tmp_path: Path) -> Path:
    path = tmp_path / "m.gguf"
    # the pre-flight reads the header: a GGUF v3 with no key-values and no tensors is complete
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0))
    return path


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--host", "0.0.0.0"], "-x --host: velobench binds servers to 127.0.0.1 only"),
        (["--host=::"], "-x --host:"),
        (["--port", "1"], "-x --port: use --port"),
        (["-np", "4"], "-x -np"),
        (["--cache-prompt"], "prompt caching off"),
        (["--api-key-file", "k"], "random API key"),
        (["--spec-draft-n-max", "3"], "use --n-draft"),
    ],
)
def test_owned_flags_are_refused_with_the_option_to_use(extra: list[str], needle: str) -> None:
    with pytest.raises(VelobenchError, match=needle.replace("-", r"\-").replace(".", r"\.")):
        validate.check_engine_args(cfg(extra_args=extra))


def test_flags_velobench_does_not_own_pass() -> None:
    validate.check_engine_args(cfg(extra_args=["-fa", "on", "--override-kv", "a=int:-5"]))
    validate.check_engine_args(cfg(extra_args=["--host", "x"], server_url="http://h:1", draft_model=None))


def test_output_checks(tmp_path: Path) -> None:
    validate.check_output_file(tmp_path / "new" / "deeper" / "r.json")  # creatable: fine, nothing made
    assert not (tmp_path / "new").exists()
    with pytest.raises(VelobenchError, match="is a folder"):
        validate.check_output_file(tmp_path)
    (tmp_path / "f").write_text("x")
    with pytest.raises(VelobenchError, match="is a file, not a folder"):
        validate.check_output_file(tmp_path / "f" / "r.json")
    with pytest.raises(VelobenchError, match="cannot write in /proc"):
        validate.check_output_file(Path("/proc/velobench/r.json"))
    with pytest.raises(VelobenchError, match="is a file; give a folder"):
        validate.check_output_dir(tmp_path / "f")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]  # the probe file is gone


def test_preflight_order_output_first(tmp_path: Path, gguf_file: Path) -> None:
    """Two things wrong: the output location is named first, on every command that calls it."""
    bad = cfg(main_model="missing.gguf", extra_args=["--host", "0.0.0.0"])
    with pytest.raises(VelobenchError, match="is a folder"):
        validate.preflight(bad, tmp_path)
    with pytest.raises(VelobenchError, match="-x --host"):
        validate.preflight(bad, tmp_path / "r.json")
    with pytest.raises(VelobenchError, match="main model not found"):
        validate.preflight(cfg(main_model="missing.gguf"), tmp_path / "r.json")
    validate.preflight(cfg(main_model=str(gguf_file), draft_model=str(gguf_file)), tmp_path / "r.json")


def test_read_text_file_names_a_binary_file(tmp_path: Path) -> None:
    (tmp_path / "p").write_bytes(b"ok\xc3\x28")
    with pytest.raises(VelobenchError, match=r"not UTF-8 text \(byte 0xc3 at offset 2\)"):
        validate.read_text_file(tmp_path / "p", "prompt file")


def test_leave_nothing_behind_removes_only_what_the_run_made(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "r.json"
    logs = out.parent / "r-logs"
    with pytest.raises(RuntimeError), validate.leave_nothing_behind(out, logs=logs):
        logs.mkdir(parents=True)
        raise RuntimeError("failed before the first iteration")
    assert list(tmp_path.iterdir()) == []
    # a log that explains the failure stays, and with it its folders
    with pytest.raises(RuntimeError), validate.leave_nothing_behind(out, logs=logs):
        logs.mkdir(parents=True)
        (logs / "llama-server-vanilla.log").write_text("error: ...")
        raise RuntimeError("server failed")
    assert (logs / "llama-server-vanilla.log").is_file()
    # once the result exists, nothing is touched
    out2 = tmp_path / "c" / "r.json"
    with pytest.raises(RuntimeError), validate.leave_nothing_behind(out2):
        out2.parent.mkdir()
        out2.write_text("{}")
        raise RuntimeError("later")
    assert out2.is_file()


# ---------------------------------------------------------------- top level


def test_an_internal_error_is_one_line_and_a_crash_log(
    cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    def broken(*a: object, **k: object) -> None:
        raise KeyError("predicted_n")

    monkeypatch.setattr("velobench.models.catalog.load_catalog", broken)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-123")
    monkeypatch.setattr(sys, "argv", ["velobench", "models", "list", "--api-key", "sk-secret-123"])
    code, out, err = cli("models", "list")
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in out + err
    assert "internal error: KeyError: 'predicted_n'" in err and "a bug in velobench" in err
    logs = list((isolated / "cache" / "logs").glob("crash-*.log"))
    assert len(logs) == 1 and logs[0].name in err
    text = logs[0].read_text()
    assert "Traceback" in text and "broken" in text
    assert "sk-secret-123" not in text


def test_redact_argv() -> None:
    assert crash.redact_argv(["run", "--api-key", "K", "--api-key=K2", "-m", "x"]) == [
        "run",
        "--api-key",
        "***",
        "--api-key=***",
        "-m",
        "x",
    ]


# ---------------------------------------------------------------- files


def test_write_text_atomic_under_concurrent_writers(tmp_path: Path) -> None:
    target = tmp_path / "probe.json"
    payloads = [json.dumps({"writer": i, "pad": "x" * 20000}) for i in range(8)]
    threads = [threading.Thread(target=write_text_atomic, args=(target, p)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert target.read_text() in payloads  # one whole writer's content, never a mix
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["probe.json"]  # no temp file left


def nested_gguf(depth: int) -> bytes:
    key = b"k"
    out = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key + struct.pack("<I", 9)
    out += struct.pack("<IQ", 9, 1) * depth
    return out + struct.pack("<IQ", 0, 0)


def test_gguf_nested_arrays_are_corrupt_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "n.gguf"
    path.write_bytes(nested_gguf(3))
    gguf_info._read_header(path, want_tokens=False)  # a little nesting is read
    path.write_bytes(nested_gguf(50))
    with pytest.raises(VelobenchError, match="arrays nested more than 8 deep"):
        gguf_info.inspect_model(path)
    # without the limit, Python's recursion limit is reached: still one line
    monkeypatch.setattr(gguf_info, "MAX_ARRAY_DEPTH", 10**9)
    path.write_bytes(nested_gguf(sys.getrecursionlimit() + 100))
    with pytest.raises(VelobenchError, match="nests too deep"):
        gguf_info.inspect_model(path)


# ---------------------------------------------------------------- HTTP record


def stream(timings: dict[str, Any] | None, n: int = 5) -> StreamResult:
    chunks = [0.1 + 0.02 * i for i in range(n)]
    timing = RequestTiming(
        sent_s=0.0, first_token_s=chunks[0], chunk_s=chunks, chunk_tokens=[1] * n, end_s=0.3, output_tokens=n
    )
    return StreamResult(timing=timing, text="x" * n, timings=timings)


def test_a_response_without_predicted_n_is_measured_from_usage() -> None:
    it = record(cfg(), "vanilla", 1, stream({"predicted_ms": 80.0, "prompt_ms": 5.0}), None, None)
    assert it.tokens_per_second == pytest.approx((5 - 1) / 80.0 * 1000)
    assert it.prompt_ms == 5.0


@pytest.mark.parametrize(
    "timings",
    [
        {"predicted_ms": "fast", "predicted_n": None, "prompt_ms": None},
        {"predicted_ms": True, "cache_n": "0", "draft_n": "many"},
        {"predicted_n": 5},
        None,
    ],
)
def test_odd_timings_fall_back_to_the_client_clock(timings: dict[str, Any] | None) -> None:
    it = record(cfg(), "speculative", 1, stream(timings), None, None)
    assert it.tokens_per_second == pytest.approx(4 / 0.08)
    assert it.n_drafted is None


# ---------------------------------------------------------------- saving


def tiny_report() -> Report:
    return Report(config=cfg(), environment=capture())


def test_a_save_that_fails_goes_to_a_rescue_copy(tmp_path: Path, isolated: Path) -> None:
    (tmp_path / "blocker").write_text("a file where the result's folder should be")
    out = tmp_path / "blocker" / "r.json"
    rep = tiny_report()
    with pytest.raises(
        lifecycle.SaveFailed, match=r"cannot save .*r\.json .*: all 0 finished iteration"
    ) as exc:
        loop.keep(rep, out, saved=0)
    rescued = list((isolated / "cache" / "rescued").glob("r-*.json"))
    assert len(rescued) == 1 and str(rescued[0]) in str(exc.value)
    assert json.loads(rescued[0].read_text())["status"] == "failed"


# ---------------------------------------------------------------- matrix


def matrix_config(tmp_path: Path, targets: list[str]) -> matrix.MatrixConfig:
    for t in targets:
        p = tmp_path / t
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0))  # a complete header: no keys, no tensors
    return matrix.MatrixConfig.model_validate(
        {
            "run": {"engine": "cli", "iterations": 1},
            "pairs": [{"target": str(tmp_path / t)} for t in targets],
            "methods": [{"method": "ngram-simple", "n_draft": [2, 4]}],
        }
    )


def test_same_file_name_in_two_folders_keeps_both_targets(tmp_path: Path) -> None:
    cfg2 = matrix_config(tmp_path, ["a/m.gguf", "b/m.gguf"])
    ids = [c.id for c in matrix.cells(cfg2)]
    assert len(ids) == len(set(ids)) == 6  # 2 baselines + 2 × 2 cells, none dropped
    assert sum(1 for c in matrix.cells(cfg2) if c.baseline) == 2
    one = matrix_config(tmp_path, ["c/solo.gguf"])
    assert matrix.cells(one)[0].id == "solo__vanilla"  # ids stay as they were where names are unique


class FakeExecute:
    """Stands in for `runner.run.execute` (the real one is in tests/integration/test_faults.py)."""

    def __init__(self, fail: set[str]):
        self.fail, self.calls = fail, []

    def __call__(self, rc: RunConfig, out: Path, console: object, *, baseline: object = None) -> Report:
        self.calls.append(out.stem)
        if out.stem in self.fail:
            raise VelobenchError(f"{out.stem} cannot run here")
        rep = tiny_report()
        rep.status = "complete"
        rep.config = rc
        out.write_text(rep.model_dump_json())
        return rep


def test_a_failed_cell_is_recorded_and_the_matrix_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rich.console import Console

    cfg2 = matrix_config(tmp_path, ["m.gguf"])
    ids = [c.id for c in matrix.cells(cfg2)]
    bad = ids[1]
    fake = FakeExecute({bad})
    monkeypatch.setattr(matrix, "execute", fake)
    console = Console(file=open(os.devnull, "w"))  # noqa: SIM115
    run_dir = tmp_path / "run"
    summary = matrix.run_matrix(cfg2, run_dir, console)
    assert fake.calls == ids
    assert {r.cell.id: r.status for r in summary.records} == {
        i: ("failed" if i == bad else "complete") for i in ids
    }
    failed = next(r for r in summary.records if r.status == "failed")
    assert failed.error == f"{bad} cannot run here"
    ledger = matrix.read_records(run_dir / "cells.jsonl")
    assert [r.status for r in ledger].count("failed") == 1
    assert not (run_dir / "cells" / f"{bad}-logs").exists()
    # resume: nothing to do; with retry_failed: the failed cell alone runs again
    fake.calls.clear()
    matrix.run_matrix(cfg2, run_dir, console, resume=True)
    assert fake.calls == []
    fake.fail.clear()
    summary = matrix.run_matrix(cfg2, run_dir, console, resume=True, retry_failed=True)
    assert fake.calls == [bad]
    assert all(r.status == "complete" for r in summary.records) and len(summary.records) == len(ids)


def test_fail_fast_stops_after_recording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    cfg2 = matrix_config(tmp_path, ["m.gguf"])
    ids = [c.id for c in matrix.cells(cfg2)]
    fake = FakeExecute({ids[0]})
    monkeypatch.setattr(matrix, "execute", fake)
    with pytest.raises(VelobenchError, match="--fail-fast"):
        matrix.run_matrix(cfg2, tmp_path / "run", Console(file=open(os.devnull, "w")), fail_fast=True)  # noqa: SIM115
    assert fake.calls == [ids[0]]
    assert [r.status for r in matrix.read_records(tmp_path / "run" / "cells.jsonl")] == ["failed"]


def test_a_matrix_checks_every_cell_before_it_makes_its_folder(tmp_path: Path) -> None:
    from rich.console import Console

    cfg2 = matrix_config(tmp_path, ["m.gguf"])
    cfg2.pairs.append(MatrixPair(target=str(tmp_path / "missing.gguf")))
    with pytest.raises(VelobenchError, match="cell missing__vanilla: main model not found"):
        matrix.run_matrix(cfg2, tmp_path / "run", Console(file=open(os.devnull, "w")))  # noqa: SIM115
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- one build per run


def fake_build(folder: Path, tools: dict[str, str]) -> Path:
    """A folder of shell scripts answering --version and --help like llama.cpp tools (help: real text)."""
    folder.mkdir(parents=True)
    for name, help_text in tools.items():
        (folder / f"{name}.help").write_text(help_text)
        script = folder / name
        script.write_text(
            "#!/bin/sh\n"
            'case "$1" in\n'
            "  --version) echo 'version: 5000 (abc1234)' >&2 ;;\n"
            f"  --help) cat '{folder / name}.help' ;;\n"
            "esac\n"
        )
        script.chmod(0o755)
    return folder


SPEC_HELP = (LLAMA / "speculative-simple-help.txt").read_text()
COMPLETION_HELP = (LLAMA / "completion-help.txt").read_text()
CLI_2025_HELP = (LLAMA.parent / "llama-2025" / "llama-cli-help.txt").read_text()  # a real May 2025 build
# A llama-cli that is a chat program only (no -no-cnv), as llama.cpp's own became in 2026:
CLI_CHAT_HELP = "-m, --model FNAME   model path\n-p, --prompt PROMPT   prompt\n-cnv, --conversation   chat\n"


def test_vanilla_comes_from_the_speculative_tools_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_2025 = (LLAMA.parent / "llama-2025" / "llama-speculative-simple-help.txt").read_text()
    old = fake_build(tmp_path / "2025", {"llama-speculative-simple": spec_2025, "llama-cli": CLI_2025_HELP})
    other = fake_build(tmp_path / "other", {"llama-completion": COMPLETION_HELP})
    monkeypatch.setenv("PATH", f"{other}{os.pathsep}{os.environ['PATH']}")  # a llama-completion elsewhere
    spec = locate.find_tool("llama-speculative-simple", old)
    assert locate.find_path("llama-completion", old) is None  # -l is the only place looked in
    van = vanilla_tool(spec)
    assert van.path == old / "llama-cli"  # that build's own llama-cli -no-cnv, not the other build's tool
    argv = CliSession(van, cfg(), "vanilla").argv("hi")
    assert argv[0] == str(old / "llama-cli") and "-no-cnv" in argv


def test_a_build_without_a_vanilla_tool_is_one_line(tmp_path: Path) -> None:
    b = fake_build(tmp_path / "b", {"llama-speculative-simple": SPEC_HELP, "llama-cli": CLI_CHAT_HELP})
    with pytest.raises(VelobenchError, match=r"has no llama-completion .*one build"):
        vanilla_tool(locate.find_tool("llama-speculative-simple", b))
    both = fake_build(
        tmp_path / "c", {"llama-speculative-simple": SPEC_HELP, "llama-completion": COMPLETION_HELP}
    )
    assert vanilla_tool(locate.find_tool("llama-speculative-simple", both)).name == "llama-completion"


# ---------------------------------------------------------------- children: deadlines, long prompts


def test_a_child_past_its_deadline_is_killed_and_said_so() -> None:
    import psutil

    # children this test did not start (e.g. multiprocessing's forkserver, kept by an earlier
    # test of the load generator's worker processes) are not this test's business
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    start = time.monotonic()
    with pytest.raises(proc.DeadlinePassed, match=r"did not finish within 0\.3 s and was killed"):
        proc.run(["sh", "-c", "sleep 30"], timeout_s=0.3)
    assert time.monotonic() - start < 5
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    assert left == []  # killed and reaped, the whole group


def test_the_default_deadline_grows_with_n_predict() -> None:
    assert generation_deadline_s(cfg(n_predict=100)) == 120 + 2 * 100
    assert generation_deadline_s(cfg(n_predict=100, timeout=7.5)) == 7.5


def test_a_command_line_over_the_limit_is_one_line() -> None:
    with pytest.raises(VelobenchError, match="over the system's argument limit"):
        proc.run(["true", "x" * (256 * 1024)], timeout_s=10)


def test_long_prompts_go_by_file_exactly(tmp_path: Path) -> None:
    short = "hello"
    with prompt_by_file(short) as path:
        assert path is None
    long = "line one\n" + "é" * PROMPT_ARG_MAX_BYTES + "\n"
    with prompt_by_file(long) as path:
        assert path is not None
        # llama.cpp's -f drops one trailing newline: the file carries one more than the prompt
        assert path.read_text(encoding="utf-8") == long + "\n"
        tool = locate.Tool(
            "llama-completion",
            Path("/b/llama-completion"),
            "test",
            locate.BinaryVersion(None, None, None),
            frozenset({"-m", "-p", "-f", "-n", "-c", "--temp", "--seed", "--no-escape", "-no-cnv"}),
        )
        argv = CliSession(tool, cfg(method=Method.DRAFT), "vanilla").argv(long, path)
        assert argv[argv.index("-f") + 1] == str(path) and "-p" not in argv
    assert not path.exists()
