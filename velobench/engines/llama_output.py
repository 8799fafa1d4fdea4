"""Pure parsers for what llama.cpp's command-line tools print.

Every function takes captured text and returns numbers, or raises `ValueError` quoting the
text it could not read. The patterns follow `../shared/reference/llama-cpp.md` §5 and are
tested on output captured from real binaries (`tests/fixtures/llama/`).

Both log styles are accepted: with the default prefix (`0.01.101.665 I common_perf_print: ...`)
and without it (`--no-log-prefix --no-log-timestamps`, or builds from before 2026).
`float()` reads printf's `inf`, `-inf`, `nan` and `-nan`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from velobench.bins.versions import snippet

PFX = r"^(?:\d+\.\d{2}\.\d{3}\.\d{3} [IWED] )?"
NUM = r"(-?(?:nan|inf|\d+(?:\.\d+)?))"


_PERF_SRC = r"(?P<src>common_perf_print|llama_perf_context_print)"
_PERF_LOAD = re.compile(PFX + _PERF_SRC + r":\s+load time =\s*" + NUM + r" ms$", re.M)
_PERF_PROMPT = re.compile(
    PFX
    + _PERF_SRC
    + r": prompt eval time =\s*"
    + NUM
    + r" ms /\s*(\d+) tokens \(\s*"
    + NUM
    + r" ms per token,\s*"
    + NUM
    + r" tokens per second\)$",
    re.M,
)
_PERF_EVAL = re.compile(
    PFX
    + _PERF_SRC
    + r":\s+eval time =\s*"
    + NUM
    + r" ms /\s*(\d+) runs\s+\(\s*"
    + NUM
    + r" ms per token,\s*"
    + NUM
    + r" tokens per second\)$",
    re.M,
)
_PERF_TOTAL = re.compile(PFX + _PERF_SRC + r":\s+total time =\s*" + NUM + r" ms /\s*(\d+) tokens$", re.M)

_ENCODED = re.compile(
    PFX + r"encoded\s+(\d+) tokens in\s+" + NUM + r" seconds, speed:\s+" + NUM + r" t/s$", re.M
)
_DECODED = re.compile(
    PFX + r"decoded\s+(\d+) tokens in\s+" + NUM + r" seconds, speed:\s+" + NUM + r" t/s$", re.M
)
_COUNTER = r"\s*= (-?\d+)$"
_N_DRAFT = re.compile(PFX + r"n_draft" + _COUNTER, re.M)
_N_PREDICT = re.compile(PFX + r"n_predict" + _COUNTER, re.M)
_N_DRAFTED = re.compile(PFX + r"n_drafted" + _COUNTER, re.M)
_N_ACCEPT = re.compile(PFX + r"n_accept" + _COUNTER, re.M)
_ACCEPT = re.compile(PFX + r"accept\s+= " + NUM + r"%$", re.M)
_T_DRAFT = re.compile(
    PFX + r"t_draft\s+= " + NUM + r" ms, " + NUM + r" us per token, " + NUM + r" tokens per second$",
    re.M,
)


@dataclass(frozen=True)
class VanillaTimings:
    """Timings of one `llama-completion` run (from `common_perf_print`).

    `eval_runs` excludes the first generated token, which is sampled from the prompt's logits;
    so `decode_tokens_per_second = eval_runs / eval_ms`, every counted token one decode step.
    """

    load_ms: float | None
    prompt_tokens: int
    prompt_ms: float
    eval_runs: int
    eval_ms: float
    eval_tokens_per_second: float
    total_ms: float | None

    @property
    def generated_tokens(self) -> int:
        """Tokens generated: the eval runs plus the one sampled from the prompt logits."""
        return self.eval_runs + 1


@dataclass(frozen=True)
class SpeculativeTimings:
    """Timings and draft counts of one `llama-speculative(-simple)` or `llama-lookup` run.

    `decoded_tokens` counts every emitted token and `decoded_s` covers drafting and
    verification of all of them (the tools overshoot `-n` by up to one draft).
    The target's `common_perf_print` eval line is not used: verification batches count as
    "prompt eval" there, so its eval rate is meaningless (`inf`).
    """

    encoded_tokens: int
    encoded_s: float
    decoded_tokens: int
    decoded_s: float
    decoded_tokens_per_second: float
    n_draft: int | None
    n_predict: int | None
    n_drafted: int
    n_accept: int
    accept_percent: float | None
    load_ms: float | None

    @property
    def acceptance_rate(self) -> float | None:
        """Accepted draft tokens / drafted tokens; None when nothing was drafted."""
        return self.n_accept / self.n_drafted if self.n_drafted else None


def _last(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    matches = list(pattern.finditer(text))
    return matches[-1] if matches else None


def _target_perf(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """The last match printed by `common_perf_print` (the target), falling back to any source.

    `llama-speculative` at `-lv 4` also prints the draft's `llama_perf_context_print` block.
    """
    matches = list(pattern.finditer(text))
    for m in reversed(matches):
        if m.group("src") == "common_perf_print":
            return m
    return matches[-1] if matches else None


def parse_vanilla(stderr: str) -> VanillaTimings:
    """Parse `llama-completion`'s `common_perf_print` block (older builds: `llama_perf_context_print`)."""
    prompt = _target_perf(_PERF_PROMPT, stderr)
    ev = _target_perf(_PERF_EVAL, stderr)
    if prompt is None or ev is None:
        missing = "prompt eval time" if prompt is None else "eval time"
        raise ValueError(f"no '{missing}' line in {snippet(stderr)}")
    load = _target_perf(_PERF_LOAD, stderr)
    total = _target_perf(_PERF_TOTAL, stderr)
    return VanillaTimings(
        load_ms=float(load.group(2)) if load else None,
        prompt_tokens=int(prompt.group(3)),
        prompt_ms=float(prompt.group(2)),
        eval_runs=int(ev.group(3)),
        eval_ms=float(ev.group(2)),
        eval_tokens_per_second=float(ev.group(5)),
        total_ms=float(total.group(2)) if total else None,
    )


