"""Telemetry: the sampler thread, NVML (real no-GPU path, injected readers), RAPL, process trees, summaries."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from velobench.errors import VelobenchError
from velobench.telemetry.nvml import (
    GpuReading,
    cpu_governor,
    cuda_version_text,
    gpu_environment,
    open_gpu_reader,
)
from velobench.telemetry.process import ProcessTree
from velobench.telemetry.rapl import open_rapl, unwrapped_delta_uj
from velobench.telemetry.sampler import Sample, Sampler, Sources, TelemetryTrace
from velobench.telemetry.summary import (
    downsample,
    energy_per_token,
    iteration_metrics,
    power_over_time,
    power_series,
    summarize,
    time_mean,
    trapezoid,
)


def telemetry_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "velobench-telemetry"]


# -- a fake GPU library behind the GpuReader protocol ---------------------------------------------
class RampGpu:
    """One GPU whose power ramps linearly in real time: P(t) = p0 + slope · (t − t0).

    `counter` says what the NVML energy counter reports: None (no counter, like pre-Volta GPUs)
    or a function of elapsed seconds → mJ.
    """

    def __init__(
        self, p0: float = 100.0, slope: float = 50.0, counter: Callable[[float], float] | None = None
    ) -> None:
        self.t0 = time.perf_counter()
        self.p0, self.slope, self.counter = p0, slope, counter
        self.reads = 0
        self.closed = False

    def power_at(self, t: float) -> float:
        return self.p0 + self.slope * (t - self.t0)

    def indices(self) -> list[int]:
        return [0]

    def name(self, index: int) -> str:
        return "Fake H100"

    def memory_total_mib(self, index: int) -> float | None:
        return 81559.0

    def read(self, index: int) -> GpuReading:
        t = time.perf_counter()
        self.reads += 1
        return GpuReading(
            index=index,
            power_w=self.power_at(t),
            energy_mj=None if self.counter is None else self.counter(t - self.t0),
            utilization_pct=float(50 + self.reads % 2 * 40),
            memory_used_mib=1000.0 + self.reads,
            temperature_c=40.0 + self.reads % 3,
            sm_clock_mhz=1980.0,
        )

    def close(self) -> None:
        self.closed = True


def run_window(
    sources: Sources, seconds: float = 0.6, hz: float = 20, pid: int | None = None
) -> TelemetryTrace:
    with Sampler(sources, hz=hz, pid=pid) as s:
        time.sleep(seconds)
    return s.trace


def test_power_ramp_without_counter_integrates_power_to_the_analytic_energy() -> None:
    gpu = RampGpu(p0=100.0, slope=50.0)
    trace = run_window(Sources(gpu=gpu))
    summary = summarize(trace)
    g = summary.gpus[0]
    t_first, t_last = trace.samples[0].t, trace.samples[-1].t
    # ∫ p0 + slope·(t − t0) dt over [t_first, t_last], exact for the trapezoidal rule on a line
    analytic = 100.0 * (t_last - t_first) + 50.0 / 2 * ((t_last - gpu.t0) ** 2 - (t_first - gpu.t0) ** 2)
    assert g.energy_method == "power_integral"
    assert g.energy_j == pytest.approx(analytic, rel=0.01)
    assert g.peak_power_w == pytest.approx(gpu.power_at(t_last), rel=0.01)
    assert g.mean_power_w == pytest.approx(analytic / (t_last - t_first), rel=0.01)
    assert g.name == "Fake H100" and g.memory_total_mib == 81559.0
    assert g.peak_memory_used_mib == 1000.0 + gpu.reads
    assert g.peak_utilization_pct == 90.0 and 50.0 < (g.mean_utilization_pct or 0) < 90.0
    assert g.peak_temperature_c == 42.0 and g.mean_sm_clock_mhz == pytest.approx(1980.0)
    assert summary.energy_scope == "gpu" and summary.energy_j == g.energy_j
    assert summary.gpu_note is None and summary.errors == []
    assert not gpu.closed  # the sampler borrows the reader; Sources.close() closes it


def test_energy_counter_is_preferred_over_the_power_integral() -> None:
    # the counter says 3 kW constant: nothing like the ~100 W power readings, so we see which was used
    gpu = RampGpu(counter=lambda elapsed: 5_000_000 + 3_000_000 * elapsed)
    trace = run_window(Sources(gpu=gpu))
    g = summarize(trace).gpus[0]
    first, last = trace.samples[0].gpus[0].energy_mj, trace.samples[-1].gpus[0].energy_mj
    assert first is not None and last is not None
    assert g.energy_method == "nvml_energy_counter"
    assert g.energy_j == pytest.approx((last - first) / 1000)
    assert g.energy_j == pytest.approx(3000 * trace.duration_s, rel=0.02)


def test_counter_that_goes_backwards_falls_back_to_the_integral() -> None:
    t = [0.0, 1.0, 2.0]
    trace = TelemetryTrace(
        hz=10,
        started_at=0,
        samples=[
            Sample(t=x, gpus=(GpuReading(0, power_w=200.0, energy_mj=e),))
            for x, e in zip(t, [9e6, 9.2e6, 1e3], strict=True)  # driver reloaded mid-window
        ],
        gpu_names={0: "g"},
    )
    g = summarize(trace).gpus[0]
    assert g.energy_method == "power_integral" and g.energy_j == pytest.approx(400.0)


def test_unsupported_gpu_fields_are_null_and_a_raising_reader_is_dropped_not_raised() -> None:
    class Flaky(RampGpu):
        def read(self, index: int) -> GpuReading:
            if self.reads >= 3:
                raise RuntimeError("GPU is lost")
            self.reads += 1
            return GpuReading(index=index, power_w=None, memory_used_mib=500.0)

    trace = run_window(Sources(gpu=Flaky()), seconds=0.5)
    summary = summarize(trace)
    g = summary.gpus[0]
    assert g.mean_power_w is None and g.energy_j is None and g.energy_method is None
    assert g.peak_memory_used_mib == 500.0 and g.peak_temperature_c is None
    assert summary.energy_j is None and summary.energy_scope is None
    assert summary.errors == ["gpu: RuntimeError: GPU is lost"]
    assert trace.gpu_note == "GPU reading failed: RuntimeError: GPU is lost"
    assert summary.gpu_note is None  # the GPU was read before it failed: its fields are in `gpus`

    class Dead(RampGpu):
        def name(self, index: int) -> str:
            raise RuntimeError("no such GPU")

    summary = summarize(run_window(Sources(gpu=Dead()), seconds=0.1))
    assert summary.gpus == [] and summary.gpu_note == "GPU reading failed: RuntimeError: no such GPU"
    assert telemetry_threads() == []


# -- the real no-GPU path on this machine, and NVML through a fake pynvml module -------------------
def test_no_gpu_for_real_gives_null_gpu_fields_with_a_note() -> None:
    reader, note = open_gpu_reader()
    if reader is not None:
        reader.close()
        pytest.skip("this machine has an NVIDIA GPU")
    assert note
    sources = Sources.open()
    assert sources.gpu is None and sources.gpu_note == note
    summary = summarize(run_window(sources, seconds=0.3))
    assert summary.gpus == [] and summary.gpu_energy_j is None and summary.gpu_peak_memory_used_mib is None
    assert summary.gpu_note == note
    env = gpu_environment()
    assert env.gpus == [] and env.note
    sources.close()


def test_without_nvidia_ml_py_the_note_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml → ImportError
    assert open_gpu_reader() == (None, "nvidia-ml-py is not installed")
    assert gpu_environment().note == "nvidia-ml-py is not installed"
    assert Sources.open(gpus=False).gpu_note == "GPU telemetry off"


class FakeNvmlError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


def fake_pynvml(calls: list[str], energy_supported: bool = True) -> SimpleNamespace:
    """pynvml's calls as NVML answers them on an H100 (units: mW, mJ, bytes, MHz)."""

    def energy(h: int) -> int:
        calls.append("energy")
        if not energy_supported:
            raise FakeNvmlError(3)
        return 123_456_789

    return SimpleNamespace(
        NVMLError=FakeNvmlError,
        NVML_ERROR_NOT_SUPPORTED=3,
        NVML_TEMPERATURE_GPU=0,
        NVML_CLOCK_SM=1,
        nvmlInit=lambda: calls.append("init"),
        nvmlShutdown=lambda: calls.append("shutdown"),
        nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetName=lambda h: b"NVIDIA H100 80GB HBM3",
        nvmlDeviceGetPowerUsage=lambda h: 312_500,
        nvmlDeviceGetTotalEnergyConsumption=energy,
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=97, memory=40),
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(total=85_520_809_984, used=2**30 * 3),
        nvmlDeviceGetTemperature=lambda h, kind: 61,
        nvmlDeviceGetClockInfo=lambda h, kind: 1980 if kind == 1 else 0,
        nvmlDeviceGetEnforcedPowerLimit=lambda h: 700_000,
        nvmlSystemGetDriverVersion=lambda: "550.54.15",
        nvmlSystemGetCudaDriverVersion=lambda: 12040,
    )


