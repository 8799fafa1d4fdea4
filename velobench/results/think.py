"""The result file of `velobench think` (`"kind": "think"`), versioned with every result.

    kind, schema_version, velobench_version, timestamp, status, error
    config        the think configuration (triggers, segment, generation, prompt, sampling) and
                  how the run was made (models, engine, test mode, problems, runs, server options)
    environment   the machine (velobench.environment)
    binaries      the server programs (llama-server, vLLM) or the URLs of servers already running
    servers       per model: the server's command line, log, start-up time, URL, served name
    problems      the problems run: id, text, reference answer, where it came from
    runs          every run in the order it ran: measurements, the answer, the full text and its
                  segments marked by writer (velobench.analysis.think.ThinkRun)
    summary       velobench.analysis.think.ThinkSummary of the runs (recomputed after each run)
    warnings      what a reader must not miss (the summary's warnings, at the top level)
    wall_s        wall time from the first server start to the last run

The file is written atomically after every run (`results.store.save`), so a crash, a dead
server or Ctrl-C keeps every finished run; `status` says how the benchmark ended.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from velobench import __version__
from velobench.analysis.think import ThinkRun, ThinkSummary, ThinkWarning, summarize_think
from velobench.environment import Environment
from velobench.results.schema import SCHEMA_VERSION, BinaryInfo
from velobench.think_config import ThinkConfig
from velobench.validation import Strict

ThinkEngine = Literal["server", "vllm", "remote"]
TestModeName = Literal["large", "spec", "both"]


class ThinkOptions(Strict):
    """How `velobench think` ran: every option beyond the think configuration."""

    large_model: str = Field(
        description="-m: the model that steps in (GGUF, catalog name; remote: served name)"
    )
    small_model: str = Field(description="-d: the model that reasons")
    engine: ThinkEngine = "server"
    test_mode: TestModeName = "both"
    prompts: str = Field(default="builtin", description="builtin[:CATEGORY], gsm8k, aime2025 or a JSONL file")
    num_problems: int | None = Field(default=None, ge=1)
    num_runs: int = Field(default=1, ge=1)
    config_file: str | None = Field(default=None, description="--config: the TOML laid over the defaults")
    threads: int | None = Field(default=None, ge=1)
    ctx_size: int = Field(ge=64, description="per server (vLLM: --max-model-len)")
    gpu_layers: str | None = None
    gpu_layers_draft: str | None = Field(default=None, description="-ngld: GPU layers of the small model")
    extra_args: list[str] = Field(default_factory=list)
    llama_cpp_path: str | None = None
    vllm_bin: str | None = None
    server_timeout: float | None = Field(default=None, gt=0)
    timeout: float = Field(gt=0, description="seconds one request may take")
    large_url: str | None = None
    small_url: str | None = None
    api_key: SecretStr | None = Field(default=None, exclude=True, description="never written anywhere")


class ThinkSetup(Strict):
    think: ThinkConfig
    run: ThinkOptions


class ThinkProblem(Strict):
    id: str
    text: str
    reference: str | None = None
    source: str


class ServerRecord(Strict):
    """One model's server: what velobench started (command, log) or where it found it (url)."""

    role: Literal["large", "small"]
    name: str
    url: str
    model: str | None = None
    protocol: Literal["llama", "openai"]
    command: str | None = None
    log: str | None = None
    ready_s: float | None = None
    version: str | None = None
    max_stop_strings: int | None = Field(
        default=None, description="stop strings one request may carry (None: any); fewer: see fit_stops"
    )


class ThinkReport(Strict):
    """Everything one `velobench think` measured, with how and where."""

    kind: Literal["think"] = "think"
    schema_version: int = SCHEMA_VERSION
    velobench_version: str = __version__
    timestamp: str = Field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    status: Literal["running", "complete", "interrupted", "failed"] = "running"
    error: str | None = None
    config: ThinkSetup
    environment: Environment
    binaries: list[BinaryInfo] = Field(default_factory=list)
    servers: list[ServerRecord] = Field(default_factory=list)
    problems: list[ThinkProblem] = Field(default_factory=list)
    runs: list[ThinkRun] = Field(default_factory=list)
    summary: ThinkSummary | None = None
    warnings: list[ThinkWarning] = Field(default_factory=list)
    wall_s: float | None = Field(default=None, description="first server start to the last run")

    def finished_runs(self) -> int:
        return sum(1 for r in self.runs if r.error is None)


def save_think(report: ThinkReport, path: Path) -> None:
    """Write `report` atomically (a reader sees the old file or the new one)."""
    from velobench.results.store import write_atomic

    write_atomic(path, report.model_dump_json(indent=2) + "\n")


def refresh(report: ThinkReport) -> None:
    """Recompute the summary and its warnings from the runs (after every run, and at the end)."""
    report.summary = summarize_think(report.runs) if report.runs else None
    report.warnings = list(report.summary.warnings) if report.summary else []
