"""The speedup of speculative decoding over concurrency × draft length, from measured costs (pure).

Per sequence, one speculative step at batch b (b sequences in flight, all speculating) drafts k
tokens and verifies them with one target pass of k+1 tokens:

    E(k)     = 1 + Σ_{i=1..k} a_i                tokens per step per sequence
    T(b, k)  = k · d_draft(b) + V_target(b, k+1) seconds per step
    decode speedup(b, k) = (b · E(k) / T(b, k)) / (b / d_target(b)) = E(k) · d_target(b) / T(b, k)

and, per request of p prompt tokens and N output tokens, the prefill added (`request_speedup`):
the target's prefill in both modes, the draft's too when speculating.

with a_i = P(the first i drafted tokens are all accepted) = (steps whose position i was
accepted) / (steps with a draft), read from the server's per-position counters on a short real
run at the largest k; d(n) one forward pass over n tokens, each with its logits
(llama-batched-bench's T_TG / TG at PP = 1, B = n: each step decodes one token for each of n
sequences), so that a decode step of b sequences is d(b) and a verification of w = k+1 tokens
for each of b sequences, V(b, w) = d(b·w): the same b·w tokens and logits in one batch.

The draft re-evaluates every verification batch. llama-server hands each batch the target
decoded to the draft too (`common_speculative_process`, "for now, always re-evaluate"): after a
verification of k+1 tokens for each of b sequences, the draft runs the same b·(k+1) tokens,
computing the last logits only. So a step costs

    T(b, k) = k · d_draft(b) + V_target(b, k+1) + R_draft(b, k+1)

with R(b, w) = llama-batched-bench's T_PP at PP = w, B = b (the prompt phase: b sequences of w
tokens, each one's last logits). Left out, it made every SmolLM2 prediction 12-27% too high.

In llama-server every forward pass costs o more than llama-batched-bench's (`server_overhead`,
measured from the probe's vanilla requests): d(b) + o, d_draft(b) + o, V + o in the formulas
above. o is taken per pass whatever b is (its per-sequence part, sampling b tokens, is left out).

Assumptions (docs/advise.md): every sequence in flight speculates and the drafts of all
sequences are batched (llama-server drafts all slots in one batch); a_i does not depend on k
(greedy drafting, no early stop: the draft's first i tokens are the same whatever k is); a
request's prefill holds up the batch once, by the target and (speculating) by the draft
(`request_speedup`); verification's attention runs over each sequence's own context, which
d(b·w) (one token per sequence, at depth ≤ TG) leaves out: small for short contexts.

At b = 1 with a_i = α^i the decode speedup is `analysis.ceiling.speedup_ceiling(α, k, c, v(k+1))`, with
c = d_draft(1)/d_target(1) and v = d_target(k+1)/d_target(1): the ceiling velobench computes is
this model's batch-1 case (tests/unit/test_advise_model.py checks it).

The interval: a percentile bootstrap. Each replicate resamples the probe's requests (with
replacement: a_i from the resampled sums) and, per model, its llama-batched-bench repetitions
(each row's time the mean over the resampled repetitions), and recomputes every cell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from velobench.results.advise import (
    Cell,
    CostRow,
    CrossoverPrediction,
    ModelCosts,
    RequestAcceptance,
    ScheduleEntry,
)
from velobench.results.schema import Iteration

Grid = tuple[Sequence[int], Sequence[int]]  # (concurrencies, draft lengths)


def expected_tokens(accept: Sequence[float], k: int) -> float:
    """E(k) = 1 + Σ_{i=1..k} a_i, with a_i = accept[i−1] = P(the first i drafts all accepted).

    With a_i = α^i this is the ceiling's Σ_{j=0..k} α^j. Raises ValueError when k exceeds the
    positions measured, or k < 0.
    """
    if k < 0:
        raise ValueError(f"draft length must be >= 0, got {k}")
    if k > len(accept):
        raise ValueError(f"draft length {k} is beyond the {len(accept)} positions measured")
    return 1.0 + float(sum(accept[:k]))


def request_acceptance(iterations: Sequence[Iteration]) -> list[RequestAcceptance]:
    """Each speculative request's verification steps with a draft and accepted tokens per
    position, as a run's iterations recorded them (server counters; none from the cli tools)."""
    return [
        RequestAcceptance(
            prompt_id=it.prompt_id,
            draft_steps=it.draft_steps or 0,
            accepted_per_position=[round(x) for x in it.accepted_per_position or []],
        )
        for it in iterations
    ]