def test_nvml_reader_converts_units_and_stops_asking_for_unsupported_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(calls, energy_supported=False))
    reader, note = open_gpu_reader(indices=[1])
    assert reader is not None and note is None
    assert reader.indices() == [1] and reader.name(1) == "NVIDIA H100 80GB HBM3"
    r = reader.read(1)
    assert r == GpuReading(
        index=1,
        power_w=312.5,
        energy_mj=None,
        utilization_pct=97.0,
        memory_used_mib=3072.0,
        temperature_c=61.0,
        sm_clock_mhz=1980.0,
    )
    reader.read(1)
    assert calls.count("energy") == 1  # NOT_SUPPORTED once → never asked again
    reader.close()
    reader.close()
    assert calls.count("shutdown") == 1


def test_nvml_reader_reads_the_energy_counter_in_mj(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([]))
    reader, _ = open_gpu_reader()
    assert reader is not None and reader.indices() == [0, 1]
    assert reader.read(0).energy_mj == 123_456_789.0
    assert open_gpu_reader(indices=[5]) == (None, "no GPU among indices [5]")


def test_gpu_environment_records_model_driver_and_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(calls))
    env = gpu_environment()
    assert env.note is None and len(env.gpus) == 2
    g = env.gpus[0]
    assert (g.name, g.driver_version, g.cuda_driver_version) == ("NVIDIA H100 80GB HBM3", "550.54.15", "12.4")
    assert g.memory_total_mib == 81559 and g.power_limit_w == 700.0
    assert calls[-1] == "shutdown"


