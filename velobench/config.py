"""The validated configuration of one benchmark run (embedded in every result)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Method(StrEnum):
    """How speculative tokens are proposed."""

    DRAFT = "draft"  # a draft model (-d)
    LOOKUP = "lookup"  # llama-lookup: prompt lookup / n-gram cache, no draft model
    NGRAM_SIMPLE = "ngram-simple"  # llama-speculative-simple --spec-type ngram-*, no draft model
    NGRAM_MAP_K = "ngram-map-k"
    NGRAM_MAP_K4V = "ngram-map-k4v"
    NGRAM_MOD = "ngram-mod"
    NGRAM_CACHE = "ngram-cache"

    @property
    def needs_draft_model(self) -> bool:
        return self is Method.DRAFT


class SpecImpl(StrEnum):
    """Which llama.cpp program runs draft-model speculation."""

    SIMPLE = "simple"  # llama-speculative-simple (common_speculative API, one draft sequence)
    CLASSIC = "classic"  # llama-speculative (its own loop; tree drafts with -np > 1)


class RunConfig(BaseModel):
    """Everything that decides what a run measures. Paths are stored as given and resolved."""

    model_config = ConfigDict(extra="forbid")

    main_model: str
    draft_model: str | None = None
    method: Method = Method.DRAFT
    spec_impl: SpecImpl = SpecImpl.SIMPLE
    n_draft: int = Field(8, ge=1, description="maximum draft tokens per step (--spec-draft-n-max)")
    draft_p_min: float = Field(0.0, ge=0.0, le=1.0, description="stop drafting below this draft probability")
    n_predict: int = Field(100, ge=1)
    prompt: str = "Explain quantum computing in simple terms"
    prompt_file: str | None = None
    prompts: str | None = Field(
        default=None,
        description="a prompt set (builtin, humaneval, mtbench, sharegpt, gsm8k, aime2025, or a JSONL path)",
    )
    num_prompts: int | None = Field(default=None, ge=1)
    prompt_seed: int = 0
    categories: list[str] = Field(default_factory=list)
    chat: bool = Field(default=False, description="apply the model's chat template (server chat endpoint)")
    iterations: int = Field(5, ge=1)
    warmup: int = Field(0, ge=0, description="unrecorded generations per mode before measuring")
    threads: int | None = Field(None, ge=1)
    ctx_size: int = Field(2048, ge=64)
    temp: float = Field(0.0, ge=0.0)
    seed: int = 42
    gpu_layers: str | None = None
    gpu_layers_draft: str | None = None
    skip_vanilla: bool = False
    skip_speculative: bool = Field(default=False, description="measure vanilla only (a matrix baseline)")
    extra_args: list[str] = Field(default_factory=list)
    engine: Literal["cli", "server"] = "cli"

    @model_validator(mode="after")
    def _draft_matches_method(self) -> RunConfig:
        if self.skip_vanilla and self.skip_speculative:
            raise ValueError("--skip-vanilla and --skip-speculative together leave nothing to measure")
        if self.method.needs_draft_model and not self.draft_model:
            raise ValueError("--method draft needs a draft model (-d/--draft-model)")
        if not self.method.needs_draft_model and self.draft_model:
            raise ValueError(f"--method {self.method.value} uses no draft model; drop -d/--draft-model")
        return self
