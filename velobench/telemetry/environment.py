"""What machine a result was measured on: CPU, memory, OS, Python, GPUs (via NVML)."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import psutil

from velobench.results.environment import Environment, Gpu


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
    """NVIDIA GPUs through NVML (nvidia-ml-py, via velobench.telemetry.nvml), and a note when none can be read."""
    from velobench.telemetry.nvml import gpu_environment

    env = gpu_environment()
    found = [
        Gpu(
            index=g.index,
            name=g.name,
            memory_total_mib=g.memory_total_mib or 0,
            driver=g.driver_version,
            cuda_driver_version=g.cuda_driver_version,
            power_limit_w=g.power_limit_w,
        )
        for g in env.gpus
    ]
    return found, env.note


def capture() -> Environment:
    from velobench.telemetry.nvml import cpu_governor

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
        cpu_governor=cpu_governor(),
    )
