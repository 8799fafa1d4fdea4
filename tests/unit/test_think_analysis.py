"""Trigger detection and answer extraction (velobench/analysis/think.py), pure functions.

The first half runs on real texts: llama-server (llama.cpp 0c1e570) outputs captured by
tests/fixtures/think/capture.py and committed with their request (see README.md there), with
what a person reading each text found in it, in tests/fixtures/think/expected.json. The second
half pins the rules on small hand-written cases.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from velobench.think.analysis import (
    boxed_contents,
    extract_answer,
    final_answer,
    find_triggers,
    first_trigger_after,
    is_correct,
    normalize_answer,
    parse_number,
    reference_answer,
    trigger_stop_strings,
)
from velobench.think.config import load_think_config

FIXTURES = Path(__file__).parents[1] / "fixtures" / "think"
EXPECTED: dict[str, dict[str, Any]] = json.loads((FIXTURES / "expected.json").read_text())
WORDS = load_think_config().triggers.words


def _fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def test_every_captured_text_has_expectations() -> None:
    # the texts are *-think-*.json; the backend answers (llama-server-*, vllm-*) and a result
    # file beside them are read by test_think_backends.py and test_think_report.py
    captured = {p.name for p in FIXTURES.glob("*-think-*.json")}
    assert captured == set(EXPECTED)
    assert len(captured) >= 8


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_triggers_in_real_text(name: str) -> None:
    text = _fixture(name)["response"]["content"]
    hits = find_triggers(text, WORDS)
    assert [h.word for h in hits] == EXPECTED[name]["triggers"]
    for h in hits:
        assert text[h.start : h.start + 2] == "\n\n"
        assert text[h.start + 2 : h.end].lower() == h.word


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_answers_in_real_text(name: str) -> None:
    fx = _fixture(name)
    text, exp = fx["response"]["content"], EXPECTED[name]
    assert extract_answer(text) == exp["answer"]
    assert final_answer(text) == exp["final"]
    assert is_correct(extract_answer(text), fx["answer"]) is exp["correct"]


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if n.endswith("-stop.json")))
def test_the_server_stops_where_the_detector_sees_a_trigger(name: str) -> None:
    """With the trigger stop strings, llama-server ends at the first trigger (stop_type "word",
    the stop string excluded from content) or runs on to EOS / n_predict when there is none."""
    fx = _fixture(name)
    resp = fx["response"]
    assert fx["request"]["stop"] == trigger_stop_strings(WORDS)
    if resp["stop_type"] == "word":
        text = resp["content"] + resp["stopping_word"]
        hit = first_trigger_after(text, WORDS, len(resp["content"]))
        assert hit is not None and hit.end == len(text) and hit.start == len(resp["content"])
        assert find_triggers(resp["content"], WORDS) == []
    else:
        assert resp["stop_type"] in ("eos", "limit")
        assert find_triggers(resp["content"], WORDS) == []


# ------------------------------------------------------------------ the rules, by hand


def test_trigger_rules() -> None:
    text = "Step.\n\nWait, no.\n\nwaiting\n\nHMM.\n\n But not this.\n\n**Wait**\n\nHowever"
    assert [(h.word, h.start) for h in find_triggers(text, WORDS)] == [
        ("wait", 5),
        ("wait", 16),  # a prefix: "waiting" counts, as a server's stop string would
        ("hmm", 25),
        ("however", 57),
    ]
    assert find_triggers("Wait at the start\nWait after one newline", WORDS) == []
    assert [h.start for h in find_triggers("a\n\n\nBut", WORDS)] == [2]
    with pytest.raises(ValueError):
        find_triggers("x", [])


def test_multi_word_triggers_and_regex_characters() -> None:
    assert [h.word for h in find_triggers("x\n\nHold on, y\n\nhold", ["hold on"])] == ["hold on"]
    assert [h.word for h in find_triggers("x\n\n(a) y", ["(a)"])] == ["(a)"]


def test_first_trigger_after_a_boundary() -> None:
    text = "A.\n\nBut b.\n\nWait"
    assert first_trigger_after(text, WORDS, 0) == find_triggers(text, WORDS)[0]
    assert first_trigger_after(text, WORDS, 7).word == "wait"  # type: ignore[union-attr]
    assert first_trigger_after(text, WORDS, len(text)) is None
    # the break before the boundary, the word after it: a junction trigger
    assert first_trigger_after("A.\n\nHmm", WORDS, 4).word == "hmm"  # type: ignore[union-attr]


def test_trigger_stop_strings() -> None:
    assert trigger_stop_strings(["wait", "Hold on"]) == [
        "\n\nwait",
        "\n\nWait",
        "\n\nWAIT",
        "\n\nhold on",
        "\n\nHold on",
        "\n\nHOLD ON",
    ]


def test_boxed_with_nested_braces_and_unclosed() -> None:
    assert boxed_contents(r"\boxed{\frac{1}{2}} and \boxed{ {a}{b} }") == [r"\frac{1}{2}", " {a}{b} "]
    assert boxed_contents(r"so \boxed{12") == []
    assert boxed_contents(r"\fbox{3}") == ["3"]


@pytest.mark.parametrize(
    ("text", "answer", "final"),
    [
        (r"x \boxed{3} then \boxed{4}.", "4", "4"),
        ("Natalia sold 48/2 = 24 clips.\n#### 72", "72", "72"),
        ("so she pays $1,200.\n#### 1,200", "1,200", "1,200"),
        ("The answer is 17.", "17", None),
        ("Answer: -3/4", "-3/4", None),
        ("it costs 3 then 4.5 dollars", "4.5", None),
        ("no numbers here", None, None),
        (r"\boxed{12", "12", None),  # unclosed box: not final; the last number is still a guess
    ],
)
def test_answer_extraction(text: str, answer: str | None, final: str | None) -> None:
    assert extract_answer(text) == answer
    assert final_answer(text) == final


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("1,000", "1000"),
        ("$5", "5"),
        (r"\$5", "5"),
        ("5.0", "5"),
        ("5.", "5"),
        ("-3", "-3"),
        ("50%", "50"),
        (r"50\%", "50"),
        ("0.5", "1/2"),
        (r"\frac{1}{2}", "1/2"),
        (r"\dfrac{3}{4}", "3/4"),
        (r"-\frac{1}{2}", "-1/2"),
        ("x = 7", "7"),
        (r"18 \text{ dollars}", "18"),
        (r"1{,}000", "1000"),
        ("130^\\circ", "130"),
        (r"\text{Blue}", "blue"),
        ("1,2", "1,2"),
        ("3 and 4", "3and4"),
    ],
)
def test_normalize_answer(raw: str, value: str) -> None:
    assert normalize_answer(raw) == value


def test_parse_number_rejects_non_numbers() -> None:
    assert parse_number("1,2") is None and parse_number("abc") is None and parse_number("1/0") is None


def test_correctness() -> None:
    assert is_correct("1,000", "1000") is True
    assert is_correct("9.30", "9.3") is True
    assert is_correct("072", "72") is True  # AIME answers are written with three digits
    assert is_correct("71", "72") is False
    assert is_correct(None, "72") is False
    assert is_correct("72", None) is None
    gsm = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72"
    assert reference_answer(gsm) == "72" and is_correct("72", gsm) is True


def test_the_stop_strings_cut_exactly_at_the_detected_trigger() -> None:
    """Same prompt and seed, with and without the trigger stop strings: the stopped text plus its
    stop string is the start of the free text, and ends where the detector finds the trigger."""
    free = _fixture("qwen05-think-010-s1-checkpara.json")["response"]
    stopped = _fixture("qwen05-think-010-s1-checkpara-stop.json")["response"]
    assert stopped["stop_type"] == "word" and stopped["stopping_word"] == "\n\nWait"
    assert free["content"].startswith(stopped["content"] + stopped["stopping_word"])
    hit = find_triggers(free["content"], WORDS)[0]
    assert hit.start == len(stopped["content"]) and hit.word == "wait"
