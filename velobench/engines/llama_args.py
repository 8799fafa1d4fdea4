"""What every llama.cpp engine shares: where the tools are, how they are recorded, and the
speculative-decoding flags, chosen from what each binary's --help lists.

llama.cpp renamed these in 2026 (`--draft-max` → `--spec-draft-n-max`, `-md` alone no longer
speculates without `--spec-type draft-simple`); newest names come first in each tuple.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from velobench import proc
from velobench.bins.locate import Tool
from velobench.errors import VelobenchError
from velobench.results.config import Method, RunConfig
from velobench.results.schema import BinaryInfo

N_MAX_FLAGS = ("--spec-draft-n-max", "--draft-max", "--draft")
N_MIN_FLAGS = ("--spec-draft-n-min", "--draft-min")
P_MIN_FLAGS = ("--spec-draft-p-min", "--draft-p-min")
NGLD_FLAGS = ("--spec-draft-ngl", "-ngld", "--gpu-layers-draft")

# How many times velobench runs a tool that exits 0 without the lines it reads (timings, a cost
# table). llama.cpp's tools log through an asynchronous worker whose singleton is leaked on
# purpose (common/log.cpp, ggml-org/llama.cpp#22142), so a tool can exit before the worker has
# written its last lines. Measured on this project's build (c2252870632fa4bc): llama-completion
# on a tiny synthetic model lost them in 2 of 68 runs (one cut mid-line after system_info).
LOST_LOG_ATTEMPTS = 3

T = TypeVar("T")


class Unparsed(VelobenchError):
    """A tool exited 0 but its output lacks what velobench reads (its log's end lost, --no-perf)."""


def read_complete(run: Callable[[], proc.Completed], read: Callable[[proc.Completed], T]) -> T:
    """`read(run())`, run again while `read` raises `Unparsed`, at most `LOST_LOG_ATTEMPTS` runs in
    all; then the last `Unparsed`, saying so. Any other error of `read` ends it at once."""
    for attempt in range(1, LOST_LOG_ATTEMPTS + 1):
        try:
            return read(run())
        except Unparsed as exc:
            if attempt == LOST_LOG_ATTEMPTS:
                raise Unparsed(f"{exc} (in each of {attempt} runs that exited 0)") from exc
    raise AssertionError("unreachable")


# Flags velobench sets on every llama.cpp tool from its own options; through -x they would
# override the recorded configuration (flag → the velobench option to use instead).
LLAMA_OWNED_FLAGS: dict[str, str] = {
    **dict.fromkeys(("-m", "--model"), "use -m/--main-model"),
    **dict.fromkeys(("-md", "--model-draft"), "use -d/--draft-model"),
    **dict.fromkeys(("-c", "--ctx-size"), "use -c/--ctx-size"),
    **dict.fromkeys(("-t", "--threads"), "use -t/--threads"),
    **dict.fromkeys(("-ngl", "--gpu-layers", "--n-gpu-layers"), "use -ngl/--gpu-layers"),
    **dict.fromkeys((*NGLD_FLAGS, "--n-gpu-layers-draft"), "use -ngld/--gpu-layers-draft"),
    **dict.fromkeys(N_MAX_FLAGS, "use --n-draft"),
    **dict.fromkeys(N_MIN_FLAGS, "velobench sets the minimum draft length to 0"),
    **dict.fromkeys(P_MIN_FLAGS, "use --draft-p-min"),
    "--spec-type": "use --method",
}


def llama_cpp_dir(cfg: RunConfig) -> Path | None:
    """The llama.cpp folder the user named (--llama-cpp-path), if any."""
    return Path(cfg.llama_cpp_path) if cfg.llama_cpp_path else None


def llama_cpp_can_run(cfg: RunConfig) -> str | None:
    """What no llama.cpp engine runs: vLLM's methods, servers velobench did not start."""
    if not cfg.method.llama_cpp:
        return f"--method {cfg.method.value} is a vLLM method: use --engine vllm"
    if cfg.server_url or cfg.baseline_url:
        return "--server-url/--baseline-url measure a running server: use --engine remote"
    return None


def binary_info(tool: Tool) -> BinaryInfo:
    """A located tool as the result file records it."""
    v = tool.version
    return BinaryInfo(
        name=tool.name, path=str(tool.path), source=tool.source, version=str(v), commit=v.commit
    )


def need(tool: Tool, flags: tuple[str, ...], what: str) -> str:
    """The first of `flags` the tool knows, or a one-line error naming the tool and its version."""
    flag = tool.first_flag(*flags)
    if flag is None:
        raise VelobenchError(
            f"{tool.name} ({tool.version}) at {tool.path} has no option for {what} (looked for {', '.join(flags)})"
        )
    return flag


def gpu_layers_value(tool: Tool, value: str, option: str = "-ngl") -> str:
    """`value` of -ngl/-ngld as this build takes it.

    Builds from before llama.cpp's automatic fitting (no `--fit`, e.g. May 2025) read the value
    as a count only: `all` becomes 999 (llama.cpp offloads at most every layer, so any larger
    count means all), and `auto`, which such a build has no way to say, is one line.
    """
    if value not in ("all", "auto") or tool.supports("--fit"):
        return value
    if value == "all":
        return "999"
    raise VelobenchError(
        f"{option} auto: {tool.name} ({tool.version}) takes a layer count only (it predates 'auto'); give a number or all"
    )


def speculative_args(tool: Tool, cfg: RunConfig, *, uses_spec_type: bool) -> list[str]:
    """Draft length, draft model and its settings, or the n-gram spec type.

    `uses_spec_type` is False for the tools that speculate by construction (llama-speculative,
    llama-lookup) and ignore `--spec-type`.
    """
    argv = [need(tool, N_MAX_FLAGS, "the draft length"), str(cfg.n_draft)]
    if cfg.method is Method.DRAFT:
        assert cfg.draft_model is not None
        argv += ["-md", cfg.draft_model]
        if uses_spec_type and tool.supports("--spec-type"):
            # Since 2026 `-md` alone no longer speculates: the default spec type is `none`.
            argv += ["--spec-type", "draft-simple"]
        n_min = tool.first_flag(*N_MIN_FLAGS)
        if n_min:
            argv += [n_min, "0"]
        # Set explicitly: the default changed from 0.75-0.8 (2025) to 0.0 (2026).
        p_min = tool.first_flag(*P_MIN_FLAGS)
        if p_min:
            argv += [p_min, str(cfg.draft_p_min)]
        elif cfg.draft_p_min != 0.0:
            need(tool, P_MIN_FLAGS, "--draft-p-min")
        if cfg.gpu_layers_draft is not None:
            argv += [
                need(tool, NGLD_FLAGS, "-ngld/--gpu-layers-draft"),
                gpu_layers_value(tool, cfg.gpu_layers_draft, "-ngld"),
            ]
    elif uses_spec_type:
        if not tool.supports("--spec-type"):
            raise VelobenchError(
                f"{tool.name} ({tool.version}) has no --spec-type; --method {cfg.method} needs a 2026 build"
            )
        argv += ["--spec-type", cfg.method.value]
    return argv


def extra_args(tool: Tool, cfg: RunConfig) -> list[str]:
    """The -x flags, each one checked against what this build's --help lists: an option the tool
    does not know is one line now, not a failed child after a model load."""
    for arg in cfg.extra_args:
        if len(arg) > 1 and arg[0] == "-" and not (arg[1].isdigit() or arg[1] == "."):  # not a value like -1
            name = arg.split("=", 1)[0]
            if name not in tool.flags:
                raise VelobenchError(
                    f"-x {name}: {tool.name} ({tool.version}) has no such option (see `{tool.path} --help`)"
                )
    return list(cfg.extra_args)