def test_cuda_version_text() -> None:
    assert cuda_version_text(12040) == "12.4"
    assert cuda_version_text(11080) == "11.8"
    assert cuda_version_text(13000) == "13.0"


def test_cpu_governor_from_a_fake_sysfs(tmp_path: Path) -> None:
    assert cpu_governor(tmp_path) is None
    for i, gov in enumerate(["performance", "performance", "powersave", "performance"]):
        d = tmp_path / f"cpu{i}" / "cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_governor").write_text(gov + "\n")
    (tmp_path / "cpufreq").mkdir()  # not a CPU
    assert cpu_governor(tmp_path) == "performance×3, powersave×1"
    (tmp_path / "cpu2" / "cpufreq" / "scaling_governor").write_text("performance\n")
    assert cpu_governor(tmp_path) == "performance"


# -- RAPL through a fake sysfs ---------------------------------------------------------------------
def make_zone(root: Path, name: str, label: str, energy: int, max_range: int = 1_000_000) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "name").write_text(label + "\n")
    (d / "energy_uj").write_text(f"{energy}\n")
    (d / "max_energy_range_uj").write_text(f"{max_range}\n")
    return d


def test_rapl_sums_packages_only_and_unwraps_the_counter(tmp_path: Path) -> None:
    p0 = make_zone(tmp_path, "intel-rapl:0", "package-0", 990_000)
    p1 = make_zone(tmp_path, "intel-rapl:1", "package-1", 10)
    make_zone(tmp_path, "intel-rapl:0:0", "core", 5)  # part of package-0
    make_zone(tmp_path, "intel-rapl:2", "psys", 7)  # the whole platform, package included
    reader, note = open_rapl(tmp_path)
    assert reader is not None and note is None
    assert reader.zone_names() == ["intel-rapl:0 (package-0)", "intel-rapl:1 (package-1)"]
    assert reader.read() == 0.0
    (p0 / "energy_uj").write_text("999000\n")
    (p1 / "energy_uj").write_text("1010\n")
    assert reader.read() == pytest.approx((9_000 + 1_000) / 1e6)
    (p0 / "energy_uj").write_text("500\n")  # wrapped: 999000 → 1000000 → 0 → 500
    assert reader.read() == pytest.approx((9_000 + 1_000 + 1_500) / 1e6)
    (p0 / "energy_uj").write_text("2500\n")
    assert reader.read() == pytest.approx((9_000 + 1_000 + 1_500 + 2_000) / 1e6)


