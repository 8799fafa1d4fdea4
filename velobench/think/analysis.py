"""Speculative thinking, the pure half: triggers, final answers, result records and summaries.

Triggers. A trigger is a paragraph break ("\\n\\n") followed directly by one of the trigger
words, compared case-insensitively, as a prefix: "\\n\\nWait," and "\\n\\nHmmm" fire ("wait",
"hmm"); so would the rare "\\n\\nButter" ("but"). Prefix matching is deliberate: it is exactly
what a server's stop strings can see (the small model is stopped the moment "\\n\\nWait" appears,
before the next character exists), so the runner's stop strings and this detector agree on
every text. Leading spaces or markdown ("\\n\\n**Wait**") are not triggers.

Answers. `extract_answer` takes, in order: the last complete `\\boxed{...}` (nested braces
allowed), the last GSM8K `#### N`, the last "answer is N" / "Answer: N", else the last number
in the text. `normalize_answer` makes "1,000", "$1000", "1000.0", "1000." and "\\$1{,}000" all
"1000", and fractions exact ("0.5" == "1/2" == "\\frac{1}{2}"). `is_correct` compares them.

Summaries. One `ModeSummary` per test mode (large alone, speculative thinking) over its
complete runs, and the comparisons: the speedup paired by (problem, run) as a geometric mean of
per-pair ratios (`velobench.analysis.stats.paired_ratio`, the one `velobench run` uses), which
the warnings judge from two pairs on, beside the ratio of mean latencies (Fieller 95% interval,
Welch p-value, `velobench.analysis.stats.ratio_of_means`); the throughput ratio, the large-model
token share (its interval Wilson's, within [0, 1]) and reduction, and accuracy of both with an exact test of their difference (McNemar when
runs pair up by problem and run, Fisher otherwise). Undefined statistics are None, never NaN.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from fractions import Fraction

from scipy import stats as sps

from velobench.analysis import stats
from velobench.analysis.stats import ratio_of_means, summarize
from velobench.results.measures import Ratio, Summary
from velobench.results.think import (
    AccuracyTest,
    ModeSummary,
    PairedRatio,
    ProblemSummary,
    Proportion,
    StoppedBy,
    TestMode,
    ThinkReport,
    ThinkRun,
    ThinkSegment,
    ThinkSummary,
    ThinkWarning,
    ThinkWarningCode,
    TriggerHit,
)

PARAGRAPH_BREAK = "\n\n"


# ---------------------------------------------------------------- triggers


def _trigger_regex(words: Sequence[str]) -> re.Pattern[str]:
    if not words:
        raise ValueError("no trigger words")
    alternatives = "|".join(re.escape(w) for w in sorted({w.lower() for w in words}, key=len, reverse=True))
    return re.compile(re.escape(PARAGRAPH_BREAK) + f"({alternatives})", re.IGNORECASE)


def find_triggers(text: str, words: Sequence[str]) -> list[TriggerHit]:
    """Every trigger in `text`, in order: PARAGRAPH_BREAK then a trigger word (prefix, any case).

    Overlapping breaks ("\\n\\n\\nWait") count once, at the break nearest the word.
    Raises ValueError when `words` is empty.
    """
    rx = _trigger_regex(words)
    hits: list[TriggerHit] = []
    pos = 0
    while (m := rx.search(text, pos)) is not None:
        hits.append(TriggerHit(start=m.start(), end=m.end(), word=m.group(1).lower()))
        pos = m.end()
    return hits


def first_trigger_after(text: str, words: Sequence[str], boundary: int) -> TriggerHit | None:
    """The first trigger that ends after `boundary`, i.e. that the text past `boundary` completes.

    The runner calls it with boundary = the length of the text before the newest piece: a
    trigger at the junction (a paragraph break written before, the word in the new piece)
    counts, triggers already handled (ending at or before the boundary) do not.
    """
    for hit in find_triggers(text, words):
        if hit.end > boundary:
            return hit
    return None


def trigger_stop_strings(words: Sequence[str]) -> list[str]:
    """Stop strings that halt a server the moment a trigger appears: the break + each word in
    lower, Capitalised and UPPER case (servers match stop strings case-sensitively).

    "wait" -> ["\\n\\nwait", "\\n\\nWait", "\\n\\nWAIT"]. Other casings are still caught by
    `first_trigger_after` on the returned text, at the price of the tokens after them.
    """
    out: list[str] = []
    for w in words:
        for variant in (w.lower(), w[:1].upper() + w[1:].lower(), w.upper()):
            s = PARAGRAPH_BREAK + variant
            if s not in out:
                out.append(s)
    return out


# ---------------------------------------------------------------- answers

_NUMBER = r"(?:[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+)"
_NUMBER_RX = re.compile(_NUMBER)
_GSM8K_RX = re.compile(r"####\s*\$?\s*(" + _NUMBER + r")")
_ANSWER_IS_RX = re.compile(r"answer\s*(?:is|:|=)\s*\\?\$?\s*(" + _NUMBER + r"(?:\s*/\s*\d+)?)", re.IGNORECASE)


def boxed_contents(text: str) -> list[str]:
    """The contents of every complete `\\boxed{...}` / `\\fbox{...}` in order, nested braces kept.

    An unclosed box (a text cut off inside it) is skipped.
    """
    out: list[str] = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
            i += 1
        if depth == 0:
            out.append(text[m.end() : i - 1])
    return out


def final_answer(text: str) -> str | None:
    """The answer a text states as final: the last complete \\boxed{} or GSM8K `#### N` line.

    The runner stops a run once this is not None (when configured to). No fallback to "the
    last number": a text mid-reasoning is full of numbers.
    """
    boxes = boxed_contents(text)
    if boxes:
        return boxes[-1]
    gsm = _GSM8K_RX.findall(text)
    return gsm[-1] if gsm else None


def extract_answer(text: str) -> str | None:
    """The answer of a finished text, raw (not normalised): the last \\boxed{}, else the last
    `#### N`, else the last "answer is N" / "Answer: N", else the last number; None if none.
    """
    found = final_answer(text)
    if found is not None:
        return found
    said = _ANSWER_IS_RX.findall(text)
    if said:
        return str(said[-1])
    numbers = _NUMBER_RX.findall(text)
    return numbers[-1] if numbers else None


def reference_answer(reference: str) -> str:
    """A data set's answer field as an answer: GSM8K's solution text -> the number after ####."""
    m = _GSM8K_RX.findall(reference)
    return m[-1] if m else reference.strip()


