"""What the trial scheduler stopped, and the compute that saved.

``stopped_early`` is written with the scheduler's reading (``tune_grid/results/early_stop.py``):
under a scheduler that stops trials (ASHA) a trial's *rung* is the number of iterations it had run
when it was stopped; under one that never does (FIFO, a population scheduler) no trial is stopped
early and nothing is counted as saved. Compute saved is priced against a counterfactual in which
every early-stopped trial runs to the iteration bound, the stop condition's ``max_iterations`` when
the results carry it (``tune_grid.max_iterations`` metadata) or else the largest ``iterations``
observed in the experiment; trials that were not stopped early (finished, errored or still
running) cost what they ran in both cases, so a failure is not mistaken for a saving.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.load import Results

RUNG_COLUMNS = ["experiment", "rung", "trials_stopped"]
COMPUTE_COLUMNS = [
    "experiment",
    "trials",
    "stopped_early",
    "max_iterations",
    "max_iterations_source",
    "iterations_run",
    "iterations_full",
    "iterations_saved",
    "iterations_saved_frac",
    "env_steps_run",
    "env_steps_full",
    "env_steps_saved",
    "env_steps_saved_frac",
]


def rung_counts(trials: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """Trials stopped early per rung (iterations done when stopped), ascending."""
    stopped = trials[trials["stopped_early"].fillna(False).astype(bool)]
    counts = stopped["iterations"].astype(int).value_counts().sort_index()
    return pd.DataFrame(
        {
            "experiment": experiment,
            "rung": counts.index.astype(int),
            "trials_stopped": counts.values,
        }
    )


def compute_saved(trials: pd.DataFrame, experiment: str, max_iterations: int | None) -> dict:
    """One row of ``COMPUTE_COLUMNS``: iterations and env steps run vs. the counterfactual."""
    iterations = trials["iterations"].fillna(0).astype(int).to_numpy()
    env_steps = trials["env_steps"].fillna(0).astype(float).to_numpy()
    stopped = trials["stopped_early"].fillna(False).astype(bool).to_numpy()
    observed = int(iterations.max()) if iterations.size else 0
    bound = max_iterations if max_iterations is not None else observed
    source = "metadata" if max_iterations is not None else "observed"
    ran = iterations > 0
    per_iteration = np.zeros_like(env_steps)
    per_iteration[ran] = env_steps[ran] / iterations[ran]
    typical = float(np.median(per_iteration[ran])) if ran.any() else 0.0
    per_iteration[~ran] = typical
    full_iterations = np.where(stopped, np.maximum(iterations, bound), iterations)
    full_steps = np.where(stopped, per_iteration * full_iterations, env_steps)
    run_i, full_i = int(iterations.sum()), int(full_iterations.sum())
    run_s, full_s = float(env_steps.sum()), float(full_steps.sum())
    return {
        "experiment": experiment,
        "trials": len(trials),
        "stopped_early": int(stopped.sum()),
        "max_iterations": int(bound),
        "max_iterations_source": source,
        "iterations_run": run_i,
        "iterations_full": full_i,
        "iterations_saved": full_i - run_i,
        "iterations_saved_frac": (full_i - run_i) / full_i if full_i else 0.0,
        "env_steps_run": int(round(run_s)),
        "env_steps_full": int(round(full_s)),
        "env_steps_saved": int(round(full_s - run_s)),
        "env_steps_saved_frac": (full_s - run_s) / full_s if full_s else 0.0,
    }


def early_stopping_tables(results: Results) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rung counts, compute saved) over every experiment."""
    rungs = [rung_counts(results.experiment_trials(name), name) for name in results.experiments]
    compute = [
        compute_saved(results.experiment_trials(name), name, results.max_iterations.get(name))
        for name in results.experiments
    ]
    rung_frame = pd.concat(rungs, ignore_index=True) if rungs else pd.DataFrame()
    return rung_frame.reindex(columns=RUNG_COLUMNS), pd.DataFrame(compute, columns=COMPUTE_COLUMNS)
