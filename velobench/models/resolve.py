"""A model argument (GGUF path, catalog name or hf://OWNER/REPO/FILE) as a verified local file."""

from __future__ import annotations

from pathlib import Path

from velobench.errors import VelobenchError
from velobench.models.catalog import load_catalog, resolve_model
from velobench.models.gguf_info import is_gguf


def resolve_model_arg(spec: str, what: str) -> str:
    """A model argument as a verified local GGUF path.

    Checked before any binary starts: a missing file or a non-GGUF file is a one-line error.
    """
    is_file = Path(spec).expanduser().is_file()
    if not spec.startswith("hf://") and not is_file and spec not in load_catalog().models:
        raise VelobenchError(
            f"{what} not found: {spec} (not a file, not a catalog name: see `velobench models list`)"
        )
    path = resolve_model(spec)
    if not is_gguf(path):
        raise VelobenchError(f"{what} is not a GGUF file: {spec}")
    return str(path)
