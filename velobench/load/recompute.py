"""Everything derived in a load result, recomputed from the raw records (pure; no I/O).

    per mode and level   summary (load.analysis.summarize_level) from the level's records and
                         its stored /metrics counters; the generator's send lag from the records
                         (its loop lag and CPU share are stored as measured) and the level's
                         warnings (load.analysis.lag_warnings)
    per mode             the first saturated level (load.analysis.saturation)
    per level            speculative ÷ vanilla (load.analysis.compare_level), at every level both
                         modes finished without interruption
    overall              the crossover (load.analysis.crossover) over those comparisons

`velobench load` calls `recompute` after every level; a test (or a user) can call it on the
records read back from the JSONL and must get the same numbers.
"""

from __future__ import annotations

from velobench.errors import VelobenchError
from velobench.load.analysis import (
    compare_level,
    crossover,
    lag_stats,
    lag_warnings,
    saturation,
    summarize_level,
)
from velobench.results.load import LoadReport, Records

BASELINE, CANDIDATE = "vanilla", "speculative"


def recompute(report: LoadReport, records: Records) -> LoadReport:
    """Recompute every summary, saturation, comparison and the crossover of `report` in place."""
    unit = report.load.unit
    for mode in report.modes.values():
        for lvl in mode.levels:
            recs = records.get((mode.mode, lvl.level), [])
            try:
                lvl.summary = summarize_level(
                    recs,
                    profile=report.load.profile,
                    level=lvl.level,
                    mode=mode.mode,
                    slo=report.load.slo,
                    spec=lvl.counters(),
                )
            except VelobenchError:
                lvl.summary = None  # nothing finished in the measure window (e.g. interrupted at once)
            if lvl.lag is not None:
                lvl.lag.send_ms = lag_stats([r.send_lag_s() for r in recs])
            lvl.warnings = lag_warnings(mode.mode, lvl.lag)
        done = [lvl.summary for lvl in mode.levels if lvl.summary is not None and not lvl.interrupted]
        mode.saturation = saturation(done, unit=unit)
    report.comparisons = []
    base, cand = report.modes.get(BASELINE), report.modes.get(CANDIDATE)
    if base is not None and cand is not None:
        for lvl in base.levels:
            other = report.level(CANDIDATE, lvl.level)
            if other is None or lvl.interrupted or other.interrupted or not (lvl.summary and other.summary):
                continue
            report.comparisons.append(
                compare_level(
                    records.get((BASELINE, lvl.level), []),
                    records.get((CANDIDATE, lvl.level), []),
                    level=lvl.level,
                )
            )
    report.crossover = crossover(report.comparisons, unit=unit) if report.comparisons else None
    return report
