"""BatchedVectorEnv: RLlib's vector-env contract, output for output, and its env runner."""

from __future__ import annotations

import numpy as np
import pytest
from ray.rllib.env.vector.sync_vector_multi_agent_env import SyncVectorMultiAgentEnv

from tune_grid.config import RunConfig
from tune_grid.grid.devices import MICROGRIDS
from tune_grid.training.rllib_env import MicrogridRLlibEnv
from tune_grid.training.vector_env import BatchedVectorEnv


def _batched(n: int, **config: object) -> BatchedVectorEnv:
    envs = [MicrogridRLlibEnv(config) for _ in range(n)]
    return BatchedVectorEnv(envs, MicrogridRLlibEnv.make_batch(envs))


def _assert_same(got: list, want: list) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert set(g) == set(w)
        for key, value in w.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(g[key], value)
                assert g[key].dtype == value.dtype
            else:
                assert g[key] == value, key


def test_batched_vector_env_returns_what_rllibs_vector_env_returns() -> None:
    """Three envs for 55 steps, two whole days with RLlib's next-step autoreset in between:
    observations, rewards, terminations, truncations and infos equal RLlib's own
    ``SyncVectorMultiAgentEnv`` over the same envs, seeds and actions."""
    n = 3
    ours = _batched(n)
    rllib = SyncVectorMultiAgentEnv([lambda: MicrogridRLlibEnv({}) for _ in range(n)])
    assert ours.single_observation_space == rllib.single_observation_space
    assert ours.single_action_space == rllib.single_action_space
    obs_o, info_o = ours.reset(seed=11)
    obs_r, info_r = rllib.reset(seed=11)
    _assert_same(obs_o, obs_r)
    _assert_same(info_o, info_r)
    rng = np.random.default_rng(3)
    ended = [False] * n
    resets = 0
    for _ in range(55):
        actions = [
            {} if ended[i] else {a: rng.uniform(-1, 1, 3).astype(np.float32) for a in MICROGRIDS}
            for i in range(n)
        ]
        resets += sum(ended)
        got = ours.step(actions)
        want = rllib.step(actions)
        for g, w in zip(got, want, strict=True):
            _assert_same(list(g), list(w))
        ended = [t["__all__"] for t in got[2]]
    assert resets == 2 * n  # every env ended its day twice and was reset on the next step


def test_bad_actions_name_the_env_and_what_is_allowed() -> None:
    env = _batched(2)
    env.reset(seed=0)
    good = {a: np.zeros(3, dtype=np.float32) for a in MICROGRIDS}
    with pytest.raises(ValueError, match=r"env 1: actions must map every agent of"):
        env.step([good, {"MG1": np.zeros(3)}])
    with pytest.raises(ValueError, match=r"shape \(3,\); got \{MG1: shape \(2,\)"):
        env.step([good, {a: np.zeros(2) for a in MICROGRIDS}])
    with pytest.raises(ValueError, match="actions for env 0 MG2 contain NaN"):
        env.step([{**good, "MG2": np.full(3, np.nan)}, good])
    with pytest.raises(ValueError, match="got actions for 1 envs, expected 2"):
        env.step([good])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "batched"),
    [
        ({}, True),
        ({"horizontal_protocol": "consensus"}, False),
        ({"powerflow": "lightsim2grid"}, False),
    ],
)
def test_env_runner_batches_what_can_batch(
    ray_session: None, overrides: dict, batched: bool
) -> None:
    """tune-grid's runner steps hook-free fast envs as one batch and leaves the others to
    RLlib's vector env; either way an iteration samples whole days and logs grid metrics."""
    from tune_grid.training.metrics import iteration_metrics
    from tune_grid.training.ppo import build_ppo_config

    run = RunConfig.from_dict(
        {
            "train_batch_size": 96,
            "minibatch_size": 32,
            "num_epochs": 1,
            "hidden_sizes": [16, 16],
            "num_envs_per_env_runner": 2,
            **overrides,
        }
    )
    algo = build_ppo_config(run).build_algo()
    try:
        env = algo.env_runner.env
        assert isinstance(env, BatchedVectorEnv if batched else SyncVectorMultiAgentEnv)
        assert env.num_envs == 2
        metrics = iteration_metrics(algo.train())
        assert metrics["env_steps"] == 96
        assert np.isfinite(metrics["daily_cost_mean"]) and metrics["daily_cost_mean"] > 0
    finally:
        algo.stop()
