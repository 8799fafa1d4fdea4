"""From a telemetry trace to the numbers a result keeps: power, energy, utilization, memory, CPU.

All pure functions of a `TelemetryTrace`. Conventions (the formulas the docstrings refer to):

* Time-weighted mean of a quantity x sampled at times t_1..t_n (samples lacking x skipped):
      mean(x) = Σ_{i≥2} (x_i + x_{i−1})/2 · (t_i − t_{i−1}) / (t_n − t_1)
  (the trapezoidal integral over the span), the plain mean where n = 1 or the span is 0.
* GPU energy: the NVML total-energy counter, (E_n − E_1) / 1000 J (mJ → J), where the GPU has
  it in the first and last samples and it did not go backwards (a driver reload resets it);
  else the trapezoidal integral of power, Σ (P_i + P_{i−1})/2 · (t_i − t_{i−1}). The counter
  is preferred because NVML's power reading is itself averaged (over about 1 s on many GPUs),
  so integrating it smears a short window.
* CPU package energy: RAPL's cumulative joules, E_n − E_1.
* The measured total is the sum of what was measured: GPUs (all of them) plus CPU packages;
  `energy_scope` says which ("gpu+cpu_package", "gpu", "cpu_package"); the mean power is
  energy / duration, and the power at sample i is Σ_gpus P_i + (E_cpu,i − E_cpu,i−1)/(t_i − t_{i−1}).
* Undefined values are `None`, never NaN.

GPU memory and utilization are the device's (every process on it), not the engine's alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from velobench.errors import VelobenchError
from velobench.results.telemetry import (
    EnergyMethod,
    EnergyScope,
    GpuSummary,
    ProcessSummary,
    TelemetrySummary,
)
from velobench.telemetry.nvml import GpuReading
from velobench.telemetry.sampler import Sample, TelemetryTrace


# -- small pure helpers ----------------------------------------------------------------------------
def trapezoid(t: Sequence[float], x: Sequence[float]) -> float:
    """∫ x dt by the trapezoidal rule: Σ_{i≥2} (x_i + x_{i−1})/2 · (t_i − t_{i−1})."""
    return sum((x[i] + x[i - 1]) / 2 * (t[i] - t[i - 1]) for i in range(1, len(t)))


def time_mean(t: Sequence[float], x: Sequence[float]) -> float | None:
    """Time-weighted mean: trapezoid(t, x) / (t_n − t_1); the plain mean for one point or a zero span."""
    if not x:
        return None
    span = t[-1] - t[0]
    return trapezoid(t, x) / span if span > 0 else sum(x) / len(x)


def _series(
    samples: Sequence[Sample], get: Callable[[Sample], float | None]
) -> tuple[list[float], list[float]]:
    pairs = [(s.t, v) for s in samples if (v := get(s)) is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _gpu(s: Sample, index: int) -> GpuReading | None:
    return next((g for g in s.gpus if g.index == index), None)


def _gpu_field(index: int, name: str) -> Callable[[Sample], float | None]:
    def get(s: Sample) -> float | None:
        g = _gpu(s, index)
        return None if g is None else getattr(g, name)

    return get


def _gpu_total(indices: list[int], name: str) -> Callable[[Sample], float | None]:
    """Σ over all GPUs of one field, at samples where every GPU reported it."""

    def get(s: Sample) -> float | None:
        values = [_gpu_field(i, name)(s) for i in indices]
        return (
            None if not values or any(v is None for v in values) else sum(v for v in values if v is not None)
        )

    return get


def _peak(x: list[float]) -> float | None:
    return max(x) if x else None


# -- per source ------------------------------------------------------------------------------------
def gpu_energy_j(
    t: list[float], power: list[float], counter_mj: list[float]
) -> tuple[float | None, EnergyMethod | None]:
    """Energy of one GPU: the NVML counter's difference where usable, else ∫ power dt (module docstring)."""
    if len(counter_mj) >= 2 and counter_mj[-1] >= counter_mj[0]:
        return (counter_mj[-1] - counter_mj[0]) / 1000, "nvml_energy_counter"
    if len(power) >= 2:
        return trapezoid(t, power), "power_integral"
    return None, None


def summarize_gpu(trace: TelemetryTrace, index: int) -> GpuSummary:
    s = trace.samples
    tp, power = _series(s, _gpu_field(index, "power_w"))
    _, counter = _series(s, _gpu_field(index, "energy_mj"))
    # the counter only counts where it spans the window: first and last sample both have it
    first, last = _gpu(s[0], index), _gpu(s[-1], index)
    if first is None or last is None or first.energy_mj is None or last.energy_mj is None:
        counter = []
    energy, method = gpu_energy_j(tp, power, counter)
    tu, util = _series(s, _gpu_field(index, "utilization_pct"))
    tm, mem = _series(s, _gpu_field(index, "memory_used_mib"))
    _, temp = _series(s, _gpu_field(index, "temperature_c"))
    tc, clock = _series(s, _gpu_field(index, "sm_clock_mhz"))
    return GpuSummary(
        index=index,
        name=trace.gpu_names.get(index),
        mean_power_w=time_mean(tp, power),
        peak_power_w=_peak(power),
        energy_j=energy,
        energy_method=method,
        mean_utilization_pct=time_mean(tu, util),
        peak_utilization_pct=_peak(util),
        mean_memory_used_mib=time_mean(tm, mem),
        peak_memory_used_mib=_peak(mem),
        memory_total_mib=trace.gpu_memory_total_mib.get(index),
        peak_temperature_c=_peak(temp),
        mean_sm_clock_mhz=time_mean(tc, clock),
    )


