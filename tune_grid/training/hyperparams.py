"""PPO hyperparameters that may change mid-run: put a run's values into every learner of an
algorithm, and read back the values the learners use.

Why this exists: ``Algorithm.restore_from_path`` loads each optimizer's ``param_groups`` from the
checkpoint, so after a restore the optimizer runs with the checkpoint's learning rate, not the one
of the config the algorithm was built with (RLlib resets it only after the first update; Ray issue
#62173 reports perturbed ``lr``, ``clip_param`` and ``lambda`` ignored after restore). A
population-based search restores another trial's checkpoint under new values, so after every
restore :func:`apply_hyperparameters` writes the run's values where the learner reads them:

* ``lr``: every optimizer's ``param_groups`` and RLlib's lr scheduler of that optimizer (which
  would otherwise set its own value back after each update);
* the loss settings (``clip_param``, ``entropy_coeff``, ``vf_loss_coeff``, ``vf_clip_param``,
  ``grad_clip``): a copy of the learner's AlgorithmConfig with the new values replaces it (the loss
  reads ``config.get_config_for_module``), and the entropy schedulers built from it are rebuilt;
* ``gamma``, ``lambda_``: the config copy and the GAE connector of the learner pipeline, which
  copied both when it was built.

:func:`read_hyperparameters` reads the same places back, never the config the algorithm was built
with. Importing this module does not import Ray or torch.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from tune_grid.config import EnvConfig, RunConfig
from tune_grid.errors import TuneGridError

MUTABLE_KEYS: tuple[str, ...] = (
    "lr",
    "clip_param",
    "entropy_coeff",
    "vf_loss_coeff",
    "vf_clip_param",
    "gamma",
    "lambda_",
    "grad_clip",
)
"""Run keys a population scheduler may change mid-run: the optimizer's and the loss's settings."""
HP_PREFIX = "hp/"
"""Prefix of the per-iteration columns with the values read back (``hp/lr``, ...)."""

_LOOP = "is read by the algorithm's training loop from its frozen config, not by the learner"
_BUILT = "sets the trial's sampling workers and resources, fixed when the algorithm is built"
_FIXED_REASONS = {
    "hidden_sizes": "sets the networks' shape; a cloned checkpoint's weights fit only its shape",
    "action_squash": "sets the policy's action distribution",
    "obs_norm": "sets whether the modules carry observation statistics (a clone keeps its own)",
    "policy_sharing": "sets which RLModules exist (one shared, or one per agent)",
    "train_batch_size": _LOOP + " (and sets the env runners' fragment length)",
    "minibatch_size": _LOOP,
    "num_epochs": _LOOP,
    "kl_coeff": "is adapted by the learner from the measured KL; a new value would only reset it",
    "seed": "is the trial's identity (seeds are set by the top-level key seeds)",
    "num_env_runners": _BUILT,
    "num_envs_per_env_runner": _BUILT,
    "rollout_fragment_length": _BUILT,
    "num_gpus": _BUILT,
    "torch_threads": _BUILT,
}
_ENV_REASON = "changes the environment the policy was trained on (its rewards or observations)"


class HyperparameterError(TuneGridError, RuntimeError):
    """A value cannot be applied to a learner, or the learners disagree on a value read back."""


def why_not_mutable(key: str) -> str | None:
    """None when ``key`` may change mid-run; else why it cannot (for a one-line error)."""
    if key in MUTABLE_KEYS:
        return None
    if key in _FIXED_REASONS:
        return _FIXED_REASONS[key]
    if key in EnvConfig.field_names():
        return _ENV_REASON
    return "is not applied to a running learner"


def apply_hyperparameters(algo: Any, run: RunConfig) -> None:
    """Make every learner of ``algo`` use ``run``'s values of :data:`MUTABLE_KEYS`."""
    values = {key: getattr(run, key) for key in MUTABLE_KEYS}
    for result in algo.learner_group.foreach_learner(_apply_to_learner, values=values):
        result.get()  # re-raises an error of a remote learner


