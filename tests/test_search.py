"""Real tiny searches on a local Ray: Optuna + ASHA + multi-seed + export + W&B, a trial that fails
once and recovers from its checkpoint, export idempotence, and the search benchmark's smoke mode."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from tiny import TINY_RUN

from tune_grid.results.export import export_experiment
from tune_grid.results.schema import ITERATIONS_FILE, TRIALS_FILE, read_results
from tune_grid.search.spec.space_file import load_space_file

pytestmark = pytest.mark.slow

TINY: dict[str, Any] = {
    "experiment": "tiny",
    "fixed": dict(TINY_RUN),
    "space": {
        "lr": {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-2},
        "train_batch_size": {"type": "choice", "values": [96, 144]},
        "policy_sharing": {"type": "choice", "values": ["shared", "independent"]},
        "share_reward": {"type": "bool"},
    },
    "search": {"algorithm": "optuna", "seed": 0, "n_startup_trials": 2},
    "scheduler": {
        "type": "asha",
        "time_attr": "env_steps",
        "max_t": 288,
        "grace_period": 96,
        "reduction_factor": 2,
    },
    "num_samples": 4,
    "max_concurrent_trials": 2,
    "seeds": 2,
    "stop": {"env_steps": 288},
    "validation": {"oracle": False},
    "evaluation": {"top_k": 2, "days": 2, "oracle": False},
    "max_failures": 1,
}


def write_space(tmp_path: Path, **changes: Any) -> Path:
    path = tmp_path / f"{changes.get('experiment', 'tiny')}.yaml"
    path.write_text(yaml.safe_dump({**TINY, **changes}))
    return path


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    import ray

    from tune_grid.search.run.tuner import SearchOptions, init_ray

    init_ray(SearchOptions(num_cpus=2))
    yield
    ray.shutdown()


def _search(path: Path, storage: Path, **options: Any) -> Any:
    from tune_grid.search.pipeline import run_search
    from tune_grid.search.run.tuner import SearchOptions

    return run_search(
        load_space_file(path), SearchOptions(storage=str(storage), **options), space_path=path
    )


def test_optuna_asha_multiseed_search_exports_parquet(local_ray: None, tmp_path: Path) -> None:
    import optuna

    path = write_space(tmp_path)
    outcome = _search(path, tmp_path / "results", wandb=True)
    results = tmp_path / "results" / "tiny"
    assert outcome.finished and outcome.paths.results_dir == results

    trials = read_results(results / TRIALS_FILE, "trials")
    iterations = read_results(results / ITERATIONS_FILE, "iterations")
    rows = trials.to_pylist()
    assert trials.num_rows == 4 and len({r["trial_id"] for r in rows}) == 4
    assert trials.schema.field("param_lr").type == pa.float64()
    assert trials.schema.field("param_train_batch_size").type == pa.int64()
    assert trials.schema.field("param_share_reward").type == pa.bool_()
    assert trials.schema.field("param_policy_sharing").type == pa.string()
    assert trials.schema.field("param_hidden_sizes").type == pa.string()
    assert {r["param_policy_sharing"] for r in rows} <= {"shared", "independent"}
    for row in rows:
        assert row["status"] == "TERMINATED" and row["experiment"] == "tiny"
        assert row["seeds"] == [0, 1] and len(row["last_objective_per_seed"]) == 2
        assert row["node_id"] and row["node_ip"] and row["checkpoint_path"]
        assert 1 <= row["iterations"] <= 3 and row["env_steps"] <= 288
        assert row["stopped_early"] == (row["env_steps"] < 288)
        trial_rows = [r for r in iterations.to_pylist() if r["trial_id"] == row["trial_id"]]
        assert [r["iteration"] for r in trial_rows] == list(range(1, row["iterations"] + 1))
        for r in trial_rows:
            assert len(r["objective_per_seed"]) == 2
            assert r["objective"] == pytest.approx(sum(r["objective_per_seed"]) / 2)
            assert r["objective"] == r["val_objective"]  # the default metric
            assert r["val_env_steps"] == r["env_steps"]  # every iteration crosses 96 steps
    evaluated = [r for r in rows if not math.isnan(r["test_daily_cost"])]
    assert len(evaluated) == 2
    for row in evaluated:
        assert row["test_days"] == 2 and len(row["test_daily_cost_per_seed"]) == 2

    baselines = json.loads((results / "baselines.json").read_text())
    assert baselines["split"] == "test" and baselines["days"] == 2
    for name in ("do_nothing", "random", "rule_based", "mpc_persistence"):
        assert set(baselines["policies"][name]) >= {"daily_cost", "safety", "violation_hours"}
    mpc_cost = baselines["policies"]["mpc_persistence"]["daily_cost"]
    for row in evaluated:  # the gap to the MPC, pooled over the same days
        expected = (row["test_daily_cost"] - mpc_cost) / abs(mpc_cost)
        assert row["test_mpc_gap"] == pytest.approx(expected)

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{results / 'optuna.db'}")
    assert len(study.trials) == 4
    assert len(list((results / "wandb").glob("offline-run-*"))) == 4

    # The final export is a pure function of the experiment folder: same bytes again.
    written = [(results / f).read_bytes() for f in (TRIALS_FILE, ITERATIONS_FILE)]
    export_experiment(results)
    assert [(results / f).read_bytes() for f in (TRIALS_FILE, ITERATIONS_FILE)] == written
    from tune_grid.cli import main

    assert main(["export", str(results)]) == 0
    assert [(results / f).read_bytes() for f in (TRIALS_FILE, ITERATIONS_FILE)] == written

    # A second fresh start into the same folder is refused (no results overwritten).
    from tune_grid.search.run.tuner import SearchError

    with pytest.raises(SearchError, match="--resume"):
        _search(path, tmp_path / "results")


def test_failed_trial_recovers_from_its_checkpoint(
    local_ray: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "failed-once"
    monkeypatch.setenv("TUNE_GRID_TEST_FAIL_ONCE", f"{marker}:2")
    path = write_space(
        tmp_path,
        experiment="failonce",
        num_samples=1,
        fixed={**TINY["fixed"], "train_batch_size": 96},
        space={"lr": TINY["space"]["lr"]},
        scheduler={"type": "fifo"},
        evaluation={"enabled": False},
    )
    outcome = _search(path, tmp_path / "results")
    results = outcome.paths.results_dir
    assert marker.exists()
    trial = read_results(results / TRIALS_FILE, "trials").to_pylist()[0]
    assert trial["status"] == "TERMINATED" and trial["iterations"] == 3
    rows = read_results(results / ITERATIONS_FILE, "iterations").to_pylist()
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    # Iteration 1 ran once; iterations 2 and 3 ran after restoring iteration 1's checkpoint.
    assert [r["restores"] for r in rows] == [0.0, 1.0, 1.0]
    assert rows[1]["env_steps"] == 2 * rows[0]["env_steps"]
    assert list(results.glob("trial_*/error.txt"))


def test_bench_search_smoke(local_ray: None, tmp_path: Path) -> None:
    from tune_grid.bench.search import BenchOptions, run_search_benchmark

    lines: list[str] = []
    report = run_search_benchmark(
        BenchOptions(smoke=True, storage=str(tmp_path)), print_fn=lines.append
    )
    summary, target, traces = report["summary"], report["target"], report["traces"]
    assert set(summary) == {"optuna_asha", "random_fifo", "pbt", "ratio_optuna_asha", "ratio_pbt"}
    # The default target is the rule-based baseline on the same validation days.
    assert target.value == target.levels["rule_based"] and target.days == 3
    assert target.levels["oracle"] < target.value
    assert sorted(t.arm for t in traces) == ["optuna_asha", "pbt", "random_fifo"]
    for trace in traces:
        assert trace.trials == 2
        assert trace.env_steps == sorted(trace.env_steps) and trace.times == sorted(trace.times)
        assert all(b2 <= b1 for b1, b2 in zip(trace.best, trace.best[1:], strict=False))
        steps, seconds = trace.reach(target.value)[1], trace.reach(target.value)[0]
        assert math.isinf(steps) or steps <= trace.total_env_steps
        assert math.isinf(seconds) or seconds <= trace.wall_s
        # Every trial of random+FIFO runs to the stop; a search never runs more than all of them.
        assert trace.total_env_steps <= 2 * (960 + 480)
    fifo = next(t for t in traces if t.arm == "random_fifo")
    assert fifo.stopped_early == 0
    for arm in ("optuna_asha", "random_fifo", "pbt"):
        assert summary[arm]["runs"] == 1
        assert summary[arm]["final_best"] == min(t.final for t in traces if t.arm == arm)
    for arm in ("optuna_asha", "pbt"):
        assert summary[f"ratio_{arm}"]["total_env_steps"] == pytest.approx(
            summary["random_fifo"]["total_env_steps"] / summary[arm]["total_env_steps"]
        )
    ladder = report["ladder"]
    assert list(ladder) == ["do_nothing", "half_way", "rule_based"]
    assert ladder["rule_based"] == (target.value, summary)
    assert ladder["half_way"][0] == pytest.approx(
        (target.levels["do_nothing"] + target.levels["rule_based"]) / 2
    )
    text = "\n".join(lines)
    assert "ratio random_fifo / optuna_asha to target: env steps" in text
    assert "ratio random_fifo / pbt to target: env steps" in text
    assert f"<= ${target.value:,.2f}/day (the rule-based baseline's objective" in text


def test_reported_objective_is_the_seed_mean_of_the_greedy_validation_objective(
    local_ray: None, tmp_path: Path
) -> None:
    """Recomputed independently: each seed's checkpointed policy rolled day by day (not batched)
    on the validation days, its mean daily objective averaged over the seeds; the gap against
    the oracle's days."""
    from tune_grid.env.evaluation import evaluate
    from tune_grid.oracle import optimality_gaps, oracle_days
    from tune_grid.training.checkpoints import read_meta
    from tune_grid.training.policy import TrainedPolicy
    from tune_grid.training.validation import validation_days

    path = write_space(
        tmp_path,
        experiment="valobj",
        num_samples=1,
        fixed={**TINY["fixed"], "train_batch_size": 96},
        space={"lr": {"type": "loguniform", "low": 3e-3, "high": 1e-2}},
        scheduler={"type": "fifo"},
        validation={"oracle": True},
        evaluation={"enabled": False},
    )
    outcome = _search(path, tmp_path / "results")
    results = outcome.paths.results_dir
    trial = read_results(results / TRIALS_FILE, "trials").to_pylist()[0]
    rows = {
        r["iteration"]: r for r in read_results(results / ITERATIONS_FILE, "iterations").to_pylist()
    }
    checkpoint = Path(trial["checkpoint_path"])
    seed_dirs = sorted(checkpoint.glob("seed_*"))
    assert len(seed_dirs) == 2
    meta = read_meta(seed_dirs[0])
    row = rows[meta.iteration]
    assert trial["best_objective"] == row["objective"] == row["val_objective"]

    env_config = meta.run_config.env_config().to_dict()
    days = validation_days(meta.run_config)
    frames = [
        evaluate(TrainedPolicy.load(d), split="validation", days=days, config=env_config)
        for d in seed_dirs
    ]
    per_seed = [float(f["objective"].mean()) for f in frames]
    # float32 networks: a batch of all days vs one day at a time differ in the last digits
    assert row["objective_per_seed"] == pytest.approx(per_seed, rel=1e-7)
    assert row["objective"] == pytest.approx(sum(per_seed) / 2, rel=1e-7)
    assert row["val_daily_cost"] == pytest.approx(
        sum(float(f["cost"].mean()) for f in frames) / 2, rel=1e-7
    )
    oracle = oracle_days("validation", days, {**env_config, "split": "validation"})
    gaps = [optimality_gaps(f, oracle).objective_gap for f in frames]
    assert row["val_gap"] == pytest.approx(sum(gaps) / 2, rel=1e-6)