def acceptance_profile(requests: Sequence[RequestAcceptance]) -> list[float]:
    """a_i = Σ_requests accepted_per_position[i−1] / Σ_requests draft_steps (token-step weighted)."""
    steps = sum(r.draft_steps for r in requests)
    if steps <= 0:
        raise ValueError("the probe made no verification step with a draft: no acceptance to read")
    n = max(len(r.accepted_per_position) for r in requests)
    sums = [
        sum(r.accepted_per_position[i] for r in requests if i < len(r.accepted_per_position))
        for i in range(n)
    ]
    return [s / steps for s in sums]


def step_time(draft_step_s: float, verify_s: float, k: int, reeval_s: float = 0.0) -> float:
    """T(b, k) = k · d_draft(b) + V_target(b, k+1) + R_draft(b, k+1), seconds (R: the draft's
    re-evaluation of the verified batch; 0 where no draft model runs)."""
    return k * draft_step_s + verify_s + reeval_s


def speedup(accept: Sequence[float], k: int, decode_s: float, draft_step_s: float, verify_s: float) -> float:
    """speedup(b, k) = E(k) · d_target(b) / T(b, k) (total output tokens/s over vanilla's)."""
    if decode_s <= 0 or verify_s <= 0 or draft_step_s < 0:
        raise ValueError("step times must be > 0 (the draft's >= 0)")
    return expected_tokens(accept, k) * decode_s / step_time(draft_step_s, verify_s, k)


@dataclass(frozen=True)
class StepCosts:
    """One model's costs: a forward pass over n tokens, each with its logits, per n; the prefill
    of one p-token prompt per p; and, for a draft model, its re-evaluation of a verified batch;
    seconds.

    pass_s[n]        = T_TG / TG of llama-batched-bench's row with PP = 1, B = n (each of its TG
                       steps decodes one token for each of n sequences: n tokens, n logits)
    prefill_s[p]     = T_PP of its row with PP = p, B = 1
    reeval_s[(b, w)] = T_PP of its row with PP = w ≥ 2, B = b: b sequences of w tokens in one
                       batch, the last logits only (what llama-server's draft does with each
                       verification batch, `advise.model` docstring)
    """

    pass_s: Mapping[int, float]
    prefill_s: Mapping[int, float]
    reeval_s: Mapping[tuple[int, int], float] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: Sequence[CostRow]) -> StepCosts:
        passes = {r.batch: r.t_tg_s / r.tg for r in rows if r.pp == 1 and r.tg > 0}
        prefill = {r.pp: r.t_pp_s for r in rows if r.batch == 1}
        reeval = {(r.batch, r.pp): r.t_pp_s for r in rows if r.pp >= 2}
        return cls(passes, prefill, reeval)


def _by_row(repetitions: Sequence[Sequence[CostRow]]) -> dict[tuple[int, int, int], list[CostRow]]:
    """Each (PP, TG, B) row's measurements, one per repetition that has it, in repetition order."""
    acc: dict[tuple[int, int, int], list[CostRow]] = {}
    for rows in repetitions:
        for r in rows:
            acc.setdefault((r.pp, r.tg, r.batch), []).append(r)
    return acc


def step_s(r: CostRow) -> float:
    """The time of the row that the prediction uses: its prompt phase t_pp where PP > 1 (a
    prefill, a re-evaluation), else its time per decode step t_tg/TG."""
    return r.t_pp_s if r.pp > 1 or not r.tg else r.t_tg_s / r.tg


