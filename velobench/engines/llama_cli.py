"""Engine: llama.cpp's command-line tools, one process per generation.

    vanilla      llama-completion -no-cnv --ignore-eos                (perf lines: prompt eval, eval)
    draft        llama-speculative-simple -md D --spec-type draft-simple   (or llama-speculative)
    lookup       llama-lookup                                          (prompt lookup / n-gram cache)
    ngram-*      llama-speculative-simple --spec-type ngram-*          (no draft model)

Tokens/s has one definition for both modes: tokens produced in the decode phase divided by
the decode phase's time. For llama-completion that is `eval runs / eval time` (the first token
is sampled from the prompt's logits, inside prompt eval); for the speculative tools it is the
`decoded N tokens in S seconds` line, whose time covers drafting and verifying all N tokens.
TTFT for this engine is the prompt-evaluation time the tool reports (no streaming here).
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from velobench import proc
from velobench.bins.locate import Tool, find_path, find_tool
from velobench.config import Method, RunConfig, SpecImpl
from velobench.engines.llama_args import binary_info, llama_cpp_can_run, llama_cpp_dir, speculative_args
from velobench.engines.llama_output import generated_text, parse_speculative, parse_vanilla
from velobench.engines.names import EngineName
from velobench.errors import VelobenchError
from velobench.prompts import Prompt
from velobench.results.schema import BinaryInfo, Iteration, Mode, SessionInfo

NO_CNV_FLAGS = ("-no-cnv", "--no-conversation")


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
        argv += ["-ngl", cfg.gpu_layers]
    if tool.supports("--ignore-eos"):
        argv.append("--ignore-eos")
    return argv


def vanilla_argv(tool: Tool, cfg: RunConfig, prompt_args: list[str]) -> list[str]:
    argv = common_args(tool, cfg, prompt_args)
    no_cnv = tool.first_flag(*NO_CNV_FLAGS)
    if no_cnv:
        argv.append(no_cnv)
    return [*argv, *cfg.extra_args]


def speculative_argv(tool: Tool, cfg: RunConfig, prompt_args: list[str]) -> list[str]:
    argv = common_args(tool, cfg, prompt_args)
    argv += speculative_args(tool, cfg, uses_spec_type=tool.name == "llama-speculative-simple")
    return [*argv, *cfg.extra_args]


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
            output=text,
        )
    except ValueError as exc:
        raise VelobenchError(f"cannot parse the output of {tool.name} ({tool.version}): {exc}") from exc


@dataclass
class CliSession:
    tool: Tool
    cfg: RunConfig
    mode: Mode
    timeout_s: float | None = None

    def argv(self, prompt: str) -> list[str]:
        prompt_args = ["-p", prompt]
        if self.tool.supports("--no-escape"):
            prompt_args.append("--no-escape")  # pass the prompt byte for byte
        build = vanilla_argv if self.mode == "vanilla" else speculative_argv
        return build(self.tool, self.cfg, prompt_args)

    def telemetry_root(self) -> tuple[int | None, bool]:
        """Each generation is a new child of velobench: read velobench's children, not velobench."""
        return os.getpid(), True

    def info(self) -> SessionInfo | None:
        return None  # one process per generation: nothing held for the mode

    def generate(self, prompt: Prompt, index: int) -> Iteration:
        done = proc.run(self.argv(prompt.prompt), timeout_s=self.timeout_s)
        return _record(self.tool, self.cfg, self.mode, index, prompt.prompt, done)


class LlamaCliEngine:
    """llama.cpp's command-line tools, one process per generation (model loaded every time)."""

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
        self.timeout_s = cfg.timeout
        self.tools: dict[Mode, Tool] = {}
        where = llama_cpp_dir(cfg)
        if not cfg.skip_vanilla:
            self.tools["vanilla"] = find_tool("llama-completion", where)
        self.tools["speculative"] = find_tool(speculative_tool_name(cfg), where)
        # Fail now, before any model loads, if a needed flag is missing.
        for mode, tool in self.tools.items():
            CliSession(tool, cfg, mode).argv(cfg.prompt)

    def command_lines(self, prompt: Prompt) -> dict[str, str]:
        """What `--dry-run` prints: each mode's command line for the first prompt."""
        return {
            mode: shlex.join(CliSession(tool, self.cfg, mode).argv(prompt.prompt))
            for mode, tool in self.tools.items()
        }

    def binaries(self) -> list[BinaryInfo]:
        return [binary_info(t) for t in self.tools.values()]

    def binary(self, mode: Mode) -> str:
        return self.tools[mode].name

    @contextlib.contextmanager
    def session(self, mode: Mode) -> Iterator[CliSession]:
        yield CliSession(self.tools[mode], self.cfg, mode, self.timeout_s)
