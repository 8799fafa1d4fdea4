"""Other processes' CPU while one generation ran: what disturbed the measurement, and who.

Two snapshots, at the start and the end of the window (no thread):

    busy      = Σ over CPUs of user + nice + system + irq + softirq (psutil.cpu_times; guest time
                is inside user, steal and iowait are not work of this machine's processes)
    ours      = velobench's own CPU time, its reaped children's (children_user + children_system:
                a cli engine's generation is a child that exits inside the window), and every
                live descendant's (the servers, both when two run side by side, vLLM's workers)
    other_cpu = 100 · (Δbusy − Δours) / Δwall                   (% of one core; clamped at 0)

System-wide accounting catches short-lived processes (a compiler job that starts and ends
inside the window); the busiest other process is found by comparing every process's CPU time
in the two snapshots (one born in between counts all its CPU time), velobench's tree
left out. CPU times tick in 1/CLK_TCK steps (10 ms on Linux) per CPU, so a window shorter than
a few tenths of a second reads tens of percent off: `MIN_WINDOW_S` is the shortest window the
interference check judges (`analysis.warnings.interference`).

Cost: one listing of every process at each end of the window (psutil reads /proc: about 1 ms
with a hundred processes), none during it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import psutil

from velobench.results.telemetry import MIN_WINDOW_S, Interference

__all__ = ["MIN_WINDOW_S", "OtherCpu", "compare"]

TOP = 3  # the busiest other processes kept per window

Key = tuple[int, float]  # (pid, create_time): a reused pid is not the old process


def busy_s() -> float:
    """CPU seconds this machine spent working (every CPU), since boot."""
    t = psutil.cpu_times()
    return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq"))


def processes() -> dict[Key, tuple[str, float]]:
    """Every process's (name, user + system CPU seconds), keyed by (pid, create_time)."""
    out: dict[Key, tuple[str, float]] = {}
    for p in psutil.process_iter(["name", "create_time", "cpu_times"]):
        info = p.info
        times = info.get("cpu_times")
        if times is None or info.get("create_time") is None:
            continue  # gone, or not ours to read
        out[(p.pid, info["create_time"])] = (info.get("name") or "?", times.user + times.system)
    return out


def own_tree(root: int) -> tuple[set[int], float]:
    """The pids of `root` and its live descendants, and their CPU seconds (root's reaped children
    included)."""
    me = psutil.Process(root)
    t = me.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    pids = {root}
    for kid in me.children(recursive=True):
        try:
            k = kid.cpu_times()
        except psutil.Error:
            continue
        pids.add(kid.pid)
        total += k.user + k.system
    return pids, total


@dataclass
class Snapshot:
    wall: float  # perf_counter
    epoch: float  # time.time(), what create_time is in
    busy: float
    ours: float
    procs: dict[Key, tuple[str, float]]


class OtherCpu:
    """`with OtherCpu() as w: ...generation...` then `w.result`: the Interference of the window."""

    def __init__(self, root: int | None = None) -> None:
        self.root = root or os.getpid()
        self._start: Snapshot | None = None
        self.result: Interference | None = None

    def snapshot(self) -> Snapshot:
        _, ours = own_tree(self.root)
        return Snapshot(time.perf_counter(), time.time(), busy_s(), ours, processes())

    def __enter__(self) -> OtherCpu:
        try:
            self._start = self.snapshot()
        except psutil.Error:
            self._start = None  # unreadable here: the iteration records no interference
        return self

    def __exit__(self, *exc: object) -> None:
        if self._start is None:
            return
        try:
            pids, ours = own_tree(self.root)
            end = Snapshot(time.perf_counter(), time.time(), busy_s(), ours, processes())
        except psutil.Error:
            return
        self.result = compare(self._start, end, pids)


def compare(start: Snapshot, end: Snapshot, ours: set[int]) -> Interference:
    """The Interference between two snapshots (module docstring), `ours` the pids left out."""
    wall = max(end.wall - start.wall, 1e-9)
    other = max(0.0, (end.busy - start.busy) - (end.ours - start.ours))
    used_by: list[tuple[float, str, int]] = []
    for key, (name, cpu) in end.procs.items():
        if key[0] in ours:
            continue
        if key in start.procs:
            used = cpu - start.procs[key][1]
        elif key[1] >= start.epoch - 1.0:  # born in the window (create_time has 10 ms steps)
            used = cpu
        else:
            continue  # missed by the first listing: its CPU time is not this window's
        if used > 0:
            used_by.append((used, name, key[0]))
    top = sorted(used_by, reverse=True)[:TOP]
    busiest = top[0] if top else None
    return Interference(
        duration_s=wall,
        other_cpu_pct=100 * other / wall,
        busiest=busiest[1] if busiest else None,
        busiest_pid=busiest[2] if busiest else None,
        busiest_cpu_pct=100 * busiest[0] / wall if busiest else None,
        top=[(name, pid, 100 * used / wall) for used, name, pid in top],
    )
