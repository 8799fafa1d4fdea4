"""Matrix runs: config validation (unit) and the smoke matrix on real SmolLM2, killed and resumed."""

from __future__ import annotations

from pathlib import Path

import pytest

from velobench.errors import VelobenchError
from velobench.runner.matrix import cells, load_config, read_records

EXAMPLE = Path(__file__).parents[2] / "examples" / "matrix-smoke.toml"


def test_smoke_example_expands_to_baseline_first_then_cells() -> None:
    cfg = load_config(EXAMPLE)
    ids = [c.id for c in cells(cfg)]
    assert ids[0] == "smollm2-135m__vanilla"
    assert ids[1:] == [
        "smollm2-135m__smollm2-135m__draft__nd2__pmin0",
        "smollm2-135m__smollm2-135m__draft__nd4__pmin0",
        "smollm2-135m__nodraft__ngram-simple__nd8__pmin0",
    ]


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        (
            "[run]\niterations = 0\n[[pairs]]\ntarget='a'\n[[methods]]\n",
            ":2: run.iterations: Input should be greater than or equal to 1",
        ),
        (
            "[[pairs]]\ntarget='a'\n[[methods]]\nmethod='draft'\n\n[[methods]]\nn_draft = 'x'\n",
            ":7: methods.1.n_draft",
        ),
        (
            "[[pairs]]\ntarget='a'\ncolour='red'\n[[methods]]\n",
            ":3: pairs.0.colour: unknown key",
        ),
        ("[[pairs]]\ntarget=\n", "not valid TOML"),
        ("[[methods]]\n", "pairs: Field required"),
    ],
)
def test_config_errors_name_the_key_and_line(tmp_path: Path, toml: str, needle: str) -> None:
    f = tmp_path / "m.toml"
    f.write_text(toml)
    with pytest.raises(VelobenchError, match=None) as exc:
        load_config(f)
    assert needle in str(exc.value)


def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    ledger = tmp_path / "cells.jsonl"
    ledger.write_text('{"cell": {"id": "x"')
    assert read_records(ledger) == []
