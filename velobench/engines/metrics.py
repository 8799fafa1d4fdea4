"""Prometheus `/metrics` of inference servers, read with `prometheus_client`'s own text parser.

llama-server prefixes its metrics `llamacpp:`, vLLM `vllm:`. Speculative decoding shows in four
counters both servers name alike (`<prefix>:spec_decode_num_drafts_total`, `..._draft_tokens_total`,
`..._accepted_tokens_total`, `..._accepted_tokens_per_pos_total{position="i"}`); acceptance over a
measured window is the difference of two scrapes, before and after. vLLM labels its counters with
`engine` and `model_name` (one set per engine core); those label sets are summed.

`prometheus_client` reports a counter's `_created` sample (a Unix timestamp) as its own sample:
the keys here carry the full sample name, so `x_created` is never read as the count `x_total`.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

from velobench.results.timing import SpecDecodeDelta

Labels = tuple[tuple[str, str], ...]
SampleKey = tuple[str, Labels]
Samples = dict[SampleKey, float]

PREFIXES = ("llamacpp", "vllm")
_DRAFTS = "spec_decode_num_drafts_total"
_DRAFT_TOKENS = "spec_decode_num_draft_tokens_total"
_ACCEPTED = "spec_decode_num_accepted_tokens_total"
_PER_POS = "spec_decode_num_accepted_tokens_per_pos_total"


def parse(text: str) -> Samples:
    """`{(sample name, sorted labels): value}` for every sample of a Prometheus text exposition.

    Raises ValueError quoting the first line the parser cannot read.
    """
    try:
        return _parse(text)
    except ValueError:
        for line in text.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                try:
                    _parse(line + "\n")
                except ValueError:
                    raise ValueError(f"not a Prometheus sample line: {line.strip()[:200]!r}") from None
        raise


def _parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return out


def _matches(full: str, name: str) -> bool:
    return full == name or full.endswith(":" + name)


def total(samples: Mapping[SampleKey, float], name: str, **labels: str) -> float | None:
    """Sum of sample `name` (exact, or after any `prefix:`) over every label set that has `labels`.

    None where no such sample exists.
    """
    found = [
        value
        for (full, lab), value in samples.items()
        if _matches(full, name) and labels.items() <= dict(lab).items()
    ]
    return sum(found) if found else None


def counter_delta(
    before: Mapping[SampleKey, float], after: Mapping[SampleKey, float], name: str
) -> float | None:
    """How much counter `name` grew between two scrapes: total(after) − total(before).

    None where the counter is absent after; a counter absent before counts as 0 (llama-server
    publishes some counters only once they have moved). Raises ValueError where it shrank (the
    server restarted between the scrapes).
    """
    a = total(after, name)
    if a is None:
        return None
    b = total(before, name) or 0.0
    if a < b:
        raise ValueError(f"counter {name} went from {b:g} to {a:g}: did the server restart?")
    return a - b


def per_position(samples: Mapping[SampleKey, float], name: str) -> list[float]:
    """Counter `name` labelled `position="i"`, summed over other labels, as a list indexed by i."""
    found: dict[int, float] = {}
    for (full, lab), value in samples.items():
        pos = dict(lab).get("position")
        if pos is not None and _matches(full, name):
            found[int(pos)] = found.get(int(pos), 0.0) + value
    return [found.get(i, 0.0) for i in range(max(found) + 1)] if found else []


def spec_decode_delta(
    before: Mapping[SampleKey, float], after: Mapping[SampleKey, float]
) -> SpecDecodeDelta | None:
    """The four speculative-decoding counters' growth between two scrapes, for the first prefix
    (`llamacpp:`, `vllm:`) whose counters the later scrape has; None where it has none (no
    speculation configured, or a server that does not count it).

    accepted_per_position[i] = per_pos{position=i}(after) − per_pos{position=i}(before), summed
    over the other labels.
    """
    for prefix in PREFIXES:
        names = [f"{prefix}:{n}" for n in (_DRAFTS, _DRAFT_TOKENS, _ACCEPTED)]
        if any(total(after, n) is None for n in names):
            continue
        drafts, draft_tokens, accepted = (counter_delta(before, after, n) or 0.0 for n in names)
        pos_after = per_position(after, f"{prefix}:{_PER_POS}")
        pos_before = per_position(before, f"{prefix}:{_PER_POS}")
        pos_before += [0.0] * (len(pos_after) - len(pos_before))
        per_pos = [a - b for a, b in zip(pos_after, pos_before, strict=False)]
        if any(d < 0 for d in per_pos):
            raise ValueError(f"{prefix}:{_PER_POS} shrank between scrapes: did the server restart?")
        return SpecDecodeDelta(
            prefix=prefix,
            drafts=round(drafts),
            draft_tokens=round(draft_tokens),
            accepted_tokens=round(accepted),
            accepted_per_position=[round(d) for d in per_pos],
        )
    return None
