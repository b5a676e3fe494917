"""Turn a validated :class:`SpaceFile` into Tune domains, Optuna distributions or a W&B sweep.

Choice values that are lists (``hidden_sizes: [[64, 64], [256, 256]]``) become strings
(``"64x64"``) so Optuna can store them; ``RunConfig`` reads that form back.
"""

from __future__ import annotations

from typing import Any

from tune_grid.search.space_file import ParamSpec, SpaceFile


def encode_value(value: Any) -> Any:
    """A search-safe scalar: lists of ints become ``"64x64"``; other values are unchanged."""
    if isinstance(value, list | tuple):
        return "x".join(str(int(v)) for v in value)
    return value


def choice_values(param: ParamSpec) -> list[Any]:
    """The encoded values of a choice/bool parameter."""
    return [encode_value(v) for v in param.candidates()]


def tune_domain(param: ParamSpec) -> Any:
    """A Ray Tune sampling domain (``int`` is inclusive of ``high``)."""
    from ray import tune

    if param.type == "loguniform":
        return tune.loguniform(param.low, param.high)
    if param.type == "uniform":
        return tune.uniform(param.low, param.high)
    if param.type == "int":
        assert param.low is not None and param.high is not None
        return tune.randint(int(param.low), int(param.high) + 1)
    return tune.choice(choice_values(param))


def tune_param_space(spec: SpaceFile) -> dict[str, Any]:
    """``fixed`` constants plus one domain per searched parameter (grid_search for ``grid``)."""
    from ray import tune

    space: dict[str, Any] = {k: encode_value(v) for k, v in spec.fixed_config().items()}
    for name, param in spec.space.items():
        if spec.search.algorithm == "grid":
            space[name] = tune.grid_search([encode_value(v) for v in param.grid_values()])
        else:
            space[name] = tune_domain(param)
    return space


def optuna_distribution(param: ParamSpec) -> Any:
    """The Optuna distribution of one parameter."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    assert param.type in ("loguniform", "uniform", "int", "choice", "bool")
    if param.type in ("loguniform", "uniform"):
        assert param.low is not None and param.high is not None
        return FloatDistribution(param.low, param.high, log=param.type == "loguniform")
    if param.type == "int":
        assert param.low is not None and param.high is not None
        return IntDistribution(int(param.low), int(param.high))
    return CategoricalDistribution(choice_values(param))


def optuna_space(spec: SpaceFile) -> dict[str, Any]:
    """Searched parameters as Optuna distributions (fixed keys are not part of the study)."""
    return {name: optuna_distribution(param) for name, param in spec.space.items()}


def _wandb_param(param: ParamSpec) -> dict[str, Any]:
    if param.type == "loguniform":
        return {"distribution": "log_uniform_values", "min": param.low, "max": param.high}
    if param.type == "uniform":
        return {"distribution": "uniform", "min": param.low, "max": param.high}
    if param.type == "int":
        assert param.low is not None and param.high is not None
        return {"distribution": "int_uniform", "min": int(param.low), "max": int(param.high)}
    return {"values": param.candidates()}


def wandb_sweep(spec: SpaceFile) -> dict[str, Any]:
    """The equivalent W&B sweep configuration (a plain dict, ready for ``yaml.safe_dump``).

    Each sweep run trains one configuration (one seed) with ``tune-grid train --config FILE``,
    FILE being the agent's JSON of sampled values (``${args_json_file}``), for the file's
    ``stop.training_iteration`` iterations (default 10). W&B has no TPE: ``optuna`` maps to
    ``bayes``; ASHA maps to W&B's hyperband early termination.
    """
    method = {"optuna": "bayes", "random": "random", "grid": "grid"}[spec.search.algorithm]
    parameters: dict[str, Any] = {k: {"value": v} for k, v in spec.fixed_config().items()}
    for name, param in spec.space.items():
        parameters[name] = _wandb_param(param)
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
            "--iterations",
            str(int(spec.stop.get("training_iteration", 10))),
            "--wandb",
            "--wandb-project",
            spec.wandb.project,
        ],
    }
    if spec.search.algorithm != "grid":
        sweep["run_cap"] = spec.num_samples
    if spec.scheduler.type == "asha":
        sweep["early_terminate"] = {
            "type": "hyperband",
            "min_iter": spec.scheduler.grace_period,
            "eta": max(2, round(spec.scheduler.reduction_factor)),
        }
    return sweep
