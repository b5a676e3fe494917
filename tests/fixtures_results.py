"""Synthetic, schema-true results folders with known values, for the analysis tests.

``write_experiment`` writes ``trials.parquet`` and ``iterations.parquet`` through
``schema.write_results``; ``two_experiments`` builds the hand-checked case the tests assert on
(values documented beside each trial), ``random_experiment`` a larger one for speed and smoke
tests.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tune_grid.results.schema import (
    ITERATION_COLUMNS,
    ITERATIONS_FILE,
    MAX_ITERATIONS_KEY,
    PARAM_PREFIX,
    TRIAL_COLUMNS,
    TRIALS_FILE,
    write_results,
)

NAN = math.nan


@dataclass
class TrialSpec:
    """One trial. The objective ramps linearly to ``objective_per_seed`` over its iterations."""

    trial_id: str
    params: dict[str, Any]
    objective_per_seed: list[float]
    test_cost_per_seed: list[float] | None = None  # None: not evaluated (NaN, empty list)
    iterations: int = 8
    stopped_early: bool = False
    status: str = "TERMINATED"
    steps_per_iteration: int = 1000
    test_optimality_gap: float = NAN
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def last_objective(self) -> float:
        return float(np.mean(self.objective_per_seed))

    @property
    def test_daily_cost(self) -> float:
        return float(np.mean(self.test_cost_per_seed)) if self.test_cost_per_seed else NAN


def _curve(spec: TrialSpec, seed_index: int, mode: str) -> np.ndarray:
    """Improves monotonically to the final value: up from 0 (max) or down from 2x (min)."""
    final = spec.objective_per_seed[seed_index]
    steps = np.arange(1, spec.iterations + 1) / spec.iterations
    return final * steps if mode == "max" else final * (2.0 - steps)


def trials_table(experiment: str, specs: list[TrialSpec], metric: str, mode: str) -> pa.Table:
    rows: dict[str, list[Any]] = {name: [] for name in TRIAL_COLUMNS}
    for index, spec in enumerate(specs):
        seeds = len(spec.objective_per_seed)
        curves = (
            np.vstack([_curve(spec, s, mode) for s in range(seeds)]) if spec.iterations else None
        )
        means = curves.mean(axis=0) if curves is not None else np.array([NAN])
        best_index = int(np.argmax(means) if mode == "max" else np.argmin(means))
        test = spec.test_cost_per_seed
        values = {
            "experiment": experiment,
            "trial_id": spec.trial_id,
            "status": spec.status,
            "stopped_early": spec.stopped_early,
            "iterations": spec.iterations,
            "env_steps": spec.iterations * spec.steps_per_iteration,
            "seed": 100 * index,
            "seeds": [100 * index + s for s in range(seeds)],
            "metric": metric,
            "mode": mode,
            "best_objective": float(means[best_index]),
            "best_iteration": best_index + 1,
            "last_objective": spec.last_objective,
            "last_objective_per_seed": [float(v) for v in spec.objective_per_seed],
            "last_episode_return_mean": spec.last_objective,
            "last_daily_cost_mean": 1000.0 - spec.iterations,
            "last_safety_mean": 0.1,
            "test_daily_cost": spec.test_daily_cost,
            "test_daily_cost_per_seed": [float(v) for v in test] if test else [],
            "test_safety": 0.05 if test else NAN,
            "test_violation_hours": 1.0 if test else NAN,
            "test_return": -spec.test_daily_cost / 100.0 if test else NAN,
            "test_optimality_gap": spec.test_optimality_gap,
            "test_days": 7 if test else 0,
            "wall_time_s": 10.0 * spec.iterations,
            "node_id": "node0",
            "node_ip": "127.0.0.1",
            "checkpoint_path": f"/tmp/{experiment}/{spec.trial_id}",
        }
        values.update(spec.extra)
        for name in TRIAL_COLUMNS:
            rows[name].append(values[name])
    arrays = {name: pa.array(rows[name], type=dtype) for name, dtype in TRIAL_COLUMNS.items()}
    param_names = list(dict.fromkeys(k for spec in specs for k in spec.params))
    for name in param_names:
        arrays[PARAM_PREFIX + name] = pa.array([spec.params.get(name) for spec in specs])
    return pa.table(arrays)


def iterations_table(experiment: str, specs: list[TrialSpec], mode: str) -> pa.Table:
    rows: dict[str, list[Any]] = {name: [] for name in ITERATION_COLUMNS}
    rows["timers/sample_s"] = []
    for spec in specs:
        seeds = len(spec.objective_per_seed)
        curves = [_curve(spec, s, mode) for s in range(seeds)]
        for i in range(spec.iterations):
            per_seed = [float(c[i]) for c in curves]
            values = {
                "experiment": experiment,
                "trial_id": spec.trial_id,
                "iteration": i + 1,
                "env_steps": (i + 1) * spec.steps_per_iteration,
                "time_total_s": 10.0 * (i + 1),
                "objective": float(np.mean(per_seed)),
                "objective_per_seed": per_seed,
                "episode_return_mean": float(np.mean(per_seed)),
                "daily_cost_mean": 1000.0 - 10.0 * float(np.mean(per_seed)),
                "safety_mean": 0.1,
                "violation_hours_mean": 1.0,
                "node_id": "node0",
                "timers/sample_s": 0.5,
            }
            for name in rows:
                rows[name].append(values[name])
    arrays = {name: pa.array(rows[name], type=dtype) for name, dtype in ITERATION_COLUMNS.items()}
    arrays["timers/sample_s"] = pa.array(rows["timers/sample_s"], type=pa.float64())
    return pa.table(arrays)


def write_experiment(
    directory: Path,
    experiment: str,
    specs: list[TrialSpec],
    *,
    metric: str = "episode_return_mean",
    mode: str = "max",
    baselines: dict[str, Any] | None = None,
    max_iterations: int | None = None,
) -> Path:
    """Write one experiment's results folder; returns ``directory``."""
    trials = trials_table(experiment, specs, metric, mode)
    if max_iterations is not None:
        metadata = dict(trials.schema.metadata or {})
        metadata[MAX_ITERATIONS_KEY] = str(max_iterations).encode()
        trials = trials.replace_schema_metadata(metadata)
    write_results(trials, directory / TRIALS_FILE, "trials")
    write_results(
        iterations_table(experiment, specs, mode), directory / ITERATIONS_FILE, "iterations"
    )
    if baselines is not None:
        (directory / "baselines.json").write_text(json.dumps(baselines))
    return directory


