"""Turn a validated :class:`SpaceFile` into Tune domains, Optuna distributions or a W&B sweep.

Choice values that are lists (``hidden_sizes: [[64, 64], [256, 256]]``) become strings
(``"64x64"``) so Optuna can store them; ``RunConfig`` reads that form back.
"""

from __future__ import annotations

from typing import Any

from tune_grid.errors import TuneGridError
from tune_grid.search.spec.distributions import encode_value
from tune_grid.search.spec.searchers import optuna_space
from tune_grid.search.spec.space_file import ParamSpec, SpaceFile


class SweepError(TuneGridError, ValueError):
    """The search file has no W&B sweep equivalent (its searcher maps to none)."""


__all__ = [
    "choice_values",
    "encode_value",
    "optuna_distribution",
    "optuna_space",
    "tune_domain",
    "tune_param_space",
    "wandb_sweep",
]


def choice_values(param: ParamSpec) -> list[Any]:
    """The encoded candidate values of a parameter (every value of a choice or bool)."""
    return [encode_value(v) for v in param.candidates()]


def tune_domain(param: ParamSpec) -> Any:
    """A Ray Tune sampling domain (``int`` is inclusive of ``high``)."""
    return param.kind.tune_domain(param)


def tune_param_space(spec: SpaceFile) -> dict[str, Any]:
    """``fixed`` constants plus one domain per searched parameter (grid_search for ``grid``);
    a mutated key that ``space`` lacks is drawn from its mutation range."""
    from ray import tune

    space: dict[str, Any] = {k: encode_value(v) for k, v in spec.fixed_config().items()}
    for name, param in spec.initial_space.items():
        if spec.search.kind.grid and name in spec.space:
            space[name] = tune.grid_search([encode_value(v) for v in param.grid_values()])
        else:
            space[name] = tune_domain(param)
    return space


def optuna_distribution(param: ParamSpec) -> Any:
    """The Optuna distribution of one parameter."""
    return param.kind.optuna_distribution(param)


def wandb_sweep(spec: SpaceFile) -> dict[str, Any]:
    """The equivalent W&B sweep configuration (a plain dict, ready for ``yaml.safe_dump``).

    Each sweep run trains one configuration (one seed) with ``tune-grid train --config FILE``,
    FILE being the agent's JSON of sampled values (``${args_json_file}``), until the file's
    ``stop.env_steps`` env steps or ``stop.training_iteration`` iterations (default 10). W&B
    has no TPE: ``optuna`` maps to ``bayes``; ASHA maps to W&B's hyperband early termination.
    """
    method = spec.search.kind.wandb_method
    if method is None:
        from tune_grid.search.spec.searchers import SEARCHERS

        mapped = ", ".join(n for n, k in SEARCHERS.items() if k.wandb_method)
        raise SweepError(
            f"search.algorithm {spec.search.algorithm}: W&B sweeps have no equivalent "
            f"(they run random, grid or bayes); use one of {mapped}"
        )
    parameters: dict[str, Any] = {k: {"value": v} for k, v in spec.fixed_config().items()}
    for name, param in spec.initial_space.items():
        parameters[name] = param.kind.wandb_parameter(param)
    sweep: dict[str, Any] = {
        "name": spec.experiment,
        "project": spec.wandb.project,
        "method": method,
        "metric": {
            "name": spec.metric,
            "goal": "maximize" if spec.resolved_mode == "max" else "minimize",
        },
        "parameters": parameters,
        "command": [
            "${env}",
            "tune-grid",
            "train",
            "--config",
            "${args_json_file}",
            *_stop_arguments(spec),
            "--wandb",
            "--wandb-project",
            spec.wandb.project,
        ],
    }
    if not spec.search.kind.grid:
        sweep["run_cap"] = spec.num_samples
    early_terminate = spec.scheduler.kind.wandb_early_terminate(spec)
    if early_terminate is not None:
        sweep["early_terminate"] = early_terminate
    return sweep


def _stop_arguments(spec: SpaceFile) -> list[str]:
    """``tune-grid train`` options for the search file's stop condition."""
    if "env_steps" in spec.stop:
        return ["--iterations", "1000000", "--env-steps", str(int(spec.stop["env_steps"]))]
    return ["--iterations", str(int(spec.stop.get("training_iteration", 10)))]
