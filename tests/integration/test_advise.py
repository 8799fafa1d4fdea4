"""`velobench advise` end to end on SmolLM2 drafting for itself: real llama-batched-bench costs,
a real acceptance probe on llama-server, the prediction, real load levels confirming it, and
the schedule file read back by what would consume it."""

from __future__ import annotations

import json
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.conftest import llama_processes
from velobench.advise import model
from velobench.analysis import ceiling
from velobench.bins import locate
from velobench.results.advise import AdviseReport

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def advised(tmp_path_factory: pytest.TempPathFactory, llama_bin: Path, smol: Path) -> tuple[Path, str]:
    """One small advise (concurrency 1,2 × n_draft 2,4, a few requests) shared by the tests."""
    import os
    import sys

    folder = tmp_path_factory.mktemp("advise")
    res = subprocess.run(
        [
            *(sys.executable, "-m", "velobench", "advise", "-m", str(smol), "-d", str(smol)),
            *("--concurrency", "1,2", "--n-draft", "2,4", "-n", "16", "--probe-requests", "3"),
            *(
                "--requests",
                "3",
                "--repetitions",
                "2",
                "--bootstrap",
                "300",
                "-t",
                "1",
                "--prompts",
                "builtin",
            ),
            *("--synthetic", "0.5", "--synthetic-map", "--llama-cpp-path", str(llama_bin), "-o", "adv.json"),
        ],
        cwd=folder,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        check=False,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return folder, res.stdout


def test_advise_measures_predicts_and_confirms(advised: tuple[Path, str]) -> None:
    folder, out = advised
    assert "1/4" in out and "4/4 confirm" in out and "Predicted speedup" in out
    report = AdviseReport.model_validate_json((folder / "adv.json").read_text())
    assert report.status == "complete" and report.self_draft
    assert sorted((c.concurrency, c.n_draft) for c in report.grid) == [(1, 2), (1, 4), (2, 2), (2, 4)]
    for c in report.grid:
        assert c.speedup > 0 and c.ci95_low is not None and c.ci95_high is not None
        assert c.ci95_low <= c.ci95_high
    assert report.acceptance is not None and len(report.acceptance.requests) == 3
    # the probe's vanilla requests: the server's seconds per token, and its cost per pass beyond the bench's
    assert len(report.acceptance.vanilla_s_per_token) == 3 and all(
        x > 0 for x in report.acceptance.vanilla_s_per_token
    )
    assert report.server_overhead_s is not None and 0 <= report.server_overhead_s < 0.05
    assert "own cost per forward pass" in out
    assert report.prompt_tokens and report.prompt_tokens > 0
    # every confirmed point measured for real, with the prediction beside it
    assert 1 <= len([c for c in report.confirmations if c.synthetic_rates is None]) <= 3
    for c in report.confirmations:
        assert c.measured is not None and c.measured.ratio > 0 and c.miss is not None
        assert (folder / "adv").is_dir()
    for f in report.confirm_files:
        done = json.loads((folder / f).read_text())  # relative to the result's folder
        assert done["status"] == "complete"
        # --requests 3 asked, but every level runs 10 per request in flight (valid batch means)
        assert done["load"]["requests"] == 10 * max(done["load"]["levels"]), f
        if "synth" not in f:  # both arms in one load, alternating level by level, both servers up
            assert done["schedule"] == "interleaved", f
            assert all(done["modes"][m]["levels"] for m in ("vanilla", "speculative")), f
    assert llama_processes() == []


def test_synthetic_acceptance_on_the_real_server(advised: tuple[Path, str]) -> None:
    """llama-server's --spec-synth-rates with --synthetic-map: every draft length at the lowest and
    the highest concurrency: the server counted about the rates asked, and the model, given them,
    predicts less than with the real (higher) ones; each concurrency's map is printed apart from
    the confirmations."""
    folder, out = advised
    report = AdviseReport.model_validate_json((folder / "adv.json").read_text())
    assert report.advise.synthetic_map
    syn = [c for c in report.confirmations if c.synthetic_rates]
    assert sorted((c.concurrency, c.n_draft) for c in syn) == [(1, 2), (1, 4), (2, 2), (2, 4)]
    for c in syn:
        k = c.n_draft
        assert c.synthetic_rates == [0.5**i for i in range(1, k + 1)]
        assert c.measured_acceptance is not None and abs(c.measured_acceptance[0] - 0.5) < 0.25
        assert c.measured is not None and c.measured.ratio > 0
        real = model.cell(report.grid, c.concurrency, k)
        assert c.predicted.decode_speedup < real.decode_speedup  # SmolLM2 drafting itself accepts > 0.5
    assert "Synthetic acceptance a_i = α^i at concurrency 1" in out and "α^i at concurrency 2" in out
    assert sorted(f.split("/")[-1] for f in report.confirm_files if "synth" in f) == [
        f"load-nd{k}-c{c}-synth0.5.json" for k in (2, 4) for c in (1, 2)
    ]
    # each synthetic request seeds itself (seed -1): one seed for all repeats one path of decisions
    for f in report.confirm_files:
        seed = json.loads((folder / f).read_text())["config"]["seed"]
        assert seed == (-1 if "synth" in f else report.config.seed), f


def test_batch_one_decode_speedup_is_the_ceiling_on_the_measured_costs(advised: tuple[Path, str]) -> None:
    """The ceiling (`analysis.ceiling`) on the costs advise measured equals advise's b = 1 decode
    speedup wherever acceptance is geometric: checked with the α the probe's mean length gives,
    without the draft's re-evaluation of each verified batch (the ceiling leaves it out), which
    advise measured for real (PP = k+1, B = b) and which lowers its prediction."""
    folder, _ = advised
    report = AdviseReport.model_validate_json((folder / "adv.json").read_text())
    assert report.target_costs is not None
    measured = model.StepCosts.from_rows(model.median_rows(report.target_costs.repetitions))
    assert {(b, k + 1) for b in (1, 2) for k in (2, 4)} <= set(measured.reeval_s)  # (1, p): the prefill row
    assert all(t > 0 for t in measured.reeval_s.values())
    costs = model.StepCosts(measured.pass_s, measured.prefill_s)
    k = 4
    accept = model.acceptance_profile(report.acceptance.requests if report.acceptance else [])
    alpha = ceiling.alpha_from_acceptance(None, k, mean_length=model.expected_tokens(accept, k))
    geometric = [alpha**i for i in range(1, k + 1)]
    d = costs.pass_s[1]
    ours = model.point_grid(geometric, costs, costs, ([1], [k]))[(1, k)][1]
    theirs = ceiling.speedup_ceiling(alpha, k, costs.pass_s[1] / d, costs.pass_s[k + 1] / d)
    assert ours == pytest.approx(theirs, rel=1e-9)
    assert model.point_grid(geometric, measured, measured, ([1], [k]))[(1, k)][1] < ours


def test_schedule_file_is_what_llama_server_takes(advised: tuple[Path, str], llama_bin: Path) -> None:
    folder, _ = advised
    sched = tomllib.loads((folder / "adv.schedule.toml").read_text())
    entries = sched["llama_server"]
    assert entries[0]["concurrency_from"] == 1 and entries[-1]["concurrency_to"] == 2
    server = locate.find_tool("llama-server", llama_bin)
    for e in entries:
        argv = shlex.split(e["command"])
        assert Path(argv[0]).name == "llama-server"
        flags = [a for a in argv[1:] if a.startswith("-")]
        assert flags and all(server.supports(f) for f in flags), flags
        assert argv[argv.index("-np") + 1] == str(e["concurrency_to"])
        assert ("-md" in argv) == (e["n_draft"] > 0)
    vc = sched["vllm"]["speculative_config"]
    if vc:
        assert json.loads(vc)["method"] == "draft_model"
    html = (folder / "adv.html").read_text()
    assert "data:image/png;base64," in html and "Predicted speedup" in html


def test_server_killed_mid_confirmation_keeps_the_phases(llama_bin: Path, smol: Path, tmp_path: Path) -> None:
    """A crash mid-measurement: one line, exit 2, the finished phases kept, no server left."""
    import time

    from tests.integration.test_load import servers_of, spawn, wait_for

    log = tmp_path / "out.txt"
    child = spawn(
        [
            *(
                "advise",
                "-m",
                str(smol),
                "-d",
                str(smol),
                "--concurrency",
                "1,2",
                "--n-draft",
                "2",
                "-n",
                "24",
            ),
            *(
                "--probe-requests",
                "2",
                "--requests",
                "40",
                "--repetitions",
                "1",
                "--bootstrap",
                "50",
                "-t",
                "1",
            ),
            *("--prompts", "builtin", "--llama-cpp-path", str(llama_bin), "-o", "k.json"),
        ],
        log,
    )
    try:
        wait_for("load-nd2:", log, child)
        deadline = time.monotonic() + 60
        while not (found := servers_of(child)):
            assert time.monotonic() < deadline and child.poll() is None, log.read_text()
            time.sleep(0.2)
        time.sleep(4)  # its levels are under way
        for s in found:
            s.kill()
        assert child.wait(timeout=60) == 2, log.read_text()
    finally:
        if child.poll() is None:
            child.kill()
    text = log.read_text()
    err = [x for x in text.splitlines() if x.startswith("velobench: error:")]
    assert len(err) == 1 and "Traceback" not in text, text
    # the server's exit (or the request it broke, where it died mid-tokenize) named, what finished kept
    assert "llama-server" in err[0] and "finished phase(s) kept in k.json" in err[0], err[0]
    rep = AdviseReport.model_validate_json(Path("k.json").read_text())
    assert rep.status == "failed" and rep.grid and rep.acceptance is not None and rep.target_costs is not None
    assert not any(p.is_running() for p in found)
    assert llama_processes() == []
