"""advise's schedule file and reports from a constructed result: the TOML read back, the HTML heat map."""

from __future__ import annotations

import json
import tomllib

from tests.unit.test_advise_model import accepting, costs
from velobench.advise import model, render
from velobench.results.advise import AdviseOptions, AdviseReport, Confirmation, ScheduleEntry
from velobench.results.config import RunConfig
from velobench.results.measures import Ratio
from velobench.telemetry.environment import capture


def report() -> AdviseReport:
    ks, bs = [2, 4], [1, 2, 4]
    target = costs(
        {n: 0.01 * max(1.0, n / 5) for n in (1, 2, 3, 4, 5, 6, 10, 12, 20)}
    )  # the model test's roofline
    opts = AdviseOptions(
        concurrencies=bs,
        n_drafts=ks,
        probe_requests=2,
        requests=4,
        repetitions=1,
        bootstrap=0,
        seed=0,
        confirm=True,
    )
    rep = AdviseReport(
        config=RunConfig(main_model="t.gguf", draft_model="d.gguf"), advise=opts, environment=capture()
    )
    rep.grid = model.predict(accepting(0.5, 4), target, None, (bs, ks), bootstrap=50)
    rep.crossovers = model.crossovers(rep.grid)
    rep.schedule = [
        ScheduleEntry(
            concurrency_from=1,
            concurrency_to=1,
            n_draft=4,
            predicted=1.48,
            llama_server='llama-server -m "t.gguf" -md d.gguf',
        ),
        ScheduleEntry(
            concurrency_from=2, concurrency_to=3, n_draft=2, predicted=1.1, llama_server="llama-server -np 3"
        ),
        ScheduleEntry(
            concurrency_from=4,
            concurrency_to=4,
            n_draft=None,
            predicted=1.0,
            llama_server="llama-server -np 4",
        ),
    ]
    rep.vllm_speculative_config = None
    pred = model.cell(rep.grid, 1, 4)
    rep.confirmations = [
        Confirmation(
            concurrency=1, n_draft=4, why="best at the lowest concurrency", predicted=pred,
            measured=Ratio(ratio=1.3, stddev=0.1, ci95_low=1.1, ci95_high=1.5, p_value=0.01, n_a=8, n_b=8),
            agrees=True, miss=1.3 / pred.speedup - 1,
        )
    ]  # fmt: skip
    return rep


def test_schedule_toml_reads_back() -> None:
    rep = report()
    sched = tomllib.loads(render.schedule_toml(rep))
    assert [(e["concurrency_from"], e["concurrency_to"], e["n_draft"]) for e in sched["llama_server"]] == [
        (1, 1, 4),
        (2, 3, 2),
        (4, 4, 0),
    ]
    assert sched["llama_server"][0]["command"] == 'llama-server -m "t.gguf" -md d.gguf'  # quotes survive
    assert sched["vllm"] == {"speculative_config": ""}
    rep.vllm_speculative_config = {"method": "draft_model", "model": "d", "num_speculative_tokens": 2}
    vc = tomllib.loads(render.schedule_toml(rep))["vllm"]["speculative_config"]
    assert json.loads(vc) == rep.vllm_speculative_config


def test_tables_and_html() -> None:
    rep = report()
    grid = render.grid_table(rep)
    assert [r[0] for r in grid.rows] == ["1", "2", "4"] and grid.rows[0][-1] == "n_draft 4"
    assert grid.rows[2][-1] == "vanilla" and "*" in grid.rows[0][2]
    assert render.crossover_lines(rep) == [
        "n_draft 2: stops paying at concurrency 4",
        "n_draft 4: stops paying at concurrency 2",
    ]
    t = render.confirm_table(rep)
    assert t is not None and t.rows[0][3].startswith("1.30x [1.10, 1.50]")
    html = render.render_html(rep)
    assert html.count("data:image/png;base64,") == 1 and "Confirmed by real load levels" in html


def test_synthetic_checks_are_a_map_apart_from_the_confirmations() -> None:
    """Synthetic-acceptance levels (--synthetic/--synthetic-map) show as their own α × n_draft
    map, one per concurrency mapped, never as confirmations of the real draft's prediction (nor
    circled on its heat map)."""
    rep = report()
    real = rep.confirmations[0]
    for conc in (1, 2):
        for alpha in (0.5, 0.9):
            for k in (2, 4):
                pred = model.cell(rep.grid, conc, k)
                rep.confirmations.append(
                    Confirmation(
                        concurrency=conc, n_draft=k, why=f"synthetic acceptance α = {alpha:g}", predicted=pred,
                        measured=Ratio(ratio=alpha + k / 10 + conc / 100, stddev=0.1, ci95_low=alpha, ci95_high=alpha + 0.5, p_value=0.5, n_a=8, n_b=8),
                        agrees=alpha == 0.5, miss=0.0, synthetic_rates=[alpha**i for i in range(1, k + 1)],
                    )
                )  # fmt: skip
    assert render.real_confirmations(rep) == [real]
    t = render.confirm_table(rep)
    assert t is not None and len(t.rows) == 1
    maps = render.synthetic_tables(rep)
    assert [m.title.split(":")[0] for m in maps] == [
        "Synthetic acceptance a_i = α^i at concurrency 1",
        "Synthetic acceptance a_i = α^i at concurrency 2",
    ]
    for conc, m in zip((1, 2), maps, strict=True):
        assert m.headers == ["α", "n_draft 2", "n_draft 4"]
        assert [r[0] for r in m.rows] == ["0.5", "0.9"]
        assert m.rows[1][2].startswith(f"{1.3 + conc / 100:.2f}x [0.90, 1.40] (pred ") and m.rows[1][
            2
        ].endswith(" NO")
        assert not m.rows[0][1].endswith(" NO")
    md = render.render_md(rep)
    assert "Synthetic acceptance a_i = α^i at concurrency 1" in md and "α^i at concurrency 2" in md
    assert "α^i at concurrency 2" in render.render_html(rep)
    assert render.synthetic_tables(report()) == []  # none asked: no map
