"""Rendering a report for people: configuration, progress lines, tables, speedup, verdict."""

from __future__ import annotations

import math
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from velobench.analysis.verdict import outcome
from velobench.report import fmt
from velobench.report.fmt import ratio_short, speedup_text
from velobench.report.warnings import text as warning_text
from velobench.results.costs import Ceiling
from velobench.results.measures import Ratio, Summary
from velobench.results.schema import Iteration, Losslessness, ModeResult, Reference, Report, TokenProb

MODE_LABEL = {"vanilla": "Vanilla", "speculative": "Speculative"}


def label(mode: str) -> str:
    """A mode's name as a column heading."""
    return MODE_LABEL.get(mode, mode.replace("-", " ").capitalize())


def print_config(console: Console, report: Report) -> None:
    cfg = report.config
    console.rule("[bold]velobench: vanilla vs speculative decoding")
    console.print("Configuration:")
    remote = bool(cfg.server_url or cfg.baseline_url)
    if cfg.main_model:
        console.print(f"  Main model:  {cfg.main_model}")
    if cfg.draft_model:
        console.print(f"  Draft model: {cfg.draft_model}")
    spec_bin = report.speculative.binary if report.speculative else None
    method = f"{cfg.method.value}" + (f" ({spec_bin})" if spec_bin else "")
    if remote:  # the servers' own settings decide what speculation does
        console.print("  Method:      as configured on the servers (acceptance from their /metrics)")
    else:
        console.print(f"  Method:      {method}, n_draft {cfg.n_draft}, p_min {cfg.draft_p_min}")
    iterations = str(cfg.iterations)
    if cfg.target_ci is not None:  # rounds until the paired interval is narrow enough
        limit = f", {fmt.duration(cfg.max_time)}" if cfg.max_time is not None else ""
        iterations = f"until ±{cfg.target_ci:g}% (at most {cfg.max_iterations}{limit})"
    console.print(
        f"  n_predict:   {cfg.n_predict}   iterations: {iterations} (+{cfg.warmup} warm-up)   "
        f"engine: {cfg.engine}   threads: {cfg.threads or 'auto'}   ctx: {cfg.ctx_size}   temp: {cfg.temp}   seed: {cfg.seed}"
    )
    if cfg.prompts:
        console.print(
            f"  Prompt set:  {cfg.prompts}" + (f" ({', '.join(cfg.categories)})" if cfg.categories else "")
        )
    else:
        prompt = (cfg.prompt_file or cfg.prompt).replace("\n", " ")
        console.print(f"  Prompt:      {prompt if len(prompt) <= 80 else prompt[:77] + '...'}")
    for b in report.binaries:
        console.print(f"  {b.name}: {b.version} [dim]({b.source}: {b.path})[/dim]")


def progress_printer(console: Console) -> Callable[[str, int, int, Iteration | None], None]:
    """A callback for the runner that prints `  Iteration 3/10 (vanilla) ... 28.45 tok/s (3521 ms)`
    (the mode on every line: an interleaved run alternates them)."""

    def show(mode: str, i: int, n: int, it: Iteration | None) -> None:
        if i == 0:
            console.print(f"\nRunning {mode} ...")
            return
        if i < 0:
            if it is None:
                console.print(f"  Warm-up {-i}/{n} ...")
            return
        if it is None:
            console.print(f"  Iteration {i}/{n} ({mode}) ... ", end="")
            return
        extra = f", {fmt.percent(it.acceptance_rate)} accepted" if it.acceptance_rate is not None else ""
        console.print(f"{it.tokens_per_second:.2f} tok/s ({it.wall_ms:.0f} ms{extra})")

    return show


def verdict_text(r: Ratio | None) -> str:
    """The one line that answers "is speculation faster here?" (the outcome from analysis.verdict)."""
    if r is None:
        return "no comparison: only one mode was measured"
    ci = fmt.ci(r.ci95_low, r.ci95_high) or "no interval"
    p = f"p = {fmt.p_value(r.p_value)}"
    match outcome(r):
        case "too few iterations":
            return f"speculative/vanilla = {fmt.ratio(r.ratio)} ({ci}); too few iterations to call a winner"
        case "not significant":
            return f"no significant difference: {fmt.ratio(r.ratio)} ({ci}, {p})"
        case "faster":
            return f"speculative decoding is {fmt.ratio(r.ratio)} faster ({ci}, {p})"
        case _:
            return f"speculative decoding is slower: {fmt.ratio(r.ratio)} vanilla ({ci}, {p})"


