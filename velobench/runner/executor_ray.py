"""`velobench matrix --cluster`: a matrix's cells on a Ray cluster (`pip install 'velobench[ray]'`).

Ray is imported inside the functions that need it only: no other command pays for it.

    check     a probe task pinned to every node that can run a cell: the node's velobench
              version against the driver's, then the local matrix's own checks (`check_cells`:
              every cell's options, model files and engine) run there, on the node's files; the
              first problem is one line naming the node, before anything runs
    submit    a Ray task per cell with the cell's resources (`[resources]`, a pair's own): gpus,
              cpus, custom resources, node labels; no more tasks in flight than the cluster has
              room for, so each finished baseline can serve the cells submitted after it
    on node   `run_on_node`: the version checked again, the cell's plain model paths checked
              there, the baseline measured on this node chosen (none: the cell measures its own
              vanilla arm, so a baseline from one node never serves a cell on another), then
              `python -m velobench.runner.cell` (the same `run_cell` as a local cell) in a
              temporary folder, under a parent-death signal and a group watchdog: when the task is
              cancelled or its worker or node dies, the cell and its servers die too
    wait      the next finished task; its files (result, responses, logs) are written into the run
              folder here. A task lost with its worker or node is run again, up to `retries` times
              (each loss recorded in the cell's `attempts`), then recorded as failed
    close     cancels what is in flight (force: the workers are killed, and their cells with them)
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from velobench import __version__
from velobench.errors import VelobenchError
from velobench.fsutil import write_text_atomic
from velobench.results.matrix import Cell, CellAttempt, CellResources, MatrixConfig, NodeInfo
from velobench.runner.executor import CellJob, CellOutcome

INSTALL_HINT = "--cluster needs Ray, an optional extra: pip install 'velobench[ray]'"
RETRIES = 2  # a cell lost with its worker or node runs again at most this many times
POLL_S = 0.5  # ray.wait in steps, so Ctrl-C reaches Python
BOARD_TIMEOUT_S = 30.0  # the board answers in milliseconds; a GCS busy with a dead node takes longer


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise VelobenchError(INSTALL_HINT) from exc
    return ray


def resources_of(cfg: MatrixConfig, cell: Cell) -> CellResources:
    """What `cell` needs on a node: its pair's `resources`, else the matrix's `[resources]`."""
    for pair in cfg.pairs:
        if pair.target == cell.target and pair.draft == cell.draft and pair.resources is not None:
            return pair.resources
    if cell.draft is None:  # a method without a draft model: the first pair of its target says
        for pair in cfg.pairs:
            if pair.target == cell.target and pair.resources is not None:
                return pair.resources
    return cfg.resources


def fits(node: dict[str, Any], need: CellResources) -> bool:
    """Whether a node (an entry of `ray.nodes()`) has, in all, what one cell needs."""
    have = node.get("Resources") or {}
    wants = {"CPU": need.cpus, "GPU": need.gpus, **need.custom}
    labels = node.get("Labels") or {}
    return all(have.get(k, 0) >= v for k, v in wants.items() if v) and all(
        labels.get(k) == v for k, v in need.labels.items()
    )


def slots(node: dict[str, Any], need: CellResources) -> int:
    """How many such cells the node runs at once."""
    if not fits(node, need):
        return 0
    have = node.get("Resources") or {}
    wants = {"CPU": need.cpus, "GPU": need.gpus, **need.custom}
    counts = [int(have.get(k, 0) // v) for k, v in wants.items() if v]
    return min(counts) if counts else 1


# --------------------------------------------------------------------------- on the node


def this_node() -> NodeInfo:
    """The node this task runs on: Ray's node id and address, and its environment."""
    import ray

    from velobench.telemetry import environment

    return NodeInfo(
        node_id=ray.get_runtime_context().get_node_id(),
        address=ray.util.get_node_ip_address(),
        environment=environment.capture(),
    )


def node_version() -> str:
    """The velobench a cell on this node runs: asked of a fresh `python` as the cell's own process
    starts it. Not this worker's: Ray puts the driver's sys.path first in its workers (and may ship
    a function's code by value), so the worker can be running the driver's velobench."""
    from velobench.proc import run

    done = run([sys.executable, "-P", "-c", "import velobench; print(velobench.__version__)"], timeout_s=60)
    if done.returncode != 0:
        return f"none importable ({done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode})"
    return done.stdout.strip()


