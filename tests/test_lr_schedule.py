"""``lr_final`` and ``lr_decay_env_steps``: a linear learning-rate decay in sampled env steps,
followed by both training loops, kept across a checkpoint restore, refused where it cannot
hold (a population scheduler mutating lr) and with one-line errors for bad values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tiny import TINY_RUN

from tune_grid.config import ConfigError, RunConfig
from tune_grid.search.spec.space_file import SpaceFileError, parse_space

SCHEDULE = {"lr": 1e-3, "lr_final": 1e-4, "lr_decay_env_steps": 192, "train_batch_size": 96}


def _expected(env_steps: float) -> float:
    return float(np.interp(env_steps, [0, 192], [1e-3, 1e-4]))


def _lrs(algo: Any) -> list[float]:
    learner = algo.learner_group._learner
    return [float(g["lr"]) for o in learner._named_optimizers.values() for g in o.param_groups]


def _spy(algo: Any) -> list[float]:
    """Every lr an optimizer step runs with, from now on."""
    seen: list[float] = []
    for optimizer in algo.learner_group._learner._named_optimizers.values():
        optimizer.register_step_pre_hook(
            lambda opt, args, kwargs: seen.extend(float(g["lr"]) for g in opt.param_groups)
        )
    return seen


def _sampled(result: dict[str, Any]) -> float:
    from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME

    return float(result[ENV_RUNNER_RESULTS][NUM_ENV_STEPS_SAMPLED_LIFETIME])


@pytest.mark.parametrize("loop", ["lean", "rllib"])
def test_updates_follow_the_linear_decay_and_a_restore_continues_it(
    ray_session: None, tmp_path: Path, loop: str
) -> None:
    from tune_grid.training.algorithms import apply_hyperparameters
    from tune_grid.training.ppo import build_ppo_config

    run = RunConfig.from_dict({**TINY_RUN, **SCHEDULE, "training_loop": loop})
    algo = build_ppo_config(run).build_algo()
    try:
        seen = _spy(algo)
        assert _lrs(algo) == pytest.approx([1e-3])
        used = []
        before = 0.0
        for iteration in range(3):
            sampled = _sampled(algo.train())
            assert seen, "no optimizer step ran"
            used.append(sorted(set(seen)))
            # An iteration's updates run at the schedule's value for the env steps sampled
            # before it (RLlib sets the next lr after each update).
            assert used[-1] == pytest.approx([_expected(before)], rel=1e-6), iteration
            assert _lrs(algo) == pytest.approx([_expected(sampled)], rel=1e-6), iteration
            before = sampled
            seen.clear()
            if iteration == 0:
                algo.save_to_path(str(tmp_path))
                saved = _lrs(algo)
        assert used[0] != used[1], "the lr did not move"
        assert before > 192
        assert used[2] == pytest.approx([1e-4]), "the lr is not held at lr_final"
    finally:
        algo.stop()

    restored = build_ppo_config(run).build_algo()
    try:
        restored.restore_from_path(str(tmp_path))
        apply_hyperparameters(restored, run)  # what a trial does after every restore
        assert _lrs(restored) == pytest.approx(saved)
        assert saved != pytest.approx([1e-3])
        seen = _spy(restored)
        sampled = _sampled(restored.train())
        assert sampled == 192  # the counters continue from the checkpoint
        assert sorted(set(seen)) == pytest.approx(saved)  # as the first run's second iteration
        assert _lrs(restored) == pytest.approx([_expected(sampled)])
    finally:
        restored.stop()


def test_without_lr_final_the_config_keeps_a_constant_lr() -> None:
    from tune_grid.training.ppo import build_ppo_config

    run = RunConfig.from_dict({**TINY_RUN, "lr": 3e-4})
    assert run.lr_schedule() == 3e-4
    assert build_ppo_config(run).lr == 3e-4
    horizon_only = RunConfig.from_dict({**TINY_RUN, "lr": 3e-4, "lr_decay_env_steps": 192})
    assert horizon_only.lr_schedule() == 3e-4  # a search's constant-lr arm: lr_final null
    scheduled = RunConfig.from_dict({**TINY_RUN, **SCHEDULE})
    assert scheduled.lr_schedule() == [[0, 1e-3], [192, 1e-4]]
    assert build_ppo_config(scheduled).lr == [[0, 1e-3], [192, 1e-4]]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"lr_final": 1e-4}, r"lr_final \(0.0001\) needs lr_decay_env_steps"),
        ({"lr_final": 0.0, "lr_decay_env_steps": 10}, r"lr_final must be in \(0, 1\] or null"),
        ({"lr_final": 1e-4, "lr_decay_env_steps": 0}, "lr_decay_env_steps must be >= 1 or null"),
    ],
)
def test_bad_schedules_get_one_line(values: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        RunConfig.from_dict(values)
    assert "\n" not in str(info.value)


def test_a_population_scheduler_may_not_mutate_a_scheduled_lr() -> None:
    data = {
        "experiment": "p",
        "fixed": {"train_batch_size": 240, "minibatch_size": 60, "lr_final": 1e-4},
        "space": {"clip_param": {"type": "uniform", "low": 0.1, "high": 0.4}},
        "search": {"algorithm": "random"},
        "scheduler": {
            "type": "pbt",
            "time_attr": "env_steps",
            "perturbation_interval": 960,
            "hyperparam_mutations": {"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}},
        },
        "num_samples": 4,
        "stop": {"env_steps": 4800},
        "checkpoint_num_to_keep": 6,
    }
    data["fixed"]["lr_decay_env_steps"] = 4800
    with pytest.raises(SpaceFileError, match=r"hyperparam_mutations\.lr: cannot change mid-run"):
        parse_space(data, "pbt.yaml")
    mutations = {"entropy_coeff": {"type": "uniform", "low": 0.0, "high": 0.01}}
    data["scheduler"]["hyperparam_mutations"] = mutations
    assert parse_space(data, "pbt.yaml").fixed["lr_final"] == 1e-4
