"""advise's model against constructed costs with known answers, its batch-1 case against the
ceiling, and its bootstrap interval's coverage by simulation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from velobench.advise import model
from velobench.analysis import ceiling
from velobench.results.advise import AdviseReport, CostRow, ModelCosts, RequestAcceptance
from velobench.results.costs import Costs

FIXTURES = Path(__file__).parents[1] / "fixtures" / "advise"


def costs(passes: dict[int, float], prefill: dict[int, float] | None = None, tg: int = 8) -> ModelCosts:
    """One repetition whose rows give exactly d(n) = passes[n] (PP = 1, B = n) and P(p) = prefill[p]."""
    rows = [CostRow(pp=1, tg=tg, batch=n, t_pp_s=v, t_tg_s=v * tg) for n, v in passes.items()]
    rows += [CostRow(pp=p, tg=1, batch=1, t_pp_s=v, t_tg_s=0.01) for p, v in (prefill or {}).items()]
    return ModelCosts(model="m", commands=["llama-batched-bench"], repetitions=[rows])


def accepting(alpha: float, positions: int, steps: int = 1 << 20) -> list[RequestAcceptance]:
    """Counts with a_i = α^i exactly (steps a power of two, α = 1/2 or 0 or 1 keeps them exact)."""
    return [
        RequestAcceptance(
            draft_steps=steps,
            accepted_per_position=[round(steps * alpha**i) for i in range(1, positions + 1)],
        )
    ] * 2


def test_all_accepted_and_free_draft_gives_k_plus_one_at_batch_one() -> None:
    # verification of k+1 tokens costs one decode step, the draft nothing, every draft accepted
    ks = [1, 2, 4]
    target = costs({1: 0.01, **{k + 1: 0.01 for k in ks}})
    cells = model.predict(accepting(1.0, 4), target, None, ([1], ks), bootstrap=0)
    assert {c.n_draft: round(c.speedup, 9) for c in cells} == {1: 2.0, 2: 3.0, 4: 5.0}


def test_nothing_accepted_is_slower() -> None:
    ks = [1, 2, 4]
    target = costs({n: 0.01 * (1 + n / 8) for n in (1, 4, *(b * (k + 1) for b in (1, 4) for k in ks))})
    draft = costs({1: 0.002, 4: 0.003})
    cells = model.predict(accepting(0.0, 4), target, draft, ([1, 4], ks), bootstrap=0)
    assert all(c.speedup < 1 for c in cells)
    assert model.best_per_concurrency(cells) == {1: None, 4: None}
    assert [x.concurrency for x in model.crossovers(cells)] == [1, 1, 1]


def test_batch_one_is_the_ceiling() -> None:
    """The same llama-bench-style costs through analysis.ceiling and through advise agree."""
    tg_t, tg_d = 40.0, 160.0
    pp = {2: 70.0, 3: 95.0, 5: 130.0, 9: 180.0}
    c = Costs(target_tg_ts=tg_t, draft_tg_ts=tg_d, pp_ts=pp, commands=[])
    ks = [1, 2, 4, 8]
    target = costs({1: 1 / tg_t, **{w: w / ts for w, ts in pp.items()}})
    draft = costs({1: 1 / tg_d})
    alpha = 0.5
    cells = model.predict(accepting(alpha, 8), target, draft, ([1], ks), bootstrap=0)
    for cell in cells:
        k = cell.n_draft
        v = c.verify_cost(k + 1)
        assert v is not None
        expected = ceiling.speedup_ceiling(alpha, k, c.draft_cost, v)
        assert cell.speedup == pytest.approx(expected, rel=1e-9)
        assert cell.expected_tokens == pytest.approx(ceiling.expected_tokens_per_step(alpha, k))


def test_crossover_and_schedule_points() -> None:
    """A roofline: a pass costs the same up to 5 tokens (memory-bound), then grows with them
    (compute-bound). By hand, α = 1/2 (E(2) = 1.75, E(4) = 1.9375), speedup = E·d(b)/d(b(k+1)):
    b=1: k=2 1.75x, k=4 1.94x; b=2: k=2 1.46x, k=4 0.97x; b=4: k=2 0.73x, k=4 0.48x."""
    ks = [2, 4]
    bs = [1, 2, 4]
    target = costs({n: 0.01 * max(1.0, n / 5) for n in (1, 2, 3, 4, 5, 6, 10, 12, 20)})
    cells = model.predict(accepting(0.5, 4), target, None, (bs, ks), bootstrap=0)
    best = model.best_per_concurrency(cells)
    assert best[1] is not None and best[1].n_draft == 4
    assert best[2] is not None and best[2].n_draft == 2
    assert best[4] is None
    assert {c.n_draft: c.concurrency for c in model.crossovers(cells)} == {2: 4, 4: 2}
    assert [p[:2] for p in model.deciding_points(cells)] == [(1, 4), (2, 4), (4, 2)]


def test_prefill_pulls_the_speedup_towards_one_and_the_draft_prefill_below() -> None:
    """Decode 2x faster speculating; a prefill as long as the whole vanilla decode. With a free
    draft prefill: (P + D) / (P + D/2) = 2 / 1.5; with the draft prefilling as long as the target:
    2 / 2.5 (slower, as a self-draft on a compute-bound CPU is)."""
    n, d = 11, 0.01
    p_t = (n - 1) * d
    assert model.request_speedup(2.0, n, d, p_t, 0.0) == pytest.approx(2 / 1.5)
    assert model.request_speedup(2.0, n, d, p_t, p_t) == pytest.approx(2 / 2.5)
    assert model.request_speedup(2.0, n, d, 0.0, 0.0) == pytest.approx(2.0)
    # through the grid: the prompt's row at batch 1 is its prefill, b requests prefill per batch
    target = costs({1: d, 2: d, 3: d, 6: d}, {40: p_t / 2})
    cells = model.predict(
        accepting(1.0, 2),
        target,
        None,
        ([1, 2], [2]),
        work=model.Workload(prompt_tokens=40, n_predict=n),
        bootstrap=0,
    )
    got = {c.concurrency: (c.speedup, c.decode_speedup) for c in cells}
    assert got[1] == pytest.approx((model.request_speedup(3.0, n, d, p_t / 2, 0.0), 3.0))
    assert got[2] == pytest.approx((model.request_speedup(3.0, n, d, p_t, 0.0), 3.0))


def test_expected_tokens_refuses_unmeasured_positions() -> None:
    with pytest.raises(ValueError, match="beyond"):
        model.expected_tokens([0.5, 0.25], 3)


def test_bootstrap_interval_covers_the_true_speedup() -> None:
    """Seeded simulation: requests whose accepted lengths are truncated geometric(α); the 95%
    interval should cover the true speedup in about 95% of repeated experiments. (The
    percentile bootstrap undercovers at few requests: about 89% at 8-12 requests, 94% at 24 in
    this simulation; docs/advise.md says so.)"""
    rng = np.random.default_rng(7)
    alpha, k_max, steps_per_req, n_req = 0.6, 4, 30, 24
    truth_accept = [alpha**i for i in range(1, k_max + 1)]
    target = costs({n: 0.01 * (1 + n / 6) for n in (1, 2, 3, 5, 6, 10)})
    true_cells = model.point_grid(
        truth_accept, model.StepCosts.from_rows(target.repetitions[0]), None, ([1, 2], [2, 4])
    )
    covered = total = 0
    for _ in range(80):
        reqs = []
        for _ in range(n_req):
            # accepted length per step: the first rejection of i.i.d. Bernoulli(α), capped at k_max
            lengths = np.minimum(rng.geometric(1 - alpha, steps_per_req) - 1, k_max)
            reqs.append(
                RequestAcceptance(
                    draft_steps=steps_per_req,
                    accepted_per_position=[int((lengths >= i).sum()) for i in range(1, k_max + 1)],
                )
            )
        cells = model.predict(
            reqs, target, None, ([1, 2], [2, 4]), bootstrap=200, seed=int(rng.integers(1 << 30))
        )
        c = cells[0]  # the cells of one experiment move together: one per experiment
        assert c.ci95_low is not None and c.ci95_high is not None
        total += 1
        covered += c.ci95_low <= true_cells[(c.concurrency, c.n_draft)][0] <= c.ci95_high
    assert 0.87 <= covered / total <= 0.99


def test_disturbed_costs_and_unsure_choices_are_named() -> None:
    """The Qwen pair's advise, measured while other work used the machine (a real result,
    trimmed): one repetition of a target row 35x slower; every speculative choice's interval
    reaches below 1. SmolLM2's, measured on the same busy machine, chose vanilla everywhere."""
    from velobench.advise.render import render_html
    from velobench.advise.run import trust_notes

    busy = AdviseReport.model_validate_json((FIXTURES / "advise-qwen-busy.json").read_text())
    spread, row = model.cost_spread(busy.target_costs)
    assert spread > 30 and row is not None and (row.batch, row.pp, row.tg) == (2, 1, 8)
    unsure = model.unsure_choices(busy.grid, busy.schedule)
    assert [e.n_draft for e, _ in unsure] == [4, 2, 8]
    notes = trust_notes(busy)
    assert "5 row(s) disagree with their median after 3 repetitions" in notes[0] and len(notes) == 4
    assert "B=4, PP=1, TG=8: 122.61, 2687.52, 197.15 ms per step" in notes[0]
    assert "not known to pay" in notes[1]
    steady = busy.model_copy(deep=True)
    steady.target_costs.repetitions = [steady.target_costs.repetitions[0]] * 3
    assert model.cost_spread(steady.target_costs) == (1.0, None)
    busy.notes = notes
    assert "<h2>Notes</h2>" in render_html(busy) and "not known to pay" in render_html(busy)


