"""The Tune function trainable: one sampled configuration, K seeds trained in lockstep.

Every iteration trains each of the K PPO algorithms (seeds ``seed, seed+1, ...``, each with its
own random stream, :class:`~tune_grid.training.seed_group.SeedGroup`) once and reports the seed
means as the trial's metrics, with every seed's value in ``<metric>_per_seed``. Every
``eval_interval`` env steps (and at the first and last iteration) each seed's greedy policy is
validated on the validation days (:mod:`tune_grid.training.validation`); the ``val_*`` metrics
of the latest validation are carried on every row (``val_env_steps`` says when they were
measured). ``objective`` is the search metric's seed mean (``val_objective`` by default).

A trial checkpoints at each validation only, so a kept checkpoint always holds the weights its
objective was measured on: the best checkpoint is the best validation point. One Tune checkpoint
holds all K algorithms (``seed_<k>/``, each a tune-grid checkpoint with its random state, plus
``trial_state.json``). A restarted trial restores all K from ``tune.get_checkpoint()`` and
continues the counters; it enforces the ``stop`` conditions itself, so a trial restored from a
checkpoint that already met them ends at once instead of training again.

After every restore the run's optimizer and loss settings are written into each seed's learner
(:func:`~tune_grid.training.algorithms.apply_hyperparameters`): a population scheduler restarts
a trial from another trial's checkpoint under new values, which RLlib's restore would override.
Every row carries the values read back from the learners (``hp/<key>``) and the trial's lineage
(``exploits``, ``parent_trial_id``, ``parent_iteration``; set in the checkpoint a population
scheduler clones, see :mod:`tune_grid.search.spec.population`).

The trainable enforces the ``stop`` conditions itself, so a trial restored from a checkpoint that
already met them ends at once instead of training again.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tune_grid.config import RunConfig
from tune_grid.results.early_stop import stop_reached
from tune_grid.results.schema import TRAINING_METRIC_NAMES, VALIDATION_METRIC_NAMES
from tune_grid.results.trial_state import STATE_FILE, TrialState, is_nan, json_safe

FAIL_ONCE_ENV = "TUNE_GRID_TEST_FAIL_ONCE"
"""Test hook: ``<marker file>:<iteration>`` makes each trial that reaches that iteration raise
once (the first one to create the marker file), to exercise retry-from-checkpoint."""


@dataclass(frozen=True)
class TrialSettings:
    """Everything the trainable needs besides the sampled run config (picklable)."""

    experiment: str
    seeds: int
    metric: str
    mode: str
    stop: dict[str, float]
    fail_once: tuple[str, int] | None = None
    every_iteration: bool = False
    """Validate and checkpoint at every iteration (population schedulers compare trials' latest
    objectives and clone their latest checkpoints)."""
    oracle: dict[str, dict[str, float]] = field(default_factory=dict)
    """Oracle objective per validation date, by :func:`tune_grid.oracle.config_key` of the env
    config it was solved for (solved by the driver before the trials start)."""

    def oracle_for(self, run: RunConfig) -> dict[str, float]:
        """The oracle's validation days for ``run``'s env config (empty: no ``val_gap``)."""
        from tune_grid.oracle import config_key

        return self.oracle.get(config_key(run.env_config()), {})


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not is_nan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _seed_means(per_seed: list[dict[str, float]], names: tuple[str, ...]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name in names:
        row[name] = _mean([m[name] for m in per_seed])
        row[f"{name}_per_seed"] = [float(m[name]) for m in per_seed]
    return row


def aggregate(per_seed: list[dict[str, float]]) -> dict[str, Any]:
    """Seed means of the training iterations' metrics (and per-seed lists of them)."""
    row = _seed_means(per_seed, TRAINING_METRIC_NAMES)
    row["env_steps"] = int(round(_mean([float(m["env_steps"]) for m in per_seed])))
    row["env_steps_this_iter"] = int(sum(int(m["env_steps_this_iter"]) for m in per_seed))
    row["episodes"] = int(sum(int(m["episodes"]) for m in per_seed))
    for timer in ("timers/sample_s", "timers/learn_s"):
        row[timer] = float(sum(m[timer] for m in per_seed if not is_nan(m[timer])))
    return row


def aggregate_validation(per_seed: list[dict[str, float]], env_steps: int) -> dict[str, Any]:
    """Seed means of one validation (``val_*``), per-seed lists and ``val_env_steps``."""
    row = _seed_means(per_seed, VALIDATION_METRIC_NAMES)
    row["val_env_steps"] = int(env_steps)
    return row


def with_objective(row: dict[str, Any], metric: str) -> dict[str, Any]:
    """``row`` plus ``objective`` (the search metric's seed mean) and ``objective_per_seed``."""
    return {
        **row,
        "objective": row.get(metric, math.nan),
        "objective_per_seed": list(row.get(f"{metric}_per_seed", [])),
    }


