"""GGUF → Hugging Face folder, run by models/convert.py with the vLLM environment's Python.

This file is executed as a script by an interpreter that has torch, transformers, gguf and
accelerate (velobench's vLLM environment), so it imports nothing from velobench. Recipe
(../shared/reference/vllm-cpu.md): load the GGUF dequantized to `dtype`; such a model cannot be
`save_pretrained` as is ("quantized with QuantizationMethod.GGUF and is not serializable"),
so drop `config.quantization_config`, build a fresh model from the config, load the first
model's state_dict into it (every key must match), then save model and tokenizer.

    python gguf_to_hf_child.py GGUF OUT_DIR [--dtype bfloat16]

Prints progress lines, then one JSON line (versions and facts) last.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import sys
import time
from pathlib import Path


def _version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def convert(gguf: Path, out: Path, dtype_name: str) -> dict[str, object]:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    dtype = getattr(torch, dtype_name)
    folder, name = str(gguf.parent), gguf.name
    t0 = time.monotonic()
    print(f"tokenizer from {name}", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    print(f"weights from {name}, dequantized to {dtype_name}", flush=True)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=dtype)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = dtype
    fresh = AutoModelForCausalLM.from_config(config, dtype=dtype)
    state = loaded.state_dict()
    result = fresh.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("rotary_emb.inv_freq")]
    if missing or result.unexpected_keys:
        raise SystemExit(
            f"state_dict mismatch: missing {missing[:5]} unexpected {list(result.unexpected_keys)[:5]}"
        )
    if fresh.config.tie_word_embeddings:
        fresh.tie_weights()
    print(f"saving to {out}", flush=True)
    fresh.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {
        "architectures": list(config.architectures or []),
        "model_type": config.model_type,
        "parameters": sum(p.numel() for p in fresh.parameters()),
        "tensors": len(state),
        "dtype": dtype_name,
        "seconds": round(time.monotonic() - t0, 1),
        "versions": {n: _version(n) for n in ("torch", "transformers", "gguf", "accelerate", "safetensors")},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    args = ap.parse_args()
    facts = convert(args.gguf, args.out, args.dtype)
    print(json.dumps(facts), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
