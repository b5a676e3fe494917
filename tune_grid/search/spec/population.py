"""Population-based training of tune-grid trials: Ray Tune's PBT and PB2, with lineage.

On an exploit Ray's scheduler gives the trial new values (the top trial's config, mutated) and
points it at the top trial's checkpoint; the trial restarts from it. Here the scheduler also:

* copies that checkpoint (all seeds) into the exploiting trial's folder, ``pbt_clone_<n>/``: the
  top trial keeps training and Tune deletes its older checkpoints, possibly before the exploiting
  trial has restarted; the newest two copies per trial are kept (a resumed search may still point
  at the one before the last);
* rewrites the copy's ``trial_state.json``: the trial's own counters (iteration, wall time,
  restores) and history go on, the env steps are those of the cloned weights, ``exploits`` counts
  one more and ``parent_trial_id`` / ``parent_iteration`` name the checkpoint cloned; the trainable
  reports them in every row, so the Parquet files hold each trial's lineage;
* takes a top trial's clonable checkpoint from its report (Ray would save it a second time);
* keeps every mutated value inside its range (:class:`KeepInRange`; PBT's 0.8/1.2 scaling would
  leave it);
* ranks only the trials still training: a trial whose last result met the search's ``stop`` is
  left out of the quantiles at once. It neither exploits (the trainable ends after that report)
  nor is cloned from (the clone would take over its env steps); either way the restarted trial
  would end at once, with new values in its config that no row was trained with. Ray leaves out
  a trial only when Tune marks it finished, which can come several reports later: until then a
  finished best trial stays the only top trial and blocks every exploit.

The trainable writes the new values into every seed's learner after the restore
(:func:`tune_grid.training.algorithms.apply_hyperparameters`). Imports Ray Tune.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from ray.train._internal.session import _TrainingResult
from ray.tune import Checkpoint
from ray.tune.experiment import Trial
from ray.tune.schedulers import PopulationBasedTraining
from ray.tune.schedulers.pb2 import PB2

from tune_grid.results.early_stop import stop_reached
from tune_grid.results.trial_state import STATE_FILE, TrialState, row_counters
from tune_grid.search.spec.distributions import encode_value
from tune_grid.search.spec.view import SpecView

CLONE_PREFIX = "pbt_clone_"
CLONES_KEPT = 2


class KeepInRange:
    """PBT's ``custom_explore_fn``: continuous mutated values clipped to ``[low, high]``, as
    Python floats (PB2 proposes numpy floats)."""

    def __init__(self, bounds: dict[str, tuple[float, float]]) -> None:
        self.bounds = dict(bounds)

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        out = dict(config)
        for key, (low, high) in self.bounds.items():
            if key in out and out[key] is not None:
                out[key] = float(min(max(float(out[key]), low), high))
        return out


def continuous_bounds(spec: SpecView) -> dict[str, tuple[float, float]]:
    """``key -> (low, high)`` of every mutated key with a continuous range."""
    out = {}
    for key, param in spec.scheduler.hyperparam_mutations.items():
        if param.kind.grid_values is None and param.low is not None and param.high is not None:
            out[key] = (float(param.low), float(param.high))
    return out


def pbt_mutations(spec: SpecView) -> dict[str, Any]:
    """Ray's ``hyperparam_mutations``: a Tune domain for a continuous range (scaled by 0.8 or 1.2,
    or redrawn), the list of values of a discrete one (moved to a neighbouring value)."""
    out: dict[str, Any] = {}
    for key, param in spec.scheduler.hyperparam_mutations.items():
        if param.kind.grid_values is None:
            out[key] = param.kind.tune_domain(param)
        else:
            out[key] = [encode_value(v) for v in param.grid_values()]
    return out


def exploit_state(own: TrialState, donor: TrialState, donor_trial_id: str) -> TrialState:
    """The state a trial restarts from after cloning ``donor``'s checkpoint."""
    return TrialState(
        iteration=own.iteration,
        env_steps=donor.env_steps,
        time_total_s=own.time_total_s,
        restores=own.restores,
        history=list(own.history),
        exploits=own.exploits + 1,
        parent_trial_id=donor_trial_id,
        parent_iteration=donor.iteration,
    )


def own_state(trial_dir: Path, result: dict[str, Any]) -> TrialState:
    """The trial's state at its last report: the checkpoint it reported with it, else the row."""
    name = result.get("checkpoint_dir_name")
    if name:
        try:
            return TrialState.from_json(json.loads((trial_dir / name / STATE_FILE).read_text()))
        except (OSError, ValueError, KeyError):
            pass
    return TrialState(
        iteration=int(result.get("iteration", 0)),
        env_steps=int(result.get("env_steps", 0)),
        time_total_s=float(result.get("trial_time_total_s", 0.0)),
        restores=int(result.get("restores", 0)),
        exploits=int(result.get("exploits") or 0),
        parent_trial_id=result.get("parent_trial_id"),
        parent_iteration=result.get("parent_iteration"),
    )


