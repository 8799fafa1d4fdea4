"""Exports in the shapes of the tools velobench replaces, from committed real results.

Inputs: tests/fixtures/reports/smollm2-135m-selfdraft-server.json (a real `velobench run`) and
tests/fixtures/think/result-smollm2-every-paragraph.json (a real `velobench think`). Each shape
is checked twice: its keys against the structure its seed documents (transcribed below, with the
seed file it comes from), and its values against figures computed here from the result's raw
records (iterations, runs), not against copies of the output. The vllm-study folder is written
to a temporary folder and read back: every JSONL line parses, and config.yaml parses with PyYAML
(installed with huggingface-hub and gguf, both velobench dependencies), an independent reader of
the YAML velobench writes by hand.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest
import yaml

from velobench import export
from velobench.analysis.summaries import analyze
from velobench.errors import VelobenchError
from velobench.export.vllm_study import yaml_dump
from velobench.results.schema import Report
from velobench.results.store import load, load_result
from velobench.results.think import ThinkReport

FIXTURES = Path(__file__).parents[1] / "fixtures"
RUN = FIXTURES / "reports" / "smollm2-135m-selfdraft-server.json"
THINK = FIXTURES / "think" / "result-smollm2-every-paragraph.json"

# Seed 002 (/work/shared/seeds/002_d8653a7a427d3790.txt, velollm-bench-speculative),
# "JSON Output Format": every key of the document, of `config`, of a mode, of a statistic.
VELOLLM = {"config", "vanilla", "speculative", "speedup", "speedup_stddev", "timestamp"}
VELOLLM_CONFIG = {"main_model", "draft_model", "n_draft", "n_predict", "prompt", "iterations"}
VELOLLM_MODE = {"mode", "tokens_per_second", "time_to_first_token_ms", "total_time_ms"}
VELOLLM_STATS = {"mean", "stddev", "min", "max", "samples"}

# Seed 001 (/work/shared/seeds/001_5ec5289a10056d32.txt, benchmark_gsm8k.py), "JSON File".
GSM8K = {"config", "summary", "results"}
GSM8K_CONFIG = {"draft_model", "target_model", "num_samples", "max_tokens", "temperature"}
GSM8K_SUMMARY = {
    "avg_acceptance_rate",
    "avg_speed",
    "total_tokens",
    "total_draft_generated",
    "total_draft_accepted",
}
# The seed writes `results` as `[...]`: a question's keys are velobench's reading of the seed's
# metrics (velobench/export/gsm8k.py says which is which).
GSM8K_QUESTION = {
    "question_id",
    "question",
    "tokens_generated",
    "draft_generated",
    "draft_accepted",
    "acceptance_rate",
    "speed",
    "speculation_rounds",
}

# Seed 000 (/work/shared/seeds/000_c36fef9ccba8e765.txt, spec_thinking_speedup_test.py),
# "JSON Output"; `statistics` per metric of its console table (Mean, Median, ...).
SPEC_THINKING = {"timestamp", "config", "large_model", "speculative_thinking", "comparison"}
SPEC_THINKING_CONFIG = {"num_problems", "num_runs", "target_model", "speculative_model"}
SPEC_THINKING_MODE = {"results", "statistics"}
SPEC_THINKING_COMPARISON = {"speedup", "throughput_improvement", "large_model_reduction"}
SPEC_THINKING_METRICS = {"latency", "throughput", "total_tokens", "large_model_ratio"}

# Seed 003 (/work/shared/seeds/003_f0c7dcbeedb47d6f.txt, specdec_study), "Output Format" and the
# configuration file of "Using Configuration Files".
VLLM_STUDY_FILES = {"metrics.json", "responses.jsonl", "config.yaml"}
VLLM_STUDY_CONFIG = {"model", "generation", "engine", "speculative_config"}
VLLM_STUDY_GENERATION = {"max_tokens", "temperature", "top_p"}
VLLM_STUDY_ENGINE = {"tensor_parallel_size", "gpu_memory_utilization"}


@pytest.fixture
def run() -> Report:
    return load(RUN)


@pytest.fixture
def think() -> ThinkReport:
    rep = load_result(THINK)
    assert isinstance(rep, ThinkReport)
    return rep


def close(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def test_every_kind_lists_its_formats_and_only_export_dispatches() -> None:
    assert export.format_names("run") == ("md", "csv", "json", "html", "velollm", "gsm8k", "vllm-study")
    assert export.format_names("matrix") == ("md", "csv", "json", "html")
    assert export.format_names("load") == ("md", "csv", "json", "html")
    assert export.format_names("think") == ("md", "csv", "json", "html", "spec-thinking")
    assert export.is_folder_format("vllm-study") and not export.is_folder_format("velollm")
    with pytest.raises(VelobenchError, match="unknown result kind"):
        export.format_names("bench")


def test_a_shape_of_another_kind_is_one_line(run: Report, think: ThinkReport) -> None:
    with pytest.raises(VelobenchError, match="unknown export format 'spec-thinking' for a run result"):
        export.render([run], "spec-thinking")
    with pytest.raises(VelobenchError, match="'velollm' for a think result: choose one of md, csv"):
        export.render([think], "velollm")
    with pytest.raises(VelobenchError, match="for a matrix result"):
        export.render([run, run], "gsm8k")
    with pytest.raises(VelobenchError, match="writes a folder"):
        export.render([run], "vllm-study")


# ------------------------------------------------------------------ seed 002: velollm


def check_stats(block: dict[str, Any], samples: list[float]) -> None:
    assert set(block) == VELOLLM_STATS
    assert block["samples"] == samples
    assert close(block["mean"], statistics.fmean(samples))
    assert close(block["stddev"], statistics.stdev(samples))
    assert block["min"] == min(samples) and block["max"] == max(samples)


def test_velollm_has_the_predecessors_fields_and_values(run: Report) -> None:
    doc = json.loads(export.render([run], "velollm"))
    assert set(doc) == VELOLLM and set(doc["config"]) == VELOLLM_CONFIG
    c = run.config
    assert doc["config"] == {
        "main_model": c.main_model,
        "draft_model": c.draft_model,
        "n_draft": c.n_draft,
        "n_predict": c.n_predict,
        "prompt": c.prompt,
        "iterations": c.iterations,
    }
    means = {}
    for key, name in (("vanilla", "Vanilla"), ("speculative", "Speculative")):
        its = run.modes[key].iterations
        assert set(doc[key]) == VELOLLM_MODE and doc[key]["mode"] == name
        check_stats(doc[key]["tokens_per_second"], [i.tokens_per_second for i in its])
        check_stats(doc[key]["time_to_first_token_ms"], [i.ttft_ms for i in its])
        check_stats(doc[key]["total_time_ms"], [i.total_time_ms for i in its])
        tps = [i.tokens_per_second for i in its]
        means[key] = (statistics.fmean(tps), statistics.stdev(tps))
    (ms, ss), (mv, sv) = means["speculative"], means["vanilla"]
    speedup = ms / mv  # the seed's formulas: "Speedup Calculation", "Error Propagation"
    assert close(doc["speedup"], speedup)
    assert close(doc["speedup_stddev"], speedup * math.sqrt((ss / ms) ** 2 + (sv / mv) ** 2))
    assert doc["timestamp"] == run.timestamp


def test_velollm_without_vanilla_or_a_second_iteration_says_null(run: Report) -> None:
    alone = run.model_copy(deep=True)
    del alone.modes["vanilla"]
    alone.comparisons = []
    spec = alone.modes["speculative"]
    spec.iterations = spec.iterations[:1]
    analyze(alone)
    doc = json.loads(export.render([alone], "velollm"))
    assert set(doc) == VELOLLM
    assert doc["vanilla"] is None and doc["speedup"] is None and doc["speedup_stddev"] is None
    tps = doc["speculative"]["tokens_per_second"]
    assert tps["samples"] == [spec.iterations[0].tokens_per_second] and tps["stddev"] is None


# ------------------------------------------------------------------ seed 001: gsm8k


def test_gsm8k_has_the_seeds_fields_and_values(run: Report) -> None:
    doc = json.loads(export.render([run], "gsm8k"))
    assert set(doc) == GSM8K and set(doc["config"]) == GSM8K_CONFIG and set(doc["summary"]) == GSM8K_SUMMARY
    c = run.config
    assert doc["config"] == {
        "draft_model": c.draft_model,
        "target_model": c.main_model,
        "num_samples": 1,
        "max_tokens": c.n_predict,
        "temperature": c.temp,
    }
    its = run.modes["speculative"].iterations
    [q] = doc["results"]  # one prompt
    assert set(q) == GSM8K_QUESTION and q["question"] == c.prompt and q["question_id"] is None
    drafted, accepted = sum(i.n_drafted or 0 for i in its), sum(i.n_accept or 0 for i in its)
    assert drafted > 0
    assert q["draft_generated"] == drafted and q["draft_accepted"] == accepted
    assert close(q["acceptance_rate"], accepted / drafted)
    assert q["tokens_generated"] == sum(i.generated_tokens for i in its)
    assert close(q["speed"], statistics.fmean(i.tokens_per_second for i in its))
    assert q["speculation_rounds"] == sum(i.draft_steps or 0 for i in its)
    s = doc["summary"]
    assert s["total_draft_generated"] == drafted and s["total_draft_accepted"] == accepted
    assert s["total_tokens"] == q["tokens_generated"] and close(s["avg_speed"], q["speed"])


def test_gsm8k_is_per_question(run: Report) -> None:
    """Three prompts of a prompt set (the real iterations relabelled): one entry each, in order."""
    multi = run.model_copy(deep=True)
    multi.config = multi.config.model_copy(update={"prompts": "gsm8k"})
    its = multi.modes["speculative"].iterations
    for it, pid, accepted in zip(its, ["gsm8k-2", "gsm8k-0", "gsm8k-2"], [40, 56, 20], strict=True):
        it.prompt_id, it.n_accept = pid, accepted
    doc = json.loads(export.render([multi], "gsm8k"))
    assert [q["question_id"] for q in doc["results"]] == ["gsm8k-2", "gsm8k-0"]
    assert all(q["question"] is None for q in doc["results"])  # a result keeps ids, not the text
    assert doc["config"]["num_samples"] == 2
    rates = []
    for q in doc["results"]:
        mine = [i for i in its if i.prompt_id == q["question_id"]]
        drafted = sum(i.n_drafted or 0 for i in mine)
        assert q["draft_accepted"] == sum(i.n_accept or 0 for i in mine) and q["draft_generated"] == drafted
        assert close(q["speed"], statistics.fmean(i.tokens_per_second for i in mine))
        rates.append(q["draft_accepted"] / drafted)
    assert close(doc["summary"]["avg_acceptance_rate"], statistics.fmean(rates))  # mean of questions
    assert doc["summary"]["total_draft_accepted"] == 40 + 56 + 20


# ------------------------------------------------------------------ seed 000: spec-thinking


def test_spec_thinking_has_the_seeds_fields_and_values(think: ThinkReport) -> None:
    doc = json.loads(export.render([think], "spec-thinking"))
    assert set(doc) == SPEC_THINKING and set(doc["config"]) == SPEC_THINKING_CONFIG
    assert set(doc["comparison"]) == SPEC_THINKING_COMPARISON
    opts = think.config.run
    assert doc["config"] == {
        "num_problems": len(think.problems),
        "num_runs": opts.num_runs,
        "target_model": opts.large_model,
        "speculative_model": opts.small_model,
    }
    date, time = think.timestamp.rstrip("Z").split("T")
    assert doc["timestamp"] == date.replace("-", "") + "_" + time.replace(":", "")
    mean: dict[str, dict[str, float]] = {}
    for key, mode in (("large_model", "large"), ("speculative_thinking", "spec")):
        block = doc[key]
        assert set(block) == SPEC_THINKING_MODE and set(block["statistics"]) == SPEC_THINKING_METRICS
        runs = [r for r in think.runs if r.mode == mode and r.error is None]
        assert sum(len(v) for v in block["results"].values()) == len(runs) > 1
        for r in runs:
            [row] = [x for x in block["results"][r.problem_id] if x["run"] == r.run]
            assert row["latency"] == r.latency_s and row["total_tokens"] == r.tokens
            assert row["large_model_ratio"] == r.large_ratio and row["large_model_tokens"] == r.large_tokens
        for metric, values in (
            ("latency", [r.latency_s for r in runs]),
            ("throughput", [r.tokens_per_s for r in runs if r.tokens_per_s is not None]),
            ("total_tokens", [float(r.tokens) for r in runs]),
            ("large_model_ratio", [r.large_ratio for r in runs if r.large_ratio is not None]),
        ):
            st = block["statistics"][metric]
            assert set(st) == {"mean", "median", "std", "min", "max"}
            assert close(st["mean"], statistics.fmean(values)) and close(
                st["median"], statistics.median(values)
            )
            assert close(st["std"], statistics.stdev(values))
            assert st["min"] == min(values) and st["max"] == max(values)
            mean.setdefault(mode, {})[metric] = statistics.fmean(values)
    cmp = doc["comparison"]
    assert close(cmp["speedup"], mean["large"]["latency"] / mean["spec"]["latency"])
    assert close(cmp["throughput_improvement"], mean["spec"]["throughput"] / mean["large"]["throughput"])
    assert close(cmp["large_model_reduction"], 1 - mean["spec"]["large_model_ratio"])


def test_spec_thinking_of_the_large_model_alone(think: ThinkReport) -> None:
    large = think.model_copy(deep=True)
    large.runs = [r for r in large.runs if r.mode == "large"]
    assert large.summary is not None
    large.summary = large.summary.model_copy(
        update={"spec": None, "speedup": None, "throughput_ratio": None, "large_token_reduction": None}
    )
    doc = json.loads(export.render([large], "spec-thinking"))
    assert set(doc) == SPEC_THINKING and doc["speculative_thinking"] is None
    assert doc["comparison"] == dict.fromkeys(SPEC_THINKING_COMPARISON)


# ------------------------------------------------------------------ seed 003: vllm-study


def test_vllm_study_writes_the_seeds_folder(run: Report, tmp_path: Path) -> None:
    out = tmp_path / "study"
    paths = export.write([run], "vllm-study", out)
    assert {p.name for p in paths} == VLLM_STUDY_FILES and all(p.parent == out for p in paths)
    assert {p.name for p in out.iterdir()} == VLLM_STUDY_FILES
    its = run.modes["speculative"].iterations

    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"aggregate", "per_request"}
    agg = metrics["aggregate"]
    assert agg["num_requests"] == len(its)
    assert close(agg["total_walltime"], sum(i.wall_ms for i in its) / 1000)
    assert close(agg["avg_walltime"], statistics.fmean(i.wall_ms / 1000 for i in its))
    assert close(agg["avg_tokens_per_second"], statistics.fmean(i.tokens_per_second for i in its))
    assert agg["total_output_tokens"] == sum(i.generated_tokens for i in its)
    assert close(
        agg["acceptance_rate"], sum(i.n_accept or 0 for i in its) / sum(i.n_drafted or 0 for i in its)
    )
    assert [r["iteration"] for r in metrics["per_request"]] == [i.index for i in its]
    for r, it in zip(metrics["per_request"], its, strict=True):
        assert close(r["walltime"], it.wall_ms / 1000) and r["output_tokens"] == it.generated_tokens

    lines = (out / "responses.jsonl").read_text().splitlines()
    responses = [json.loads(line) for line in lines]
    assert len(responses) == len(its)
    for r, it in zip(responses, its, strict=True):
        assert set(r) == {"id", "iteration", "prompt", "response"}
        assert r["response"] == it.output and r["prompt"] == run.config.prompt

    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert set(cfg) == VLLM_STUDY_CONFIG
    assert set(cfg["generation"]) == VLLM_STUDY_GENERATION and set(cfg["engine"]) == VLLM_STUDY_ENGINE
    assert cfg["model"] == run.config.main_model
    assert cfg["generation"] == {
        "max_tokens": run.config.n_predict,
        "temperature": run.config.temp,
        "top_p": None,
    }
    assert cfg["speculative_config"] == {
        "method": "draft_model",  # vLLM's name of velobench's --method draft
        "model": run.config.draft_model,
        "num_speculative_tokens": run.config.n_draft,
    }
    assert export.write([run], "vllm-study", out) == paths  # a second export replaces the files


def test_vllm_study_takes_the_speculative_config_vllm_ran_with(run: Report) -> None:
    vllm = run.model_copy(deep=True)
    spec = vllm.modes["speculative"]
    ran = {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 3}
    cmd = f"vllm serve Qwen/Qwen3-0.6B --port 8000 --speculative-config '{json.dumps(ran)}'"
    spec.session = spec.session.model_copy(update={"command": cmd}) if spec.session else None
    assert spec.session is not None
    cfg = yaml.safe_load(export.files([vllm], "vllm-study")["config.yaml"])
    assert cfg["speculative_config"] == ran


def test_a_file_format_writes_one_file_and_the_folder_format_no_file(run: Report, tmp_path: Path) -> None:
    target = tmp_path / "run.velollm.json"
    assert export.write([run], "velollm", target) == [target]
    assert target.read_text() == export.render([run], "velollm")
    with pytest.raises(VelobenchError, match="is a file: format 'vllm-study' writes a folder"):
        export.write([run], "vllm-study", target)
    with pytest.raises(VelobenchError, match="is a folder: format 'md' writes a file"):
        export.write([run], "md", tmp_path)


@pytest.mark.parametrize(
    "value",
    [
        'say "hi": now\nand\\then # not a comment',
        "",
        "yes",
        "null",
        "1.5",
        "- item",
        "{a: b}",
        "é ✓",
        1e-05,
        2.5e20,
        0.1,
        -3,
        True,
        None,
    ],
)
def test_the_hand_written_yaml_reads_back_the_same(value: object) -> None:
    doc = {"top": value, "nested": {"deeper": {"value": value}, "empty": {}}}
    assert yaml.safe_load(yaml_dump(doc)) == doc


def test_vllm_study_of_a_run_without_speculation_is_its_vanilla_mode(run: Report) -> None:
    vanilla = run.model_copy(deep=True)
    del vanilla.modes["speculative"]
    vanilla.comparisons = []
    out = export.files([vanilla], "vllm-study")
    its = vanilla.modes["vanilla"].iterations
    metrics = json.loads(out["metrics.json"])
    assert metrics["aggregate"]["num_requests"] == len(its)
    assert metrics["aggregate"]["acceptance_rate"] is None  # vanilla drafts nothing
    assert [r["tokens_per_second"] for r in metrics["per_request"]] == [i.tokens_per_second for i in its]
    assert yaml.safe_load(out["config.yaml"])["speculative_config"] is None
