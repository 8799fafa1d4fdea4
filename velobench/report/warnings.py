"""The one place a warning's text is made: `text(w)` from its code and parameters.

Results store warnings as values (`code` + `params`, see `results.schema.ResultWarning`,
`results.think.ThinkWarning`, `results.load.LevelWarning`); every report (console, Markdown,
CSV, HTML, load and think reports) asks `text` for the words. A warning read from a file written
before warnings were values carries its old text in `message`, and that text is shown unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from velobench.results.load import LevelWarning, LevelWarningCode
from velobench.results.schema import ResultWarning, WarningCode, WarningParams
from velobench.results.think import ThinkWarning, ThinkWarningCode

AnyWarning = ResultWarning | ThinkWarning | LevelWarning

CPU_EXPLANATION = (
    "verifying k draft tokens costs close to k single-token steps when decoding is compute-bound "
    "(CPUs, few cores), so drafting only adds work; on GPUs, where decoding is memory-bound, "
    "verification is nearly free and speculation wins"
)

Template = str | Callable[[WarningParams], str]  # a str.format template over the params, or a function


def _session_note(p: WarningParams) -> str:
    """`mode: note`, or the note alone when no mode is given (load's prompt notes)."""
    return f"{p['mode']}: {p['note']}" if p.get("mode") else str(p["note"])


def _slower(p: WarningParams) -> str:
    """The candidate is significantly slower: why, from this machine's costs (`why`, the ceiling's
    explanation) when they were measured, else the general CPU explanation with the ratio."""
    if p["candidate"] == "speculative":
        head = "speculative decoding is slower than vanilla"
    else:
        head = f"{p['candidate']} is slower than {p['baseline']}"
    if p.get("why"):
        return f"{head}: {p['why']}"
    return f"{head} ({float(p['ratio'] or 0):.2f}x): {CPU_EXPLANATION}"


def _test(p: WarningParams) -> str:
    """The test a p-value came from: `test` where the warning names it (files from version 5
    on), else Welch's, the only one before."""
    return str(p.get("test") or "Welch")


def _no_difference(p: WarningParams) -> str:
    return (
        f"no significant difference between {p['baseline']} and {p['candidate']} "
        f"at 95% ({_test(p)} p = {float(p['p_value'] or 0):.3g})"
    )


def _think_slower(p: WarningParams) -> str:
    return (
        "speculative thinking is slower than the large model alone "
        f"({float(p['ratio'] or 0):.2f}x, {_test(p)} p = {float(p['p_value'] or 0):.3g})"
    )


def _think_not_significant(p: WarningParams) -> str:
    return f"the latency difference is not significant ({_test(p)} p = {float(p['p_value'] or 0):.3g})"


def _above_acceptance(p: WarningParams) -> str:
    """Why verification costs at least one decode step here: measured, or decoding on the CPU."""
    if p.get("basis") == "verify-cost":
        why = f"verifying costs {float(p['verify_cost'] or 0):.2f} decode steps here"
    else:
        why = "no ceiling was measured and decoding ran on the CPU, where verifying costs at least a decode step"
    return (
        f"the speedup ({float(p['speedup'] or 0):.2f}x) exceeds the mean acceptance length "
        f"({float(p['mean_length'] or 0):.2f} tokens per verification step), and {why}: "
        "impossible, the measurement is broken"
    )


def _p(value: object) -> str:
    return "-" if value is None else f"{float(value):.2g}"  # type: ignore[arg-type]


def _drift(p: WarningParams) -> str:
    return (
        f"{p['mode']} tokens/s drifted while measuring: {float(p['change'] or 0):+.0%} over "
        f"{float(p['span_s'] or 0):.0f} s (trend p = {_p(p['p_trend'])}), second half "
        f"{float(p['halves_change'] or 0):+.0%} against the first (Welch p = {_p(p['p_halves'])}): "
        "the machine changed during the run; the interleaved schedule's pairs cancel a linear drift, "
        "a blocked run's speedup carries it"
    )


def _interference(p: WarningParams) -> str:
    who = (
        f"{p['busiest']} (pid {p['busiest_pid']}, {float(p['busiest_pct'] or 0):.0f}%)"
        if p.get("busiest")
        else "unknown"
    )
    if p.get("others"):
        who += f", then {p['others']}"
    return (
        f"other processes used the CPU during {p['iterations']} of {p['of']} iteration(s) ({p['modes']}): "
        f"up to {float(p['max_pct'] or 0):.0f}% of one core (threshold {float(p['threshold'] or 0):.0f}%), "
        f"the busiest {who}: close it, rely on the interleaved schedule's pairs, or measure such "
        "iterations again (--redo-disturbed N)"
    )


def _redone(p: WarningParams) -> str:
    who = f"{p['busiest']} (pid {p['busiest_pid']})" if p.get("busiest") else "unknown"
    return (
        f"{p['iterations']} disturbed iteration(s) measured again ({p['modes']}; --redo-disturbed "
        f"{p['budget']}): other processes used up to {float(p['max_pct'] or 0):.0f}% of one core while they "
        f"ran (threshold {float(p['threshold'] or 0):.0f}%), the busiest {who}; the disturbed ones are kept "
        "in the result (`redone`), out of the statistics"
    )


RUN: Mapping[WarningCode, Template] = {
    WarningCode.ONE_ITERATION: "one iteration per mode: no spread, no interval, no test",
    WarningCode.HIGH_VARIANCE: "{mode} tokens/s varies by {cv:.0%} (coefficient of variation): "
    "close other programs or raise --iterations",
    WarningCode.SPECULATION_SLOWER: _slower,
    WarningCode.NO_SIGNIFICANT_DIFFERENCE: _no_difference,
    WarningCode.UNDEFINED_TEST: "{candidate} vs {baseline}: every sample (or pair ratio) is the same, "
    "so the interval and the test are undefined (shown as -); vary the prompts or check the engine",
    WarningCode.NO_CEILING: "no speedup ceiling: {reason}",
    WarningCode.DRAFT_NOT_OFFLOADED: "the main model is offloaded (-ngl {gpu_layers}) but the draft is not "
    "(set -ngld/--gpu-layers-draft): a draft on the CPU is a classic cause of 'speculation is slower'",
    WarningCode.DRAFT_CHOICE: "{note}",
    WarningCode.NOTHING_DRAFTED: "no token was drafted: speculation never engaged",
    WarningCode.LLAMA_ENV_IGNORED: "ignored {variables} from the environment: "
    "a run's settings come from its command line",
    WarningCode.SESSION_NOTE: _session_note,
    WarningCode.INTERRUPTED: "interrupted: finished {kept} kept",
    WarningCode.UNVERIFIED_MODEL: "{note}",
    WarningCode.SYNTHETIC_MODEL: "synthetic: speed only, never model quality ({models}: random weights "
    "from velobench models synth)",
    WarningCode.CEILING_EXCEEDED: "the speedup ({speedup:.2f}x, 95% CI from {ci95_low:.2f}) exceeds "
    "the ceiling ({ceiling:.2f}x) by more than its interval: the baseline was disturbed or the costs "
    "were mis-measured",
    WarningCode.SPEEDUP_ABOVE_ACCEPTANCE: _above_acceptance,
    WarningCode.UNEQUAL_LENGTHS: "{candidate} and {baseline} generated different numbers of tokens for "
    "{prompts} of {of} prompt(s) (up to {max_difference} tokens apart; one stopped at end of sequence "
    "early): tokens/s compares different work",
    WarningCode.DEGENERATE_OUTPUT: "{mode}: {iterations} of {of} generated text(s) loop (prompts: {prompts}): "
    "repetition inflates n-gram and draft acceptance",
    WarningCode.DRIFT: _drift,
    WarningCode.INTERFERENCE: _interference,
    WarningCode.REDONE: _redone,
    WarningCode.PROMPT_CACHE_HITS: "{mode}: the server reused cached prompt tokens in {iterations} of {of} "
    "iteration(s) (up to {max_tokens}): TTFT and prompt time measure cache hits, not prompt processing",
    WarningCode.UNCHECKED_SERVER: "velobench did not start {servers}: their settings (threads, batching, "
    "prompt caching, what else runs beside them) could not be checked, only what they report",
    WarningCode.SCHEDULE_BLOCKED: "blocked schedule (every vanilla iteration first) instead of interleaved: "
    "{reason}; drift during the run biases the speedup",
}

THINK: Mapping[ThinkWarningCode, Template] = {
    ThinkWarningCode.FAILED_RUNS: "{count} run(s) failed and are left out of the statistics",
    ThinkWarningCode.ONE_RUN: "{mode}: one complete run, no spread or interval",
    ThinkWarningCode.SPEC_SLOWER: _think_slower,
    ThinkWarningCode.NO_SIGNIFICANT_SPEEDUP: _think_not_significant,
    ThinkWarningCode.ACCURACY_DROP: "speculative thinking answers fewer problems right "
    "({spec_rate:.0%} vs {large_rate:.0%}, {method} p = {p_value:.3g})",
    ThinkWarningCode.NO_TRIGGERS: "no trigger fired in any speculative run: the small model wrote everything",
    ThinkWarningCode.MAX_TOKENS: "{count} run(s) hit --max-tokens before an answer or end of sequence",
}

_LAG_WORDS = {
    "send": "p99 send lag {:.0f} ms",
    "loop": "p99 event-loop lag {:.0f} ms",
    "cpu": "CPU {:.0%} of a core",
}


def _bottleneck(p: WarningParams) -> str:
    """`vanilla: velobench was the bottleneck at this level: p99 send lag 40 ms`."""
    what = _LAG_WORDS[str(p["measure"])].format(float(p["value"] or 0))
    return f"{p['mode']}: velobench was the bottleneck at this level: {what}"


LEVEL: Mapping[LevelWarningCode, Template] = {
    LevelWarningCode.SHORT_BATCHES: "{mode}: throughput batches ({batch_s:.2f} s) are shorter than a request "
    "({e2e_s:.2f} s): the throughput interval is optimistic; run longer",
    LevelWarningCode.REQUESTS_FAILED: "{mode}: some requests failed; ratios use the successful ones",
    LevelWarningCode.GENERATOR_BOTTLENECK: _bottleneck,
}


def text(w: AnyWarning) -> str:
    """The words of a warning: its old text if it has one (files from before warnings were values),
    else its code's template filled with its params. Params that do not fit the template (a file
    edited by hand) give `code (key=value, ...)` rather than an error."""
    if w.message is not None:
        return w.message
    template = _template(w)
    try:
        return template(w.params) if callable(template) else template.format(**w.params)
    except (KeyError, ValueError, TypeError, IndexError):
        return f"{w.code.value} ({', '.join(f'{k}={v}' for k, v in w.params.items())})"


def _template(w: AnyWarning) -> Template:
    if isinstance(w, ThinkWarning):
        return THINK[w.code]
    if isinstance(w, LevelWarning):
        return LEVEL[w.code]
    return RUN[w.code]
