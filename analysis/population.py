"""The population-based training view: whose weights a trial ends with, and the hyperparameters
those weights were trained under.

Under PBT a trial that exploits another restarts from that trial's checkpoint, so its final
weights have an ancestry: its own rows since its last exploit, then the parent's rows up to the
checkpoint cloned (``parent_iteration``), then the parent's own parent, and so on. Every row
carries ``exploits``, ``parent_trial_id`` and ``parent_iteration`` and the values the learners
used (``hp/<key>``), so the ancestry is read from ``iterations.parquet`` alone.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.load import experiment_mode
from tune_grid.training.algorithms.entry import HP_PREFIX

LINEAGE_COLUMNS = (
    "step",
    "trial_id",
    "copied_from",
    "parent_iteration",
    "from_env_steps",
    "to_env_steps",
    "iterations",
)


def is_population(iterations: pd.DataFrame) -> bool:
    """Whether any trial cloned another's checkpoint (files before lineage columns: no)."""
    return "exploits" in iterations and bool((iterations["exploits"].fillna(0) > 0).any())


def schedule_columns(iterations: pd.DataFrame) -> list[str]:
    """The ``hp/<key>`` columns whose values differ between rows."""
    columns = [c for c in iterations.columns if c.startswith(HP_PREFIX)]
    return [c for c in columns if iterations[c].dropna().nunique() > 1]


def ancestry(iterations: pd.DataFrame, trial_id: str) -> pd.DataFrame:
    """The rows the trial's final weights were trained through, oldest first, with ``segment``
    (0 for the root trial's rows). Stops where a parent's rows are missing."""
    by_trial = {t: rows.sort_values("iteration") for t, rows in iterations.groupby("trial_id")}
    segments: list[pd.DataFrame] = []
    current, upto = trial_id, math.inf
    visited: set[tuple[str, float]] = set()
    while current in by_trial and (current, upto) not in visited:
        visited.add((current, upto))
        rows = by_trial[current]
        rows = rows[rows["iteration"] <= upto]
        if rows.empty:
            break
        exploits = int(_count(rows.iloc[-1]))
        segment = rows[rows["exploits"].fillna(0).astype(int) == exploits] if exploits else rows
        segments.append(segment)
        first = segment.iloc[0]
        if not exploits or pd.isna(first.get("parent_iteration")):
            break
        current, upto = str(first["parent_trial_id"]), float(first["parent_iteration"])
    if not segments:
        return iterations.iloc[0:0].assign(segment=pd.Series(dtype=int))
    ordered = list(reversed(segments))
    return pd.concat(
        [s.assign(segment=i) for i, s in enumerate(ordered)], ignore_index=True, sort=False
    )


def _count(row: pd.Series) -> float:
    value = row.get("exploits", 0)
    return 0.0 if value is None or pd.isna(value) else float(value)


def lineage_table(iterations: pd.DataFrame, trial_id: str) -> pd.DataFrame:
    """One row per stretch of the trial's ancestry: which trial trained the weights, which trial
    and iteration it copied them from, and the env steps it took them from and to, with the
    values of each varying ``hp/<key>`` at the stretch's start."""
    rows = ancestry(iterations, trial_id)
    hp = schedule_columns(iterations)
    records = []
    previous_end = 0.0
    for step, segment in rows.groupby("segment", sort=True):
        first, last = segment.iloc[0], segment.iloc[-1]
        copied = step > 0 and pd.notna(first.get("parent_trial_id"))
        record = {
            "step": int(step),
            "trial_id": first["trial_id"],
            "copied_from": first["parent_trial_id"] if copied else None,
            "parent_iteration": int(first["parent_iteration"]) if copied else None,
            "from_env_steps": previous_end if step > 0 else 0.0,
            "to_env_steps": float(last["env_steps"]),
            "iterations": len(segment),
        }
        record.update({c.removeprefix(HP_PREFIX): first[c] for c in hp})
        records.append(record)
        previous_end = float(last["env_steps"])
    columns = list(LINEAGE_COLUMNS) + [c.removeprefix(HP_PREFIX) for c in hp]
    frame = pd.DataFrame.from_records(records, columns=columns)
    return frame.astype({"parent_iteration": "Int64"})


def best_trial(trials: pd.DataFrame, experiment: str) -> str | None:
    """The trial with the best last objective (the final population's best)."""
    values = trials["last_objective"].astype(float)
    ranked = trials[np.isfinite(values)]
    if ranked.empty:
        return None
    ascending = experiment_mode(trials, experiment) == "min"
    ranked = ranked.sort_values(["last_objective", "trial_id"], ascending=[ascending, True])
    return str(ranked["trial_id"].iloc[0])
