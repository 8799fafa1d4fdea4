"""`velobench advise`: the best draft length per concurrency, predicted from measured costs and confirmed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from velobench.cli import options as o
from velobench.cli.terminal import out
from velobench.errors import VelobenchError
from velobench.results.config import EngineName


def advise(
    main_model: o.MainModel,
    draft_model: o.DraftModel,
    concurrency: Annotated[str, typer.Option(help="concurrencies to predict (requests in flight)")] = "1,2,4",
    n_drafts: Annotated[str, typer.Option("--n-draft", help="draft lengths to predict")] = "2,4,8",
    n_predict: Annotated[
        int, typer.Option("--output-len", "--n-predict", "-n", help="tokens each request generates")
    ] = 64,
    probe_requests: Annotated[
        int, typer.Option(help="requests of the acceptance probe (at the largest draft length)")
    ] = 8,
    requests: Annotated[
        int, typer.Option(help="requests per confirmation level (at least 10 per request in flight)")
    ] = 16,
    repetitions: Annotated[int, typer.Option(help="llama-batched-bench runs per model")] = 3,
    bootstrap: Annotated[int, typer.Option(help="bootstrap replicates of the prediction's interval")] = 1000,
    confirm: Annotated[bool, typer.Option(help="confirm the deciding points with real load levels")] = True,
    prefill: Annotated[
        bool,
        typer.Option(help="predict whole requests, each one's prefill included (--no-prefill: decode only)"),
    ] = True,
    synthetic: Annotated[
        str,
        typer.Option(
            help="also check the cost model with llama-server's synthetic acceptance a_i = α^i at these α "
            "(e.g. 0.5,0.9), at the first confirmed point; '' = none"
        ),
    ] = "",
    synthetic_map: Annotated[
        bool,
        typer.Option(
            help="run the synthetic checks at every --n-draft (the hardware's map of speedup over "
            "acceptance × draft length, at the lowest and the highest --concurrency); --synthetic gives the α "
            "(default 0.5,0.7,0.9)"
        ),
    ] = False,
    prompts: o.Prompts = None,
    num_prompts: o.NumPrompts = None,
    prompt_seed: o.PromptSeed = 0,
    chat: o.Chat = False,
    threads: o.Threads = None,
    ctx_size: Annotated[int, typer.Option("--ctx-size", "-c", help="context per slot")] = 2048,
    seed: Annotated[int, typer.Option(help="seed of sampling and of the bootstrap")] = 42,
    gpu_layers: o.GpuLayers = None,
    gpu_layers_draft: o.GpuLayersDraft = None,
    engine: Annotated[
        EngineName, typer.Option(help="server (llama-server); auto picks it")
    ] = EngineName.AUTO,
    server_url: o.ServerUrl = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="result JSON (default: results/advise-<time>.json); beside it "
            ".schedule.toml, .html and a folder with every measurement",
        ),
    ] = None,
    llama_cpp_path: o.LlamaCppPath = None,
) -> None:
    """Which draft length at which load: predict the speedup over concurrency × draft length from
    measured costs and acceptance, confirm the deciding points, emit a deployable schedule."""
    from velobench.advise.run import default_output, execute_advise
    from velobench.results import config
    from velobench.results.advise import AdviseOptions

    concs = [int(c) for c in o.csv_numbers(concurrency, "--concurrency", int, "1,2,4")]
    ks = [int(k) for k in o.csv_numbers(n_drafts, "--n-draft", int, "2,4,8")]
    if synthetic_map and not synthetic:
        synthetic = "0.5,0.7,0.9"
    alphas = (
        [float(a) for a in o.csv_numbers(synthetic, "--synthetic", float, "0.5,0.9")] if synthetic else []
    )
    if any(not 0 <= a <= 1 for a in alphas):
        raise VelobenchError("--synthetic: acceptance α must lie in [0, 1]")
    if bootstrap < 0 or repetitions < 1:
        raise VelobenchError("--bootstrap must be >= 0 and --repetitions >= 1")
    opts = AdviseOptions(
        concurrencies=sorted(set(concs)),
        n_drafts=sorted(set(ks)),
        probe_requests=probe_requests,
        requests=requests,
        repetitions=repetitions,
        bootstrap=bootstrap,
        seed=seed,
        confirm=confirm,
        prefill=prefill,
        synthetic=alphas,
        synthetic_map=synthetic_map,
    )
    n_draft = max(ks) if ks else 1
    cfg = config.from_options({k: v for k, v in locals().items() if k not in ("concurrency",)})
    # every check (advise's own, then runner.preflight's) before anything runs
    execute_advise(cfg, opts, output or default_output(), out)
