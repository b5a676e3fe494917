"""The one place where a :class:`~tune_grid.config.RunConfig` becomes an RLlib ``PPOConfig``."""

from __future__ import annotations

import functools
import math
from typing import Any

from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from tune_grid.config import RunConfig
from tune_grid.grid.devices import MICROGRIDS
from tune_grid.training.callbacks import MicrogridMetricsCallback, set_torch_threads
from tune_grid.training.rllib_env import RLLIB_ENV_NAME

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


def shared_policy_mapping(agent_id: str, episode: Any = None, **kwargs: Any) -> str:
    """Parameter sharing (MAPPO-style): every agent maps to the one shared module."""
    return SHARED_MODULE_ID


def independent_policy_mapping(agent_id: str, episode: Any = None, **kwargs: Any) -> str:
    """Independent learners (IPPO): each agent maps to its own module, named like the agent."""
    return agent_id


def rollout_fragment_length(run: RunConfig) -> int:
    """Steps per env per sample call: given, or the least that fills ``train_batch_size``."""
    if run.rollout_fragment_length is not None:
        return run.rollout_fragment_length
    envs = run.num_envs_per_env_runner * max(1, run.num_env_runners)
    return max(1, math.ceil(run.train_batch_size / envs))


def build_ppo_config(run: RunConfig) -> PPOConfig:
    """Build the PPOConfig (new API stack, torch) for one training run.

    ``train_batch_size`` is counted in env steps (one hour of all three agents). With
    ``num_env_runners=0`` the algorithm's process samples itself.
    """
    ids = module_ids(run.policy_sharing)
    mapping = (
        shared_policy_mapping if run.policy_sharing == "shared" else independent_policy_mapping
    )
    threads = functools.partial(set_torch_threads, run.torch_threads)
    config = (
        PPOConfig()
        .api_stack(enable_rl_module_and_learner=True, enable_env_runner_and_connector_v2=True)
        .framework("torch")
        .environment(env=RLLIB_ENV_NAME, env_config=run.env_config().to_dict())
        .env_runners(
            num_env_runners=run.num_env_runners,
            num_envs_per_env_runner=run.num_envs_per_env_runner,
            rollout_fragment_length=rollout_fragment_length(run),
            num_cpus_per_env_runner=1,
        )
        .learners(num_learners=0, num_gpus_per_learner=run.num_gpus if run.num_gpus > 0 else 0)
        .training(
            lr=run.lr,
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
        .multi_agent(policies=list(ids), policy_mapping_fn=mapping, policies_to_train=list(ids))
        .rl_module(
            rl_module_spec=MultiRLModuleSpec(rl_module_specs={mid: RLModuleSpec() for mid in ids}),
            model_config=DefaultModelConfig(fcnet_hiddens=list(run.hidden_sizes)),
        )
        .callbacks(
            MicrogridMetricsCallback,
            on_algorithm_init=threads,
            on_environment_created=threads,
        )
        .python_environment(
            extra_python_environs_for_worker={"OMP_NUM_THREADS": str(run.torch_threads)}
        )
        .debugging(seed=run.seed)
    )
    return config
