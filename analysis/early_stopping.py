"""What the trial scheduler stopped, and the compute that saved.

``stopped_early`` is written with the scheduler's reading (``tune_grid/results/early_stop.py``):
under a scheduler that stops trials (ASHA) a trial's *rung* is how far it had got when it was
stopped, in env steps (rungs count env steps by default) or, for results whose stop bound counts
iterations, in iterations; under one that never stops trials (FIFO, a population scheduler) no
trial is stopped early and nothing is counted as saved.

Compute is counted in env steps per seed (iterations alongside) and priced against a
counterfactual in which every early-stopped trial runs on to the stop bound: the search's stop
condition from the trials file's ``tune_grid.stop`` metadata (``env_steps`` and/or
``training_iteration``; with both, whichever the trial reaches first, an iteration costing the
trial's own env steps per iteration), else the ``tune_grid.max_iterations`` of older files, else
the most env steps any trial of the experiment ran (``bound_source`` "observed"; also for a time
limit alone, which bounds neither). Trials that were not stopped early (finished, errored or still
running) cost what they ran in both cases, so a failure is not mistaken for a saving.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.load import Results, StopBound

RUNG_COLUMNS = ["experiment", "unit", "rung", "trials_stopped"]
COMPUTE_COLUMNS = [
    "experiment",
    "trials",
    "stopped_early",
    "stop",
    "bound_env_steps",
    "bound_iterations",
    "bound_source",
    "env_steps_run",
    "env_steps_full",
    "env_steps_saved",
    "env_steps_saved_frac",
    "iterations_run",
    "iterations_full",
    "iterations_saved",
    "iterations_saved_frac",
]


def rung_unit(bound: StopBound) -> str:
    """``iterations`` when the stop bound counts only iterations (older searches), else
    ``env_steps``."""
    return "iterations" if bound.iterations is not None and bound.env_steps is None else "env_steps"


def rung_counts(trials: pd.DataFrame, experiment: str, bound: StopBound) -> pd.DataFrame:
    """Trials stopped early per rung (how far each had got when stopped), ascending."""
    unit = rung_unit(bound)
    stopped = trials[trials["stopped_early"].fillna(False).astype(bool)]
    counts = stopped[unit].fillna(0).astype(int).value_counts().sort_index()
    return pd.DataFrame(
        {
            "experiment": experiment,
            "unit": unit,
            "rung": counts.index.astype(int),
            "trials_stopped": counts.values,
        }
    )


def compute_saved(trials: pd.DataFrame, experiment: str, bound: StopBound) -> dict:
    """One row of ``COMPUTE_COLUMNS``: env steps and iterations run vs. the counterfactual."""
    iterations = trials["iterations"].fillna(0).astype(int).to_numpy()
    env_steps = trials["env_steps"].fillna(0).astype(float).to_numpy()
    stopped = trials["stopped_early"].fillna(False).astype(bool).to_numpy()
    bound_steps, bound_iterations, source = bound.env_steps, bound.iterations, bound.source
    if bound_steps is None and bound_iterations is None:
        bound_steps = float(env_steps.max()) if env_steps.size else 0.0
        source = "observed"
    ran = iterations > 0
    per_iteration = np.zeros_like(env_steps)
    per_iteration[ran] = env_steps[ran] / iterations[ran]
    typical = float(np.median(per_iteration[ran])) if ran.any() else 0.0
    per_iteration[~ran | (per_iteration <= 0)] = typical
    # each stopped trial's (env steps, iterations) at every bound; it ends at the first reached
    options_steps, options_iterations = [], []
    if bound_steps is not None:
        steps = np.maximum(env_steps, bound_steps)
        with np.errstate(invalid="ignore", divide="ignore"):
            needed = np.where(per_iteration > 0, np.ceil(bound_steps / per_iteration), iterations)
        options_steps.append(steps)
        options_iterations.append(np.maximum(iterations, needed.astype(int)))
    if bound_iterations is not None:
        counts = np.maximum(iterations, bound_iterations)
        options_steps.append(np.maximum(env_steps, per_iteration * counts))
        options_iterations.append(counts)
    first = np.argmin(np.vstack(options_steps), axis=0)
    columns = np.arange(len(trials))
    full_steps = np.where(stopped, np.vstack(options_steps)[first, columns], env_steps)
    full_iterations = np.where(stopped, np.vstack(options_iterations)[first, columns], iterations)
    run_s, full_s = float(env_steps.sum()), float(full_steps.sum())
    run_i, full_i = int(iterations.sum()), int(full_iterations.sum())
    return {
        "experiment": experiment,
        "trials": len(trials),
        "stopped_early": int(stopped.sum()),
        "stop": bound.text,
        "bound_env_steps": None if bound_steps is None else int(round(bound_steps)),
        "bound_iterations": bound_iterations,
        "bound_source": source,
        "env_steps_run": int(round(run_s)),
        "env_steps_full": int(round(full_s)),
        "env_steps_saved": int(round(full_s - run_s)),
        "env_steps_saved_frac": (full_s - run_s) / full_s if full_s else 0.0,
        "iterations_run": run_i,
        "iterations_full": full_i,
        "iterations_saved": full_i - run_i,
        "iterations_saved_frac": (full_i - run_i) / full_i if full_i else 0.0,
    }


def early_stopping_tables(results: Results) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rung counts, compute saved) over every experiment."""
    bounds = {name: results.stop_bound.get(name, StopBound()) for name in results.experiments}
    rungs = [
        rung_counts(results.experiment_trials(name), name, bounds[name])
        for name in results.experiments
    ]
    compute = [
        compute_saved(results.experiment_trials(name), name, bounds[name])
        for name in results.experiments
    ]
    rung_frame = pd.concat(rungs, ignore_index=True) if rungs else pd.DataFrame()
    return rung_frame.reindex(columns=RUNG_COLUMNS), pd.DataFrame(compute, columns=COMPUTE_COLUMNS)
