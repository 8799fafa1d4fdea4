"""The output folder of the vLLM speculative-decoding study (seed 003, specdec_study) from a run result.

Seed 003's "Output Format": one folder per experiment with

    metrics.json      aggregated metrics and per-request details
    responses.jsonl   the individual responses, one per line
    config.yaml       the configuration used, for reproducibility

An experiment of the study is one configuration; a velobench run holds two (vanilla and
speculative), so the folder is the run's speculative mode (the candidate of its first
comparison; the only mode of a run with one). The seed names its metrics (walltime per request
in seconds, acceptance rate, tokens/second) but not their keys, so:

    metrics.json     {"aggregate": {num_requests, total_walltime, avg_walltime,
                      avg_tokens_per_second, total_output_tokens, acceptance_rate},
                      "per_request": [{id, iteration, walltime, output_tokens, tokens_per_second,
                      acceptance_rate}]}
                     acceptance_rate = accepted / drafted draft tokens (aggregate: token-weighted)
    responses.jsonl  {id, iteration, prompt, response} per measured iteration (warm-ups excluded)
    config.yaml      the seed's documented keys: model, generation {max_tokens, temperature,
                     top_p}, engine {tensor_parallel_size, gpu_memory_utilization}, and vLLM's own
                     speculative_config (`spec_config`: what `vllm serve` ran with, or velobench's
                     options in vLLM's names; null for a mode without speculation)

Null where a run result cannot fill it, never invented: `id` of a single-prompt run (the seed
generated ids; velobench records none), `prompt` of a run over a prompt set (a result keeps
prompt ids, not their text), `response` where the engine's output was not kept, acceptance
where the engine does not report drafts, `top_p` (velobench runs sample with the engine's
default), the engine options a run did not set (llama.cpp engines have neither). `walltime` is
velobench's wall time of the generation: the request for HTTP engines, the process (model load
included) for the cli engine, as its `wall_ms` says.

The YAML is written here by hand (mappings and scalars only; strings double-quoted as JSON, which
YAML reads the same; floats always with a '.', which YAML 1.1 readers need), so the study's
shape needs no YAML dependency.
"""

from __future__ import annotations

import json
import math
import shlex
from itertools import pairwise
from typing import Any

from velobench.engines import vllm_args
from velobench.errors import VelobenchError
from velobench.results.schema import ModeResult, Report

METRICS, RESPONSES, CONFIG = "metrics.json", "responses.jsonl", "config.yaml"


def study_mode(report: Report) -> ModeResult | None:
    """The mode the folder shows: the first comparison's candidate, else `speculative`, else the
    run's only mode (a --skip-speculative run: its vanilla mode)."""
    if report.primary is not None and report.primary.candidate in report.modes:
        return report.modes[report.primary.candidate]
    if "speculative" in report.modes:
        return report.modes["speculative"]
    return next(iter(report.modes.values())) if len(report.modes) == 1 else None


def metrics(m: ModeResult | None) -> dict[str, Any]:
    """metrics.json over the mode's measured iterations i:

    total_walltime = Σ wall_i, avg_walltime = total_walltime / n (s); avg_tokens_per_second =
    Σ tok/s_i / n; acceptance_rate = Σ accepted_i / Σ drafted_i (null unless every iteration
    reports both); per request acceptance_rate = accepted_i / drafted_i.
    """
    its = m.iterations if m else []
    drafted = [i.n_drafted for i in its]
    accepted = [i.n_accept for i in its]
    known = bool(its) and None not in drafted and None not in accepted
    total_drafted = sum(d for d in drafted if d is not None)
    walls = [i.wall_ms / 1000 for i in its]
    return {
        "aggregate": {
            "num_requests": len(its),
            "total_walltime": sum(walls) if its else None,
            "avg_walltime": sum(walls) / len(walls) if its else None,
            "avg_tokens_per_second": sum(i.tokens_per_second for i in its) / len(its) if its else None,
            "total_output_tokens": sum(i.generated_tokens for i in its) if its else None,
            "acceptance_rate": (
                sum(a for a in accepted if a is not None) / total_drafted if known and total_drafted else None
            ),
        },
        "per_request": [
            {
                "id": i.prompt_id,
                "iteration": i.index,
                "walltime": i.wall_ms / 1000,
                "output_tokens": i.generated_tokens,
                "tokens_per_second": i.tokens_per_second,
                "acceptance_rate": i.n_accept / i.n_drafted
                if i.n_drafted and i.n_accept is not None
                else None,
            }
            for i in its
        ],
    }