def speedup_lines(report: Report) -> list[tuple[str, str]]:
    """(label, text) lines every report shows under its results: the headline speedup (paired
    where pairs exist), the ratio of means beside it, and how a `--target-ci` run stopped."""
    out: list[tuple[str, str]] = []
    head, rom = report.speedup_detail, report.ratio_of_means
    if head is not None:  # its text names the estimator: "(paired, n pairs)" or "(Fieller)"
        out.append(("Speedup", speedup_text(head)))
    if rom is not None and head is not rom:
        out.append(("Ratio of means", speedup_text(rom)))
    if report.stopping is not None:
        out.append(("Stopping", stopping_text(report)))
    return out


SOURCE_WORDS = {
    "server-response": "llama-server's per-response counts",
    "metrics-delta": "/metrics deltas around each request",
    "cli-output": "the cli tool's printed summary",
}


def acceptance_line(report: Report) -> str | None:
    """`per prompt (7): < 50% 0, 50-75% 1, 75-90% 2, 90-100% 4; token-weighted 85.1%, request-
    weighted 80.3% (from /metrics deltas around each request)`; None without per-prompt counts."""
    spec = report.speculative
    acc = spec.acceptance if spec else None
    if acc is None or not acc.per_prompt:
        return None
    buckets = ", ".join(f"{name} {n}" for name, n in acc.buckets.items())
    sources = sorted({s for p in acc.per_prompt for s in p.sources})
    where = f" (from {', '.join(SOURCE_WORDS[s] for s in sources)})" if sources else ""
    return (
        f"per prompt ({len(acc.per_prompt)}): {buckets}; token-weighted {fmt.percent(acc.rate, 1)}, "
        f"request-weighted {fmt.percent(acc.request_rate, 1)}{where}"
    )


STOP_WORDS = {
    "target": "the interval reached the target",
    "max-iterations": "--max-iterations reached before the target",
    "max-time": "--max-time reached before the target",
    "interrupted": "interrupted before the target",
}


def stopping_text(report: Report) -> str:
    """`target ±5% reached after 4 looks (42 pairs): 1.52x, sequential 95% CI 1.46–1.58 (±4.1%)`."""
    s = report.stopping
    if s is None:
        return fmt.MISSING
    why = STOP_WORDS.get(s.stopped_by or "", "still running")
    last = s.last
    if last is None:
        return f"target ±{s.target:.0%}: {why}, no look yet"
    width = "" if last.relative_half_width is None else f" (±{last.relative_half_width:.1%})"
    ci = fmt.ci(last.ci95_low, last.ci95_high) or f"no interval under {s.min_pairs} pairs"
    return (
        f"target ±{s.target:.1%}: {why} after {last.look} look(s), {last.n_pairs} pairs, "
        f"{fmt.duration(last.elapsed_s)}: {fmt.ratio(last.ratio)}, sequential {ci}{width}"
    )


def reference_text(r: Reference) -> str:
    """One line: velobench's vanilla decode speed over llama-bench's, paired, and why they differ."""
    head = f"velobench vanilla ÷ llama-bench tg at the same length and depth ({r.depth_tokens:.0f} tokens): "
    if r.ratio is None:
        return head + f"no interval ({r.n_pairs} pair)"
    return (
        head + f"{fmt.ratio_short(r.ratio)} over {r.n_pairs} pairs. velobench times the server's (or the "
        "cli's) own decode, which samples every token; llama-bench decodes without sampling"
    )


def ceiling_text(c: Ceiling, device: str = "this machine") -> str:
    """One line: what verification and drafting cost, what a step yields, and the resulting ceiling
    (analysis.ceiling.compute)."""
    head = (
        f"verifying {c.gamma + 1} tokens costs {c.verify_cost:.1f}× one token on {device}; "
        f"the draft adds {c.draft_cost:.2f}× per drafted token; "
        f"at α = {c.alpha:.2f} a step yields {c.expected_tokens:.1f} tokens "
        f"for {c.step_cost:.1f} steps of cost"
    )
    if c.ceiling < 1:
        tail = f"ceiling {c.ceiling:.2f}×: speculation cannot win here"
    else:
        tail = f"ceiling {c.ceiling:.2f}×: speculation can win"
    if c.measured is not None and c.fraction_of_ceiling is not None:
        tail += f" (measured {c.measured:.2f}×, {fmt.percent(c.fraction_of_ceiling)} of the ceiling)"
    return f"{head} → {tail}"


def _range(s: Summary | None, digits: int = 2) -> str:
    return fmt.MISSING if s is None else fmt.interval(s.min, s.max, digits)