def median_rows(repetitions: Sequence[Sequence[CostRow]], pick: Sequence[int] | None = None) -> list[CostRow]:
    """Each (PP, TG, B) row's times, the median over the repetitions `pick` (default: all): one
    repetition that something else on the machine slowed (35x, seen) does not move it."""
    reps = [repetitions[i] for i in pick] if pick is not None else list(repetitions)
    return [
        CostRow(
            pp=pp,
            tg=tg,
            batch=b,
            t_pp_s=float(np.median([r.t_pp_s for r in rs])),
            t_tg_s=float(np.median([r.t_tg_s for r in rs])),
        )
        for (pp, tg, b), rs in _by_row(reps).items()
    ]


COST_SPREAD_WARN = 1.25  # a cost row whose repetitions differ more than this: the machine was busy


def cost_spread(costs: ModelCosts) -> tuple[float, CostRow | None]:
    """The largest max/min over repetitions of one (PP, TG, B) row's time (`step_s`), and that row (the slowest repetition's); (1, None)
    with fewer than two repetitions. On a quiet machine llama-batched-bench repeats within a few
    percent; a row that varies more was disturbed."""
    worst, where = 1.0, None
    for rs in _by_row(costs.repetitions).values():
        t = [step_s(r) for r in rs]
        if len(t) > 1 and min(t) > 0 and max(t) / min(t) > worst:
            worst, where = max(t) / min(t), rs[int(np.argmax(t))]
    return worst, where


def unsettled_rows(costs: ModelCosts) -> list[CostRow]:
    """The rows whose median (`median_rows`, what the prediction uses) no majority of repetitions
    backs: with m the median of a row's n times per step, fewer than ⌊n/2⌋ + 1 of them within a
    factor COST_SPREAD_WARN of m (m/1.25 ≤ t ≤ 1.25·m). One disturbed repetition of three is
    outvoted and settles; three that all differ do not, and advise measures the row again
    (`advise.run.costs`). Each unsettled row as its slowest repetition's."""
    out = []
    for rs in _by_row(costs.repetitions).values():
        t = np.array([step_s(r) for r in rs])
        m = float(np.median(t))
        near = int(np.sum((t >= m / COST_SPREAD_WARN) & (t <= m * COST_SPREAD_WARN)))
        if len(t) > 1 and near < len(t) // 2 + 1:
            out.append(rs[int(np.argmax(t))])
    return out


def unsure_choices(
    cells: Sequence[Cell], schedule: Sequence[ScheduleEntry]
) -> list[tuple[ScheduleEntry, Cell]]:
    """The schedule's speculative choices whose predicted speedup's 95% interval reaches 1 or below:
    speculation there is not known to pay."""
    out = []
    for e in schedule:
        if e.n_draft is not None:
            c = cell(cells, e.concurrency_from, e.n_draft)
            if c.ci95_low is not None and c.ci95_low <= 1:
                out.append((e, c))
    return out


@dataclass(frozen=True)
class Workload:
    """What each request does: `prompt_tokens` prefilled (0: decode only), `n_predict` generated."""

    prompt_tokens: int = 0
    n_predict: int = 64


def request_speedup(
    decode_speedup: float, n_predict: int, decode_s: float, prefill_target_s: float, prefill_draft_s: float
) -> float:
    """Whole-request speedup at batch b, prefill included (closed loop, b requests in flight):

        vanilla  = b·P_t(p) + (N − 1) · d_t(b)
        spec     = b·(P_t(p) + P_d(p)) + (N − 1) · d_t(b) / speedup_decode(b, k)
        speedup  = vanilla / spec

    P(p): one p-token prompt prefilled at batch 1 (llama-batched-bench T_PP at PP = p, B = 1),
    by the target and, speculating, by the draft too; each request's prefill holds up the whole
    batch once (llama-server prefills a new request in the batch of the others' decode step);
    the first token comes from the prefill, the N − 1 others from decode steps. With p = 0 this
    is the decode-only speedup.
    """
    if n_predict <= 1:
        return 1.0
    decode_vanilla = (n_predict - 1) * decode_s
    vanilla = prefill_target_s + decode_vanilla
    spec = prefill_target_s + prefill_draft_s + decode_vanilla / decode_speedup
    return vanilla / spec


