"""``vf_share_layers``: a local critic on the policy's trunk (RLlib's default) or on a value MLP
of its own, in the learner's module and in the env runner's."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from tiny import TINY_RUN, algo_modules

from tune_grid.config import RunConfig

TINY: dict[str, Any] = {**TINY_RUN, "train_batch_size": 96, "policy_sharing": "shared"}


def _outputs(module: Any, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        dist = module.forward_inference({"obs": obs})["action_dist_inputs"]
        values = module.compute_values({"obs": obs})
    return dist, values


@pytest.mark.parametrize("shared", [True, False])
def test_the_value_reads_the_policys_trunk_only_when_shared(
    ray_session: None, shared: bool
) -> None:
    from tune_grid.training.ppo import build_ppo_config

    run = RunConfig.from_dict({**TINY, "vf_share_layers": shared})
    algo = build_ppo_config(run).build_algo()
    try:
        module = algo_modules(algo)["learner/shared_policy"]
        encoder = module.encoder
        assert encoder.config.shared is shared
        obs = torch.randn(
            8, module.observation_space.shape[0], generator=torch.Generator().manual_seed(0)
        )
        dist, values = _outputs(module, obs)
        trunk = encoder.encoder if shared else encoder.actor_encoder
        with torch.no_grad():
            for parameter in trunk.parameters():
                parameter.add_(0.5)
        new_dist, new_values = _outputs(module, obs)
        assert not torch.allclose(new_dist, dist)  # the policy reads its trunk
        assert torch.equal(new_values, values) is not shared  # the value only when shared
        value_trunk = encoder.encoder if shared else encoder.critic_encoder
        widths = [m.out_features for m in value_trunk.modules() if isinstance(m, torch.nn.Linear)]
        assert widths == list(run.hidden_sizes)  # a value MLP of the same widths
        runner = algo_modules(algo)["runner/shared_policy"]
        assert runner.encoder.config.shared is shared
    finally:
        algo.stop()


def test_the_default_is_rllibs_shared_trunk() -> None:
    from tune_grid.training.ppo import build_ppo_config

    assert RunConfig().vf_share_layers is True
    config = build_ppo_config(RunConfig.from_dict(TINY))
    assert config.model_config["vf_share_layers"] is True
