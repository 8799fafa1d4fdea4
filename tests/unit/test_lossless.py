"""Temperature-0 losslessness: the divergence classification on a real llama-server run (SmolLM2
drafting for itself on the built-in prompts, its target probabilities read at the divergence),
the n_probs answer parser on a captured answer, and the lossy-by-design settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from velobench.analysis.lossless import NEAR_TIE_NATS, classify, lossy_settings
from velobench.analysis.summaries import analyze
from velobench.engines import dialects
from velobench.report import markdown
from velobench.report.console import divergence_lines, lossless_verdict
from velobench.results import store
from velobench.results.config import build
from velobench.results.schema import DivergenceProbe, TokenProb

FIXTURES = Path(__file__).parents[1] / "fixtures" / "lossless"


def test_the_real_divergence_is_a_near_tie() -> None:
    rep = store.load(FIXTURES / "smollm2-self-t0-run.json")
    analyze(rep)  # recomputed from the raw iterations and the stored probe
    lo = rep.lossless
    assert lo is not None and (lo.compared, lo.identical, lo.near_ties, lo.decisive) == (7, 6, 1, 0)
    (m,) = [p for p in lo.prompts if not p.identical]
    assert (m.prompt_id, m.first_difference, m.divergence) == ("summarization-011", 2, "near-tie")
    assert m.baseline_token is not None and m.baseline_token.text == "This"
    assert m.candidate_token is not None and m.candidate_token.text == "The"
    assert m.gap_nats == pytest.approx(0.1378, abs=1e-3)
    assert "1 near-tie(s), 0 decisive" in lossless_verdict(lo)
    line = divergence_lines(lo)[0]
    assert "summarization-011 at token 2: near-tie (gap 0.138 nats)" in line and "'This' 10.5%" in line
    assert "1 near-tie(s)" in markdown.render(rep)


def test_a_token_the_target_ranks_low_is_decisive() -> None:
    top = [TokenProb(id=1, text="a", logprob=-0.1), TokenProb(id=2, text="b", logprob=-2.5)]
    probe = DivergenceProbe(prompt_id="p", position=3, baseline_token=1, candidate_token=2, top=top)
    assert classify(probe).divergence == "decisive"
    unlisted = probe.model_copy(update={"candidate_token": 9})
    m = classify(unlisted)  # not among the top: at most as likely as the last listed
    assert m.divergence == "decisive" and m.gap_nats == pytest.approx(2.4)
    close = [
        TokenProb(id=1, text="a", logprob=-1.0),
        TokenProb(id=2, text="b", logprob=-1.0 - NEAR_TIE_NATS / 2),
    ]
    assert classify(probe.model_copy(update={"top": close})).divergence == "near-tie"


def test_native_candidates_from_a_captured_answer() -> None:
    answer = json.loads((FIXTURES / "llama-server-n_probs-answer.json").read_text())
    got = dialects.native_candidates(answer)
    assert [t[1] for t in got[:3]] == ["This", "The", "A"] and got[0][0] == 1348
    assert got[0][2] > got[1][2]
    with pytest.raises(ValueError, match="without completion_probabilities"):
        dialects.native_candidates({"content": "x"})
    body = dialects.native_probe_body("Hi", [5, 6], 20)
    assert body["prompt"] == ["Hi", 5, 6] and body["n_probs"] == 20 and body["n_predict"] == 1


def test_openai_candidates_by_token_id() -> None:
    answer = {"choices": [{"logprobs": {"top_logprobs": [{"token_id:7": -0.5, "token_id:3": -0.2}]}}]}
    assert dialects.openai_candidates(answer) == [(3, "token_id:3", -0.2), (7, "token_id:7", -0.5)]
    with pytest.raises(ValueError):
        dialects.openai_candidates({"choices": [{}]})


def test_lossy_settings_are_named() -> None:
    cfg = build(
        main_model="m.gguf",
        draft_model="d.gguf",
        extra_args=["--spec-decoding-acceptance-method", "typical_acceptance_sampler"],
    )
    assert lossy_settings(cfg) and "typical" in lossy_settings(cfg)[0]
    fine = build(main_model="m.gguf", draft_model="d.gguf", draft_p_min=0.8)
    assert lossy_settings(fine) == []  # p-min changes how far the draft runs, not what is kept
    rejection = build(
        main_model="m.gguf",
        draft_model="d.gguf",
        extra_args=["--spec-decoding-acceptance-method=rejection_sampler"],
    )
    assert lossy_settings(rejection) == []


def test_the_sampled_verdict_states_its_power_or_where_it_differs() -> None:
    from velobench.lossless.render import verdict
    from velobench.results.lossless import LosslessReport

    rep = store.load_result(Path(__file__).parents[1] / "fixtures" / "schema-versions" / "lossless-v1.json")
    assert isinstance(rep, LosslessReport) and rep.test is not None
    line = verdict(rep)
    assert line.startswith("No difference found") and "TV >= 0.37 with 80% probability" in line
    assert "about 558 samples per prompt and arm would detect TV 0.1" in line
    worst = rep.test.tests[2].model_copy(update={"p_holm": 0.001})
    rejected = rep.model_copy(update={"test": rep.test.model_copy(update={"rejected": True, "worst": worst})})
    assert verdict(rejected).startswith(
        "NOT lossless: the output distributions differ at prompt prompt, token 2"
    )


def test_the_matrix_cell_counts_each_class() -> None:
    from velobench.report.tables import lossless_cell

    rep = store.load(FIXTURES / "smollm2-self-t0-run.json")
    analyze(rep)
    assert lossless_cell(rep) == "6/7, 1 near-tie"
