"""An advise result on the console, as a schedule file (TOML), as Markdown, JSON, and as HTML with
the heat map: what `advise` prints and writes, and what `velobench report` renders again."""

from __future__ import annotations

import html
import json
from pathlib import Path

from rich.console import Console

from velobench.advise import model
from velobench.fsutil import write_text_atomic
from velobench.report import fmt
from velobench.report.tables import Table, md_text
from velobench.results.advise import AdviseReport, Confirmation


def _pred(c: model.Cell) -> str:
    return f"{c.speedup:.2f}x{fmt.bracketed(c.ci95_low, c.ci95_high)}"


def grid_table(report: AdviseReport) -> Table:
    """Predicted speedup: a row per concurrency, a column per draft length; the best marked *."""
    ks = sorted({c.n_draft for c in report.grid})
    best = model.best_per_concurrency(report.grid)
    rows = []
    for b in sorted(best):
        row = [str(b)]
        for k in ks:
            c = model.cell(report.grid, b, k)
            chosen = best[b]
            mark = " *" if chosen is not None and chosen.n_draft == k else ""
            row.append(_pred(c) + mark)
        chosen = best[b]
        row.append(f"n_draft {chosen.n_draft}" if chosen else "vanilla")
        rows.append(row)
    return Table(
        title="Predicted speedup (total output tokens/s, speculative ÷ vanilla) [95% bootstrap interval]",
        headers=["concurrency", *(f"n_draft {k}" for k in ks), "best"],
        rows=rows,
        right=[True, *([True] * len(ks)), False],
        caption="* the best draft length at that concurrency; vanilla where none is predicted > 1",
    )


def real_confirmations(report: AdviseReport) -> list[Confirmation]:
    """The deciding points measured with the real draft (the synthetic checks are apart)."""
    return [c for c in report.confirmations if c.synthetic_rates is None]


def synthetic_checks(report: AdviseReport) -> list[Confirmation]:
    """The levels measured with llama-server's synthetic acceptance a_i = α^i."""
    return [c for c in report.confirmations if c.synthetic_rates is not None]


def synthetic_alpha(c: Confirmation) -> float:
    """α of a synthetic check: its first rate (a_1 = α)."""
    assert c.synthetic_rates
    return c.synthetic_rates[0]


def synthetic_tables(report: AdviseReport) -> list[Table]:
    """The hardware's own map, one table per concurrency mapped: measured speedup at synthetic
    acceptance α (rows) × draft length (columns), each beside its prediction from the measured
    costs with a_i = α^i."""
    checks = synthetic_checks(report)
    return [
        _synthetic_table([c for c in checks if c.concurrency == conc], conc)
        for conc in sorted({c.concurrency for c in checks})
    ]


def _synthetic_table(checks: list[Confirmation], concurrency: int) -> Table:
    alphas = sorted({synthetic_alpha(c) for c in checks})
    ks = sorted({c.n_draft for c in checks})
    at = {(synthetic_alpha(c), c.n_draft): c for c in checks}
    rows = []
    for a in alphas:
        row = [f"{a:g}"]
        for k in ks:
            c = at.get((a, k))
            m = c.measured if c else None
            if c is None:
                row.append("")
            elif m is None:
                row.append(f"n/a (pred {c.predicted.speedup:.2f}x)")
            else:
                mark = "" if c.agrees else " NO"
                row.append(
                    f"{m.ratio:.2f}x{fmt.bracketed(m.ci95_low, m.ci95_high)} (pred {c.predicted.speedup:.2f}x){mark}"
                )
        rows.append(row)
    return Table(
        title=(
            f"Synthetic acceptance a_i = α^i at concurrency {concurrency}: measured speedup [95%] "
            "(predicted from the costs)"
        ),
        headers=["α", *(f"n_draft {k}" for k in ks)],
        rows=rows,
        right=[True, *([True] * len(ks))],
        caption="llama-server --spec-synth-rates (benchmarking only: output not valid text); "
        "independent of the draft's quality; NO: misses by more than 10% with the intervals apart",
    )


