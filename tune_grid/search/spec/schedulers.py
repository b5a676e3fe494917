"""Trial schedulers (``scheduler.type`` of a search file), one table entry each.

An entry says how its settings are checked, how it becomes a Ray Tune scheduler, what it maps to
in a W&B sweep and how its stops read in the results (:mod:`tune_grid.results.early_stop`). A new
scheduler is one :func:`register` call, plus its keys in ``SchedulerView`` when it takes keys
of its own. The population schedulers (``pbt``, ``pb2``) read ``hyperparam_mutations`` and use the
``never`` reading: they replace a trial's weights and hyperparameters instead of stopping it; the
search file's rules for them across keys are in ``space_file`` (``population=True``).

Importing this module does not import Ray; ``build`` imports it when called.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tune_grid.results.early_stop import NEVER, RUNG, StopReading
from tune_grid.search.spec.rules import RuleBroken
from tune_grid.search.spec.view import SchedulerView, SpecView


@dataclass(frozen=True)
class SchedulerType:
    """Everything one ``scheduler.type`` needs (every field is required)."""

    name: str
    summary: str
    """One line for docs and ``--help``."""
    check: Callable[[SchedulerView], None]
    """Rules across the scheduler's keys; raises :class:`RuleBroken` (key under ``scheduler``)."""
    build: Callable[[SpecView], Any]
    """The Ray Tune scheduler of a validated search file."""
    wandb_early_terminate: Callable[[SpecView], dict[str, Any] | None]
    """The W&B sweep's ``early_terminate`` block, or None for none."""
    stops: StopReading
    """What ``stopped_early`` means for its trials."""
    population: bool
    """Whether trials clone each other's checkpoints (reads ``hyperparam_mutations``)."""


SCHEDULERS: dict[str, SchedulerType] = {}
"""Registered schedulers by name, in registration order."""


def register(kind: SchedulerType) -> SchedulerType:
    """Add ``kind`` to :data:`SCHEDULERS`; ValueError for a missing piece or a taken name."""
    if not kind.name or not kind.name.isidentifier():
        raise ValueError(f"scheduler name must be an identifier, got {kind.name!r}")
    if kind.name in SCHEDULERS:
        raise ValueError(f"scheduler {kind.name!r} is already registered")
    for field in dataclasses.fields(SchedulerType):
        value = getattr(kind, field.name)
        if field.name in ("check", "build", "wandb_early_terminate") and not callable(value):
            raise ValueError(f"scheduler {kind.name!r}: {field.name} must be a function")
    if not isinstance(kind.stops, StopReading):
        raise ValueError(f"scheduler {kind.name!r}: stops must be a StopReading")
    if not isinstance(kind.population, bool):
        raise ValueError(f"scheduler {kind.name!r}: population must be true or false")
    SCHEDULERS[kind.name] = kind
    return kind


# --- asha ---------------------------------------------------------------------------------------


def _check_asha(settings: SchedulerView) -> None:
    if settings.grace_period > settings.max_t:
        raise RuleBroken(
            "grace_period", f"must be <= max_t ({settings.max_t}), got {settings.grace_period}"
        )


def _build_asha(spec: SpecView) -> Any:
    from ray.tune.schedulers import ASHAScheduler

    s = spec.scheduler
    return ASHAScheduler(
        time_attr=s.time_attr,
        max_t=s.max_t,
        grace_period=s.grace_period,
        reduction_factor=s.reduction_factor,
    )


def _wandb_hyperband(spec: SpecView) -> dict[str, Any]:
    """W&B's hyperband counts logged iterations: a grace period in env steps becomes the
    iterations the largest batch needs for it (every trial then gets at least that much)."""
    grace = spec.scheduler.grace_period
    if spec.scheduler.time_attr == "env_steps":
        from tune_grid.config import RunConfig

        param = spec.space.get("train_batch_size")
        batches = param.candidates() if param is not None else []
        batch = max(batches, default=RunConfig.from_dict(spec.fixed_config()).train_batch_size)
        grace = max(1, math.ceil(grace / batch))
    return {
        "type": "hyperband",
        "min_iter": grace,
        "eta": max(2, round(spec.scheduler.reduction_factor)),
    }


register(
    SchedulerType(
        name="asha",
        summary="async successive halving: stops poor trials at rungs "
        "grace_period * reduction_factor^k",
        check=_check_asha,
        build=_build_asha,
        wandb_early_terminate=_wandb_hyperband,
        stops=RUNG,
        population=False,
    )
)


# --- fifo ---------------------------------------------------------------------------------------


def _build_fifo(spec: SpecView) -> Any:
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


register(
    SchedulerType(
        name="fifo",
        summary="every trial runs to the stop condition",
        check=lambda settings: None,
        build=_build_fifo,
        wandb_early_terminate=lambda spec: None,
        stops=NEVER,
        population=False,
    )
)


# --- pbt, pb2 -----------------------------------------------------------------------------------


def _check_population(settings: SchedulerView) -> None:
    if not settings.hyperparam_mutations:
        raise RuleBroken(
            "hyperparam_mutations",
            "name at least one key to mutate (the algorithm's mutable keys; for ppo: lr, "
            "clip_param, entropy_coeff, vf_loss_coeff, vf_clip_param, gamma, lambda_, grad_clip)",
        )
    # Which keys may mutate depends on the algorithm: checked with the fixed keys, in
    # space_file.check_algorithm.
    if settings.time_attr != "env_steps":
        raise RuleBroken(
            "time_attr",
            "must be env_steps: trials are perturbed at env-step intervals of their weights' "
            f"training, got {settings.time_attr}",
        )
    if settings.perturbation_interval is None:
        raise RuleBroken("perturbation_interval", "required: env steps between perturbations")


def _check_pb2(settings: SchedulerView) -> None:
    _check_population(settings)
    if "resample_probability" in settings.model_fields_set:
        raise RuleBroken("resample_probability", "read by pbt only (pb2 picks values by a GP)")
    for key, param in settings.hyperparam_mutations.items():
        if param.kind.grid_values is not None:
            raise RuleBroken(
                f"hyperparam_mutations.{key}.type",
                "pb2 fits a Gaussian process on continuous ranges: use loguniform or uniform, "
                f"got {param.type}",
            )


def _build_pbt(spec: SpecView) -> Any:
    from tune_grid.search.spec.population import build_pbt

    return build_pbt(spec)


def _build_pb2(spec: SpecView) -> Any:
    from tune_grid.search.spec.population import build_pb2

    return build_pb2(spec)


register(
    SchedulerType(
        name="pbt",
        summary="population-based training: every perturbation_interval env steps the bottom "
        "quantile clones a top trial's checkpoint and mutates its hyperparameters",
        check=_check_population,
        build=_build_pbt,
        wandb_early_terminate=lambda spec: None,
        stops=NEVER,
        population=True,
    )
)
register(
    SchedulerType(
        name="pb2",
        summary="population-based bandits: like pbt, but a Gaussian process picks the new values "
        "within the mutation ranges",
        check=_check_pb2,
        build=_build_pb2,
        wandb_early_terminate=lambda spec: None,
        stops=NEVER,
        population=True,
    )
)