_LATEX_WRAPPERS = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_FRAC_RX = re.compile(r"^([-+]?)\\[dt]?frac\s*\{\s*([-+]?\d+)\s*\}\s*\{\s*(\d+)\s*\}$")


def _clean(s: str) -> str:
    s = s.strip()
    for _ in range(3):  # \text{\textbf{x}}
        s = _LATEX_WRAPPERS.sub(r"\1", s)
    s = s.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("\\,", "")
    s = s.replace("\\;", "").replace("\\ ", " ").replace("{,}", ",").replace("\\%", "%")
    s = s.replace("\\$", "$").replace("^\\circ", "").replace("^{\\circ}", "").replace("°", "")
    s = s.strip().strip("$").strip()
    s = re.sub(r"^[a-zA-Z]\s*=\s*", "", s)  # "x = 5"
    s = s.rstrip(".").strip()
    return s


def parse_number(s: str) -> Fraction | None:
    """The exact value of a number as people write answers, or None if `s` is not one number.

    Accepts "42", "-3", "1,000" (thousands groups only), "5.0", "$5", "50%" (-> 50, as GSM8K
    writes it), "1/2", "\\frac{1}{2}", "\\dfrac{3}{4}", "x = 7", "18 \\text{ dollars}" (one number
    with words around it). "1,2" and "3 and 4" are not one number.
    """
    c = _clean(s).replace("$", "").rstrip("%").strip()
    m = _FRAC_RX.match(c)
    if m:
        sign, num, den = m.groups()
        return None if int(den) == 0 else Fraction(int(num), int(den)) * (-1 if sign == "-" else 1)
    m = re.fullmatch(r"([-+]?\d+)\s*/\s*(\d+)", c)
    if m:
        return None if int(m.group(2)) == 0 else Fraction(int(m.group(1)), int(m.group(2)))
    if re.fullmatch(_NUMBER, c):
        return Fraction(c.replace(",", ""))
    numbers = _NUMBER_RX.findall(c)
    letters_only = _NUMBER_RX.sub("", c)
    if len(numbers) == 1 and re.fullmatch(r"[\sA-Za-z%.]*", letters_only):
        return Fraction(numbers[0].replace(",", ""))
    return None


def normalize_answer(s: str) -> str:
    """A canonical string for an answer: numbers exact ("1000", "-3", "1/2"), else the cleaned
    text lower-cased without spaces ("\\text{Blue}" -> "blue")."""
    v = parse_number(s)
    if v is not None:
        return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"
    return re.sub(r"\s+", "", _clean(s)).lower()