def summarize_process(trace: TelemetryTrace) -> ProcessSummary | None:
    if trace.pid is None:
        return None
    readings = [s for s in trace.samples if s.process is not None]
    tc, cpu = _series(readings, lambda s: s.process.cpu_pct if s.process else None)
    _, rss = _series(readings, lambda s: s.process.rss_mib if s.process else None)
    counts = [s.process.processes for s in readings if s.process]
    # each cpu_pct is the mean over the interval that ends at its sample: weight it by that interval
    weighted = None
    if cpu:
        spans = [b - a for a, b in zip([trace.samples[0].t, *tc[:-1]], tc, strict=True)]
        total = sum(spans)
        weighted = (
            sum(c * w for c, w in zip(cpu, spans, strict=True)) / total if total > 0 else sum(cpu) / len(cpu)
        )
    return ProcessSummary(
        pid=trace.pid,
        mean_cpu_pct=weighted,
        peak_cpu_pct=_peak(cpu),
        peak_rss_mib=_peak(rss),
        peak_processes=max(counts) if counts else None,
        note=trace.process_note,
    )


def power_series(
    trace: TelemetryTrace, which: Literal["total", "gpu", "cpu_package"] = "total"
) -> list[tuple[float, float]]:
    """(seconds since the first sample, watts) at each sample: GPU sum, CPU package, or both added.

    CPU package power at sample i is (E_i − E_{i−1}) / (t_i − t_{i−1}), so it starts at the second
    sample; "total" exists only at samples that have every measured part.
    """
    s = trace.samples
    if not s:
        return []
    t0 = s[0].t
    indices = sorted(trace.gpu_names) or sorted({g.index for x in s for g in x.gpus})
    gpu_total = _gpu_total(indices, "power_w") if indices else None
    cpu: dict[int, float] = {}
    for i in range(1, len(s)):
        a, b = s[i - 1], s[i]
        if a.cpu_energy_j is not None and b.cpu_energy_j is not None and b.t > a.t:
            cpu[i] = (b.cpu_energy_j - a.cpu_energy_j) / (b.t - a.t)
    has_gpu = gpu_total is not None and any(gpu_total(x) is not None for x in s)
    has_cpu = bool(cpu)
    out: list[tuple[float, float]] = []
    for i, x in enumerate(s):
        g = gpu_total(x) if gpu_total is not None else None
        c = cpu.get(i)
        if which == "gpu":
            v = g
        elif which == "cpu_package":
            v = c
        else:
            parts = ([g] if has_gpu else []) + ([c] if has_cpu else [])
            v = None if not parts or any(p is None for p in parts) else sum(p for p in parts if p is not None)
        if v is not None:
            out.append((x.t - t0, v))
    return out


def summarize(trace: TelemetryTrace) -> TelemetrySummary:
    """The result-file summary of one window (formulas in the module docstring)."""
    s = trace.samples
    if not s:
        raise VelobenchError("telemetry trace has no samples (was the sampler started?)")
    indices = sorted(trace.gpu_names) or sorted({g.index for x in s for g in x.gpus})
    gpus = [summarize_gpu(trace, i) for i in indices]
    gpu_energy: float | None = None
    if gpus and all(g.energy_j is not None for g in gpus):
        gpu_energy = sum(g.energy_j for g in gpus if g.energy_j is not None)
    tg, gpu_power = _series(s, _gpu_total(indices, "power_w")) if indices else ([], [])
    _, gpu_mem = _series(s, _gpu_total(indices, "memory_used_mib")) if indices else ([], [])
    te, cpu_e = _series(s, lambda x: x.cpu_energy_j)
    cpu_energy = cpu_e[-1] - cpu_e[0] if len(cpu_e) >= 2 else None
    cpu_span = te[-1] - te[0] if len(te) >= 2 else 0.0
    duration = trace.duration_s
    scope: EnergyScope | None
    parts = [e for e in (gpu_energy, cpu_energy) if e is not None]
    if gpu_energy is not None and cpu_energy is not None:
        scope = "gpu+cpu_package"
    elif gpu_energy is not None:
        scope = "gpu"
    elif cpu_energy is not None:
        scope = "cpu_package"
    else:
        scope = None
    energy = sum(parts) if parts else None
    total = [w for _, w in power_series(trace, "total")]
    return TelemetrySummary(
        duration_s=duration,
        samples=len(s),
        hz=trace.hz,
        sampler_cpu_s=trace.sampler_cpu_s,
        mean_power_w=energy / duration if energy is not None and duration > 0 else None,
        peak_power_w=_peak(total),
        energy_j=energy,
        energy_scope=scope,
        gpus=gpus,
        gpu_mean_power_w=time_mean(tg, gpu_power),
        gpu_peak_power_w=_peak(gpu_power),
        gpu_energy_j=gpu_energy,
        gpu_peak_memory_used_mib=_peak(gpu_mem),
        gpu_note=trace.gpu_note if not gpus else None,
        cpu_package_energy_j=cpu_energy,
        cpu_package_mean_power_w=cpu_energy / cpu_span if cpu_energy is not None and cpu_span > 0 else None,
        cpu_energy_note=trace.cpu_energy_note if cpu_energy is None else None,
        process=summarize_process(trace),
        errors=list(trace.errors),
    )


