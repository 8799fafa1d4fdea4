"""velobench.fetch: the Hub probe answers within its deadline whatever the network does."""

from __future__ import annotations

import time

import pytest

from velobench import fetch


def test_hub_probe_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    start = time.monotonic()
    assert fetch.hub_reachable() is False
    assert time.monotonic() - start < fetch.HUB_PROBE_TIMEOUT_S + 0.5


def test_hub_probe_default_endpoint_is_quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the network, asking about huggingface.co costs at most the probe timeout."""
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    start = time.monotonic()
    fetch.hub_reachable()
    assert time.monotonic() - start < fetch.HUB_PROBE_TIMEOUT_S + 0.5
