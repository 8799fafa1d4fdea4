"""A GGUF file converted once into a Hugging Face folder that vLLM can serve.

vLLM serves Hugging Face folders (config.json, tokenizer files, safetensors); velobench's
catalog holds GGUF files. So that one catalog serves both engines offline, a GGUF is converted
once, dequantized to bf16, into `<cache>/hf-from-gguf/<sha256[:16]>/` and reused from then on.

The conversion runs as a child process (`gguf_to_hf_child.py`) with the vLLM environment's
Python, where torch, transformers, gguf and accelerate live. Its output is written to a
`.partial` folder, `velobench-conversion.json` (source file, its sha256, the versions that
converted it) is written into it last, and the folder is renamed into place: a folder with
that file is complete, a `.partial` one never is and is redone.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from velobench.errors import VelobenchError
from velobench.fetch import sha256_file
from velobench.paths import cache_dir

MARKER = "velobench-conversion.json"
LOG_NAME = "convert.log"
CHILD = Path(__file__).with_name("gguf_to_hf_child.py")
DEFAULT_TIMEOUT_S = 3600.0

DType = Literal["bfloat16", "float16", "float32"]


class ConvertedModel(BaseModel):
    """Where a Hugging Face folder came from: recorded beside it and in results that use it."""

    model_config = ConfigDict(extra="forbid")

    path: str  # the Hugging Face folder vLLM serves
    source: str  # the GGUF file it was converted from (as given, resolved)
    source_name: str
    source_sha256: str
    source_size: int
    dtype: DType
    architectures: list[str]
    model_type: str
    parameters: int
    versions: dict[str, str | None]  # torch, transformers, gguf, accelerate, safetensors
    seconds: float
    finished: str


def converted_root() -> Path:
    return cache_dir() / "hf-from-gguf"


def folder_for(digest: str, dtype: DType = "bfloat16") -> Path:
    """`<cache>/hf-from-gguf/<sha256[:16]>/` (bf16), or `.../<sha256[:16]>-<dtype>/` for another dtype."""
    name = digest[:16] if dtype == "bfloat16" else f"{digest[:16]}-{dtype}"
    return converted_root() / name


def read_converted(folder: Path) -> ConvertedModel | None:
    """The conversion recorded in `folder`, or None if the folder is not a finished conversion."""
    try:
        return ConvertedModel.model_validate_json((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def find_converted(
    gguf: Path, *, digest: str | None = None, dtype: DType = "bfloat16"
) -> ConvertedModel | None:
    """A finished conversion of `gguf` (matched by its sha256), or None."""
    digest = digest or sha256_file(gguf)
    done = read_converted(folder_for(digest, dtype))
    return done if done is not None and done.source_sha256 == digest else None


def parse_child_facts(stdout: str) -> dict[str, object]:
    """The JSON object the child prints as its last non-empty line."""
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    try:
        facts = json.loads(lines[-1])
    except (IndexError, ValueError) as exc:
        raise ValueError(f"conversion printed no result line: {stdout[-200:]!r}") from exc
    if not isinstance(facts, dict):
        raise ValueError(f"conversion result is not an object: {lines[-1][:200]!r}")
    return facts


def convert_gguf(
    gguf: Path,
    python: Path,
    *,
    env: Mapping[str, str] | None = None,
    dtype: DType = "bfloat16",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    log: Callable[[str], None] = print,
) -> ConvertedModel:
    """Convert `gguf` with `python` (the vLLM environment's interpreter) unless already done.

    `env` is the child's environment (vllm_env.child_env(): HF_HOME in velobench's cache,
    offline). Raises VelobenchError with the child's last lines when it fails.
    """
    gguf = gguf.expanduser().resolve()
    if not gguf.is_file():
        raise VelobenchError(f"{gguf}: no such GGUF file")
    size = gguf.stat().st_size
    digest = sha256_file(gguf)
    final = folder_for(digest, dtype)
    done = read_converted(final)
    if done is not None and done.source_sha256 == digest:
        return done
    final.parent.mkdir(parents=True, exist_ok=True)
    with (final.parent / f"{final.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = read_converted(final)  # another process may have finished it while we waited
        if done is not None and done.source_sha256 == digest:
            return done
        return _convert(gguf, size, digest, final, python, env, dtype, timeout_s, log)


def _convert(
    gguf: Path,
    size: int,
    digest: str,
    final: Path,
    python: Path,
    env: Mapping[str, str] | None,
    dtype: DType,
    timeout_s: float,
    log: Callable[[str], None],
) -> ConvertedModel:
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(final, ignore_errors=True)  # a folder without a marker is not ours to trust
    partial.mkdir(parents=True)
    log_file = partial / LOG_NAME
    argv = [str(python), "-I", str(CHILD), str(gguf), str(partial), "--dtype", dtype]
    log(f"converting {gguf.name} to a Hugging Face folder ({dtype}) in {final}")
    started = time.monotonic()
    lines: list[str] = []
    with log_file.open("w") as logf:
        logf.write(" ".join(argv) + "\n")
        p = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
        watchdog = threading.Timer(timeout_s, p.kill)  # a hung child cannot hang velobench
        watchdog.start()
        try:
            assert p.stdout is not None
            for raw in p.stdout:
                line = raw.decode("utf-8", errors="replace")
                logf.write(line)
                lines.append(line)
            rc = p.wait()
        finally:
            watchdog.cancel()
            if p.poll() is None:
                p.kill()
                p.wait()
    if time.monotonic() - started >= timeout_s:
        raise VelobenchError(f"converting {gguf.name} took longer than {timeout_s:.0f} s; see {log_file}")
    if rc != 0:
        tail = " | ".join(ln.strip() for ln in lines if ln.strip())[-300:] or "(no output)"
        raise VelobenchError(f"converting {gguf.name} failed (exit {rc}); see {log_file}: {tail}")
    try:
        facts = parse_child_facts("".join(lines))
    except ValueError as exc:
        raise VelobenchError(f"converting {gguf.name}: {exc}") from exc
    info = ConvertedModel(
        path=str(final),
        source=str(gguf),
        source_name=gguf.name,
        source_sha256=digest,
        source_size=size,
        dtype=dtype,
        architectures=[str(a) for a in facts.get("architectures", [])],  # type: ignore[attr-defined]
        model_type=str(facts.get("model_type", "")),
        parameters=int(facts.get("parameters", 0)),  # type: ignore[call-overload]
        versions={str(k): (None if v is None else str(v)) for k, v in facts.get("versions", {}).items()},  # type: ignore[attr-defined]
        seconds=round(time.monotonic() - started, 1),
        finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    tmp = partial / (MARKER + ".tmp")
    tmp.write_text(info.model_dump_json(indent=2) + "\n")
    os.replace(tmp, partial / MARKER)
    os.replace(partial, final)
    log(f"converted {gguf.name} in {info.seconds} s")
    return info


def main(argv: list[str] | None = None) -> int:
    """`python -m velobench.models.convert GGUF`: convert with velobench's vLLM env, print the folder."""
    from velobench.bins import vllm_env

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m velobench.models.convert GGUF", file=sys.stderr)
        return 2
    try:
        install = vllm_env.locate()
        if install.python is None:
            raise VelobenchError(f"cannot tell which Python runs {install.bin}")
        done = convert_gguf(Path(args[0]), install.python, env=vllm_env.child_env(install))
    except VelobenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(done.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
