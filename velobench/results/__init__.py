"""The result file: schema (versioned pydantic models), store (atomic writes, strict loads)."""

from velobench.results.schema import *  # noqa: F403
from velobench.results.schema import load, save, write_atomic  # noqa: F401
