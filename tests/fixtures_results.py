"""Synthetic, schema-true results folders with known values, for the analysis tests.

``write_experiment`` writes ``trials.parquet`` and ``iterations.parquet`` through
``schema.write_results``, with the stop condition in the trials file's ``tune_grid.stop`` metadata
as the exporter writes it (``legacy_max_iterations``: the older ``tune_grid.max_iterations``
instead). ``two_experiments`` builds the hand-checked training-metric case the tests assert on,
``validation_experiment`` a hand-checked one ranked by the validation objective (values documented
beside each trial), ``random_experiment`` a larger one for speed and smoke tests.

Validation experiments mirror the trainable: a trial validates at its first iteration, whenever
its env steps cross a multiple of ``eval_interval``, and at its last iteration when it ran to the
stop (not when the scheduler stopped it); every row carries the latest validation and its
``val_env_steps``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
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
    STOP_KEY,
    TRIAL_COLUMNS,
    TRIALS_FILE,
    VALIDATION_METRIC_NAMES,
    write_results,
)

NAN = math.nan


@dataclass
class TrialSpec:
    """One trial. The metric ramps linearly to ``objective_per_seed`` over its iterations, unless
    ``curve_per_seed`` gives it per seed and iteration (what a validation then would measure)."""

    trial_id: str
    params: dict[str, Any]
    objective_per_seed: list[float]
    test_cost_per_seed: list[float] | None = None  # None: not evaluated (NaN, empty list)
    iterations: int = 8
    stopped_early: bool = False
    status: str = "TERMINATED"
    steps_per_iteration: int = 1000
    test_optimality_gap: float = NAN
    curve_per_seed: list[list[float]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def test_daily_cost(self) -> float:
        return float(np.mean(self.test_cost_per_seed)) if self.test_cost_per_seed else NAN

    def curves(self, mode: str) -> np.ndarray:
        """(seeds, iterations): up from 0 to the final value (max) or down from 2x (min)."""
        if self.curve_per_seed is not None:
            return np.asarray(self.curve_per_seed, dtype=float)
        steps = np.arange(1, self.iterations + 1) / self.iterations
        finals = np.asarray(self.objective_per_seed, dtype=float)[:, None]
        return finals * steps if mode == "max" else finals * (2.0 - steps)


def _measured(spec: TrialSpec, mode: str, validated: bool, eval_interval: int) -> np.ndarray:
    """(iterations, seeds) values each row reports: a validation metric carries the latest
    validation (see the module doc), a training metric is the iteration's own value."""
    curves = spec.curves(mode).T
    if not validated:
        return curves
    rows, last = np.empty_like(curves), None
    for i in range(spec.iterations):
        steps = (i + 1) * spec.steps_per_iteration
        final = i == spec.iterations - 1 and spec.status == "TERMINATED" and not spec.stopped_early
        if last is None or steps // eval_interval > last // eval_interval or final:
            rows[i], last = curves[i], steps
        else:
            rows[i] = rows[i - 1]
    return rows


def _val_steps(spec: TrialSpec, eval_interval: int) -> list[int]:
    """``val_env_steps`` of every row (the same schedule as :func:`_measured`)."""
    out, last = [], None
    for i in range(spec.iterations):
        steps = (i + 1) * spec.steps_per_iteration
        final = i == spec.iterations - 1 and spec.status == "TERMINATED" and not spec.stopped_early
        if last is None or steps // eval_interval > last // eval_interval or final:
            last = steps
        out.append(last)
    return out


