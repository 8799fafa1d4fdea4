"""The engines velobench can run, by name (the one enum; `engines.make` maps names to modules)."""

from __future__ import annotations

from enum import StrEnum


class EngineName(StrEnum):
    AUTO = "auto"  # the first registered engine that can run the configuration and is installed
    SERVER = "server"  # llama-server, one per mode, every generation a streamed request
    CLI = "cli"  # llama.cpp's command-line tools, one process per generation
    VLLM = "vllm"  # vLLM's OpenAI-compatible server, one per mode
    REMOTE = "remote"  # a server velobench did not start (--server-url, --baseline-url)
