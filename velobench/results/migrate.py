"""Older result files of every kind, brought to their kind's current schema as plain dicts.

Each kind (`run`, `load`, `think`, `matrix`, `lossless`, `advise`) counts its own versions (change
logs: `results.schema`, `results.load`, `results.think`, `results.matrix`, `results.advise`) and has one function per version step
(`vN → vN+1`), applied in order by `migrate`; each changes only what its kind's change log says
changed at that version. Think results start at 2 and load results at 3, the number every kind
shared when each was born, so every file written then keeps its number.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from velobench.results.advise import ADVISE_SCHEMA_VERSION
from velobench.results.load import LOAD_SCHEMA_VERSION
from velobench.results.lossless import LOSSLESS_SCHEMA_VERSION
from velobench.results.matrix import MATRIX_SCHEMA_VERSION
from velobench.results.schema import RUN_SCHEMA_VERSION
from velobench.results.think import THINK_SCHEMA_VERSION

Raw = dict[str, Any]
Kind = Literal["run", "load", "think", "matrix", "lossless", "advise"]
Step = Callable[[Raw], Raw]


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


def _message_kept(w: Raw) -> Raw:
    """A `{code, message}` warning of an older file → `{code, params: {}, message}`: its text stays
    the one written then (an old text cannot be parsed back into parameters reliably)."""
    return {"code": w.get("code"), "params": {}, "message": w.get("message")}


def run_v3_to_v4(raw: Raw) -> Raw:
    """Warnings are values: each keeps its text as `message`, with no parameters."""
    return {**raw, "warnings": [_message_kept(w) for w in raw.get("warnings") or []], "schema_version": 4}


def run_v4_to_v5(raw: Raw) -> Raw:
    """Paired analysis: a version-4 comparison's verdict used the ratio of means; it has no pairs
    (its categories none either). Its numbers stay as written, p = 0 or 1 and [R, R] of constant
    samples included: a report renders what the run concluded then."""
    comparisons = [
        {**c, "estimator": "ratio-of-means" if c.get("speedup") else None}
        for c in raw.get("comparisons") or []
    ]
    return {**raw, "comparisons": comparisons, "schema_version": 5}


# Load v3 wrote a level comparison's warnings as plain strings; each began with one of these.
_LEVEL_TEXTS = {"throughput batches (": "short-batches", "some requests failed": "requests-failed"}


def run_v5_to_v6(raw: Raw) -> Raw:
    """Every run before version 6 was blocked (config and result say so); no schedule positions,
    start times or interference: null."""
    config = {**raw.get("config", {}), "schedule": "blocked"}
    return {**raw, "config": config, "schedule": "blocked", "schema_version": 6}


def run_v6_to_v7(raw: Raw) -> Raw:
    """Version 7 added the llama-bench reference, which no older run measured: nothing to change."""
    return {**raw, "schema_version": 7}


def run_v7_to_v8(raw: Raw) -> Raw:
    """Version 8 added iterations measured again (`redone`), which no older run did: nothing to change."""
    return {**raw, "schema_version": 8}


def _level_warning(text: str) -> Raw:
    """A version-3 level warning string → `{code, params: {}, message}` (its code read off its text)."""
    code = next((c for start, c in _LEVEL_TEXTS.items() if start in text), None)
    if code is None:
        raise ValueError(f"a level warning velobench never wrote: {text!r}")
    return {"code": code, "params": {}, "message": text}


def load_v3_to_v4(raw: Raw) -> Raw:
    """Warnings are values: the result's warnings keep their text as `message`; a level
    comparison's warning strings become `LevelWarning`s with their code and that text."""
    comparisons = [
        {**c, "warnings": [_level_warning(t) for t in c.get("warnings") or []]}
        for c in raw.get("comparisons") or []
    ]
    return {
        **raw,
        "warnings": [_message_kept(w) for w in raw.get("warnings") or []],
        "comparisons": comparisons,
        "schema_version": 4,
    }


def load_v4_to_v5(raw: Raw) -> Raw:
    """The generator's lag was not measured before version 5: levels keep no `lag` (null) and no
    warnings of their own, records no `ready_s` (each field's default); only the number changes."""
    return {**raw, "schema_version": 5}


