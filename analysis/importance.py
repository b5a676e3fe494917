"""Hyperparameter importance at equal budget: fANOVA and a model-free fallback.

Both explain the same target: each trial's search objective at the experiment's comparison budget
(:mod:`analysis.budget`), so a trial ASHA stopped early is not read against one that ran on; trials
that did not reach the budget are left out. (The stored Optuna study holds each trial's last
value, from runs of unequal length, so its values are not used.)

fANOVA (Hutter et al., 2014) fits a random forest to (params -> target) and splits the forest's
variance into the share each param explains. It runs through Optuna's evaluator on an in-memory
study of the compared trials; the numeric params' ranges come from the search's ``optuna.db``
when it records them, else from the values observed. It needs scikit-learn.

The fallback, always computed, is a one-way variance decomposition per param (main effects only,
no surrogate model, no interactions): numeric params with more than ``n_bins`` distinct values
are cut into ``n_bins`` quantile bins (so the scale, log or linear, does not matter), categorical
ones keep their values, and the effect size is epsilon squared,

    eps2 = (SS_between - (k - 1) * MS_within) / SS_total,

the fraction of the target's variance explained by the param's groups, corrected for the
upward bias of k groups fitted to few trials and clipped to [0, 1]. ``share`` divides by the sum
over params, to compare with fANOVA's normalised importances. It is NaN where every group holds
one trial (no within-group variance to correct with) and 0 for a constant param. Its second
target, ``test_daily_cost``, is the held-out cost of each evaluated trial's best checkpoint.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.budget import at_budget
from analysis.load import (
    Results,
    is_categorical,
    param_columns,
    short_name,
    value_label,
    varying_params,
)

IMPORTANCE_COLUMNS = [
    "experiment",
    "method",
    "target",
    "budget_env_steps",
    "param",
    "importance",
    "share",
]
FALLBACK_METHOD = "binned_variance"
FANOVA_METHOD = "fanova"
FALLBACK_TARGETS = {"objective": "objective_at_budget", "test_daily_cost": "test_daily_cost"}
LOG_SPAN = 100.0  # numbers spanning this factor or more (all positive) get a log-scaled range
MIN_TRIALS = 3


def epsilon_squared(groups: pd.Series, target: np.ndarray) -> float:
    """Bias-corrected share of ``target`` variance explained by ``groups`` (see module doc)."""
    frame = pd.DataFrame({"g": groups.to_numpy(), "y": target})
    n, k = len(frame), frame["g"].nunique()
    total = float(((frame["y"] - frame["y"].mean()) ** 2).sum())
    if k < 2 or total <= 0.0:
        return 0.0
    if n - k <= 0:
        return math.nan
    group_means = frame.groupby("g")["y"].transform("mean")
    within = float(((frame["y"] - group_means) ** 2).sum())
    between = total - within
    value = (between - (k - 1) * within / (n - k)) / total
    return float(min(1.0, max(0.0, value)))


def binned(series: pd.Series, n_bins: int) -> pd.Series:
    """Group labels: categories as they are, numbers in quantile bins; missing values as 'none'."""
    if is_categorical(series) or series.dropna().nunique() <= n_bins:
        return series.map(value_label)
    numbers = pd.to_numeric(series, errors="coerce")
    bins = pd.qcut(numbers, q=n_bins, duplicates="drop")
    return bins.astype(str).where(numbers.notna(), "none")


def variance_importance(trials: pd.DataFrame, target_column: str, n_bins: int = 4) -> pd.DataFrame:
    """Fallback importance of every ``param_*`` column for ``target_column`` (finite rows)."""
    target = trials[target_column].astype(float).to_numpy()
    keep = np.isfinite(target)
    rows = []
    varying = set(varying_params(trials[keep])) if keep.any() else set()
    for column in param_columns(trials):
        if column in varying:
            value = epsilon_squared(binned(trials.loc[keep, column], n_bins), target[keep])
        else:
            value = 0.0
        rows.append({"param": short_name(column), "importance": value})
    frame = pd.DataFrame(rows, columns=["param", "importance"])
    total = np.nansum(frame["importance"].to_numpy(dtype=float)) if len(frame) else 0.0
    frame["share"] = frame["importance"] / total if total > 0 else 0.0
    return frame.sort_values("importance", ascending=False, na_position="last", kind="stable")


Range = tuple[float, float, bool]
"""(low, high, log) of a numeric param."""


def study_ranges(db_path: Path, study_name: str) -> tuple[dict[str, Range], str]:
    """(param -> range, note) of the numeric params recorded in the search's Optuna study.

    The database is opened read-only, so analysis never modifies a study; a missing, foreign or
    damaged one gives no ranges and says why.
    """
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ranges: dict[str, Range] = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            storage = f"sqlite:///file:{db_path.resolve()}?mode=ro&uri=true"
            names = optuna.get_all_study_names(storage)
            if study_name not in names:
                if len(names) != 1:
                    return {}, (
                        f"{db_path} has no study {study_name!r} "
                        f"(studies: {', '.join(names) or 'none'})"
                    )
                study_name = names[0]
            study = optuna.load_study(study_name=study_name, storage=storage)
            for trial in study.get_trials(deepcopy=False):
                for name, dist in trial.distributions.items():
                    if isinstance(
                        dist,
                        optuna.distributions.FloatDistribution
                        | optuna.distributions.IntDistribution,
                    ):
                        ranges[_study_param_name(name)] = (
                            float(dist.low),
                            float(dist.high),
                            bool(dist.log),
                        )
    except Exception as exc:  # a foreign or damaged database must not sink the report
        return {}, f"{db_path}: {' '.join(str(exc).split())[:200]}"
    finally:
        optuna.logging.set_verbosity(verbosity)
    return ranges, f"ranges from study {study_name!r}"


def _observed_range(values: np.ndarray) -> Range:
    low, high = float(values.min()), float(values.max())
    return low, high, bool(low > 0 and high / low >= LOG_SPAN)


def fanova_importance(
    trials: pd.DataFrame, target_column: str, ranges: dict[str, Range], seed: int = 0
) -> tuple[dict[str, float] | None, str]:
    """(param -> normalised importance, note) for ``target_column``; None and the reason when
    fANOVA cannot run. Numeric params use ``ranges`` where they hold every value observed."""
    try:
        import optuna
    except ImportError:  # pragma: no cover - optuna is a dependency
        return None, "fANOVA skipped: optuna is not installed"
    try:
        import sklearn  # noqa: F401  # fANOVA's random forest
    except ImportError:
        return None, "fANOVA skipped: scikit-learn is not installed"
    target = trials[target_column].astype(float).to_numpy()
    keep = np.isfinite(target)
    params = varying_params(trials[keep]) if keep.any() else []
    distributions: dict[str, Any] = {}
    values: dict[str, np.ndarray] = {}
    for column in params:
        name = short_name(column)
        series = trials.loc[keep, column]
        if is_categorical(series):
            labels = series.map(value_label).to_numpy()
            choices = tuple(sorted(set(labels)))
            distributions[name] = optuna.distributions.CategoricalDistribution(choices)
            values[name] = labels
            continue
        numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
        finite = numbers[np.isfinite(numbers)]
        low, high, log = _observed_range(finite)
        stored = ranges.get(name)
        if stored is not None and stored[0] <= low and high <= stored[1]:
            low, high, log = stored
        distributions[name] = optuna.distributions.FloatDistribution(low, high, log=log)
        values[name] = numbers
    if not distributions:
        return None, "fANOVA skipped: no hyperparameter varies among the compared trials"
    complete = np.ones(int(keep.sum()), dtype=bool)
    for param_values in values.values():
        if param_values.dtype.kind == "f":
            complete &= np.isfinite(param_values)
    if complete.sum() < MIN_TRIALS:
        return None, f"fANOVA skipped: {int(complete.sum())} compared trial(s) with every param"
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna.create_study()
            compared = target[keep]
            for index in np.flatnonzero(complete):
                study.add_trial(
                    optuna.trial.create_trial(
                        params={name: _param_value(v[index]) for name, v in values.items()},
                        distributions=distributions,
                        value=float(compared[index]),
                    )
                )
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
            importances = optuna.importance.get_param_importances(
                study, evaluator=evaluator, normalize=True
            )
    except Exception as exc:  # degenerate targets (all equal) and the like: a note, not a crash
        return None, f"fANOVA skipped: {' '.join(str(exc).split())[:200]}"
    finally:
        optuna.logging.set_verbosity(verbosity)
    return {k: float(v) for k, v in importances.items()}, (
        f"fANOVA on {int(complete.sum())} trials"
    )


def _param_value(value: Any) -> Any:
    return float(value) if isinstance(value, float | np.floating) else str(value)


def _study_param_name(name: str) -> str:
    """Ray's OptunaSearch may nest names (``train_loop_config/lr``); keep the last part."""
    return name.replace(".", "/").split("/")[-1]


