"""A real local Ray cluster for the tests, inside a private network namespace with only loopback.

Run by `tests/integration/test_matrix_ray.py` as
`unshare -n -p -f --mount-proc bash -c 'ip link set lo up; python ray_harness.py'`: nothing
listens beyond 127.0.0.1 and nothing is sent anywhere else. It reads one JSON command per line on
stdin and answers one JSON line on stdout:

    {"op": "add", "env": {...}, "resources": {...}}   → {"index": i}   a node (1 CPU, its resources)
    {"op": "remove", "index": i}                     → {}             the node killed, all its processes
    {"op": "remove_running", "match": S}             → {"index": i}   the node whose raylet runs a
                                                                       llama-server with S in its command line
    {"op": "spawn", "argv": [...], "log": PATH}      → {"id": n}      a process here (the driver)
    {"op": "wait", "id": n, "timeout": s}            → {"rc": int | null}
    {"op": "kill", "id": n}                          → {}             SIGKILL to its process group

The head has no CPU, so cells run on the added nodes only. EOF stops everything.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import psutil
from ray.cluster_utils import Cluster


def remove_running(cluster: Cluster, nodes: list[Any], match: str) -> int | None:
    """Kill the node that runs a llama-server whose command line holds `match`; its index."""
    raylets = {n.all_processes["raylet"][0].process.pid: k for k, n in enumerate(nodes) if n is not None}
    for p in psutil.process_iter(["name", "cmdline"]):
        if p.info["name"] != "llama-server" or match not in " ".join(p.info["cmdline"] or []):
            continue
        for parent in p.parents():
            if parent.pid in raylets:
                k = raylets[parent.pid]
                cluster.remove_node(nodes[k], allow_graceful=False)
                nodes[k] = None
                return k
    return None


def main() -> None:
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False},
    )
    nodes: list[Any] = []
    procs: list[subprocess.Popen[bytes]] = []
    print(json.dumps({"address": cluster.address}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        answer: dict[str, object] = {}
        if op == "add":
            nodes.append(
                cluster.add_node(
                    num_cpus=1,
                    resources=cmd.get("resources", {}),
                    node_ip_address="127.0.0.1",
                    env_vars=cmd.get("env") or None,
                )
            )
            answer = {"index": len(nodes) - 1}
        elif op == "remove":
            cluster.remove_node(nodes[cmd["index"]], allow_graceful=False)
        elif op == "remove_running":
            answer = {"index": remove_running(cluster, nodes, cmd["match"])}
        elif op == "spawn":
            with open(cmd["log"], "wb") as log:
                procs.append(
                    subprocess.Popen(
                        cmd["argv"],
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        env={**os.environ, **cmd.get("env", {})},
                    )
                )
            answer = {"id": len(procs) - 1}
        elif op == "wait":
            try:
                answer = {"rc": procs[cmd["id"]].wait(timeout=cmd.get("timeout", 600))}
            except subprocess.TimeoutExpired:
                answer = {"rc": None}
        elif op == "kill":
            os.killpg(procs[cmd["id"]].pid, signal.SIGKILL)
            procs[cmd["id"]].wait()
        print(json.dumps(answer), flush=True)
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    cluster.shutdown()


if __name__ == "__main__":
    main()
