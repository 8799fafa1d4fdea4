"""One measured HTTP generation → Iteration (engines.http_session.record), on captured server output."""

from __future__ import annotations

from pathlib import Path

import pytest

from velobench.engines import metrics
from velobench.engines.http_client import StreamResult
from velobench.engines.http_session import record, server_phases
from velobench.results.config import RunConfig
from velobench.results.timing import RequestTiming

VLLM = Path(__file__).parents[1] / "fixtures" / "vllm"


def scrape(name: str) -> dict[metrics.SampleKey, float]:
    return metrics.parse((VLLM / name).read_text())


def burst(n: int) -> StreamResult:
    """A stream the client read all at once (it was descheduled while the server generated)."""
    times = [1.0 + k * 1e-5 for k in range(n)]
    timing = RequestTiming(
        sent_s=0.0,
        first_token_s=times[0],
        chunk_s=times,
        chunk_tokens=[1] * n,
        end_s=times[-1],
        output_tokens=n,
    )
    return StreamResult(timing=timing, text="x" * n)


def test_vllms_own_decode_time_beats_a_client_that_fell_behind() -> None:
    before, after = scrape("metrics-vanilla-before.txt"), scrape("metrics-vanilla-after.txt")
    phases = server_phases(before, after)
    assert phases is not None
    prefill_ms, decode_ms = phases
    assert prefill_ms > 0
    assert decode_ms == pytest.approx(2921.208771000238)  # vllm:request_decode_time_seconds_sum, one request
    it = record(RunConfig(main_model="m", draft_model="d"), "vanilla", 1, burst(128), before, after)
    assert it.decode_ms == pytest.approx(decode_ms)
    assert it.tokens_per_second == pytest.approx(127 / decode_ms * 1000)  # not 127 tokens in 1.3 ms


def test_without_server_timings_the_client_clock_is_used() -> None:
    it = record(RunConfig(main_model="m", draft_model="d"), "vanilla", 1, burst(11), None, None)
    assert it.tokens_per_second == pytest.approx(10 / (10 * 1e-5))
    assert server_phases(scrape("metrics-vanilla-before.txt"), scrape("metrics-vanilla-before.txt")) is None
