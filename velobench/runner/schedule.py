"""The order a run's iterations are measured in: pure functions of counts, no engine.

A slot is one measured generation: its mode, its iteration number within that mode (1-based,
`Iteration.index`) and the prompt it runs (an index into the run's prompt list). Iteration i of
either mode runs prompt (i − 1) mod P, so the k-th occurrence of a prompt in one mode pairs with
the k-th in the other (`analysis.summaries.pair_iterations`).

    blocked       every vanilla iteration, then every speculative one (velobench before 0.6)
    levels        `velobench load`: level i (0-based) of an interleaved sweep runs AB when i is
                  even, else BA (`level_order`)
    interleaved   pair j (0-based: iteration j + 1 of both modes, prompt k = j mod P in round
                  r = j div P) runs AB when k + r is even, else BA (A = vanilla, B = speculative)

Why this design. Within a round, adjacent prompts alternate AB, BA, AB, ...; across rounds the
pattern continues (P odd: AB BA AB | BA AB BA) or flips (P even: AB BA | BA AB), so every four
consecutive slots of two adjacent pairs are ABBA or BAAB: under a linear drift d per slot, A's
two slots and B's two have the same mean time, and the drift cancels from each such block of
two pairs (a single pair is off by ±d, with opposite signs in its neighbour). Each prompt runs
AB in one round and BA in the next, so an order effect (e.g. the first generation after a
switch) is balanced per prompt over every two rounds as well as overall. A pair's two slots are
adjacent, so the pair shares its prompt and its moment: what the paired estimate needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from velobench.results.schema import Mode

A: Mode = "vanilla"
B: Mode = "speculative"
M = TypeVar("M", bound=str)  # a mode


@dataclass(frozen=True)
class Slot:
    mode: Mode
    index: int  # iteration number within the mode, 1-based
    prompt: int  # index into the prompt list


def pair_order(j: int, n_prompts: int) -> tuple[Mode, Mode]:
    """The order of pair j (0-based): AB when (j mod P) + (j div P) is even, else BA."""
    k, r = j % n_prompts, j // n_prompts
    return (A, B) if (k + r) % 2 == 0 else (B, A)


def interleaved(first: int, count: int, n_prompts: int, modes: Sequence[Mode] = (A, B)) -> list[Slot]:
    """Slots of pairs `first` .. `first + count − 1` (0-based) in balanced order (module docstring).

    With one mode (a `--skip-*` run) there is nothing to alternate: its iterations in order.
    """
    out: list[Slot] = []
    for j in range(first, first + count):
        order = pair_order(j, n_prompts) if len(modes) > 1 else tuple(modes)
        out += [Slot(m, j + 1, j % n_prompts) for m in order if m in modes]
    return out


def blocked(first: int, count: int, n_prompts: int, modes: Sequence[Mode] = (A, B)) -> list[Slot]:
    """Slots of iterations `first + 1` .. `first + count` of each mode, one mode after the other."""
    return [Slot(m, j + 1, j % n_prompts) for m in modes for j in range(first, first + count)]


def level_order(i: int, modes: Sequence[M]) -> list[M]:
    """The modes of level i (0-based) of an interleaved sweep, in the order they run: as given
    when i is even, reversed when odd (ABBA: level 1 AB, level 2 BA, level 3 AB, ...).

    Why: under a drift linear in time, each block of two adjacent levels puts A at slots 1 and 4
    and B at 2 and 3, the same mean time, so the drift cancels from the sweep's pairs of levels;
    and each arm runs first as often as second (an order effect, e.g. a cold first level after a
    switch, is balanced). With one mode there is nothing to alternate.
    """
    return list(modes) if i % 2 == 0 else list(reversed(modes))