def _rows(spec: TrialSpec, metric: str, mode: str, eval_interval: int) -> list[dict[str, Any]]:
    """The trial's iteration rows (without experiment and trial id)."""
    validated = metric in VALIDATION_METRIC_NAMES
    if spec.iterations == 0:
        return []
    values = _measured(spec, mode, validated, eval_interval)
    raw = spec.curves(mode).T
    val_steps = _val_steps(spec, eval_interval)
    rows = []
    for i in range(spec.iterations):
        per_seed = [float(v) for v in values[i]]
        mean = float(np.mean(per_seed))
        row = {
            "iteration": i + 1,
            "env_steps": (i + 1) * spec.steps_per_iteration,
            "time_total_s": 10.0 * (i + 1),
            "objective": mean,
            "objective_per_seed": per_seed,
            "episode_return_mean": float(np.mean(raw[i])) if not validated else -mean / 100,
            "daily_cost_mean": 1000.0 - 10.0 * float(np.mean(raw[i])),
            "safety_mean": 0.1,
            "violation_hours_mean": 1.0,
            **{name: NAN for name in VALIDATION_METRIC_NAMES},
            "val_env_steps": None,
            "node_id": "node0",
            "timers/sample_s": 0.5,
        }
        if validated:
            row |= {
                "val_objective": mean,
                "val_daily_cost": 0.9 * mean,
                "val_safety": 0.1,
                "val_violation_hours": 1.0,
                "val_gap": mean / 500.0 - 1.0,
                "val_env_steps": val_steps[i],
            }
        row[metric] = mean
        rows.append(row)
    return rows


def _best(rows: list[dict[str, Any]], mode: str) -> dict[str, Any]:
    """The first row with the best objective, as the exporter picks it."""
    best: dict[str, Any] = {}
    for row in rows:
        value = row["objective"]
        if not best or (value > best["objective"] if mode == "max" else value < best["objective"]):
            best = row
    return best


def trials_table(
    experiment: str, specs: list[TrialSpec], metric: str, mode: str, eval_interval: int
) -> pa.Table:
    rows: dict[str, list[Any]] = {name: [] for name in TRIAL_COLUMNS}
    for index, spec in enumerate(specs):
        seeds = len(spec.objective_per_seed)
        history = _rows(spec, metric, mode, eval_interval)
        last = history[-1] if history else {}
        best = _best(history, mode)
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
            "best_objective": best.get("objective", NAN),
            "best_iteration": best.get("iteration"),
            "last_objective": last.get("objective", NAN),
            "last_objective_per_seed": last.get("objective_per_seed", []),
            "last_episode_return_mean": last.get("episode_return_mean", NAN),
            "last_daily_cost_mean": 1000.0 - spec.iterations,
            "last_safety_mean": 0.1,
            "best_env_steps": best.get("env_steps"),
            "best_val_objective": best.get("val_objective", NAN),
            "best_val_daily_cost": best.get("val_daily_cost", NAN),
            "best_val_gap": best.get("val_gap", NAN),
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


def iterations_table(
    experiment: str, specs: list[TrialSpec], metric: str, mode: str, eval_interval: int
) -> pa.Table:
    columns = [*ITERATION_COLUMNS, "timers/sample_s"]
    rows: dict[str, list[Any]] = {name: [] for name in columns}
    for spec in specs:
        for values in _rows(spec, metric, mode, eval_interval):
            values = {**values, "experiment": experiment, "trial_id": spec.trial_id}
            for name in columns:
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
    stop: Mapping[str, float] | None = None,
    legacy_max_iterations: int | None = None,
    eval_interval: int = 4000,
) -> Path:
    """Write one experiment's results folder; returns ``directory``.

    ``stop`` goes to ``tune_grid.stop`` as the exporter writes it (``{}`` when None);
    ``legacy_max_iterations`` writes the older ``tune_grid.max_iterations`` key instead.
    ``eval_interval``: env steps between validations, for a validation ``metric``.
    """
    trials = trials_table(experiment, specs, metric, mode, eval_interval)
    if legacy_max_iterations is not None:
        metadata = {MAX_ITERATIONS_KEY: str(legacy_max_iterations).encode()}
    else:
        metadata = {STOP_KEY: json.dumps(dict(stop or {})).encode()}
    trials = trials.replace_schema_metadata(metadata)
    write_results(trials, directory / TRIALS_FILE, "trials")
    write_results(
        iterations_table(experiment, specs, metric, mode, eval_interval),
        directory / ITERATIONS_FILE,
        "iterations",
    )
    if baselines is not None:
        (directory / "baselines.json").write_text(json.dumps(baselines))
    return directory


# --------------------------------------------------------------------------------------------
# The hand-checked case