# -- what the lead stores per iteration ------------------------------------------------------------
def energy_per_token(
    summary: TelemetrySummary, tokens: int | None, scope: Literal["total", "gpu", "cpu_package"] = "total"
) -> float | None:
    """Joules per generated token: energy / tokens (`energy_j`, `gpu_energy_j` or `cpu_package_energy_j`).

    `None` where the energy was not measured or no token was generated.
    """
    if tokens is not None and tokens < 0:
        raise VelobenchError(f"token count must be ≥ 0, got {tokens}")
    energy = {
        "total": summary.energy_j,
        "gpu": summary.gpu_energy_j,
        "cpu_package": summary.cpu_package_energy_j,
    }[scope]
    if energy is None or not tokens:
        return None
    return energy / tokens


def iteration_metrics(summary: TelemetrySummary, tokens: int | None) -> dict[str, float | None]:
    """The flat per-iteration numbers the existing statistics summarise per mode (None = not measured).

    Multi-GPU: utilization and SM clock are the mean over GPUs, temperature the hottest GPU,
    power/energy/memory the sum over GPUs.
    """

    def mean_over_gpus(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return sum(known) / len(known) if known else None

    gpus = summary.gpus
    temps = [g.peak_temperature_c for g in gpus if g.peak_temperature_c is not None]
    utils = [g.peak_utilization_pct for g in gpus if g.peak_utilization_pct is not None]
    proc = summary.process
    return {
        "duration_s": summary.duration_s,
        "mean_power_w": summary.mean_power_w,
        "peak_power_w": summary.peak_power_w,
        "energy_j": summary.energy_j,
        "energy_per_token_j": energy_per_token(summary, tokens),
        "gpu_mean_power_w": summary.gpu_mean_power_w,
        "gpu_peak_power_w": summary.gpu_peak_power_w,
        "gpu_energy_j": summary.gpu_energy_j,
        "gpu_energy_per_token_j": energy_per_token(summary, tokens, "gpu"),
        "gpu_mean_utilization_pct": mean_over_gpus([g.mean_utilization_pct for g in gpus]),
        "gpu_peak_utilization_pct": max(utils) if utils else None,
        "gpu_peak_memory_used_mib": summary.gpu_peak_memory_used_mib,
        "gpu_peak_temperature_c": max(temps) if temps else None,
        "gpu_mean_sm_clock_mhz": mean_over_gpus([g.mean_sm_clock_mhz for g in gpus]),
        "cpu_package_energy_j": summary.cpu_package_energy_j,
        "cpu_package_mean_power_w": summary.cpu_package_mean_power_w,
        "cpu_package_energy_per_token_j": energy_per_token(summary, tokens, "cpu_package"),
        "process_mean_cpu_pct": proc.mean_cpu_pct if proc else None,
        "process_peak_cpu_pct": proc.peak_cpu_pct if proc else None,
        "process_peak_rss_mib": proc.peak_rss_mib if proc else None,
        "sampler_cpu_pct": 100 * summary.sampler_cpu_s / summary.duration_s
        if summary.duration_s > 0
        else None,
    }


def downsample(points: Sequence[tuple[float, float]], max_points: int = 300) -> list[tuple[float, float]]:
    """At most `max_points` (t, w) pairs for a plot: consecutive runs of ⌈n / max_points⌉ points
    replaced by their mean t and mean w (the first and last buckets keep the window's ends close)."""
    if max_points < 1:
        raise VelobenchError(f"max_points must be ≥ 1, got {max_points}")
    n = len(points)
    if n <= max_points:
        return list(points)
    size = -(-n // max_points)
    out = []
    for i in range(0, n, size):
        chunk = points[i : i + size]
        out.append((sum(p[0] for p in chunk) / len(chunk), sum(p[1] for p in chunk) / len(chunk)))
    return out


def power_over_time(
    trace: TelemetryTrace, which: Literal["total", "gpu", "cpu_package"] = "total", max_points: int = 300
) -> list[tuple[float, float]]:
    """(seconds, watts) pairs for the HTML "power over time" plot: `power_series`, then `downsample`."""
    return downsample(power_series(trace, which), max_points)
