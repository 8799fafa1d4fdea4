"""Small, pure statistics for benchmark samples (numpy/scipy only, no I/O).

Every statistic that is undefined for the data at hand is `None`, never NaN or infinity,
so the models below always serialize to valid JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from velobench.results.measures import Ratio, Summary

if TYPE_CHECKING:  # numpy and scipy are imported where used: `velobench --help` needs neither
    import numpy as np

_CONFIDENCE = 0.95


def _finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _validated(samples: Sequence[float], what: str) -> np.ndarray:
    import numpy as np

    if len(samples) == 0:
        raise ValueError(f"{what}: cannot summarize an empty sequence of samples")
    for x in samples:
        if not math.isfinite(x):
            raise ValueError(f"{what}: sample {x!r} is not a finite number")
    return np.asarray(samples, dtype=np.float64)


def summarize(samples: Sequence[float]) -> Summary:
    """Summarize samples x_1..x_n.

    mean x̄ = Σx_i / n;  s = sqrt(Σ(x_i - x̄)² / (n - 1))  (ddof=1, None when n == 1);
    95% CI of the mean (Student t, n-1 df):  x̄ ± t_{0.975,n-1} · s / √n  (None when n == 1).
    When all samples are equal, x̄ is that value exactly, s = 0.0 and the CI is [x̄, x̄].

    Raises ValueError on an empty sequence, a non-finite sample, or statistics that overflow.
    """
    import numpy as np

    x = _validated(samples, "summarize")
    n = int(x.size)
    if bool(np.all(x == x[0])):
        mean, sd = float(x[0]), (0.0 if n > 1 else None)
    else:
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below
            mean, sd = float(np.mean(x)), float(np.std(x, ddof=1))
    lo = hi = None
    if sd is not None:
        half = t_quantile(n - 1) * sd / math.sqrt(n)
        lo, hi = mean - half, mean + half
    values = (mean, sd, lo, hi)
    if not all(v is None or math.isfinite(v) for v in values):
        raise ValueError(f"summarize: statistics overflow for samples {list(samples)!r}")
    return Summary(
        n=n,
        mean=mean,
        stddev=sd,
        min=float(np.min(x)),
        max=float(np.max(x)),
        median=float(np.median(x)),
        ci95_low=lo,
        ci95_high=hi,
        samples=[float(v) for v in x],
    )


def welch_df(terms: Sequence[tuple[float, int]]) -> float:
    """Welch–Satterthwaite degrees of freedom of a sum of independent variance terms v_i, each
    estimated from n_i samples: df = (Σ v_i)² / Σ (v_i² / (n_i − 1)) (Satterthwaite, 1946)."""
    total = sum(v for v, _ in terms)
    return total**2 / sum(v**2 / (n - 1) for v, n in terms)


def t_quantile(df: float, confidence: float = 0.95) -> float:
    """The two-sided Student t critical value t_{(1+confidence)/2, df}."""
    from scipy import stats as sps

    return float(sps.t.ppf(0.5 + confidence / 2, df))


def t_two_sided_p(t: float, df: float) -> float:
    """p = 2·P(T_df > |t|)."""
    from scipy import stats as sps

    return float(2 * sps.t.sf(abs(t), df))


def _fieller(
    m_a: float, v_a: float, n_a: int, m_b: float, v_b: float, n_b: int
) -> tuple[float | None, float | None]:
    if v_a + v_b == 0:  # constant samples: the interval is undefined, not [R, R]
        return None, None
    r = m_a / m_b
    t = t_quantile(welch_df([(v_a, n_a), (v_b, n_b)]))
    g = t**2 * v_b / m_b**2
    if not g < 1:
        return None, None
    half = (t / m_b) * math.sqrt(v_a * (1 - g) + r**2 * v_b)
    lo, hi = sorted(((r - half) / (1 - g), (r + half) / (1 - g)))
    return _finite_or_none(lo), _finite_or_none(hi)


def _welch_p(a: np.ndarray, sd_a: float, b: np.ndarray, sd_b: float, m_a: float, m_b: float) -> float | None:

    if sd_a == 0 and sd_b == 0:  # constant samples: the test is undefined, not p = 0 or 1
        return None
    from scipy import stats as sps

    return _finite_or_none(float(sps.ttest_ind(a, b, equal_var=False).pvalue))


def ratio_of_means(a: Sequence[float], b: Sequence[float]) -> Ratio:
    """Ratio R = mean(a) / mean(b), e.g. the speedup of speculative (a) over vanilla (b) tok/s.

    stddev: first-order error propagation, assuming a and b INDEPENDENT (zero covariance):
        σ_R = R · sqrt((s_a/m_a)² + (s_b/m_b)²)  (written as sqrt((s_a/m_b)² + (R·s_b/m_b)²),
        the same value, which stays defined when m_a == 0); None if n_a == 1 or n_b == 1.
    95% CI: Fieller's interval for the ratio of two independent means (Fieller, 1954,
        "Some problems in interval estimation", J. R. Stat. Soc. B 16(2):175-185). With
        v_a = s_a²/n_a, v_b = s_b²/n_b, Welch–Satterthwaite
        df = (v_a+v_b)² / (v_a²/(n_a-1) + v_b²/(n_b-1)), t = t_{0.975,df}, g = t²·v_b/m_b²:
        bounds = (R ± (t/m_b)·sqrt(v_a·(1-g) + R²·v_b)) / (1-g); if g >= 1 the confidence set
        is unbounded and both bounds are None; if v_a + v_b == 0 (constant samples) the interval
        is undefined (None, see `undefined_test`); None if n_a == 1 or n_b == 1.
    p_value: Welch's two-sided t-test of mean(a) != mean(b) (scipy ttest_ind, equal_var=False);
        None if n_a < 2 or n_b < 2, and None when both sets have zero variance: the test is
        undefined there (a p of 0 or 1 would claim a certainty constant samples do not give).

    Raises ValueError if either set is empty or non-finite, or if mean(b) == 0.
    """
    sa, sb = summarize(a), summarize(b)
    if sb.mean == 0:
        raise ValueError("ratio_of_means: mean(b) is 0, the ratio is undefined")
    r = sa.mean / sb.mean
    if not math.isfinite(r):
        raise ValueError(f"ratio_of_means: ratio {sa.mean!r}/{sb.mean!r} overflows")
    sd = lo = hi = p = None
    if sa.stddev is not None and sb.stddev is not None:
        sd = _finite_or_none(math.hypot(sa.stddev / sb.mean, r * sb.stddev / sb.mean))
        v_a, v_b = sa.stddev**2 / sa.n, sb.stddev**2 / sb.n
        lo, hi = _fieller(sa.mean, v_a, sa.n, sb.mean, v_b, sb.n)
        import numpy as np

        xa, xb = np.asarray(sa.samples), np.asarray(sb.samples)
        p = _welch_p(xa, sa.stddev, xb, sb.stddev, sa.mean, sb.mean)
    return Ratio(
        ratio=r,
        stddev=sd,
        ci95_low=lo,
        ci95_high=hi,
        ci_method=FIELLER,
        p_value=p,
        n_a=sa.n,
        n_b=sb.n,
    )


PAIRED = "paired-log-t"  # Ratio.ci_method of `paired_ratio`
FIELLER = "fieller"  # Ratio.ci_method of `ratio_of_means`


def log_ratios(pairs: Sequence[tuple[float, float]], what: str = "paired_ratio") -> np.ndarray:
    """d_i = ln(a_i / b_i) of pairs (a_i, b_i); ValueError unless every value is finite and > 0."""
    import numpy as np

    if not pairs:
        raise ValueError(f"{what}: no pairs")
    for a, b in pairs:
        if not (math.isfinite(a) and math.isfinite(b) and a > 0 and b > 0):
            raise ValueError(f"{what}: pair ({a!r}, {b!r}) is not two finite positive numbers")
    return np.log(np.asarray([a for a, _ in pairs], dtype=np.float64)) - np.log(
        np.asarray([b for _, b in pairs], dtype=np.float64)
    )


def no_spread(d: np.ndarray) -> bool:
    """True when log ratios d differ by no more than rounding: max − min ≤ 1e-12 · max(1, max|d|)
    (ln 4 − ln 2 and ln 2 − ln 1 differ in the last bit; no benchmark resolves 1e-12)."""
    import numpy as np

    return bool(np.ptp(d) <= 1e-12 * max(1.0, float(np.max(np.abs(d)))))


def paired_ratio(pairs: Sequence[tuple[float, float]]) -> Ratio:
    """Paired ratio of a over b, e.g. speculative over vanilla tokens/s of the same prompt.

    With d_i = ln(a_i / b_i), i = 1..n, d̄ = Σd_i / n and s_d = sqrt(Σ(d_i − d̄)² / (n − 1)):
        ratio   = exp(d̄)                              (the geometric mean of a_i / b_i)
        95% CI  = exp(d̄ ± t_{0.975,n−1} · s_d / √n)   (Student t on the log ratios)
        p       = 2·P(T_{n−1} > |d̄ / (s_d/√n)|)        (the paired t-test of ln a = ln b:
                  scipy ttest_rel(ln a, ln b) = ttest_1samp(d, 0))
    Pairing removes the spread between prompts (lengths, acceptance) and, for an interleaved
    schedule, the drift both members of a pair share. The interval is multiplicative: it is
    never below 0 and exp(−CI of ln(b/a)) is the CI of b/a.
    CI and p are None for one pair, and None when every d_i is equal (s_d = 0: the test is
    undefined there, see `undefined_test` and `no_spread`). stddev is None (there is no propagated σ);
    n_a = n_b = n pairs. Raises ValueError on no pairs or a value that is not finite and > 0.
    """
    d = log_ratios(pairs)
    n = int(d.size)
    mean = float(d.mean())
    lo = hi = p = None
    if n >= 2:
        sd = float(d.std(ddof=1))
        if sd > 0 and not no_spread(d):
            se = sd / math.sqrt(n)
            half = t_quantile(n - 1) * se
            lo, hi = math.exp(mean - half), math.exp(mean + half)
            p = t_two_sided_p(mean / se, n - 1)
    return Ratio(
        ratio=math.exp(mean),
        stddev=None,
        ci95_low=_finite_or_none(lo),
        ci95_high=_finite_or_none(hi),
        ci_method=PAIRED,
        p_value=_finite_or_none(p),
        n_a=n,
        n_b=n,
    )


def undefined_test(r: Ratio) -> bool:
    """True when r had enough samples for a test (two per side, or two pairs) yet none is defined:
    constant samples (zero spread) leave the interval and the p-value undefined."""
    if r.ci_method == PAIRED:
        return r.n_a >= 2 and r.p_value is None
    return r.stddev == 0 and r.p_value is None


def acceptance_rate(accepted: int, drafted: int) -> float | None:
    """Fraction of drafted tokens the target model accepted: accepted / drafted (None if 0)."""
    return None if drafted == 0 else accepted / drafted


def mean_acceptance_length(accepted: int, drafts: int) -> float | None:
    """Tokens produced per verification step: 1 + accepted / drafts (None if drafts == 0).

    Each verification step yields its accepted draft tokens plus one token from the target.
    """
    return None if drafts == 0 else 1 + accepted / drafts


def is_high_variance(s: Summary, threshold: float = 0.10) -> bool:
    """True when the coefficient of variation s / |x̄| exceeds `threshold`.

    False when the CV is undefined (n == 1 or mean == 0).
    """
    cv = s.cv()
    return cv is not None and cv > threshold


def drift(
    times: Sequence[float], values: Sequence[float], groups: Sequence[object]
) -> tuple[float, float | None, float, float | None] | None:
    """A trend of log(values) over `times`, each group (a prompt) around its own level.

    With y = ln(value), ỹ and t̃ centred within their group (groups of one sample dropped: G
    groups, n samples left), the within-group least-squares slope and its test:

        b = Σ t̃ ỹ / Σ t̃²,   s² = Σ (ỹ − b t̃)² / (n − G − 1),   T = b / √(s² / Σ t̃²) ~ t_{n−G−1}

    and Welch's t-test of ỹ in the first ⌊n/2⌋ samples in time order against the rest. Returns
    (b per second, the trend's two-sided p, the halves' difference in mean ỹ (second − first),
    Welch's p), None under 6 samples or with fewer than 2 residual degrees of freedom, and the
    p-values None where undefined (no spread).
    """
    import numpy as np

    by: dict[object, list[int]] = {}
    for i, g in enumerate(groups):
        by.setdefault(g, []).append(i)
    keep = [idx for idx in by.values() if len(idx) > 1]
    n, g = sum(len(i) for i in keep), len(keep)
    if n < 6 or n - g - 1 < 2:
        return None
    t_all = np.asarray(times, dtype=float)
    y_all = np.log(np.asarray(values, dtype=float))
    t, y = np.empty(n), np.empty(n)
    at = 0
    for idx in keep:
        tt, yy = t_all[idx], y_all[idx]
        t[at : at + len(idx)] = tt - tt.mean()
        y[at : at + len(idx)] = yy - yy.mean()
        at += len(idx)
    order = np.argsort(t_all[[i for idx in keep for i in idx]], kind="stable")
    sxx = float(np.sum(t * t))
    if sxx <= 0:
        return None
    b = float(np.sum(t * y) / sxx)
    df = n - g - 1
    s2 = float(np.sum((y - b * t) ** 2) / df)
    p_trend = t_two_sided_p(b / math.sqrt(s2 / sxx), df) if s2 > 0 else None
    first, second = y[order[: n // 2]], y[order[n // 2 :]]
    diff = float(second.mean() - first.mean())
    v1, v2 = float(first.var(ddof=1)) / len(first), float(second.var(ddof=1)) / len(second)
    p_halves = None
    if v1 + v2 > 0:
        p_halves = t_two_sided_p(diff / math.sqrt(v1 + v2), welch_df([(v1, len(first)), (v2, len(second))]))
    return b, p_trend, diff, p_halves