def load_v5_to_v6(raw: Raw) -> Raw:
    """Every load run before version 6 was blocked (config and result say so); its levels have no
    schedule position or start offset (null: not recorded)."""
    config = {**raw.get("config", {}), "schedule": "blocked"}
    return {**raw, "config": config, "schedule": "blocked", "schema_version": 6}


def think_v2_to_v3(raw: Raw) -> Raw:
    """Nothing changed for think results: the number every kind shared moved to 3 for the load kind."""
    return {**raw, "schema_version": 3}


def think_v3_to_v4(raw: Raw) -> Raw:
    """Warnings are values: every warning (the result's and the summary's) keeps its text as `message`."""
    out = {**raw, "warnings": [_message_kept(w) for w in raw.get("warnings") or []], "schema_version": 4}
    if isinstance(raw.get("summary"), dict):
        summary = raw["summary"]
        out["summary"] = {**summary, "warnings": [_message_kept(w) for w in summary.get("warnings") or []]}
    return out


def advise_v1_to_v2(raw: Raw) -> Raw:
    """No vanilla arm in the probe, no re-evaluation rows, no server overhead: every field advise 2
    added is optional, so a v1 file only changes its number (its prediction stays what its model
    said, without them)."""
    return {**raw, "schema_version": 2}


def advise_v2_to_v3(raw: Raw) -> Raw:
    """`advise.synthetic_map` is optional (False: the checks at one point, as version 2 ran them):
    only the number changes."""
    return {**raw, "schema_version": 3}


def advise_v3_to_v4(raw: Raw) -> Raw:
    """The same fields; a version-3 `synthetic_map` mapped the lowest concurrency only, which its
    checks' own concurrencies say: only the number changes."""
    return {**raw, "schema_version": 4}


def matrix_v1_to_v2(raw: Raw) -> Raw:
    """Where cells ran: every new field of a cell record is optional, so a v1 summary only changes its number."""
    return {**raw, "schema_version": 2}


@dataclass(frozen=True)
class Lineage:
    """The versions of one kind: the first a file of it can carry, the current one, and the steps."""

    first: int
    current: int
    steps: dict[int, Step]


LINEAGES: dict[Kind, Lineage] = {
    "run": Lineage(
        1,
        RUN_SCHEMA_VERSION,
        {
            1: v1_to_v2,
            2: v2_to_v3,
            3: run_v3_to_v4,
            4: run_v4_to_v5,
            5: run_v5_to_v6,
            6: run_v6_to_v7,
            7: run_v7_to_v8,
        },
    ),
    "load": Lineage(3, LOAD_SCHEMA_VERSION, {3: load_v3_to_v4, 4: load_v4_to_v5, 5: load_v5_to_v6}),
    "think": Lineage(2, THINK_SCHEMA_VERSION, {2: think_v2_to_v3, 3: think_v3_to_v4}),
    "matrix": Lineage(1, MATRIX_SCHEMA_VERSION, {1: matrix_v1_to_v2}),
    "lossless": Lineage(1, LOSSLESS_SCHEMA_VERSION, {}),
    "advise": Lineage(1, ADVISE_SCHEMA_VERSION, {1: advise_v1_to_v2, 2: advise_v2_to_v3, 3: advise_v3_to_v4}),
}

KIND_NAMES: dict[str, Kind] = {
    "load": "load",
    "think": "think",
    "lossless": "lossless",
    "advise": "advise",
}  # a file's `kind` (absent: run)


def kind_of(raw: Raw) -> Kind:
    """The kind of a result file: its `kind` (absent for `velobench run` results)."""
    name = raw.get("kind")
    if name is None:
        return "run"
    if not isinstance(name, str) or name not in KIND_NAMES:
        raise ValueError(
            f"kind {name!r} is not a result kind this velobench reads (run, load, think, lossless, advise)"
        )
    return KIND_NAMES[name]


def migrate(kind: Kind, raw: Raw) -> Raw:
    """Apply every step from the file's version up to its kind's current one; a version the kind
    never had is a `ValueError` of one line."""
    line = LINEAGES[kind]
    version = raw.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or not line.first <= version <= line.current:
        raise ValueError(
            f"schema_version {version!r} is not one this velobench reads for {kind} results "
            f"({line.first} to {line.current})"
        )
    while version in line.steps:
        raw = line.steps[version](raw)
        version = raw["schema_version"]
    return raw
