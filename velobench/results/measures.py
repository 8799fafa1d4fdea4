"""Summary and Ratio: the statistics every result kind stores (computed by `analysis.stats`).

Every statistic that is undefined for the data at hand is `None`, never NaN or infinity,
so these models always serialize to valid JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # numpy and scipy are imported where used: `velobench --help` needs neither
    pass


class Summary(BaseModel):
    """Descriptive statistics of one set of samples (see `summarize`)."""

    model_config = ConfigDict(extra="forbid")

    n: int
    mean: float
    stddev: float | None
    min: float
    max: float
    median: float
    ci95_low: float | None
    ci95_high: float | None
    samples: list[float]

    def cv(self) -> float | None:
        """Coefficient of variation s / |x̄|; None when s is undefined (n == 1) or x̄ == 0.

        The absolute value keeps it a non-negative measure of spread (throughputs are > 0).
        A plain method, so it is not serialized.
        """
        if self.stddev is None or self.mean == 0:
            return None
        return self.stddev / abs(self.mean)


class Ratio(BaseModel):
    """Ratio of two means with its uncertainty and a test of difference (see `ratio_of_means`)."""

    model_config = ConfigDict(extra="forbid")

    ratio: float
    stddev: float | None
    ci95_low: float | None
    ci95_high: float | None
    ci_method: str = "fieller"
    p_value: float | None
    n_a: int
    n_b: int
