"""Losslessness at temperature 0: does the candidate mode reproduce the baseline's output?"""

from __future__ import annotations

from collections.abc import Sequence

from velobench.results.schema import Losslessness, ModeResult, PromptMatch


def first_difference(a: Sequence[object], b: Sequence[object]) -> int | None:
    """Index of the first position where two sequences differ (None if identical)."""
    for k, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return k
    return None if len(a) == len(b) else min(len(a), len(b))


def losslessness(baseline: ModeResult, candidate: ModeResult) -> Losslessness | None:
    """Compare each prompt's first baseline and candidate output.

    Token ids are compared where the engine returns them (server), else the text. Both modes
    generate the same number of tokens except the cli speculative tools, which overshoot
    `-n`; their output is compared up to the baseline's length.
    """
    first_base = {i.prompt_id: i for i in reversed(baseline.iterations)}
    first_cand = {i.prompt_id: i for i in reversed(candidate.iterations)}
    matches = []
    for pid, v in first_base.items():
        sp = first_cand.get(pid)
        if sp is None or pid is None:
            continue
        a: Sequence[object]
        b: Sequence[object]
        if v.output_tokens is not None and sp.output_tokens is not None:
            a, b, unit = v.output_tokens, sp.output_tokens, "token"
        elif v.output is not None and sp.output is not None:
            a, b, unit = v.output, sp.output, "char"
        else:
            continue
        b = b[: len(a)]
        diff = first_difference(a, b)
        matches.append(PromptMatch(prompt_id=pid, identical=diff is None, first_difference=diff, unit=unit))
    if not matches:
        return None
    same = sum(m.identical for m in matches)
    return Losslessness(
        compared=len(matches), identical=same, match_rate=same / len(matches), prompts=matches
    )
