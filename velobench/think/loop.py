"""Speculative thinking: a small model reasons, a large model steps in at the turns.

The loop, for one problem in mode "spec" (all text is raw continuation of one prompt, the
problem rendered once with the model's chat template by `ThinkBackend.render_chat`):

    small:  continue(prompt + text, stop = "\\n\\n" + each trigger word in 3 casings)
            → the server stops the moment a paragraph starts with a trigger word, so the small
              model wastes no token and the switch costs one request per side
    large:  continue(prompt + text, max_tokens = segment.tokens, stop = "\\n\\n")
            → its segment, up to its own paragraph break (kept in the text)
    small:  after a paragraph break (or any end of text that could begin a trigger, such as one
            "\n") the small model first writes `peek_tokens` tokens, because the server cannot
            see a trigger whose break is already in the prompt; a paragraph it starts with a
            trigger word goes straight back to the large model
    ... until end of sequence, max_tokens (both models together), or a final answer.

Why stop strings rather than generating in small chunks and looking: a chunk of k tokens costs
one request per k tokens and over-generates up to k-1 tokens past each trigger; the seed tool
stops at every "\\n\\n" and then generates 20 more tokens with the small model to look at the
next paragraph, one extra request per paragraph. Stop strings put the check in the server:
requests happen only at switches. The detector (`velobench.think.analysis.first_trigger_after`)
still checks every returned piece, so a trigger the stop strings missed (odd casing, a break
written by the other model) is found and the text past it dropped (recorded as `discarded`).

Mode "large" (the baseline): the large model alone with the same prompt, sampling and limits.
With `stop_at_answer` it is given the same trigger stop strings, so both modes look for a final
answer at the same kind of point; it continues itself at each. Without, it is one request.

Per run: latency (client wall time of all its requests), tokens, tokens/s, the large-model
token ratio, interventions, every segment (who wrote what, where, the trigger, the time), and
the final answer with correctness. Runs are interleaved (problem by problem, run by run, the
order of the two modes alternating) so that drift in the machine hits both modes alike. Every
finished run goes to `on_run` at once (the caller saves it); a backend that fails ends the
benchmark: the failed run is recorded with its partial text and the error, and returned.

Token counts are what the servers report generating per request, so tokens dropped after a
missed trigger still count as work; the ratio is large tokens / all tokens of the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from velobench.errors import VelobenchError
from velobench.results.think import (
    Finish,
    Role,
    Sampling,
    StoppedBy,
    TestMode,
    ThinkConfig,
    ThinkRun,
    ThinkSegment,
)
from velobench.think.analysis import (
    PARAGRAPH_BREAK,
    final_answer,
    first_trigger_after,
    make_run,
    trigger_stop_strings,
)


@dataclass(frozen=True)
class Piece:
    """What one completion request returned."""

    text: str  # the generated text, without the stop string that ended it
    tokens: int  # tokens the server generated (its tokens_predicted / usage.completion_tokens)
    seconds: float  # client wall time of the request
    finish: Finish  # eos: end of sequence; stop: a stop string; length: max_tokens reached
    stop: str | None = None  # the stop string that matched (finish == "stop")


class ThinkBackend(Protocol):
    """Two models behind completion APIs that continue raw text (llama-server /completion,
    vLLM /v1/completions). The backend owns the servers and the sampling it was built with."""

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        """The prompt: `messages` rendered with the (large) model's chat template, generation
        prompt added (llama-server: POST /apply-template; vLLM: the tokenizer's template)."""
        ...

    def complete(
        self,
        role: Role,
        prompt: str,
        *,
        max_tokens: int,
        stop: list[str],
        sampling: Sampling,
        seed: int | None,
    ) -> Piece:
        """Continue `prompt` with the `role` model; raise on any failure (a dead server...)."""
        ...


@dataclass(frozen=True)
class Problem:
    """One problem to think about; `reference` is the known answer, if any."""

    id: str
    text: str
    reference: str | None = None


def parse_test_mode(name: str) -> tuple[TestMode, ...]:
    """large | spec | both -> the modes to run (`TestMode.runs`); anything else is a one-line
    VelobenchError."""
    try:
        return TestMode(name).runs
    except ValueError:
        raise VelobenchError(f"unknown test mode {name!r}: use large, spec or both") from None


def first_problems(problems: Sequence[Problem], num_problems: int | None) -> list[Problem]:
    """The first `num_problems` problems (all when None), as the seed tool takes them."""
    if num_problems is not None and num_problems < 1:
        raise VelobenchError(f"--num-problems must be at least 1, not {num_problems}")
    if not problems:
        raise VelobenchError("no problems to think about")
    return list(problems[:num_problems] if num_problems else problems)


class _RunState:
    """The text and segments of one run as they grow."""

    def __init__(self) -> None:
        self.text = ""
        self.segments: list[ThinkSegment] = []
        self.tokens = 0

    def add(
        self, writer: Role, piece: Piece, kept: str, *, trigger: str | None = None, discarded: str = ""
    ) -> None:
        self.segments.append(
            ThinkSegment(
                writer=writer,
                text=kept,
                tokens=piece.tokens,
                seconds=piece.seconds,
                start_char=len(self.text),
                start_token=self.tokens,
                finish=piece.finish,
                trigger=trigger,
                discarded=discarded,
            )
        )
        self.text += kept
        self.tokens += piece.tokens


@dataclass
class ThinkOutcome:
    """All runs recorded (finished and the failed one, if any), and the error that ended it."""

    runs: list[ThinkRun] = field(default_factory=list)
    error: str | None = None


class ThinkLoop:
    """Runs problems in the test modes through a backend with one configuration."""

    def __init__(self, backend: ThinkBackend, cfg: ThinkConfig) -> None:
        self.backend = backend
        self.cfg = cfg
        self.words = cfg.triggers.words
        self.trigger_stops = trigger_stop_strings(self.words)

    def open_tail(self, text: str) -> bool:
        """Does `text` end with the start of a trigger ("\n", "\n\n", "\n\nWa")? Then a stop
        string cannot catch a trigger the next request completes, and that request is a peek."""
        tail = text[-max(len(s) for s in self.trigger_stops) :].lower()
        return any(tail.endswith(s[:k].lower()) for s in self.trigger_stops for k in range(1, len(s)))

    # -------------------------------------------------------------- one request

    def _complete(
        self, role: Role, prompt: str, state: _RunState, max_tokens: int, stop: list[str], seed: int | None
    ) -> Piece:
        piece = self.backend.complete(
            role, prompt + state.text, max_tokens=max_tokens, stop=stop, sampling=self.cfg.sampling, seed=seed
        )
        if piece.finish == "stop" and piece.stop is None:
            raise VelobenchError(f"the {role} model's server said it stopped at a stop string but not which")
        if piece.tokens < 1 and piece.finish != "eos":
            # a server that generates nothing and does not end would loop the run forever
            raise VelobenchError(
                f"the {role} model's server generated no token and did not end ({piece.finish})"
            )
        return piece

    def _answered(self, state: _RunState, piece: Piece) -> bool:
        """A final answer in the text, where the text is whole (not cut by max_tokens)."""
        return (
            self.cfg.generation.stop_at_answer
            and piece.finish != "length"
            and final_answer(state.text) is not None
        )

    # -------------------------------------------------------------- the two modes

    def _spec(self, prompt: str, state: _RunState, seed: int | None) -> StoppedBy:
        seg = self.cfg.segment
        budget = self.cfg.generation.max_tokens
        peek = False  # the text ends with what could begin a trigger: see open_tail
        while True:
            if state.tokens >= budget:
                return "max_tokens"
            limit = budget - state.tokens
            piece = self._complete(
                "small",
                prompt,
                state,
                min(limit, seg.peek_tokens) if peek else limit,
                self.trigger_stops,
                seed,
            )
            returned = piece.text + (piece.stop or "")
            boundary = len(state.text)
            hit = first_trigger_after(state.text + returned, self.words, boundary)
            if hit is None:
                state.add("small", piece, returned)
                if piece.finish == "eos":
                    return "eos"
                if self._answered(state, piece):
                    return "answer"
                peek = self.open_tail(state.text)
                continue
            cut = hit.end - boundary
            state.add("small", piece, returned[:cut], discarded=returned[cut:])
            if self.cfg.generation.stop_at_answer and final_answer(state.text) is not None:
                return "answer"
            if state.tokens >= budget:
                return "max_tokens"
            large = self._complete(
                "large",
                prompt,
                state,
                min(seg.tokens, budget - state.tokens),
                [PARAGRAPH_BREAK] if seg.stop_at_paragraph else [],
                seed,
            )
            state.add("large", large, large.text + (large.stop or ""), trigger=hit.word)
            if large.finish == "eos":
                return "eos"
            if self._answered(state, large):
                return "answer"
            peek = self.open_tail(state.text)

    def _large_alone(self, prompt: str, state: _RunState, seed: int | None) -> StoppedBy:
        budget = self.cfg.generation.max_tokens
        stop = self.trigger_stops if self.cfg.generation.stop_at_answer else []
        while True:
            if state.tokens >= budget:
                return "max_tokens"
            piece = self._complete("large", prompt, state, budget - state.tokens, stop, seed)
            state.add("large", piece, piece.text + (piece.stop or ""))
            if piece.finish == "eos":
                return "eos"
            if self._answered(state, piece):
                return "answer"

    # -------------------------------------------------------------- runs

    def run_one(self, problem: Problem, prompt: str, mode: TestMode, run: int) -> ThinkRun:
        """One measured run; a backend failure is recorded in the run (error, partial text)."""
        state = _RunState()
        seed = self.cfg.sampling.for_run(run)
        error: str | None = None
        t0 = time.perf_counter()
        try:
            stopped = (
                self._spec(prompt, state, seed)
                if mode == TestMode.SPEC
                else self._large_alone(prompt, state, seed)
            )
        except Exception as exc:  # a dead server, a bad response: kept in the record, not raised
            stopped, error = "error", _one_line(exc)
        latency = time.perf_counter() - t0
        return make_run(
            problem_id=problem.id,
            run=run,
            mode=mode,
            seed=seed,
            latency_s=latency,
            segments=state.segments,
            stopped_by=stopped,
            reference=problem.reference,
            error=error,
        )

    def warm_up(self, prompt: str, modes: Sequence[TestMode], tokens: int = 8) -> None:
        """A short generation on every server the modes use (not recorded): loads and caches."""
        roles: tuple[Role, ...] = ("large", "small") if TestMode.SPEC in modes else ("large",)
        for role in roles:
            self.backend.complete(
                role, prompt, max_tokens=tokens, stop=[], sampling=self.cfg.sampling, seed=None
            )

    def run_all(
        self,
        problems: Sequence[Problem],
        modes: Sequence[TestMode],
        num_runs: int,
        on_run: Callable[[ThinkRun], None] | None = None,
        warm_up: bool = True,
    ) -> ThinkOutcome:
        """Every problem × run × mode, interleaved; stops at the first failed run.

        Order: for each problem, for each run r, the modes in order (reversed on odd r).
        """
        if num_runs < 1:
            raise VelobenchError(f"--num-runs must be at least 1, not {num_runs}")
        out = ThinkOutcome()
        try:
            prompts = {p.id: self.backend.render_chat(self.cfg.prompt.messages(p.text)) for p in problems}
            if warm_up and problems:
                self.warm_up(prompts[problems[0].id], modes)
        except Exception as exc:
            out.error = f"before the first run: {_one_line(exc)}"
            return out
        for p in problems:
            for r in range(num_runs):
                for mode in modes if r % 2 == 0 else tuple(reversed(modes)):
                    result = self.run_one(p, prompts[p.id], mode, r)
                    out.runs.append(result)
                    if on_run is not None:
                        on_run(result)
                    if result.error is not None:
                        out.error = f"problem {p.id}, run {r}, {mode}: {result.error}"
                        return out
        return out


def _one_line(exc: BaseException) -> str:
    """The first line of an exception's message; other than VelobenchError, with its type."""
    lines = str(exc).strip().splitlines()
    if isinstance(exc, VelobenchError) and lines:
        return lines[0]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
