"""The configuration of `velobench think`: trigger words, segments, limits, prompt, sampling.

The defaults ship as prompts/think/default.toml (velobench/_data/prompts/think/default.toml in
the wheel) and are documented there. `load_think_config(path)` reads the defaults, lays the
user's TOML over them table by table, and validates the result; anything wrong is one-line
VelobenchError naming the file and the key. The validated ThinkConfig goes into the result file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from velobench.errors import VelobenchError
from velobench.paths import data_dir, repo_root
from velobench.results.think import ThinkConfig


def default_config_path() -> Path:
    """The shipped defaults: inside the wheel, else the checkout's prompts/think/default.toml."""
    packaged = data_dir() / "prompts" / "think" / "default.toml"
    return packaged if packaged.is_file() else repo_root() / "prompts" / "think" / "default.toml"


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise VelobenchError(f"think config not found: {path}") from exc
    except OSError as exc:
        raise VelobenchError(f"cannot read think config {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise VelobenchError(f"{path}: not a UTF-8 text file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise VelobenchError(f"{path}: not valid TOML ({exc})") from exc


def _validated(data: dict[str, Any], where: str) -> ThinkConfig:
    words = data.get("triggers", {}).get("words") if isinstance(data.get("triggers"), dict) else None
    if words == []:
        raise VelobenchError(
            f"{where}: [triggers] words is empty; speculative thinking needs at least one trigger word"
        )
    try:
        return ThinkConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        raise VelobenchError(f"{where}: {loc}: {msg}") from exc


def load_think_config(path: Path | None = None) -> ThinkConfig:
    """The shipped defaults, with the TOML at `path` (if any) laid over them and validated."""
    data = _read_toml(default_config_path())
    if path is None:
        return _validated(data, str(default_config_path()))
    return _validated(_merge(data, _read_toml(path)), str(path))


def with_overrides(cfg: ThinkConfig, **options: Any) -> ThinkConfig:
    """`cfg` with command-line options that were given (not None), validated again.

    Options: triggers (list[str]), segment_tokens, max_tokens, temperature, top_p, top_k, seed.
    """
    where = {
        "triggers": ("triggers", "words"),
        "segment_tokens": ("segment", "tokens"),
        "max_tokens": ("generation", "max_tokens"),
        "temperature": ("sampling", "temperature"),
        "top_p": ("sampling", "top_p"),
        "top_k": ("sampling", "top_k"),
        "seed": ("sampling", "seed"),
    }
    data = cfg.model_dump()
    for name, value in options.items():
        if name not in where:
            raise ValueError(f"with_overrides: unknown option {name!r}")
        if value is not None:
            table, key = where[name]
            data[table][key] = value
    return _validated(data, "command line")