def importance_table(
    results: Results, seed: int = 0, n_bins: int = 4
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """(importance rows, notes per experiment): fANOVA where it can run, plus the fallback."""
    rows: list[dict[str, Any]] = []
    notes: dict[str, list[str]] = {}
    for name in results.experiments:
        trials = at_budget(results.experiment_trials(name), results.experiment_iterations(name))
        budget = trials["budget_env_steps"].iloc[0]
        budget = None if pd.isna(budget) else int(budget)
        notes[name] = []
        ranges: dict[str, Range] = {}
        range_note = "numeric ranges as observed (no optuna.db)"
        db_path = results.optuna_db.get(name)
        if db_path is not None:
            ranges, range_note = study_ranges(db_path, results.study_name.get(name, name))
            if not ranges:
                range_note = f"numeric ranges as observed ({range_note})"
        values, note = fanova_importance(trials, FALLBACK_TARGETS["objective"], ranges, seed)
        if values is not None:
            note = f"{note}, objective at {budget} env steps; {range_note}"
        notes[name].append(note)
        for param, value in (values or {}).items():
            rows.append(_row(name, FANOVA_METHOD, "objective", budget, param, value, value))
        for target, column in FALLBACK_TARGETS.items():
            finite = int(np.isfinite(trials[column].astype(float)).sum())
            if finite < MIN_TRIALS:
                notes[name].append(
                    f"{FALLBACK_METHOD} for {target} skipped: {finite} trial(s) with a value"
                )
                continue
            frame = variance_importance(trials, column, n_bins)
            for record in frame.itertuples(index=False):
                rows.append(
                    _row(
                        name,
                        FALLBACK_METHOD,
                        target,
                        budget if target == "objective" else None,
                        record.param,
                        float(record.importance),
                        float(record.share),
                    )
                )
    return pd.DataFrame(rows, columns=IMPORTANCE_COLUMNS), notes


def _row(
    experiment: str,
    method: str,
    target: str,
    budget: int | None,
    param: str,
    importance: float,
    share: float,
) -> dict[str, Any]:
    return {
        "experiment": experiment,
        "method": method,
        "target": target,
        "budget_env_steps": budget,
        "param": param,
        "importance": importance,
        "share": share,
    }
