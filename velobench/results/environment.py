"""The machine a result was measured on (captured by `telemetry.environment.capture`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Gpu(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int
    name: str
    memory_total_mib: int
    driver: str | None = None
    cuda_driver_version: str | None = None
    power_limit_w: float | None = None


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
    cpu_governor: str | None = None