def is_correct(answer: str | None, reference: str | None) -> bool | None:
    """None without a reference; False without an answer; else normalised equality."""
    if reference is None:
        return None
    if answer is None:
        return False
    return normalize_answer(answer) == normalize_answer(reference_answer(reference))


# ---------------------------------------------------------------- result records


def make_run(
    *,
    problem_id: str,
    run: int,
    mode: TestMode,
    seed: int | None,
    latency_s: float,
    segments: list[ThinkSegment],
    stopped_by: StoppedBy,
    reference: str | None,
    error: str | None = None,
) -> ThinkRun:
    """A ThinkRun whose totals, ratio, answer and correctness are derived from its segments."""
    text = "".join(s.text for s in segments)
    small = sum(s.tokens for s in segments if s.writer == "small")
    large = sum(s.tokens for s in segments if s.writer == "large")
    total = small + large
    answer = extract_answer(text) if text else None
    return ThinkRun(
        problem_id=problem_id,
        run=run,
        mode=mode,
        seed=seed,
        latency_s=latency_s,
        tokens=total,
        small_tokens=small,
        large_tokens=large,
        small_seconds=sum(s.seconds for s in segments if s.writer == "small"),
        large_seconds=sum(s.seconds for s in segments if s.writer == "large"),
        tokens_per_s=total / latency_s if latency_s > 0 and total > 0 else None,
        large_ratio=large / total if total else None,
        interventions=sum(1 for s in segments if s.writer == "large" and s.trigger is not None),
        stopped_by=stopped_by,
        answer=answer,
        reference=reference,
        correct=is_correct(answer, reference),
        text=text,
        segments=segments,
        error=error,
    )


# ---------------------------------------------------------------- statistics


def wilson(k: int, n: int, z: float = 1.959963984540054) -> Proportion:
    """Wilson score interval (Wilson 1927) for a proportion p̂ = k/n:
        centre = (p̂ + z²/2n) / (1 + z²/n);  half = z·sqrt(p̂(1-p̂)/n + z²/4n²) / (1 + z²/n).
    Raises ValueError unless 0 <= k <= n and n >= 1.
    """
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"wilson: need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    lo, hi = wilson_bounds(k / n, n, z)
    return Proportion(k=k, n=n, rate=k / n, ci95_low=lo, ci95_high=hi)


