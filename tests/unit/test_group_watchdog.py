"""proc.group_watchdog: a server's whole process group goes when velobench is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil

# A stand-in for velobench: starts a "server" whose own worker is its child (as vLLM's engine
# core is), ignoring SIGTERM like a server slow to shut down, prints the group, then waits.
PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    from velobench.proc import group_watchdog
    with group_watchdog(grace_s=1.0) as watch:
        server = subprocess.Popen(
            ["sh", "-c", "trap '' TERM; sleep 300 & sleep 300"], start_new_session=True
        )
        watch(server.pid)
        print(server.pid, flush=True)
        time.sleep(300)
    """
)


def group_members(pgid: int) -> list[int]:
    found = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.info["pid"]) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p.info["pid"])
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return found


def test_the_group_is_killed_when_its_parent_is_sigkilled() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pgid = int(parent.stdout.readline())
    time.sleep(0.3)
    assert len(group_members(pgid)) >= 2  # the shell and its worker
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 15
    while left := group_members(pgid):  # SIGTERM is ignored: SIGKILL after the 1 s grace
        assert time.monotonic() < deadline, f"left behind: {left}"
        time.sleep(0.1)


def test_leaving_the_block_normally_ends_the_watchdog_at_once() -> None:
    from velobench.proc import group_watchdog

    start = time.monotonic()
    with group_watchdog(grace_s=5.0):
        pass  # no group given: nothing to stop
    assert time.monotonic() - start < 5.0
