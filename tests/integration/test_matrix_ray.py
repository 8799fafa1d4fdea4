"""`velobench matrix --cluster` on a real local Ray cluster (three nodes, one "gpu_slot" each), with
real llama-servers on real SmolLM2: the same cells as a local run, resources respected, a node
killed mid-cell, the driver SIGKILLed and resumed, a model missing on a node, another velobench
on a node. The cluster and its driver run in a private network namespace with only loopback
(`ray_harness.py`): nothing listens beyond 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from velobench.runner.matrix import read_records

pytest.importorskip("ray")
pytestmark = pytest.mark.integration
if shutil.which("unshare") is None or shutil.which("ip") is None or os.geteuid() != 0:
    pytestmark = [
        pytestmark,
        pytest.mark.skip(reason="needs root, unshare and ip for a loopback-only namespace"),
    ]

HARNESS = Path(__file__).with_name("ray_harness.py")
ROOT = Path(__file__).parents[2]
SLOT = {"gpu_slot": 1}

MATRIX = """
[run]
iterations = 2
n_predict = 12
threads = 1
ctx_size = 512
engine = "server"
prompts = "builtin"
num_prompts = 1
categories = ["code"]

[resources]
cpus = 0
custom = {{gpu_slot = 1}}

[[pairs]]
target = "{model}"
draft = "{model}"

[[methods]]
method = "draft"
n_draft = [2, 4]

