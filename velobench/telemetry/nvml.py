"""NVIDIA GPUs through NVML (`nvidia-ml-py`, imported as `pynvml`): live readings and what the GPUs are.

`GpuReader` is the small interface the sampler reads GPUs through; `NvmlReader` is the real one
and tests inject a fake. `open_gpu_reader()` never raises: without `nvidia-ml-py`, without the
NVML library (no driver) or without a GPU it returns no reader and a note that says why, and
the GPU fields of a summary are then null with that note.

Every field of a reading may be unsupported on a given GPU (NVML answers NOT_SUPPORTED, e.g.
the total-energy counter before Volta, power on some boards); such a field is `None`, and a
field found unsupported once is not asked for again.

Units as NVML gives them, converted once here: power mW → W, energy mJ (kept in mJ: it is a
cumulative counter since the driver was loaded), memory bytes → MiB, clocks MHz, °C, %.
NVML sees every GPU of the machine whatever `CUDA_VISIBLE_DEVICES` says; pass `indices` to
read only some.

`gpu_environment()` and `cpu_governor()` are for the result's environment block.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True)
class GpuReading:
    """One GPU at one instant; `None` where the GPU does not report that quantity."""

    index: int
    power_w: float | None = None
    energy_mj: float | None = None  # NVML total-energy counter (mJ since driver load), Volta and newer
    utilization_pct: float | None = None
    memory_used_mib: float | None = None
    temperature_c: float | None = None
    sm_clock_mhz: float | None = None


class GpuReader(Protocol):
    """What the sampler needs from a GPU library: how many GPUs, their names, one reading each."""

    def indices(self) -> list[int]: ...

    def name(self, index: int) -> str: ...

    def memory_total_mib(self, index: int) -> float | None: ...

    def read(self, index: int) -> GpuReading: ...

    def close(self) -> None: ...


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlReader:
    """The real `GpuReader` over pynvml; made by `open_gpu_reader()`, which has already run nvmlInit."""

    def __init__(self, pynvml: Any, indices: list[int]) -> None:
        self._nvml = pynvml
        self._indices = indices
        self._handles = {i: pynvml.nvmlDeviceGetHandleByIndex(i) for i in indices}
        self._unsupported: set[tuple[int, str]] = set()
        self._closed = False

    def indices(self) -> list[int]:
        return list(self._indices)

    def name(self, index: int) -> str:
        return _text(self._nvml.nvmlDeviceGetName(self._handles[index]))

    def memory_total_mib(self, index: int) -> float | None:
        return self._field(
            index, "memory_total", lambda h: self._nvml.nvmlDeviceGetMemoryInfo(h).total / 2**20
        )

    def _field(self, index: int, key: str, get: Any) -> float | None:
        """One NVML query; `None` (and never again for this GPU) where NVML says NOT_SUPPORTED."""
        if (index, key) in self._unsupported:
            return None
        try:
            return float(get(self._handles[index]))
        except self._nvml.NVMLError as exc:
            if getattr(exc, "value", None) == self._nvml.NVML_ERROR_NOT_SUPPORTED:
                self._unsupported.add((index, key))
            return None

    def read(self, index: int) -> GpuReading:
        n = self._nvml
        return GpuReading(
            index=index,
            power_w=self._field(index, "power", lambda h: n.nvmlDeviceGetPowerUsage(h) / 1000),
            energy_mj=self._field(index, "energy", n.nvmlDeviceGetTotalEnergyConsumption),
            utilization_pct=self._field(index, "util", lambda h: n.nvmlDeviceGetUtilizationRates(h).gpu),
            memory_used_mib=self._field(index, "mem", lambda h: n.nvmlDeviceGetMemoryInfo(h).used / 2**20),
            temperature_c=self._field(
                index, "temp", lambda h: n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU)
            ),
            sm_clock_mhz=self._field(index, "sm", lambda h: n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM)),
        )

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(self._nvml.NVMLError):
                self._nvml.nvmlShutdown()


def _init_nvml() -> tuple[Any, str | None]:
    """pynvml after a successful nvmlInit, or None and why not."""
    try:
        import pynvml
    except ImportError:
        return None, "nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, _NoPermission, ...
        return None, f"NVML unavailable: {exc}"
    return pynvml, None


def open_gpu_reader(indices: list[int] | None = None) -> tuple[NvmlReader | None, str | None]:
    """The NVML reader for the machine's GPUs (or `indices` of them), or `(None, why not)`. Never raises."""
    pynvml, note = _init_nvml()
    if pynvml is None:
        return None, note
    try:
        count = pynvml.nvmlDeviceGetCount()
        wanted = list(range(count)) if indices is None else [i for i in indices if 0 <= i < count]
        if not wanted:
            pynvml.nvmlShutdown()
            return None, "no NVIDIA GPU found" if count == 0 else f"no GPU among indices {indices}"
        return NvmlReader(pynvml, wanted), None
    except pynvml.NVMLError as exc:
        pynvml.nvmlShutdown()
        return None, f"NVML unavailable: {exc}"