def test_unwrapped_delta() -> None:
    assert unwrapped_delta_uj(100, 300, 1000) == 200
    assert unwrapped_delta_uj(900, 100, 1000) == 200
    assert unwrapped_delta_uj(5, 5, 1000) == 0


def test_rapl_absent_or_root_only_is_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert open_rapl(tmp_path / "nope") == (None, f"no RAPL ({tmp_path / 'nope'} absent)")
    assert open_rapl(tmp_path) == (None, f"no readable RAPL package zone under {tmp_path}")
    make_zone(tmp_path, "intel-rapl:0", "package-0", 1)
    real_read = Path.read_text

    def denied(self: Path, *args: Any, **kwargs: Any) -> str:
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied")
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", denied)  # tests run as root here, so chmod would not deny
    reader, note = open_rapl(tmp_path)
    assert reader is None and note is not None and "permission denied" in note


def test_rapl_energy_reaches_the_summary_as_cpu_package_power(tmp_path: Path) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0", 0, max_range=2**32)
    sources = Sources.open(gpus=False, rapl_root=tmp_path)
    assert sources.rapl is not None
    stop = threading.Event()

    def burn_energy() -> None:  # a package drawing 40 W, as its counter would show
        t0 = time.perf_counter()
        while not stop.wait(0.01):
            tmp = zone / "energy_uj.tmp"  # sysfs reads are atomic; a file rewritten in place is not
            tmp.write_text(f"{int(40e6 * (time.perf_counter() - t0)) % 2**32}\n")
            tmp.replace(zone / "energy_uj")

    writer = threading.Thread(target=burn_energy)
    writer.start()
    try:
        trace = run_window(sources, seconds=0.6)
    finally:
        stop.set()
        writer.join()
    summary = summarize(trace)
    assert summary.energy_scope == "cpu_package"
    assert summary.cpu_package_energy_j == summary.energy_j
    assert summary.cpu_package_mean_power_w == pytest.approx(40, rel=0.15)
    assert summary.cpu_energy_note is None and summary.errors == []


