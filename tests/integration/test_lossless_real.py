"""`velobench lossless` and the temperature-0 probe on real SmolLM2 llama-servers.

Self-checks that the test sees what it claims: the same server in both arms is not rejected
(at alpha 0.01: the rate itself is checked by simulation in tests/unit/test_twosample.py), and
a speculative arm sampled at another temperature is detected. The probe reads the target's
probabilities at the real divergence of tests/fixtures/lossless/smollm2-self-t0-run.json.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from velobench.engines.base import ServerHandle
from velobench.engines.http_client import HttpClient
from velobench.engines.probes import target_candidates
from velobench.proc import ServerProcess, child_env, free_port
from velobench.prompts import load_prompts
from velobench.results import store
from velobench.results.lossless import LosslessReport

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[1] / "fixtures" / "lossless"
PROMPT = "My favourite colour is"
CliResult = tuple[int, str, str]


@pytest.fixture(scope="module")
def server(llama_bin: Path, smol: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    argv = [str(llama_bin / "llama-server"), "-m", str(smol), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["-np", "1", "-c", "1024", "-t", "2", "--no-cache-prompt"]
    log = tmp_path_factory.mktemp("server") / "llama-server.log"
    with ServerProcess(argv, port, log, name="llama-server", env=child_env()) as proc:
        yield proc.base_url


def test_the_target_ranks_the_real_divergence_again(server: str) -> None:
    """The vanilla server, asked with the prompt and vanilla's two tokens, gives the fixture's
    candidates with the fixture's log-probabilities (the live half of the classification)."""
    run = json.loads((FIXTURES / "smollm2-self-t0-run.json").read_text())
    (probe,) = run["probes"]
    vanilla = next(i for i in run["modes"]["vanilla"]["iterations"] if i["prompt_id"] == probe["prompt_id"])
    text = {p.id: p.prompt for p in load_prompts("builtin", num_prompts=7, seed=0)}[probe["prompt_id"]]
    handle = ServerHandle(base_url=server, name="llama-server", endpoint="native")
    with HttpClient(server) as client:
        top = target_candidates(handle, client, text, vanilla["output_tokens"][: probe["position"]])
    assert [t[0] for t in top[:3]] == [t["id"] for t in probe["top"][:3]]
    for (_, _, lp), want in zip(top[:3], probe["top"][:3], strict=True):
        assert lp == pytest.approx(want["logprob"], abs=0.02)


def test_the_same_server_in_both_arms_is_not_rejected(cli: Callable[..., CliResult], server: str) -> None:
    code, out, err = cli(
        "lossless", "--engine", "remote", "--server-url", server, "--baseline-url", server,
        "-p", PROMPT, "--samples", "20", "-n", "2", "--temp", "0.8", "--alpha", "0.01", "-o", "same.json",
    )  # fmt: skip
    assert code == 0, err
    rep = store.load_result(Path("same.json"))
    assert isinstance(rep, LosslessReport) and rep.status == "complete" and rep.test is not None
    assert not rep.test.rejected and rep.test.n_baseline == rep.test.n_candidate == 20
    assert rep.test.detectable_tv_first is not None and 0 < rep.test.detectable_tv_first < 1
    # /v1/completions of llama-server gives no token ids: the characters are compared
    assert all(s.tokens is None and s.text for a in rep.arms.values() for s in a.samples)
    assert {t.unit for t in rep.test.tests} == {"char"}
    assert "Verdict: No difference found" in out and "with 80% probability" in out
    code, md, _ = cli("report", "same.json", "--format", "md")
    assert code == 0 and "# velobench lossless" in md


def test_a_hotter_speculative_arm_is_detected(
    cli: Callable[..., CliResult], llama_bin: Path, smol: Path
) -> None:
    code, out, err = cli(
        "lossless", "-m", str(smol), "-d", str(smol), "--n-draft", "2", "-t", "2", "--engine", "server",
        "--llama-cpp-path", str(llama_bin), "-p", PROMPT, "--samples", "30", "-n", "2",
        "--temp", "0.3", "--candidate-temp", "3", "-o", "hot.json",
    )  # fmt: skip
    assert code == 0, err
    rep = store.load_result(Path("hot.json"))
    assert isinstance(rep, LosslessReport) and rep.test is not None and rep.test.rejected
    assert "Verdict: NOT lossless" in out and "--candidate-temp 3" in out