def version_problem(driver_version: str) -> str | None:
    """The node's own velobench against the driver's (one line, or None where they agree)."""
    here = node_version()
    if here != driver_version:
        return f"runs velobench {here}, the driver {driver_version}: install the same version on every node"
    return None


def probe_node(cfg_json: str, cell_ids: list[str], driver_version: str) -> tuple[str, str | None]:
    """On one node: its NodeInfo (JSON) and the first problem that would stop a cell here."""
    from velobench.runner.matrix import cells, check_cells

    node = this_node()
    problem = version_problem(driver_version)
    if problem is None:
        cfg = MatrixConfig.model_validate_json(cfg_json)
        try:
            check_cells(cfg, [c for c in cells(cfg) if c.id in set(cell_ids)])
            check_engines(cfg)
        except VelobenchError as exc:
            problem = str(exc)
    return node.model_dump_json(), problem


def check_engines(cfg: MatrixConfig) -> None:
    """Every engine the cells need, located and probed on this node (`engines.make`): one line where not."""
    from velobench import engines
    from velobench.runner.matrix import cell_config, cells
    from velobench.runner.preflight import preflight

    seen: set[tuple[str, str | None]] = set()
    with tempfile.TemporaryDirectory(prefix="velobench-probe-") as tmp:
        for cell in cells(cfg):
            ccfg = cell_config(cfg, cell)
            chosen = engines.choose(ccfg, preflight(ccfg))
            key = (str(chosen), str(ccfg.llama_cpp_path) if ccfg.llama_cpp_path else None)
            if key in seen:
                continue
            seen.add(key)
            engines.make(ccfg.model_copy(update={"engine": chosen}), log_dir=Path(tmp))


def run_on_node(
    spec: dict[str, Any], baselines: list[tuple[str | None, str, str]], driver_version: str, board: Any
) -> dict[str, Any]:
    """One cell on this node (the body of its Ray task); its files come back as bytes.

    `baselines`: its target's finished baselines as (node id, result file in the run folder,
    result JSON); only the one measured on this node may serve it.
    """
    from velobench.proc import group_watchdog, log_tail, supervised
    from velobench.runner.matrix import cells, check_cells

    started = time.time()
    node = this_node()
    cfg = MatrixConfig.model_validate(spec["cfg"])
    cell = Cell.model_validate(spec["cell"])
    if board is not None:  # confirmed before any work: a node lost later is always named
        import ray

        with contextlib.suppress(ray.exceptions.RayError):
            ray.get(board.started.remote(cell.id, node.name), timeout=BOARD_TIMEOUT_S)
    answer: dict[str, Any] = {"node": node.model_dump_json(), "started": started, "files": {}, "root": ""}
    problem = version_problem(driver_version)
    if problem is None:
        try:
            check_cells(cfg, [c for c in cells(cfg) if c.id == cell.id])
        except VelobenchError as exc:
            problem = str(exc)
    if problem is not None:
        return {**answer, "error": f"node {node.name}: {problem}", "finished": time.time()}
    base = next((b for b in baselines if b[0] == node.node_id), None)
    with tempfile.TemporaryDirectory(prefix="velobench-cell-") as tmp:
        root = Path(tmp) / "cells"
        root.mkdir()
        out = root / f"{cell.id}.json"
        baseline = None
        if base is not None:
            (Path(tmp) / "baseline.json").write_text(base[2], encoding="utf-8")
            baseline = {"source": base[1], "file": str(Path(tmp) / "baseline.json")}
        outcome = Path(tmp) / "outcome.json"
        spec_file = Path(tmp) / "spec.json"
        both = not cell.baseline and base is None
        spec_file.write_text(
            json.dumps(
                {
                    **spec,
                    "out": str(out),
                    "baseline": baseline,
                    "both_arms": both,
                    "outcome": str(outcome),
                }
            ),
            encoding="utf-8",
        )
        console_log = Path(tmp) / "console.log"
        with console_log.open("wb") as log, group_watchdog() as watch:
            argv = [sys.executable, "-m", "velobench.runner.cell", str(spec_file)]
            with supervised(argv, stdout=log, stderr=log, cwd=Path(tmp)) as proc:
                watch(proc.pid)
                code = proc.wait()
        try:
            error = json.loads(outcome.read_text(encoding="utf-8"))["error"]
        except (OSError, ValueError, KeyError):
            error = f"the cell's process exited with code {code}: {log_tail(console_log)}"
        files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        files[f"{cell.id}-logs/node-console.log"] = console_log.read_bytes()
        return {
            **answer,
            "error": None if error is None else f"node {node.name}: {error}",
            "files": files,
            "root": str(root),
            "both_arms": both,
            "finished": time.time(),
        }