# --------------------------------------------------------------------------------------------
# The hand-checked case

EXP_A = "exp_a"  # mode max, 2 seeds per trial, no baselines, bound = observed max (8)
EXP_B = "exp_b"  # mode min, 1 seed, baselines.json, max_iterations metadata 12


def _spec_a(
    trial_id: str,
    sharing: str,
    share_reward: bool,
    lr: float,
    objective: list[float],
    test: list[float] | None,
    iterations: int,
    **kw: Any,
) -> TrialSpec:
    params = {"policy_sharing": sharing, "share_reward": share_reward, "lr": lr}
    params |= {"num_epochs": 10, "hidden_sizes": "256x256"}  # constant
    return TrialSpec(trial_id, params, objective, test, iterations, **kw)


def _spec_b(
    trial_id: str,
    sharing: str,
    lr: float,
    objective: list[float],
    test: list[float] | None,
    iterations: int,
    steps: int,
    **kw: Any,
) -> TrialSpec:
    params = {"policy_sharing": sharing, "share_reward": False, "lr": lr}
    return TrialSpec(trial_id, params, objective, test, iterations, steps_per_iteration=steps, **kw)


# fmt: off
SPECS_A = [
    #       id    policy_sharing share_reward lr    objective/seed test/seed  iters
    _spec_a("a0", "shared",      True,  1e-4, [1, 3],   [100, 110], 8),
    _spec_a("a1", "shared",      False, 3e-4, [0, 10],  [120, 130], 8),
    _spec_a("a2", "independent", True,  1e-3, [4, 8],   [90, 96],   8, test_optimality_gap=0.12),
    _spec_a("a3", "independent", False, 3e-3, [-1, 1],  None,       2, stopped_early=True),
    _spec_a("a4", "independent", True,  1e-2, [2, 2],   None,       4, stopped_early=True),
    _spec_a("a5", "shared",      False, 3e-5, [1, 5],   [115, 125], 4, stopped_early=True),
]

SPECS_B = [
    #       id    policy_sharing lr      objective test   iters steps/iteration
    _spec_b("b0", "shared",      1e-4,   [900],    [880], 10,   2000, test_optimality_gap=0.10),
    _spec_b("b1", "independent", 2e-4,   [950],    [940], 10,   2000, test_optimality_gap=0.17),
    _spec_b("b2", "shared",      4e-4,   [1000],   None,  3,    500,  stopped_early=True),
    _spec_b("b3", "independent", 8e-4,   [1100],   None,  3,    500,  stopped_early=True),
    _spec_b("b4", "shared",      1.6e-3, [870],    [905], 10,   2000),
]
# fmt: on

