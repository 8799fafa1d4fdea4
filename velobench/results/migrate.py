"""Older result files, brought to the current schema as plain dicts before validation.

One function per version step (`vN → vN+1`), applied in order; each changes only what the
change log in `results.schema` says changed at that version.
"""

from __future__ import annotations

from typing import Any

Raw = dict[str, Any]


def v1_to_v2(raw: Raw) -> Raw:
    """Fixed vanilla/speculative fields → named modes and one declared comparison."""
    out = {k: v for k, v in raw.items() if k not in _V1_ONLY}
    modes: Raw = {}
    for name in ("vanilla", "speculative"):
        mode = raw.get(name)
        if not mode:
            continue
        mode = dict(mode)
        session = {
            "command": mode.pop("server_command", None),
            "log": mode.pop("server_log", None),
            "ready_s": mode.pop("server_ready_s", None),
        }
        if any(v is not None for v in session.values()):
            mode["session"] = session
        if name == "vanilla" and raw.get("vanilla_from"):
            mode["source"] = raw["vanilla_from"]
        modes[name] = mode
    out["modes"] = modes
    out["comparisons"] = []
    if "vanilla" in modes and "speculative" in modes:
        categories = [
            {
                **{k: v for k, v in c.items() if not k.endswith("_tokens_per_second")},
                "baseline_tokens_per_second": c.get("vanilla_tokens_per_second"),
                "candidate_tokens_per_second": c.get("speculative_tokens_per_second"),
            }
            for c in raw.get("categories") or []
        ]
        out["comparisons"] = [
            {
                "baseline": "vanilla",
                "candidate": "speculative",
                "speedup": raw.get("speedup_detail"),
                "categories": categories,
                "lossless": raw.get("lossless"),
            }
        ]
    out["schema_version"] = 2
    return out


_V1_ONLY = {
    "vanilla",
    "speculative",
    "vanilla_from",
    "speedup",
    "speedup_stddev",
    "speedup_detail",
    "categories",
    "lossless",
}


def v2_to_v3(raw: Raw) -> Raw:
    """Nothing changed for `velobench run` results: version 3 added the load kind (results/load.py)."""
    return {**raw, "schema_version": 3}


_STEPS = {1: v1_to_v2, 2: v2_to_v3}


def migrate(raw: Raw) -> Raw:
    """Apply every step from the file's version up to the current one."""
    version = raw.get("schema_version", 1)
    while version in _STEPS:
        raw = _STEPS[version](raw)
        version = raw["schema_version"]
    return raw
