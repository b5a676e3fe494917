"""The one place where a :class:`~tune_grid.config.RunConfig` becomes an RLlib ``PPOConfig``."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.utils.typing import AgentID, ModuleID

from tune_grid.config import RunConfig
from tune_grid.grid.devices import MICROGRIDS
from tune_grid.training.callbacks import MicrogridMetricsCallback, set_torch_threads
from tune_grid.training.critic import (
    CRITIC_AGENTS_KEY,
    INITIAL_LOG_STD_KEY,
    VALUE_NORM_KEY,
    CentralizedCriticPPOTorchRLModule,
    TuneGridPPOTorchRLModule,
    ValueNormPPOTorchRLModule,
)
from tune_grid.training.global_state import global_observations_connector
from tune_grid.training.lean_learner import LeanLearnerMixin
from tune_grid.training.lean_sampling import LeanEnvRunner
from tune_grid.training.obs_norm import OBS_NORM_KEY, ObsNormLearnerMixin
from tune_grid.training.reward_scale import REWARD_SCALE_KEY, RewardScaleLearnerMixin
from tune_grid.training.rllib_env import RLLIB_ENV_NAME
from tune_grid.training.tanh_gaussian import ACTION_SQUASH_KEY
from tune_grid.training.value_norm import ValueNormPPOTorchLearner
from tune_grid.training.vector_env import BatchedEnvRunner

SHARED_MODULE_ID = "shared_policy"
"""Module id of the single RLModule all agents use with ``policy_sharing="shared"``."""


def module_ids(policy_sharing: str) -> list[str]:
    """RLModule ids: ``["shared_policy"]`` (shared) or one per agent, ``["MG1", "MG2", "MG3"]``."""
    if policy_sharing == "shared":
        return [SHARED_MODULE_ID]
    if policy_sharing == "independent":
        return list(MICROGRIDS)
    raise ValueError(f"policy_sharing must be 'shared' or 'independent', got {policy_sharing!r}")


def module_for_agent(policy_sharing: str, agent_id: str) -> str:
    """The RLModule id that acts for ``agent_id``."""
    return SHARED_MODULE_ID if policy_sharing == "shared" else agent_id


def shared_policy_mapping(agent_id: AgentID, episode: Any = None, **kwargs: Any) -> str:
    """Parameter sharing: every agent maps to the one shared module."""
    return SHARED_MODULE_ID


def independent_policy_mapping(agent_id: AgentID, episode: Any = None, **kwargs: Any) -> str:
    """Independent learners (IPPO): each agent maps to its own module, named like the agent."""
    return str(agent_id)


EPISODE_STEPS = 24
"""Env steps of one episode (one day of hourly steps)."""
FRAGMENT_CAP = 64
"""Longest derived ``rollout_fragment_length``; a longer share is split into equal sample calls.