BASELINES_B = {
    "split": "test",
    "days": 7,
    "policies": {
        "do_nothing": {"daily_cost": 1000.0, "safety": 0.5, "violation_hours": 4.0},
        "random": {"daily_cost": 1200.0, "safety": 2.0, "violation_hours": 9.0},
        "rule_based": {"daily_cost": 920.0, "safety": 0.2, "violation_hours": 2.0},
        "oracle": {"daily_cost": 800.0, "safety": 0.0, "violation_hours": 0.0},
    },
}


def two_experiments(root: Path) -> tuple[Path, Path]:
    """Write ``root/exp_a`` and ``root/exp_b``; returns both folders."""
    dir_a = write_experiment(root / EXP_A, EXP_A, SPECS_A)
    dir_b = write_experiment(
        root / EXP_B,
        EXP_B,
        SPECS_B,
        metric="daily_cost_mean",
        mode="min",
        baselines=BASELINES_B,
        max_iterations=12,
    )
    return dir_a, dir_b


def random_experiment(
    directory: Path,
    experiment: str = "random_search",
    n_trials: int = 50,
    seeds: int = 3,
    max_iterations: int = 9,
    seed: int = 0,
) -> list[TrialSpec]:
    """A search-like experiment: random params, ASHA-like stops at rungs 1 and 3, some ERRORs."""
    rng = np.random.default_rng(seed)
    specs = []
    for i in range(n_trials):
        sharing = str(rng.choice(["shared", "independent"]))
        share_reward = bool(rng.random() < 0.5)
        lr = float(10 ** rng.uniform(-5, -2))
        epochs = int(rng.choice([5, 10, 20]))
        quality = 2.0 * (sharing == "shared") + 1.0 * share_reward - abs(math.log10(lr) + 3.5)
        objective = list(quality + rng.normal(0, 0.5, size=seeds))
        rung = rng.random()
        iterations = 1 if rung < 0.4 else 3 if rung < 0.7 else max_iterations
        failed = i % 10 == 7
        evaluated = iterations == max_iterations and not failed
        test = list(1000 - 20 * np.asarray(objective) + rng.normal(0, 5, size=seeds))
        specs.append(
            TrialSpec(
                f"t{i:03d}",
                {
                    "policy_sharing": sharing,
                    "share_reward": share_reward,
                    "lr": lr,
                    "num_epochs": epochs,
                    "grad_clip": None if i % 4 == 0 else 0.5,
                    "hidden_sizes": "256x256",
                },
                objective,
                test if evaluated else None,
                iterations,
                stopped_early=iterations < max_iterations and not failed,
                status="ERROR" if failed else "TERMINATED",
                steps_per_iteration=4000,
                test_optimality_gap=float(rng.uniform(0, 0.3)) if evaluated else NAN,
            )
        )
    write_experiment(
        directory,
        experiment,
        specs,
        baselines={
            "split": "test",
            "days": 7,
            "policies": {
                "do_nothing": {"daily_cost": 1010.0, "safety": 1.0, "violation_hours": 5.0},
                "random": {"daily_cost": 1100.0, "safety": 3.0, "violation_hours": 12.0},
                "rule_based": {"daily_cost": 985.0, "safety": 0.3, "violation_hours": 2.0},
            },
        },
    )
    return specs


def write_optuna_study(
    directory: Path, experiment: str, specs: list[TrialSpec], mode: str = "max"
) -> Path:
    """An Optuna SQLite study named after the experiment, one finished trial per spec."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = directory / "optuna.db"
    study = optuna.create_study(
        study_name=experiment,
        storage=f"sqlite:///{path}",
        direction="maximize" if mode == "max" else "minimize",
    )
    distributions = {
        "policy_sharing": optuna.distributions.CategoricalDistribution(["shared", "independent"]),
        "share_reward": optuna.distributions.CategoricalDistribution([True, False]),
        "lr": optuna.distributions.FloatDistribution(1e-6, 1e-1, log=True),
    }
    for spec in specs:
        params = {k: spec.params[k] for k in distributions}
        # Ray's OptunaSearch may nest names: store lr as a nested key to exercise the mapping
        params = {("train_loop_config/" + k if k == "lr" else k): v for k, v in params.items()}
        dists = {
            ("train_loop_config/" + k if k == "lr" else k): d for k, d in distributions.items()
        }
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions=dists, value=spec.last_objective)
        )
    return path
