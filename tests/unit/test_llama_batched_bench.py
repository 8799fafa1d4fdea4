"""llama-batched-bench's output parsed from real captured runs (SmolLM2-135M, 1 thread, this machine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import FIXTURES
from velobench.advise.model import StepCosts
from velobench.engines.llama_batched_bench import argv, parse_rows

DIR = FIXTURES / "llama" / "batched-bench"


def test_markdown_table() -> None:
    rows = parse_rows((DIR / "smollm2-md.stdout").read_text())
    assert [(r.pp, r.tg, r.batch) for r in rows] == [
        (1, 8, 1),
        (1, 8, 2),
        (3, 8, 1),
        (3, 8, 2),
        (5, 8, 1),
        (5, 8, 2),
    ]
    first = rows[0]  # |     1 |      8 |    1 |      9 |    0.039 |    25.91 |    0.226 |    35.48 | ...
    assert first.t_pp_s == pytest.approx(1 * 1 / 25.91)  # from S_PP: more digits than T_PP's 0.039
    assert first.t_tg_s == pytest.approx(1 * 8 / 35.48)
    assert rows[-1].t_pp_s == pytest.approx(2 * 5 / 54.49)  # B·PP tokens in the prompt phase


def test_jsonl_rows() -> None:
    rows = parse_rows((DIR / "smollm2-jsonl.stdout").read_text())
    assert len(rows) == 6
    assert all(r.t_pp_s > 0 and r.t_tg_s > 0 for r in rows)
    costs = StepCosts.from_rows(rows)
    assert set(costs.pass_s) == {1, 2}  # the PP = 1 rows: a pass over B tokens
    assert set(costs.prefill_s) == {1, 3, 5}  # the B = 1 rows: a PP-token prompt
    assert costs.pass_s[1] == pytest.approx(rows[0].t_tg_s / 8)
    assert costs.prefill_s[5] == pytest.approx(rows[4].t_pp_s)


def test_no_rows_is_a_quoted_error() -> None:
    text = (DIR / "smollm2-md.stderr").read_text()
    with pytest.raises(ValueError, match="no llama-batched-bench rows"):
        parse_rows(text)


def test_bad_jsonl_row_is_quoted() -> None:
    with pytest.raises(ValueError, match="not a llama-batched-bench JSONL row"):
        parse_rows('{"t_pp": 1, "pp": "x"}')


def test_argv_context_fits_the_largest_row() -> None:
    from pathlib import Path

    a = argv(Path("/b/llama-batched-bench"), "m.gguf", [1, 3, 9], [1, 4], tg=8, threads=1, gpu_layers="all")
    assert a[a.index("-c") + 1] == str(4 * (9 + 8) + 16)
    assert a[a.index("-npp") + 1] == "1,3,9" and a[a.index("-npl") + 1] == "1,4"
    assert a[a.index("-ngl") + 1] == "99" and "--output-format" in a


def test_argv_repeats_the_widths_for_each_repetition() -> None:
    from pathlib import Path

    a = argv(
        Path("/b/llama-batched-bench"), "m.gguf", [1, 3, 5] * 2, [1, 2], tg=2, threads=1, gpu_layers=None
    )
    assert a[a.index("-npp") + 1] == "1,3,5,1,3,5" and a[a.index("-c") + 1] == str(2 * (5 + 2) + 16)


def test_two_repetitions_in_one_run_are_split_in_order(tmp_path: Path) -> None:
    """A real run of `-npp 1,3,5,1,3,5 -npl 1,2`: PP-major, so rows 1-6 are the first repetition
    and 7-12 the second; one call of the tool for both."""
    from tests.unit.test_lost_log import calls, replaying_tool
    from velobench.engines.llama_batched_bench import measure

    out, err = DIR / "smollm2-reps2.stdout", DIR / "smollm2-reps2.stderr"
    replaying_tool(tmp_path, "llama-batched-bench", [(out, err)])
    costs = measure("m.gguf", [5, 1, 3], [2, 1], repetitions=2, tg=2, threads=1, llama_cpp_path=tmp_path)
    assert calls(tmp_path) == 1 and len(costs.commands) == 1
    assert "-npp 1,3,5,1,3,5" in costs.commands[0]
    rows = parse_rows(out.read_text())
    assert costs.repetitions == [rows[:6], rows[6:]]
    assert [(r.pp, r.batch) for r in costs.repetitions[1]] == [(1, 1), (1, 2), (3, 1), (3, 2), (5, 1), (5, 2)]
    assert costs.repetitions[0][0].t_tg_s != costs.repetitions[1][0].t_tg_s  # measured twice


def test_a_run_that_lost_the_last_repetitions_rows_is_measured_again(tmp_path: Path) -> None:
    """The log's end lost (the second repetition's last rows never written): the run is made
    again, and the missing rows are named by repetition when every attempt lacks them."""
    from tests.unit.test_lost_log import calls, replaying_tool
    from velobench.engines.llama_args import LOST_LOG_ATTEMPTS, Unparsed
    from velobench.engines.llama_batched_bench import measure, split_repetitions

    out, err = DIR / "smollm2-reps2.stdout", DIR / "smollm2-reps2.stderr"
    cut = tmp_path / "cut.stdout"
    cut.write_text("".join(out.read_text().splitlines(keepends=True)[:10]))
    replaying_tool(tmp_path, "llama-batched-bench", [(cut, err), (out, err)])
    costs = measure("m.gguf", [1, 3, 5], [1, 2], repetitions=2, tg=2, threads=1, llama_cpp_path=tmp_path)
    assert calls(tmp_path) == 2 and len(costs.repetitions) == 2
    want = [(w, b) for w in (1, 3, 5) for b in (1, 2)]
    assert split_repetitions(parse_rows(cut.read_text()), want, 2) == ["repetition 2 of 2: [(5, 1), (5, 2)]"]
    (tmp_path / "calls").unlink()
    replaying_tool(tmp_path, "llama-batched-bench", [(cut, err)])
    with pytest.raises(Unparsed, match=r"repetition 2 of 2: \[\(5, 1\), \(5, 2\)\]"):
        measure("m.gguf", [1, 3, 5], [1, 2], repetitions=2, tg=2, threads=1, llama_cpp_path=tmp_path)
    assert calls(tmp_path) == LOST_LOG_ATTEMPTS