def clone_checkpoint(
    donor: Checkpoint, donor_trial_id: str, trial_dir: Path, result: dict[str, Any]
) -> Checkpoint:
    """Copy ``donor`` into ``trial_dir/pbt_clone_<n>`` with the exploiting trial's state."""
    own = own_state(trial_dir, result)
    target = trial_dir / f"{CLONE_PREFIX}{own.exploits + 1:04d}"
    staging = target.with_name(target.name + ".tmp")
    for stale in (staging, target):  # an exploit redone after a resume
        shutil.rmtree(stale, ignore_errors=True)
    donor.to_directory(str(staging))
    donor_state = TrialState.from_json(json.loads((staging / STATE_FILE).read_text()))
    state = exploit_state(own, donor_state, donor_trial_id)
    (staging / STATE_FILE).write_text(json.dumps(state.to_json()) + "\n")
    staging.rename(target)
    clones = sorted(p for p in trial_dir.glob(CLONE_PREFIX + "*") if not p.name.endswith(".tmp"))
    for old in clones[:-CLONES_KEPT]:
        shutil.rmtree(old, ignore_errors=True)
    clone = Checkpoint.from_directory(str(target))
    assert isinstance(clone, Checkpoint)  # Ray annotates from_directory with its base class
    return clone


class _Lineage:
    """Mixin for Ray's PBT and PB2: exploit from a private copy that carries the lineage."""

    _trial_state: dict[Any, Any]
    _num_checkpoints: int

    def __init__(self, *args: Any, stop: dict[str, float] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stop = dict(stop or {})

    def _quantiles(self) -> tuple[list[Any], list[Any]]:
        """Ray's quantiles over the trials whose last result has not met the stop."""
        every_state = self._trial_state
        self._trial_state = {
            trial: state
            for trial, state in every_state.items()
            if not stop_reached(self._stop, row_counters(state.last_result or {}))
        }
        try:
            return super()._quantiles()  # type: ignore[misc]
        finally:
            self._trial_state = every_state

    def _checkpoint_or_exploit(
        self, trial: Any, tune_controller: Any, upper_quantile: list[Any], lower_quantile: list[Any]
    ) -> None:
        result = self._trial_state[trial].last_result or {}
        # A top trial's clonable checkpoint is the one it reported with this result. Ray's PBT
        # would ask the trial to save it again, and Tune would then register it twice and later
        # fail to delete it a second time ("Error handling checkpoint: Path not found").
        name = result.get("checkpoint_dir_name")
        if trial in upper_quantile and trial.status != Trial.PAUSED and name:
            path = Path(trial.path) / name
            self._trial_state[trial].last_checkpoint = Checkpoint.from_directory(str(path))
            self._num_checkpoints += 1
            return
        super()._checkpoint_or_exploit(  # type: ignore[misc]
            trial, tune_controller, upper_quantile, lower_quantile
        )

    def _exploit(self, tune_controller: Any, trial: Any, trial_to_clone: Any) -> None:
        result = dict(self._trial_state[trial].last_result or {})
        donor = self._trial_state[trial_to_clone].last_checkpoint
        super()._exploit(tune_controller, trial, trial_to_clone)  # type: ignore[misc]
        clone = clone_checkpoint(donor, trial_to_clone.trial_id, Path(trial.path), result)
        # As Ray's PBT does: the trial restarts from its manager's latest checkpoint. Its metrics
        # are the trial's own, so Tune's counters (training_iteration) go on from the trial's.
        trial.run_metadata.checkpoint_manager._latest_checkpoint_result = _TrainingResult(
            checkpoint=clone, metrics=result
        )


class LineagePBT(_Lineage, PopulationBasedTraining):
    """Ray Tune's PopulationBasedTraining with tune-grid's lineage (see the module)."""


class LineagePB2(_Lineage, PB2):
    """Ray Tune's PB2 with tune-grid's lineage (see the module)."""


def build_pbt(spec: SpecView) -> LineagePBT:
    """The ``pbt`` scheduler of a validated search file (metric and mode come from Tune)."""
    s = spec.scheduler
    return LineagePBT(
        time_attr=s.time_attr,
        perturbation_interval=float(s.perturbation_interval or math.inf),
        hyperparam_mutations=pbt_mutations(spec),
        quantile_fraction=s.quantile_fraction,
        resample_probability=s.resample_probability,
        custom_explore_fn=KeepInRange(continuous_bounds(spec)),
        stop=dict(spec.stop.items()),
    )


def build_pb2(spec: SpecView) -> LineagePB2:
    """The ``pb2`` scheduler of a validated search file: every mutated range is continuous."""
    s = spec.scheduler
    bounds = continuous_bounds(spec)
    return LineagePB2(
        time_attr=s.time_attr,
        perturbation_interval=float(s.perturbation_interval or math.inf),
        hyperparam_bounds={key: [low, high] for key, (low, high) in bounds.items()},
        quantile_fraction=s.quantile_fraction,
        custom_explore_fn=KeepInRange(bounds),
        stop=dict(spec.stop.items()),
    )
