"""Engine: llama.cpp's command-line tools, one process per generation.

    vanilla      llama-completion -no-cnv --ignore-eos                (perf lines: prompt eval, eval)
                 (builds of 2025, before llama-completion: that build's own `llama-cli -no-cnv`)
    draft        llama-speculative-simple -md D --spec-type draft-simple   (or llama-speculative)
    lookup       llama-lookup                                          (prompt lookup / n-gram cache)
    ngram-*      llama-speculative-simple --spec-type ngram-*          (no draft model)

Tokens/s has one definition for both modes: tokens produced in the decode phase divided by
the decode phase's time. For llama-completion that is `eval runs / eval time` (the first token
is sampled from the prompt's logits, inside prompt eval); for the speculative tools it is the
`decoded N tokens in S seconds` line, whose time covers drafting and verifying all N tokens.
TTFT for this engine is the prompt-evaluation time the tool reports (no streaming here).

Every tool of a run comes from one build: the speculative tool's folder also gives the vanilla
tool, or the run stops with one line (never a gap filled from another build). Each generation
has a deadline (--timeout, else derived from n_predict as for the HTTP engines); a child that
passes it is killed and reported. A prompt too long for a command line goes by file (`-f`).

A generation that exits 0 without the timing lines velobench reads is run again, at most
`LOST_LOG_ATTEMPTS` times in all (`llama_args.LOST_LOG_ATTEMPTS`: llama.cpp's logger can lose
the end of a tool's output at exit). Only the complete run is measured.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from velobench import proc
from velobench.bins.locate import Tool, find_beside, find_path, find_tool
from velobench.engines.base import OwnsFlags
from velobench.engines.http_session import DEADLINE_BASE_S, DEADLINE_PER_TOKEN_S
from velobench.engines.llama_args import (
    LLAMA_OWNED_FLAGS,
    Unparsed,
    binary_info,
    extra_args,
    gpu_layers_value,
    llama_cpp_can_run,
    llama_cpp_dir,
    read_complete,
    speculative_args,
)
from velobench.engines.llama_output import generated_text, parse_speculative, parse_vanilla
from velobench.errors import VelobenchError
from velobench.prompts import Prompt
from velobench.results.config import EngineName, Method, RunConfig, SpecImpl, prepared_modes
from velobench.results.schema import BinaryInfo, Iteration, Mode, SessionInfo

NO_CNV_FLAGS = ("-no-cnv", "--no-conversation")
# The vanilla tool, in order of preference, from the same build as the speculative one: builds of
# 2025 have no llama-completion, and their llama-cli with -no-cnv is the same completion program.
VANILLA_TOOLS = ("llama-completion", "llama-cli")
PROMPT_FILE_FLAGS = ("-f", "--file")
# Longer prompts go by file: Linux refuses one argument over 128 KiB (MAX_ARG_STRLEN, E2BIG),
# and all arguments with the environment share ARG_MAX; 32 KiB leaves room for both.
PROMPT_ARG_MAX_BYTES = 32 * 1024
# What velobench sets on every tool it runs; `LlamaCliEngine.check_options` refuses them in -x.
OWNED_FLAGS: dict[str, str] = {
    **LLAMA_OWNED_FLAGS,
    **dict.fromkeys(("-p", "--prompt", "-f", "--file"), "use -p/--prompt, -f/--prompt-file or --prompts"),
    **dict.fromkeys(("-n", "--n-predict", "--predict"), "use -n/--n-predict"),
    "--temp": "use --temp",
    **dict.fromkeys(("-s", "--seed"), "use --seed"),
}


def generation_deadline_s(cfg: RunConfig) -> float:
    """Seconds one generation (a whole process here, model load included) may take: --timeout,
    else the HTTP engines' default, DEADLINE_BASE_S + DEADLINE_PER_TOKEN_S · n_predict."""
    return cfg.timeout or DEADLINE_BASE_S + DEADLINE_PER_TOKEN_S * cfg.n_predict


def vanilla_tool(spec: Tool) -> Tool:
    """The vanilla program of the build `spec` comes from: llama-completion, else (2025) its
    llama-cli where that lists -no-cnv; never a program from another folder."""
    for name in VANILLA_TOOLS:
        tool = find_beside(name, spec)
        if tool is not None and (name != "llama-cli" or tool.first_flag(*NO_CNV_FLAGS)):
            return tool
    raise VelobenchError(
        f"the llama.cpp build in {spec.path.parent} has no llama-completion (nor a llama-cli with -no-cnv) "
        f"for the vanilla mode; every tool of a run comes from one build: complete that build or use another"
    )


def speculative_tool_name(cfg: RunConfig) -> str:
    if cfg.method is Method.LOOKUP:
        return "llama-lookup"
    if cfg.method is Method.DRAFT and cfg.spec_impl is SpecImpl.CLASSIC:
        return "llama-speculative"
    return "llama-speculative-simple"


