"""Pre-flight checks: every option and input file, before anything expensive runs.

`preflight(cfg, output=...)` is the first step of `runner.run.prepare`, which `run`, `demo`,
`tune`, `load` and every matrix cell go through (`matrix` also calls it for every cell before
the first one runs), before any binary lookup, build, download, model load or child process.
It checks, always in this order:

    1. the output location   not a folder (or a file, for folder outputs), its nearest existing
                             folder writable (a uniquely named temp file is created and removed
                             there; nothing is created for the output itself)
    2. --llama-cpp-path      an existing folder
    3. -x / --engine-args    each engine that may run cfg (the named one; for auto, each that can)
                             refuses the flags it owns (`check_options`: host, port, slots,
                             metrics, prompt caching, API key, models, ...), in one line naming the
                             velobench option, or the command's own reason (`hints`), instead
    4. prompts               -f read as UTF-8 text (`read_text_file`), --prompts names a known
                             set or a readable JSONL, --category/--num-prompts only with --prompts
    5. models                a GGUF path that exists, is GGUF and is complete (its header parses
                             and the file is as long as the header declares: `check_complete`),
                             a catalog name, or a well-formed hf://OWNER/REPO/FILE.gguf (GGUF
                             engines); a GGUF file given to vLLM is complete
    6. engine                the chosen engine can run this configuration (pure: no lookup)

Ranges (ports 1..65535, timeouts > 0, warm-up >= 0, ...) are `RunConfig`'s own constraints.
Models named by catalog name or hf:// are checked complete once fetched (`runner.run.fetch_model`).
`leave_nothing_behind(output)` removes, when a run fails before its result file exists, the
empty folders the run created for it (the result's folder and `<result>-logs/`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal

from velobench.errors import VelobenchError
from velobench.results.config import EngineName, RunConfig

OutputKind = Literal["file", "folder"]


# ------------------------------------------------------------------ output locations


def nearest_existing(path: Path) -> Path:
    """`path` itself if it exists, else its nearest ancestor that does (what would hold it)."""
    p = path
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def probe_writable(folder: Path, what: str) -> None:
    """Create and remove a uniquely named file in `folder`: the only honest test of writability
    (permissions, read-only mounts, /proc, full disks' inodes, ACLs all show here)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".velobench-probe-", dir=folder)
    except OSError as exc:
        raise VelobenchError(f"{what}: cannot write in {folder} ({exc.strerror or exc})") from exc
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)


def check_output_file(path: Path, what: str = "--output") -> None:
    """A result file can be written at `path`: not a folder or a device, its folder writable or creatable."""
    p = path.expanduser()
    label = f"{what} {path}"
    if p.is_dir():
        raise VelobenchError(f"{label} is a folder; give a file name, e.g. {path / 'result.json'}")
    if os.path.lexists(p) and not p.is_file():
        raise VelobenchError(f"{label} exists and is not a regular file")
    holder = nearest_existing(p.parent)
    if not holder.is_dir():
        raise VelobenchError(f"{label}: {holder} is a file, not a folder")
    probe_writable(holder, label)


def check_output_dir(path: Path, what: str = "--output") -> None:
    """A folder of results can be made at `path`: not a file, it or its nearest ancestor writable."""
    p = path.expanduser()
    label = f"{what} {path}"
    if os.path.lexists(p) and not p.is_dir():
        raise VelobenchError(f"{label} is a file; give a folder")
    holder = nearest_existing(p)
    if not holder.is_dir():
        raise VelobenchError(f"{label}: {holder} is a file, not a folder")
    probe_writable(holder, label)


def check_output(path: Path, kind: OutputKind = "file", what: str = "--output") -> None:
    (check_output_file if kind == "file" else check_output_dir)(path, what)


@contextlib.contextmanager
def leave_nothing_behind(output: Path, *, logs: Path | None = None) -> Iterator[None]:
    """On failure before `output` exists: remove the empty folders made for it since entering.

    Folders that hold anything (a server's log that explains the failure) are kept; so is
    everything that existed before.
    """
    out = output.expanduser()
    existed = {p for p in [out.parent, *out.parent.parents] if os.path.lexists(p)}
    logs_existed = logs is not None and os.path.lexists(logs)
    try:
        yield
    except BaseException:
        if not os.path.lexists(out):
            if logs is not None and not logs_existed:
                _remove_empty(logs)
            for folder in [out.parent, *out.parent.parents]:
                if folder in existed or not _remove_empty(folder):
                    break
        raise


def _remove_empty(folder: Path) -> bool:
    try:
        folder.rmdir()  # only an empty folder goes
        return True
    except OSError:
        return False


# ------------------------------------------------------------------ text inputs


def read_text_file(path: Path, what: str) -> str:
    """A text file's content as UTF-8, or one line saying why it cannot be (missing, folder, binary)."""
    try:
        return path.expanduser().read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise VelobenchError(f"{what} not found: {path}") from exc
    except IsADirectoryError as exc:
        raise VelobenchError(f"{what} {path} is a folder, not a file") from exc
    except UnicodeDecodeError as exc:
        raise VelobenchError(
            f"{what} {path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}):"
            " is it a binary file?"
        ) from exc
    except OSError as exc:
        raise VelobenchError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


# ------------------------------------------------------------------ -x / --engine-args


