"""One matrix cell in a process of its own: `python -m velobench.runner.cell SPEC.json`.

What a cluster node runs for a cell (`runner.executor_ray`): the same `run_cell` a local matrix
calls, so a cell is `velobench run` with its flags wherever it runs. The spec (JSON) holds the
matrix configuration, the cell, where its result goes, the baseline file that serves it (if
any) and where to write the outcome: `{"error": null}` or `{"error": "one line"}`. The process
is started with a parent-death signal and a group watchdog (`proc.supervised`,
`proc.group_watchdog`): when its Ray task is cancelled or its worker dies, it dies too, and its
llama-servers with it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console

from velobench.errors import VelobenchError
from velobench.fsutil import write_text_atomic
from velobench.results import store
from velobench.results.matrix import Cell, MatrixConfig
from velobench.runner.matrix import run_cell


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    cfg = MatrixConfig.model_validate(spec["cfg"])
    cell = Cell.model_validate(spec["cell"])
    base = spec.get("baseline")
    baseline = (Path(base["source"]), store.load(Path(base["file"]))) if base else None
    console = Console(file=sys.stdout, width=120, force_terminal=False)
    try:
        result = run_cell(cfg, cell, Path(spec["out"]), console, baseline, both_arms=spec["both_arms"])
    except VelobenchError as exc:  # Ctrl-C or a refused save on the node: this cell failed there
        result = exc
    error = str(result) if isinstance(result, VelobenchError) else None
    write_text_atomic(Path(spec["outcome"]), json.dumps({"error": error}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
