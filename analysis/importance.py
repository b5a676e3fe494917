"""Hyperparameter importance: Optuna's fANOVA on the stored study, and a model-free fallback.

fANOVA (Hutter et al., 2014) fits a random forest to (params -> objective) and splits the
forest's variance into the share each param explains; Optuna's evaluator needs scikit-learn and a
study with at least two finished trials.

The fallback, always computed from the Parquet results, is a one-way variance decomposition per
param (main effects only, no surrogate model, no interactions): numeric params with more than
``n_bins`` distinct values are cut into ``n_bins`` quantile bins (so the scale, log or linear,
does not matter), categorical ones keep their values, and the effect size is epsilon squared,

    eps2 = (SS_between - (k - 1) * MS_within) / SS_total,

the fraction of the target's variance explained by the param's groups, corrected for the
upward bias of k groups fitted to few trials and clipped to [0, 1]. ``share`` divides by the sum
over params, to compare with fANOVA's normalised importances. It is NaN where every group holds
one trial (no within-group variance to correct with) and 0 for a constant param.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.load import (
    Results,
    is_categorical,
    param_columns,
    short_name,
    value_label,
    varying_params,
)

IMPORTANCE_COLUMNS = ["experiment", "method", "target", "param", "importance", "share"]
FALLBACK_METHOD = "binned_variance"
FANOVA_METHOD = "fanova"
FALLBACK_TARGETS = {"objective": "last_objective", "test_daily_cost": "test_daily_cost"}
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


def fanova_importance(
    db_path: Path, study_name: str, seed: int = 0
) -> tuple[dict[str, float] | None, str]:
    """(param -> importance, note) from the Optuna study; None and the reason when unavailable.

    The database is opened read-only, so analysis never modifies a study.
    """
    try:
        import optuna
    except ImportError:  # pragma: no cover - optuna is a dependency
        return None, "fANOVA skipped: optuna is not installed"
    try:
        import sklearn  # noqa: F401  # fANOVA's random forest
    except ImportError:
        return None, "fANOVA skipped: scikit-learn is not installed"
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            storage = f"sqlite:///file:{db_path.resolve()}?mode=ro&uri=true"
            names = optuna.get_all_study_names(storage)
            if study_name not in names:
                if len(names) != 1:
                    return None, (
                        f"fANOVA skipped: {db_path} has no study {study_name!r} "
                        f"(studies: {', '.join(names) or 'none'})"
                    )
                study_name = names[0]
            study = optuna.load_study(study_name=study_name, storage=storage)
            if len(study.directions) != 1:
                return None, "fANOVA skipped: the study is multi-objective"
            finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if len(finished) < 2:
                return None, f"fANOVA skipped: {len(finished)} finished trial(s) in the study"
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
            values = optuna.importance.get_param_importances(
                study, evaluator=evaluator, normalize=True
            )
    except Exception as exc:  # a foreign or damaged database must not sink the report
        return None, f"fANOVA skipped: {db_path}: {' '.join(str(exc).split())[:200]}"
    finally:
        optuna.logging.set_verbosity(verbosity)
    clean = {_study_param_name(k): float(v) for k, v in values.items()}
    return clean, f"fANOVA on study {study_name!r} ({len(finished)} finished trials)"


def _study_param_name(name: str) -> str:
    """Ray's OptunaSearch may nest names (``train_loop_config/lr``); keep the last part."""
    return name.replace(".", "/").split("/")[-1]


def importance_table(
    results: Results, seed: int = 0, n_bins: int = 4
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """(importance rows, notes per experiment) from fANOVA where possible plus the fallback."""
    rows: list[dict[str, Any]] = []
    notes: dict[str, list[str]] = {}
    for name in results.experiments:
        trials = results.experiment_trials(name)
        notes[name] = []
        db_path = results.optuna_db.get(name)
        if db_path is not None:
            values, note = fanova_importance(db_path, results.study_name.get(name, name), seed)
            notes[name].append(note)
            for param, value in (values or {}).items():
                rows.append(
                    {
                        "experiment": name,
                        "method": FANOVA_METHOD,
                        "target": "objective",
                        "param": param,
                        "importance": value,
                        "share": value,
                    }
                )
        else:
            notes[name].append("fANOVA skipped: no optuna.db in the results folder")
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
                    {
                        "experiment": name,
                        "method": FALLBACK_METHOD,
                        "target": target,
                        "param": record.param,
                        "importance": float(record.importance),
                        "share": float(record.share),
                    }
                )
    return pd.DataFrame(rows, columns=IMPORTANCE_COLUMNS), notes