def server_overhead(vanilla_s_per_token: Sequence[float], target: StepCosts) -> float:
    """o: llama-server's own seconds per forward pass beyond llama-batched-bench's pass,

        o = max(0, median over the probe's vanilla requests of (1 / decode tokens/s) − d_target(1))

    what the server spends around each `llama_decode` (sampling, the slot loop, streaming the
    token) and the deeper context it decodes at. 0 without vanilla requests (version-1 results).
    Measured on SmolLM2-135M at -t 2: 0.24 ms (8.95 ms per token served, 8.71 ms per bench pass);
    it would matter to speculation, which makes k + 1 passes per step where vanilla makes one
    per token, were it larger."""
    if not vanilla_s_per_token:
        return 0.0
    return max(0.0, float(np.median(vanilla_s_per_token)) - target.pass_s[1])


def point_grid(
    accept: Sequence[float],
    target: StepCosts,
    draft: StepCosts | None,
    grid: Grid,
    work: Workload = Workload(),
    overhead_s: float = 0.0,
) -> dict[tuple[int, int], tuple[float, float, float, float, float]]:
    """{(b, k): (speedup, decode-only speedup, E, T(b,k), d_target(b))} for every cell; `draft`
    None: drafting (and its prefill) costs nothing. The prefill terms are per batch of b: b·P(p).
    `overhead_s` (o, `server_overhead`) is added to every forward pass: a decode step d(b) + o,
    each drafted token's pass d_draft(b) + o (where a draft model runs), the verification V + o;
    the draft's re-evaluation R_draft(b, k+1) is taken as measured (`StepCosts.reeval_s`)."""
    out = {}
    p = work.prompt_tokens
    for b in grid[0]:
        d_t = target.pass_s[b] + overhead_s
        d_d = draft.pass_s[b] + overhead_s if draft is not None else 0.0
        pf_t = b * target.prefill_s[p] if p else 0.0
        pf_d = b * draft.prefill_s[p] if p and draft is not None else 0.0
        for k in grid[1]:
            v = target.pass_s[b * (k + 1)] + overhead_s
            e = expected_tokens(accept, k)
            # a result of advise schema 1 measured no re-evaluation rows: predicted without (as then)
            r = draft.reeval_s.get((b, k + 1), 0.0) if draft is not None else 0.0
            t = step_time(d_d, v, k, r)
            dec = e * d_t / t
            out[(b, k)] = (request_speedup(dec, work.n_predict, d_t, pf_t, pf_d), dec, e, t, d_t)
    return out


def predict(
    requests: Sequence[RequestAcceptance],
    target: ModelCosts,
    draft: ModelCosts | None,
    grid: Grid,
    *,
    work: Workload = Workload(),
    self_draft: bool = False,
    bootstrap: int = 1000,
    seed: int = 0,
    vanilla_s_per_token: Sequence[float] = (),
) -> list[Cell]:
    """Every cell of the grid with its 95% percentile-bootstrap interval (see the module docstring).

    `vanilla_s_per_token`: the probe's vanilla requests, whose overhead per pass
    (`server_overhead`) every pass gets; resampled with the requests in each replicate.

    `self_draft`: the draft is the target model, its costs the target's (resampled together).
    `draft` None and not `self_draft`: drafting costs nothing (n-gram methods).
    """
    accept = acceptance_profile(requests)
    t_costs = StepCosts.from_rows(median_rows(target.repetitions))
    d_costs = (
        t_costs if self_draft else (StepCosts.from_rows(median_rows(draft.repetitions)) if draft else None)
    )
    point = point_grid(accept, t_costs, d_costs, grid, work, server_overhead(vanilla_s_per_token, t_costs))
    rng = np.random.default_rng(seed)
    n_van = len(vanilla_s_per_token)
    reps: dict[tuple[int, int], list[float]] = {c: [] for c in point}
    n_req, n_t = len(requests), len(target.repetitions)
    n_d = len(draft.repetitions) if draft is not None else 0
    for _ in range(bootstrap):
        rq = [requests[i] for i in rng.integers(0, n_req, n_req)]
        try:
            acc_b = acceptance_profile(rq)
        except ValueError:
            continue
        acc_b += [0.0] * (len(accept) - len(acc_b))
        t_b = StepCosts.from_rows(median_rows(target.repetitions, rng.integers(0, n_t, n_t).tolist()))
        if self_draft:
            d_b: StepCosts | None = t_b
        elif draft is not None:
            d_b = StepCosts.from_rows(median_rows(draft.repetitions, rng.integers(0, n_d, n_d).tolist()))
        else:
            d_b = None
        van_b = [vanilla_s_per_token[i] for i in rng.integers(0, n_van, n_van)] if n_van else []
        for c, v in point_grid(acc_b, t_b, d_b, grid, work, server_overhead(van_b, t_b)).items():
            reps[c].append(v[0])
    cells = []
    for (b, k), (s, dec, e, t, d) in point.items():
        r = reps[(b, k)]
        lo, hi = (
            (float(np.percentile(r, 2.5)), float(np.percentile(r, 97.5))) if len(r) >= 20 else (None, None)
        )
        cells.append(
            Cell(
                concurrency=b,
                n_draft=k,
                speedup=s,
                ci95_low=lo,
                ci95_high=hi,
                decode_speedup=dec,
                expected_tokens=e,
                step_ms=t * 1000,
                decode_ms=d * 1000,
            )
        )
    return cells