def read_hyperparameters(algo: Any) -> dict[str, float]:
    """The values of :data:`MUTABLE_KEYS` the learners of ``algo`` use (``grad_clip`` None: NaN).

    Raises :class:`HyperparameterError` when learners, modules or optimizers disagree.
    """
    per_learner = [r.get() for r in algo.learner_group.foreach_learner(_read_learner)]
    merged: dict[str, list[float]] = defaultdict(list)
    for values in per_learner:
        for key, found in values.items():
            merged[key].extend(found)
    return {key: _one_value(key, merged[key]) for key in MUTABLE_KEYS}


def hyperparameter_columns(algos: list[Any]) -> dict[str, float]:
    """``{"hp/lr": ..., ...}``: the values every seed's learners use (they must agree)."""
    merged: dict[str, list[float]] = defaultdict(list)
    for algo in algos:
        for key, value in read_hyperparameters(algo).items():
            merged[key].append(value)
    return {HP_PREFIX + key: _one_value(key, values) for key, values in merged.items()}


def _one_value(key: str, values: list[float]) -> float:
    if not values:
        raise HyperparameterError(f"no learner reports {key}")
    first = values[0]
    same = all(v == first or (math.isnan(v) and math.isnan(first)) for v in values)
    if not same:
        raise HyperparameterError(f"learners disagree on {key}: {sorted(set(values))}")
    return first


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


# --- on the learner (these run where the learner lives: locally or in a learner actor) ----------


def _gae_connector(learner: Any) -> Any:
    from ray.rllib.connectors.learner import GeneralAdvantageEstimation

    pipeline = getattr(learner, "_learner_connector", None)
    for connector in getattr(pipeline, "connectors", []):
        if isinstance(connector, GeneralAdvantageEstimation):
            return connector
    raise HyperparameterError(
        "the learner has no GAE connector in its pipeline (aggregator actors are not supported), "
        "so gamma and lambda_ cannot be applied"
    )


def _apply_to_learner(learner: Any, values: dict[str, Any]) -> None:
    from ray.rllib.utils.schedules.scheduler import Scheduler

    if learner.config.algorithm_config_overrides_per_module:
        raise HyperparameterError("per-module config overrides are not supported")
    if getattr(learner, "_lr_schedulers", None):
        raise HyperparameterError("torch lr schedulers are configured; lr cannot be set")
    config = learner.config.copy(copy_frozen=False)
    config.training(**values)
    learner.config = config
    for optimizer in learner._named_optimizers.values():
        learner._optimizer_lr_schedules[optimizer] = Scheduler(
            values["lr"], framework=learner.framework, device=learner._device
        )
        learner._set_optimizer_lr(optimizer, values["lr"])
    # PPO's entropy schedulers are built lazily from the config: drop them to rebuild.
    learner.entropy_coeff_schedulers_per_module.clear()
    gae = _gae_connector(learner)
    gae.gamma = values["gamma"]
    gae.lambda_ = values["lambda_"]


def _read_learner(learner: Any) -> dict[str, list[float]]:
    found: dict[str, list[float]] = defaultdict(list)
    for module_id, _ in learner.module.items():
        config = learner.config.get_config_for_module(module_id)
        for _, optimizer in learner.get_optimizers_for_module(module_id):
            found["lr"].extend(float(group["lr"]) for group in optimizer.param_groups)
        for key in ("clip_param", "vf_loss_coeff", "vf_clip_param", "grad_clip"):
            found[key].append(_float(getattr(config, key)))
        entropy = learner.entropy_coeff_schedulers_per_module[module_id].get_current_value()
        found["entropy_coeff"].append(float(entropy))
    gae = _gae_connector(learner)
    found["gamma"].append(float(gae.gamma))
    found["lambda_"].append(float(gae.lambda_))
    return dict(found)