# -- the real psutil path on this machine ----------------------------------------------------------
@pytest.fixture
def busy_tree() -> Iterator[subprocess.Popen[bytes]]:
    """A real process that busy-loops, holds 64 MiB, and has one busy child of its own."""
    code = textwrap.dedent(
        """
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        ballast = bytearray(64 * 2**20)
        print("ready", flush=True)
        end = time.time() + 30
        while time.time() < end:
            pass
        """
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        assert p.stdout is not None and p.stdout.readline() == b"ready\n"
        yield p
    finally:
        import psutil

        for c in psutil.Process(p.pid).children(recursive=True):
            c.kill()
        p.kill()
        p.wait()


def test_process_tree_cpu_and_rss_of_a_real_child(busy_tree: subprocess.Popen[bytes]) -> None:
    trace = run_window(Sources(), seconds=1.0, hz=10, pid=busy_tree.pid)
    summary = summarize(trace)
    proc = summary.process
    assert proc is not None and proc.pid == busy_tree.pid and proc.note is None
    assert proc.peak_processes == 2
    assert proc.mean_cpu_pct is not None and proc.mean_cpu_pct > 10  # two busy loops on a shared machine
    assert proc.peak_cpu_pct is not None and proc.peak_cpu_pct >= proc.mean_cpu_pct
    assert proc.peak_rss_mib is not None and proc.peak_rss_mib > 64
    flat = iteration_metrics(summary, tokens=10)
    assert (
        flat["process_mean_cpu_pct"] == proc.mean_cpu_pct
        and flat["process_peak_rss_mib"] == proc.peak_rss_mib
    )
    assert summary.sampler_cpu_s > 0


@pytest.mark.parametrize("refresh_s", [0.0, 3600.0])
def test_a_child_born_while_sampled_is_found_at_the_next_listing(refresh_s: float) -> None:
    code = textwrap.dedent(
        """
        import subprocess, sys
        sys.stdin.readline()
        child = subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        print(child.pid, flush=True)
        child.wait()
        """
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert p.stdin is not None and p.stdout is not None
    child_pid = None
    try:
        tree = ProcessTree(p.pid, refresh_s=refresh_s)
        assert tree.read().processes == 1
        p.stdin.write("go\n")
        p.stdin.flush()
        child_pid = int(p.stdout.readline())
        time.sleep(0.3)
        r = tree.read()
        if refresh_s == 0.0:
            assert r.processes == 2 and r.cpu_pct is not None and r.cpu_pct > 0
        else:
            assert r.processes == 1  # listed once an hour: the known members only
    finally:
        if child_pid is not None:
            import psutil

            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(child_pid).kill()
        p.kill()
        p.wait()


def test_process_that_exits_or_never_existed_is_a_note() -> None:
    p = subprocess.Popen([sys.executable, "-c", "pass"], stdin=subprocess.DEVNULL)
    tree = ProcessTree(p.pid)
    p.wait()
    time.sleep(0.05)
    r = tree.read()
    assert r.cpu_pct is None and r.rss_mib is None and r.processes == 0
    assert tree.note == f"process {p.pid} exited while sampled"
    trace = run_window(Sources(), seconds=0.2, pid=p.pid)
    assert summarize(trace).process is not None
    assert trace.process_note == f"process {p.pid} not found"


# -- the thread ------------------------------------------------------------------------------------
def test_the_thread_really_stops_even_when_the_work_raises() -> None:
    before = telemetry_threads()
    sampler = Sampler(Sources(gpu=RampGpu()), hz=50)
    with pytest.raises(ZeroDivisionError), sampler:
        assert len(telemetry_threads()) == len(before) + 1
        time.sleep(0.2)
        _ = 1 / 0
    assert telemetry_threads() == before == []
    reads = sampler.trace.samples
    time.sleep(0.1)
    assert sampler.trace.samples == reads  # nothing appends after stop
    assert len(reads) >= 3  # first sample, some scheduled ones, the last one


def test_first_sample_is_taken_before_start_returns_and_last_at_stop() -> None:
    gpu = RampGpu()
    s = Sampler(Sources(gpu=gpu), hz=1)
    s.start()
    assert gpu.reads >= 1
    s.stop()
    assert len(s.trace.samples) == 2  # start and stop, no scheduled sample inside 1 s
    assert s.trace.samples[0].t < s.trace.samples[1].t


def test_sampler_misuse_is_a_clear_error() -> None:
    with pytest.raises(VelobenchError, match="telemetry rate"):
        Sampler(Sources(), hz=0.1)
    src = Sources()
    s = Sampler(src)
    with pytest.raises(VelobenchError, match="before it was started"):
        s.stop()
    with pytest.raises(VelobenchError, match="before the sampler was stopped"):
        _ = s.trace
    s.start()
    with pytest.raises(VelobenchError, match="already started"):
        s.start()
    with pytest.raises(VelobenchError, match="already in use"):
        Sampler(src).start()
    trace = s.stop()
    assert s.stop() is trace  # stopping twice is harmless
    Sampler(src).start().stop()  # the sources are free again


# -- the pure summary functions --------------------------------------------------------------------
def two_gpu_trace() -> TelemetryTrace:
    """Two GPUs at 0/1/2 s; GPU 0 at 100, 200, 300 W; GPU 1 at 50 W; CPU packages at 20 W."""
    samples = [
        Sample(
            t=10.0 + i,
            gpus=(
                GpuReading(0, power_w=100.0 * (i + 1), memory_used_mib=1000.0 * (i + 1), temperature_c=60.0),
                GpuReading(1, power_w=50.0, memory_used_mib=500.0, temperature_c=70.0 + i),
            ),
            cpu_energy_j=5.0 + 20.0 * i,
        )
        for i in range(3)
    ]
    return TelemetryTrace(hz=1, started_at=0, samples=samples, gpu_names={0: "a", 1: "b"})


def test_summary_of_two_gpus_and_cpu_packages() -> None:
    s = summarize(two_gpu_trace())
    assert s.duration_s == 2.0 and s.samples == 3
    assert [g.energy_j for g in s.gpus] == [400.0, 100.0]  # trapezoids: 150 + 250, 50 + 50
    assert s.gpu_energy_j == 500.0 and s.cpu_package_energy_j == 40.0
    assert s.energy_j == 540.0 and s.energy_scope == "gpu+cpu_package"
    assert s.mean_power_w == 270.0  # 540 J / 2 s
    assert s.gpu_mean_power_w == 250.0 and s.gpu_peak_power_w == 350.0
    assert s.peak_power_w == 370.0  # 300 + 50 W of GPUs + 20 W of packages at the last sample
    assert s.gpu_peak_memory_used_mib == 3500.0
    assert s.cpu_package_mean_power_w == 20.0
    flat = iteration_metrics(s, tokens=100)
    assert flat["energy_per_token_j"] == 5.4 and flat["gpu_energy_per_token_j"] == 5.0
    assert flat["cpu_package_energy_per_token_j"] == 0.4
    assert flat["gpu_peak_temperature_c"] == 72.0 and flat["gpu_peak_power_w"] == 350.0
    assert s.model_validate_json(s.model_dump_json()) == s  # round-trips through a result file


def test_power_series_and_plot_points() -> None:
    trace = two_gpu_trace()
    assert power_series(trace, "gpu") == [(0.0, 150.0), (1.0, 250.0), (2.0, 350.0)]
    assert power_series(trace, "cpu_package") == [(1.0, 20.0), (2.0, 20.0)]
    assert power_series(trace, "total") == [(1.0, 270.0), (2.0, 370.0)]
    assert power_over_time(trace, "gpu", max_points=1) == [(1.0, 250.0)]


def test_downsample_keeps_means_and_bounds() -> None:
    pts = [(float(i), float(i % 7)) for i in range(1000)]
    out = downsample(pts, 100)
    assert len(out) == 100
    assert sum(w for _, w in out) / 100 == pytest.approx(sum(w for _, w in pts) / 1000)
    assert out[0][0] == 4.5 and out[-1][0] == 994.5
    assert downsample(pts[:5], 100) == pts[:5]
    assert len(downsample(pts[:7], 3)) == 3
    with pytest.raises(VelobenchError):
        downsample(pts, 0)


def test_energy_per_token() -> None:
    s = summarize(two_gpu_trace())
    assert energy_per_token(s, 54) == 10.0
    assert energy_per_token(s, 0) is None and energy_per_token(s, None) is None
    with pytest.raises(VelobenchError, match="token count"):
        energy_per_token(s, -1)
    nothing = summarize(TelemetryTrace(hz=10, started_at=0, samples=[Sample(t=0.0), Sample(t=1.0)]))
    assert energy_per_token(nothing, 10) is None and nothing.energy_scope is None
    assert iteration_metrics(nothing, 10)["mean_power_w"] is None


def test_trapezoid_and_time_mean() -> None:
    assert trapezoid([0, 1, 3], [2, 4, 4]) == 11.0
    assert time_mean([0, 1, 3], [2, 4, 4]) == pytest.approx(11 / 3)
    assert time_mean([5], [7]) == 7 and time_mean([], []) is None


def test_empty_trace_is_a_clear_error() -> None:
    with pytest.raises(VelobenchError, match="no samples"):
        summarize(TelemetryTrace(hz=10, started_at=0))


def test_eval_speed_of_the_sampler_overhead_benchmark_from_real_llama_completion_output() -> None:
    """benchmarks/sampler_overhead.py reads tokens/s with the engine's own parser."""
    from velobench.engines.llama_output import parse_vanilla

    fixture = Path(__file__).parents[1] / "fixtures" / "telemetry" / "llama_completion_smollm2_n128.stderr"
    # the eval line, not the prompt eval line (4.63)
    assert parse_vanilla(fixture.read_text()).eval_tokens_per_second == 1.33
