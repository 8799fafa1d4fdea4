"""Losslessness: does the candidate mode keep the target's outputs (temperature 0) and its output
distribution (temperature > 0)?

Temperature 0 (`losslessness`). Each prompt's first baseline and candidate outputs are
compared token by token (the text where the engine gives no ids). Where they differ, the
target's own distribution at the first differing position (`DivergenceProbe`: the vanilla
server re-asked with the prompt and the shared prefix) ranks both tokens, and the divergence is

    near-tie   gap = log p(top) − log p(candidate's token) ≤ NEAR_TIE_NATS: the target's two best
               candidates are within a hair (the floating-point order of a batched verification
               picks the other one; expected, not a bug)
    decisive   gap > NEAR_TIE_NATS: the candidate emitted a token the target ranks clearly lower
               (a bug, or a setting that is lossy by design, see `lossy_settings`)

NEAR_TIE_NATS = 0.6: measured, not stated. Batched verification (the target evaluating k+1
tokens in one batch) runs other kernels than single-token decoding, so the gap between the
target's two best candidates moves between the two. Measured on this 2-core CPU machine
(llama.cpp c2252870632fa4bc llama-server, -t 1, load average 3.0/1.9/1.0, every 8th builtin
prompt, 32 tokens at temperature 0; each position's top two from single-token decode against
one batched prompt evaluation of prompt + prefix, `gap_shifts`, `margin_from_shifts`):
SmolLM2-135M Q4_1, 118 positions (of 128; at 10 the batched top two were another pair):
|shift| median 0.048, p90 0.195, p99 0.571, max 0.585 nats; 2 top-1 flips, at single-decode
gaps 0.087 and 0.154 (tests/fixtures/lossless/gap-noise-smollm2.json). Gemma-3-270M
Q4_K_M (every 20th prompt, 24 tokens, load 3.1/2.2/1.2), 111 positions (of 120): median 0.101,
p90 0.228, p99 0.328, max 0.360; 2 flips, at gaps 0.026 and 0.073
(tests/fixtures/lossless/gap-noise-gemma3.json). Qwen2.5-Coder-0.5B Q4_K_M (every 28th prompt,
16 tokens, load 3.5/2.5/1.4), 49 positions: median 0.039, p90 0.132, p99 0.183, max 0.207, no flip.
The earlier stated 0.25 (e^0.25 = 1.28) sat below SmolLM2's p99, so batching noise could be
called "decisive"; 0.6 sits above the largest shift measured (e^0.6 = 1.82: the two
probabilities within a factor 1.8). The real divergence in the fixture
tests/fixtures/lossless/smollm2-self-t0-run.json (the target ranks "This" 10.5% and "The"
9.1%, the speculative arm emitted "The") is a gap of 0.14 nats.

A candidate token missing from the listed top candidates has log p ≤ the last listed one, so
its gap is at least the gap to the last listed one. Without probabilities (the cli tools print none, a server
that gives no token ids) a divergence is `unclassified`, and the note says why.

Temperature > 0 (`sampled_test`): the two-sample test of `analysis.twosample` at every token
position of every prompt, Holm-corrected, with its detectable difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

from velobench.analysis import twosample
from velobench.results.config import RunConfig
from velobench.results.lossless import PositionTest, Sample, SampledTest
from velobench.results.schema import (
    DivergenceProbe,
    Losslessness,
    ModeResult,
    PromptMatch,
    TokenProb,
)

NEAR_TIE_NATS = 0.6

# One position's two best candidates, (token id, log p) in rank order: single-token decode, batched.
GapPair: TypeAlias = tuple[Sequence[tuple[int, float]], Sequence[tuple[int, float]]]

# Settings velobench knows change the output distribution: flag (in -x) → why. llama.cpp's
# speculative tools and server accept a draft token only where the target samples that same
# token, so no llama.cpp setting is listed: --draft-p-min and --spec-draft-n-min change how
# far the draft runs, never which token is kept.
LOSSY_FLAGS: dict[str, str] = {
    "--spec-decoding-acceptance-method": "vLLM's typical acceptance sampler (accepts draft tokens the target finds "
    "plausible, not the target's own distribution)",
    "--typical-acceptance-sampler-posterior-threshold": "vLLM's typical acceptance threshold",
    "--typical-acceptance-sampler-posterior-alpha": "vLLM's typical acceptance alpha",
}
LOSSY_SPEC_CONFIG_KEYS = ("acceptance_method", "posterior_threshold", "posterior_alpha")

NO_PROBABILITIES = {
    "char": "compared by text: the engine gave no token ids (llama.cpp's cli tools print neither ids nor "
    "probabilities), so divergences are not classified",
    "token": "no probabilities were read at the divergences (the engine cannot give them, or the probe failed)",
}


def first_difference(a: Sequence[object], b: Sequence[object]) -> int | None:
    """Index of the first position where two sequences differ (None if identical)."""
    for k, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return k
    return None if len(a) == len(b) else min(len(a), len(b))


def lossy_settings(cfg: RunConfig) -> list[str]:
    """The settings of `cfg` velobench knows are lossy by design, each as `flag value: why`
    (`-x --flag=value` or `-x "--flag value"`; rejection sampling is the lossless choice)."""
    out = []
    args = cfg.extra_args
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if flag in LOSSY_FLAGS:
            value = value if eq else (args[i + 1] if i + 1 < len(args) else "")
            if "rejection" not in value:
                out.append(f"{flag} {value}: {LOSSY_FLAGS[flag]}".replace("  ", " "))
        elif any(k in arg for k in LOSSY_SPEC_CONFIG_KEYS) and "rejection_sampler" not in arg:
            out.append(f"{arg}: a relaxed acceptance in vLLM's speculative config")
    return list(dict.fromkeys(out))


def gap_shifts(rows: Sequence[GapPair]) -> list[float]:
    """|shift| of the target's top-two gap between single-token decode and batched evaluation.

    Each row gives, at one position, the two best (token id, log p) of single-token decode
    (`single`, in rank order) and of a batched evaluation of the same prefix (`batched`). With
    a, b the single-token top two,

        g_single  = log p_single(a) − log p_single(b)
        g_batched = log p_batched(a) − log p_batched(b)
        shift     = |g_single − g_batched|

    a batched top-1 that is b (a flip) makes g_batched negative. A row is skipped where either
    side lists fewer than two candidates or the batched pair is not {a, b} (its log p(a) or
    log p(b) is not known).
    """
    out: list[float] = []
    for single, batched in rows:
        if len(single) < 2 or len(batched) < 2:
            continue
        (a, la), (b, lb) = single[0], single[1]
        got = dict(batched[:2])
        if set(got) != {a, b}:
            continue
        out.append(abs((la - lb) - (got[a] - got[b])))
    return out


def margin_from_shifts(shifts: Sequence[float], quantile: float = 0.99) -> float:
    """The near-tie margin: the `quantile` of the |shift|s (numpy's default linear interpolation,
    Hyndman-Fan type 7: the value at rank h = (n − 1)·q between the sorted shifts x₍⌊h⌋₎ and
    x₍⌈h⌉₎). It rests on n = len(shifts) positions; with n·(1 − q) < 1 it is the largest shift."""
    if not shifts:
        raise ValueError("no gap shifts to take a quantile of")
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile must be in (0, 1], got {quantile!r}")
    xs = sorted(shifts)
    h = (len(xs) - 1) * quantile
    lo = int(h)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])


def classify(probe: DivergenceProbe, margin: float = NEAR_TIE_NATS) -> PromptMatch:
    """The divergence of one probe: the candidate's token ranked by the target (see the module)."""
    by_id = {t.id: t for t in probe.top}
    top = probe.top[0] if probe.top else None
    cand = by_id.get(probe.candidate_token)
    base = by_id.get(probe.baseline_token)
    if top is None:
        return PromptMatch(
            prompt_id=probe.prompt_id,
            identical=False,
            first_difference=probe.position,
            unit="token",
            divergence="unclassified",
        )
    if cand is None:  # not listed: at most as likely as the last listed candidate
        floor = probe.top[-1].logprob
        gap = top.logprob - floor
        cand_shown = TokenProb(id=probe.candidate_token, text="", logprob=floor)
    else:
        gap = top.logprob - cand.logprob
        cand_shown = cand
    return PromptMatch(
        prompt_id=probe.prompt_id,
        identical=False,
        first_difference=probe.position,
        unit="token",
        divergence="near-tie" if gap <= margin else "decisive",
        baseline_token=base,
        candidate_token=cand_shown,
        gap_nats=gap,
        top=probe.top,
    )