def results_table(report: Report) -> Table:
    modes = [m for m in report.modes.values() if m.iterations]
    streamed = any(i.e2e_ms is not None for m in modes for i in m.iterations)
    ttft_label = "TTFT ms" if streamed else "TTFT ms (prompt eval)"  # no stream: the tool's prompt time
    caption = ", ".join(f"{label(m.mode).lower()}: {m.binary}" for m in modes)
    table = Table(
        title="Results (mean ± stddev)",
        title_justify="left",
        caption=caption,
        caption_justify="left",
    )
    table.add_column("Metric")
    for m in modes:
        table.add_column(f"{label(m.mode)} (n={len(m.iterations)})", justify="right")
    rows = [
        ("Tokens/s", lambda m: fmt.mean_sd(m.tokens_per_second)),
        ("  range", lambda m: _range(m.tokens_per_second)),
        ("  95% CI of mean", lambda m: _ci(m.tokens_per_second)),
        (ttft_label, lambda m: fmt.mean_sd(m.time_to_first_token_ms)),
        ("Total time ms", lambda m: fmt.mean_sd(m.total_time_ms)),
        ("  range", lambda m: _range(m.total_time_ms)),
        ("E2E latency ms", lambda m: fmt.mean_sd(m.e2e_ms)),
        ("TPOT ms", lambda m: fmt.mean_sd(m.tpot_ms)),
        ("ITL p50 / p99 ms", lambda m: _itl(m)),
        ("Acceptance", _acceptance),
        (
            "Mean acceptance length",
            lambda m: f"{m.acceptance.mean_length:.2f}" if m.acceptance and m.acceptance.mean_length else "-",
        ),
    ]
    for name, cell in rows:
        cells = [cell(m) for m in modes]
        if any(c != "-" for c in cells) or name in ("Acceptance",):
            table.add_row(name, *cells)
    return table


def _itl(m: ModeResult) -> str:
    if m.itl_p50_ms is None or m.itl_p99_ms is None:
        return "-"
    return f"{m.itl_p50_ms.mean:.1f} / {m.itl_p99_ms.mean:.1f}"


def _ci(s: Summary | None) -> str:
    return fmt.MISSING if s is None else fmt.interval(s.ci95_low, s.ci95_high)


def _acceptance(m: ModeResult) -> str:
    a = m.acceptance
    if a is None:
        return "-"
    rate = "n/a" if a.rate is None else fmt.percent(a.rate, 1)
    return f"{rate} ({a.accepted}/{a.drafted})"


# Telemetry rows: (label, metric from telemetry.iteration_metrics, digits).
TELEMETRY_ROWS = (
    ("Mean power W", "mean_power_w", 1),
    ("Peak power W", "peak_power_w", 1),
    ("Energy J", "energy_j", 2),
    ("Energy per token J", "energy_per_token_j", 4),
    ("GPU utilization %", "gpu_mean_utilization_pct", 0),
    ("GPU peak memory MiB", "gpu_peak_memory_used_mib", 0),
    ("GPU peak temperature °C", "gpu_peak_temperature_c", 0),
    ("GPU SM clock MHz", "gpu_mean_sm_clock_mhz", 0),
    ("CPU package W (RAPL)", "cpu_package_mean_power_w", 1),
    ("Engine CPU % (mean)", "process_mean_cpu_pct", 0),
    ("Engine CPU % (peak)", "process_peak_cpu_pct", 0),
    ("Engine peak RSS MiB", "process_peak_rss_mib", 0),
    ("Sampler CPU %", "sampler_cpu_pct", 2),
)


def telemetry_notes(report: Report) -> list[str]:
    """Why a telemetry source is missing (no NVML, no GPU, no RAPL), once each."""
    notes: dict[str, None] = {}
    for m in report.modes.values():
        for it in m.iterations:
            if it.telemetry is not None:
                for note in (it.telemetry.gpu_note, it.telemetry.cpu_energy_note):
                    if note:
                        notes[note] = None
    return list(notes)


def telemetry_table(report: Report) -> Table | None:
    """Power, energy, utilization and the engine's CPU/RSS per mode (mean ± stddev per iteration)."""
    modes = [m for m in report.modes.values() if m.telemetry]
    if not modes:
        return None
    table = Table(title="Telemetry (mean ± stddev per iteration)", title_justify="left")
    table.add_column("Metric")
    for m in modes:
        table.add_column(f"{label(m.mode)} (n={len(m.iterations)})", justify="right")
    for name, key, digits in TELEMETRY_ROWS:
        cells = [fmt.mean_sd(m.telemetry.get(key), digits=digits) for m in modes]
        if any(c != "-" for c in cells):
            table.add_row(name, *cells)
    return table