def common_args(tool: Tool, cfg: RunConfig, prompt_args: list[str]) -> list[str]:
    """Flags every tool gets: model, prompt, length, context, sampling, threads, GPU layers."""
    argv = [str(tool.path), "-m", cfg.main_model, *prompt_args, "-n", str(cfg.n_predict)]
    argv += ["-c", str(cfg.ctx_size), "--temp", str(cfg.temp), "--seed", str(cfg.seed)]
    if cfg.threads is not None:
        argv += ["-t", str(cfg.threads)]
    if cfg.gpu_layers is not None:
        argv += ["-ngl", gpu_layers_value(tool, cfg.gpu_layers)]
    if tool.supports("--ignore-eos"):
        argv.append("--ignore-eos")
    return argv


def vanilla_argv(tool: Tool, cfg: RunConfig, prompt_args: list[str]) -> list[str]:
    argv = common_args(tool, cfg, prompt_args)
    no_cnv = tool.first_flag(*NO_CNV_FLAGS)
    if no_cnv:
        argv.append(no_cnv)
    return [*argv, *extra_args(tool, cfg)]


def speculative_argv(tool: Tool, cfg: RunConfig, prompt_args: list[str]) -> list[str]:
    argv = common_args(tool, cfg, prompt_args)
    argv += speculative_args(tool, cfg, uses_spec_type=tool.name == "llama-speculative-simple")
    return [*argv, *extra_args(tool, cfg)]


def _record(
    tool: Tool, cfg: RunConfig, mode: Mode, index: int, prompt: str, done: proc.Completed
) -> Iteration:
    if done.returncode != 0:
        raise VelobenchError(f"{tool.name} exited with code {done.returncode}: {done.stderr_tail()}")
    text = generated_text(done.stdout, prompt)
    try:
        if mode == "vanilla":
            v = parse_vanilla(done.stderr)
            if v.eval_ms <= 0 or v.eval_runs <= 0:
                raise ValueError(
                    f"eval time {v.eval_ms} ms / {v.eval_runs} runs (were timings disabled with --no-perf?)"
                )
            return Iteration(
                index=index,
                command=done.command,
                returncode=done.returncode,
                wall_ms=done.wall_s * 1000,
                load_ms=v.load_ms,
                prompt_tokens=v.prompt_tokens,
                prompt_ms=v.prompt_ms,
                ttft_ms=v.prompt_ms,
                generated_tokens=v.generated_tokens,
                decode_ms=v.eval_ms,
                tokens_per_second=v.eval_runs / v.eval_ms * 1000,
                total_time_ms=v.prompt_ms + v.eval_ms,
                output=text,
            )
        s = parse_speculative(done.stderr)
        if s.decoded_s <= 0 or s.decoded_tokens <= 0:
            raise ValueError(f"decoded {s.decoded_tokens} tokens in {s.decoded_s} s")
        prompt_ms = s.encoded_s * 1000
        decode_ms = s.decoded_s * 1000
        return Iteration(
            index=index,
            command=done.command,
            returncode=done.returncode,
            wall_ms=done.wall_s * 1000,
            load_ms=s.load_ms,
            prompt_tokens=s.encoded_tokens,
            prompt_ms=prompt_ms,
            ttft_ms=prompt_ms,
            generated_tokens=s.decoded_tokens,
            decode_ms=decode_ms,
            tokens_per_second=s.decoded_tokens / s.decoded_s,
            total_time_ms=prompt_ms + decode_ms,
            n_draft=s.n_draft,
            n_drafted=s.n_drafted,
            n_accept=s.n_accept,
            acceptance_rate=s.acceptance_rate,
            acceptance_source="cli-output",
            output=text,
        )
    except ValueError as exc:
        raise Unparsed(f"cannot parse the output of {tool.name} ({tool.version}): {exc}") from exc


