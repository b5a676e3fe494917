"""The centralized critic's input: a learner connector piece that adds a ``global_obs`` column.

RLlib's PPO learner pipeline runs, in order: ``AddOneTsToEpisodesAndTruncate`` (prepended by
``PPOLearner.build``), the custom pieces of ``config.learners(learner_connector=...)``, RLlib's
default pieces (observations and other columns from the episodes, agent-to-module mapping,
batching, tensors) and, last, ``GeneralAdvantageEstimation`` (appended by ``PPOLearner.build``),
which calls each module's ``compute_values`` on the finished batch. :class:`AddGlobalObservations`
is such a custom piece: it reads the (already one-step-extended) MultiAgentEpisodes and writes,
for every row that ``AddObservationsFromEpisodesToBatch`` writes to ``obs``, the row's global
state to ``global_obs``, keyed and ordered the same way, so both columns reach every module's
batch aligned, before GAE and the loss read them. Env runners never see this column: they only
compute actions, from ``obs``.

An agent's global state is its own observation, then the other agents' observations in the fixed
agent order (MG2's: MG2, MG1, MG3). It contains every agent's observation once, and its first
slot tells a shared critic whose value it estimates (each observation carries a one-hot agent
id too). All agents act at every step of this env, so an episode's agents have equally long,
time-aligned observation sequences; anything else is an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ray.rllib.connectors.connector_v2 import ConnectorV2

from tune_grid.errors import TuneGridError

GLOBAL_OBS = "global_obs"
"""Batch column of the centralized critic's input."""


class GlobalStateError(TuneGridError):
    """Episodes whose agents cannot be joined into one global state per step."""


def agent_global_states(
    observations: dict[str, np.ndarray], agents: Sequence[str]
) -> dict[str, np.ndarray]:
    """Per agent, ``(T, len(agents) * obs_dim)``: own observations, then the others' in order.

    ``observations`` maps each agent to its ``(T, obs_dim)`` observations of the same steps.
    """
    missing = [a for a in agents if a not in observations]
    if missing:
        raise GlobalStateError(
            f"global state needs every agent of {list(agents)}; an episode lacks {missing}"
        )
    lengths = {a: len(observations[a]) for a in agents}
    if len(set(lengths.values())) != 1:
        raise GlobalStateError(
            f"global state needs agents that act at every step; observation counts differ: "
            f"{lengths}"
        )
    return {
        agent: np.concatenate(
            [observations[agent], *(observations[b] for b in agents if b != agent)], axis=-1
        )
        for agent in agents
    }


class AddGlobalObservations(ConnectorV2):
    """Learner connector piece: the ``global_obs`` column, row for row beside ``obs``."""

    def __init__(
        self,
        input_observation_space: Any = None,
        input_action_space: Any = None,
        *,
        agents: Sequence[str],
    ) -> None:
        super().__init__(input_observation_space, input_action_space)
        self.agents = tuple(agents)

    def __call__(
        self,
        *,
        rl_module: Any,
        batch: dict[str, Any],
        episodes: list[Any],
        explore: bool | None = None,
        shared_data: dict | None = None,
        **kwargs: Any,
    ) -> Any:
        if GLOBAL_OBS in batch:
            return batch
        states: dict[str, dict[str, np.ndarray]] = {}
        for episode in episodes:
            observations = {
                agent: np.asarray(
                    sa_episode.get_observations(slice(0, len(sa_episode))), dtype=np.float32
                )
                for agent, sa_episode in episode.agent_episodes.items()
            }
            states[episode.id_] = agent_global_states(observations, self.agents)
        # The same iteration as AddObservationsFromEpisodesToBatch's, so rows line up.
        for sa_episode in self.single_agent_episode_iterator(
            episodes, agents_that_stepped_only=False
        ):
            # RLlib types both ids loosely (int | None, Hashable | None); ours are strings.
            rows = states[str(sa_episode.multi_agent_episode_id)][str(sa_episode.agent_id)]
            self.add_n_batch_items(
                batch,
                GLOBAL_OBS,
                items_to_add=rows,
                num_items=len(rows),
                single_agent_episode=sa_episode,
            )
        return batch


def global_observations_connector(
    input_observation_space: Any, input_action_space: Any, agents: Sequence[str]
) -> AddGlobalObservations:
    """``config.learners(learner_connector=partial(global_observations_connector, agents=...))``."""
    return AddGlobalObservations(input_observation_space, input_action_space, agents=agents)