def wilson_bounds(p: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score bounds (formula: `wilson`) of a share p̂ = p in [0, 1] over n observations;
    exactly 0 and 1 at the ends. Also for the mean of n values in [0, 1] (a run's large-model
    token share): such a value of mean p has variance at most p(1 − p), the Bernoulli one, so the
    interval is conservative, and it never leaves [0, 1] as a t-interval on shares does."""
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if p == 0 else max(0.0, centre - half)  # exactly 0 and 1 at the ends, not 1e-17
    hi = 1.0 if p == 1 else min(1.0, centre + half)
    return lo, hi


def share_summary(xs: Sequence[float]) -> Summary | None:
    """`summarize` of shares in [0, 1], its 95% interval the Wilson bounds of the mean share over
    the runs (`wilson_bounds`), not a t-interval that reaches below 0 or above 1 (shares without
    spread keep `summarize`'s [x̄, x̄])."""
    if not xs:
        return None
    s = summarize(xs)
    if s.n < 2 or s.stddev == 0:  # one run, or the same share in every run (the large model's 1.0)
        return s
    lo, hi = wilson_bounds(min(1.0, max(0.0, s.mean)), s.n)
    return s.model_copy(update={"ci95_low": lo, "ci95_high": hi})


def mcnemar_exact(b: int, c: int) -> float:
    """Exact (binomial) McNemar test of paired proportions, two-sided.

    b = pairs right only in the first arm, c = right only in the second (discordant pairs).
    Under H0 each discordant pair is either kind with probability 1/2:
        p = min(1, 2 · P[X <= min(b, c)]),  X ~ Binomial(b + c, 1/2);  p = 1 when b + c = 0.
    """
    if b < 0 or c < 0:
        raise ValueError(f"mcnemar_exact: negative counts b={b}, c={c}")
    if b + c == 0:
        return 1.0
    return float(min(1.0, 2 * sps.binom.cdf(min(b, c), b + c, 0.5)))


def fisher_exact(k1: int, n1: int, k2: int, n2: int) -> float:
    """Fisher's exact two-sided test that two independent proportions k1/n1 and k2/n2 are equal,
    on the 2x2 table [[k1, n1-k1], [k2, n2-k2]] (scipy: sum of the probabilities of all tables
    with the same margins that are no more likely than the observed one)."""
    if n1 < 1 or n2 < 1 or not (0 <= k1 <= n1 and 0 <= k2 <= n2):
        raise ValueError(f"fisher_exact: bad counts {k1}/{n1}, {k2}/{n2}")
    return float(sps.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue)


def paired_ratio(pairs: Sequence[tuple[float, float]]) -> PairedRatio:
    """Paired ratio of a over b (large over spec latency per (problem, run)): the one paired
    estimate of every command, `velobench.analysis.stats.paired_ratio` (geometric mean of a_i/b_i,
    t-interval on the log ratios, paired t p; no interval or p for one pair or constant ratios),
    as think's result stores it. Pairing by problem removes the between-problem spread that
    dominates latencies. Raises ValueError on no pairs or a value that is not finite and > 0.
    """
    r = stats.paired_ratio(pairs)
    return PairedRatio(
        ratio=r.ratio, ci95_low=r.ci95_low, ci95_high=r.ci95_high, p_value=r.p_value, n_pairs=r.n_a
    )


def headline_speedup(summary: ThinkSummary) -> tuple[float, float | None, str] | None:
    """(ratio, p, test) of the speedup the warnings judge: the paired estimate from 2 pairs on,
    else the ratio of mean latencies (Welch)."""
    pr = summary.speedup_paired
    if pr is not None and pr.n_pairs >= 2:
        return pr.ratio, pr.p_value, "paired t"
    s = summary.speedup
    return None if s is None else (s.ratio, s.p_value, "Welch")


def _summary(xs: Sequence[float]) -> Summary | None:
    return summarize(xs) if xs else None


def _ratio(a: Sequence[float], b: Sequence[float]) -> Ratio | None:
    if not a or not b or sum(b) == 0:
        return None
    return ratio_of_means(a, b)


def summarize_mode(runs: Iterable[ThinkRun], mode: TestMode) -> ModeSummary | None:
    """The ModeSummary of `mode`'s runs; None if there are none at all."""
    mine = [r for r in runs if r.mode == mode]
    if not mine:
        return None
    ok = [r for r in mine if r.error is None]
    graded = [r for r in ok if r.correct is not None]
    return ModeSummary(
        mode=mode,
        runs=len(ok),
        failed=len(mine) - len(ok),
        latency_s=_summary([r.latency_s for r in ok]),
        tokens_per_s=_summary([r.tokens_per_s for r in ok if r.tokens_per_s is not None]),
        tokens=_summary([float(r.tokens) for r in ok]),
        large_tokens=_summary([float(r.large_tokens) for r in ok]),
        large_ratio=share_summary([r.large_ratio for r in ok if r.large_ratio is not None]),
        interventions=_summary([float(r.interventions) for r in ok]),
        accuracy=wilson(sum(1 for r in graded if r.correct), len(graded)) if graded else None,
    )


def accuracy_test(runs: Sequence[ThinkRun]) -> AccuracyTest | None:
    """Accuracy of both modes and an exact test of their difference, on complete graded runs.

    Paired (McNemar exact) when every graded run of each mode has a partner with the same
    (problem_id, run) in the other: the pairs share problem and seed. Otherwise unpaired
    (Fisher exact). None unless both modes have graded runs.
    """
    graded = [r for r in runs if r.error is None and r.correct is not None]
    large = {(r.problem_id, r.run): bool(r.correct) for r in graded if r.mode == TestMode.LARGE}
    spec = {(r.problem_id, r.run): bool(r.correct) for r in graded if r.mode == TestMode.SPEC}
    if not large or not spec:
        return None
    pl, ps = wilson(sum(large.values()), len(large)), wilson(sum(spec.values()), len(spec))
    diff = ps.rate - pl.rate
    if large.keys() == spec.keys():
        b = sum(1 for k in large if large[k] and not spec[k])
        c = sum(1 for k in large if spec[k] and not large[k])
        return AccuracyTest(
            method="mcnemar-exact",
            large=pl,
            spec=ps,
            difference=diff,
            large_only=b,
            spec_only=c,
            p_value=mcnemar_exact(b, c),
        )
    return AccuracyTest(
        method="fisher-exact",
        large=pl,
        spec=ps,
        difference=diff,
        p_value=fisher_exact(pl.k, pl.n, ps.k, ps.n),
    )


def _fmt_correct(rs: list[ThinkRun]) -> str | None:
    graded = [r for r in rs if r.correct is not None]
    return f"{sum(1 for r in graded if r.correct)}/{len(graded)}" if graded else None


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def summarize_think(runs: Sequence[ThinkRun], *, significance: float = 0.05) -> ThinkSummary:
    """All summaries, comparisons and warnings of a set of runs (complete ones; failed counted)."""
    ok = [r for r in runs if r.error is None]
    large = [r for r in ok if r.mode == TestMode.LARGE]
    spec = [r for r in ok if r.mode == TestMode.SPEC]
    summary = ThinkSummary(
        large=summarize_mode(runs, TestMode.LARGE), spec=summarize_mode(runs, TestMode.SPEC)
    )
    if large and spec:
        summary.speedup = _ratio([r.latency_s for r in large], [r.latency_s for r in spec])
        by_key = {(r.problem_id, r.run): r for r in spec}
        pairs = [
            (r.latency_s, by_key[(r.problem_id, r.run)].latency_s)
            for r in large
            if (r.problem_id, r.run) in by_key
            and r.latency_s > 0
            and by_key[(r.problem_id, r.run)].latency_s > 0
        ]
        summary.speedup_paired = paired_ratio(pairs) if pairs else None
        summary.throughput_ratio = _ratio(
            [r.tokens_per_s for r in spec if r.tokens_per_s is not None],
            [r.tokens_per_s for r in large if r.tokens_per_s is not None],
        )
        summary.large_work_ratio = _ratio(
            [float(r.large_tokens) for r in spec], [float(r.tokens) for r in large]
        )
    ratios = [r.large_ratio for r in spec if r.large_ratio is not None]
    if ratios:
        summary.large_token_reduction = 1 - sum(ratios) / len(ratios)
    summary.accuracy = accuracy_test(runs)
    for pid in dict.fromkeys(r.problem_id for r in ok):
        pl = [r for r in large if r.problem_id == pid]
        ps = [r for r in spec if r.problem_id == pid]
        ml, ms = _mean([r.latency_s for r in pl]), _mean([r.latency_s for r in ps])
        summary.problems.append(
            ProblemSummary(
                problem_id=pid,
                large_latency_s=ml,
                spec_latency_s=ms,
                speedup=ml / ms if ml is not None and ms else None,
                spec_large_ratio=_mean([r.large_ratio for r in ps if r.large_ratio is not None]),
                large_correct=_fmt_correct(pl),
                spec_correct=_fmt_correct(ps),
            )
        )
    summary.warnings = think_warnings(runs, summary, significance=significance)
    return summary


def think_warnings(
    runs: Sequence[ThinkRun], summary: ThinkSummary, *, significance: float = 0.05
) -> list[ThinkWarning]:
    """What a reader of the summary must not miss, as data: codes and their figures (the words:
    `velobench.report.warnings.text`)."""
    out: list[ThinkWarning] = []

    def warn(code: ThinkWarningCode, **params: float | int | str | None) -> None:
        out.append(ThinkWarning(code=code, params=params))

    failed = [r for r in runs if r.error is not None]
    if failed:
        warn(ThinkWarningCode.FAILED_RUNS, count=len(failed))
    for m in (summary.large, summary.spec):
        if m is not None and m.runs == 1:
            warn(ThinkWarningCode.ONE_RUN, mode=str(m.mode))
    spec_ok = [r for r in runs if r.mode == TestMode.SPEC and r.error is None]
    if spec_ok and all(r.interventions == 0 for r in spec_ok):
        warn(ThinkWarningCode.NO_TRIGGERS)
    capped = [r for r in runs if r.stopped_by == "max_tokens"]
    if capped:
        warn(ThinkWarningCode.MAX_TOKENS, count=len(capped))
    head = headline_speedup(summary)  # paired per problem and run where pairs exist
    if head is not None:
        ratio, p, test = head
        significant = p is not None and p < significance
        if ratio < 1 and significant:  # not significant: the warning below says so instead
            warn(ThinkWarningCode.SPEC_SLOWER, ratio=ratio, p_value=p, test=test)
        if p is not None and not significant:
            warn(ThinkWarningCode.NO_SIGNIFICANT_SPEEDUP, p_value=p, test=test)
    a = summary.accuracy
    if a is not None and a.difference < 0 and a.p_value < significance:
        warn(
            ThinkWarningCode.ACCURACY_DROP,
            spec_rate=a.spec.rate,
            large_rate=a.large.rate,
            method=a.method,
            p_value=a.p_value,
        )
    return out


def refresh(report: ThinkReport) -> None:
    """Recompute the summary and its warnings from the runs (after every run, and at the end)."""
    report.summary = summarize_think(report.runs) if report.runs else None
    report.warnings = list(report.summary.warnings) if report.summary else []