def confirm_table(report: AdviseReport, why: bool = True) -> Table | None:
    confirmed = real_confirmations(report)
    if not confirmed:
        return None
    rows = []
    for c in confirmed:
        m = c.measured
        rows.append(
            [
                str(c.concurrency),
                str(c.n_draft),
                _pred(c.predicted),
                f"{m.ratio:.2f}x{fmt.bracketed(m.ci95_low, m.ci95_high)}" if m else "n/a",
                f"{c.miss:+.0%}" if c.miss is not None else "n/a",
                {True: "yes", False: "NO", None: "n/a"}[c.agrees],
                *([c.why] if why else []),
            ]
        )
    return Table(
        title="Confirmed by real load levels: predicted vs measured",
        headers=[
            "concurrency",
            "n_draft",
            "predicted",
            "measured",
            "miss",
            "agrees",
            *(["why this point"] if why else []),
        ],
        rows=rows,
        right=[True, True, True, True, True, False, *([False] if why else [])],
        caption="agrees: within 10%, or the two 95% intervals overlap; measured: throughput ratio (Fieller)",
    )


def schedule_table(report: AdviseReport) -> Table:
    rows = [
        [
            f"{e.concurrency_from}-{e.concurrency_to}"
            if e.concurrency_to != e.concurrency_from
            else str(e.concurrency_from),
            str(e.n_draft) if e.n_draft else "vanilla",
            f"{e.predicted:.2f}x",
        ]
        for e in report.schedule
    ]
    return Table(
        title="Schedule",
        headers=["concurrency", "n_draft", "predicted"],
        rows=rows,
        right=[False, True, True],
    )


def crossover_lines(report: AdviseReport) -> list[str]:
    top = max(report.advise.concurrencies)
    return [
        f"n_draft {x.n_draft}: stops paying at concurrency {x.concurrency}"
        if x.concurrency is not None
        else f"n_draft {x.n_draft}: pays up to concurrency {top} (the grid's largest)"
        for x in report.crossovers
    ]


def print_advice(console: Console, report: AdviseReport) -> None:
    console.print()
    console.print(grid_table(report).rich())
    for line in crossover_lines(report):
        console.print(f"  {line}")
    for t in (confirm_table(report, why=False), *synthetic_tables(report)):
        if t is not None:
            console.print(t.rich())
    console.print(schedule_table(report).rich())
    for e in report.schedule:
        console.print(
            f"  concurrency {e.concurrency_from}-{e.concurrency_to}: {e.llama_server}", soft_wrap=True
        )
    vc = report.vllm_speculative_config
    console.print(
        "  vLLM: "
        + (
            f"--speculative-config '{json.dumps(vc, separators=(',', ':'))}'"
            if vc
            else "no --speculative-config (vanilla)"
        ),
        soft_wrap=True,
    )
    phases = ", ".join(f"{k} {v:.0f} s" for k, v in report.phases_s.items())
    console.print(f"  advise took {report.wall_s or 0:.0f} s ({phases})")
    for note in report.notes:
        console.print(f"  [yellow]note:[/yellow] {note}")


def _toml_str(s: str) -> str:
    return json.dumps(s)  # a TOML basic string is a JSON string for these characters


def schedule_toml(report: AdviseReport) -> str:
    """The schedule file: one [[llama_server]] table per concurrency range, and [vllm]."""
    out = [
        "# velobench advise: what to deploy per expected concurrency (predicted from measured costs)",
        f"# target {report.config.main_model}, draft {report.config.draft_model}",
        "",
    ]
    for e in report.schedule:
        out += [
            "[[llama_server]]",
            f"concurrency_from = {e.concurrency_from}",
            f"concurrency_to = {e.concurrency_to}",
            f"n_draft = {e.n_draft if e.n_draft else 0}  # 0: vanilla, no draft model",
            f"predicted_speedup = {e.predicted:.4f}",
            f"command = {_toml_str(e.llama_server)}",
            "",
        ]
    vc = report.vllm_speculative_config
    out += [
        "[vllm]  # num_speculative_tokens_per_batch_size: the same ranges, [from, to, k]",
        f"speculative_config = {_toml_str(json.dumps(vc, separators=(',', ':')) if vc else '')}  # empty: vanilla",
    ]
    return "\n".join(out) + "\n"


