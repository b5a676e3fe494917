"""The Tune function trainable: one sampled configuration, K seeds trained in lockstep.

Every iteration trains each of the K PPO algorithms (seeds ``seed, seed+1, ...``) once, reports
the seed means as the trial's metrics (``objective`` = the mean of the search metric) with every
seed's value in ``objective_per_seed``, and checkpoints all K algorithms in one Tune checkpoint
(``seed_<k>/``, each a tune-grid checkpoint, plus ``trial_state.json``). A restarted trial
restores all K from ``tune.get_checkpoint()`` and continues the iteration counter.

After every restore the run's optimizer and loss settings are written into each seed's learner
(:func:`~tune_grid.training.hyperparams.apply_hyperparameters`): a population scheduler restarts
a trial from another trial's checkpoint under new values, which RLlib's restore would override.
Every row carries the values read back from the learners (``hp/<key>``) and the trial's lineage
(``exploits``, ``parent_trial_id``, ``parent_iteration``; set in the checkpoint a population
scheduler clones, see :mod:`tune_grid.search.population`).

The trainable enforces the ``stop`` conditions itself, so a trial restored from a checkpoint that
already met them ends at once instead of training again.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tune_grid.config import RunConfig
from tune_grid.results.schema import METRIC_NAMES

STATE_FILE = "trial_state.json"
SEED_DIR = "seed_{k}"
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


@dataclass
class TrialState:
    """Counters carried across restores; saved as ``trial_state.json`` in each checkpoint."""

    iteration: int = 0
    env_steps: int = 0
    time_total_s: float = 0.0
    restores: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    exploits: int = 0
    """How often a population scheduler replaced this trial's weights by another trial's."""
    parent_trial_id: str | None = None
    """The trial whose checkpoint the last exploit cloned (None: never exploited)."""
    parent_iteration: int | None = None
    """That checkpoint's iteration in the parent trial."""

    def to_json(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "time_total_s": self.time_total_s,
            "restores": self.restores,
            "history": self.history,
            **self.lineage(),
        }

    def lineage(self) -> dict[str, Any]:
        """The lineage columns of every reported row."""
        return {
            "exploits": self.exploits,
            "parent_trial_id": self.parent_trial_id,
            "parent_iteration": self.parent_iteration,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrialState:
        return cls(
            iteration=int(data["iteration"]),
            env_steps=int(data["env_steps"]),
            time_total_s=float(data["time_total_s"]),
            restores=int(data.get("restores", 0)),
            history=list(data.get("history", [])),
            exploits=int(data.get("exploits", 0)),
            parent_trial_id=data.get("parent_trial_id"),
            parent_iteration=data.get("parent_iteration"),
        )


def stop_reached(stop: dict[str, float], values: dict[str, float]) -> bool:
    """True when any stop condition (``training_iteration``, ``env_steps``, ...) is met."""
    aliases = {"training_iteration": "iteration"}
    for key, limit in stop.items():
        value = values.get(aliases.get(key, key), values.get(key))
        if value is not None and not _isnan(value) and value >= limit:
            return True
    return False


def _isnan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not _isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _json_safe(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, float) and not math.isfinite(value):
            out[key] = None
        elif isinstance(value, list):
            out[key] = [None if _isnan(v) else v for v in value]
        else:
            out[key] = value
    return out


def aggregate(per_seed: list[dict[str, float]], metric: str) -> dict[str, Any]:
    """Seed means of the iteration metrics; ``objective`` and per-seed lists of it."""
    row: dict[str, Any] = {}
    for name in METRIC_NAMES:
        row[name] = _mean([m[name] for m in per_seed])
        row[f"{name}_per_seed"] = [float(m[name]) for m in per_seed]
    row["objective"] = row[metric]
    row["objective_per_seed"] = list(row[f"{metric}_per_seed"])
    row["env_steps"] = int(round(_mean([float(m["env_steps"]) for m in per_seed])))
    row["env_steps_this_iter"] = int(sum(int(m["env_steps_this_iter"]) for m in per_seed))
    row["episodes"] = int(sum(int(m["episodes"]) for m in per_seed))
    for timer in ("timers/sample_s", "timers/learn_s"):
        row[timer] = float(sum(m[timer] for m in per_seed if not _isnan(m[timer])))
    return row


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
    algos: list[Any],
    runs: list[RunConfig],
    state: TrialState,
    trial_id: str,
    per_seed: list[dict[str, float]],
) -> None:
    from tune_grid.training.checkpoints import CheckpointMeta, save_checkpoint

    for k, (algo, run) in enumerate(zip(algos, runs, strict=True)):
        meta = CheckpointMeta(
            run_name=f"{trial_id}_seed{run.seed}",
            run_config=run,
            iteration=state.iteration,
            env_steps=int(per_seed[k]["env_steps"]),
            time_total_s=state.time_total_s,
        )
        save_checkpoint(algo, directory / SEED_DIR.format(k=k), meta)
    (directory / STATE_FILE).write_text(json.dumps(state.to_json()) + "\n")


def _restore(directory: Path, algos: list[Any], runs: list[RunConfig]) -> TrialState:
    """Restore every seed, then put the trial's own hyperparameters back into its learners."""
    from tune_grid.training.hyperparams import apply_hyperparameters

    state = TrialState.from_json(json.loads((directory / STATE_FILE).read_text()))
    for k, (algo, run) in enumerate(zip(algos, runs, strict=True)):
        algo.restore_from_path(str((directory / SEED_DIR.format(k=k)).resolve()))
        apply_hyperparameters(algo, run)
    state.restores += 1
    return state


def train_trial(config: dict[str, Any], settings: TrialSettings) -> None:
    """Tune function trainable (use with ``tune.with_parameters(train_trial, settings=...)``)."""
    from ray import tune

    from tune_grid.training.hyperparams import hyperparameter_columns
    from tune_grid.training.metrics import iteration_metrics
    from tune_grid.training.ppo import build_ppo_config
    from tune_grid.training.rllib_env import register_rllib_env

    register_rllib_env()
    run = RunConfig.from_dict(config)
    runs = [run.replace(seed=run.seed + k) for k in range(settings.seeds)]
    context = tune.get_context()
    trial_id = context.get_trial_id() or "trial"
    node_id, node_ip = _node()
    algos = [build_ppo_config(r).build_algo() for r in runs]
    try:
        state = TrialState()
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as directory:
                state = _restore(Path(directory), algos, runs)
        if stop_reached(settings.stop, _counters(state)):
            return
        while True:
            start = time.perf_counter()
            per_seed = [iteration_metrics(algo.train()) for algo in algos]
            state.iteration += 1
            _maybe_fail(settings, state.iteration)
            elapsed = time.perf_counter() - start
            state.time_total_s += elapsed
            row = aggregate(per_seed, settings.metric)
            state.env_steps = row["env_steps"]
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
                **hyperparameter_columns(algos),
            )
            state.history.append(_json_safe(row))
            with tempfile.TemporaryDirectory(prefix="tune_grid_ckpt_") as tmp:
                _save(Path(tmp), algos, runs, state, trial_id, per_seed)
                tune.report(row, checkpoint=tune.Checkpoint.from_directory(tmp))
            if stop_reached(settings.stop, _counters(state)):
                return
    finally:
        for algo in algos:
            with contextlib.suppress(Exception):  # best-effort cleanup
                algo.stop()


def _counters(state: TrialState) -> dict[str, float]:
    return {
        "iteration": state.iteration,
        "env_steps": state.env_steps,
        "time_total_s": state.time_total_s,
    }
