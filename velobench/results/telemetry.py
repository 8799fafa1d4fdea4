"""Telemetry summaries as stored per iteration (computed by `telemetry.summary.summarize`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EnergyScope = Literal["gpu+cpu_package", "gpu", "cpu_package"]


EnergyMethod = Literal["nvml_energy_counter", "power_integral"]


class GpuSummary(BaseModel):
    """One GPU over one window."""

    model_config = ConfigDict(extra="forbid")

    index: int
    name: str | None = None
    mean_power_w: float | None = None
    peak_power_w: float | None = None
    energy_j: float | None = None
    energy_method: EnergyMethod | None = None
    mean_utilization_pct: float | None = None
    peak_utilization_pct: float | None = None
    mean_memory_used_mib: float | None = None
    peak_memory_used_mib: float | None = None
    memory_total_mib: float | None = None
    peak_temperature_c: float | None = None
    mean_sm_clock_mhz: float | None = None


class ProcessSummary(BaseModel):
    """The engine's process tree (root pid and descendants) over one window; CPU % where 100 = one core."""

    model_config = ConfigDict(extra="forbid")

    pid: int
    mean_cpu_pct: float | None = None
    peak_cpu_pct: float | None = None
    peak_rss_mib: float | None = None
    peak_processes: int | None = None
    note: str | None = None


class TelemetrySummary(BaseModel):
    """What one measured window used: per GPU, all GPUs, the CPU packages, the engine's processes."""

    model_config = ConfigDict(extra="forbid")

    duration_s: float
    samples: int
    hz: float
    sampler_cpu_s: float
    mean_power_w: float | None = None
    peak_power_w: float | None = None
    energy_j: float | None = None
    energy_scope: EnergyScope | None = None
    gpus: list[GpuSummary] = []
    gpu_mean_power_w: float | None = None
    gpu_peak_power_w: float | None = None
    gpu_energy_j: float | None = None
    gpu_peak_memory_used_mib: float | None = None
    gpu_note: str | None = None
    cpu_package_energy_j: float | None = None
    cpu_package_mean_power_w: float | None = None
    cpu_energy_note: str | None = None
    process: ProcessSummary | None = None
    errors: list[str] = []


MIN_WINDOW_S = 0.5  # the shortest window whose other-CPU share is judged (CPU times tick in 10 ms)


class Interference(BaseModel):
    """Other processes' CPU over one measured window: everything on the machine but velobench and
    the processes it started (its engine's tree), CPU % where 100 = one core busy."""

    model_config = ConfigDict(extra="forbid")

    duration_s: float
    other_cpu_pct: float = Field(description="Σ other processes' CPU time / window, in % of one core")
    busiest: str | None = Field(default=None, description="the other process that used the most CPU")
    busiest_pid: int | None = None
    busiest_cpu_pct: float | None = None
    top: list[tuple[str, int, float]] = Field(
        default_factory=list, description="the busiest other processes, up to 3: (name, pid, CPU %)"
    )
