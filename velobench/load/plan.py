"""The options of `velobench load` and the load levels they stand for (pure: no I/O, no server).

    --concurrency C                  one closed-loop level: C requests in flight
    --rate R [--burstiness B]        one open-loop level: seeded Poisson (B = 1) or gamma arrivals;
                                     with --concurrency C too, at most C in flight (vLLM's
                                     --max-concurrency)
    --sweep concurrency=1,2,4        closed-loop levels, in ascending order
    --sweep rate=0.5,1,2             open-loop levels (with --concurrency C: capped at C)
    neither                          concurrency 1 (one request at a time)

Each level is bounded by `--requests N` and/or `--duration S` (no request is issued at or after
S; DEFAULT_REQUESTS when neither is given). Warm-up and cool-down windows, by seconds or by
request count, apply to every level. Open-loop levels draw their schedule from `--seed`: one
schedule per level, shared by every mode, so vanilla and speculative see the same arrivals.

Schedules (`--schedule`, `runner.schedule.level_order`): interleaved runs both servers side by side and
alternates the arms level by level in ABBA order (level 1 vanilla then speculative, level 2
speculative then vanilla, ...); blocked runs every vanilla level, then every speculative one.

The server gets `slots` parallel slots (llama-server `-np`): the largest concurrency of the
levels, or for open loops the cap, else DEFAULT_RATE_SLOTS (requests beyond the slots wait in
the server's queue, and their wait counts in their TTFT).
"""

from __future__ import annotations

import math
import re

from velobench.errors import VelobenchError
from velobench.load.analysis import parse_slo
from velobench.load.arrivals import arrival_schedule, check_rate
from velobench.load.generator import plan
from velobench.results.load import LoadOptions, LoadPlan, Profile, Sweep, Window

DEFAULT_REQUESTS = 32
DEFAULT_RATE_SLOTS = 4


_SWEEP = re.compile(r"^\s*(concurrency|rate)\s*=\s*(.*)$", re.IGNORECASE)


def parse_sweep(text: str) -> Sweep:
    """Parse `concurrency=1,2,4` or `rate=0.5,1,inf`; anything else is one line (VelobenchError).

    Concurrencies are whole numbers ≥ 1; rates are > 0 (inf: every request at once). Levels are
    sorted and de-duplicated; a sweep with no level is an error.
    """
    m = _SWEEP.match(text)
    if m is None:
        raise VelobenchError(f"bad --sweep {text!r}: expected concurrency=1,2,4 or rate=0.5,1,2 (requests/s)")
    kind = m.group(1).lower()
    items = [x.strip() for x in m.group(2).split(",") if x.strip()]
    if not items:
        raise VelobenchError(f"--sweep {text!r} has no levels: give e.g. {kind}=1,2,4")
    levels: set[float] = set()
    for item in items:
        try:
            value = float(item)
        except ValueError:
            raise VelobenchError(f"--sweep {text!r}: {item!r} is not a number") from None
        if kind == "concurrency":
            if not (value >= 1 and value == int(value)) or math.isinf(value):
                raise VelobenchError(f"--sweep {text!r}: concurrency must be a whole number >= 1, got {item}")
        elif not value > 0:
            raise VelobenchError(f"--sweep {text!r}: a rate must be > 0 requests/s, got {item}")
        levels.add(value)
    return Sweep(kind=kind, levels=sorted(levels))


def _positive(name: str, value: float | None, *, whole: bool = False) -> None:
    if value is None:
        return
    if not value > 0 or math.isnan(value) or (whole and value != int(value)):
        kind = "a whole number > 0" if whole else "> 0"
        raise VelobenchError(f"{name} must be {kind}, got {value:g}")


