"""tune_grid.stats: IQM, stratified bootstrap intervals, probability of improvement, curve bands."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import trim_mean

from tune_grid import stats


def hand_iqm(values: list[float]) -> float:
    ordered = sorted(values)
    cut = len(ordered) // 4  # floor(n / 4) dropped at each end
    middle = ordered[cut : len(ordered) - cut]
    return sum(middle) / len(middle)


def exact_bootstrap_quantiles(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean from the exact bootstrap distribution (all n^n draws)."""
    means = np.array([np.mean(d) for d in itertools.product(values, repeat=len(values))])
    alpha = (1 - confidence) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


@pytest.mark.parametrize(
    "values",
    [[0, 1, 1, 3, 5, 10], [-1, 1, 2, 2, 4, 8], [3.0], [1, 2], [5, 1, 4], [1, 2, 3, 4, 100]],
)
def test_iqm_matches_hand_computation(values):
    assert stats.iqm(values) == pytest.approx(hand_iqm(values))


def test_iqm_known_values_and_empty():
    assert stats.iqm([0, 1, 1, 3, 5, 10]) == pytest.approx(2.5)  # mean of 1, 1, 3, 5
    assert stats.iqm([1, 2, 3, 4, 100]) == pytest.approx(3.0)  # drops 1 and 100
    assert np.isnan(stats.iqm([]))


def test_row_iqms_and_means_ignore_padding():
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(40, 15))
    matrix[::2, 11:] = np.nan
    matrix[::5, 4:] = np.nan
    rows = [r[~np.isnan(r)] for r in matrix]
    assert stats.row_iqms(matrix) == pytest.approx([trim_mean(r, 0.25) for r in rows])
    assert stats.row_means(matrix) == pytest.approx([r.mean() for r in rows])


def test_ci_single_trial_two_seeds_is_the_seed_range():
    # one trial, seeds [0, 1]: resampled means are 0, 0.5, 1 with p = 1/4, 1/2, 1/4, so the
    # 2.5% and 97.5% quantiles are exactly 0 and 1.
    summary = stats.summarize([[0.0, 1.0]])
    assert (summary.mean, summary.mean_low, summary.mean_high) == (0.5, 0.0, 1.0)
    assert (summary.iqm, summary.iqm_low, summary.iqm_high) == (0.5, 0.0, 1.0)
    assert summary.n_values == 2


def test_ci_is_stratified():
    # Strata a = {[0, 1]}, b = {[10, 10]}: every resample keeps one trial of each, so the mean
    # is (x1 + x2 + 20) / 4 with x in {0, 1}: 5, 5.25, 5.5 with p = 1/4, 1/2, 1/4.
    stratified = stats.summarize([[0, 1], [10, 10]], strata=["a", "b"])
    assert (stratified.mean_low, stratified.mean_high) == (5.0, 5.5)
    # One stratum: both draws may hit the same trial. P(mean = 10) = 1/4 > 2.5%; at the low end
    # P(mean = 0) = 1/4 * 1/16 < 2.5% but P(mean <= 0.25) = 1/4 * 5/16 > 2.5%: [0.25, 10].
    pooled = stats.summarize([[0, 1], [10, 10]])
    assert (pooled.mean_low, pooled.mean_high) == (0.25, 10.0)


def test_ci_resamples_trials_within_a_stratum():
    # Two one-seed trials: resampled means 0, 0.5, 1 with p = 1/4, 1/2, 1/4.
    summary = stats.summarize([[0.0], [1.0]])
    assert (summary.mean_low, summary.mean_high) == (0.0, 1.0)


def test_ci_matches_exact_bootstrap_distribution():
    values = [0.0, 1.0, 2.0, 3.0]
    low, high = exact_bootstrap_quantiles(values)
    summary = stats.summarize([[v] for v in values], n_resamples=20000, seed=1)
    # the exact distribution lives on a grid of step 0.25
    assert summary.mean_low == pytest.approx(low, abs=0.25)
    assert summary.mean_high == pytest.approx(high, abs=0.25)
    flat = stats.summarize([values], n_resamples=20000, seed=1, two_stage=False)
    assert flat.mean_low == pytest.approx(low, abs=0.25)
    assert flat.mean_high == pytest.approx(high, abs=0.25)


def test_bootstrap_is_seeded_and_drops_non_finite():
    clusters = [[1.0, 2.0, np.nan], [3.0], [], [np.inf, 4.0]]
    first = stats.bootstrap_resamples(clusters, n_resamples=50, seed=7)
    again = stats.bootstrap_resamples(clusters, n_resamples=50, seed=7)
    np.testing.assert_array_equal(first, again)
    finite = first[np.isfinite(first)]
    assert set(np.unique(finite)) <= {1.0, 2.0, 3.0, 4.0}
    summary = stats.summarize(clusters)
    assert summary.n_values == 4 and summary.mean == pytest.approx(2.5)
    empty = stats.summarize([[], [np.nan]])
    assert empty.n_values == 0 and np.isnan(empty.mean) and np.isnan(empty.iqm_low)


def test_bootstrap_ci_coverage_on_normal_samples():
    rng = np.random.default_rng(2024)
    true_mean, covered, repetitions = 5.0, 0, 200
    for repetition in range(repetitions):
        sample = rng.normal(true_mean, 2.0, size=30)
        summary = stats.summarize([[v] for v in sample], n_resamples=1000, seed=repetition)
        covered += summary.mean_low <= true_mean <= summary.mean_high
    assert 0.88 <= covered / repetitions <= 0.99


def brute_force_improvement(x, y, higher=True):
    total = 0.0
    for a in x:
        for b in y:
            if a == b:
                total += 0.5
            elif (a > b) == higher:
                total += 1.0
    return total / (len(x) * len(y))


def test_probability_of_improvement_hand_cases():
    assert stats.probability_of_improvement([1, 2, 3], [2]) == pytest.approx(0.5)
    assert stats.probability_of_improvement([3, 3], [1, 3]) == pytest.approx(0.75)
    assert stats.probability_of_improvement([3, 3], [1, 3], higher_is_better=False) == 0.25
    # exp_a's policy_sharing groups (see tests/fixtures_results.py): 19 / 36
    shared, independent = [1, 3, 0, 10, 1, 5], [4, 8, -1, 1, 2, 2]
    assert stats.probability_of_improvement(shared, independent) == pytest.approx(19 / 36)
    assert np.isnan(stats.probability_of_improvement([], [1.0]))


def test_probability_of_improvement_matches_brute_force_with_ties():
    rng = np.random.default_rng(5)
    for _ in range(20):
        x = rng.integers(0, 6, size=rng.integers(1, 12)).astype(float)
        y = rng.integers(0, 6, size=rng.integers(1, 12)).astype(float)
        for higher in (True, False):
            expected = brute_force_improvement(x, y, higher)
            actual = stats.probability_of_improvement(x, y, higher_is_better=higher)
            assert actual == pytest.approx(expected)


def test_curve_band_means_available_trials():
    curves = np.array([[1.0, 2.0, np.nan], [3.0, 4.0, 5.0]])
    mean, low, high = stats.curve_band(curves, n_resamples=500)
    np.testing.assert_allclose(mean, [2.0, 3.0, 5.0])
    # at x0 the resampled means are 1, 2 or 3; where one trial remains the band is a point
    assert (low[0], high[0]) == (1.0, 3.0)
    assert low[2] == high[2] == 5.0