def categories_table(report: Report) -> Table:
    table = Table(title="Per category (tokens/s mean ± stddev)", title_justify="left")
    comp = report.primary
    base, cand = (label(comp.baseline), label(comp.candidate)) if comp else ("Baseline", "Candidate")
    cols = ("Category", "Prompts", base, cand, "Accepted", "Paired [95% CI]", "Ratio of means [95% CI]")
    for col in cols:
        table.add_column(col, justify="left" if col == "Category" else "right", no_wrap=True)
    for c in report.categories:
        acc = fmt.percent(c.acceptance_rate)
        table.add_row(
            c.category,
            str(c.n_prompts),
            fmt.mean_sd(c.baseline_tokens_per_second, digits=1),
            fmt.mean_sd(c.candidate_tokens_per_second, digits=1),
            acc,
            ratio_short(c.paired_speedup),
            ratio_short(c.speedup),
        )
    return table


def lossless_verdict(lo: Losslessness) -> str:
    """`5/7 prompts identical (71%); 2 near-ties, 0 decisive (near-tie: within 0.1 nats)`."""
    text = f"{lo.identical}/{lo.compared} prompts identical ({fmt.percent(lo.match_rate)})"
    differ = lo.compared - lo.identical
    if differ:
        parts = [f"{lo.near_ties} near-tie(s)", f"{lo.decisive} decisive"]
        if lo.unclassified:
            parts.append(f"{lo.unclassified} unclassified")
        text += "; " + ", ".join(parts)
        if lo.margin_nats is not None and lo.near_ties + lo.decisive:
            text += f" (near-tie: the candidate's token within {lo.margin_nats:g} nats of the target's top)"
    if lo.lossy:
        text += "; lossy by design: " + "; ".join(lo.lossy)
    return text


def _token(t: TokenProb | None) -> str:
    return "?" if t is None else f"{t.text or '#' + str(t.id)!r} {fmt.percent(math.exp(t.logprob), 1)}"


def divergence_lines(lo: Losslessness) -> list[str]:
    """One line per differing prompt: where, the class, both arms' tokens as the target ranks them."""
    out = []
    for m in lo.prompts:
        if m.identical:
            continue
        head = f"{m.prompt_id} at {m.unit} {m.first_difference}: {m.divergence or 'differs'}"
        if m.gap_nats is None:
            out.append(head)
            continue
        cand = _token(m.candidate_token)
        if m.candidate_token is not None and not any(t.id == m.candidate_token.id for t in m.top):
            cand = f"#{m.candidate_token.id} <= {fmt.percent(math.exp(m.candidate_token.logprob), 1)} (not in the top {len(m.top)})"
        top = ", ".join(_token(t) for t in m.top[:3])
        out.append(
            f"{head} (gap {m.gap_nats:.3f} nats): vanilla {_token(m.baseline_token)}, speculative {cand}; target's top: {top}"
        )
    if lo.note:
        out.append(lo.note)
    return out


def print_report(console: Console, report: Report) -> None:
    console.print()
    console.print(results_table(report))
    if report.categories:
        console.print(categories_table(report))
    tele = telemetry_table(report)
    if tele is not None:
        console.print(tele)
        for note in telemetry_notes(report):
            console.print(f"  telemetry: {note}")
    energy = report.primary.energy_per_token if report.primary else None
    if energy is not None:
        console.print(f"Energy per token, speculative / vanilla: {ratio_short(energy)}")
    for name, text in speedup_lines(report):
        console.print(f"{name}: {text}")
    acceptance = acceptance_line(report)
    if acceptance is not None:
        console.print(f"Acceptance {acceptance}")
    console.print(f"Verdict: {verdict_text(report.speedup_detail)}")
    for m in report.modes.values():
        if m.source:
            console.print(f"({m.mode} iterations from the baseline run {m.source})")
    if report.ceiling is not None:
        console.print(f"Ceiling: {ceiling_text(report.ceiling)}")
    if report.reference is not None:
        console.print(f"llama-bench: {reference_text(report.reference)}")
    if report.lossless is not None:
        console.print(f"Lossless at temperature 0: {lossless_verdict(report.lossless)}", markup=False)
        for line in divergence_lines(report.lossless)[:10]:
            console.print(f"  {line}", markup=False)
    for w in report.warnings:
        console.print(f"[yellow]warning[/yellow] ({w.code.value}): {warning_text(w)}")
