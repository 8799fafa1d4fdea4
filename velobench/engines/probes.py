"""The target model's candidates after a prefix, asked of a server (losslessness at temperature 0).

    llama-server   POST /completion {"prompt": [TEXT, id, id, ...], "n_predict": 1, "n_probs": K}
                   → completion_probabilities[0].top_logprobs (the model's own softmax, before sampling)
    vLLM, OpenAI   POST /tokenize the prompt, then POST /v1/completions {"prompt": [ids], "max_tokens": 1,
                   "logprobs": K, "return_tokens_as_token_ids": true} → choices[0].logprobs.top_logprobs[0]

The bodies and parsers are `engines.dialects`'. llama.cpp's cli tools print no probabilities:
their divergences stay unclassified (`analysis.lossless`).
"""

from __future__ import annotations

from collections.abc import Sequence

from velobench.engines import dialects
from velobench.engines.base import ServerHandle
from velobench.engines.http_client import HttpClient, RequestFailed
from velobench.errors import VelobenchError

N_PROBS = 20


def target_candidates(
    handle: ServerHandle, client: HttpClient, prompt: str, prefix: Sequence[int], n_probs: int = N_PROBS
) -> list[tuple[int, str, float]]:
    """(id, text, logprob) of the `n_probs` tokens the server's model ranks highest after `prompt`
    followed by the token ids `prefix`, best first. One line (VelobenchError) where it cannot."""
    try:
        if handle.endpoint == "native":
            answer = client.post_json(
                dialects.PATHS["native"], dialects.native_probe_body(prompt, prefix, n_probs)
            )
            return dialects.native_candidates(answer)
        if handle.endpoint == "chat":
            raise VelobenchError(
                "the target's probabilities are read on the completions endpoint, not with --chat"
            )
        ids = dialects.token_ids(
            client.post_json(
                dialects.TOKENIZE,
                {"model": handle.model, "prompt": prompt, "add_special_tokens": True},
            )
        )
        answer = client.post_json(
            dialects.PATHS["completions"], dialects.openai_probe_body(handle.model, [*ids, *prefix], n_probs)
        )
        return dialects.openai_candidates(answer)
    except (RequestFailed, ValueError) as exc:
        raise VelobenchError(f"{handle.name} gave no probabilities at the divergence: {exc}") from exc
