"""Engines: how a generation is run and measured. One module per engine, one registry line each.

REGISTRY    name → "module:Class" (imported only when chosen)
choose(cfg) → the engine to use (`auto`: the first in AUTO_ORDER that can run cfg and is installed)
make(cfg)   → the engine, its programs located and probed; nothing runs yet
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, cast

from velobench.errors import VelobenchError
from velobench.results.config import EngineName

if TYPE_CHECKING:
    from velobench.engines.base import Engine, EngineClass
    from velobench.results.config import RunConfig

REGISTRY: dict[EngineName, str] = {
    EngineName.SERVER: "velobench.engines.llama_server:LlamaServerEngine",
    EngineName.CLI: "velobench.engines.llama_cli:LlamaCliEngine",
    EngineName.VLLM: "velobench.engines.vllm:VllmEngine",
    EngineName.REMOTE: "velobench.engines.remote:RemoteEngine",
}
AUTO_ORDER = (EngineName.REMOTE, EngineName.SERVER, EngineName.CLI)  # vLLM only when asked for


def engine_class(name: EngineName) -> EngineClass:
    module, cls = REGISTRY[name].split(":")
    return cast("EngineClass", getattr(importlib.import_module(module), cls))


def choose(cfg: RunConfig) -> EngineName:
    """The engine `cfg` names, checked; for `auto`, the first that can run it and is installed."""
    if cfg.engine is not EngineName.AUTO:
        reason = engine_class(cfg.engine).can_run(cfg)
        if reason:
            raise VelobenchError(reason)
        return cfg.engine
    runnable = [n for n in AUTO_ORDER if engine_class(n).can_run(cfg) is None]
    for name in runnable:
        if engine_class(name).available(cfg):
            return name
    if runnable:  # none installed: the last resort's own lookup names what is missing and how to get it
        return runnable[-1]
    reasons = [r for n in AUTO_ORDER if (r := engine_class(n).can_run(cfg))]
    raise VelobenchError("no engine can run this configuration: " + "; ".join(reasons))


def make(cfg: RunConfig, *, log_dir: Path) -> Engine:
    """The engine `cfg.engine` names (already resolved by `choose`), ready to hand out sessions."""
    if cfg.engine is EngineName.AUTO:
        raise ValueError("make() needs a chosen engine: call choose(cfg) first")
    return engine_class(cfg.engine)(cfg, log_dir=log_dir)
