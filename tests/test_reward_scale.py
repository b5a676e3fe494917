"""``reward_scale``: the learner's rewards (before GAE) are the env's times the factor."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from tiny import TINY_RUN

from tune_grid.config import ConfigError, RunConfig

TINY: dict[str, Any] = {**TINY_RUN, "train_batch_size": 96}


def _rewards(learner: Any, episodes: list[Any]) -> np.ndarray:
    """The rewards column of the learner's train batch for ``episodes`` (real steps only)."""
    from ray.rllib.core.columns import Columns
    from ray.rllib.core.learner.training_data import TrainingData

    batch = learner._make_batch_if_necessary(training_data=TrainingData(episodes=episodes))
    (module_batch,) = batch.policy_batches.values()
    mask = np.asarray(module_batch[Columns.LOSS_MASK], bool)
    return np.asarray(module_batch[Columns.REWARDS], dtype=np.float64)[mask]


@pytest.mark.parametrize("training_loop", ["lean", "rllib"])
def test_the_learner_sees_the_env_rewards_times_the_scale(
    ray_session: None, training_loop: str
) -> None:
    from ray.rllib.connectors.learner import GeneralAdvantageEstimation

    from tune_grid.training.ppo import build_ppo_config
    from tune_grid.training.reward_scale import ScaleRewards

    run = RunConfig.from_dict({**TINY, "training_loop": training_loop, "reward_scale": 0.25})
    algo = build_ppo_config(run).build_algo()
    try:
        learner = algo.learner_group._learner
        pipeline = learner._learner_connector
        pieces = [type(p) for p in pipeline.connectors]
        assert pieces.index(ScaleRewards) == pieces.index(GeneralAdvantageEstimation) - 1
        episodes = algo.env_runner.sample(num_timesteps=96, random_actions=False)
        # The pipeline's first piece extends the episodes it is given: give it copies.
        scaled = _rewards(learner, copy.deepcopy(episodes))
        pipeline.remove("ScaleRewards")
        unscaled = _rewards(learner, copy.deepcopy(episodes))
        assert np.count_nonzero(unscaled) > len(unscaled) // 2  # most hours cost something
        np.testing.assert_allclose(scaled, unscaled * 0.25, rtol=1e-6)
    finally:
        algo.stop()


def test_one_keeps_rllibs_pipeline(ray_session: None) -> None:
    from tune_grid.training.ppo import build_ppo_config
    from tune_grid.training.reward_scale import ScaleRewards

    algo = build_ppo_config(RunConfig.from_dict(TINY)).build_algo()
    try:
        connectors = algo.learner_group._learner._learner_connector.connectors
        assert not any(isinstance(p, ScaleRewards) for p in connectors)
    finally:
        algo.stop()


@pytest.mark.parametrize("value", [0.0, -1.0, 2000.0])
def test_out_of_range_values_get_one_line(value: float) -> None:
    with pytest.raises(ConfigError, match=r"reward_scale must be in \(0, 1000\]"):
        RunConfig.from_dict({"reward_scale": value})
