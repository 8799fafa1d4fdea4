"""A report as JSON: the validated result, or an array of them for a matrix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, TypeAdapter

from velobench.results.schema import Report

if TYPE_CHECKING:
    pass


def render(report: BaseModel) -> str:
    """The validated report, as `velobench run` saves it (indent 2); any result kind's model."""
    return report.model_dump_json(indent=2) + "\n"


def render_many(reports: Sequence[Report]) -> str:
    """A JSON array of the validated reports (indent 2)."""
    return TypeAdapter(list[Report]).dump_json(list(reports), indent=2).decode() + "\n"
