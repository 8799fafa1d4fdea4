"""What machine a result was measured on: CPU, memory, OS, Python, GPUs (via NVML)."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import psutil
from pydantic import BaseModel, ConfigDict


class Gpu(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int
    name: str
    memory_total_mib: int
    driver: str | None = None


class Environment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hostname: str
    os: str
    python: str
    cpu_model: str
    cpu_cores_physical: int | None
    cpu_cores_logical: int | None
    ram_total_mib: int
    gpus: list[Gpu] = []
    gpu_note: str | None = None


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def gpus() -> tuple[list[Gpu], str | None]:
    """NVIDIA GPUs through NVML (nvidia-ml-py), and a note when there are none to read."""
    try:
        import pynvml
    except ImportError:
        return [], "nvidia-ml-py not installed"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return [], f"NVML unavailable: {exc}"
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        found = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            found.append(
                Gpu(
                    index=i,
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    memory_total_mib=int(mem.total) // (1 << 20),
                    driver=driver.decode() if isinstance(driver, bytes) else str(driver),
                )
            )
        return found, None
    finally:
        pynvml.nvmlShutdown()


def capture() -> Environment:
    found, note = gpus()
    return Environment(
        hostname=platform.node(),
        os=f"{platform.system()} {platform.release()} ({platform.machine()})",
        python=sys.version.split()[0],
        cpu_model=cpu_model(),
        cpu_cores_physical=psutil.cpu_count(logical=False),
        cpu_cores_logical=psutil.cpu_count(logical=True),
        ram_total_mib=psutil.virtual_memory().total // (1 << 20),
        gpus=found,
        gpu_note=note,
    )