def best_per_concurrency(cells: Sequence[Cell]) -> dict[int, Cell | None]:
    """Per concurrency, the cell with the highest predicted speedup, or None where none is > 1."""
    out: dict[int, Cell | None] = {}
    for b in sorted({c.concurrency for c in cells}):
        best = max((c for c in cells if c.concurrency == b), key=lambda c: c.speedup)
        out[b] = best if best.speedup > 1.0 else None
    return out


def crossovers(cells: Sequence[Cell]) -> list[CrossoverPrediction]:
    """Per draft length, the lowest concurrency of the grid whose predicted speedup is < 1, where
    speculation stops paying (None: it pays at every concurrency of the grid)."""
    out = []
    for k in sorted({c.n_draft for c in cells}):
        losing = sorted(c.concurrency for c in cells if c.n_draft == k and c.speedup < 1.0)
        out.append(CrossoverPrediction(n_draft=k, concurrency=losing[0] if losing else None))
    return out


def cell(cells: Sequence[Cell], concurrency: int, n_draft: int) -> Cell:
    return next(c for c in cells if c.concurrency == concurrency and c.n_draft == n_draft)


def deciding_points(cells: Sequence[Cell]) -> list[tuple[int, int, str]]:
    """The 2-3 points that decide the answer: the best k at the lowest and at the highest
    concurrency (where speculation loses everywhere there: the k that loses least), and the
    predicted crossover of the lowest concurrency's best k. Distinct, in grid order."""
    concs = sorted({c.concurrency for c in cells})

    def best(b: int) -> Cell:
        return max((c for c in cells if c.concurrency == b), key=lambda c: c.speedup)

    lo, hi = best(concs[0]), best(concs[-1])
    points = [(lo.concurrency, lo.n_draft, "best at the lowest concurrency")]
    points.append((hi.concurrency, hi.n_draft, "best at the highest concurrency"))
    x = next(c for c in crossovers(cells) if c.n_draft == lo.n_draft)
    if x.concurrency is not None:
        points.append((x.concurrency, lo.n_draft, f"crossover of n_draft {lo.n_draft}"))
    out: list[tuple[int, int, str]] = []
    for p in points:
        same = next((i for i, q in enumerate(out) if q[:2] == p[:2]), None)
        if same is None:
            out.append(p)
        else:
            out[same] = (p[0], p[1], out[same][2] + "; " + p[2])
    return sorted(out)


def agrees(
    predicted: Cell, measured: float, low: float | None, high: float | None, tol: float = 0.10
) -> bool:
    """Within `tol` of the prediction, or the two 95% intervals overlap."""
    if abs(measured / predicted.speedup - 1) <= tol:
        return True
    if None in (low, high, predicted.ci95_low, predicted.ci95_high):
        return False
    assert (
        low is not None
        and high is not None
        and predicted.ci95_low is not None
        and predicted.ci95_high is not None
    )
    return low <= predicted.ci95_high and predicted.ci95_low <= high
