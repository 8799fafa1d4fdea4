"""A report as CSV: one row per mode (and per category and mode), for spreadsheets."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from velobench.analysis.summaries import category_mean_length
from velobench.report import fmt
from velobench.results.measures import Ratio, Summary
from velobench.results.schema import Report

if TYPE_CHECKING:
    pass


CSV_COLUMNS: tuple[str, ...] = (
    "timestamp",
    "main_model",
    "draft_model",
    "method",
    "engine",
    "n_draft",
    "draft_p_min",
    "row",
    "category",
    "mode",
    "n_prompts",
    "n",
    "tokens_per_second_mean",
    "tokens_per_second_stddev",
    "tokens_per_second_median",
    "tokens_per_second_min",
    "tokens_per_second_max",
    "tokens_per_second_ci95_low",
    "tokens_per_second_ci95_high",
    "ttft_ms_mean",
    "ttft_ms_stddev",
    "total_time_ms_mean",
    "total_time_ms_stddev",
    "e2e_ms_mean",
    "tpot_ms_mean",
    "itl_p50_ms_mean",
    "itl_p99_ms_mean",
    "drafted",
    "accepted",
    "acceptance_rate",
    "mean_acceptance_length",
    "speedup",
    "speedup_stddev",
    "speedup_ci95_low",
    "speedup_ci95_high",
    "speedup_p_value",
    "speedup_estimator",
    "ratio_of_means",
    "ratio_of_means_stddev",
    "ratio_of_means_ci95_low",
    "ratio_of_means_ci95_high",
    "ratio_of_means_p_value",
)


def _tps_cols(s: Summary | None) -> dict[str, Any]:
    if s is None:
        return {}
    return {
        "n": s.n,
        "tokens_per_second_mean": s.mean,
        "tokens_per_second_stddev": s.stddev,
        "tokens_per_second_median": s.median,
        "tokens_per_second_min": s.min,
        "tokens_per_second_max": s.max,
        "tokens_per_second_ci95_low": s.ci95_low,
        "tokens_per_second_ci95_high": s.ci95_high,
    }


def _speedup_cols(r: Ratio | None, rom: Ratio | None) -> dict[str, Any]:
    """The headline speedup `r` (paired where pairs exist) as `speedup*`, with its estimator,
    and the ratio of means `rom` beside it as `ratio_of_means*`."""
    out: dict[str, Any] = {}
    if r is not None:
        out |= {
            "speedup": r.ratio,
            "speedup_stddev": r.stddev,
            "speedup_ci95_low": r.ci95_low,
            "speedup_ci95_high": r.ci95_high,
            "speedup_p_value": r.p_value,
            "speedup_estimator": "paired" if r.ci_method == fmt.PAIRED else "ratio-of-means",
        }
    if rom is not None:
        out |= {
            "ratio_of_means": rom.ratio,
            "ratio_of_means_stddev": rom.stddev,
            "ratio_of_means_ci95_low": rom.ci95_low,
            "ratio_of_means_ci95_high": rom.ci95_high,
            "ratio_of_means_p_value": rom.p_value,
        }
    return out


def _mean(s: Summary | None) -> float | None:
    return s.mean if s else None


def _csv_rows(report: Report) -> Iterator[dict[str, Any]]:
    cfg = report.config
    base = {
        "timestamp": report.timestamp,
        "main_model": cfg.main_model,
        "draft_model": cfg.draft_model,
        "method": cfg.method.value,
        "engine": cfg.engine,
        "n_draft": cfg.n_draft,
        "draft_p_min": cfg.draft_p_min,
    }
    for m in (report.vanilla, report.speculative):
        if m is None or not m.iterations:
            continue
        acc = m.acceptance
        yield {
            **base,
            "row": "mode",
            "mode": m.mode,
            **_tps_cols(m.tokens_per_second),
            "ttft_ms_mean": _mean(m.time_to_first_token_ms),
            "ttft_ms_stddev": m.time_to_first_token_ms.stddev if m.time_to_first_token_ms else None,
            "total_time_ms_mean": _mean(m.total_time_ms),
            "total_time_ms_stddev": m.total_time_ms.stddev if m.total_time_ms else None,
            "e2e_ms_mean": _mean(m.e2e_ms),
            "tpot_ms_mean": _mean(m.tpot_ms),
            "itl_p50_ms_mean": _mean(m.itl_p50_ms),
            "itl_p99_ms_mean": _mean(m.itl_p99_ms),
            **(
                {
                    "drafted": acc.drafted,
                    "accepted": acc.accepted,
                    "acceptance_rate": acc.rate,
                    "mean_acceptance_length": acc.mean_length,
                }
                if acc
                else {}
            ),
            **(
                _speedup_cols(report.speedup_detail, report.ratio_of_means) if m.mode == "speculative" else {}
            ),
        }
    for c in report.categories:
        for mode, s in (
            ("vanilla", c.baseline_tokens_per_second),
            ("speculative", c.candidate_tokens_per_second),
        ):
            if s is None:
                continue
            extra: dict[str, Any] = {}
            if mode == "speculative":
                extra = {
                    "acceptance_rate": c.acceptance_rate,
                    "mean_acceptance_length": category_mean_length(report, c.category),
                    **_speedup_cols(c.headline, c.speedup),
                }
            yield {
                **base,
                "row": "category",
                "category": c.category,
                "mode": mode,
                "n_prompts": c.n_prompts,
                **_tps_cols(s),
                **extra,
            }


def render_many(reports: Sequence[Report]) -> str:
    """One header (CSV_COLUMNS, a stable order), then the rows of every report; empty = undefined."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for report in reports:
        writer.writerows(_csv_rows(report))
    return buf.getvalue()


def render(report: Report) -> str:
    """A row per measured mode (tokens/s summary, TTFT, total time, streaming latencies,
    acceptance; the speculative row carries the speedup), then a row per category and mode."""
    return render_many([report])
