"""The 2025 build recipe (bins/llama_cpp_2025.toml) matches the build the 2025 fixtures came from."""

from __future__ import annotations

import re
from pathlib import Path

from velobench.bins.build import load_recipe
from velobench.bins.versions import parse_version

ROOT = Path(__file__).parents[2]
LLAMA_2025 = ROOT / "tests" / "fixtures" / "llama-2025"


def test_recipe_builds_the_fixtures_commit_and_tools() -> None:
    recipe = load_recipe(ROOT / "bins" / "llama_cpp_2025.toml")
    assert re.fullmatch(r"[0-9a-f]{64}", recipe.sha256)
    assert recipe.sdist == f"llama_cpp_python-{recipe.version}.tar.gz"
    assert recipe.commit == parse_version((LLAMA_2025 / "version.stderr").read_text()).commit
    # every tool built has its --help captured, and this tree has llama-cli, not llama-completion
    assert {f"{t}-help.txt" for t in recipe.targets} <= {p.name for p in LLAMA_2025.iterdir()}
    assert "llama-cli" in recipe.targets and "llama-completion" not in recipe.targets


def test_the_2025_build_has_its_own_cache_key() -> None:
    assert (
        load_recipe(ROOT / "bins" / "llama_cpp_2025.toml").key()
        != load_recipe(ROOT / "bins" / "llama_cpp.toml").key()
    )
