"""What the client clock saw of one streamed request: the raw record every latency comes from.

One `RequestTiming` per request, for every HTTP engine (llama-server, vLLM, any
OpenAI-compatible server) and every scheduler (one request at a time, load, think). Times are
seconds on one monotonic clock (`time.perf_counter()`), relative to a run's own zero, so the
records of a load level can be laid on one time axis. Every summary (TTFT, ITL, TPOT, e2e,
throughput, goodput) is recomputed from these records, never stored instead of them.

A chunk of the stream may carry several tokens (speculative decoding emits the accepted tokens
of a step together): `chunk_tokens` says how many each chunk carried where the server tells
(per-chunk usage or token ids), else 1 per chunk, and the output token count comes from the
server's `usage` (or its own accounting), never from counting chunks.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RequestTiming(BaseModel):
    """One request: when it was sent, when each chunk arrived, how many tokens, how it ended."""

    model_config = ConfigDict(extra="forbid")

    sent_s: float = Field(description="request sent (client clock, seconds from the run's zero)")
    first_token_s: float | None = Field(default=None, description="first content chunk received")
    chunk_s: list[float] = Field(default_factory=list, description="arrival time of every content chunk")
    chunk_tokens: list[int] = Field(
        default_factory=list, description="tokens each chunk carried (1 where the server does not say)"
    )
    end_s: float | None = Field(default=None, description="stream finished (last byte) or failed")
    prompt_tokens: int | None = None
    output_tokens: int | None = Field(default=None, description="from the server's usage, not chunk counts")
    finish_reason: str | None = None
    error: str | None = Field(default=None, description="why the request failed (kind: message)")

    @property
    def ok(self) -> bool:
        return self.error is None and self.first_token_s is not None

    def ttft_ms(self) -> float | None:
        """Time to first token: first content chunk − sent."""
        return None if self.first_token_s is None else (self.first_token_s - self.sent_s) * 1000

    def e2e_ms(self) -> float | None:
        """End-to-end latency: last content chunk − sent (the stream's own end where no chunk came)."""
        last = self.chunk_s[-1] if self.chunk_s else self.end_s
        return None if last is None else (last - self.sent_s) * 1000

    def tpot_ms(self) -> float | None:
        """Time per output token after the first: (last chunk − first chunk) / (tokens − 1).

        Tokens are the server's count (`output_tokens`) where known, else the chunks' sum.
        """
        n = self.output_tokens if self.output_tokens is not None else sum(self.chunk_tokens)
        if self.first_token_s is None or not self.chunk_s or n < 2:
            return None
        return (self.chunk_s[-1] - self.first_token_s) * 1000 / (n - 1)

    def itl_ms(self) -> list[float]:
        """Inter-token latencies: each gap between chunks, spread over the tokens the later chunk
        carried (a chunk of k tokens after a gap g contributes k latencies of g/k), as vLLM's own
        benchmark does with multi-token chunks."""
        out: list[float] = []
        counts = self.chunk_tokens if len(self.chunk_tokens) == len(self.chunk_s) else [1] * len(self.chunk_s)
        for (a, b), k in zip(zip(self.chunk_s, self.chunk_s[1:], strict=False), counts[1:], strict=False):
            k = max(k, 1)
            out += [(b - a) * 1000 / k] * k
        return out


class SpecDecodeDelta(BaseModel):
    """Speculative-decoding counters over one window (after − before), from a server's /metrics."""

    model_config = ConfigDict(extra="forbid")

    prefix: str
    drafts: int
    draft_tokens: int
    accepted_tokens: int
    accepted_per_position: list[int]

    def acceptance_rate(self) -> float | None:
        """accepted tokens / draft tokens (None where nothing was drafted)."""
        return self.accepted_tokens / self.draft_tokens if self.draft_tokens else None

    def mean_acceptance_length(self) -> float | None:
        """1 + accepted tokens / drafts: tokens each verification step yielded (vLLM's definition)."""
        return 1 + self.accepted_tokens / self.drafts if self.drafts else None
