"""Pure parsers for what inference servers send: Prometheus `/metrics` text and SSE streams.

Shared by the llama-server and vLLM engines: llama.cpp prefixes its metrics `llamacpp:`,
vLLM `vllm:`; the shapes are the same (`name{label="v",...} value`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

_METRIC = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+"
    r"(?P<value>[-+]?(?:nan|NaN|inf|Inf|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?))"
    r"(?:\s+-?\d+)?$"
)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

MetricKey = tuple[str, tuple[tuple[str, str], ...]]


def parse_prometheus(text: str) -> dict[MetricKey, float]:
    """`{(name, ((label, value), ...)): value}` for every sample line; comments skipped.

    Raises ValueError quoting the first line that is neither a comment nor a sample.
    """
    out: dict[MetricKey, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _METRIC.match(line)
        if m is None:
            raise ValueError(f"not a Prometheus sample line: {line!r}")
        labels = tuple(sorted(_LABEL.findall(m.group("labels") or "")))
        out[(m.group("name"), labels)] = float(m.group("value"))
    return out


def metric(samples: Mapping[MetricKey, float], name: str, **labels: str) -> float | None:
    """One sample by name (with any prefix: `llamacpp:x`, `vllm:x` or `x`) and exact labels."""
    want = tuple(sorted(labels.items()))
    for (full, lab), value in samples.items():
        if lab == want and (full == name or full.endswith(":" + name)):
            return value
    return None


def per_position(samples: Mapping[MetricKey, float], name: str) -> list[float]:
    """Values of a counter labelled `position="i"`, as a list indexed by position."""
    found: dict[int, float] = {}
    for (full, lab), value in samples.items():
        if full == name or full.endswith(":" + name):
            d = dict(lab)
            if "position" in d:
                found[int(d["position"])] = value
    return [found.get(i, 0.0) for i in range(max(found) + 1)] if found else []


def delta(after: Mapping[MetricKey, float], before: Mapping[MetricKey, float], name: str) -> float | None:
    """How much counter `name` grew between two scrapes (None if absent after)."""
    a = metric(after, name)
    if a is None:
        return None
    return a - (metric(before, name) or 0.0)


def sse_events(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The JSON payloads of a server-sent-events stream, until `[DONE]` or the end.

    Takes `data: ` lines, skips comments/pings (`:`) and blank lines; a `data: {"error": ...}`
    event raises ValueError with the server's message.
    """
    for line in lines:
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        try:
            event = json.loads(payload)
        except ValueError as exc:
            raise ValueError(f"bad SSE event: {payload[:200]!r}") from exc
        if isinstance(event, dict) and "error" in event:
            err = event["error"]
            msg = err.get("message", err) if isinstance(err, dict) else err
            raise ValueError(f"server error in stream: {msg}")
        yield event