class GpuInfo(BaseModel):
    """One GPU as the environment block records it."""

    model_config = ConfigDict(extra="forbid")

    index: int
    name: str
    memory_total_mib: int | None = None
    power_limit_w: float | None = None
    driver_version: str | None = None
    cuda_driver_version: str | None = None


class GpuEnvironment(BaseModel):
    """The machine's NVIDIA GPUs, or none and a note that says why."""

    model_config = ConfigDict(extra="forbid")

    gpus: list[GpuInfo] = []
    note: str | None = None


def cuda_version_text(version: int) -> str:
    """NVML's integer CUDA driver version as text: 12040 → "12.4" (major = v // 1000, minor = v % 1000 // 10)."""
    return f"{version // 1000}.{version % 1000 // 10}"


def gpu_environment() -> GpuEnvironment:
    """GPU model, memory, enforced power limit, driver and CUDA driver version of each GPU. Never raises."""
    pynvml, note = _init_nvml()
    if pynvml is None:
        return GpuEnvironment(note=note)
    try:

        def optional(call: Any, *args: Any) -> Any:
            try:
                return call(*args)
            except pynvml.NVMLError:
                return None

        driver = optional(pynvml.nvmlSystemGetDriverVersion)
        cuda = optional(pynvml.nvmlSystemGetCudaDriverVersion)
        found = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = optional(pynvml.nvmlDeviceGetMemoryInfo, h)
            limit_mw = optional(pynvml.nvmlDeviceGetEnforcedPowerLimit, h)
            found.append(
                GpuInfo(
                    index=i,
                    name=_text(pynvml.nvmlDeviceGetName(h)),
                    memory_total_mib=None if mem is None else int(mem.total) // 2**20,
                    power_limit_w=None if limit_mw is None else limit_mw / 1000,
                    driver_version=None if driver is None else _text(driver),
                    cuda_driver_version=None if cuda is None else cuda_version_text(int(cuda)),
                )
            )
        return GpuEnvironment(gpus=found, note=None if found else "no NVIDIA GPU found")
    except pynvml.NVMLError as exc:
        return GpuEnvironment(note=f"NVML error: {exc}")
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def cpu_governor(root: Path = Path("/sys/devices/system/cpu")) -> str | None:
    """The cpufreq scaling governor of the CPUs ("performance"), or `None` where none is readable.

    Where CPUs differ, every governor with its CPU count, most common first: "performance×6, powersave×2".
    """
    seen: Counter[str] = Counter()
    for path in sorted(root.glob("cpu[0-9]*/cpufreq/scaling_governor")):
        try:
            seen[path.read_text().strip()] += 1
        except OSError:
            continue
    if not seen:
        return None
    if len(seen) == 1:
        return next(iter(seen))
    return ", ".join(f"{g}×{n}" for g, n in seen.most_common())
