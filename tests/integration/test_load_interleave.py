"""`velobench load` interleaved for real (issue 20): SmolLM2-135M drafting for itself on two real
llama-servers, both alive together while levels of both modes run, the levels in ABBA order in
the result, and nothing left running after the command, after Ctrl-C and after SIGKILL."""

from __future__ import annotations

import itertools
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.integration.test_interleave import eventually
from tests.integration.test_load import base, spawn, wait_for
from velobench.results import store
from velobench.results.load import LoadReport

pytestmark = pytest.mark.integration


def servers(child: subprocess.Popen[bytes]) -> dict[int, str]:
    """velobench's llama-servers, pid → mode: only processes serving a port (the short-lived
    `--help`/`--version` probes of the same binary have no --port), the speculative one by its
    draft flags."""
    out = {}
    try:
        kids = psutil.Process(child.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return {}
    for p in kids:
        try:
            cmd = p.cmdline()
            if "llama-server" in p.name() and "--port" in cmd and p.status() != psutil.STATUS_ZOMBIE:
                out[p.pid] = "speculative" if "--spec-type" in cmd or "-md" in cmd else "vanilla"
        except psutil.Error:
            continue
    return out


def gone(pids: list[int], within_s: float) -> bool:
    def dead(p: int) -> bool:
        try:
            return psutil.Process(p).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    return eventually(lambda: all(dead(p) for p in pids), within_s)


def test_both_servers_alive_together_and_the_levels_in_abba_order(
    llama_bin: Path, smol: Path, tmp_path: Path
) -> None:
    log = tmp_path / "out.txt"
    child = spawn(
        [
            *base(llama_bin, smol, "i.json"),
            *("--sweep", "concurrency=1,2", "--requests", "4", "--no-stop-on-saturation"),
        ],
        log,
    )
    seen: list[dict[int, str]] = []  # the servers alive at each look while levels ran
    try:
        wait_for("Schedule: interleaved", log, child)
        while child.poll() is None:
            text = log.read_text(errors="replace")
            if "concurrency 1:" in text and "Results saved to" not in text:
                seen.append(servers(child))
            time.sleep(0.1)
        assert child.returncode == 0, log.read_text()
    finally:
        if child.poll() is None:
            child.kill()
    text = log.read_text()
    assert "Traceback" not in text
    assert "Schedule:    interleaved, level by level: AB BA (A = vanilla, B = speculative)" in text
    assert len(seen) >= 5, seen
    both = [s for s in seen if sorted(s.values()) == ["speculative", "vanilla"]]
    assert len(both) >= len(seen) - 2, seen  # every look but the last moments (servers stopping)
    assert len({pid for s in seen for pid in s}) == 2  # the same two servers throughout, never restarted
    rep = store.load_result(Path("i.json"))
    assert isinstance(rep, LoadReport) and rep.status == "complete" and rep.schedule == "interleaved"
    levels = sorted((lvl for m in rep.modes.values() for lvl in m.levels), key=lambda x: x.position or 0)
    assert [(x.mode, x.level) for x in levels] == [
        ("vanilla", 1.0),
        ("speculative", 1.0),
        ("speculative", 2.0),
        ("vanilla", 2.0),
    ]
    assert [x.position for x in levels] == [1, 2, 3, 4]
    starts = [x.started_s for x in levels]
    assert starts[0] == 0.0 and all(
        b is not None and a is not None and b > a for a, b in itertools.pairwise(starts)
    )
    assert all(x.issued == x.finished == 4 for x in levels) and [c.level for c in rep.comparisons] == [
        1.0,
        2.0,
    ]
    assert gone(list({pid for s in seen for pid in s}), 5.0)
    assert servers(child) == {}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_both_servers_stopped_when_velobench_is_interrupted_or_killed(
    llama_bin: Path, smol: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    log = tmp_path / "out.txt"
    child = spawn(
        [*base(llama_bin, smol, "k.json"), *("--sweep", "concurrency=1,2", "--duration", "4")],
        log,
    )
    try:
        wait_for("vanilla concurrency 1:", log, child)  # the first level is kept; the second is running
        up = servers(child)
        assert sorted(up.values()) == ["speculative", "vanilla"], up
        child.send_signal(sig)
        code = child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    # SIGKILL: PR_SET_PDEATHSIG sends SIGTERM at once and the watchdog SIGTERMs the group too; a
    # llama-server that gets both exits from its "second interrupt" handler, which can hang, and
    # then only the watchdog's SIGKILL after its 10 s grace ends it (as test_interleave allows)
    within = 20.0 if sig is signal.SIGKILL else 10.0
    assert gone(list(up), within), "a llama-server outlived velobench"
    if sig is signal.SIGINT:
        assert code == 130 and "Traceback" not in log.read_text(), log.read_text()
        rep = store.load_result(Path("k.json"))
        assert isinstance(rep, LoadReport) and rep.status == "interrupted" and rep.schedule == "interleaved"
        assert rep.modes["vanilla"].levels[0].position == 1
