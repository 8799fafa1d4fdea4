"""The built-in think problems (prompts/think/math.jsonl): every answer computed here in Python.

Each problem has a check that derives its answer from the numbers in the problem, by brute
force where that is possible (divisors, counting, search), not by restating the answer. A
problem added without a check fails `test_every_problem_has_a_check`.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest

from velobench.think.analysis import normalize_answer, parse_number

PROBLEMS = Path(__file__).parents[2] / "prompts" / "think" / "math.jsonl"


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _m_plus_n(p: Fraction) -> int:
    return p.numerator + p.denominator


def _mother() -> int:
    return next(m for s in range(1, 100) for m in [3 * s] if m + 12 == 2 * (s + 12))


def _three_consecutive() -> int:
    return next(n + 2 for n in range(-100, 100) if n + (n + 1) + (n + 2) == 84)


def _ken() -> int:
    ken = next(k for k in range(46) if 2 * k + k == 45)
    return ken + 5


def _solve_x() -> int:
    return next(x for x in range(-1000, 1000) if 3 * (x - 4) + 7 == 2 * x + 15)


def _pencils() -> Fraction:
    costs = [
        packs * Fraction("3.60") + singles * Fraction("0.35")
        for packs in range(4)
        for singles in range(31)
        if 12 * packs + singles == 30
    ]
    return min(costs)


def _clock() -> Fraction:
    minute = 6 * 40
    hour = 30 * 3 + Fraction(1, 2) * 40
    a = abs(hour - minute)
    return min(a, 360 - a)


def _even_product() -> int:
    return next(n + n + 2 for n in range(2, 100, 2) if n * (n + 2) == 288)


def _crt() -> int:
    return next(n for n in range(1, 10_000) if n % 4 == 3 and n % 5 == 4 and n % 6 == 5)


def _trailing_zeros() -> int:
    s = str(math.factorial(100))
    return len(s) - len(s.rstrip("0"))


def _three_divisors() -> int:
    return sum(1 for n in range(1, 501) if len(_divisors(n)) == 3)


def _factorial_1000() -> int:
    return next(n for n in range(1, 100) if math.factorial(n) % 1000 == 0)


def _banana() -> int:
    return len(set(itertools.permutations("BANANA")))


def _dice8() -> int:
    rolls = list(itertools.product(range(1, 7), repeat=2))
    return _m_plus_n(Fraction(sum(1 for a, b in rolls if a + b == 8), len(rolls)))


def _two_red() -> int:
    balls = ["r"] * 5 + ["b"] * 7
    draws = list(itertools.permutations(range(len(balls)), 2))
    return _m_plus_n(Fraction(sum(1 for i, j in draws if balls[i] == balls[j] == "r"), len(draws)))


def _fib(n: int) -> int:
    a, b = 1, 1
    for _ in range(n - 2):
        a, b = b, a + b
    return b


def _compound() -> Fraction:
    v = Fraction(2000)
    for _ in range(3):
        v *= Fraction(105, 100)
    return Fraction(round(v * 100), 100)


CHECKS: dict[str, Callable[[], int | Fraction]] = {
    "think-001": lambda: 47 + 38,
    "think-002": lambda: 23 * 17,
    "think-003": lambda: 1000 - 387,
    "think-004": lambda: Fraction(15, 100) * 240,
    "think-005": lambda: Fraction(2, 3) * 189,
    "think-006": lambda: sum(range(1, 151)),
    "think-007": lambda: 24 * 15,
    "think-008": lambda: 3 * 14 - 9,
    "think-009": lambda: 40 * Fraction(75, 100),
    "think-010": lambda: 72 * Fraction(5, 2),
    "think-011": lambda: next(d for d in range(1, 100) if 18 * d >= 300),
    "think-012": lambda: 12 * 12 - Fraction(5, 8) * 144,
    "think-013": lambda: Fraction(6 * 10, 15),
    "think-014": lambda: 5 * 17 - (12 + 15 + 20 + 22),
    "think-015": lambda: 30 - (18 + 15 - 7),
    "think-016": lambda: Fraction(640, 100) * Fraction("7.5") * Fraction("1.80"),
    "think-017": _three_consecutive,
    "think-018": lambda: 15 * (54 // 2 - 15),
    "think-019": _mother,
    "think-020": _ken,
    "think-021": lambda: 120 * Fraction(150, 100) * Fraction(80, 100),
    "think-022": _solve_x,
    "think-023": lambda: 1 / (Fraction(1, 6) + Fraction(1, 3)),
    "think-024": _pencils,
    "think-025": _compound,
    "think-026": _clock,
    "think-027": lambda: [3 + 4 * k for k in range(50)][-1],
    "think-028": _even_product,
    "think-029": lambda: Fraction(math.hypot(20, 21)),
    "think-030": lambda: (12 - 2) * 180,
    "think-031": lambda: len(_divisors(360)),
    "think-032": lambda: math.lcm(18, 24, 30),
    "think-033": lambda: math.gcd(462, 1071),
    "think-034": lambda: 2**100 % 7,
    "think-035": lambda: sum(n for n in range(1, 100) if n % 3 == 0 or n % 5 == 0),
    "think-036": lambda: sum(1 for n in range(1, 1001) if n % 2 and n % 5),
    "think-037": _crt,
    "think-038": _trailing_zeros,
    "think-039": lambda: sum(int(c) for c in str(2**20)),
    "think-040": lambda: sum(_divisors(2024)),
    "think-041": _three_divisors,
    "think-042": _factorial_1000,
    "think-043": lambda: len(list(itertools.combinations(range(10), 3))),
    "think-044": _banana,
    "think-045": _dice8,
    "think-046": _two_red,
    "think-047": lambda: _fib(20),
}


def _problems() -> list[dict[str, str]]:
    return [json.loads(line) for line in PROBLEMS.read_text().splitlines() if line.strip()]


def test_at_least_thirty_problems_with_unique_ids_and_answers() -> None:
    problems = _problems()
    assert len(problems) >= 30
    ids = [p["id"] for p in problems]
    assert len(set(ids)) == len(ids)
    for p in problems:
        assert set(p) == {"id", "category", "prompt", "answer"}, p["id"]
        assert p["prompt"].strip() and p["answer"].strip(), p["id"]
        assert parse_number(p["answer"]) is not None, f"{p['id']}: answer {p['answer']!r} is not a number"


def test_every_problem_has_a_check() -> None:
    assert {p["id"] for p in _problems()} == set(CHECKS)


@pytest.mark.parametrize("problem", _problems(), ids=lambda p: p["id"])
def test_answer_is_the_computed_one(problem: dict[str, str]) -> None:
    computed = CHECKS[problem["id"]]()
    assert parse_number(problem["answer"]) == Fraction(computed), problem["prompt"]
    value = Fraction(computed)
    as_text = str(value.numerator) if value.denominator == 1 else str(float(value))
    assert normalize_answer(as_text) == normalize_answer(problem["answer"])
