"""`velobench matrix --cluster`, the parts that need no cluster: resources, records, hardware grouping,
Ray never imported by other commands and a clear line where it is missing. The cluster itself:
tests/integration/test_matrix_ray.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from velobench import export
from velobench.errors import VelobenchError
from velobench.results import store
from velobench.results.matrix import CellResources, MatrixConfig
from velobench.runner.executor import CellJob, CellOutcome
from velobench.runner.executor_ray import INSTALL_HINT, fits, resources_of, slots
from velobench.runner.matrix import cells, outcome_record

ROOT = Path(__file__).parents[2]
RUN = ROOT / "tests" / "fixtures" / "schema-versions" / "run-v5.json"


def plan(**extra: object) -> MatrixConfig:
    return MatrixConfig.model_validate(
        {
            "pairs": [
                {"target": "a", "draft": "b", "resources": {"gpus": 2}},
                {"target": "c", "draft": "d"},
            ],
            "methods": [{"n_draft": [2]}, {"method": "ngram-simple"}],
            **extra,
        }
    )


def test_a_pair_s_resources_override_the_matrix_s() -> None:
    cfg = plan(resources={"custom": {"gpu_slot": 1}, "labels": {"zone": "x"}})
    need = {c.id: resources_of(cfg, c) for c in cells(cfg)}
    assert need["a__vanilla"].gpus == 2 and need["a__b__draft__nd2__pmin0"].gpus == 2
    assert need["a__nodraft__ngram-simple__nd8__pmin0"].gpus == 2  # the target's pair says
    assert need["c__vanilla"] == cfg.resources and need["c__vanilla"].custom == {"gpu_slot": 1}


def test_a_node_fits_a_cell_by_resources_and_labels() -> None:
    node = {"Resources": {"CPU": 4.0, "GPU": 2.0, "gpu_slot": 1.0}, "Labels": {"zone": "x"}}
    assert fits(node, CellResources(gpus=2)) and slots(node, CellResources(gpus=2)) == 1
    assert slots(node, CellResources(gpus=1)) == 2
    assert slots(node, CellResources(cpus=1)) == 4
    assert slots(node, CellResources(cpus=0, custom={"gpu_slot": 1})) == 1
    assert not fits(node, CellResources(gpus=4))
    assert not fits(node, CellResources(custom={"tpu": 1}))
    assert not fits(node, CellResources(labels={"zone": "y"}))
    assert fits(node, CellResources(labels={"zone": "x"}))


def test_a_cell_that_measured_its_own_baseline_records_the_command_it_ran(tmp_path: Path) -> None:
    cfg = plan()
    cell = next(c for c in cells(cfg) if not c.baseline)
    report = store.load(RUN)
    job = CellJob(cfg, cell, tmp_path / "c.json")
    own = outcome_record(cfg, CellOutcome(job, report, 10.0, 12.5, own_baseline=True))
    shared = outcome_record(cfg, CellOutcome(job, report, 10.0, 12.5))
    assert "--skip-vanilla" not in own.command and own.own_baseline
    assert "--skip-vanilla" in shared.command and not shared.own_baseline
    assert own.seconds == 2.5 and (own.started, own.finished) == (10.0, 12.5)
    assert own.node is not None and own.node.environment == report.environment  # a local cell: this machine
    failed = outcome_record(cfg, CellOutcome(job, VelobenchError("node x: boom"), 1.0, 2.0))
    assert failed.status == "failed" and failed.error == "node x: boom" and failed.node is None


def test_cells_from_different_machines_are_never_in_one_table() -> None:
    a = store.load(RUN)
    b = a.model_copy(deep=True)
    b.environment = b.environment.model_copy(update={"cpu_model": "Another CPU"})
    b.config = b.config.model_copy(update={"n_draft": b.config.n_draft + 2})
    one = export.render([a, a.model_copy(update={"config": b.config})], "md")
    assert one.count("| n_draft") == 1 and "Machine: " in one and "Measured on" not in one
    two = export.render([a, b], "md")
    assert two.count("| n_draft") == 2, two
    assert "Machines: 2 kinds" in two and two.count("Measured on") == 2 and "Another CPU" in two


def velobench_py(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_other_commands_never_import_ray(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom velobench.cli import main\n"
        "for argv in (['--help'], ['matrix', '--help'], ['run', '--help']):\n"
        "    sys.argv = ['velobench', *argv]\n"
        "    try:\n        main()\n    except SystemExit:\n        pass\n"
        "print('RAY', sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    done = velobench_py(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "RAY []" in done.stdout


def test_cluster_without_ray_says_how_to_install_it(tmp_path: Path) -> None:
    (tmp_path / "plan.toml").write_text(
        "[[pairs]]\ntarget = 'smollm2-135m'\n[[methods]]\nmethod = 'ngram-simple'\n"
    )
    code = (
        "import sys\nsys.modules['ray'] = None  # as if not installed: `import ray` raises ImportError\n"
        "from velobench.cli import main\n"
        "sys.argv = ['velobench', 'matrix', 'plan.toml', '--cluster', 'auto']\nmain()\n"
    )
    done = velobench_py(code, tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [f"velobench: error: {INSTALL_HINT}"]
    assert "pip install 'velobench[ray]'" in INSTALL_HINT
    assert not (tmp_path / "results").exists()
