"""Bootstrap intervals over days for per-day figures: a mean daily cost, a gap between policies.

Test days differ far more than policies do (a winter day costs several times a spring day), so a
figure on 14 days and one on 366 days are different claims. Each interval resamples the days
with replacement (percentile bootstrap, seeded, so a table prints the same interval twice); a gap
resamples the two policies' days jointly (paired by day), which is what makes a small difference
between two policies on the same days measurable.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from tune_grid import economics
from tune_grid.stats import iqm, row_iqms

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0


def _day_indices(days: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, days, size=(resamples, days))


def _bounds(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = 50.0 * (1.0 - confidence)
    lo, hi = np.nanpercentile(samples, [tail, 100.0 - tail])
    return float(lo), float(hi)


def mean_interval(
    values: ArrayLike, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = SEED
) -> tuple[float, float, float]:
    """(mean, low, high) of per-day ``values``; NaN bounds for fewer than 2 days."""
    x = np.asarray(values, float)
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    if x.size < 2:
        return float(x.mean()), float("nan"), float("nan")
    samples = x[_day_indices(x.size, resamples, seed)].mean(axis=1)
    return (float(x.mean()), *_bounds(samples, confidence))


def gap_interval(
    policy: ArrayLike,
    reference: ArrayLike,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float, float]:
    """(gap, low, high) of the pooled relative gap (mean policy - mean reference) / |mean
    reference| (``economics.relative_gap``) with the days of both resampled together."""
    p, r = np.asarray(policy, float), np.asarray(reference, float)
    if p.shape != r.shape:
        raise ValueError(f"paired days: {p.shape} policy values, {r.shape} reference values")
    if p.size == 0:
        return float("nan"), float("nan"), float("nan")
    gap = float(economics.relative_gap(float(p.mean()), float(r.mean())))
    if p.size < 2:
        return gap, float("nan"), float("nan")
    idx = _day_indices(p.size, resamples, seed)
    pm, rm = p[idx].mean(axis=1), r[idx].mean(axis=1)
    samples = np.divide(pm - rm, np.abs(rm), out=np.full_like(pm, np.nan), where=rm != 0)
    return (gap, *_bounds(samples, confidence))


def _seed_indices(seeds: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed + 1).integers(0, seeds, size=(resamples, seeds))


def _matrix(values: ArrayLike, name: str) -> np.ndarray:
    x = np.asarray(values, float)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name}: expected a (seeds, days) matrix, got shape {x.shape}")
    return x


def seeds_days_interval(
    costs: ArrayLike,
    reference: ArrayLike | None = None,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    statistic: Literal["iqm", "mean"] = "iqm",
) -> dict[str, float]:
    """IQM (or mean) over seeds of each seed's mean daily cost, and its gap to ``reference``.

    ``costs`` is a (seeds, days) matrix on common days, ``reference`` the reference policy's cost
    on the same days. Seeds and days are resampled independently (a two-way bootstrap): the
    interval covers both the seed a policy was trained with and the days it is scored on. The
    gap's reference is resampled on the same days. Keys: ``value``, ``low``, ``high``, ``gap``,
    ``gap_low``, ``gap_high`` (NaN gaps without a reference), ``seeds``, ``days``.
    """
    x = _matrix(costs, "costs")
    n_seeds, n_days = x.shape
    center = iqm if statistic == "iqm" else np.mean
    rows = row_iqms if statistic == "iqm" else (lambda m: m.mean(axis=1))
    out = {"value": float(center(x.mean(axis=1))), "seeds": n_seeds, "days": n_days}
    days = _day_indices(n_days, resamples, seed)
    seeds = _seed_indices(n_seeds, resamples, seed)
    per_seed = x[:, days].mean(axis=2).T  # (resamples, seeds): each seed on resampled days
    samples = rows(np.take_along_axis(per_seed, seeds, axis=1))
    nan = (float("nan"), float("nan"))
    out["low"], out["high"] = _bounds(samples, confidence) if n_days > 1 else nan
    out["gap"] = out["gap_low"] = out["gap_high"] = float("nan")
    if reference is not None:
        r = np.asarray(reference, float)
        if r.shape != (n_days,):
            raise ValueError(f"paired days: {n_days} policy days, reference shape {r.shape}")
        out["gap"] = float(economics.relative_gap(out["value"], float(r.mean())))
        rm = r[days].mean(axis=1)
        gaps = np.divide(samples - rm, np.abs(rm), out=np.full_like(rm, np.nan), where=rm != 0)
        out["gap_low"], out["gap_high"] = _bounds(gaps, confidence) if n_days > 1 else nan
    return {k: float(v) for k, v in out.items()}


def paired_difference(
    baseline: ArrayLike, other: ArrayLike, confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """(mean, low, high) of ``other - baseline`` in $/day, paired by seed and by day.

    Both are (seeds, days) matrices whose rows are the same seeds and columns the same days, so
    the day-to-day swing of cost cancels in the difference matrix ``d``. Its mean has two sources
    of error: the seeds (spread of each seed's mean difference, ``s_seed^2 / seeds``) and the
    days (spread of each day's mean difference, ``s_day^2 / days``). The interval is Student's t
    on their sum with Welch-Satterthwaite degrees of freedom. With two or three seeds the seed
    term has one or two degrees of freedom and the interval is honestly wide (a percentile
    bootstrap over two seeds would call one in four null differences separated); with one seed
    only the days count.
    """
    from scipy.stats import t as student_t

    a, b = _matrix(baseline, "baseline"), _matrix(other, "other")
    if a.shape != b.shape:
        raise ValueError(f"paired seeds and days: shapes {a.shape} and {b.shape} differ")
    d = b - a
    n_seeds, n_days = d.shape
    mean = float(d.mean())
    parts = []  # (variance of the mean from one source, its degrees of freedom)
    if n_seeds > 1:
        parts.append((float(d.mean(axis=1).var(ddof=1)) / n_seeds, n_seeds - 1))
    if n_days > 1:
        parts.append((float(d.mean(axis=0).var(ddof=1)) / n_days, n_days - 1))
    if not parts:
        return mean, float("nan"), float("nan")
    variance = sum(v for v, _ in parts)
    if variance == 0.0:
        return mean, mean, mean
    dof = variance**2 / sum(v**2 / k for v, k in parts if v > 0)
    half = float(student_t.ppf(0.5 + confidence / 2.0, dof)) * math.sqrt(variance)
    return mean, mean - half, mean + half
