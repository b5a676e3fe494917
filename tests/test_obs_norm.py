"""``obs_norm``: running observation statistics inside the module, merged after each update."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tiny import TINY_RUN, algo_modules

from tune_grid.config import ConfigError, RunConfig
from tune_grid.training.obs_norm import CLIP, EPSILON, ObservationNormalizer

TINY: dict[str, Any] = {**TINY_RUN, "train_batch_size": 96}


def test_the_statistics_are_those_of_every_committed_row() -> None:
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 4)) for n in (7, 50, 3)]
    normalizer = ObservationNormalizer(4)
    normalizer.stage(torch.as_tensor(batches[0]))
    normalizer.stage(torch.as_tensor(batches[1]))
    normalizer.commit()
    normalizer.stage(torch.as_tensor(batches[2]))  # staged, not yet used
    seen = np.concatenate(batches[:2])
    np.testing.assert_allclose(normalizer.mean.numpy(), seen.mean(axis=0))
    np.testing.assert_allclose(normalizer.var.numpy(), seen.var(axis=0))
    normalizer.commit()
    every = np.concatenate(batches)
    assert float(normalizer.count) == len(every)
    np.testing.assert_allclose(normalizer.mean.numpy(), every.mean(axis=0))
    np.testing.assert_allclose(normalizer.var.numpy(), every.var(axis=0))
    obs = torch.as_tensor(every[:5], dtype=torch.float32)
    expected = (every[:5] - every.mean(axis=0)) / np.sqrt(every.var(axis=0) + EPSILON)
    np.testing.assert_allclose(normalizer.normalize(obs).numpy(), expected, rtol=1e-5)


def test_identity_before_the_first_commit_and_clipped_after() -> None:
    normalizer = ObservationNormalizer(2)
    obs = torch.tensor([[50.0, -3.0]])
    assert torch.equal(normalizer.normalize(obs), obs)
    normalizer.stage(torch.tensor([[0.0, 0.0], [2.0, 2.0]]))
    normalizer.commit()  # mean 1, std 1
    assert normalizer.normalize(obs).tolist() == [[CLIP, -4.0]]


@pytest.mark.parametrize(
    "layout",
    [
        {"policy_sharing": "shared"},
        {"policy_sharing": "shared", "training_loop": "rllib"},
        {"policy_sharing": "independent", "critic": "centralized", "value_norm": True},
    ],
)
def test_training_merges_each_batch_after_its_update_and_runners_get_the_statistics(
    ray_session: None, tmp_path: Path, layout: dict[str, Any]
) -> None:
    from tune_grid.training.checkpoints import CheckpointMeta, save_checkpoint
    from tune_grid.training.policy import TrainedPolicy
    from tune_grid.training.ppo import build_ppo_config

    run = RunConfig.from_dict({**TINY, **layout, "obs_norm": True})
    algo = build_ppo_config(run).build_algo()
    try:
        before = algo_modules(algo)
        assert all(float(m.obs_normalizer.count) == 0 for m in before.values())
        result = algo.train()
        modules = algo_modules(algo)
        learner = {k: m for k, m in modules.items() if k.startswith("learner/")}
        sampled = int(result["env_runners"]["num_env_steps_sampled"])
        agents_per_module = 3 if run.policy_sharing == "shared" else 1
        for key, module in learner.items():
            normalizer = module.obs_normalizer
            assert float(normalizer.count) == sampled * agents_per_module, key
            assert float(normalizer.var.min()) >= 0.0
            runner = modules["runner/" + key.split("/", 1)[1]].obs_normalizer
            torch.testing.assert_close(runner.mean, normalizer.mean)
            torch.testing.assert_close(runner.var, normalizer.var)
            if run.critic == "centralized":
                assert float(module.global_obs_normalizer.count) == sampled
        # The forward pass reads the normalized observation, and nothing else changes.
        module = next(iter(learner.values()))
        obs = torch.rand(5, module.observation_space.shape[0]) * 4.0 - 2.0
        with torch.no_grad():
            out = module.forward_inference({"obs": obs})["action_dist_inputs"]
            normalizer, module.obs_normalizer = module.obs_normalizer, None
            try:
                raw = module.forward_inference({"obs": normalizer.normalize(obs)})
            finally:
                module.obs_normalizer = normalizer
        torch.testing.assert_close(out, raw["action_dist_inputs"])
        # A checkpoint carries the statistics to a loaded policy.
        path = save_checkpoint(algo, tmp_path / "ckpt", CheckpointMeta("obs", run))
        loaded = TrainedPolicy.load(path)
        for mid, loaded_module in loaded.modules.items():
            torch.testing.assert_close(
                loaded_module.obs_normalizer.mean, learner["learner/" + mid].obs_normalizer.mean
            )
    finally:
        algo.stop()


def test_false_keeps_rllibs_own_module() -> None:
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from tune_grid.training.critic import TuneGridPPOTorchRLModule
    from tune_grid.training.ppo import module_spec

    assert module_spec(RunConfig.from_dict({**TINY, "initial_log_std": None})) == RLModuleSpec()
    spec = module_spec(RunConfig.from_dict({**TINY, "obs_norm": True}))
    assert spec.module_class is TuneGridPPOTorchRLModule


def test_a_non_boolean_gets_one_line() -> None:
    with pytest.raises(ConfigError, match="obs_norm: expected true or false, got 'yes'"):
        RunConfig.from_dict({"obs_norm": "yes"})