[[methods]]
method = "ngram-simple"
n_draft = [8]
"""


class Harness:
    """The cluster owner inside the namespace, driven by JSON lines (see ray_harness.py)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
        self.proc = subprocess.Popen(
            [
                "unshare",
                "-n",
                "-p",
                "-f",
                "--mount-proc",
                "bash",
                "-c",
                f"ip link set lo up; {sys.executable} {HARNESS}",  # bash stays pid 1: it reaps orphans,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(home / "harness.log").open("wb"),
            text=True,
            env=env,
        )
        self.address = self._read()["address"]
        self.pidns = self._pid_namespace()

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        assert line, (self.home / "harness.log").read_text()[-3000:]
        return json.loads(line)

    def __call__(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def _pid_namespace(self) -> str:
        kids = psutil.Process(self.proc.pid).children(recursive=True)
        return os.readlink(f"/proc/{kids[-1].pid}/ns/pid")

    def servers(self) -> list[int]:
        """llama-servers alive anywhere in the cluster (its PID namespace)."""
        found = []
        for p in psutil.process_iter(["name"]):
            try:
                if (
                    p.info["name"] == "llama-server"
                    and p.status() != psutil.STATUS_ZOMBIE
                    and os.readlink(f"/proc/{p.pid}/ns/pid") == self.pidns
                ):
                    found.append(p.pid)
            except (psutil.NoSuchProcess, OSError):
                continue
        return found

    def driver(self, args: list[str], log: Path) -> int:
        argv = [sys.executable, "-m", "velobench", "matrix", *args, "--cluster", self.address]
        return self(op="spawn", argv=argv, log=str(log))["id"]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    h = Harness(tmp_path_factory.mktemp("ray"))
    for _ in range(3):
        h(op="add", resources=SLOT)
    yield h
    h.close()


@pytest.fixture
def plan(isolated: Path, smol: Path) -> Path:
    """The smoke matrix on a plain model path in this test's folder."""
    model = isolated / "models" / "smol.gguf"
    model.parent.mkdir()
    model.symlink_to(smol)
    path = isolated / "plan.toml"
    path.write_text(MATRIX.format(model=model))
    return path


def wait_for(what: Any, timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := what()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
    return got


def test_smoke_matrix_on_three_nodes_as_local(
    cluster: Harness, plan: Path, llama_bin: Path, isolated: Path
) -> None:
    base = [str(plan), "--llama-cpp-path", str(llama_bin)]
    t = time.monotonic()
    local = subprocess.run(
        [sys.executable, "-m", "velobench", "matrix", *base, "-o", str(isolated / "local")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    local_s = time.monotonic() - t
    assert local.returncode == 0, local.stderr
    t = time.monotonic()
    job = cluster.driver([*base, "-o", str(isolated / "ray")], isolated / "driver.log")
    assert cluster(op="wait", id=job, timeout=600)["rc"] == 0, (isolated / "driver.log").read_text()[-3000:]
    ray_s = time.monotonic() - t
    here = {r.cell.id: r for r in read_records(isolated / "local" / "cells.jsonl")}
    there = {r.cell.id: r for r in read_records(isolated / "ray" / "cells.jsonl")}
    assert sorted(here) == sorted(there) and len(there) == 4
    for cid, rec in there.items():
        assert rec.status == here[cid].status == "complete"
        assert rec.tokens_per_second is not None and rec.tokens_per_second.mean > 0
        assert rec.node is not None and rec.node.node_id and rec.node.environment.hostname
        assert rec.started is not None and rec.finished is not None and rec.started < rec.finished
        assert Path(rec.report).is_file() and str(isolated / "ray") in rec.report
        if not rec.cell.baseline:
            assert rec.speedup is not None and rec.speedup.ratio > 0
            if not rec.own_baseline:  # a baseline serves only cells on its own node
                assert rec.node.node_id == there[base_id(there)].node.node_id  # type: ignore[union-attr]
            assert ("--skip-vanilla" in rec.command) != rec.own_baseline
    per_node = Counter(r.node.node_id for r in there.values())  # type: ignore[union-attr]
    assert len(per_node) >= 2  # spread across nodes
    for node in per_node:  # one gpu_slot per node: its cells never overlap
        spans = sorted((r.started, r.finished) for r in there.values() if r.node.node_id == node)  # type: ignore[union-attr]
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), spans
    report = subprocess.run(
        [sys.executable, "-m", "velobench", "report", str(isolated / "ray")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr
    print(f"local {local_s:.1f} s, ray {ray_s:.1f} s, per node {dict(per_node)}")
    print("cell seconds local", {k: round(r.seconds, 1) for k, r in here.items()})
    print("cell seconds ray", {k: round(r.seconds, 1) for k, r in there.items()})


def base_id(records: dict[str, Any]) -> str:
    return next(k for k, r in records.items() if r.cell.baseline)


def test_a_node_killed_mid_cell_is_retried_elsewhere(
    cluster: Harness, plan: Path, llama_bin: Path, isolated: Path
) -> None:
    run_dir = isolated / "run"
    job = cluster.driver(
        [str(plan), "--llama-cpp-path", str(llama_bin), "-o", str(run_dir)], isolated / "d.log"
    )
    killed = wait_for(lambda: cluster(op="remove_running", match=str(isolated))["index"] is not None or None)
    assert killed
    try:
        assert cluster(op="wait", id=job, timeout=600)["rc"] == 0, (isolated / "d.log").read_text()[-3000:]
        records = read_records(run_dir / "cells.jsonl")
        assert len(records) == 4 and all(r.status == "complete" for r in records)
        retried = [r for r in records if r.attempts]
        assert len(retried) == 1 and len(retried[0].attempts) == 1
        assert retried[0].attempts[0].node and retried[0].attempts[0].node not in retried[0].node.name  # type: ignore[union-attr]
        assert "lost on" in (isolated / "d.log").read_text()
        wait_for(lambda: not cluster.servers(), timeout=20)
        print("retried", retried[0].cell.id, retried[0].attempts)
    finally:
        cluster(op="add", resources=SLOT)  # three nodes again for the next test


def test_driver_sigkilled_leaves_no_server_and_resume_finishes(
    cluster: Harness, plan: Path, llama_bin: Path, isolated: Path
) -> None:
    run_dir = isolated / "run"
    args = [str(plan), "--llama-cpp-path", str(llama_bin)]
    job = cluster.driver([*args, "-o", str(run_dir)], isolated / "d1.log")
    wait_for(lambda: read_records(run_dir / "cells.jsonl") and cluster.servers())  # one finished, one running
    cluster(op="kill", id=job)
    wait_for(lambda: not cluster.servers(), timeout=30)  # every node's servers die with their tasks
    finished = {r.cell.id for r in read_records(run_dir / "cells.jsonl")}
    job = cluster.driver([*args, "--resume", str(run_dir)], isolated / "d2.log")
    assert cluster(op="wait", id=job, timeout=600)["rc"] == 0, (isolated / "d2.log").read_text()[-3000:]
    assert f"{len(finished)} of 4 cells finished" in (isolated / "d2.log").read_text()
    records = read_records(run_dir / "cells.jsonl")
    assert len(records) == 4 and all(r.status == "complete" for r in records)
    assert not cluster.servers()


def test_a_model_missing_on_one_node_is_named_before_any_cell(
    cluster: Harness, llama_bin: Path, isolated: Path, smol: Path
) -> None:
    """`~` is each node's own home: one node's has no such model."""
    good = isolated / "home"
    (good / "models").mkdir(parents=True)
    (good / "models" / "smol.gguf").symlink_to(smol)
    plan = isolated / "plan.toml"
    plan.write_text(MATRIX.format(model="~/models/smol.gguf"))
    k = cluster(op="add", resources=SLOT, env={"HOME": str(isolated / "elsewhere")})["index"]
    try:
        job = cluster.driver(
            [str(plan), "--llama-cpp-path", str(llama_bin), "-o", str(isolated / "run")], isolated / "d.log"
        )
        assert cluster(op="wait", id=job, timeout=300)["rc"] == 2
        text = (isolated / "d.log").read_text()
        assert "node " in text and "main model not found: ~/models/smol.gguf" in text, text[-2000:]
        assert not (isolated / "run" / "cells.jsonl").exists()
    finally:
        cluster(op="remove", index=k)


def test_another_velobench_on_a_node_is_named_before_any_cell(
    cluster: Harness, plan: Path, llama_bin: Path, isolated: Path
) -> None:
    other = isolated / "other"
    shutil.copytree(ROOT / "velobench", other / "velobench", ignore=shutil.ignore_patterns("__pycache__"))
    init = other / "velobench" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "', '__version__ = "9.9.9-other-'))
    k = cluster(op="add", resources=SLOT, env={"PYTHONPATH": str(other)})["index"]
    try:
        job = cluster.driver(
            [str(plan), "--llama-cpp-path", str(llama_bin), "-o", str(isolated / "run")], isolated / "d.log"
        )
        assert cluster(op="wait", id=job, timeout=300)["rc"] == 2
        text = (isolated / "d.log").read_text()
        assert "runs velobench 9.9.9-other-" in text and "node " in text, text[-2000:]
    finally:
        cluster(op="remove", index=k)