RLlib's MultiAgentEnvRunner converts every finished episode of a sample call to numpy again at
each later step of that call, so its cost grows with the fragment length (docs/throughput.md).
"""


def envs_per_env_runner(run: RunConfig) -> int:
    """``num_envs_per_env_runner``, but no more envs than whole days in each runner's batch share.

    So every env completes at least one 24-step episode per iteration, and a small batch with the
    default of many envs still meets RLlib's check that sample calls add up to the batch (10%).
    """
    runners = max(1, run.num_env_runners)
    days = run.train_batch_size // (EPISODE_STEPS * runners)
    return max(1, min(run.num_envs_per_env_runner, days))


def rollout_fragment_length(run: RunConfig) -> int:
    """Steps per env per sample call: given, or derived from ``train_batch_size``.

    Derived: each env's share of the batch, ``ceil(batch / (envs x runners))`` with the envs of
    :func:`envs_per_env_runner`, split into the fewest equal sample calls of at most
    :data:`FRAGMENT_CAP` steps. An iteration then samples ``train_batch_size`` env steps plus
    less than one step per env and sample call.
    """
    if run.rollout_fragment_length is not None:
        return run.rollout_fragment_length
    envs = envs_per_env_runner(run) * max(1, run.num_env_runners)
    share = max(1, math.ceil(run.train_batch_size / envs))
    calls = math.ceil(share / FRAGMENT_CAP)
    return math.ceil(share / calls)


def module_spec(run: RunConfig) -> RLModuleSpec:
    """The RLModuleSpec of every module: RLlib's default PPO module for a local critic without
    value normalization, an initial log-std, observation normalization or a squashed policy, else
    a module of :mod:`tune_grid.training.critic`."""
    options = {
        INITIAL_LOG_STD_KEY: run.initial_log_std,
        OBS_NORM_KEY: run.obs_norm,
        ACTION_SQUASH_KEY: run.action_squash,
    }
    if run.critic == "centralized":
        return RLModuleSpec(
            module_class=CentralizedCriticPPOTorchRLModule,
            model_config={
                CRITIC_AGENTS_KEY: len(MICROGRIDS),
                VALUE_NORM_KEY: run.value_norm,
                **options,
            },
        )
    if run.value_norm:
        return RLModuleSpec(module_class=ValueNormPPOTorchRLModule, model_config=options)
    if run.initial_log_std is not None or run.obs_norm or run.action_squash != "clip":
        return RLModuleSpec(module_class=TuneGridPPOTorchRLModule, model_config=options)
    return RLModuleSpec()


def learner_connector(run: RunConfig) -> Any:
    """The custom learner connector pieces' builder: the global state for a centralized
    critic (:mod:`tune_grid.training.global_state`), else None (RLlib's pipeline only)."""
    if run.critic != "centralized":
        return None
    return functools.partial(global_observations_connector, agents=tuple(MICROGRIDS))


class NormalizingPPOTorchLearner(
    RewardScaleLearnerMixin, ObsNormLearnerMixin, ValueNormPPOTorchLearner
):
    """RLlib's PPO torch learner, plus value and observation normalization for the modules that
    have them (:mod:`tune_grid.training.value_norm`, :mod:`tune_grid.training.obs_norm`) and
    reward scaling (:mod:`tune_grid.training.reward_scale`)."""


class TuneGridPPOTorchLearner(NormalizingPPOTorchLearner):
    """RLlib's PPO torch learner with a cheaper optimizer step (same updates), and value and
    observation normalization for modules that have them (:class:`NormalizingPPOTorchLearner`).

    * Adam with ``fused=True``: one fused kernel per parameter instead of RLlib's default
      single-tensor Adam (a Python loop of ~10 small ops per parameter on CPU).
    * One finiteness check over all gradients (a stacked norm) instead of two ``isfinite`` calls
      per parameter; when a gradient is not finite, RLlib's own handling runs unchanged.
    """

    def configure_optimizers_for_module(
        self, module_id: ModuleID, config: AlgorithmConfig | None = None
    ) -> None:
        assert config is not None  # RLlib passes the module's config
        params = self.get_parameters(self.module[module_id])
        optimizer = _adam(params)
        self.register_optimizer(
            module_id=module_id,
            optimizer=optimizer,
            params=params,
            lr_or_lr_schedule=config.lr,
        )

    def apply_gradients(self, gradients_dict: dict[Any, Any]) -> None:
        grads = [g for g in gradients_dict.values() if g is not None]
        if not grads or self._grad_scalers is not None or not _all_finite(grads):
            super().apply_gradients(gradients_dict)
            return
        for pid, grad in gradients_dict.items():
            self._params[pid].grad = grad
        for module_id, names in self._module_optimizers.items():
            for name in names:
                self.get_optimizer(module_id, name).step()


class LeanPPOTorchLearner(LeanLearnerMixin, TuneGridPPOTorchLearner):
    """:class:`TuneGridPPOTorchLearner` with the lean minibatch loop
    (:mod:`tune_grid.training.lean_learner`): the same updates, less bookkeeping."""


def _adam(params: Sequence[Any]) -> torch.optim.Optimizer:
    """Fused Adam where this torch supports it for the parameters' device, else foreach."""
    try:
        return torch.optim.Adam(params, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, foreach=True)


def _all_finite(tensors: list[Any]) -> bool:
    """Whether every element of every tensor is finite (one reduction, one sync)."""
    return bool(torch.isfinite(torch.stack(torch._foreach_norm(tensors))).all())


def learner_class(run: RunConfig) -> type:
    """The learner class a run gets: the lean loop's, or tune-grid's faster RLlib learner; both
    carry value and observation normalization for the modules that have them."""
    return LeanPPOTorchLearner if run.training_loop == "lean" else TuneGridPPOTorchLearner


def _normalizes(run: RunConfig) -> bool:
    """Whether RLlib's own learner would miss one of the run's normalizations."""
    return run.value_norm or run.obs_norm or run.reward_scale != 1.0


def _base_config(run: RunConfig) -> PPOConfig:
    """Hyperparameters, env, model (critic, value normalization) and multi-agent layout: what
    every variant shares."""
    ids = module_ids(run.policy_sharing)
    mapping = (
        shared_policy_mapping if run.policy_sharing == "shared" else independent_policy_mapping
    )
    return (
        PPOConfig()
        .api_stack(enable_rl_module_and_learner=True, enable_env_runner_and_connector_v2=True)
        .framework("torch")
        .environment(env=RLLIB_ENV_NAME, env_config=run.env_config().to_dict())
        .learners(num_learners=0, num_gpus_per_learner=run.num_gpus if run.num_gpus > 0 else 0)
        .training(
            lr=run.lr_schedule(),
            train_batch_size_per_learner=run.train_batch_size,
            minibatch_size=run.minibatch_size,
            num_epochs=run.num_epochs,
            gamma=run.gamma,
            lambda_=run.lambda_,
            clip_param=run.clip_param,
            entropy_coeff=run.entropy_coeff,
            vf_clip_param=run.vf_clip_param,
            vf_loss_coeff=run.vf_loss_coeff,
            use_kl_loss=run.kl_coeff > 0.0,
            kl_coeff=run.kl_coeff,
            grad_clip=run.grad_clip,
        )
        .learners(
            learner_connector=learner_connector(run),
            learner_class=NormalizingPPOTorchLearner if _normalizes(run) else None,
            learner_config_dict={REWARD_SCALE_KEY: run.reward_scale},
        )
        .multi_agent(policies=list(ids), policy_mapping_fn=mapping, policies_to_train=list(ids))
        .rl_module(
            rl_module_spec=MultiRLModuleSpec(
                rl_module_specs={mid: module_spec(run) for mid in ids}
            ),
            model_config=DefaultModelConfig(
                fcnet_hiddens=list(run.hidden_sizes), vf_share_layers=run.vf_share_layers
            ),
        )
        .debugging(seed=run.seed)
    )


def rllib_default_ppo_config(run: RunConfig) -> PPOConfig:
    """The run's hyperparameters and layout with RLlib's own throughput settings.

    1 env per env runner, sampling in the algorithm's process (0 remote runners), fragment
    length "auto", torch's default thread count, RLlib's default learner and action connectors:
    the baseline of ``tune-grid bench train``.
    """
    return (
        _base_config(run)
        .env_runners(num_env_runners=0, num_envs_per_env_runner=1, rollout_fragment_length="auto")
        .callbacks(MicrogridMetricsCallback)
    )


def build_ppo_config(run: RunConfig) -> PPOConfig:
    """Build the PPOConfig (new API stack, torch) for one training run.

    ``train_batch_size`` is counted in env steps (one hour of all three agents). With
    ``num_env_runners=0`` the algorithm's process samples itself. Throughput settings, each
    measured in docs/throughput.md:

    * vectorized envs (:func:`envs_per_env_runner`) with a bounded fragment length
      (:func:`rollout_fragment_length`), stepped as one batch in a compiled call where the env
      config allows (:class:`~tune_grid.training.vector_env.BatchedEnvRunner`);
    * local sampling keeps episodes as lists (``episodes_to_numpy=False``): RLlib would convert
      every finished episode to numpy again at each step of a sample call, and the learner reads
      lists as well; remote runners keep numpy, which is cheaper to ship;
    * no action unsquashing or clipping by RLlib: every agent's action space is ``Box(-1, 1)``,
      where unsquashing is the identity, and the env clips actions itself;
    * :class:`TuneGridPPOTorchLearner` (fused Adam, one finiteness check per update);
    * with ``training_loop: lean`` (the default) the lean sampling and learner loops,
      :class:`~tune_grid.training.lean_sampling.LeanEnvRunner` and
      :class:`LeanPPOTorchLearner`;
    * ``torch_threads`` intra-op threads in learner and runners (1 by default).
    """
    threads = functools.partial(set_torch_threads, run.torch_threads)
    lean = run.training_loop == "lean"
    return (
        _base_config(run)
        .environment(normalize_actions=False, clip_actions=False)
        .env_runners(
            num_env_runners=run.num_env_runners,
            num_envs_per_env_runner=envs_per_env_runner(run),
            rollout_fragment_length=rollout_fragment_length(run),
            num_cpus_per_env_runner=1,
            episodes_to_numpy=run.num_env_runners > 0,
            env_runner_cls=LeanEnvRunner if lean else BatchedEnvRunner,
        )
        .learners(learner_class=learner_class(run))
        .callbacks(
            MicrogridMetricsCallback,
            on_algorithm_init=threads,
            on_environment_created=threads,
        )
        .python_environment(
            extra_python_environs_for_worker={"OMP_NUM_THREADS": str(run.torch_threads)}
        )
    )
