"""Fast unit tests of the search plumbing: paths, seed aggregation, stop rules, bench summary."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tune_grid.bench.search import (
    FULL,
    BenchOptions,
    SearchTrace,
    bench_space,
    ratio,
    summarize,
    trace_rows,
)
from tune_grid.results.early_stop import stop_reached
from tune_grid.search.run.trainable import aggregate, aggregate_validation, with_objective
from tune_grid.search.run.tuner import SearchError, has_experiment, num_samples, resolve_paths
from tune_grid.search.spec.space_file import parse_space

SPEC = parse_space(
    {"experiment": "paths", "space": {"share_reward": {"type": "bool"}}, "storage": "out"}
)


def test_results_go_to_storage_slash_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_paths(SPEC, None).results_dir == tmp_path / "out" / "paths"
    assert resolve_paths(SPEC, "elsewhere").results_dir == tmp_path / "elsewhere" / "paths"
    uri = resolve_paths(SPEC, f"file://{tmp_path}/shared")
    assert uri.results_dir == tmp_path / "shared" / "paths"
    assert uri.optuna_url == f"sqlite:///{tmp_path}/shared/paths/optuna.db"
    with pytest.raises(SearchError, match="shared-filesystem"):
        resolve_paths(SPEC, "s3://bucket/results")


def test_has_experiment(tmp_path: Path) -> None:
    assert not has_experiment(tmp_path / "none")
    assert not has_experiment(tmp_path)
    (tmp_path / "optuna.db").touch()  # a study alone is left over from a failed start
    assert not has_experiment(tmp_path)
    (tmp_path / "trials.parquet").touch()
    assert has_experiment(tmp_path)


def test_grid_runs_once_unless_num_samples_is_given() -> None:
    grid = {"experiment": "g", "space": {"share_reward": {"type": "bool"}}}
    assert num_samples(parse_space({**grid, "search": {"algorithm": "grid"}})) == 1
    assert (
        num_samples(parse_space({**grid, "search": {"algorithm": "grid"}, "num_samples": 3})) == 3
    )
    assert num_samples(parse_space(grid)) == 10


def _metrics(value: float, steps: int = 96) -> dict[str, float]:
    return {
        "episode_return_mean": value,
        "daily_cost_mean": 10 * value,
        "safety_mean": 0.0,
        "violation_hours_mean": 1.0,
        "env_steps": steps,
        "env_steps_this_iter": 96,
        "episodes": 4,
        "timers/sample_s": 0.5,
        "timers/learn_s": math.nan,
    }


def test_seed_aggregation() -> None:
    training = aggregate([_metrics(-2.0), _metrics(-4.0), _metrics(math.nan)])
    row = with_objective(training, "episode_return_mean")
    assert row["objective"] == pytest.approx(-3.0)  # NaN seeds (no episode yet) are skipped
    assert row["objective_per_seed"][:2] == [-2.0, -4.0] and math.isnan(
        row["objective_per_seed"][2]
    )
    assert row["env_steps"] == 96 and row["env_steps_this_iter"] == 288
    assert row["timers/sample_s"] == pytest.approx(1.5) and row["timers/learn_s"] == 0.0
    cost = with_objective(aggregate([_metrics(-2.0), _metrics(-4.0)]), "daily_cost_mean")
    assert cost["objective"] == pytest.approx(-30.0)
    validation = aggregate_validation(
        [
            {
                "val_objective": 900.0,
                "val_daily_cost": 800.0,
                "val_safety": 1.0,
                "val_violation_hours": 2.0,
                "val_gap": 0.5,
            },
            {
                "val_objective": 700.0,
                "val_daily_cost": 650.0,
                "val_safety": 0.5,
                "val_violation_hours": 1.0,
                "val_gap": math.nan,
            },
        ],
        env_steps=1920,
    )
    row = with_objective({**training, **validation}, "val_objective")
    assert row["objective"] == 800.0 and row["objective_per_seed"] == [900.0, 700.0]
    assert row["val_daily_cost"] == 725.0 and row["val_env_steps"] == 1920


def test_stop_rules() -> None:
    assert stop_reached({"training_iteration": 3}, {"iteration": 3})
    assert not stop_reached({"training_iteration": 3}, {"iteration": 2})
    assert stop_reached(
        {"training_iteration": 9, "env_steps": 500}, {"iteration": 1, "env_steps": 500}
    )
    assert not stop_reached({"time_total_s": 10.0}, {"time_total_s": math.nan})


def test_bench_summary_and_ratio() -> None:
    fast = SearchTrace("optuna_asha", 0, [1.0, 2.0, 3.0], [100, 200, 300], [1300.0, 1150.0, 1100.0])
    slow = SearchTrace("random_fifo", 0, [2.0, 4.0, 6.0], [200, 400, 600], [1400.0, 1200.0, 1160.0])
    late = SearchTrace("random_fifo", 1, [1.0, 5.0], [150, 900], [1300.0, 1140.0])
    never = SearchTrace("random_fifo", 2, [3.0], [500], [1250.0])
    summary = summarize([fast, slow, late, never], 1160.0)
    assert summary["optuna_asha"]["env_steps"] == 200 and summary["optuna_asha"]["seconds"] == 2
    # random+FIFO reaches 1160 at 600 and 900 steps, never in the third: median 900.
    assert summary["random_fifo"]["env_steps"] == 900 and summary["random_fifo"]["seconds"] == 6
    assert summary["random_fifo"]["reached"] == 2 and summary["random_fifo"]["runs"] == 3
    ratios = summary["ratio_optuna_asha"]
    assert ratios["env_steps"] == 4.5 and ratios["seconds"] == 3.0
    assert "pbt" not in summary and "ratio_pbt" not in summary  # an arm not run has no entry
    assert summary["random_fifo"]["total_env_steps"] == 600
    none = summarize([fast, never], 1000.0)
    assert none["optuna_asha"]["reached"] == 0 and math.isinf(none["optuna_asha"]["env_steps"])
    assert math.isnan(none["ratio_optuna_asha"]["env_steps"])  # neither arm reached it
    population = SearchTrace("pbt", 0, [1.0, 2.0], [300, 450], [1200.0, 1150.0])
    three = summarize([fast, slow, population], 1160.0)
    assert three["ratio_pbt"]["env_steps"] == 600 / 450
    assert "ratio_random_fifo" not in three
    assert ratio(math.inf, 10.0) == math.inf and ratio(5.0, 0.0) != ratio(5.0, 0.0)


def test_bench_trace_follows_wall_clock_order() -> None:
    rows = [
        {"reported_at": 3.0, "env_steps_this_iter": 960, "val_objective": 1100.0},
        {"reported_at": 1.0, "env_steps_this_iter": 1920, "val_objective": 1300.0},
        {"reported_at": 2.0, "env_steps_this_iter": 960, "val_objective": math.nan},
        {"reported_at": 4.0, "env_steps_this_iter": 1920, "val_objective": 1200.0},
    ]
    times, steps, best = trace_rows(rows)
    assert times == [1.0, 2.0, 3.0, 4.0]
    assert steps == [1920, 2880, 3840, 5760]
    assert best == [1300.0, 1300.0, 1100.0, 1100.0]


def test_bench_arms_share_space_and_budget() -> None:
    optuna = bench_space("optuna_asha", 1, FULL)
    random = bench_space("random_fifo", 1, FULL)
    assert optuna.space == random.space and optuna.fixed == random.fixed
    assert optuna.stop == random.stop == {"env_steps": FULL.stop_env_steps}
    assert optuna.num_samples == random.num_samples and optuna.metric == "val_objective"
    assert optuna.scheduler.time_attr == "env_steps" and optuna.scheduler.type == "asha"
    assert random.scheduler.type == "fifo" and random.search.algorithm == "random"
    assert FULL.grace_period % FULL.eval_interval == 0
    assert all(b % 24 == 0 for b in FULL.batch_sizes)  # whole days
    scaled = BenchOptions(env_steps=FULL.stop_env_steps // 2).scale()
    assert scaled.grace_period == FULL.grace_period // 2
    assert scaled.eval_interval == FULL.eval_interval // 2
    small = BenchOptions(env_steps=15_360).scale()  # whole iterations of the largest batch
    assert (small.eval_interval, small.grace_period) == (1_920, 3_840)
    with pytest.raises(ValueError, match="--repetitions"):
        BenchOptions(repetitions=0)
    with pytest.raises(ValueError, match="unknown arm hyperband; allowed: optuna_asha, "):
        BenchOptions(arms=("pbt", "hyperband"))


def test_bench_pbt_arm_trains_its_population_at_once_on_the_same_cpus() -> None:
    random = bench_space("random_fifo", 3, FULL)
    pbt = bench_space("pbt", 3, FULL)
    assert pbt.space == random.space and pbt.fixed == random.fixed and pbt.stop == random.stop
    assert pbt.num_samples == random.num_samples and pbt.search.algorithm == "random"
    scheduler = pbt.scheduler
    assert scheduler.type == "pbt" and scheduler.time_attr == "env_steps"
    assert scheduler.hyperparam_mutations["lr"] == random.space["lr"]
    # Each perturbation ranks fresh validations.
    assert scheduler.perturbation_interval % FULL.eval_interval == 0
    # All trials at once, on the CPUs the other arms' concurrent trials hold.
    assert pbt.max_concurrent_trials == pbt.num_samples
    total = pbt.resources_per_trial.cpu * pbt.max_concurrent_trials
    assert total == random.resources_per_trial.cpu * random.max_concurrent_trials
    small = BenchOptions(env_steps=15_360).scale()
    assert small.perturbation_interval == 2 * small.eval_interval
    assert bench_space("pbt", 0, small).checkpoint_num_to_keep >= 3840 // 960 + 2