def load_options(
    *,
    requests: int | None = None,
    concurrency: int | None = None,
    rate: float | None = None,
    burstiness: float | None = None,
    duration_s: float | None = None,
    sweep: str | None = None,
    warmup_s: float | None = None,
    cooldown_s: float | None = None,
    warmup_requests: int | None = None,
    cooldown_requests: int | None = None,
    slo: str | None = None,
    input_len: int | None = None,
    seed: int = 42,
    stop_on_saturation: bool = True,
    generator_procs: int | None = None,
) -> LoadOptions:
    """Check the load options together and decide the levels; bad input is one line (VelobenchError).
    `generator_procs` None: `load.procs.auto_procs()` (from the machine's cores)."""
    _positive("--concurrency", concurrency, whole=True)
    _positive("--generator-procs", generator_procs, whole=True)
    _positive("--requests", requests, whole=True)
    _positive("--input-len", input_len, whole=True)
    if rate is not None:
        check_rate(rate, burstiness if burstiness is not None else 1.0)
    if duration_s is not None and not (0 < duration_s < math.inf):
        raise VelobenchError(f"--duration must be a positive number of seconds, got {duration_s:g}")
    if burstiness is not None:
        check_rate(1.0, burstiness)
    for name, s in (("--warmup-s", warmup_s), ("--cooldown-s", cooldown_s)):
        if s is not None and not (0 <= s < math.inf):
            raise VelobenchError(f"{name} must be >= 0 seconds, got {s:g}")
    for name, n in (("--warmup-requests", warmup_requests), ("--cooldown-requests", cooldown_requests)):
        if n is not None and n < 0:
            raise VelobenchError(f"{name} must be >= 0, got {n}")
    if warmup_s is not None and warmup_requests is not None:
        raise VelobenchError(
            "give the warm-up in seconds (--warmup-s) or in requests (--warmup-requests), not both"
        )
    if cooldown_s is not None and cooldown_requests is not None:
        raise VelobenchError(
            "give the cool-down in seconds (--cooldown-s) or in requests (--cooldown-requests), not both"
        )
    sw = parse_sweep(sweep) if sweep is not None else None
    profile: Profile
    if sw is not None:
        profile, levels = sw.kind, sw.levels
        if sw.kind == "concurrency" and concurrency is not None:
            raise VelobenchError("--sweep concurrency=... sets the concurrency: drop --concurrency")
        if sw.kind == "rate" and rate is not None:
            raise VelobenchError("--sweep rate=... sets the rate: drop --rate")
        if sw.kind == "concurrency" and rate is not None:
            raise VelobenchError(
                "--rate is an open loop; --sweep concurrency=... runs closed loops: pick one"
            )
    elif rate is not None:
        profile, levels = "rate", [rate]
    else:
        profile, levels = "concurrency", [float(concurrency or 1)]
    if profile == "concurrency" and burstiness is not None:
        raise VelobenchError("--burstiness shapes open-loop arrivals: it needs --rate or --sweep rate=...")
    if requests is None and duration_s is None:
        requests = DEFAULT_REQUESTS
    if any(math.isinf(x) for x in levels) and requests is None:
        raise VelobenchError("an infinite rate sends every request at once: it needs --requests N")
    warm = Window(seconds=warmup_s, requests=warmup_requests)
    cool = Window(seconds=cooldown_s, requests=cooldown_requests)
    if requests is not None and (warmup_requests or 0) + (cooldown_requests or 0) >= requests:
        raise VelobenchError(
            f"the warm-up and cool-down ({warmup_requests or 0} + {cooldown_requests or 0} requests) "
            f"leave nothing of {requests} requests to measure"
        )
    max_conc = concurrency if profile == "rate" else None
    slots = int(max(levels)) if profile == "concurrency" else (max_conc or DEFAULT_RATE_SLOTS)
    return LoadOptions(
        profile=profile,
        levels=levels,
        sweep=len(levels) > 1,
        requests=requests,
        duration_s=duration_s,
        max_concurrency=max_conc,
        burstiness=burstiness if burstiness is not None else 1.0,
        seed=seed,
        warmup=warm,
        cooldown=cool,
        slo=parse_slo(slo) if slo is not None else None,
        input_len=input_len,
        slots=slots,
        generator_procs=generator_procs if generator_procs is not None else _auto_procs(),
        stop_on_saturation=stop_on_saturation,
    )


def level_plans(opts: LoadOptions) -> list[LoadPlan]:
    """One LoadPlan per level, ascending. Open-loop schedules are drawn here, once per level, from
    `opts.seed` (see runner.arrivals), and recorded in the plan so a run can be replayed."""
    out = []
    for level in opts.levels:
        if opts.profile == "concurrency":
            out.append(
                plan(
                    "concurrency",
                    concurrency=int(level),
                    requests=opts.requests,
                    duration_s=opts.duration_s,
                    warmup=opts.warmup,
                    cooldown=opts.cooldown,
                )
            )
            continue
        schedule = arrival_schedule(
            level,
            seed=opts.seed,
            burstiness=opts.burstiness,
            count=opts.requests,
            duration_s=opts.duration_s,
        )
        out.append(
            plan(
                "rate",
                schedule=schedule,
                max_concurrency=opts.max_concurrency,
                requests=opts.requests,
                duration_s=opts.duration_s,
                warmup=opts.warmup,
                cooldown=opts.cooldown,
            )
        )
    return out


def _auto_procs() -> int:
    from velobench.load.procs import auto_procs

    return auto_procs()
