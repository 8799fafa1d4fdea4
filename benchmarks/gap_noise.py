"""Gap noise: how far the target's top-two gap moves between single-token decode and a batched
evaluation of the same positions (the noise `analysis.lossless.NEAR_TIE_NATS` must cover).

    python benchmarks/gap_noise.py MODEL.gguf PORT N_TOKENS OUT.json   (STRIDE=8: every 8th prompt)

A llama-server (stdin closed, -t 1) generates N_TOKENS at temperature 0 with n_probs 2 (single-
token decode); each position is then re-asked as prompt + prefix in one batch (n_predict 1,
cache_prompt false). OUT.json holds both top twos per position; `gap_shifts` and
`margin_from_shifts` read them (tests/fixtures/lossless/gap-noise-*.json).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import httpx

from velobench.bins.locate import find_path
from velobench.prompts import load_builtin


def _top2(probs: list[dict[str, Any]]) -> list[tuple[int, float]]:
    return [(t["id"], t["logprob"]) for t in probs[:2]]


def main() -> None:
    model, port, ntok, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    stride = int(os.environ.get("STRIDE", "8"))
    found = find_path("llama-server")
    if found is None:
        sys.exit("no llama-server found (velobench bins build)")
    argv = [str(found[0]), "-m", model, "--port", str(port), "-t", "1", "-c", "2048", "-np", "1"]
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        client = httpx.Client(timeout=300)
        rows = []
        for pr in load_builtin()[::stride]:
            ptoks = client.post(base + "/tokenize", json={"content": pr.prompt, "add_special": True}).json()[
                "tokens"
            ]
            body = {"prompt": ptoks, "n_predict": ntok, "temperature": 0, "n_probs": 2, "cache_prompt": False}
            cps = client.post(base + "/completion", json=body).json()["completion_probabilities"]
            gen = [cp["id"] for cp in cps]
            for i, cp in enumerate(cps):
                again = {
                    "prompt": ptoks + gen[:i],
                    "n_predict": 1,
                    "temperature": 0,
                    "n_probs": 2,
                    "cache_prompt": False,
                }
                answer = client.post(base + "/completion", json=again).json()
                batched = _top2(answer["completion_probabilities"][0]["top_logprobs"])
                rows.append(
                    {"prompt": pr.id, "pos": i, "single": _top2(cp["top_logprobs"]), "batched": batched}
                )
            print(pr.id, len(cps), file=sys.stderr, flush=True)
        result = {"model": os.path.basename(model), "load": os.getloadavg(), "rows": rows}
        with open(out, "w") as f:
            json.dump(result, f)
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
