"""Equal-budget comparison: every trial's search metric at one common env-step count.

Trials of one search run for different lengths (ASHA stops some at a rung, errors end others), so
a trial's best or last objective comes from however long it ran. Whatever compares trials or
groups of trials (factor tables, importance, parallel coordinates) reads them at one budget:

* The **budget** B of a set of trials is the largest env-step count every finished
  (``TERMINATED``) trial reached: the least of their final ``env_steps``. Trials that ended
  otherwise (``ERROR``, still running) do not lower it; they take part if they reached it.
  Without a finished trial, every trial with iteration rows sets it.
* A trial's **value at B** is the search metric it reported at its first iteration with
  ``env_steps >= B``: what ASHA would rank it by at a rung of B env steps. For a validation metric
  (``val_*``) that is the latest validation of the greedy policy, measured at that row's
  ``val_env_steps`` (``measured_env_steps``, at most one ``eval_interval`` earlier); for a
  training metric it is the iteration's own value. The row overshoots B by less than one batch.

Env steps are per seed (what each seed's algorithm sampled), as in the results files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.load import is_validation_metric

TRIAL_KEY = ["experiment", "trial_id"]
FINISHED = "TERMINATED"
VALUE_COLUMNS = [
    "budget_env_steps",
    "objective_at_budget",
    "objective_at_budget_per_seed",
    "measured_env_steps",
]
"""Columns :func:`at_budget` adds to a trials frame."""


def measured_by(metric: str) -> str:
    """Which steps a metric's values are measured at, for tables and notes."""
    if is_validation_metric(metric):
        return "validation (val_env_steps)"
    return "training iteration (env_steps)"


def trial_lengths(trials: pd.DataFrame, iterations: pd.DataFrame) -> pd.Series:
    """Each trial's final env steps from its iteration rows (NaN without rows), aligned to
    ``trials``."""
    if iterations.empty:
        return pd.Series(np.nan, index=trials.index)
    lengths = iterations.groupby(TRIAL_KEY)["env_steps"].max()
    keys = pd.MultiIndex.from_frame(trials[TRIAL_KEY])
    return pd.Series(lengths.reindex(keys).to_numpy(dtype=float), index=trials.index)


def comparison_budget(trials: pd.DataFrame, iterations: pd.DataFrame) -> int | None:
    """B for ``trials`` (see the module doc); None when no trial has iteration rows."""
    lengths = trial_lengths(trials, iterations)
    finished = (trials["status"] == FINISHED).to_numpy() & lengths.notna().to_numpy()
    pool = lengths[finished] if finished.any() else lengths.dropna()
    return int(pool.min()) if len(pool) else None


def at_budget(
    trials: pd.DataFrame, iterations: pd.DataFrame, budget: int | None = None
) -> pd.DataFrame:
    """``trials`` plus :data:`VALUE_COLUMNS` at ``budget`` (default: :func:`comparison_budget`).

    Trials that never reached the budget get NaN values (and an empty per-seed list).
    """
    if budget is None:
        budget = comparison_budget(trials, iterations)
    out = trials.copy()
    out["budget_env_steps"] = budget
    out["objective_at_budget"] = math.nan
    out["objective_at_budget_per_seed"] = [np.array([]) for _ in range(len(out))]
    out["measured_env_steps"] = math.nan
    if budget is None or iterations.empty:
        return out
    reached = iterations[iterations["env_steps"] >= budget]
    first = reached.sort_values([*TRIAL_KEY, "iteration"]).drop_duplicates(TRIAL_KEY)
    rows = first.set_index(TRIAL_KEY)
    keys = list(zip(out["experiment"], out["trial_id"], strict=True))
    for position, (key, metric) in enumerate(zip(keys, out["metric"], strict=True)):
        if key not in rows.index:
            continue
        row = rows.loc[key]
        steps_column = "val_env_steps" if is_validation_metric(str(metric)) else "env_steps"
        per_seed = row["objective_per_seed"]
        out.iat[position, out.columns.get_loc("objective_at_budget")] = float(row["objective"])
        out.iat[position, out.columns.get_loc("objective_at_budget_per_seed")] = np.asarray(
            [] if per_seed is None else per_seed, dtype=float
        )
        measured = row[steps_column]
        out.iat[position, out.columns.get_loc("measured_env_steps")] = (
            float(measured) if measured is not None and pd.notna(measured) else math.nan
        )
    return out


@dataclass(frozen=True)
class BudgetCounts:
    """How many of a scope's trials the comparison at B uses, and why the others are left out."""

    trials: int
    compared: int
    not_reached: int
    no_value: int
    stopped_early: int
    """Compared trials that the scheduler stopped early."""


def budget_counts(valued: pd.DataFrame, iterations: pd.DataFrame) -> BudgetCounts:
    """Counts for ``valued``, the output of :func:`at_budget`."""
    budget = valued["budget_env_steps"].iloc[0] if len(valued) else None
    lengths = trial_lengths(valued, iterations).to_numpy()
    reached = (
        np.zeros(len(valued), dtype=bool)
        if budget is None or pd.isna(budget)
        else np.nan_to_num(lengths, nan=-1.0) >= float(budget)
    )
    finite = np.isfinite(valued["objective_at_budget"].astype(float).to_numpy())
    stopped = valued["stopped_early"].fillna(False).astype(bool).to_numpy()
    return BudgetCounts(
        trials=len(valued),
        compared=int(finite.sum()),
        not_reached=int((~reached).sum()),
        no_value=int((reached & ~finite).sum()),
        stopped_early=int((finite & stopped).sum()),
    )
