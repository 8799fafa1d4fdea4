"""CPU package energy on Linux from RAPL counters in sysfs (`/sys/class/powercap/intel-rapl:N`).

Each package zone has `energy_uj`, a counter of micro-joules that wraps to 0 after
`max_energy_range_uj`. `RaplReader.read()` returns the joules used by all packages since the
reader was opened, unwrapped: between two reads of one zone,

    delta = now - before                          if now >= before
    delta = now + max_energy_range_uj - before    otherwise (the counter wrapped once)

so reads must come more often than one wrap (a common range, 262143328850 µJ, wraps after about
44 minutes at 100 W); the sampler reads many times a second.

Only package zones (`name` starting with "package") are summed: their sub-zones (core, uncore,
dram) are parts of them or outside them, and a "psys" zone covers the whole platform, package
included. AMD Zen packages appear under the same intel-rapl name on Linux ≥ 5.8. Since the
PLATYPUS fix (CVE-2020-8694) `energy_uj` is readable by root only on most kernels: then, as on
machines without RAPL, `open_rapl()` returns no reader and a note that says why, never an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

POWERCAP = Path("/sys/class/powercap")
_PACKAGE_ZONE = re.compile(r"^intel-rapl:\d+$")


@dataclass
class _Zone:
    name: str
    energy: Path
    max_range_uj: int
    last_uj: int
    total_uj: int = 0


def unwrapped_delta_uj(before: int, now: int, max_range_uj: int) -> int:
    """Energy between two reads of one RAPL counter that wraps at `max_range_uj` (see module docstring)."""
    return now - before if now >= before else now + max_range_uj - before


class RaplReader:
    """Joules used by all CPU packages since opening; made by `open_rapl()`."""

    def __init__(self, zones: list[_Zone]) -> None:
        self._zones = zones

    def zone_names(self) -> list[str]:
        return [z.name for z in self._zones]

    def read(self) -> float:
        """Joules used by all packages since the reader was opened (reads every counter once)."""
        for z in self._zones:
            now = int(z.energy.read_text())
            z.total_uj += unwrapped_delta_uj(z.last_uj, now, z.max_range_uj)
            z.last_uj = now
        return sum(z.total_uj for z in self._zones) / 1e6


def open_rapl(root: Path = POWERCAP) -> tuple[RaplReader | None, str | None]:
    """A reader over the package zones under `root`, or `(None, why not)`. Never raises."""
    if not root.is_dir():
        return None, f"no RAPL ({root} absent)"
    zones: list[_Zone] = []
    denied: list[str] = []
    for d in sorted(root.iterdir()):
        if not _PACKAGE_ZONE.match(d.name):
            continue
        try:
            name = (d / "name").read_text().strip()
        except OSError:
            continue
        if not name.startswith("package"):
            continue
        try:
            max_range = int((d / "max_energy_range_uj").read_text())
            first = int((d / "energy_uj").read_text())
        except PermissionError:
            denied.append(d.name)
            continue
        except (OSError, ValueError):
            continue
        zones.append(
            _Zone(name=f"{d.name} ({name})", energy=d / "energy_uj", max_range_uj=max_range, last_uj=first)
        )
    if zones:
        return RaplReader(zones), None
    if denied:
        return None, f"RAPL energy_uj not readable ({', '.join(denied)}: permission denied, root only)"
    return None, f"no readable RAPL package zone under {root}"
