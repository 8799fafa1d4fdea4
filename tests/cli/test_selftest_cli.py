"""`velobench selftest loadgen` against the real loopback server (a child process), small numbers."""

from __future__ import annotations

import re
from collections.abc import Callable

from tests.conftest import CliResult

CHUNKS = 5


def rows(table: str) -> list[list[str]]:
    """The body rows of a rich table as cells (box-drawing `│` separates them)."""
    return [
        [cell.strip() for cell in line.strip("│ ").split("│")]
        for line in table.splitlines()
        if line.startswith("│")
    ]


def test_loadgen_prints_a_consistent_ceiling_per_concurrency(cli: Callable[..., CliResult]) -> None:
    code, out, err = cli(
        "selftest",
        "loadgen",
        "--concurrency",
        "4,1",
        "--requests",
        "40",
        "--chunks",
        str(CHUNKS),
        "--no-vllm",
    )
    assert code == 0, err
    assert "load generator ceiling" in out and "requests/s" in out and "chunks/s" in out
    table = rows(out)
    assert [r[0] for r in table] == ["1", "4"]  # sorted, one row per level
    for concurrency, req_s, chunks_s, cpu, errors, in_flight in table:
        requests_per_s, chunks_per_s = float(req_s), float(chunks_s)
        assert requests_per_s > 0
        # every response streams CHUNKS content chunks: chunks/s = requests/s × CHUNKS (both rounded)
        assert abs(chunks_per_s - CHUNKS * requests_per_s) <= 0.5 + CHUNKS * 0.5, (req_s, chunks_s)
        m = re.fullmatch(r"([\d.]+) ms", cpu)
        assert m and float(m.group(1)) > 0, cpu
        assert errors == "0"
        assert 1 <= int(in_flight) <= int(concurrency)
    assert re.search(
        r"^vllm: not run \(--no-vllm\); (found on PATH|found in velobench's environment|not found) ",
        out,
        re.M,
    ), out
    assert "1 generator process" in out  # auto, on a machine of fewer than 8 cores (or as given)


def test_loadgen_prints_the_generators_lag_per_concurrency_and_the_ceiling(
    cli: Callable[..., CliResult],
) -> None:
    code, out, err = cli(
        "selftest",
        "loadgen",
        "--concurrency",
        "1,4",
        "--requests",
        "40",
        "--chunks",
        "3",
        "--generator-procs",
        "1",
    )
    assert code == 0, err
    lag = re.compile(
        r"^  concurrency (\d+): send lag ([\d.]+)/([\d.]+)/([\d.]+) ms, "
        r"event-loop lag ([\d.]+)/([\d.]+)/([\d.]+) ms, CPU (\d+)% of a core$",
        re.M,
    )
    found = lag.findall(out)
    assert [m[0] for m in found] == ["1", "4"], out
    for m in found:
        for p50, p99, most in (m[1:4], m[4:7]):
            assert 0 <= float(p50) <= float(p99) <= float(most)
        assert int(m[7]) > 0
    table = {r[0]: float(r[1]) for r in rows(out)}
    best = max(table, key=lambda c: table[c])
    ceiling = re.search(r"^ceiling: (\d+) requests/s, (\d+) chunks/s \(at concurrency (\d+)\)", out, re.M)
    assert ceiling and ceiling.group(3) == best and float(ceiling.group(1)) == table[best]


def test_loadgen_with_two_generator_processes(cli: Callable[..., CliResult]) -> None:
    code, out, err = cli(
        "selftest", "loadgen", "--concurrency", "4", "--requests", "60", "--chunks", "3", "--generator-procs", "2",
        "--no-vllm",
    )  # fmt: skip
    assert code == 0, err
    assert "2 generator processes" in out
    ((concurrency, req_s, _, _, errors, in_flight),) = rows(out)
    assert concurrency == "4" and float(req_s) > 0 and errors == "0" and in_flight == "4"
    assert re.search(r"CPU \d+% of a core \(2 processes, the busiest \d+%\)$", out, re.M), out


def test_loadgen_bad_options_are_one_line(cli: Callable[..., CliResult]) -> None:
    code, _, err = cli("selftest", "loadgen", "--generator-procs", "0")
    assert code == 2 and "--generator-procs must be at least 1, got 0" in err and "Traceback" not in err
    code, _, err = cli("selftest", "loadgen", "--vllm", "--vllm-bin", "/nonexistent/vllm", "--requests", "5")
    assert code == 2 and "--vllm-bin /nonexistent/vllm: no executable vllm there" in err
    assert "Traceback" not in err
