"""PPO training end to end with tiny batches: both sharing modes, resume, seeding, evaluation."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tune_grid.config import RunConfig

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "train_batch_size": 96,  # 2 envs x 48 steps: two whole 24-hour episodes per env
    "minibatch_size": 32,
    "num_epochs": 1,
    "hidden_sizes": [16, 16],
    "num_env_runners": 0,
    "num_envs_per_env_runner": 2,
}


SEEDED_METRICS = ("episode_return_mean", "daily_cost_mean", "safety_mean", "violation_hours_mean")


def tiny_run(**overrides: object) -> RunConfig:
    return RunConfig.from_dict({**TINY, **overrides})


@pytest.fixture(scope="module")
def trained(ray_session: None, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """Two iterations of shared PPO through the train loop, checkpointing every iteration."""
    from tune_grid.training.runner import TrainOptions, train

    options = TrainOptions(
        iterations=2,
        checkpoint_freq=1,
        checkpoint_dir=tmp_path_factory.mktemp("runs"),
        eval_days=2,
        wandb=True,  # offline (conftest sets WANDB_MODE=offline)
    )
    lines: list[str] = []
    result = train(tiny_run(), options, print_fn=lines.append)
    return result, lines


@pytest.mark.parametrize(("sharing", "expected"), [("shared", 1), ("independent", 3)])
def test_both_sharing_modes_build_and_train(ray_session: None, sharing: str, expected: int) -> None:
    from tune_grid import make_env
    from tune_grid.training.metrics import iteration_metrics
    from tune_grid.training.policy import TrainedPolicy
    from tune_grid.training.ppo import SHARED_MODULE_ID, build_ppo_config

    algo = build_ppo_config(tiny_run(policy_sharing=sharing)).build_algo()
    try:
        module_ids = set(algo.env_runner.module.keys())
        learner_ids = set(algo.learner_group.get_weights().keys())
        assert len(module_ids) == expected and learner_ids == module_ids
        if sharing == "shared":
            assert module_ids == {SHARED_MODULE_ID}
        else:
            assert module_ids == {"MG1", "MG2", "MG3"}
        policy = TrainedPolicy.from_algorithm(algo, sharing)
        env = make_env()
        observations, _ = env.reset(seed=0)
        actions = policy(observations)
        assert set(actions) == set(observations) and env.step(actions)[0]
        for iteration in (1, 2):
            result = algo.train()
            metrics = iteration_metrics(result)
            assert metrics["iteration"] == iteration
            assert metrics["env_steps"] == iteration * TINY["train_batch_size"]
            for name in ("episode_return_mean", "daily_cost_mean", "safety_mean"):
                assert math.isfinite(metrics[name]), name
            # Per episode, the agents' rewards sum to -cost / cost_scale - penalty * safety
            # (shared or not), so the logged means over the same episodes obey it too.
            run = tiny_run()
            expected = (
                -metrics["daily_cost_mean"] / run.cost_scale - run.penalty * metrics["safety_mean"]
            )
            assert metrics["episode_return_mean"] == pytest.approx(expected, rel=1e-4)
            assert metrics["timers/sample_s"] > 0 and metrics["timers/learn_s"] > 0
            assert set(result["learners"]) - {"__all_modules__"} == module_ids
    finally:
        algo.stop()


def test_same_seed_gives_same_first_iteration(ray_session: None) -> None:
    from tune_grid.training.metrics import iteration_metrics
    from tune_grid.training.ppo import SHARED_MODULE_ID, build_ppo_config

    def first_iteration(seed: int) -> tuple[dict[str, float], float]:
        algo = build_ppo_config(tiny_run(seed=seed)).build_algo()
        try:
            result = algo.train()
        finally:
            algo.stop()
        loss = float(result["learners"][SHARED_MODULE_ID]["total_loss"])
        return iteration_metrics(result), loss

    # Equal up to float rounding: the warm-started AC power flow and CPU kernels may move the
    # last bits (seen: ~1e-13 relative); a different seed moves the metrics by percents.
    (a, loss_a), (b, loss_b) = first_iteration(5), first_iteration(5)
    for key in SEEDED_METRICS:
        assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-9), key
    assert loss_a == pytest.approx(loss_b, rel=1e-6)
    c, _ = first_iteration(6)
    assert a["episode_return_mean"] != pytest.approx(c["episode_return_mean"], rel=1e-4)


def test_same_seed_repeats_across_processes(tmp_path: Path) -> None:
    """Two `train` commands (fresh interpreters, string-hash seeds unset) give one result."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    argv = [sys.executable, "-m", "tune_grid.cli", "train", "--iterations", "1"]
    argv += ["--checkpoint-freq", "0", "--eval-days", "0", "--num-cpus", "2", "--seed", "3"]
    argv += ["--train-batch-size", "96", "--minibatch-size", "32", "--num-epochs", "1"]
    argv += ["--hidden-sizes", "16x16", "--num-envs-per-env-runner", "2"]
    firsts = []
    for name in ("a", "b"):
        folder = tmp_path / name
        proc = subprocess.run(
            [*argv, "--checkpoint-dir", str(folder)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        (meta_path,) = folder.glob("*/final/tune_grid.json")
        firsts.append(json.loads(meta_path.read_text())["history"][0])
    for key in SEEDED_METRICS:
        assert firsts[0][key] == pytest.approx(firsts[1][key], rel=1e-9, abs=1e-9), key


def test_train_writes_checkpoints_progress_and_evaluation(trained) -> None:  # noqa: ANN001
    result, lines = trained
    progress = [line for line in lines if line.startswith("iter ")]
    assert len(progress) == 2 and "steps/s" in progress[0] and "cost/day" in progress[0]
    run_dir = result.run_dir
    assert result.run_name.startswith("networked_microgrids_v1__ppo_shared__0__")
    for name in ("checkpoint_000001", "checkpoint_000002", "best", "final"):
        assert (run_dir / name / "rllib_checkpoint.json").is_file(), name
        assert (run_dir / name / "tune_grid.json").is_file(), name
    assert result.best_checkpoint == run_dir / "best"
    meta = json.loads((run_dir / "final" / "tune_grid.json").read_text())
    assert meta["iteration"] == 2 and meta["env_steps"] == 2 * TINY["train_batch_size"]
    assert meta["best_metric"] == "val_objective" and meta["best_mode"] == "min"
    assert all(math.isfinite(row["val_objective"]) for row in meta["history"])
    assert [row["iteration"] for row in meta["history"]] == [1, 2]

    assert any("wandb sync" in line for line in lines)
    assert list(run_dir.glob("wandb/offline-run-*"))

    report = json.loads((run_dir / "final" / "evaluation.json").read_text())
    assert report == json.loads(json.dumps(result.evaluation))
    assert report["split"] == "test" and report["days"] == 2
    assert set(report["policies"]) == {"trained", "do_nothing", "random", "rule_based"}
    for summary in report["policies"].values():
        for key in ("daily_cost", "daily_cost_low", "safety", "violation_hours", "return"):
            assert math.isfinite(summary[key]), key
        assert summary["daily_cost_low"] <= summary["daily_cost"] <= summary["daily_cost_high"]


def test_resume_continues_iteration_env_steps_and_history(trained) -> None:  # noqa: ANN001
    from tune_grid.training.runner import TrainOptions, train

    first, _ = trained
    lines: list[str] = []
    options = TrainOptions(
        iterations=2,
        checkpoint_freq=0,
        checkpoint_dir=first.run_dir.parent,
        resume=first.final_checkpoint,
        eval_days=0,
    )
    resumed = train(None, options, print_fn=lines.append)
    assert resumed.run_dir != first.run_dir
    iterations = [int(row["iteration"]) for row in resumed.history]
    steps = [int(row["env_steps"]) for row in resumed.history]
    assert iterations == [1, 2, 3, 4]
    assert steps == [TINY["train_batch_size"] * i for i in iterations]
    times = [row["time_total_s"] for row in resumed.history]
    assert times == sorted(times)
    meta = json.loads((resumed.final_checkpoint / "tune_grid.json").read_text())
    assert meta["iteration"] == 4 and meta["resumed_from"] == [str(first.final_checkpoint)]
    assert any(line.startswith("resumed ") for line in lines)

    # Resuming the periodic checkpoint after iteration 1 continues from there.
    options.resume = first.run_dir / "checkpoint_000001"
    options.iterations = 1
    branch = train(None, options, print_fn=lines.append)
    assert [int(row["iteration"]) for row in branch.history] == [1, 2]
    assert int(branch.history[-1]["env_steps"]) == 2 * TINY["train_batch_size"]


def test_trained_policy_is_deterministic_and_fits_evaluate(trained) -> None:  # noqa: ANN001
    from tune_grid import make_env
    from tune_grid.env.evaluation import evaluate
    from tune_grid.training.policy import TrainedPolicy

    result, _ = trained
    policy = TrainedPolicy.load(result.final_checkpoint)
    env = make_env(split="test")
    observations, _ = env.reset(seed=1)
    first, second = policy(observations), policy(observations)
    assert set(first) == {"MG1", "MG2", "MG3"}
    for agent, action in first.items():
        assert action.shape == (3,) and action.dtype == np.float32
        assert np.all(np.abs(action) <= 1.0)
        np.testing.assert_array_equal(action, second[agent])
    days = evaluate(policy, split="test", days=1)
    assert len(days) == 1 and np.isfinite(days["cost"]).all()


def test_corrupt_checkpoint_state_is_a_checkpoint_error(
    trained,  # noqa: ANN001
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import shutil

    from tune_grid.cli import main
    from tune_grid.training.checkpoints import CheckpointError, restore_algorithm
    from tune_grid.training.policy import TrainedPolicy

    result, _ = trained
    broken = tmp_path / "broken"
    shutil.copytree(result.final_checkpoint, broken)
    (broken / "algorithm_state.pkl").write_bytes(b"not a pickle")
    for state in broken.rglob("module_state.pkl"):
        state.write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="cannot restore"):
        restore_algorithm(broken)
    with pytest.raises(CheckpointError, match="cannot load RLModule"):
        TrainedPolicy.load(broken)
    capsys.readouterr()  # drop warnings printed so far
    assert main(["evaluate", str(broken), "--days", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot load RLModule" in err[0]


def test_plain_rllib_checkpoint_evaluates_with_a_run_config(trained, tmp_path: Path) -> None:  # noqa: ANN001
    import shutil

    from tune_grid.evaluation.checkpoints import evaluate_checkpoint
    from tune_grid.training.checkpoints import CheckpointError, read_meta
    from tune_grid.training.policy import TrainedPolicy

    result, _ = trained
    plain = tmp_path / "plain"
    shutil.copytree(result.final_checkpoint, plain)
    (plain / "tune_grid.json").unlink()
    (plain / "evaluation.json").unlink()
    with pytest.raises(CheckpointError):
        read_meta(plain)
    assert TrainedPolicy.load(plain).policy_sharing == "shared"
    report = evaluate_checkpoint(plain, days=1, run_config=tiny_run(), baselines=("do_nothing",))
    assert set(report["policies"]) == {"trained", "do_nothing"} and report["iteration"] is None
    assert (plain / "evaluation.json").is_file()


def test_evaluate_command_prints_table_and_writes_json(trained) -> None:  # noqa: ANN001
    result, _ = trained
    checkpoint = result.run_dir / "checkpoint_000001"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "tune_grid.cli", "evaluate", str(checkpoint), "--days", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("trained", "do_nothing", "random", "rule_based"):
        assert name in proc.stdout
    report = json.loads((checkpoint / "evaluation.json").read_text())
    assert report["days"] == 1 and report["iteration"] == 1
