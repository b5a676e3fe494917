"""Robust aggregate statistics for RL results, after Agarwal et al. (2021), "rliable".

* IQM: the interquartile mean, ``scipy.stats.trim_mean(x, 0.25)``: drop ``floor(n / 4)`` values at
  each end, average the rest.
* Stratified bootstrap: resample *within* each stratum (an experiment, as rliable's tasks), so
  every stratum keeps its size. Inside a stratum the resampling is two-stage by default: draw the
  stratum's trials (clusters) with replacement, then each drawn trial's seed values with
  replacement. The interval thus covers both the spread across sampled configurations and
  seed noise, and it does not collapse when each trial ran a single seed.
  ``two_stage=False`` resamples the stratum's values directly (rliable's scheme).
* Percentile intervals: the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of
  the bootstrap distribution (numpy's linear interpolation).
* Probability of improvement: ``P(X > Y) + P(X = Y) / 2`` over all value pairs (the normalised
  Mann-Whitney U statistic).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import trim_mean

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
_CHUNK_CELLS = 4_000_000  # bound on resampled values held at once


def iqm(values: ArrayLike) -> float:
    """Interquartile mean; NaN for no values."""
    array = np.asarray(values, dtype=float).ravel()
    return float(trim_mean(array, 0.25)) if array.size else float("nan")


def row_means(matrix: np.ndarray) -> np.ndarray:
    """Mean of each row, ignoring NaN padding."""
    counts = np.sum(~np.isnan(matrix), axis=1)
    sums = np.nansum(matrix, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def row_iqms(matrix: np.ndarray) -> np.ndarray:
    """IQM of each row (same cut as ``trim_mean(row, 0.25)``), ignoring NaN padding."""
    ordered = np.sort(matrix, axis=1)  # NaN sorts last
    counts = np.sum(~np.isnan(ordered), axis=1)
    cut = (counts * 0.25).astype(int)  # int(0.25 * n), as scipy
    cumulative = np.zeros((ordered.shape[0], ordered.shape[1] + 1))
    cumulative[:, 1:] = np.cumsum(np.nan_to_num(ordered, nan=0.0), axis=1)
    rows = np.arange(ordered.shape[0])
    kept = counts - 2 * cut
    total = cumulative[rows, counts - cut] - cumulative[rows, cut]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(kept > 0, total / np.maximum(kept, 1), np.nan)


def _clean_clusters(
    clusters: Sequence[ArrayLike], strata: Sequence[Hashable] | None
) -> dict[Hashable, list[np.ndarray]]:
    if strata is not None and len(strata) != len(clusters):
        raise ValueError(f"{len(strata)} strata labels for {len(clusters)} clusters")
    grouped: dict[Hashable, list[np.ndarray]] = {}
    for index, cluster in enumerate(clusters):
        values = np.asarray(cluster, dtype=float).ravel()
        values = values[np.isfinite(values)]
        if values.size:
            grouped.setdefault(0 if strata is None else strata[index], []).append(values)
    return grouped


def _resample_stratum(
    members: list[np.ndarray], n_resamples: int, rng: np.random.Generator, two_stage: bool
) -> np.ndarray:
    """``(n_resamples, width)`` resampled values of one stratum, NaN-padded."""
    if not two_stage:
        flat = np.concatenate(members)
        return flat[rng.integers(0, flat.size, size=(n_resamples, flat.size))]
    sizes = np.array([m.size for m in members])
    width = int(sizes.max())
    padded = np.full((len(members), width), np.nan)
    for i, member in enumerate(members):
        padded[i, : member.size] = member
    chosen = rng.integers(0, len(members), size=(n_resamples, len(members)))
    chosen_sizes = sizes[chosen][..., None]
    within = (rng.random((n_resamples, len(members), width)) * chosen_sizes).astype(int)
    values = padded[chosen[..., None], within]
    values[np.arange(width)[None, None, :] >= chosen_sizes] = np.nan
    return values.reshape(n_resamples, len(members) * width)


def _resample_chunks(
    grouped: dict[Hashable, list[np.ndarray]], n_resamples: int, seed: int, two_stage: bool
) -> Iterator[np.ndarray]:
    """Yield NaN-padded ``(chunk, width)`` blocks of resampled pooled values, in order."""
    rng = np.random.default_rng(seed)
    width = sum(
        len(ms) * max(m.size for m in ms) if two_stage else sum(m.size for m in ms)
        for ms in grouped.values()
    )
    chunk = max(1, _CHUNK_CELLS // max(1, width))
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        parts = [_resample_stratum(ms, size, rng, two_stage) for ms in grouped.values()]
        yield np.concatenate(parts, axis=1)


def bootstrap_resamples(
    clusters: Sequence[ArrayLike],
    strata: Sequence[Hashable] | None = None,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    two_stage: bool = True,
) -> np.ndarray:
    """Stratified bootstrap samples of the pooled values: a NaN-padded ``(n_resamples, w)`` array.

    ``clusters`` are the trials' value arrays (e.g. per-seed results), ``strata`` one label per
    cluster (None: a single stratum). Non-finite values and empty clusters are dropped.
    """
    grouped = _clean_clusters(clusters, strata)
    if not grouped:
        return np.full((n_resamples, 0), np.nan)
    return np.concatenate(list(_resample_chunks(grouped, n_resamples, seed, two_stage)), axis=0)


@dataclass(frozen=True)
class Summary:
    """Point estimates and percentile bootstrap intervals of the mean and the IQM."""

    n_values: int
    mean: float
    mean_low: float
    mean_high: float
    iqm: float
    iqm_low: float
    iqm_high: float


def percentile_interval(
    distribution: np.ndarray, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float]:
    finite = distribution[np.isfinite(distribution)]
    if finite.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(low), float(high)


def summarize(
    clusters: Sequence[ArrayLike],
    strata: Sequence[Hashable] | None = None,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    two_stage: bool = True,
) -> Summary:
    """Mean and IQM of the pooled values with stratified bootstrap CIs (see module docstring)."""
    grouped = _clean_clusters(clusters, strata)
    pooled = np.concatenate([m for ms in grouped.values() for m in ms]) if grouped else np.array([])
    if pooled.size == 0:
        nan = float("nan")
        return Summary(0, nan, nan, nan, nan, nan, nan)
    means, iqms = [], []
    for block in _resample_chunks(grouped, n_resamples, seed, two_stage):
        means.append(row_means(block))
        iqms.append(row_iqms(block))
    mean_low, mean_high = percentile_interval(np.concatenate(means), confidence)
    iqm_low, iqm_high = percentile_interval(np.concatenate(iqms), confidence)
    return Summary(
        n_values=int(pooled.size),
        mean=float(pooled.mean()),
        mean_low=mean_low,
        mean_high=mean_high,
        iqm=iqm(pooled),
        iqm_low=iqm_low,
        iqm_high=iqm_high,
    )


def probability_of_improvement(
    x: ArrayLike, y: ArrayLike, *, higher_is_better: bool = True
) -> float:
    """P(a value of X beats a value of Y), ties counting 1/2; NaN if either side is empty."""
    xs = np.asarray(x, dtype=float).ravel()
    ys = np.asarray(y, dtype=float).ravel()
    xs, ys = xs[np.isfinite(xs)], np.sort(ys[np.isfinite(ys)])
    if xs.size == 0 or ys.size == 0:
        return float("nan")
    below = np.searchsorted(ys, xs, side="left")  # y < x
    not_above = np.searchsorted(ys, xs, side="right")  # y <= x
    ties = not_above - below
    wins = below if higher_is_better else ys.size - not_above
    return float((wins.sum() + 0.5 * ties.sum()) / (xs.size * ys.size))


def curve_band(
    curves: np.ndarray,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean curve and percentile bootstrap band over trials (rows; NaN where a trial has no data).

    Trials are resampled with replacement; at each x the mean is over the resampled trials that
    reached it.
    """
    curves = np.atleast_2d(np.asarray(curves, dtype=float))
    n_trials, n_points = curves.shape
    present = ~np.isnan(curves)
    counts = present.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, np.nansum(curves, axis=0) / np.maximum(counts, 1), np.nan)
    rng = np.random.default_rng(seed)
    filled = np.nan_to_num(curves, nan=0.0)
    chunk = max(1, _CHUNK_CELLS // max(1, n_trials * n_points))
    means = []
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        index = rng.integers(0, n_trials, size=(size, n_trials))
        sums = filled[index].sum(axis=1)
        hits = present[index].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append(np.where(hits > 0, sums / np.maximum(hits, 1), np.nan))
    resampled = np.concatenate(means, axis=0)
    alpha = (1.0 - confidence) / 2.0
    low = np.full(n_points, np.nan)
    high = np.full(n_points, np.nan)
    for j in range(n_points):
        column = resampled[:, j]
        column = column[np.isfinite(column)]
        if column.size:
            low[j], high[j] = np.quantile(column, [alpha, 1.0 - alpha])
    return mean, low, high