def losslessness(
    baseline: ModeResult,
    candidate: ModeResult,
    probes: Sequence[DivergenceProbe] = (),
    cfg: RunConfig | None = None,
) -> Losslessness | None:
    """Compare each prompt's first baseline and candidate output; classify every divergence
    that has a probe (`probes`, for this candidate) as near-tie or decisive.

    Token ids are compared where the engine returns them (server), else the text. Both modes
    generate the same number of tokens except the cli speculative tools, which overshoot
    `-n`; their output is compared up to the baseline's length.
    """
    first_base = {i.prompt_id: i for i in reversed(baseline.iterations)}
    first_cand = {i.prompt_id: i for i in reversed(candidate.iterations)}
    found = {(p.prompt_id, p.position): p for p in probes if p.candidate == candidate.mode}
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
        probe = found.get((pid, diff)) if diff is not None and unit == "token" else None
        if probe is not None:
            matches.append(classify(probe))
        else:
            matches.append(
                PromptMatch(
                    prompt_id=pid,
                    identical=diff is None,
                    first_difference=diff,
                    unit=unit,
                    divergence=None if diff is None else "unclassified",
                )
            )
    if not matches:
        return None
    same = sum(m.identical for m in matches)
    unclassified = [m for m in matches if m.divergence == "unclassified"]
    return Losslessness(
        compared=len(matches),
        identical=same,
        match_rate=same / len(matches),
        prompts=matches,
        near_ties=sum(m.divergence == "near-tie" for m in matches),
        decisive=sum(m.divergence == "decisive" for m in matches),
        unclassified=len(unclassified),
        margin_nats=NEAR_TIE_NATS,
        lossy=lossy_settings(cfg) if cfg is not None else [],
        note=NO_PROBABILITIES[unclassified[0].unit] if unclassified else None,
    )