@dataclass
class CliSession:
    tool: Tool
    cfg: RunConfig
    mode: Mode
    timeout_s: float | None = None

    def argv(self, prompt: str, prompt_file: Path | None = None) -> list[str]:
        """The command line; with `prompt_file` the prompt goes by file (`-f`), not on the command line."""
        if prompt_file is None:
            prompt_args = ["-p", prompt]
        else:
            flag = self.tool.first_flag(*PROMPT_FILE_FLAGS)
            if flag is None:
                raise VelobenchError(
                    f"a prompt of {len(prompt.encode())} bytes is too long for a command line and "
                    f"{self.tool.name} ({self.tool.version}) has no -f/--file to read it from a file"
                )
            prompt_args = [flag, str(prompt_file)]
        if self.tool.supports("--no-escape"):
            prompt_args.append("--no-escape")  # pass the prompt byte for byte
        build = vanilla_argv if self.mode == "vanilla" else speculative_argv
        return build(self.tool, self.cfg, prompt_args)

    def telemetry_root(self) -> tuple[int | None, bool]:
        """Each generation is a new child of velobench: read velobench's children, not velobench."""
        return os.getpid(), True

    def info(self) -> SessionInfo | None:
        return None  # one process per generation: nothing held for the mode

    def sample(
        self, prompt: Prompt, seed: int, *, top_p: float, top_k: int, temperature: float | None = None
    ) -> tuple[list[int] | None, str]:
        """One seeded generation (`--seed`, `--temp`, `--top-p`, `--top-k`) for `velobench
        lossless`: the tools print no token ids, so only its text (the speculative tools overshoot -n)."""
        extra = [*self.cfg.extra_args, "--top-p", str(top_p), "--top-k", str(top_k)]
        cfg = self.cfg.model_copy(
            update={
                "seed": seed,
                "temp": self.cfg.temp if temperature is None else temperature,
                "extra_args": extra,
            }
        )
        it = dataclasses.replace(self, cfg=cfg).generate(prompt, 0)
        return None, it.output or ""

    def generate(self, prompt: Prompt, index: int) -> Iteration:
        """One generation; run again where it exited 0 with its timing lines lost (module docstring)."""

        def run() -> proc.Completed:
            with prompt_by_file(prompt.prompt) as path:
                try:
                    return proc.run(self.argv(prompt.prompt, path), timeout_s=self.timeout_s)
                except proc.DeadlinePassed as exc:
                    raise VelobenchError(
                        f"{exc} (the deadline of one generation: raise it with --timeout)"
                    ) from exc

        return read_complete(
            run, lambda done: _record(self.tool, self.cfg, self.mode, index, prompt.prompt, done)
        )


@contextlib.contextmanager
def prompt_by_file(prompt: str) -> Iterator[Path | None]:
    """A uniquely named temp file holding `prompt` while the child runs, where the prompt is too
    long for a command line; else None. llama.cpp's -f drops one trailing newline: one is added."""
    if len(prompt.encode()) <= PROMPT_ARG_MAX_BYTES:
        yield None
        return
    fd, name = tempfile.mkstemp(prefix="velobench-prompt-", suffix=".txt")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(prompt + "\n")
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


class LlamaCliEngine(OwnsFlags):
    """llama.cpp's command-line tools, one process per generation (model loaded every time)."""

    OWNED = OWNED_FLAGS

    name = EngineName.CLI
    default_warmup = 0  # every generation loads the model anew: nothing to warm
    uses_gguf = True

    @classmethod
    def can_run(cls, cfg: RunConfig) -> str | None:
        if reason := llama_cpp_can_run(cfg):
            return reason
        if cfg.chat:
            return "--chat needs the server engine (the speculative command-line tools have no chat template)"
        return None

    @classmethod
    def available(cls, cfg: RunConfig) -> bool:
        return find_path(speculative_tool_name(cfg), llama_cpp_dir(cfg)) is not None

    def __init__(self, cfg: RunConfig, *, log_dir: Path):
        self.cfg = cfg
        self.timeout_s = generation_deadline_s(cfg)
        self.tools: dict[Mode, Tool] = {}
        spec = find_tool(speculative_tool_name(cfg), llama_cpp_dir(cfg))
        if not cfg.skip_vanilla:
            self.tools["vanilla"] = vanilla_tool(spec)  # the same build, or one line
        self.tools["speculative"] = spec
        # Fail now, before any model loads, if a needed flag is missing.
        for mode, tool in self.tools.items():
            if mode in prepared_modes(cfg):
                CliSession(tool, cfg, mode).argv(cfg.prompt)

    def use_models(self, cfg: RunConfig) -> None:
        self.cfg = cfg  # the same configuration, its models resolved to files (`RunsFiles`)

    def command_lines(self, prompt: Prompt) -> dict[str, str]:
        """What `--dry-run` prints: each mode's command line for the first prompt."""
        return {
            mode: shlex.join(CliSession(tool, self.cfg, mode).argv(prompt.prompt))
            for mode, tool in self.tools.items()
            if mode in prepared_modes(self.cfg)
        }

    def binaries(self) -> list[BinaryInfo]:
        return [binary_info(t) for t in self.tools.values()]

    def binary(self, mode: Mode) -> str:
        return self.tools[mode].name

    def side_by_side(self) -> str | None:
        return None  # a process per generation: the two modes simply alternate their processes

    @contextlib.contextmanager
    def session(self, mode: Mode) -> Iterator[CliSession]:
        yield CliSession(self.tools[mode], self.cfg, mode, self.timeout_s)
