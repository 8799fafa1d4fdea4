"""llama-batched-bench: what one step of b sequences costs, for `velobench advise`.

    llama-batched-bench -m MODEL -c CTX -b 2048 -ub 512 -npp 1,3,5 -ntg 8 -npl 1,2,4 [--output-format jsonl]

For every (PP, TG, B) it times two phases on a fresh KV cache: prompt processing of B sequences
of PP tokens each in one batch (T_PP), then TG steps that each decode one token for every one of
the B sequences (T_TG). `velobench advise` reads them as

    a pass over n tokens, all logits  d(n) = T_TG / TG                  (the row with PP = 1, B = n)
    prefill of a p-token prompt       P(p) = T_PP                       (the row with PP = p, B = 1)

(a decode step of b sequences is d(b); a verification step of w = k+1 tokens for each of b
sequences is one batch of b·w tokens, each with its logits: d(b·w). The prompt phase would not
do for verification: it computes the logits of each sequence's last token only.) Its markdown table prints times with millisecond resolution; the JSONL output
(`--output-format jsonl`) has microseconds, so velobench runs that and parses both.

Pure parsers (`parse_rows`) over captured text raise ValueError quoting what they could not read;
`measure` runs the binary and turns a failure into one line (VelobenchError).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from pathlib import Path

from velobench import proc
from velobench.bins.locate import find_tool
from velobench.engines.llama_args import Unparsed, read_complete
from velobench.errors import VelobenchError
from velobench.results.advise import CostRow, ModelCosts

_MD_ROW = re.compile(
    r"^\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|" + r"\s*([\d.]+)\s*\|" * 6 + r"\s*$"
)


def parse_rows(text: str) -> list[CostRow]:
    """The rows of llama-batched-bench's output, markdown table or JSONL (whichever it printed).

    Markdown: `| PP | TG | B | N_KV | T_PP s | S_PP t/s | T_TG s | S_TG t/s | T s | S t/s |`;
    the times are recomputed from the speeds where those carry more digits
    (T_PP = B·PP / S_PP, T_TG = B·TG / S_TG). JSONL: one object per row with `pp`, `tg`, `pl`,
    `t_pp`, `t_tg`. Raises ValueError where no row can be read.
    """
    rows: list[CostRow] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{") and '"t_pp"' in line:
            try:
                o = json.loads(line)
                rows.append(
                    CostRow(
                        pp=int(o["pp"]),
                        tg=int(o["tg"]),
                        batch=int(o["pl"]),
                        t_pp_s=float(o["t_pp"]),
                        t_tg_s=float(o["t_tg"]),
                    )
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"not a llama-batched-bench JSONL row: {line[:200]!r}") from exc
            continue
        m = _MD_ROW.match(line)
        if m is None:
            continue
        pp, tg, b = int(m.group(1)), int(m.group(2)), int(m.group(3))
        t_pp, s_pp, t_tg, s_tg = (float(m.group(i)) for i in (5, 6, 7, 8))
        rows.append(
            CostRow(
                pp=pp,
                tg=tg,
                batch=b,
                t_pp_s=b * pp / s_pp if s_pp > 0 and pp > 0 else t_pp,
                t_tg_s=b * tg / s_tg if s_tg > 0 and tg > 0 else t_tg,
            )
        )
    if not rows:
        raise ValueError(f"no llama-batched-bench rows in its output: {text.strip()[-300:]!r}")
    return rows


def argv(
    tool_path: Path,
    model: str,
    widths: Sequence[int],
    batches: Sequence[int],
    *,
    tg: int,
    threads: int | None,
    gpu_layers: str | None,
) -> list[str]:
    """The command line: every width as a prompt length, every batch size, a context that fits the
    largest (B·(PP + TG) cells of KV, llama-batched-bench skips rows that do not fit)."""
    ctx = max(batches) * (max(widths) + tg) + 16
    a = [str(tool_path), "-m", model, "-c", str(ctx), "-b", "2048", "-ub", "512"]
    a += ["-npp", ",".join(map(str, widths)), "-ntg", str(tg), "-npl", ",".join(map(str, batches))]
    a += ["--output-format", "jsonl"]
    if threads:
        a += ["-t", str(threads)]
    if gpu_layers is not None:
        a += ["-ngl", "99" if gpu_layers in ("all", "auto") else gpu_layers]
    return a


def measure(
    model: str,
    widths: Sequence[int],
    batches: Sequence[int],
    *,
    repetitions: int,
    tg: int = 8,
    threads: int | None = None,
    gpu_layers: str | None = None,
    llama_cpp_path: Path | None = None,
    timeout_s: float | None = 600.0,
) -> ModelCosts:
    """`repetitions` repetitions of every (width, batch) row on `model`, in one llama-batched-bench run.

    The widths go to `-npp` `repetitions` times over; llama-batched-bench runs PP-major, so the
    rows come one repetition after the other, each a full pass over the table (a disturbance of
    the machine hits one repetition's rows, which the median over repetitions outvotes), with one
    model load and warm-up for all (1.1 s each for the 1.5B Qwen on 2 cores). `timeout_s` is per
    repetition. A run that fails, or leaves out a row the prediction needs, is one line.
    """
    tool = find_tool("llama-batched-bench", llama_cpp_path)
    ws, bs = sorted(set(widths)), sorted(set(batches))
    cmd = argv(tool.path, model, ws * repetitions, bs, tg=tg, threads=threads, gpu_layers=gpu_layers)
    timeout = None if timeout_s is None else timeout_s * repetitions
    rows = _complete_rows(cmd, [(w, b) for w in ws for b in bs], repetitions, timeout)
    n = len(ws) * len(bs)
    reps = [rows[i * n : (i + 1) * n] for i in range(repetitions)]
    return ModelCosts(model=model, commands=[shlex.join(cmd)], repetitions=reps)


def split_repetitions(
    rows: Sequence[CostRow], want: Sequence[tuple[int, int]], repetitions: int
) -> list[str]:
    """What `rows` lacks to be `repetitions` repetitions of the (width, batch) table `want`, in
    llama-batched-bench's order (empty when complete)."""
    missing = []
    n = len(want)
    for i in range(repetitions):
        have = {(r.pp, r.batch) for r in rows[i * n : (i + 1) * n]}
        lost = [wb for wb in want if wb not in have]
        if lost:
            missing.append(f"repetition {i + 1} of {repetitions}: {lost}")
    return missing


def _complete_rows(
    cmd: list[str], want: list[tuple[int, int]], repetitions: int, timeout_s: float | None
) -> list[CostRow]:
    """Every repetition's rows; run again where it exited 0 without them all (its log's end lost:
    `llama_args.read_complete`)."""

    def read(done: proc.Completed) -> list[CostRow]:
        if done.returncode != 0:
            raise VelobenchError(
                f"llama-batched-bench exited with code {done.returncode}: {done.stderr_tail(2)}"
            )
        try:
            rows = parse_rows(done.stdout + "\n" + done.stderr)
        except ValueError as exc:
            raise Unparsed(f"cannot parse llama-batched-bench output: {exc}") from exc
        missing = split_repetitions(rows, want, repetitions)
        if missing:
            raise Unparsed(
                f"llama-batched-bench measured no row for (width, batch) {'; '.join(missing)}: {shlex.join(cmd)}"
            )
        return rows

    return read_complete(lambda: proc.run(cmd, timeout_s=timeout_s), read)
