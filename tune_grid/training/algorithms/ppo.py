"""PPO (RLlib's, new API stack), with tune-grid's options: the centralized critic (MAPPO with
``policy_sharing: shared``), value normalization, observation normalization, the initial
log-std, tanh squashing, and the lean sampling and learner loops."""

from __future__ import annotations

from typing import Any

from tune_grid.config import RunConfig
from tune_grid.training.algorithms.entry import Algorithm

_LOOP = "is read by the algorithm's training loop from its frozen config, not by the learner"
_SCHEDULE = "shapes the lr schedule, built with the learner (a population scheduler sets lr)"
_BUILT = "sets the trial's sampling workers and resources, fixed when the algorithm is built"


def _build_config(run: RunConfig) -> Any:
    from tune_grid.training.ppo import build_ppo_config

    return build_ppo_config(run)


def _reference_config(run: RunConfig) -> Any:
    from tune_grid.training.ppo import rllib_default_ppo_config

    return rllib_default_ppo_config(run)


def _learner_class(run: RunConfig) -> type:
    from tune_grid.training.ppo import learner_class

    return learner_class(run)


def _module_spec(run: RunConfig) -> Any:
    from tune_grid.training.ppo import module_spec

    return module_spec(run)


def _apply(algo: Any, run: RunConfig) -> None:
    from tune_grid.training.hyperparams import MUTABLE_KEYS, apply_values

    values = {key: getattr(run, key) for key in MUTABLE_KEYS}
    apply_values(algo, {**values, "lr": run.lr_schedule()})


def _read(algo: Any) -> dict[str, float]:
    from tune_grid.training.hyperparams import read_hyperparameters

    return read_hyperparameters(algo)


ENTRY = Algorithm(
    name="ppo",
    keys=(
        "lr",
        "lr_final",
        "lr_decay_env_steps",
        "minibatch_size",
        "num_epochs",
        "gamma",
        "lambda_",
        "clip_param",
        "entropy_coeff",
        "vf_clip_param",
        "vf_loss_coeff",
        "kl_coeff",
        "grad_clip",
        "critic",
        "value_norm",
        "obs_norm",
        "reward_scale",
        "initial_log_std",
        "action_squash",
        "vf_share_layers",
        "training_loop",
    ),
    options={
        "critic": "'centralized': a critic on the global state (MAPPO); 'local': RLlib's module",
        "value_norm": "MAPPO's value normalization of the value head",
        "obs_norm": "running observation normalization inside the module",
        "reward_scale": "a factor on the rewards the learner sees, before GAE",
        "initial_log_std": "the Gaussian policy's initial log-std",
        "action_squash": "'tanh': a tanh-squashed Gaussian; 'clip': the env clips",
        "vf_share_layers": "false: a value MLP of its own, apart from the policy's",
        "training_loop": "'lean': tune-grid's sampling and learner loops; 'rllib': RLlib's",
    },
    build_config=_build_config,
    reference_config=_reference_config,
    learner_class=_learner_class,
    module_spec=_module_spec,
    mutable={
        "lr": "every optimizer's param_groups and RLlib's lr scheduler of it",
        "clip_param": "a copy of the learner's config (the loss reads it)",
        "entropy_coeff": "the learner's config copy; its entropy schedulers are rebuilt",
        "vf_loss_coeff": "the learner's config copy",
        "vf_clip_param": "the learner's config copy",
        "gamma": "the learner's config copy and its GAE connector",
        "lambda_": "the learner's config copy and its GAE connector",
        "grad_clip": "the learner's config copy",
    },
    apply_mutable=_apply,
    read_mutable=_read,
    fixed_reasons={
        "hidden_sizes": "sets the networks' shape; a cloned checkpoint's weights fit only it",
        "policy_sharing": "sets which RLModules exist (one shared, or one per agent)",
        "train_batch_size": _LOOP + " (and sets the env runners' fragment length)",
        "minibatch_size": _LOOP,
        "num_epochs": _LOOP,
        "kl_coeff": "is adapted by the learner from the measured KL; a new value only resets it",
        **{key: _SCHEDULE for key in ("lr_final", "lr_decay_env_steps")},
        "seed": "is the trial's identity (seeds are set by the top-level key seeds)",
        "action_squash": "sets the policy's action distribution",
        "vf_share_layers": "sets the networks' shape; a cloned checkpoint's weights fit only it",
        "obs_norm": "sets whether the modules carry observation statistics (a clone keeps its own)",
        "reward_scale": "sets the scale the cloned value function learned returns in",
        **{
            key: _BUILT
            for key in (
                "num_env_runners",
                "num_envs_per_env_runner",
                "rollout_fragment_length",
                "num_gpus",
                "torch_threads",
            )
        },
    },
)
