"""``action_squash: tanh``: actions stay strictly inside [-1, 1]; ``clip`` is RLlib's module."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from tiny import TINY_RUN, algo_modules

from tune_grid.config import ConfigError, RunConfig
from tune_grid.training.tanh_gaussian import BOUND, TanhGaussian

TINY: dict[str, Any] = {**TINY_RUN, "train_batch_size": 96}


def test_samples_never_reach_the_bounds_and_their_logp_is_the_learners() -> None:
    torch.manual_seed(0)
    logits = torch.cat([torch.zeros(20000, 3), torch.full((20000, 3), 2.5)], dim=-1)
    dist = TanhGaussian.from_logits(logits)  # std e^2 after RLlib's log-std clamp
    actions = dist.sample()
    assert float(actions.abs().max()) <= BOUND < 1.0
    assert float((actions.abs() > 0.999).float().mean()) > 0.5  # many saturate in float32
    logp = dist.logp(actions)
    assert torch.isfinite(logp).all()
    # What the sampler stores is what the learner recomputes from the stored action.
    torch.testing.assert_close(TanhGaussian.from_logits(logits).logp(actions), logp)


def test_kl_and_entropy_are_the_pre_squash_gaussians() -> None:
    a = TanhGaussian.from_logits(torch.tensor([[0.3, -0.5, 0.1, -1.0]]))
    b = TanhGaussian.from_logits(torch.tensor([[-0.2, 0.4, 0.0, -0.3]]))
    normal_a = torch.distributions.Normal(
        torch.tensor([0.3, -0.5]), torch.tensor([0.1, -1.0]).exp()
    )
    normal_b = torch.distributions.Normal(
        torch.tensor([-0.2, 0.4]), torch.tensor([0.0, -0.3]).exp()
    )
    kl = torch.distributions.kl_divergence(normal_a, normal_b).sum()
    torch.testing.assert_close(a.kl(b)[0], kl)
    torch.testing.assert_close(a.entropy()[0], normal_a.entropy().sum())
    greedy = a.to_deterministic().sample()
    torch.testing.assert_close(greedy, torch.tanh(torch.tensor([[0.3, -0.5]])))


@pytest.mark.parametrize(
    "layout",
    [
        {"policy_sharing": "shared"},
        {"policy_sharing": "shared", "training_loop": "rllib"},
        {"policy_sharing": "independent", "critic": "centralized", "value_norm": True},
    ],
)
def test_a_squashed_policy_trains_and_acts_inside_the_bounds(
    ray_session: None, layout: dict[str, Any]
) -> None:
    from tune_grid.training.policy import TrainedPolicy
    from tune_grid.training.ppo import build_ppo_config

    run = RunConfig.from_dict({**TINY, **layout, "action_squash": "tanh", "initial_log_std": 2.0})
    algo = build_ppo_config(run).build_algo()
    try:
        modules = algo_modules(algo)
        for module in modules.values():
            assert module.get_exploration_action_dist_cls() is TanhGaussian
            assert module.get_train_action_dist_cls() is TanhGaussian
        result = algo.train()
        assert result["env_runners"]["num_env_steps_sampled"] >= 96
        for mid, stats in result["learners"].items():
            if mid != "__all_modules__":
                assert torch.isfinite(torch.as_tensor(stats["total_loss"])), mid
        # The episodes' actions (what the env received) stay inside the bounds.
        episodes = algo.env_runner.sample(num_timesteps=48, random_actions=False)
        actions = torch.cat(
            [
                torch.as_tensor(agent_episode.get_actions())
                for episode in episodes
                for agent_episode in episode.agent_episodes.values()
            ]
        )
        assert float(actions.abs().max()) < 1.0
        assert float((actions.abs() > 0.99).float().mean()) > 0.1  # std e^2: mass near the bounds
        policy = TrainedPolicy.from_algorithm(algo, run.policy_sharing)
        features = next(iter(modules.values())).observation_space.shape[0]
        obs = torch.rand(4, 3, features) * 2.0 - 1.0
        greedy = policy.act_batch(obs.numpy())
        assert abs(greedy).max() < 1.0
    finally:
        algo.stop()


def test_clip_keeps_rllibs_own_module() -> None:
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from tune_grid.training.ppo import module_spec

    clip = {**TINY, "action_squash": "clip", "initial_log_std": None}
    assert module_spec(RunConfig.from_dict(clip)) == RLModuleSpec()


def test_an_unknown_squash_gets_one_line() -> None:
    with pytest.raises(
        ConfigError, match="action_squash: got 'sigmoid', allowed: one of 'clip', 'tanh'"
    ):
        RunConfig.from_dict({"action_squash": "sigmoid"})