EXP_A = "exp_a"  # episode_return_mean, max, 2 seeds, no baselines, a time stop: bound observed
EXP_B = "exp_b"  # daily_cost_mean, min, 1 seed, baselines.json, legacy max_iterations 12
EXP_C = "exp_c"  # val_objective, min, 2 seeds, stop env_steps 8000, validation every 3000 steps


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
    dir_a = write_experiment(root / EXP_A, EXP_A, SPECS_A, stop=STOP_A)
    dir_b = write_experiment(
        root / EXP_B,
        EXP_B,
        SPECS_B,
        metric="daily_cost_mean",
        mode="min",
        baselines=BASELINES_B,
        legacy_max_iterations=12,
    )
    return dir_a, dir_b


STOP_A = {"time_total_s": 3600}  # bounds neither env steps nor iterations


def _spec_c(trial_id: str, batch: int, lr: float, curve: list[list[float]], **kw: Any) -> TrialSpec:
    params = {"train_batch_size": batch, "lr": lr, "policy_sharing": "shared"}
    finals = [c[-1] for c in curve]
    return TrialSpec(
        trial_id,
        params,
        finals,
        None,
        len(curve[0]),
        steps_per_iteration=batch,
        curve_per_seed=curve,
        **kw,
    )


# Two groups of unequal length: ASHA stopped the batch-1000 trials at 4000 env steps, the
# batch-2000 ones ran to the 8000-step stop, c4 errored at 2000. The comparison budget is 4000:
# batch 1000 is read at its row at 4000 steps, which carries the validation at 3000 (the raw
# values at 4000 were never measured), batch 2000 at its validation at 4000. At that budget
# batch 1000 is the cheaper group (mean 600 vs 700), although the longer batch-2000 runs end
# cheaper (best 390 and 410).
# fmt: off
SPECS_C = [
    #       id    batch lr     validation objective per seed and iteration
    _spec_c("c0", 1000, 1e-4, [[900, 800, 650, 600], [1000, 900, 750, 700]], stopped_early=True),
    _spec_c("c1", 1000, 3e-4, [[950, 850, 550, 500], [850, 750, 450, 400]], stopped_early=True),
    _spec_c("c2", 2000, 1e-3, [[900, 700, 450, 400], [950, 750, 500, 420]]),
    _spec_c("c3", 2000, 3e-3, [[850, 650, 500, 380], [800, 700, 480, 400]]),
    _spec_c("c4", 2000, 1e-2, [[1000], [1100]], status="ERROR"),
]
# fmt: on
STOP_C = {"env_steps": 8000}
EVAL_INTERVAL_C = 3000


def validation_experiment(root: Path) -> Path:
    """Write ``root/exp_c`` (ranked by the validation objective); returns the folder."""
    return write_experiment(
        root / EXP_C,
        EXP_C,
        SPECS_C,
        metric="val_objective",
        mode="min",
        stop=STOP_C,
        eval_interval=EVAL_INTERVAL_C,
    )


def random_experiment(
    directory: Path,
    experiment: str = "random_search",
    n_trials: int = 50,
    seeds: int = 3,
    max_iterations: int = 9,
    seed: int = 0,
) -> list[TrialSpec]:
    """A search-like experiment ranked by the validation objective ($/day, lower is better):
    random params, ASHA-like stops after 1 and 3 iterations, some ERRORs."""
    rng = np.random.default_rng(seed)
    specs = []
    for i in range(n_trials):
        sharing = str(rng.choice(["shared", "independent"]))
        share_reward = bool(rng.random() < 0.5)
        lr = float(10 ** rng.uniform(-5, -2))
        epochs = int(rng.choice([5, 10, 20]))
        quality = 2.0 * (sharing == "shared") + 1.0 * share_reward - abs(math.log10(lr) + 3.5)
        objective = list(600 - 50 * (quality + rng.normal(0, 0.5, size=seeds)))
        rung = rng.random()
        iterations = 1 if rung < 0.4 else 3 if rung < 0.7 else max_iterations
        failed = i % 10 == 7
        evaluated = iterations == max_iterations and not failed
        test = list(np.asarray(objective) + rng.normal(0, 5, size=seeds))
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
        metric="val_objective",
        mode="min",
        stop={"env_steps": max_iterations * 4000},
        eval_interval=8000,
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
            optuna.trial.create_trial(
                params=params, distributions=dists, value=float(np.mean(spec.objective_per_seed))
            )
        )
    return path
