"""A background thread that samples GPUs, CPU package energy and a process tree while work runs.

Open the sources once per run (`Sources.open()`: NVML init, RAPL zones), then wrap each measured
request or generation in a `Sampler`:

    sources = Sources.open()
    with Sampler(sources, pid=server_pid, hz=10) as s:
        ...one measured generation...
    summary = summarize(s.trace)          # velobench.telemetry.summary
    sources.close()

The thread takes one sample as soon as it starts (`start()` returns after it), one every
1/hz seconds on a fixed schedule (t0 + k/hz; a late sample never causes a burst of catch-up
samples), and one when `stop()` is called, so the trace spans the whole window. Timestamps are
`time.perf_counter()`, the clock `RequestTiming` uses. A source that raises is dropped for the
rest of the window and the error kept in the trace; the sampler never raises into the measured
work. The thread's own CPU time (`time.thread_time()`) is recorded: that is its overhead.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from velobench.errors import VelobenchError
from velobench.telemetry.nvml import GpuReader, GpuReading, open_gpu_reader
from velobench.telemetry.process import ProcessReading, ProcessTree
from velobench.telemetry.rapl import POWERCAP, RaplReader, open_rapl

MIN_HZ = 1.0
MAX_HZ = 1000.0


@dataclass
class Sources:
    """What can be read on this machine, opened once and shared by every Sampler of a run.

    One Sampler at a time per Sources (a second one is a VelobenchError): the RAPL reader keeps
    the counters' last values. To measure concurrent requests, sample around the whole load
    level, not each request.
    """

    gpu: GpuReader | None = None
    gpu_note: str | None = None
    rapl: RaplReader | None = None
    rapl_note: str | None = None
    in_use: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def open(
        cls, *, gpus: bool = True, gpu_indices: list[int] | None = None, rapl_root: Path = POWERCAP
    ) -> Sources:
        """NVML (unless `gpus` is False: e.g. a remote server's GPUs are not this machine's) and RAPL."""
        gpu, gpu_note = open_gpu_reader(gpu_indices) if gpus else (None, "GPU telemetry off")
        rapl, rapl_note = open_rapl(rapl_root)
        return cls(gpu=gpu, gpu_note=gpu_note, rapl=rapl, rapl_note=rapl_note)

    def close(self) -> None:
        if self.gpu is not None:
            self.gpu.close()
            self.gpu = None


@dataclass(frozen=True)
class Sample:
    """Everything read at one instant. `cpu_energy_j` is cumulative (RAPL, joules since Sources.open)."""

    t: float
    gpus: tuple[GpuReading, ...] = ()
    process: ProcessReading | None = None
    cpu_energy_j: float | None = None


@dataclass
class TelemetryTrace:
    """The samples of one window and what is known about their sources."""

    hz: float
    started_at: float  # wall clock (time.time()) of the first sample
    samples: list[Sample] = field(default_factory=list)
    gpu_names: dict[int, str] = field(default_factory=dict)
    gpu_memory_total_mib: dict[int, float | None] = field(default_factory=dict)
    gpu_note: str | None = None
    pid: int | None = None
    process_note: str | None = None
    cpu_energy_note: str | None = None
    sampler_cpu_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.samples[-1].t - self.samples[0].t if len(self.samples) > 1 else 0.0


class Sampler:
    """Samples `sources` (and the process tree of `pid`) at `hz` on its own thread between start and stop."""

    def __init__(
        self, sources: Sources, *, pid: int | None = None, hz: float = 10.0, children_only: bool = False
    ) -> None:
        if not MIN_HZ <= hz <= MAX_HZ:
            raise VelobenchError(f"telemetry rate must be {MIN_HZ:g}..{MAX_HZ:g} Hz, got {hz:g}")
        self.hz = hz
        self._sources = sources
        self._pid = pid
        self._children_only = children_only
        self._gpu = sources.gpu
        self._rapl = sources.rapl
        self._tree: ProcessTree | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._trace: TelemetryTrace | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Sampler:
        """Start the thread; returns once the first sample is taken."""
        if self._thread is not None:
            raise VelobenchError("telemetry sampler already started (one Sampler per measured window)")
        if not self._sources.in_use.acquire(blocking=False):
            raise VelobenchError("telemetry sources already in use by another running sampler")
        gpu = self._gpu
        self._trace = TelemetryTrace(
            hz=self.hz,
            started_at=time.time(),
            gpu_note=self._sources.gpu_note,
            pid=self._pid,
            cpu_energy_note=self._sources.rapl_note,
        )
        if gpu is not None:
            try:
                for i in gpu.indices():
                    self._trace.gpu_names[i] = gpu.name(i)
                    self._trace.gpu_memory_total_mib[i] = gpu.memory_total_mib(i)
            except Exception as exc:
                self._fail("gpu", exc)
        if self._pid is not None:
            self._tree = ProcessTree(self._pid, children_only=self._children_only)
        self._thread = threading.Thread(target=self._run, name="velobench-telemetry", daemon=True)
        self._thread.start()
        self._ready.wait()
        return self

    def stop(self) -> TelemetryTrace:
        """Take a last sample, end the thread (joined, never left running) and return the trace."""
        if self._thread is None or self._trace is None:
            raise VelobenchError("telemetry sampler stopped before it was started")
        if self._stop.is_set():
            return self._trace
        self._stop.set()
        self._thread.join()
        self._sources.in_use.release()
        if self._tree is not None:
            self._trace.process_note = self._tree.note
        return self._trace

    @property
    def trace(self) -> TelemetryTrace:
        if self._trace is None or self._thread is None or self._thread.is_alive():
            raise VelobenchError("telemetry trace read before the sampler was stopped")
        return self._trace

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- the thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        assert self._trace is not None
        cpu0 = time.thread_time()
        try:
            self._take()
            self._ready.set()
            period = 1.0 / self.hz
            due = time.perf_counter() + period
            while not self._stop.wait(max(0.0, due - time.perf_counter())):
                self._take()
                due += period
                now = time.perf_counter()
                if due < now:  # fell behind (a slow read, a busy machine): skip, don't burst
                    due = now + period
            self._take()
        finally:
            self._ready.set()
            self._trace.sampler_cpu_s = time.thread_time() - cpu0

    def _fail(self, source: str, exc: Exception) -> None:
        assert self._trace is not None
        why = f"{type(exc).__name__}: {exc}"
        self._trace.errors.append(f"{source}: {why}")
        if source == "gpu":
            self._gpu = None
            self._trace.gpu_note = self._trace.gpu_note or f"GPU reading failed: {why}"
        elif source == "rapl":
            self._rapl = None
            self._trace.cpu_energy_note = self._trace.cpu_energy_note or f"RAPL reading failed: {why}"
        else:
            self._tree = None

    def _take(self) -> None:
        assert self._trace is not None
        t = time.perf_counter()
        gpus: tuple[GpuReading, ...] = ()
        if self._gpu is not None:
            try:
                gpus = tuple(self._gpu.read(i) for i in self._gpu.indices())
            except Exception as exc:
                self._fail("gpu", exc)
        proc = None
        if self._tree is not None:
            try:
                proc = self._tree.read()
            except Exception as exc:
                self._fail("process", exc)
        energy = None
        if self._rapl is not None:
            try:
                energy = self._rapl.read()
            except Exception as exc:
                self._fail("rapl", exc)
        self._trace.samples.append(Sample(t=t, gpus=gpus, process=proc, cpu_energy_j=energy))
