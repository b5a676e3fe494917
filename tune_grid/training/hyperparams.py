"""PPO hyperparameters that may change mid-run: put a run's values into every learner of an
algorithm, and read back the values the learners use.

Why this exists: ``Algorithm.restore_from_path`` loads each optimizer's ``param_groups`` from the
checkpoint, so after a restore the optimizer runs with the checkpoint's learning rate, not the one
of the config the algorithm was built with (RLlib resets it only after the first update; Ray issue
#62173 reports perturbed ``lr``, ``clip_param`` and ``lambda`` ignored after restore). A
population-based search restores another trial's checkpoint under new values, so after every
restore :func:`apply_values` writes the run's values where the learner reads them (the PPO
entry of :mod:`tune_grid.training.algorithms` calls it):

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
"""Run keys a population scheduler may change mid-run: the optimizer's and the loss's settings
(the PPO entry's ``mutable`` keys)."""


class HyperparameterError(TuneGridError, RuntimeError):
    """A value cannot be applied to a learner, or the learners disagree on a value read back."""


def apply_values(algo: Any, values: dict[str, Any]) -> None:
    """Make every learner of ``algo`` use ``values`` (one for each of :data:`MUTABLE_KEYS`).

    ``lr`` may be RLlib's schedule (``[[env_steps, lr], ...]``, ``RunConfig.lr_schedule``): the
    learners then follow it from where the restored optimizers stand, since an update leaves
    the schedule's value at the step sampled so far in the optimizer, and a checkpoint saves it.
    """
    missing = [key for key in MUTABLE_KEYS if key not in values]
    if missing:
        raise HyperparameterError(f"no value for {missing}")
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
    lr = values["lr"]
    for optimizer in learner._named_optimizers.values():
        learner._optimizer_lr_schedules[optimizer] = Scheduler(
            lr, framework=learner.framework, device=learner._device
        )
        if not isinstance(lr, list):
            learner._set_optimizer_lr(optimizer, lr)
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
