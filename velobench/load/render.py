"""Load results for people: per-level tables per mode, the comparison, the crossover, a plot.

Pure functions of a saved `LoadReport` (none imports the runner): `print_load_report` for the
console, `render_md`, `render_csv` and `render_html` (one self-contained page with a
throughput-vs-latency plot per mode, the crossover marked); `velobench.export` dispatches to them
(JSON is `report.json.render`, the saved result, for every kind).
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence

from rich.console import Console

from velobench.report import fmt
from velobench.report.console import label
from velobench.report.tables import Table, md_text
from velobench.report.warnings import text as warning_text
from velobench.results.load import (
    Distribution,
    LevelComparison,
    LevelSummary,
    LoadLevel,
    LoadOptions,
    LoadReport,
)
from velobench.results.maxrate import SearchStep
from velobench.results.measures import Ratio

# --------------------------------------------------------------------------- cells


def _num(x: float | None, digits: int = 1) -> str:
    return fmt.number(x, digits)


def _mean_ci(d: Distribution | None, digits: int = 0) -> str:
    """`812 [790, 834]`: the mean and its 95% interval."""
    return (
        fmt.MISSING
        if d is None
        else f"{d.mean:.{digits}f}{fmt.bracketed(d.mean_ci95_low, d.mean_ci95_high, digits)}"
    )


def _p50_p99(d: Distribution | None, digits: int = 0) -> str:
    return "-" if d is None else f"{d.p50.value:.{digits}f} / {d.p99.value:.{digits}f}"


def _goodput(s: LevelSummary) -> str:
    g = s.goodput
    if g is None or g.share is None:
        return "-"
    rate = f" ({g.rate_per_s:.2f}/s)" if g.rate_per_s is not None else ""
    return f"{fmt.percent(g.share)}{rate}"


def _acceptance(s: LevelSummary) -> str:
    a = s.acceptance
    if a is None or a.acceptance_rate is None:
        return "-"
    length = f", len {a.mean_acceptance_length:.2f}" if a.mean_acceptance_length is not None else ""
    return f"{fmt.percent(a.acceptance_rate)}{length}"


def _errors(s: LevelSummary) -> str:
    if not s.n_errors_all:
        return "0"
    kinds = ", ".join(f"{k} {v}" for k, v in s.errors_by_kind.items())
    return f"{s.n_errors_all}" + (f" ({kinds})" if kinds else "")


def lag_cell(lvl: LoadLevel) -> str:
    """`0.4 / 1.1, 12%`: the generator's p99 send lag / p99 event-loop lag (ms) and its CPU share
    (`, 4 procs` where several generator processes ran it: their CPU together)."""
    g = lvl.lag
    if g is None:
        return "-"
    send = _num(g.send_ms.p99 if g.send_ms else None)
    loop = _num(g.loop_ms.p99 if g.loop_ms else None)
    procs = f", {g.procs} procs" if g.procs > 1 else ""
    return f"{send} / {loop}, {fmt.percent(g.cpu_share)}{procs}"


def ratio_cell(r: Ratio | None) -> str:
    """`0.82x ± 0.05 [0.73, 0.92] p=0.001`: the ratio, its stddev, Fieller interval and Welch p."""
    return fmt.ratio_cell(r)


def _legacy_ratio(name: str, r: Ratio | None) -> str:
    """`throughput ×0.82 [0.73, 0.92], p=0.001`: a ratio as the stored crossover text spells it."""
    if r is None:
        return f"{name} n/a"
    p = f", p={fmt.p_value(r.p_value)}" if r.p_value is not None else ""
    return f"{name} ×{r.ratio:.2f}{fmt.bracketed(r.ci95_low, r.ci95_high)}{p}"


def crossover_text(
    unit: str, level: float | None, up_to: float | None, by: Sequence[str], at: LevelComparison | None
) -> str:
    """Crossover.text, as result files store it: where speculation turns significantly worse
    (`at`: that level's comparison, its ratios on the criteria `by`), or up to which level it
    does not."""
    if level is None:
        return "no level compared" if up_to is None else f"none up to {unit} {up_to:g}"
    detail = ", ".join(_legacy_ratio(m, None if at is None else getattr(at, m)) for m in by)
    return f"speculation is significantly worse from {unit} {level:g} ({detail})"


def saturation_errors_text(s: LevelSummary, unit: str) -> str:
    """Saturation.text for a level where requests failed, as result files store it."""
    kinds = ", ".join(f"{k} ×{v}" for k, v in s.errors_by_kind.items()) or "outside the measure window"
    return f"{s.mode}: {s.n_errors_all} request(s) failed at {unit} {s.level:g} ({kinds})"


def saturation_throughput_text(
    s: LevelSummary, prev: LevelSummary, gain: float, p_value: float | None, unit: str
) -> str:
    """Saturation.text for a level whose throughput stopped rising, as result files store it."""
    p = f", p={fmt.p_value(p_value)}" if p_value is not None else ""
    return f"{s.mode}: throughput stopped rising at {unit} {s.level:g} ({gain:+.1%} over {unit} {prev.level:g}{p})"


def _verdict(c: LevelComparison) -> str:
    parts = []
    if c.better:
        parts.append("better: " + ", ".join(c.better))
    if c.worse:
        parts.append("worse: " + ", ".join(c.worse))
    return "; ".join(parts) or "no significant difference"


def describe(opts: LoadOptions) -> str:
    """One line: `concurrency 1, 2, 4 (closed loop), 24 requests per level` and so on."""
    if opts.profile == "concurrency":
        what = f"concurrency {', '.join(f'{x:g}' for x in opts.levels) or 'searched'} (closed loop)"
    else:
        arrivals = "Poisson" if opts.burstiness == 1.0 else f"gamma, burstiness {opts.burstiness:g}"
        cap = f", at most {opts.max_concurrency} in flight" if opts.max_concurrency else ""
        what = f"rate {', '.join(f'{x:g}' for x in opts.levels) or 'searched'} req/s ({arrivals}, seed {opts.seed}{cap})"
    bounds = []
    if opts.requests is not None:
        bounds.append(f"{opts.requests} requests")
    if opts.duration_s is not None:
        bounds.append(f"{opts.duration_s:g} s")
    windows = []
    for name, w in (("warm-up", opts.warmup), ("cool-down", opts.cooldown)):
        if w.seconds:
            windows.append(f"{name} {w.seconds:g} s")
        elif w.requests:
            windows.append(f"{name} {w.requests} requests")
    extra = f"; {', '.join(windows)}" if windows else ""
    return f"{what}, {' or '.join(bounds)} per level{extra}"


# --------------------------------------------------------------------------- tables


def level_table(report: LoadReport, mode: str) -> Table:
    """One mode's levels: requests, errors, throughput, latencies (ms), goodput, acceptance, and
    velobench's own lag where it was measured (load schema 5 on)."""
    m = report.modes[mode]
    unit = report.load.unit
    headers = [
        unit,
        "ok/n",
        "errors",
        "req/s",
        "out tok/s",
        "tok/s/req",
        "TTFT p50/p99",
        "TPOT [95% CI]",
        "ITL p50",
        "e2e [95% CI]",
        "e2e p90",
    ]
    slo = report.load.slo is not None
    spec = any(lvl.summary and lvl.summary.acceptance for lvl in m.levels)
    if slo:
        headers.append("goodput")
    if spec:
        headers.append("acceptance")
    lag = any(lvl.lag is not None for lvl in m.levels)
    if lag:
        headers.append("velobench lag p99 send/loop, CPU")
    rows = []
    for lvl in m.levels:
        s = lvl.summary
        name = f"{lvl.level:g}" + (" (interrupted)" if lvl.interrupted else "")
        if s is None:
            rows.append([name, f"0/{lvl.finished}"] + ["-"] * (len(headers) - 2))
            continue
        row = [
            name,
            f"{s.n_ok}/{s.n_measure}",
            _errors(s),
            _num(s.request_throughput, 2),
            _num(s.output_tok_s),
            _num(s.per_request_tok_s.mean if s.per_request_tok_s else None),
            _p50_p99(s.ttft_ms),
            _mean_ci(s.tpot_ms, 1),
            _num(s.itl_ms.p50.value if s.itl_ms else None),
            _mean_ci(s.e2e_ms),
            _num(s.e2e_ms.p90.value if s.e2e_ms else None, 0),
        ]
        if slo:
            row.append(_goodput(s))
        if spec:
            row.append(_acceptance(s))
        if lag:
            row.append(lag_cell(lvl))
        rows.append(row)
    return Table(
        title=f"{label(mode)}: {m.binary}, {m.slots} slot(s) (latencies in ms; mean [95% CI])",
        headers=headers,
        rows=rows,
        right=[True] * len(headers),
    )


def comparison_table(report: LoadReport) -> Table | None:
    """Speculative ÷ vanilla per level: ratios ± stddev, 95% intervals, Welch p, the verdict."""
    if not report.comparisons:
        return None
    headers = [report.load.unit, "out tok/s", "TTFT", "TPOT", "e2e", "verdict (p < 0.05)"]
    rows = [
        [
            f"{c.level:g}",
            ratio_cell(c.throughput),
            ratio_cell(c.ttft),
            ratio_cell(c.tpot),
            ratio_cell(c.e2e),
            _verdict(c),
        ]
        for c in report.comparisons
    ]
    return Table(
        title="Speculative ÷ vanilla: output tok/s, mean latencies (ratio ± stddev [95% Fieller CI] Welch p)",
        headers=headers,
        rows=rows,
        right=[True, True, True, True, True, False],
    )


def _step(s: SearchStep) -> str:
    share = fmt.percent(s.share) if s.share is not None else "-"
    return f"{s.level:g} {'met' if s.met else 'missed'} ({share})"


def search_table(report: LoadReport) -> Table | None:
    """--find-max-rate: per mode every level the search ran, in order, and the bracket it ended with."""
    r = report.max_rate
    if r is None or not r.arms:
        return None
    o = r.options
    rows = [
        [
            label(a.mode),
            ", ".join(_step(s) for s in a.steps) or "-",
            "-" if a.highest_met is None else f"{a.highest_met:g}",
            "-" if a.lowest_missed is None else f"{a.lowest_missed:g}",
            str(len(a.steps)),
            a.ended,
        ]
        for a in r.arms.values()
    ]
    return Table(
        title=(
            f"SLO search over {o.kind}: goodput ≥ {fmt.percent(o.goodput_min)} from {o.start:g}, "
            f"×{o.growth:g} up to {o.max_level:g}, then bisection to {o.resolution:g}, at most {o.max_levels} levels"
        ),
        headers=["mode", "levels in order (goodput)", "highest met", "lowest missed", "levels", "ended"],
        rows=rows,
        right=[False, False, True, True, True, False],
    )


def notes(report: LoadReport) -> list[str]:
    """The crossover, where the sweep stopped, saturation, comparison warnings, the timing."""
    out = []
    if report.max_rate is not None:
        out += [f"SLO search: {a.text}" for a in report.max_rate.arms.values() if a.text]
        if report.max_rate.ratio is not None:
            out.append(f"SLO search: {report.max_rate.ratio.text}")
    x = report.crossover
    if x is not None:
        if x.level is not None:
            at = next((c for c in report.comparisons if c.level == x.level), None)
            why = (
                ", ".join(f"{m} {ratio_cell(getattr(at, m))}" for m in x.by)
                if at
                else crossover_text(report.load.unit, x.level, x.up_to, x.by, None)
            )
            out.append(f"Crossover: speculation stops paying at {report.load.unit} {x.level:g} ({why})")
        else:
            none = crossover_text(report.load.unit, None, x.up_to, [], None)
            out.append(f"Crossover: {none} (speculation never significantly worse)")
    if report.stopped_early:
        out.append(f"Sweep stopped early: {report.stopped_early}")
    for m in report.modes.values():
        if m.saturation is not None and not (
            report.stopped_early and m.saturation.text in report.stopped_early
        ):
            out.append(f"Saturation: {m.saturation.text}")
    for m in report.modes.values():
        for lvl in m.levels:
            out += [f"{report.load.unit} {lvl.level:g}: {warning_text(w)}" for w in lvl.warnings]
    for c in report.comparisons:
        out += [f"{report.load.unit} {c.level:g}: {warning_text(w)}" for w in c.warnings]
    timing = [f"total {fmt.duration(report.wall_s)}"]
    for m in report.modes.values():
        ready = m.session.ready_s if m.session else None
        start = f", server ready in {ready:.1f} s" if ready is not None else ""
        timing.append(f"{m.mode} {fmt.duration(m.wall_s)}{start}")
    out.append("Time: " + "; ".join(timing))
    return out


def order_text(n_levels: int, modes: Sequence[str]) -> str:
    """The interleaved order in a line: `interleaved, level by level: AB BA (A = vanilla, B = speculative)`.
    AB on even levels (0-based), BA on odd: `runner.schedule.level_order`'s rule, written out here
    because rendering never imports the runner (a test holds the two together)."""
    if len(modes) < 2:
        return f"interleaved ({', '.join(modes)} alone: nothing to alternate)"
    blocks = " ".join("AB" if i % 2 == 0 else "BA" for i in range(n_levels))
    return f"interleaved, level by level: {blocks} (A = {modes[0]}, B = {modes[1]})"


def schedule_text(report: LoadReport) -> str:
    """The order the levels ran in: interleaved (ABBA, both servers up) or blocked."""
    if report.schedule == "blocked":
        return "blocked (every vanilla level, then every speculative one)"
    return order_text(len(report.load.levels), list(report.modes) or ["vanilla", "speculative"])


def config_rows(report: LoadReport, n_prompts: int | None = None) -> list[tuple[str, str]]:
    cfg, env = report.config, report.environment
    rows = [("Main model", cfg.main_model)]
    if cfg.draft_model:
        rows.append(("Draft model", cfg.draft_model))
    rows.append(("Method", f"{cfg.method.value}, n_draft {cfg.n_draft}, p_min {cfg.draft_p_min:g}"))
    n = n_prompts if n_prompts is not None else len(report.prompt_ids)
    plen = ""
    if report.prompt_tokens:
        toks = sorted(report.prompt_tokens)
        plen = f", {toks[len(toks) // 2]} tokens median ({toks[0]}–{toks[-1]})"
    rows.append(("Prompts", f"{n} from {cfg.prompts or 'the -p prompt'}{plen}"))
    out_len = f"{cfg.n_predict} tokens (ignore_eos)"
    if report.load.input_len:
        out_len = f"input about {report.load.input_len} tokens, output {out_len}"
    rows.append(("Lengths", out_len))
    load = describe(report.load)
    if report.max_rate is not None:
        load = f"levels chosen by the SLO search (below): {load}"
    rows.append(("Load", load))
    rows.append(("Schedule", schedule_text(report)))
    if report.load.slo is not None:
        slo = report.load.slo
        items = [f"{k.removesuffix('_ms')} ≤ {v:g} ms" for k, v in slo.model_dump().items() if v is not None]
        rows.append(("SLO", ", ".join(items)))
    rows.append(
        (
            "Engine",
            f"{cfg.engine}, threads {cfg.threads or 'auto'}, ctx {cfg.ctx_size} per slot, temp {cfg.temp:g}, seed {cfg.seed}",
        )
    )
    rows.append(("Machine", f"{env.cpu_model}, {env.cpu_cores_logical} logical cores"))
    for b in report.binaries:
        rows.append((b.name, f"{b.version} ({b.path})"))
    rows.append(("Status", report.status + (f": {report.error}" if report.error else "")))
    return rows


# --------------------------------------------------------------------------- console


def print_load_config(console: Console, report: LoadReport, n_prompts: int | None = None) -> None:
    console.rule("[bold]velobench load: vanilla vs speculative under load")
    for k, v in config_rows(report, n_prompts):
        if k != "Status":
            console.print(f"  {k + ':':<12} {v}", markup=False)


def progress_line(report: LoadReport, lvl: LoadLevel) -> str:
    """`  vanilla concurrency 2: 24/24 requests in 31.2 s, 0 errors, 85.3 out tok/s, e2e p50 2410 ms`."""
    s = lvl.summary
    head = f"  {lvl.mode} {report.load.unit} {lvl.level:g}: {lvl.finished}/{lvl.issued} requests in {lvl.wall_s:.1f} s"
    if lvl.interrupted:
        head += " (interrupted)"
    if s is None:
        return head + ", nothing in the measure window (the warm-up and cool-down cover every request)"
    acc = f", accepted {_acceptance(s)}" if s.acceptance else ""
    e2e = f", e2e p50 {s.e2e_ms.p50.value:.0f} ms" if s.e2e_ms else ""
    return f"{head}, {s.n_errors_all} errors, {_num(s.output_tok_s)} out tok/s{e2e}{acc}"


WIDE = 180  # tables are wide: a file or pipe gets this width, a terminal its own


def wide_console(console: Console) -> Console:
    """`console`, or where it is not a terminal (a file, a pipe) one as wide as load tables need."""
    if console.is_terminal or console.width >= WIDE:
        return console
    return Console(file=console.file, width=WIDE, highlight=False, soft_wrap=True, color_system=None)


def print_load_report(console: Console, report: LoadReport) -> None:
    wide = wide_console(console)
    for mode in report.modes:
        console.print()
        wide.print(level_table(report, mode).rich())
    for extra in (comparison_table(report), search_table(report)):
        if extra is not None:
            console.print()
            wide.print(extra.rich())
    for line in notes(report):
        console.print(line, markup=False)
    for w in report.warnings:
        console.print(f"[yellow]warning[/yellow] ({w.code.value}): {warning_text(w)}")


# --------------------------------------------------------------------------- files


def _tables(report: LoadReport) -> list[Table]:
    tables = [level_table(report, m) for m in report.modes]
    return tables + [t for t in (comparison_table(report), search_table(report)) if t is not None]


def render_md(report: LoadReport) -> str:
    out = ["# velobench load: vanilla vs speculative under load", ""]
    out += [f"- **{k}:** {md_text(v)}" for k, v in config_rows(report)]
    for t in _tables(report):
        out += ["", t.markdown()]
    out += ["", *[f"- {md_text(n)}" for n in notes(report)]]
    if report.warnings:
        out += ["", "## Warnings", ""] + [
            f"- `{w.code.value}`: {md_text(warning_text(w))}" for w in report.warnings
        ]
    return "\n".join(out) + "\n"


def render_csv(report: LoadReport) -> str:
    """One row per mode and level: the headline numbers of its summary."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = [
        "mode",
        "profile",
        "level",
        "n_measure",
        "n_ok",
        "n_errors_all",
        "request_throughput",
        "output_tok_s",
    ]
    lat = ["ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"]
    w.writerow(
        cols
        + [f"{m}_{s}" for m in lat for s in ("mean", "p50", "p90", "p99")]
        + ["acceptance_rate", "goodput"]
        + ["send_lag_p99_ms", "loop_lag_p99_ms", "generator_cpu_share"]
    )
    for m in report.modes.values():
        for lvl in m.levels:
            s = lvl.summary
            if s is None:
                continue
            row: list[object] = [m.mode, s.profile, s.level, s.n_measure, s.n_ok, s.n_errors_all]
            row += [s.request_throughput, s.output_tok_s]
            for name in lat:
                d: Distribution | None = getattr(s, name)
                row += (
                    [None, None, None, None] if d is None else [d.mean, d.p50.value, d.p90.value, d.p99.value]
                )
            row += [
                s.acceptance.acceptance_rate if s.acceptance else None,
                s.goodput.share if s.goodput else None,
            ]
            g = lvl.lag
            row += [
                g.send_ms.p99 if g and g.send_ms else None,
                g.loop_ms.p99 if g and g.loop_ms else None,
                g.cpu_share if g else None,
            ]
            w.writerow(["" if x is None else x for x in row])
    return buf.getvalue()


def plot_throughput_latency(report: LoadReport) -> str | None:
    """Output tok/s (x) against mean e2e latency (y) per mode, one point per level, labelled; the
    crossover level ringed on both curves (base64 PNG); None with nothing to plot."""
    from velobench.report.plots import _figure, _png

    series = []
    for m in report.modes.values():
        pts = [
            (lvl.level, lvl.summary.output_tok_s, lvl.summary.e2e_ms.mean)
            for lvl in m.levels
            if lvl.summary and lvl.summary.output_tok_s is not None and lvl.summary.e2e_ms is not None
        ]
        if pts:
            series.append((m.mode, pts))
    if not series:
        return None
    fig = _figure(6.5, 4)
    ax = fig.add_subplot()
    cross = report.crossover.level if report.crossover is not None else None
    for k, (mode, pts) in enumerate(series):
        xs, ys = [p[1] for p in pts], [p[2] / 1000 for p in pts]
        ax.plot(xs, ys, "o-", color=f"C{k}", label=label(mode))
        for level, x, y in pts:
            ax.annotate(f"{level:g}", (x, y / 1000), textcoords="offset points", xytext=(5, 5), fontsize=8)
            if cross is not None and level == cross:
                ax.plot([x], [y / 1000], "o", markersize=16, markerfacecolor="none", markeredgecolor="C3")
    if cross is not None:
        ax.plot(
            [],
            [],
            "o",
            markersize=10,
            markerfacecolor="none",
            markeredgecolor="C3",
            label=f"crossover ({report.load.unit} {cross:g})",
        )
    ax.set_xlabel("output tokens/s (all requests)")
    ax.set_ylabel("mean end-to-end latency (s)")
    title = f"Throughput vs latency, points labelled by {report.load.unit}"
    if report.crossover is not None and cross is None:
        title += f"\n{report.crossover.text}"
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)


def _e(text: object) -> str:
    return html.escape(str(text))


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 76rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; }
th { background: #f4f4f4; }
.r { text-align: right; }
.warning { color: #8a5a00; }
img { max-width: 100%; }
""".strip()


def render_html(report: LoadReport) -> str:
    title = "velobench load: vanilla vs speculative under load"
    body = [f"<h1>{_e(title)}</h1>", "<ul>"]
    body += [f"<li><strong>{_e(k)}:</strong> {_e(v)}</li>" for k, v in config_rows(report)]
    body.append("</ul>")
    body += [t.html() for t in _tables(report)]
    body += ["<ul>", *[f"<li>{_e(n)}</li>" for n in notes(report)], "</ul>"]
    png = plot_throughput_latency(report)
    if png is not None:
        body.append(f'<p><img src="data:image/png;base64,{png}" alt="throughput vs latency per mode"></p>')
    if report.warnings:
        body += ["<h2>Warnings</h2>", "<ul>"]
        body += [
            f'<li class="warning"><code>{_e(w.code.value)}</code>: {_e(warning_text(w))}</li>'
            for w in report.warnings
        ]
        body.append("</ul>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
