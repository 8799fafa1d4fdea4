"""`velobench bins build --source DIR`: which trees are llama.cpp trees, their commit, the cache key
(small constructed trees and real git repositories; the real vendored tree is in
tests/integration/test_bins_source_real.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from velobench.bins import build
from velobench.errors import VelobenchError


def tree(root: Path) -> Path:
    for rel in build._TREE_SIGNATURE:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"# {rel}\n")
    (root / "src").mkdir()
    (root / "src" / "llama.cpp").write_text("int x;\n")
    return root


def test_not_a_directory_and_not_a_llama_tree(tmp_path: Path) -> None:
    with pytest.raises(VelobenchError, match=r"^--source nowhere: not a directory$"):
        build.source_tree(Path("nowhere"))
    (tmp_path / "CMakeLists.txt").write_text("")
    with pytest.raises(VelobenchError) as err:
        build.source_tree(tmp_path)
    msg = str(err.value)
    assert "not a llama.cpp source tree (no include/llama.h, ggml/CMakeLists.txt)" in msg and "\n" not in msg


def test_a_plain_tree_is_named_by_its_content(tmp_path: Path) -> None:
    t = build.source_tree(tree(tmp_path / "a"))
    assert t.kind == "tree" and t.commit_from == "content hash" and t.commit == f"tree-{t.identity[:12]}"
    # the same files elsewhere: the same identity; build folders, .git pointers and the marker aside
    b = tree(tmp_path / "b")
    (b / "build" / "bin").mkdir(parents=True)
    (b / "build" / "bin" / "llama-server").write_text("binary")
    (b / ".git").write_text("gitdir: ../../.git/modules/vendor/llama.cpp\n")
    assert build.source_tree(b).identity == t.identity
    (b / "src" / "llama.cpp").write_text("int y;\n")  # one byte changed: another tree
    assert build.source_tree(b).identity != t.identity
    (b / "src" / "llama.cpp").write_text("int x;\n")
    (b / "src" / "new.cpp").write_text("")  # one file more: another tree
    assert build.source_tree(b).identity != t.identity


def test_the_vendored_marker_names_the_commit_and_commit_overrides(tmp_path: Path) -> None:
    t = tree(tmp_path / "v")
    plain = build.source_tree(t)
    (t / build.VENDORED_MARKER).write_text(json.dumps({"commit": "0c1e570"}))
    v = build.source_tree(t)
    assert (v.kind, v.commit, v.commit_from) == ("vendored", "0c1e570", build.VENDORED_MARKER)
    assert v.identity == plain.identity  # the key still hashes the content
    given = build.source_tree(t, "my-fork-1")
    assert (given.commit, given.commit_from, given.identity) == ("my-fork-1", "--commit", plain.identity)
    with pytest.raises(VelobenchError, match="--commit must not be empty"):
        build.source_tree(t, " ")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_git_checkout_is_named_by_its_commit_and_dirty_changes(tmp_path: Path) -> None:
    t = tree(tmp_path / "g")
    env = ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(t)], check=True)
    subprocess.run(["git", "-C", str(t), "add", "."], check=True)
    subprocess.run(["git", *env, "-C", str(t), "commit", "-qm", "x"], check=True)
    rev = subprocess.run(
        ["git", "-C", str(t), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    clean = build.source_tree(t)
    assert (clean.kind, clean.commit, clean.identity, clean.commit_from) == ("git", rev, rev, "git")
    (t / "src" / "llama.cpp").write_text("int changed;\n")
    dirty = build.source_tree(t)
    assert dirty.commit == f"{rev}-dirty" and dirty.identity.startswith(rev + "+") and dirty.identity != rev
    # a llama.cpp tree inside someone else's repository is not named by that repository's commit
    inner = tree(t / "vendor" / "llama.cpp")
    assert build.source_tree(inner).kind == "tree"


def test_the_key_hashes_identity_arguments_and_targets() -> None:
    base = build.build_key("abc", ["-DX=1"], ["llama-server"])
    assert len(base) == 16
    assert build.build_key("abd", ["-DX=1"], ["llama-server"]) != base
    assert build.build_key("abc", ["-DX=1", "-DGGML_CUDA=ON"], ["llama-server"]) != base
    assert build.build_key("abc", ["-DX=1"], ["llama-server", "llama-bench"]) != base
    recipe = build.load_recipe()
    # the sdist build's key is what it always was (existing builds are still found)
    assert (
        recipe.key()
        == recipe.key((), recipe.targets)
        == build.build_key(recipe.sha256, list(recipe.cmake_args), recipe.targets)
    )
    assert recipe.key((), ["llama-server"]) != recipe.key()


@pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("c++") is None, reason="needs a compiler")
def test_a_finished_source_build_is_found_not_redone(tmp_path: Path) -> None:
    t = tree(tmp_path / "t")
    tr = build.source_tree(t)
    recipe = build.load_recipe()
    key = build.build_key(tr.identity, list(recipe.cmake_args), ["llama-server"])
    root = build.builds_root() / key
    root.mkdir(parents=True)
    (root / "build-info.json").write_text("{}")
    assert build.build(source=t, targets=["llama-server"]) == root / "build" / "bin"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"compat": "2025", "source": Path(".")}, "--compat builds its own pinned sdist: drop --source"),
        ({"commit": "abc"}, "--commit names the commit of a --source tree: give --source DIR"),
    ],
)
def test_conflicting_build_options(kw: dict[str, object], message: str) -> None:
    if shutil.which("cmake") is None or shutil.which("c++") is None:
        pytest.skip("needs a compiler")
    with pytest.raises(VelobenchError, match=message):
        build.build(**kw)  # type: ignore[arg-type]


def test_vendor_refuses_a_folder_with_files(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("")
    with pytest.raises(VelobenchError, match="exists and is not an empty folder"):
        build.export_source(tmp_path / "out")
