"""``initial_log_std``: the policy head starts at the given log-std, nothing else changes."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from tiny import TINY_RUN, algo_modules

from tune_grid.config import ConfigError, RunConfig
from tune_grid.training.critic import INITIAL_LOG_STD_KEY

TINY: dict[str, Any] = {**TINY_RUN, "train_batch_size": 96}


def _dist_inputs(run: RunConfig) -> dict[str, torch.Tensor]:
    """Each module's action-distribution inputs for a zero observation, learner and runner."""
    from tune_grid.training.ppo import build_ppo_config

    algo = build_ppo_config(run).build_algo()
    try:
        out = {}
        for key, module in algo_modules(algo).items():
            obs = torch.zeros(1, module.observation_space.shape[0])
            dist_inputs = module.forward_inference({"obs": obs})["action_dist_inputs"]
            out[key] = dist_inputs.detach()[0]
        return out
    finally:
        algo.stop()


@pytest.mark.parametrize(
    "layout",
    [
        {"policy_sharing": "shared"},
        {"policy_sharing": "independent", "value_norm": True},
        {"policy_sharing": "independent", "critic": "centralized"},
    ],
)
def test_the_log_std_starts_shifted_and_the_means_do_not_move(
    ray_session: None, tiny_run: dict[str, Any], layout: dict[str, Any]
) -> None:
    config = {**tiny_run, "train_batch_size": 96, **layout}
    base = _dist_inputs(RunConfig.from_dict({**config, "initial_log_std": None}))
    shifted = _dist_inputs(RunConfig.from_dict({**config, "initial_log_std": -1.5}))
    assert base.keys() == shifted.keys()
    for key, inputs in base.items():
        half = inputs.shape[0] // 2
        torch.testing.assert_close(shifted[key][:half], inputs[:half])  # the means
        torch.testing.assert_close(shifted[key][half:], inputs[half:] - 1.5)  # the log-stds


def test_null_keeps_rllibs_own_module_and_the_default_is_minus_one() -> None:
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from tune_grid.training.ppo import module_spec

    assert module_spec(RunConfig.from_dict({**TINY, "initial_log_std": None})) == RLModuleSpec()
    assert RunConfig.from_dict(TINY).initial_log_std == -1.0
    default = module_spec(RunConfig.from_dict(TINY))
    assert default.module_class is not None
    assert default.model_config[INITIAL_LOG_STD_KEY] == -1.0


@pytest.mark.parametrize("value", [-6.0, 2.5])
def test_out_of_range_values_get_one_line(value: float) -> None:
    with pytest.raises(ConfigError, match=r"initial_log_std must be in \[-5, 2\] or null"):
        RunConfig.from_dict({"initial_log_std": value})
