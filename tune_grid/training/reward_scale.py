"""Reward scaling (``reward_scale``): the learner multiplies every reward by a constant before
GAE, so advantages, value targets and the value loss (and ``vf_clip_param``, which is in reward
units) see scaled rewards. The env, its metrics and the objective stay in their own units.

Rewards here are about -0.1 to -1 per agent-hour (cost / ``cost_scale`` + ``penalty`` x safety)
and a day's return some -5 to -20; Andrychowicz et al. (2021) found the reward's scale to matter
for PPO through the value loss."""

from __future__ import annotations

from typing import Any

import numpy as np
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.connectors.learner import GeneralAdvantageEstimation
from ray.rllib.core.columns import Columns

REWARD_SCALE_KEY = "tune_grid_reward_scale"
"""``learner_config_dict`` key: the factor (1.0: none)."""


class ScaleRewards(ConnectorV2):
    """Learner connector piece before GAE: every module's rewards times ``scale``."""

    def __init__(self, scale: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale = float(scale)

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
        for module_batch in batch.values():
            if Columns.REWARDS in module_batch:
                rewards = module_batch[Columns.REWARDS]
                if isinstance(rewards, list):
                    rewards = np.asarray(rewards, dtype=np.float32)
                module_batch[Columns.REWARDS] = rewards * self.scale  # a tensor stays one
        return batch


class RewardScaleLearnerMixin:
    """Inserts :class:`ScaleRewards` before GAE when the learner config asks for a scale.
    Mix in before an RLlib PPO learner class."""

    def build(self) -> None:
        learner: Any = self
        super().build()  # type: ignore[misc]  # PPOLearner appends GAE here
        scale = float(learner.config.learner_config_dict.get(REWARD_SCALE_KEY, 1.0))
        if scale != 1.0 and learner._learner_connector is not None:
            learner._learner_connector.insert_before(
                GeneralAdvantageEstimation, ScaleRewards(scale)
            )