def _maybe_fail(settings: TrialSettings, iteration: int) -> None:
    if settings.fail_once is None:
        return
    marker, at_iteration = settings.fail_once
    if iteration != at_iteration:
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    raise RuntimeError(f"{FAIL_ONCE_ENV}: injected failure at iteration {iteration}")


def _node() -> tuple[str, str]:
    import ray

    try:
        return ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - outside a Ray worker (unit tests)
        return "", ""


def _save(
    directory: Path,
    group: Any,
    state: TrialState,
    trial_id: str,
    per_seed: list[dict[str, float]],
) -> None:
    from tune_grid.training.checkpoints import SEED_DIR, CheckpointMeta, save_checkpoint

    for k, (algo, run) in enumerate(zip(group.algos, group.runs, strict=True)):
        meta = CheckpointMeta(
            run_name=f"{trial_id}_seed{run.seed}",
            run_config=run,
            iteration=state.iteration,
            env_steps=int(per_seed[k]["env_steps"]),
            time_total_s=state.time_total_s,
        )
        seed_dir = directory / SEED_DIR.format(k=k)
        save_checkpoint(algo, seed_dir, meta)
        group.save_rng(seed_dir, k)
    (directory / STATE_FILE).write_text(json.dumps(state.to_json()) + "\n")


def _restore(directory: Path, group: Any) -> TrialState:
    """Restore every seed, then put the trial's own hyperparameters back into its learners."""
    from tune_grid.training.algorithms import apply_hyperparameters
    from tune_grid.training.checkpoints import SEED_DIR

    state = TrialState.from_json(json.loads((directory / STATE_FILE).read_text()))
    group.restore([directory / SEED_DIR.format(k=k) for k in range(len(group.algos))])
    for algo, run in zip(group.algos, group.runs, strict=True):
        apply_hyperparameters(algo, run)
    state.restores += 1
    return state


def validates_now(
    env_steps: int,
    validated_at: int | None,
    eval_interval: int,
    *,
    final: bool,
    every_iteration: bool,
) -> bool:
    """Whether a trial validates, and so checkpoints, at this iteration: at its first and last
    one, every iteration under a population scheduler, else every ``eval_interval`` env steps."""
    from tune_grid.training.validation import due

    return final or every_iteration or due(env_steps, validated_at, eval_interval)


def train_trial(config: dict[str, Any], settings: TrialSettings) -> None:
    """Tune function trainable (use with ``tune.with_parameters(train_trial, settings=...)``)."""
    from ray import tune

    from tune_grid.training.algorithms import hyperparameter_columns
    from tune_grid.training.seed_group import SeedGroup

    run = RunConfig.from_dict(config)
    runs = [run.replace(seed=run.seed + k) for k in range(settings.seeds)]
    context = tune.get_context()
    trial_id = context.get_trial_id() or "trial"
    node_id, node_ip = _node()
    group = SeedGroup(runs, oracle=settings.oracle_for(run))
    try:
        state = TrialState()
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as directory:
                state = _restore(Path(directory), group)
        if stop_reached(settings.stop, _counters(state)):
            return
        while True:
            start = time.perf_counter()
            per_seed = group.train()
            state.iteration += 1
            _maybe_fail(settings, state.iteration)
            row = aggregate(per_seed)
            state.env_steps = row["env_steps"]
            final = stop_reached(settings.stop, _counters(state, time.perf_counter() - start))
            validate = validates_now(
                state.env_steps,
                state.validated_at,
                run.eval_interval,
                final=final,
                every_iteration=settings.every_iteration,
            )
            if validate:
                state.validation = aggregate_validation(group.validate(), state.env_steps)
            elapsed = time.perf_counter() - start
            state.time_total_s += elapsed
            row = with_objective({**row, **state.validation}, settings.metric)
            row.update(
                iteration=state.iteration,
                env_steps_per_s=row["env_steps_this_iter"] / elapsed if elapsed > 0 else math.nan,
                trial_time_total_s=state.time_total_s,
                restores=state.restores,
                reported_at=time.time(),
                seed=run.seed,
                num_seeds=settings.seeds,
                node_id=node_id,
                node_ip=node_ip,
                **state.lineage(),
                **hyperparameter_columns(group.algos, run),
            )
            state.history.append(json_safe(row))
            if validate:
                with tempfile.TemporaryDirectory(prefix="tune_grid_ckpt_") as tmp:
                    _save(Path(tmp), group, state, trial_id, per_seed)
                    tune.report(row, checkpoint=tune.Checkpoint.from_directory(tmp))
            else:
                tune.report(row)
            if final:
                return
    finally:
        group.stop()


def _counters(state: TrialState, pending_s: float = 0.0) -> dict[str, float]:
    """The stop counters; ``pending_s``: seconds of this iteration not yet in the state."""
    return {
        "iteration": state.iteration,
        "env_steps": state.env_steps,
        "time_total_s": state.time_total_s + pending_s,
    }
