"""The networked-microgrid env as an RLlib ``MultiAgentEnv``, registered under one name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
from ray.rllib.utils.typing import MultiAgentDict
from ray.tune.registry import register_env

from tune_grid.env import ENV_NAME, make_env
from tune_grid.env.batch import MicrogridBatch, can_batch
from tune_grid.training.vector_env import EnvBatch

RLLIB_ENV_NAME = ENV_NAME
"""The name the env is registered under with RLlib/Tune (``config.env``)."""


class MicrogridRLlibEnv(ParallelPettingZooEnv):
    """``ParallelPettingZooEnv`` with a fixed agent order and live-agent tracking.

    RLlib's wrapper lists agents from a ``set``, whose order changes with the process's string-hash
    seed; a fixed order (MG1, MG2, MG3) keeps batches, and so same-seed runs, reproducible.
    """

    def __init__(self, env_config: Mapping[str, Any] | None = None) -> None:
        self._wrap(make_env(dict(env_config or {})))

    def _wrap(self, par_env: Any) -> None:
        """Wrap ``par_env`` with fixed agent order and exact per-agent spaces."""
        ParallelPettingZooEnv.__init__(self, par_env)
        order = list(par_env.possible_agents)
        self.possible_agents = order
        self.agents = list(order)
        self._agent_ids = set(order)
        observation_spaces = {a: par_env.observation_space(a) for a in order}
        action_spaces = {a: par_env.action_space(a) for a in order}
        self.observation_spaces = dict(observation_spaces)
        self.action_spaces = dict(action_spaces)
        self.observation_space = gym.spaces.Dict(observation_spaces)
        self.action_space = gym.spaces.Dict(action_spaces)
        self._check_spaces(observation_spaces)

    def _check_spaces(self, observation_spaces: Mapping[str, gym.Space]) -> None:
        """Fail early, with the agent named, if a reset observation is outside its space."""
        observations, _ = self.par_env.reset(seed=0)
        for agent, obs in observations.items():
            space = observation_spaces[agent]
            if obs.shape != space.shape or obs.dtype != space.dtype or not space.contains(obs):
                raise ValueError(
                    f"{agent}: reset observation (shape {obs.shape}, dtype {obs.dtype}) is not "
                    f"in its observation space {space}"
                )

    def reset(self, *, seed: int | None = None, options: dict | None = None):  # noqa: ANN201
        observations, infos = super().reset(seed=seed, options=options)
        self.agents = list(self.par_env.agents)
        return observations, infos

    def step(self, action_dict: MultiAgentDict):  # noqa: ANN201
        result = super().step(action_dict)
        self.agents = list(self.par_env.agents)
        return result

    @staticmethod
    def make_batch(envs: Sequence[MicrogridRLlibEnv]) -> EnvBatch | None:
        """One batch stepping all ``envs`` in a compiled call, where their config allows it
        (the fast power flow, no protocols); else None (RLlib steps them one by one)."""
        par_envs = [env.par_env for env in envs]
        if not all(can_batch(env) for env in par_envs):
            return None
        return MicrogridBatch(par_envs)


def env_creator(env_config: Mapping[str, Any] | None = None) -> MicrogridRLlibEnv:
    """RLlib env creator: ``env_config`` holds EnvConfig keys (an ``EnvContext`` is a dict)."""
    return MicrogridRLlibEnv(env_config)


def register_rllib_env() -> str:
    """Register the env with RLlib/Tune (idempotent) and return its name."""
    register_env(RLLIB_ENV_NAME, env_creator)
    return RLLIB_ENV_NAME