class Board:
    """Which node runs which cell (a Ray actor on the driver's node): the progress line, and
    the node a lost run is recorded against."""

    def __init__(self) -> None:
        self.where: dict[str, str] = {}

    def started(self, cell_id: str, node: str) -> None:
        self.where[cell_id] = node

    def finished(self, cell_id: str) -> None:
        self.where.pop(cell_id, None)

    def snapshot(self) -> dict[str, str]:
        return dict(self.where)


# --------------------------------------------------------------------------- on the driver


class RayExecutor:
    """Cells as Ray tasks on the cluster at `address` (`auto`: RAY_ADDRESS, else a local cluster)."""

    name = "ray"

    def __init__(self, address: str, console: Console, *, retries: int = RETRIES) -> None:
        ray = import_ray()
        self._ray, self._console, self._retries = ray, console, retries
        target = (os.environ.get("RAY_ADDRESS") or "auto") if address == "auto" else address
        try:
            ray.init(address=target, logging_level="ERROR", log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise VelobenchError(f"--cluster {address}: cannot connect to a Ray cluster ({first})") from exc
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self._affinity = NodeAffinitySchedulingStrategy
        self._task = ray.remote(run_on_node)
        self._probe = ray.remote(probe_node)
        here = ray.get_runtime_context().get_node_id()
        self._board = (
            ray.remote(Board)
            .options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=True))
            .remote()
        )
        self._flight: dict[Any, tuple[CellJob, list[CellAttempt]]] = {}
        self._room = 1
        # the board's last answer: a lost cell's node when the board no longer answers in time
        self._seen: dict[str, str] = {}
        self._asked: Any = None  # a snapshot asked for and not yet read

    def _nodes(self) -> list[dict[str, Any]]:
        return [n for n in self._ray.nodes() if n.get("Alive")]

    def check(self, cfg: MatrixConfig, cells: list[Cell]) -> None:
        """Every node that can run a cell, probed; the cells' needs checked against the nodes."""
        nodes = self._nodes()
        needs = {c.id: resources_of(cfg, c) for c in cells}
        for cell in cells:
            if not any(fits(n, needs[cell.id]) for n in nodes):
                need = needs[cell.id]
                raise VelobenchError(
                    f"cell {cell.id}: no node of the cluster has what it needs "
                    f"(gpus={need.gpus:g}, cpus={need.cpus:g}"
                    + "".join(f", {k}={v:g}" for k, v in need.custom.items())
                    + "".join(f", label {k}={v}" for k, v in need.labels.items())
                    + ")"
                )
        usable = [n for n in nodes if any(fits(n, need) for need in needs.values())]
        refs = [
            self._probe.options(
                num_cpus=0, scheduling_strategy=self._affinity(n["NodeID"], soft=False), max_retries=0
            ).remote(cfg.model_dump_json(), [c.id for c in cells if fits(n, needs[c.id])], __version__)
            for n in usable
        ]
        gone = []
        for node, ref in zip(list(usable), refs, strict=True):
            try:
                info_json, problem = self._ray.get(ref)
            except self._ray.exceptions.RayError as exc:  # the node went away since ray.nodes() listed it
                self._console.print(f"node {node['NodeID'][:8]}: skipped ({_first_line(exc)})", markup=False)
                gone.append(node)
                continue
            if problem is not None:
                raise VelobenchError(f"node {NodeInfo.model_validate_json(info_json).name}: {problem}")
        usable = [n for n in usable if n not in gone]
        if not usable:
            raise VelobenchError("no node of the Ray cluster answered: nothing can run the cells")
        distinct = {need.model_dump_json(): need for need in needs.values()}.values()
        self._room = max(1, sum(max(slots(n, need) for need in distinct) for n in usable))
        self._console.print(
            f"Ray cluster: {len(usable)} node(s) can run cells, {self._room} at once; velobench {__version__} on each"
        )

    def free(self) -> bool:
        return len(self._flight) < self._room

    def submit(self, job: CellJob, attempts: list[CellAttempt] | None = None) -> None:
        need = resources_of(job.cfg, job.cell)
        opts: dict[str, Any] = {"num_cpus": need.cpus, "num_gpus": need.gpus, "max_retries": 0}
        if need.custom:
            opts["resources"] = dict(need.custom)
        if need.labels:
            opts["label_selector"] = dict(need.labels)
        spec = {"cfg": job.cfg.model_dump(mode="json"), "cell": job.cell.model_dump(mode="json")}
        bases = [
            (b.node.node_id if b.node else None, str(b.path), b.report.model_dump_json())
            for b in job.baselines
        ]
        ref = self._task.options(**opts).remote(spec, bases, __version__, self._board)
        self._flight[ref] = (job, attempts or [])

    def wait(self) -> CellOutcome:
        ray = self._ray
        while True:
            ready: list[Any] = []
            while not ready:
                self._refresh()
                ready, _ = ray.wait(list(self._flight), num_returns=1, timeout=POLL_S)
            ref = ready[0]
            job, attempts = self._flight.pop(ref)
            try:
                answer = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # the task's own code raised: a bug, not a lost node
                return self._failed(job, attempts, f"the cell's task failed: {_first_line(exc)}")
            except ray.exceptions.RayError as exc:  # its worker or node died, or it was lost
                where = self._where(job.cell.id)
                attempts = [*attempts, CellAttempt(node=where, error=_first_line(exc))]
                if len(attempts) <= self._retries:
                    self._console.print(
                        f"cell {job.cell.id}: lost on {where or 'its node'} ({_first_line(exc)}); "
                        f"running it again (attempt {len(attempts) + 1} of {self._retries + 1})",
                        markup=False,
                    )
                    self.submit(job, attempts)
                    continue
                return self._failed(job, attempts, f"lost {len(attempts)} times, last: {attempts[-1].error}")
            self._done(job.cell.id)
            return self._outcome(job, attempts, answer)

    def _outcome(self, job: CellJob, attempts: list[CellAttempt], answer: dict[str, Any]) -> CellOutcome:
        """Write the cell's files into the run folder (their node paths rewritten to it)."""
        from velobench.results import store

        home = job.out.parent
        for rel, data in answer["files"].items():
            path = home / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if rel.endswith((".json", ".jsonl", ".log")) and answer["root"]:
                text = data.decode("utf-8", errors="replace").replace(answer["root"], str(home))
                write_text_atomic(path, text)
            else:
                path.write_bytes(data)
        node = NodeInfo.model_validate_json(answer["node"])
        result: Any
        result = VelobenchError(answer["error"]) if answer["error"] is not None else store.load(job.out)
        return CellOutcome(
            job=job,
            result=result,
            started=answer["started"],
            finished=answer["finished"],
            node=node,
            own_baseline=bool(answer.get("both_arms")),
            attempts=attempts,
        )

    def _failed(self, job: CellJob, attempts: list[CellAttempt], error: str) -> CellOutcome:
        now = time.time()
        self._done(job.cell.id)
        return CellOutcome(
            job=job, result=VelobenchError(error), started=now, finished=now, attempts=attempts
        )

    def _refresh(self) -> None:
        """Read the board's answer once it has come, and ask again: never waits."""
        try:
            if self._asked is not None:
                done, _ = self._ray.wait([self._asked], num_returns=1, timeout=0)
                if not done:
                    return
                self._seen = self._ray.get(self._asked)
            self._asked = self._board.snapshot.remote()
        except self._ray.exceptions.RayError:
            self._asked = None

    def _where(self, cell_id: str) -> str | None:
        """The node a cell ran on: the board's answer, else its last one (a GCS busy with the
        dead node can keep the board from answering for longer than the timeout)."""
        try:
            now = self._ray.get(self._board.snapshot.remote(), timeout=BOARD_TIMEOUT_S)
        except self._ray.exceptions.RayError:
            now = {}
        return now.get(cell_id) or self._seen.get(cell_id)

    def _done(self, cell_id: str) -> None:
        with contextlib.suppress(self._ray.exceptions.RayError):
            self._board.finished.remote(cell_id)

    def running(self) -> dict[str, int]:
        """Cells in flight per node, from the board's latest answer (`_refresh`: never waits, so
        a progress line never stalls the driver while the GCS is busy)."""
        self._refresh()
        counts: dict[str, int] = {}
        for node in self._seen.values():
            counts[node] = counts.get(node, 0) + 1
        return counts

    def close(self) -> None:
        for ref in list(self._flight):
            with contextlib.suppress(self._ray.exceptions.RayError):
                self._ray.cancel(ref, force=True)  # the worker is killed: its cell and servers die with it
        self._flight.clear()
        self._ray.shutdown()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