def check_engine_args(
    cfg: RunConfig,
    hints: Mapping[str, str] | None = None,
    why: Mapping[EngineName, str | None] | None = None,
) -> None:
    """No -x flag may override what velobench sets itself (`--host 0.0.0.0` would win otherwise):
    each engine that may run `cfg` checks its own options (`EngineClass.check_options`).

    `hints`: a command's own reason for some of those flags (`velobench load` sets `-np`);
    `why`: `engines.reasons(cfg)`, if already known.
    """
    from velobench import engines

    for name, reason in (engines.reasons(cfg) if why is None else why).items():
        if reason is None:
            engines.engine_class(name).check_options(cfg, hints)


# ------------------------------------------------------------------ prompts and models


def check_prompts(cfg: RunConfig) -> None:
    """--prompts names a known set or a readable JSONL file (read now); the filters need a set."""
    from velobench import prompts as ps

    if not cfg.prompts:
        if cfg.categories or cfg.num_prompts:
            raise VelobenchError("--category and --num-prompts select from a prompt set: add --prompts NAME")
        return
    spec = cfg.prompts
    if spec in ps.LOADERS:
        return  # a data set: fetched (and checked) when the run loads it
    if spec == "builtin" or spec.startswith("builtin:") or ps._looks_like_path(spec):
        # Built-in sets and local JSONL files are read in full now: a binary or malformed file is one line.
        ps.load_prompts(spec, num_prompts=cfg.num_prompts, seed=cfg.prompt_seed, categories=cfg.categories)
        return
    known = ", ".join(["builtin", "builtin:CATEGORY", *ps.LOADERS])
    raise VelobenchError(f"unknown prompt set {spec!r}: use one of {known}, or a JSONL file")


def check_model_spec(spec: str, what: str) -> None:
    """A GGUF model argument that can be resolved: a complete GGUF file, a catalog name, or
    hf://…/FILE.gguf.

    Nothing is downloaded: a typo in the draft is caught before the target's gigabytes arrive.
    A file is read up to the end of its header only (`gguf_info.check_complete`).
    """
    from velobench.models.catalog import _parse_hf_spec, load_catalog
    from velobench.models.gguf_info import GGUF_MAGIC_BYTES, check_complete

    if spec.startswith("hf://"):
        _, file, _ = _parse_hf_spec(spec)
        if not file.endswith(".gguf"):
            raise VelobenchError(f"{what} {spec}: an hf:// model must name a .gguf file")
        return
    path = Path(spec).expanduser()
    if path.is_dir():
        raise VelobenchError(f"{what} {spec} is a folder, not a GGUF file")
    if path.is_file():
        try:
            with path.open("rb") as f:
                magic = f.read(4)
        except OSError as exc:
            raise VelobenchError(f"cannot read {what} {spec}: {exc.strerror or exc}") from exc
        if magic != GGUF_MAGIC_BYTES:
            raise VelobenchError(f"{what} is not a GGUF file: {spec}")
        check_complete(path, what)
        return
    if spec not in load_catalog().models:
        raise VelobenchError(
            f"{what} not found: {spec} (not a file, not a catalog name: see `velobench models list`)"
        )


def uses_gguf(cfg: RunConfig) -> bool:
    """Whether the engine that will run `cfg` takes GGUF files (llama.cpp), decided without a lookup."""
    if cfg.engine is EngineName.AUTO:
        return not (cfg.server_url or cfg.baseline_url)
    return cfg.engine in (EngineName.SERVER, EngineName.CLI)


def check_model_arg(spec: str, what: str, *, gguf: bool) -> None:
    """One model argument: for engines that take GGUF files only (`gguf`), `check_model_spec`; for
    vLLM, which also takes Hugging Face ids and folders, a GGUF file must be complete."""
    from velobench.models.gguf_info import check_complete, is_gguf

    if gguf:
        check_model_spec(spec, what)
    elif is_gguf(spec):
        check_complete(spec, what)


def check_models(cfg: RunConfig) -> None:
    """Every model argument (main, draft) of an engine that loads models, whatever the method."""
    if not uses_gguf(cfg) and cfg.engine is not EngineName.VLLM:
        return  # servers velobench did not start: their models are names, not files
    for spec, what in ((cfg.main_model, "main model"), (cfg.draft_model, "draft model")):
        if spec:
            check_model_arg(spec, what, gguf=uses_gguf(cfg))


def check_engine(cfg: RunConfig, why: Mapping[EngineName, str | None] | None = None) -> list[EngineName]:
    """The engines that can run `cfg` (`engines.candidates`: the named one, or for auto at least one);
    no program is looked up. `why`: `engines.reasons(cfg)`, if already known."""
    from velobench import engines

    return engines.candidates(cfg, why)


# ------------------------------------------------------------------ all of it


def preflight(
    cfg: RunConfig,
    output: Path | None = None,
    *,
    kind: OutputKind = "file",
    hints: Mapping[str, str] | None = None,
) -> list[EngineName]:
    """Every check that needs no network, no build and no child process, in one fixed order (see
    the module docstring); the engines that can run `cfg`, for `engines.choose`.

    `output`: the result file (`kind="file"`) or the run folder (`kind="folder"`), if any;
    `hints`: the command's own reasons for owned -x flags (see `check_engine_args`).
    """
    from velobench import engines

    if output is not None:
        check_output(output, kind)
    if cfg.llama_cpp_path is not None and not Path(cfg.llama_cpp_path).expanduser().is_dir():
        raise VelobenchError(f"--llama-cpp-path {cfg.llama_cpp_path}: not a directory")
    why = engines.reasons(cfg)
    check_engine_args(cfg, hints, why)
    check_prompts(cfg)
    check_models(cfg)
    return check_engine(cfg, why)