def responses(report: Report, m: ModeResult | None) -> list[dict[str, Any]]:
    prompt = report.config.prompt if report.config.prompts is None else None
    return [
        {"id": i.prompt_id, "iteration": i.index, "prompt": prompt, "response": i.output}
        for i in (m.iterations if m else [])
    ]


def recorded_spec_config(command: str | None) -> dict[str, Any] | None:
    """The `--speculative-config` JSON of a recorded `vllm serve` command line, None without one."""
    try:
        argv = shlex.split(command) if command else []
    except ValueError:  # unbalanced quotes: not a command line this can read
        return None
    for flag, value in pairwise(argv):
        if flag == "--speculative-config":
            try:
                parsed = json.loads(value)
            except ValueError:
                return None
            return parsed if isinstance(parsed, dict) else None
    return None


def spec_config(report: Report, m: ModeResult | None) -> dict[str, Any] | None:
    """vLLM's `speculative_config` of the mode: what its `vllm serve` ran with where recorded, else
    velobench's options in vLLM's names (`engines.vllm_args.speculative_config`, the mapping the
    vLLM engine uses); a method vLLM has not (llama.cpp's lookup, ngram-*) keeps velobench's name."""
    if m is None or m.mode == "vanilla":
        return None
    recorded = recorded_spec_config(m.session.command if m.session else None)
    if recorded is not None:
        return recorded
    c = report.config
    try:
        return vllm_args.speculative_config(
            vllm_args.SpecOptions(
                method=c.method.value,  # type: ignore[arg-type]  # checked by speculative_config
                n_draft=c.n_draft,
                draft_model=c.draft_model,
                ngram_min=c.ngram_min,
                ngram_max=c.ngram_max,
                draft_tp=c.draft_tp,
            )
        )
    except VelobenchError:
        return {"method": c.method.value, "model": c.draft_model, "num_speculative_tokens": c.n_draft}


def config(report: Report, m: ModeResult | None) -> dict[str, Any]:
    c = report.config
    return {
        "model": c.main_model,
        "generation": {"max_tokens": c.n_predict, "temperature": c.temp, "top_p": None},
        "engine": {
            "tensor_parallel_size": c.tensor_parallel_size,
            "gpu_memory_utilization": c.gpu_memory_utilization,
        },
        "speculative_config": spec_config(report, m),
    }


def yaml_scalar(v: Any) -> str:
    """One YAML scalar: null, true/false, an int, a float with a '.', a JSON-quoted string."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return ".nan"
        if math.isinf(v):
            return ".inf" if v > 0 else "-.inf"
        text = repr(v)
        if "." not in text:  # 1e-05 reads as a string in YAML 1.1: 1.0e-05
            mantissa, _, exp = text.partition("e")
            text = f"{mantissa}.0" + (f"e{exp}" if exp else "")
        return text
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    raise TypeError(f"yaml_scalar: {type(v).__name__} is not a scalar")


def yaml_dump(mapping: dict[str, Any], indent: int = 0) -> str:
    """A block-style YAML mapping of nested mappings and scalars (keys are plain identifiers)."""
    lines = []
    for key, value in mapping.items():
        pad = " " * indent
        if isinstance(value, dict) and value:
            lines.append(f"{pad}{key}:\n{yaml_dump(value, indent + 2)}")
        else:
            lines.append(f"{pad}{key}: {'{}' if isinstance(value, dict) else yaml_scalar(value)}")
    return "\n".join(lines) + ("\n" if indent == 0 else "")


def render(report: Report) -> dict[str, str]:
    """The folder's files: name → text."""
    m = study_mode(report)
    return {
        METRICS: json.dumps(metrics(m), indent=2) + "\n",
        RESPONSES: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in responses(report, m)),
        CONFIG: yaml_dump(config(report, m)),
    }