def write_schedule(report: AdviseReport, path: Path) -> Path:
    write_text_atomic(path, schedule_toml(report))
    return path


def heat_map(report: AdviseReport) -> str:
    """The predicted speedup over concurrency × draft length, confirmed points circled (base64 PNG)."""
    import base64
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure

    ks = sorted({c.n_draft for c in report.grid})
    bs = sorted({c.concurrency for c in report.grid})
    z = [[model.cell(report.grid, b, k).speedup for b in bs] for k in ks]
    flat = [v for row in z for v in row]
    fig = Figure(figsize=(1.6 + 1.1 * len(bs), 1.2 + 0.8 * len(ks)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    norm = TwoSlopeNorm(vcenter=1.0, vmin=min(min(flat), 0.99), vmax=max(max(flat), 1.01))
    im = ax.imshow(z, cmap="RdYlGn", norm=norm, origin="lower", aspect="auto")
    for i in range(len(ks)):
        for j in range(len(bs)):
            ax.text(j, i, f"{z[i][j]:.2f}", ha="center", va="center", fontsize=9)
    for c in real_confirmations(report):
        if c.measured is None:
            continue
        j, i = bs.index(c.concurrency), ks.index(c.n_draft)
        ax.scatter([j], [i], s=900, facecolors="none", edgecolors="black", linewidths=1.5)
        ax.text(j, i - 0.3, f"meas. {c.measured.ratio:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(bs)), [str(b) for b in bs])
    ax.set_yticks(range(len(ks)), [str(k) for k in ks])
    ax.set_xlabel("concurrency")
    ax.set_ylabel("draft length")
    ax.set_title("predicted speedup (circled: confirmed)")
    fig.colorbar(im, ax=ax)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def render_html(report: AdviseReport) -> str:
    title = "velobench advise: speedup over concurrency × draft length"
    body = [f"<h1>{html.escape(title)}</h1>"]
    body.append(
        f"<p>target {html.escape(report.config.main_model)}, draft {html.escape(str(report.config.draft_model))}"
        + (" (self-draft)" if report.self_draft else "")
        + "</p>"
    )
    body.append(
        f'<p><img src="data:image/png;base64,{heat_map(report)}" alt="predicted speedup heat map"></p>'
    )
    body.append(grid_table(report).html())
    body += ["<ul>", *[f"<li>{html.escape(x)}</li>" for x in crossover_lines(report)], "</ul>"]
    for t in (confirm_table(report), *synthetic_tables(report)):
        if t is not None:
            body.append(t.html())
    body.append(schedule_table(report).html())
    body.append("<pre>" + html.escape(schedule_toml(report)) + "</pre>")
    if report.notes:
        body += ["<h2>Notes</h2>", "<ul>", *[f"<li>{html.escape(n)}</li>" for n in report.notes], "</ul>"]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def render_md(report: AdviseReport) -> str:
    """The same tables as the console and the HTML, in Markdown, with the schedule file."""
    out = [
        "# velobench advise: speedup over concurrency × draft length",
        "",
        f"target {md_text(report.config.main_model)}, draft {md_text(str(report.config.draft_model))}"
        + (" (self-draft)" if report.self_draft else ""),
        "",
        grid_table(report).markdown(),
        "",
        *[f"- {md_text(x)}" for x in crossover_lines(report)],
    ]
    for t in (confirm_table(report), *synthetic_tables(report)):
        if t is not None:
            out += ["", t.markdown()]
    out += ["", schedule_table(report).markdown(), "", "```toml", schedule_toml(report).rstrip(), "```"]
    if report.notes:
        out += ["", "## Notes", "", *[f"- {md_text(n)}" for n in report.notes]]
    return "\n".join(out) + "\n"


def write_html(report: AdviseReport, path: Path) -> Path:
    write_text_atomic(path, render_html(report))
    return path
