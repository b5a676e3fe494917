"""PPO RLModules for the ``critic`` and ``value_norm`` run keys.

* ``critic: local``, ``value_norm: false``: RLlib's ``DefaultPPOTorchRLModule`` (no class here).
* ``critic: local``, ``value_norm: true``: :class:`ValueNormPPOTorchRLModule`, RLlib's default
  module whose value head learns normalized returns.
* ``critic: centralized``: :class:`CentralizedCriticPPOTorchRLModule`. Its actor (an MLP of
  ``fcnet_hiddens``, like RLlib's default, to a diagonal Gaussian's means and log stds) reads
  ``obs``, the agent's own observation, in every forward pass; its critic (a separate MLP of the
  same widths) reads ``global_obs``, which only the learner's batch has
  (:mod:`tune_grid.training.global_state`). Env runners and a loaded checkpoint's
  ``forward_inference`` therefore act from local observations alone; inference-only copies (the
  env runners') do not even build the critic.

RLlib's default module shares one MLP trunk between policy and value head
(``vf_share_layers=True``); a centralized critic cannot share the actor's trunk, since it reads a
different input, so MAPPO (and this module) keeps two networks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchDiagGaussian
from ray.rllib.core.models.torch.primitives import TorchMLP
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule

from tune_grid.training.global_state import GLOBAL_OBS
from tune_grid.training.obs_norm import OBS_NORM_KEY, ObservationNormalizer, normalized
from tune_grid.training.tanh_gaussian import action_dist_cls
from tune_grid.training.value_norm import ValueNormalizer

CRITIC_AGENTS_KEY = "critic_agents"
"""model_config key: how many agents' observations the global state joins."""
VALUE_NORM_KEY = "value_norm"
"""model_config key: whether the module owns a :class:`ValueNormalizer`."""


INITIAL_LOG_STD_KEY = "tune_grid_initial_log_std"
"""model_config key: the policy's initial log-std (None: RLlib's initialization)."""


def shift_initial_log_std(head: torch.nn.Module, value: float | None) -> None:
    """Add ``value`` to the bias of the log-std half of a Gaussian policy head's last layer
    (its outputs are ``[means, log_stds]``); None leaves the head as built."""
    if value is None:
        return
    last = [m for m in head.modules() if isinstance(m, torch.nn.Linear)][-1]
    half = last.out_features // 2
    with torch.no_grad():
        last.bias[half:] += float(value)


class TuneGridPPOTorchRLModule(DefaultPPOTorchRLModule):
    """RLlib's default PPO module with the policy's initial log-std set (``initial_log_std``),
    its observations normalized (``obs_norm``, :mod:`tune_grid.training.obs_norm`) and its
    actions squashed (``action_squash: tanh``, :mod:`tune_grid.training.tanh_gaussian`);
    RLlib's own module is used when none is set."""

    obs_normalizer: ObservationNormalizer | None

    def setup(self) -> None:
        super().setup()
        shift_initial_log_std(self.pi, _initial_log_std(self.model_config))
        self.obs_normalizer = _obs_normalizer(self.model_config, self.observation_space)
        self.action_dist_cls = action_dist_cls(self.model_config) or self.action_dist_cls

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return super()._forward(normalized(batch, Columns.OBS, self.obs_normalizer), **kwargs)

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        batch = normalized(batch, Columns.OBS, self.obs_normalizer)
        return super()._forward_train(batch, **kwargs)

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> Any:
        batch = normalized(batch, Columns.OBS, self.obs_normalizer)
        return super().compute_values(batch, embeddings)


def _initial_log_std(config: Any) -> float | None:
    value = config.get(INITIAL_LOG_STD_KEY) if isinstance(config, dict) else None
    return None if value is None else float(value)


def _obs_normalizer(config: Any, space: Any, copies: int = 1) -> ObservationNormalizer | None:
    """A normalizer of ``copies`` observations side by side when the config asks for one."""
    if not (isinstance(config, dict) and config.get(OBS_NORM_KEY)):
        return None
    return ObservationNormalizer(int(np.prod(space.shape)) * copies)


class ValueNormPPOTorchRLModule(TuneGridPPOTorchRLModule):
    """RLlib's default PPO module with MAPPO's value normalization (learner copy only)."""

    def setup(self) -> None:
        super().setup()
        if not self.inference_only:
            self.value_normalizer = ValueNormalizer()

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        values = super().compute_values(batch, embeddings)
        assert isinstance(values, torch.Tensor)  # a torch module's values
        return self.value_normalizer.output(values)

    def get_non_inference_attributes(self) -> list[str]:
        return [*super().get_non_inference_attributes(), "value_normalizer"]


class CentralizedCriticPPOTorchRLModule(TorchRLModule, ValueFunctionAPI, InferenceOnlyAPI):
    """Decentralized actor on ``obs``, centralized critic on ``global_obs`` (MAPPO's layout)."""

    def setup(self) -> None:
        config = self.model_config
        obs_space, action_space = self.observation_space, self.action_space
        # RLModuleSpec.build passes the model config as a dict and both spaces.
        assert isinstance(config, dict) and action_space is not None
        assert obs_space is not None and obs_space.shape is not None
        hiddens = list(config["fcnet_hiddens"])
        activation = config.get("fcnet_activation", "tanh")
        obs_dim = int(np.prod(obs_space.shape))
        self.log_std_clip = float(config.get("log_std_clip_param", 20.0))
        self.actor = TorchMLP(
            input_dim=obs_dim,
            hidden_layer_dims=hiddens,
            hidden_layer_activation=activation,
            output_dim=TorchDiagGaussian.required_input_dim(action_space),
        )
        shift_initial_log_std(self.actor, _initial_log_std(config))
        self.obs_normalizer = _obs_normalizer(config, obs_space)
        self.action_dist_cls = action_dist_cls(config) or self.action_dist_cls
        self.value_normalizer: ValueNormalizer | None = None
        self.global_obs_normalizer: ObservationNormalizer | None = None
        if self.inference_only:
            return
        self.critic = TorchMLP(
            input_dim=obs_dim * int(config[CRITIC_AGENTS_KEY]),
            hidden_layer_dims=hiddens,
            hidden_layer_activation=activation,
            output_dim=1,
        )
        if config.get(VALUE_NORM_KEY, False):
            self.value_normalizer = ValueNormalizer()
        self.global_obs_normalizer = _obs_normalizer(
            config, obs_space, int(config[CRITIC_AGENTS_KEY])
        )

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        batch = normalized(batch, Columns.OBS, self.obs_normalizer)
        means, log_stds = self.actor(batch[Columns.OBS]).chunk(2, dim=-1)
        log_stds = log_stds.clamp(-self.log_std_clip, self.log_std_clip)
        return {Columns.ACTION_DIST_INPUTS: torch.cat([means, log_stds], dim=-1)}

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        batch = normalized(batch, GLOBAL_OBS, self.global_obs_normalizer)
        values = self.critic(batch[GLOBAL_OBS]).squeeze(-1)
        return values if self.value_normalizer is None else self.value_normalizer.output(values)

    def get_non_inference_attributes(self) -> list[str]:
        return ["critic", "value_normalizer", "global_obs_normalizer"]
