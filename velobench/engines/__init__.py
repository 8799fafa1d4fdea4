"""Engines: how a generation is run and measured. One module per engine, one registry line each.

REGISTRY        name → "module:Class" (imported only when chosen)
reasons(cfg)    → why each engine cfg may mean cannot run it (None: it can); pure, no lookup
candidates(cfg) → the engines that can run cfg (the named one, or for `auto` those of AUTO_ORDER)
choose(cfg)     → the engine to use (`auto`: the first candidate that is installed)
make(cfg)       → the engine, its programs located and probed; nothing runs yet
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
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


def reasons(cfg: RunConfig) -> dict[EngineName, str | None]:
    """Each engine `cfg` may mean (the named one; for `auto` every one of AUTO_ORDER, in order) and
    the one-line reason it cannot run `cfg`, None where it can. Pure: no program is looked up."""
    names = AUTO_ORDER if cfg.engine is EngineName.AUTO else (cfg.engine,)
    return {name: engine_class(name).can_run(cfg) for name in names}


def candidates(cfg: RunConfig, why: Mapping[EngineName, str | None] | None = None) -> list[EngineName]:
    """The engines that can run `cfg`, in AUTO_ORDER (`why`: `reasons(cfg)`, if already known).

    None can: the named engine's reason, or for `auto` every engine's, in one line.
    """
    why = reasons(cfg) if why is None else why
    able = [name for name, reason in why.items() if reason is None]
    if able:
        return able
    if cfg.engine is not EngineName.AUTO:
        raise VelobenchError(str(why[cfg.engine]))
    raise VelobenchError("no engine can run this configuration: " + "; ".join(r for r in why.values() if r))


def choose(cfg: RunConfig, among: Sequence[EngineName] | None = None) -> EngineName:
    """The engine `cfg` names, checked; for `auto`, the first of `among` (default: `candidates(cfg)`)
    that is installed, else the last of them, whose own lookup names what is missing and how to get it."""
    names = list(candidates(cfg) if among is None else among)
    if cfg.engine is not EngineName.AUTO:
        return names[0]
    for name in names:
        if engine_class(name).available(cfg):
            return name
    return names[-1]


def make(cfg: RunConfig, *, log_dir: Path) -> Engine:
    """The engine `cfg.engine` names (already resolved by `choose`), ready to hand out sessions."""
    if cfg.engine is EngineName.AUTO:
        raise ValueError("make() needs a chosen engine: call choose(cfg) first")
    return engine_class(cfg.engine)(cfg, log_dir=log_dir)