def repeated(times_per_step: list[float], batch: int = 4, tg: int = 8) -> ModelCosts:
    """One row (PP = 1, B = batch) measured once per given time per step."""
    rows = [[CostRow(pp=1, tg=tg, batch=batch, t_pp_s=0.01, t_tg_s=t * tg)] for t in times_per_step]
    return ModelCosts(model="m", commands=["llama-batched-bench"], repetitions=rows)


def test_one_disturbed_repetition_is_outvoted_three_that_differ_are_not() -> None:
    assert model.unsettled_rows(repeated([0.100, 3.5, 0.102])) == []  # 35x once: the median is 0.102
    assert model.unsettled_rows(repeated([0.100, 0.124, 0.110])) == []  # all within 1.25x of 0.110
    loose = model.unsettled_rows(repeated([0.100, 0.150, 0.220]))  # 0.150's 1.25x holds only itself
    assert [(r.batch, r.t_tg_s) for r in loose] == [(4, pytest.approx(0.220 * 8))]
    assert model.unsettled_rows(repeated([0.1])) == []


def test_settle_measures_again_until_a_majority_agrees_and_no_longer() -> None:
    from velobench.advise.run import settle

    calls: list[float] = []

    def again(t: float) -> ModelCosts:
        calls.append(t)
        return repeated([t])

    # 0.100, 0.150, 0.220 then 0.150 twice: the median 0.150 is backed by 3 of 5 after two more
    got = settle(repeated([0.100, 0.150, 0.220]), lambda: again(0.150), extra=3)
    assert len(got.repetitions) == 5 and len(calls) == 2 and model.unsettled_rows(got) == []
    calls.clear()
    busy = settle(repeated([0.100, 0.150, 0.220]), lambda: again(0.5 + len(calls)), extra=3)
    assert len(calls) == 3 and len(busy.repetitions) == 6 and model.unsettled_rows(busy)
    calls.clear()
    steady = repeated([0.100, 0.101, 0.099])
    assert settle(steady, lambda: again(1.0), extra=3) is steady and calls == []


