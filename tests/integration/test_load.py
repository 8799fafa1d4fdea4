"""`velobench load` against real llama-servers (SmolLM2-135M drafting for itself): a two-level
concurrency sweep through the CLI with every percentile recomputed by hand from the raw JSONL, a
seeded Poisson run bounded by requests, Ctrl-C mid-level, and a server killed mid-load."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

import velobench
from tests.conftest import llama_processes
from velobench.load.arrivals import arrival_schedule
from velobench.load.recompute import recompute
from velobench.results import store
from velobench.results.load import LOAD_SCHEMA_VERSION, LoadReport, read_records

pytestmark = pytest.mark.integration

TOKENS = 16


def base(llama_bin: Path, smol: Path, out: str) -> list[str]:
    return [
        "load",
        *("-m", str(smol), "-d", str(smol), "--n-draft", "4", "-n", str(TOKENS)),
        *("--prompts", "builtin", "--num-prompts", "6", "-t", "2", "-c", "1024"),
        *("-l", str(llama_bin), "-o", out),
    ]


def by_hand(values: list[float], q: float) -> float:
    """Hyndman–Fan type 7 written out (what numpy and vLLM report)."""
    s = sorted(values)
    h = (len(s) - 1) * q / 100
    lo = int(np.floor(h))
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


def test_two_level_sweep_through_the_cli(cli, llama_bin: Path, smol: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli(
        *base(llama_bin, smol, "r.json"),
        *("--sweep", "concurrency=1,2", "--requests", "6", "--warmup-requests", "1"),
        *("--no-stop-on-saturation", "--slo", "ttft=20s,tpot=5s"),
    )
    assert code == 0, err
    assert "Crossover:" in out and "Time: total" in out and "Speculative ÷ vanilla" in out
    rep = store.load_result(Path("r.json"))
    assert (
        isinstance(rep, LoadReport) and rep.status == "complete" and rep.schema_version == LOAD_SCHEMA_VERSION
    )
    lines = [json.loads(x) for x in Path("r.records.jsonl").read_text().splitlines()]
    assert len(lines) == 2 * 2 * 6
    for mode, lvl in ((m, lvl) for m in ("vanilla", "speculative") for lvl in rep.modes[m].levels):
        assert lvl.max_in_flight == int(lvl.level) and lvl.issued == lvl.finished == 6
        mine = [x for x in lines if x["mode"] == mode and x["level"] == lvl.level]
        assert [x["phase"] for x in sorted(mine, key=lambda x: x["index"])] == ["warmup"] + ["measure"] * 5
        ok = [x["timing"] for x in mine if x["phase"] == "measure" and x["timing"]["error"] is None]
        assert len(ok) == 5 and all(t["output_tokens"] == TOKENS for t in ok)  # ignore_eos honoured
        e2e = [(t["chunk_s"][-1] - t["sent_s"]) * 1000 for t in ok]
        ttft = [(t["first_token_s"] - t["sent_s"]) * 1000 for t in ok]
        tpot = [(t["chunk_s"][-1] - t["first_token_s"]) * 1000 / (t["output_tokens"] - 1) for t in ok]
        s = lvl.summary
        assert s is not None and s.e2e_ms is not None and s.ttft_ms is not None and s.tpot_ms is not None
        for q in (50, 90, 95, 99):
            assert getattr(s.e2e_ms, f"p{q}").value == pytest.approx(by_hand(e2e, q))
            assert getattr(s.ttft_ms, f"p{q}").value == pytest.approx(by_hand(ttft, q))
        assert s.tpot_ms.mean == pytest.approx(sum(tpot) / len(tpot))
        start = min(t["sent_s"] for t in ok)
        end = max(t["chunk_s"][-1] for t in ok)
        assert s.window_s == pytest.approx(end - start)
        assert s.goodput is not None and s.goodput.total == 5
        if mode == "speculative":
            assert s.acceptance is not None and s.acceptance.counters.draft_tokens > 0
            assert lvl.spec_decode is not None and lvl.spec_decode.prefix == "llamacpp"
        else:
            assert s.acceptance is None
        if lvl.level == 2:  # two slots really served two requests at once
            spans = sorted((t["sent_s"], t["end_s"]) for t in ok)
            assert any(b0 < a1 for (_, a1), (b0, _) in itertools.pairwise(spans))
    again = recompute(rep.model_copy(deep=True), read_records(Path("r.records.jsonl")))
    assert (
        again.modes == rep.modes and again.comparisons == rep.comparisons and again.crossover == rep.crossover
    )
    assert [c.level for c in rep.comparisons] == [1.0, 2.0] and rep.crossover is not None
    spec = rep.modes["speculative"].session
    assert spec is not None and spec.command is not None and "-np 2" in spec.command
    code, out, err = cli("report", "r.json", "--format", "html", "-o", "r.html")
    assert code == 0 and "data:image/png;base64," in Path("r.html").read_text()
    code, out, err = cli("compare", "r.json", "r.json")
    assert code == 0 and "Speculative" in out and "c=2" in out and "B: r.json" in out
    assert llama_processes() == []


def test_seeded_poisson_run_bounded_by_requests(cli, llama_bin: Path, smol: Path) -> None:  # type: ignore[no-untyped-def]
    code, _out, err = cli(
        *base(llama_bin, smol, "p.json"),
        "--rate",
        "4",
        "--requests",
        "8",
        "--seed",
        "3",
        "--skip-speculative",
    )
    assert code == 0, err
    rep = store.load_result(Path("p.json"))
    assert isinstance(rep, LoadReport)
    (lvl,) = rep.modes["vanilla"].levels
    expected = arrival_schedule(4.0, seed=3, count=8).offsets_s
    assert lvl.plan.schedule is not None and lvl.plan.schedule.offsets_s == expected
    recs = read_records(Path("p.records.jsonl"))[("vanilla", 4.0)]
    assert [r.scheduled_s for r in recs] == expected  # replayable: the recorded schedule was followed
    assert all(r.issued_s - r.scheduled_s < 0.5 for r in recs)
    assert all(r.timing.ok for r in recs) and rep.modes["vanilla"].slots == 4
    assert lvl.summary is not None and lvl.summary.n_ok == 8 and lvl.summary.request_throughput


def test_two_generator_processes_through_the_cli(cli, llama_bin: Path, smol: Path) -> None:  # type: ignore[no-untyped-def]
    code, _out, err = cli(
        *base(llama_bin, smol, "g.json"),
        *("--concurrency", "2", "--requests", "8", "--warmup-requests", "1", "--skip-speculative"),
        *("--generator-procs", "2"),
    )
    assert code == 0, err
    rep = store.load_result(Path("g.json"))
    assert isinstance(rep, LoadReport) and rep.load.generator_procs == 2
    (lvl,) = rep.modes["vanilla"].levels
    assert lvl.issued == lvl.finished == 8 and lvl.max_in_flight == 2
    assert lvl.lag is not None and lvl.lag.procs == 2 and lvl.lag.busiest_cpu_share is not None
    recs = read_records(Path("g.records.jsonl"))[("vanilla", 2.0)]
    assert sorted(r.index for r in recs) == list(range(8))  # each request once, from either process
    assert [r.phase for r in sorted(recs, key=lambda r: r.index)] == ["warmup"] + ["measure"] * 7
    ok = [r.timing for r in recs if r.phase == "measure"]
    assert all(t.ok and t.output_tokens == TOKENS for t in ok)
    s = lvl.summary
    assert s is not None and s.ttft_ms is not None and s.e2e_ms is not None
    for q in (50, 99):
        assert getattr(s.ttft_ms, f"p{q}").value == pytest.approx(by_hand([t.ttft_ms() or 0 for t in ok], q))
        assert getattr(s.e2e_ms, f"p{q}").value == pytest.approx(by_hand([t.e2e_ms() or 0 for t in ok], q))
    spans = sorted((t.sent_s, t.end_s or 0.0) for t in ok)  # the two processes' requests overlap on one axis
    assert any(b0 < a1 for (_, a1), (b0, _) in itertools.pairwise(spans))
    assert llama_processes() == []


def spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """`velobench ARGS` from this checkout in a child process, stdout and stderr to `log`."""
    root = str(Path(velobench.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    with log.open("wb") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "velobench", *args], stdin=subprocess.DEVNULL, stdout=f, stderr=f, env=env
        )


def wait_for(what: str, log: Path, child: subprocess.Popen[bytes], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while what not in log.read_text(errors="replace"):
        assert child.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"no {what!r} in: {log.read_text()}"
        time.sleep(0.2)


def servers_of(child: subprocess.Popen[bytes]) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(child.pid).children(recursive=True) if "llama-server" in p.name()]
    except psutil.NoSuchProcess:
        return []


def test_ctrl_c_mid_level_keeps_finished_levels(llama_bin: Path, smol: Path, tmp_path: Path) -> None:
    log = tmp_path / "out.txt"
    child = spawn(
        [
            *base(llama_bin, smol, "c.json"),
            "--sweep",
            "concurrency=1,2",
            "--duration",
            "5",
            "--skip-speculative",
        ],
        log,
    )
    try:
        wait_for("vanilla concurrency 1:", log, child)  # the first level is finished and saved
        time.sleep(2)  # the second is under way
        servers = servers_of(child)
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=60) == 130, log.read_text()
    finally:
        if child.poll() is None:
            child.kill()
    text = log.read_text()
    assert "interrupted; 2 level(s) kept in c.json" in text and "Traceback" not in text
    rep = store.load_result(Path("c.json"))
    assert isinstance(rep, LoadReport) and rep.status == "interrupted"
    one, two = rep.modes["vanilla"].levels
    assert not one.interrupted and one.summary is not None
    assert two.interrupted and two.issued == two.finished + len(two.cancelled)
    recs = read_records(Path("c.records.jsonl"))
    assert len(recs[("vanilla", 1.0)]) == one.finished and len(recs.get(("vanilla", 2.0), [])) == two.finished
    assert servers and not any(p.is_running() for p in servers)  # the server went with it


@pytest.mark.parametrize("procs", [1, 2])
def test_server_killed_mid_load_is_one_line(llama_bin: Path, smol: Path, tmp_path: Path, procs: int) -> None:
    log = tmp_path / "out.txt"
    child = spawn(
        [
            *base(llama_bin, smol, "k.json"),
            "--sweep",
            "concurrency=1,2",
            "--duration",
            "4",
            "--skip-speculative",
            *("--generator-procs", str(procs)),
        ],
        log,
    )
    try:
        wait_for("vanilla concurrency 1:", log, child)
        time.sleep(1.5)
        (server,) = servers_of(child)
        server.kill()
        assert child.wait(timeout=60) == 2, log.read_text()
    finally:
        if child.poll() is None:
            child.kill()
    err = [x for x in log.read_text().splitlines() if x.startswith("velobench: error:")]
    assert len(err) == 1 and "Traceback" not in log.read_text()
    assert "llama-server exited with code -9 during the vanilla run at concurrency 2" in err[0]
    assert "(1 finished level(s) kept in k.json)" in err[0]
    rep = store.load_result(Path("k.json"))
    assert isinstance(rep, LoadReport) and rep.status == "failed" and len(rep.modes["vanilla"].levels) == 1