def outcomes(sample: Sample, length: int) -> tuple[list[object], str]:
    """A sample's first `length` outcomes: its token ids, else its text's characters."""
    if sample.tokens is not None:
        return list(sample.tokens[:length]), "token"
    return list(sample.text[:length]), "char"


def sampled_test(
    baseline: Sequence[Sample],
    candidate: Sequence[Sample],
    *,
    positions: int,
    alpha: float = 0.05,
    detect: float = 0.1,
    prompt_order: Sequence[str] | None = None,
    seed: int = 0,
) -> SampledTest:
    """The two-sample test of the arms' outputs: at each prompt's positions 0..positions−1 the
    G-test (asymptotic, or Monte-Carlo permutation where counts are small), Holm over all of
    them; the detectable TV of each at Bonferroni's level α/m (`analysis.twosample`)."""
    by_prompt_a: dict[str, list[Sample]] = {}
    by_prompt_b: dict[str, list[Sample]] = {}
    for s in baseline:
        by_prompt_a.setdefault(s.prompt_id, []).append(s)
    for s in candidate:
        by_prompt_b.setdefault(s.prompt_id, []).append(s)
    prompts = [p for p in (prompt_order or sorted(by_prompt_a)) if p in by_prompt_a and p in by_prompt_b]
    m = len(prompts) * positions
    shuffles = twosample.permutations_for(m, alpha)
    per_test_alpha = alpha / max(m, 1)
    raw: list[tuple[str, int, str, list[object], list[object], twosample.TableTest]] = []
    for pi, pid in enumerate(prompts):
        seq_a = [outcomes(s, positions) for s in by_prompt_a[pid]]
        seq_b = [outcomes(s, positions) for s in by_prompt_b[pid]]
        unit = seq_a[0][1] if seq_a else "token"
        for t in range(positions):
            xa = [o[t] for o, _ in seq_a if len(o) > t]
            xb = [o[t] for o, _ in seq_b if len(o) > t]
            res = twosample.g_test(xa, xb, permutations=shuffles, seed=seed + pi * 1000 + t)
            raw.append((pid, t, unit, xa, xb, res))
    adjusted = twosample.holm([r[5].p_value for r in raw])
    tests = [
        PositionTest(
            prompt_id=pid,
            position=t,
            unit="char" if unit == "char" else "token",
            n_baseline=len(xa),
            n_candidate=len(xb),
            categories=res.categories,
            statistic=res.statistic,
            p_value=res.p_value,
            method=res.method,
            p_holm=adj,
            observed_tv=twosample.total_variation(xa, xb),
            detectable_tv=twosample.detectable_tv(
                len(xa), len(xb), max(res.categories - 1, 1), per_test_alpha
            ),
        )
        for (pid, t, unit, xa, xb, res), adj in zip(raw, adjusted, strict=True)
    ]
    worst = min(tests, key=lambda x: (x.p_holm, x.p_value)) if tests else None
    first = [x for x in tests if x.position == 0]
    n_a = min((len(by_prompt_a[p]) for p in prompts), default=0)
    n_b = min((len(by_prompt_b[p]) for p in prompts), default=0)
    df_first = max((x.categories - 1 for x in first), default=1)
    return SampledTest(
        method=(
            "G-test of homogeneity per prompt and token position (asymptotic chi-square where every "
            f"expected count >= {twosample.COCHRAN_MIN_EXPECTED:g}, else Monte-Carlo permutation p with "
            f"{shuffles} shuffles), Holm-corrected over {m} tests"
        ),
        alpha=alpha,
        tests=tests,
        rejected=any(x.p_holm <= alpha for x in tests),
        smallest_p_holm=worst.p_holm if worst else None,
        worst=worst,
        n_baseline=n_a,
        n_candidate=n_b,
        detectable_tv_first=_worst_tv(first),
        detectable_tv_any=_worst_tv(tests),
        detect=detect,
        samples_needed=twosample.samples_needed(detect, max(df_first, 1), per_test_alpha) if tests else None,
    )


def _worst_tv(tests: Sequence[PositionTest]) -> float | None:
    """The largest detectable TV among `tests` (None where any cannot detect even TV 1)."""
    if not tests or any(x.detectable_tv is None for x in tests):
        return None
    return max(x.detectable_tv for x in tests if x.detectable_tv is not None)