def test_the_servers_cost_per_pass_is_added_to_every_pass() -> None:
    """o = median(vanilla s/token) − d(1), added to each decode, draft and verification pass:
    d = 8 ms, the server decodes at 10 ms/token → o = 2 ms. k = 2, every draft accepted (E = 3),
    draft pass 2 ms, verification 9 ms: 3·10 / (2·4 + 11) = 30/19 (not 3·8 / (2·2 + 9) = 24/13)."""
    target = costs({1: 0.008, 3: 0.009})
    draft = costs({1: 0.002})
    slow = [0.011, 0.010, 0.0095]  # median 10 ms
    assert model.server_overhead(slow, model.StepCosts.from_rows(target.repetitions[0])) == pytest.approx(
        0.002
    )
    assert model.server_overhead([], model.StepCosts.from_rows(target.repetitions[0])) == 0.0
    assert (
        model.server_overhead([0.005], model.StepCosts.from_rows(target.repetitions[0])) == 0.0
    )  # never < 0
    (with_o,) = model.predict(
        accepting(1.0, 2), target, draft, ([1], [2]), bootstrap=0, vanilla_s_per_token=slow
    )
    (without,) = model.predict(accepting(1.0, 2), target, draft, ([1], [2]), bootstrap=0)
    assert with_o.decode_speedup == pytest.approx(30 / 19) and without.decode_speedup == pytest.approx(
        24 / 13
    )
    # the bootstrap resamples the vanilla requests too: an interval, and it holds the point
    (boot,) = model.predict(
        accepting(1.0, 2), target, draft, ([1], [2]), bootstrap=200, vanilla_s_per_token=[*slow, 0.012, 0.009]
    )
    assert boot.ci95_low is not None and boot.ci95_high is not None and boot.ci95_low < boot.ci95_high


def test_the_drafts_re_evaluation_of_each_verified_batch_is_in_the_step() -> None:
    """llama-server's draft runs every verification batch again (last logits only): R(b, k+1) =
    T_PP of the draft's row PP = k+1, B = b. d = 8 ms, V(3) = 9 ms, draft pass 2 ms, R(1, 3) =
    4 ms, E = 3: 3·8 / (2·2 + 9 + 4) = 24/17; without the row (a schema-1 result) 24/13."""
    target = costs({1: 0.008, 3: 0.009})
    draft = costs({1: 0.002})
    draft.repetitions[0].append(CostRow(pp=3, tg=1, batch=1, t_pp_s=0.004, t_tg_s=0.002))
    assert model.StepCosts.from_rows(draft.repetitions[0]).reeval_s == {(1, 3): 0.004}
    (cell,) = model.predict(accepting(1.0, 2), target, draft, ([1], [2]), bootstrap=0)
    assert cell.decode_speedup == pytest.approx(24 / 17)
    (old,) = model.predict(accepting(1.0, 2), target, costs({1: 0.002}), ([1], [2]), bootstrap=0)
    assert old.decode_speedup == pytest.approx(24 / 13)
    # its spread is judged on the prompt phase it is used for, not on its one decode step
    slow = [[CostRow(pp=3, tg=1, batch=1, t_pp_s=t, t_tg_s=0.002)] for t in (0.004, 0.004, 0.009)]
    spread, row = model.cost_spread(ModelCosts(model="d", commands=[], repetitions=slow))
    assert spread == pytest.approx(2.25) and row is not None and row.t_pp_s == 0.009
