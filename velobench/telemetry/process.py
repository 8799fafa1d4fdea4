"""CPU % and resident memory of one process tree (a root pid and all its descendants) via psutil.

The root is the engine's own process: a llama-server, a vLLM server, or a CLI child such as
llama-completion; its children (vLLM's engine core and workers) are counted with it.

CPU % is computed from CPU-time deltas, like `top` (100 % = one core busy):

    cpu_pct = 100 · Σ_p (cpu_p(now) − cpu_p(before)) / (wall(now) − wall(before)),   cpu = user + system

over the processes alive now; a process that appeared since the last read counts all its CPU
time (it was born inside the interval); one that exited in between is lost for that interval.
Processes are keyed by (pid, create_time) so a reused pid is not mistaken for the old one.
The first read only primes the counters (cpu_pct `None`). CPU times tick in 1/CLK_TCK steps
(10 ms on Linux), so one 100 ms interval can read up to ~10 points off; the window's mean is
exact up to one tick over the whole window.

Listing descendants means reading every process of the machine (psutil scans /proc: about 1.3 ms
of CPU with ~90 processes, ten times that with a thousand), so the tree is listed again only
every `refresh_s` (1 s) and the known members are read at every sample (~0.03 ms each). A child
born in between is found at the next listing and its CPU time is not lost (it counts all of it,
above); only its RSS is missing until then.

RSS is the sum over the tree; pages shared between processes count once per process, so it can
overstate the tree's true footprint (it is what `ps` shows, added up).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class ProcessReading:
    """The tree at one instant: `None` fields where the root is gone or nothing could be read."""

    cpu_pct: float | None
    rss_mib: float | None
    processes: int


class ProcessTree:
    """Reads a root pid and its descendants; one instance per measured window."""

    def __init__(self, pid: int, refresh_s: float = 1.0, *, children_only: bool = False) -> None:
        self.pid = pid
        self.children_only = children_only  # the root is velobench itself: count only what it started
        self.refresh_s = refresh_s
        self._members: list[psutil.Process] = []
        self._listed_at: float | None = None
        self._root: psutil.Process | None
        try:
            self._root = psutil.Process(pid)
        except psutil.Error:
            self._root = None
        self._cpu: dict[tuple[int, float], float] = {}
        self._wall: float | None = None
        self.note: str | None = None if self._root is not None else f"process {pid} not found"

    def _tree(self, now: float) -> list[psutil.Process]:
        """The root and its descendants, listed again at most every `refresh_s` (see module docstring)."""
        assert self._root is not None
        if self._listed_at is None or now - self._listed_at >= self.refresh_s:
            try:
                kids = self._root.children(recursive=True)
                self._members = kids if self.children_only else [self._root, *kids]
            except psutil.Error:
                self._members = [self._root]
            self._listed_at = now
        return self._members

    def read(self) -> ProcessReading:
        """CPU % since the previous read and RSS now (see module docstring for the formula)."""
        if self._root is None or not self._root.is_running():
            if self._root is not None and self.note is None:
                self.note = f"process {self.pid} exited while sampled"
            return ProcessReading(cpu_pct=None, rss_mib=None, processes=0)
        wall = time.perf_counter()
        cpu: dict[tuple[int, float], float] = {}
        rss = 0
        for p in self._tree(wall):
            try:
                with p.oneshot():
                    key = (p.pid, p.create_time())
                    t = p.cpu_times()
                    cpu[key] = t.user + t.system
                    rss += p.memory_info().rss
            except psutil.Error:  # exited between listing and reading, or a zombie
                continue
        if not cpu:
            return ProcessReading(cpu_pct=None, rss_mib=None, processes=0)
        pct: float | None = None
        if self._wall is not None and wall > self._wall:
            used = sum(c - self._cpu.get(k, 0.0) for k, c in cpu.items())
            pct = max(0.0, 100 * used / (wall - self._wall))
        self._cpu, self._wall = cpu, wall
        return ProcessReading(cpu_pct=pct, rss_mib=rss / 2**20, processes=len(cpu))