def _counter(pattern: re.Pattern[str], text: str) -> int | None:
    m = _last(pattern, text)
    return int(m.group(1)) if m else None


def parse_speculative(stderr: str) -> SpeculativeTimings:
    """Parse the summary block of `llama-speculative-simple`, `llama-speculative` or `llama-lookup`."""
    enc = _last(_ENCODED, stderr)
    dec = _last(_DECODED, stderr)
    if enc is None or dec is None:
        missing = "encoded" if enc is None else "decoded"
        raise ValueError(f"no '{missing} N tokens in S seconds' line in {snippet(stderr)}")
    n_drafted = _counter(_N_DRAFTED, stderr)
    n_accept = _counter(_N_ACCEPT, stderr)
    if n_drafted is None or n_accept is None:
        missing = "n_drafted" if n_drafted is None else "n_accept"
        raise ValueError(f"no '{missing} = N' line in {snippet(stderr)}")
    acc = _last(_ACCEPT, stderr)
    accept_percent = float(acc.group(1)) if acc else None
    if accept_percent is not None and accept_percent != accept_percent:  # -nan%: nothing drafted
        accept_percent = None
    load = _target_perf(_PERF_LOAD, stderr)
    return SpeculativeTimings(
        encoded_tokens=int(enc.group(1)),
        encoded_s=float(enc.group(2)),
        decoded_tokens=int(dec.group(1)),
        decoded_s=float(dec.group(2)),
        decoded_tokens_per_second=float(dec.group(3)),
        n_draft=_counter(_N_DRAFT, stderr),
        n_predict=_counter(_N_PREDICT, stderr),
        n_drafted=n_drafted,
        n_accept=n_accept,
        accept_percent=accept_percent,
        load_ms=float(load.group(2)) if load else None,
    )


# llama-lookup of 2025 (common/ngram-cache.cpp) prints one such line per drafted token to stdout,
# in the middle of the generated text; removing each whole line restores the text exactly.
_LOOKUP_CANDIDATE = re.compile(r" - draft candidate: token=-?\d+\n")


def generated_text(stdout: str, prompt: str) -> str:
    """The generated text from a tool's stdout: strip the prompt echo and the end markers.

    `llama-completion` prints the prompt, the text and ` [end of text]` on EOS; the speculative
    tools print blank lines, the prompt and the text; 2025's `llama-lookup` also interleaves
    ` - draft candidate: token=N` lines, which are removed.
    """
    text = _LOOKUP_CANDIDATE.sub("", stdout).lstrip("\n")
    if prompt and text.startswith(prompt):
        text = text[len(prompt) :]
    for marker in (" [end of text]\n", "\n> EOF by user"):
        idx = text.rfind(marker)
        if idx >= 0:
            text = text[:idx]
    return text.rstrip("\n")
