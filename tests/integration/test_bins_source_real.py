"""`velobench bins vendor` and `bins build --source` on the real pinned llama.cpp tree: the tree
written without docs, models and tests (from the real sdist, sha256-checked), then CMake's real
configure step run on it into a temporary cache, under the key its content and flags give.

A full compile of even one tool from it takes minutes on 2 cores, too long for CI: the compile
step is the one `velobench bins build` runs for the sdist, which every integration run uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from velobench.bins import build
from velobench.paths import cache_dir

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def real_sdist() -> Path:
    """The pinned sdist in the real cache (found before each test's private cache is set)."""
    path = cache_dir() / "downloads" / "sdist" / build.load_recipe().sdist
    if not path.is_file():
        pytest.fail(f"no {path}: run `velobench bins build` first (.ci/run does)")
    return path


def test_vendor_then_configure_from_the_tree(cli, real_sdist: Path, isolated: Path) -> None:  # type: ignore[no-untyped-def]
    recipe = build.load_recipe()
    into = cache_dir() / "downloads" / "sdist"
    into.mkdir(parents=True)
    (into / real_sdist.name).symlink_to(real_sdist)  # no download: the file is verified by its sha256

    code, out, err = cli("bins", "vendor", "vend")
    assert code == 0, err
    vend = isolated / "vend"
    assert f"llama.cpp {recipe.commit} source tree in vend:" in out and "(without docs, models, tests)" in out
    for gone in (*build.VENDOR_EXCLUDE, ".git"):
        assert not (vend / gone).exists()
    assert (vend / "include" / "llama.h").is_file() and (vend / "tools" / "server").is_dir()
    marker = json.loads((vend / build.VENDORED_MARKER).read_text())
    assert marker["commit"] == recipe.commit and marker["sdist_sha256"] == recipe.sha256
    size = sum(p.stat().st_size for p in vend.rglob("*") if p.is_file())
    assert size < 80e6  # small enough to copy (the sdist's full tree is about 176 MB)
    mb = f"{size / 1e6:,.1f} MB"
    assert mb in out

    code, out, err = cli(
        "bins", "build", "--source", "vend", "--target", "llama-completion", "--configure-only"
    )
    assert code == 0, err
    tree = build.source_tree(vend)
    assert (tree.kind, tree.commit) == ("vendored", recipe.commit)
    key = build.build_key(tree.identity, list(recipe.cmake_args), ["llama-completion"])
    root = cache_dir() / "llama.cpp" / key
    assert f"llama.cpp configured in {root / 'build'} (nothing built)" in out.replace("\n", "")
    cmake_cache = (root / "build" / "CMakeCache.txt").read_text()
    assert f"CMAKE_HOME_DIRECTORY:INTERNAL={vend.resolve()}" in cmake_cache
    assert "LLAMA_BUILD_TESTS:BOOL=OFF" in cmake_cache  # the recipe's flags, so no tests/ is needed
    assert not (root / "build-info.json").exists()  # nothing built: nothing for `bins list` to find

    code, out, err = cli("bins", "build", "--source", "vend/ggml", "--configure-only")
    assert code == 2 and "not a llama.cpp source tree (no include/llama.h" in err and err.count("\n") == 1
