"""Bootstrap intervals over days for per-day figures: a mean daily cost, a gap between policies.

Test days differ far more than policies do (a winter day costs several times a spring day), so a
figure on 14 days and one on 366 days are different claims. Each interval resamples the days
with replacement (percentile bootstrap, seeded, so a table prints the same interval twice); a gap
resamples the two policies' days jointly (paired by day), which is what makes a small difference
between two policies on the same days measurable.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from tune_grid import economics

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
