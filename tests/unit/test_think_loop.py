"""The speculative-thinking loop (velobench/runner/think.py) driven by scripted in-process models.

`ScriptedModel` behaves like a completion server over a fixed text: it emits that text token by
token (words, newlines), stops at the earliest stop string in what it generated (excluded from
the returned text, reported in `stop`), at max_tokens, or at the end of the script (EOS). It
records every request. The real servers are exercised when the lead wires the backend.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from velobench.errors import VelobenchError
from velobench.results.think import Sampling, ThinkConfig, ThinkRun, ThinkWarningCode
from velobench.think.analysis import summarize_think
from velobench.think.config import load_think_config, with_overrides
from velobench.think.loop import (
    Piece,
    Problem,
    Role,
    ThinkLoop,
    first_problems,
    parse_test_mode,
)

TOKEN = re.compile(r"\n|[^\S\n]*[^\s]+")


@dataclass
class Call:
    role: Role
    prompt: str
    max_tokens: int
    stop: list[str]
    seed: int | None


@dataclass
class ScriptedModel:
    script: str
    pos: int = 0  # index into tokens

    def tokens(self) -> list[str]:
        return TOKEN.findall(self.script)

    def generate(self, max_tokens: int, stop: list[str]) -> Piece:
        toks = self.tokens()
        out = ""
        n = 0
        while n < max_tokens:
            if self.pos >= len(toks):
                return Piece(text=out, tokens=n, seconds=0.001 * n, finish="eos")
            out += toks[self.pos]
            self.pos += 1
            n += 1
            found = [(out.find(s), s) for s in stop if s in out]
            if found:
                at, s = min(found)
                return Piece(text=out[:at], tokens=n, seconds=0.001 * n, finish="stop", stop=s)
        return Piece(text=out, tokens=n, seconds=0.001 * n, finish="length")


@dataclass
class ScriptedBackend:
    small: ScriptedModel
    large: ScriptedModel
    calls: list[Call] = field(default_factory=list)
    die_after: int | None = None  # calls that succeed before every later one raises
    rendered: list[list[dict[str, str]]] = field(default_factory=list)

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        self.rendered.append(messages)
        return "<user>" + messages[-1]["content"] + "<assistant>"

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
        if self.die_after is not None and len(self.calls) >= self.die_after:
            raise ConnectionError("server closed the connection\nmore detail on a second line")
        self.calls.append(Call(role, prompt, max_tokens, list(stop), seed))
        model = self.small if role == "small" else self.large
        return model.generate(max_tokens, stop)


def cfg(**overrides: object) -> ThinkConfig:
    c = load_think_config()
    data = c.model_dump()
    for key, value in overrides.items():
        table, name = key.split("__")
        data[table][name] = value
    return ThinkConfig.model_validate(data)


P1 = Problem(id="p1", text="What is 1 + 1?", reference="2")


def test_spec_switches_at_a_trigger_and_records_who_wrote_what() -> None:
    small = ScriptedModel("First I add one and one.\n\nWait, is that right?\n\nYes.")
    large = ScriptedModel(" let me check: one plus one is two.\n\nSo the answer is \\boxed{2}.")
    backend = ScriptedBackend(small, large)
    loop = ThinkLoop(backend, cfg(segment__tokens=64))
    run = loop.run_one(P1, "PROMPT", "spec", 0)

    assert [s.writer for s in run.segments] == ["small", "large", "small"]
    first, second, third = run.segments
    assert first.text == "First I add one and one.\n\nWait" and first.discarded == ""
    assert second.trigger == "wait" and second.text == " let me check: one plus one is two.\n\n"
    assert second.finish == "stop"
    # the large model continued from the whole text so far, trigger word included
    assert backend.calls[1].role == "large" and backend.calls[1].prompt == "PROMPT" + first.text
    assert backend.calls[1].stop == ["\n\n"] and backend.calls[1].max_tokens == 64
    # after the large model's paragraph break, the small model peeks first
    assert backend.calls[2].role == "small" and backend.calls[2].max_tokens == 8
    assert third.start_char == len(first.text) + len(second.text)
    assert run.text == "".join(s.text for s in run.segments)
    assert run.interventions == 1
    assert run.large_tokens == second.tokens and run.small_tokens == first.tokens + third.tokens
    assert run.large_ratio == pytest.approx(run.large_tokens / run.tokens)
    assert run.large_ratio is not None and 0 < run.large_ratio < 1
    assert [s.start_token for s in run.segments] == [0, first.tokens, first.tokens + second.tokens]


def test_small_model_is_stopped_by_trigger_stop_strings_in_three_casings() -> None:
    backend = ScriptedBackend(ScriptedModel("Done."), ScriptedModel(""))
    ThinkLoop(backend, cfg()).run_one(P1, "P", "spec", 0)
    stop = backend.calls[0].stop
    assert "\n\nwait" in stop and "\n\nWait" in stop and "\n\nWAIT" in stop and "\n\nAlternatively" in stop
    assert len(stop) == 15


def test_a_trigger_the_stop_strings_miss_is_found_and_the_rest_dropped() -> None:
    small = ScriptedModel("Two.\n\nwAIT a moment, more text here.")
    large = ScriptedModel(", no: it is \\boxed{2}")
    backend = ScriptedBackend(small, large)
    run = ThinkLoop(backend, cfg()).run_one(P1, "P", "spec", 0)
    assert run.segments[0].text == "Two.\n\nwAIT"
    assert run.segments[0].discarded == " a moment, more text here."
    assert run.segments[1].trigger == "wait"
    assert run.answer == "2" and run.correct is True


def test_a_paragraph_the_small_model_starts_with_a_trigger_after_a_break_goes_back_to_the_large() -> None:
    small = ScriptedModel("Start.\n\nBut hmm.\n\nHmm, so the sum is two and more words follow here.")
    large = ScriptedModel(" consider it.\n\n again.\n\n")
    backend = ScriptedBackend(small, large)
    run = ThinkLoop(backend, cfg()).run_one(P1, "P", "spec", 0)
    got = [(s.writer, s.text, s.trigger, s.tokens) for s in run.segments]
    assert got == [
        ("small", "Start.\n\nBut", None, 4),
        ("large", " consider it.\n\n", "but", 4),
        # the peek after the large model's break (the server stopped at "\n\nHmm")
        ("small", " hmm.\n\nHmm", None, 4),
        ("large", " again.\n\n", "hmm", 3),
        ("small", " so the sum is two and more words", None, 8),  # a peek: 8 tokens, no trigger
        ("small", " follow here.", None, 2),
    ]
    assert [c.max_tokens for c in backend.calls if c.role == "small"] == [32768, 8, 8, 32768 - 23]
    assert run.interventions == 2 and run.stopped_by == "eos"


def test_junction_trigger_after_a_large_break_is_detected_in_the_peek() -> None:
    large = ScriptedModel(" look.\n\nunused")

    class JunctionSmall(ScriptedModel):
        def generate(self, max_tokens: int, stop: list[str]) -> Piece:
            if self.pos == 0:
                return super().generate(max_tokens, stop)
            # second call: the paragraph starts with a trigger word right after the break
            return Piece(
                text="Alternatively, we could count on fingers and toes.",
                tokens=8,
                seconds=0.01,
                finish="length",
            )

    js = JunctionSmall("Start.\n\nBut")
    backend = ScriptedBackend(js, large)
    loop = ThinkLoop(backend, cfg(generation__max_tokens=30, generation__stop_at_answer=False))
    run = loop.run_one(P1, "P", "spec", 0)
    peek = run.segments[2]
    assert peek.text == "Alternatively" and peek.discarded == ", we could count on fingers and toes."
    assert run.segments[3].writer == "large" and run.segments[3].trigger == "alternatively"
    assert run.tokens <= 30


def test_max_tokens_caps_both_models_together() -> None:
    small = ScriptedModel(" ".join(["word"] * 50) + "\n\nWait " + " ".join(["more"] * 50))
    large = ScriptedModel(" ".join(["large"] * 100))
    backend = ScriptedBackend(small, large)
    run = ThinkLoop(backend, cfg(generation__max_tokens=60, segment__tokens=20)).run_one(P1, "P", "spec", 0)
    assert run.tokens == 60 and run.stopped_by == "max_tokens"
    assert [s.writer for s in run.segments] == ["small", "large"]
    assert run.segments[1].tokens == 7  # 60 - 53 (50 words, 2 newlines, Wait) left for the large model
    summary = summarize_think([run])
    assert ThinkWarningCode.MAX_TOKENS in {w.code for w in summary.warnings}


def test_stop_at_answer_ends_the_run_at_a_final_answer() -> None:
    small = ScriptedModel("1 + 1 = 2, so \\boxed{2}.\n\nWait, let me double check that again.")
    backend = ScriptedBackend(small, ScriptedModel("never used"))
    run = ThinkLoop(backend, cfg()).run_one(P1, "P", "spec", 0)
    assert run.stopped_by == "answer" and run.interventions == 0
    assert [c.role for c in backend.calls] == ["small"]

    backend = ScriptedBackend(ScriptedModel(small.script), ScriptedModel(" it is."))
    run = ThinkLoop(backend, cfg(generation__stop_at_answer=False)).run_one(P1, "P", "spec", 0)
    assert run.stopped_by == "eos" and run.interventions == 1


def test_large_alone_stops_at_the_same_kind_of_point_or_runs_as_one_request() -> None:
    script = "Two.\n\nWait, \\boxed{2}.\n\nHmm, sure. \\boxed{2}"
    backend = ScriptedBackend(ScriptedModel(""), ScriptedModel(script))
    run = ThinkLoop(backend, cfg()).run_one(P1, "P", "large", 0)
    assert {s.writer for s in run.segments} == {"large"}
    assert run.large_ratio == 1.0 and run.interventions == 0
    # the server drops the rest of a token a stop string ends in: "Wait," -> "Wait"
    assert run.stopped_by == "answer" and run.text == "Two.\n\nWait \\boxed{2}.\n\nHmm"
    assert all(c.role == "large" and "\n\nWait" in c.stop for c in backend.calls)
    assert backend.calls[1].prompt == "P" + "Two.\n\nWait"

    backend = ScriptedBackend(ScriptedModel(""), ScriptedModel(script))
    run = ThinkLoop(backend, cfg(generation__stop_at_answer=False)).run_one(P1, "P", "large", 0)
    assert len(backend.calls) == 1 and backend.calls[0].stop == []
    assert run.text == script and run.stopped_by == "eos" and run.answer == "2"


def test_text_without_triggers_is_written_by_the_small_model_alone() -> None:
    backend = ScriptedBackend(ScriptedModel("One and one.\n\nMake two.\n\n\\boxed{2}"), ScriptedModel("x"))
    run = ThinkLoop(backend, cfg()).run_one(P1, "P", "spec", 0)
    assert run.interventions == 0 and run.large_tokens == 0 and run.large_ratio == 0.0
    summary = summarize_think([run])
    assert ThinkWarningCode.NO_TRIGGERS in {w.code for w in summary.warnings}


def _fresh(small: str, large: str) -> ScriptedBackend:
    class Fresh(ScriptedBackend):
        def complete(self, role: Role, prompt: str, **kw: Any) -> Piece:
            # each run starts the scripts from the top: a new run has an empty text
            if prompt.endswith("<assistant>"):
                self.small.pos = self.large.pos = 0
            return super().complete(role, prompt, **kw)

    return Fresh(ScriptedModel(small), ScriptedModel(large))


def test_run_all_interleaves_modes_and_seeds_runs() -> None:
    backend = _fresh("A.\n\nBut \\boxed{2}", " so \\boxed{2}")
    loop = ThinkLoop(backend, cfg())
    seen: list[ThinkRun] = []
    out = loop.run_all([P1, Problem("p2", "2?", "3")], parse_test_mode("both"), 2, on_run=seen.append)
    assert out.error is None and seen == out.runs
    order = [(r.problem_id, r.run, r.mode) for r in out.runs]
    assert order == [
        ("p1", 0, "large"),
        ("p1", 0, "spec"),
        ("p1", 1, "spec"),
        ("p1", 1, "large"),
        ("p2", 0, "large"),
        ("p2", 0, "spec"),
        ("p2", 1, "spec"),
        ("p2", 1, "large"),
    ]
    assert [r.seed for r in out.runs] == [0, 0, 1, 1, 0, 0, 1, 1]
    # warm-up: one short request per model before the first measured run, not recorded
    assert [(c.role, c.max_tokens) for c in backend.calls[:2]] == [("large", 8), ("small", 8)]
    assert [r.correct for r in out.runs if r.problem_id == "p2"] == [False] * 4
    s = summarize_think(out.runs)
    assert s.accuracy is not None and s.accuracy.method == "mcnemar-exact"
    assert s.accuracy.large.k == 2 and s.accuracy.spec.k == 2 and s.accuracy.p_value == 1.0
    assert s.speedup is not None and s.speedup_paired is not None and s.speedup_paired.n_pairs == 4
    assert [p.problem_id for p in s.problems] == ["p1", "p2"]
    # the user message comes from the template
    assert "What is 1 + 1?" in backend.rendered[0][-1]["content"]
    assert "\\boxed{}" in backend.rendered[0][-1]["content"]


def test_a_backend_that_dies_mid_problem_keeps_what_finished() -> None:
    backend = _fresh("A.\n\nBut b.\n\nc d e f", " yes.\n\n")
    # warm-up (2 calls), run 0 (small, large, small peek), run 1's small; then the server dies
    backend.die_after = 2 + 3 + 1
    saved: list[ThinkRun] = []
    out = ThinkLoop(backend, cfg()).run_all([P1, Problem("p2", "x", None)], ("spec",), 3, on_run=saved.append)
    assert out.error is not None and "problem p1, run 1, spec" in out.error
    assert "ConnectionError: server closed the connection" in out.error and "\n" not in out.error
    assert saved == out.runs and len(out.runs) == 2
    done, failed = out.runs
    assert done.error is None and done.stopped_by == "eos"
    assert failed.error is not None and failed.stopped_by == "error"
    assert failed.text == "A.\n\nBut" and failed.segments[0].writer == "small"  # partial text kept
    s = summarize_think(out.runs)
    assert s.spec is not None and s.spec.runs == 1 and s.spec.failed == 1
    assert ThinkWarningCode.FAILED_RUNS in {w.code for w in s.warnings}


def test_a_backend_that_fails_before_the_first_run() -> None:
    class NoTemplate(ScriptedBackend):
        def render_chat(self, messages: list[dict[str, str]]) -> str:
            raise VelobenchError("llama-server: POST /apply-template answered 500")

    out = ThinkLoop(NoTemplate(ScriptedModel(""), ScriptedModel("")), cfg()).run_all([P1], ("spec",), 1)
    assert (
        out.runs == []
        and out.error == "before the first run: llama-server: POST /apply-template answered 500"
    )


def test_bad_test_mode_runs_and_problem_counts_are_one_line_errors() -> None:
    with pytest.raises(VelobenchError, match=r"^unknown test mode 'fast': use large, spec or both$"):
        parse_test_mode("fast")
    assert parse_test_mode("both") == ("large", "spec")
    backend = ScriptedBackend(ScriptedModel(""), ScriptedModel(""))
    with pytest.raises(VelobenchError, match="--num-runs must be at least 1"):
        ThinkLoop(backend, cfg()).run_all([P1], ("spec",), 0)
    with pytest.raises(VelobenchError, match="--num-problems must be at least 1"):
        first_problems([P1], 0)
    with pytest.raises(VelobenchError, match="no problems"):
        first_problems([], None)
    assert first_problems([P1, Problem("p2", "x")], 1) == [P1]


def test_server_that_stops_without_saying_at_what_is_an_error_in_the_run() -> None:
    class Vague(ScriptedBackend):
        def complete(self, role: Role, prompt: str, **kw: Any) -> Piece:
            return Piece(text="x", tokens=1, seconds=0.0, finish="stop", stop=None)

    run = ThinkLoop(Vague(ScriptedModel(""), ScriptedModel("")), cfg()).run_one(P1, "P", "spec", 0)
    assert run.stopped_by == "error" and run.error is not None and "not which" in run.error


def test_server_that_generates_nothing_without_ending_is_an_error_not_a_hang() -> None:
    class Stuck(ScriptedBackend):
        def complete(self, role: Role, prompt: str, **kw: Any) -> Piece:
            return Piece(text="", tokens=0, seconds=0.0, finish="length")

    run = ThinkLoop(Stuck(ScriptedModel(""), ScriptedModel("")), cfg()).run_one(P1, "P", "large", 0)
    assert run.stopped_by == "error" and run.error is not None and "generated no token" in run.error


def test_overrides_reach_the_loop() -> None:
    c = with_overrides(load_think_config(), triggers=["therefore"], segment_tokens=5)
    backend = ScriptedBackend(
        ScriptedModel("A.\n\nTherefore b.\n\nC."), ScriptedModel("one two three four five six")
    )
    run = ThinkLoop(backend, c).run_one(P1, "P", "spec", 0)
    assert run.segments[1].trigger == "therefore" and run.segments[1].tokens == 5
    assert backend.calls[0].stop == ["\n\ntherefore", "\n\nTherefore", "\n\nTHEREFORE"]


def test_open_tail_makes_the_next_request_a_peek() -> None:
    loop = ThinkLoop(ScriptedBackend(ScriptedModel(""), ScriptedModel("")), cfg())
    assert loop.open_tail("x\n") and loop.open_tail("x\n\n") and loop.open_tail("x\n\nWa")
    assert loop.open_tail("x\n\nalternativ")
    assert not loop.open_tail("x.") and not loop.open_tail("x\n\nWait") and not loop.open_tail("")

    class CutAtNewline(ScriptedModel):
        def generate(self, max_tokens: int, stop: list[str]) -> Piece:
            # the peek after the large model's break ends in one "\n"; the next piece starts
            # with the second "\n" and a trigger word, which no stop string can see
            self.pos += 1
            pieces = [
                Piece("Start.", 3, 0.0, "stop", "\n\nBut"),
                Piece(" fine.\n", 8, 0.0, "length"),
                Piece("\nHowever, a long paragraph", 5, 0.0, "length"),
            ]
            return pieces[self.pos - 1] if self.pos <= len(pieces) else Piece("", 0, 0.0, "eos")

    backend = ScriptedBackend(CutAtNewline(""), ScriptedModel(" ok.\n\n"))
    run = ThinkLoop(backend, cfg(generation__stop_at_answer=False)).run_one(P1, "P", "spec", 0)
    small_calls = [c.max_tokens for c in backend.calls if c.role == "small"]
    assert small_calls[:3] == [32768, 8, 8]  # after the large model's break, and after the lone "\n"
    assert run.segments[3].text == "\nHowever" and run.segments[3].discarded == ", a long paragraph"
    assert run.segments[4].writer == "large" and run.segments[4].trigger == "however"
