"""RLlib's vector-env interface over a batch of envs stepped in one call.

RLlib (2.60) always wraps a runner's envs in ``SyncVectorMultiAgentEnv``, which steps them one
by one through two wrapper layers and deep-copies every observation. :class:`BatchedEnvRunner`
swaps that for :class:`BatchedVectorEnv` where the env class offers a batch
(``make_batch(envs)``, e.g. :meth:`MicrogridRLlibEnv.make_batch`): one
:class:`~tune_grid.env.batch.MicrogridBatch` call advances every env, and the vector env only
turns its arrays into RLlib's per-env dicts. Envs without a batch (protocols, the pandapower or
lightsim2grid backends) keep RLlib's own vector env.

Semantics are RLlib's: ``next_step`` autoreset (an env that finished is reset on the following
``step``, which returns its reset observation, zero rewards and ``__all__`` False), seeds
``seed + i`` per env, and observations, rewards, terminations, truncations and infos exactly
as ``ParallelPettingZooEnv`` returns them (a test compares the two over whole days).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.env.vector.vector_multi_agent_env import VectorMultiAgentEnv


class EnvBatch(Protocol):
    """What :class:`BatchedVectorEnv` needs from a batch (see ``MicrogridBatch``)."""

    agents: tuple[str, ...]
    num_envs: int

    def reset(
        self, index: int, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict]]: ...

    def step(self, actions: np.ndarray, stepping: np.ndarray) -> Any: ...


class BatchedVectorEnv(VectorMultiAgentEnv):
    """``VectorMultiAgentEnv`` whose sub-envs advance together through an :class:`EnvBatch`.

    ``envs`` are RLlib's sub-env objects (kept for RLlib's per-env space lookups); the batch
    owns their stepping.
    """

    envs: list[Any]

    def __init__(self, envs: Sequence[Any], batch: EnvBatch) -> None:
        super().__init__()
        if len(envs) != batch.num_envs:
            raise ValueError(f"{len(envs)} envs but a batch of {batch.num_envs}")
        self.envs = list(envs)
        self.num_envs = len(self.envs)
        first = self.envs[0].unwrapped
        self.single_observation_spaces = dict(first.observation_spaces)
        self.single_action_spaces = dict(first.action_spaces)
        self.single_observation_space = gym.spaces.Dict(self.single_observation_spaces)
        self.single_action_space = gym.spaces.Dict(self.single_action_spaces)
        self.metadata = {**getattr(first, "metadata", {}), "autoreset_mode": "next_step"}
        self.render_mode = None
        self._batch = batch
        self._agents = tuple(batch.agents)
        action_space = self.single_action_spaces[self._agents[0]]
        if action_space.shape is None:
            raise ValueError(f"the agents' action space {action_space} has no fixed shape")
        self._action_shape = action_space.shape
        self._actions = np.zeros((self.num_envs, len(self._agents), *self._action_shape))
        self._autoreset = np.zeros(self.num_envs, dtype=np.bool_)

    # RLlib annotates reset and step with a TypeVar bound to nothing (ArrayType), which no
    # concrete signature can override.
    def reset(  # type: ignore[override]
        self, *, seed: int | Sequence[int | None] | None = None, options: dict | None = None
    ) -> tuple[list[dict], list[dict]]:
        if seed is None or isinstance(seed, int | np.integer):
            seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} envs")
        observations, infos = [], []
        for i, env_seed in enumerate(seeds):
            obs, info = self._batch.reset(i, seed=env_seed, options=options)
            observations.append(obs)
            infos.append(info)
        self._autoreset[:] = False
        return observations, infos

    def step(  # type: ignore[override]
        self, actions: Sequence[dict[str, Any]]
    ) -> tuple[list, list, list, list, list]:
        if len(actions) != self.num_envs:
            raise ValueError(f"got actions for {len(actions)} envs, expected {self.num_envs}")
        stepping = ~self._autoreset
        buffer, agents = self._actions, self._agents
        for i in np.flatnonzero(stepping).tolist():
            try:
                buffer[i] = [actions[i][agent] for agent in agents]
            except (KeyError, ValueError, TypeError):
                raise ValueError(
                    f"env {i}: actions must map every agent of {list(agents)} to an array of "
                    f"shape {self._action_shape}; got {_describe(actions[i])}"
                ) from None
        result = self._batch.step(buffer, stepping)
        observations, rewards, terminateds, truncateds, infos = [], [], [], [], []
        for i in range(self.num_envs):
            if stepping[i]:
                done = bool(result.done[i])
                observations.append(dict(zip(agents, result.observations[i], strict=True)))
                rewards.append(dict(zip(agents, result.rewards[i], strict=True)))
                infos.append(dict(zip(agents, result.infos[i], strict=True)))
            else:  # next-step autoreset
                done = False
                obs, info = self._batch.reset(i)
                observations.append(obs)
                rewards.append(dict.fromkeys(agents, 0.0))
                infos.append(info)
            terminated = dict.fromkeys(agents, done)
            terminated["__all__"] = done
            truncated = dict.fromkeys(agents, False)
            truncated["__all__"] = False
            terminateds.append(terminated)
            truncateds.append(truncated)
        self._autoreset = stepping & np.asarray(result.done, dtype=np.bool_)
        return observations, rewards, terminateds, truncateds, infos

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()


def _describe(action: Any) -> str:
    if not isinstance(action, dict):
        return type(action).__name__
    return "{" + ", ".join(f"{k}: shape {np.shape(v)}" for k, v in action.items()) + "}"


class BatchedEnvRunner(MultiAgentEnvRunner):
    """``MultiAgentEnvRunner`` that steps its envs as one batch where the env class has one.

    RLlib builds the envs (registry, env context, checks, callbacks) as always; if the env
    class defines ``make_batch(envs) -> EnvBatch | None`` and it returns a batch, the runner
    steps them through :class:`BatchedVectorEnv` instead of ``SyncVectorMultiAgentEnv``.
    """

    def make_env(self) -> None:
        super().make_env()
        assert self.env is not None and self.env.envs is not None  # built by super().make_env
        envs = list(self.env.envs)
        make_batch = getattr(type(envs[0].unwrapped), "make_batch", None)
        batch = make_batch([env.unwrapped for env in envs]) if make_batch else None
        if batch is not None:
            self.env = BatchedVectorEnv(envs, batch)
