"""The distribution-type registry: a new type is one entry; a missing piece fails loudly."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import optuna
import pytest
from ray.tune.search.sample import Categorical, Domain

from tune_grid.search.spec import distributions
from tune_grid.search.spec.distributions import (
    DISTRIBUTIONS,
    DistributionType,
    RuleBroken,
    register,
)
from tune_grid.search.spec.space_file import SpaceFileError, parse_space
from tune_grid.search.spec.spaces import optuna_space, tune_param_space, wandb_sweep

BATCH_SPACE: dict[str, Any] = {
    "experiment": "pow2",
    "fixed": {"minibatch_size": 32},
    "space": {"train_batch_size": {"type": "pow2", "low": 256, "high": 1024}},
    "stop": {"env_steps": 3072},
}


def _powers(param: Any) -> list[int]:
    value, out = int(param.low), []
    while value <= param.high:
        out.append(value)
        value *= 2
    return out


def _check_powers(param: Any) -> None:
    for key in ("low", "high"):
        value = getattr(param, key)
        if value is None:
            raise RuleBroken(key, "required for type pow2")
        if value < 1 or not float(value).is_integer() or int(value) & (int(value) - 1):
            raise RuleBroken(key, f"must be a power of two, got {value:g}")
    if param.low >= param.high:
        raise RuleBroken("low", "must be < high")


def _pow2_type(**changes: Any) -> DistributionType:
    """Powers of two between low and high: a choice that needs no list."""
    from ray import tune

    pieces: dict[str, Any] = {
        "name": "pow2",
        "keys": ("low", "high"),
        "check": _check_powers,
        "check_field_type": lambda param, name, hint: None,
        "run_values": lambda param: [("low", param.low), ("high", param.high)],
        "candidates": _powers,
        "grid_values": _powers,
        "tune_domain": lambda param: tune.choice(_powers(param)),
        "optuna_distribution": lambda param: optuna.distributions.CategoricalDistribution(
            _powers(param)
        ),
        "wandb_parameter": lambda param: {"values": _powers(param)},
    }
    pieces.update(changes)
    return DistributionType(**pieces)


@pytest.fixture
def pow2() -> Iterator[DistributionType]:
    kind = register(_pow2_type())
    yield kind
    del DISTRIBUTIONS["pow2"]


def test_a_new_type_works_end_to_end_through_the_registry(pow2: DistributionType) -> None:
    spec = parse_space(BATCH_SPACE)
    param = spec.space["train_batch_size"]
    assert param.kind is pow2 and param.candidates() == [256, 512, 1024]

    domain = tune_param_space(spec)["train_batch_size"]
    assert isinstance(domain, Categorical) and list(domain.categories) == [256, 512, 1024]
    assert domain.sample() in (256, 512, 1024)

    distribution = optuna_space(spec)["train_batch_size"]
    assert distribution == optuna.distributions.CategoricalDistribution([256, 512, 1024])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask(fixed_distributions=optuna_space(spec))
    assert trial.params["train_batch_size"] in (256, 512, 1024)

    grid = parse_space({**BATCH_SPACE, "search": {"algorithm": "grid"}})
    assert tune_param_space(grid)["train_batch_size"] == {"grid_search": [256, 512, 1024]}
    assert wandb_sweep(spec)["parameters"]["train_batch_size"] == {"values": [256, 512, 1024]}


def test_a_new_types_rules_and_run_config_checks_apply(pow2: DistributionType) -> None:
    bad = {**BATCH_SPACE, "space": {"train_batch_size": {"type": "pow2", "low": 300, "high": 1024}}}
    with pytest.raises(
        SpaceFileError, match=r"space\.train_batch_size\.low: must be a power of two"
    ):
        parse_space(bad)
    with pytest.raises(SpaceFileError, match=r"space\.train_batch_size\.values: not allowed"):
        parse_space({**BATCH_SPACE, "space": {"train_batch_size": {"type": "pow2", "values": [1]}}})
    # RunConfig's own rules still hold: a batch below minibatch_size is rejected at its key.
    small = {**BATCH_SPACE, "fixed": {"minibatch_size": 512}}
    small["space"] = {"train_batch_size": {"type": "pow2", "low": 256, "high": 1024}}
    with pytest.raises(SpaceFileError, match=r"space\.train_batch_size\.low: minibatch_size"):
        parse_space(small)


def test_an_unregistered_type_is_an_error_naming_the_registered_ones() -> None:
    with pytest.raises(SpaceFileError, match="space.train_batch_size.type: got 'pow2'; allowed:"):
        parse_space(BATCH_SPACE)


def test_a_type_without_a_piece_cannot_be_built_or_registered() -> None:
    pieces = {f.name: getattr(_pow2_type(), f.name) for f in dataclasses.fields(DistributionType)}
    del pieces["optuna_distribution"]
    with pytest.raises(TypeError, match="optuna_distribution"):
        DistributionType(**pieces)
    with pytest.raises(ValueError, match="'pow2': optuna_distribution must be a function"):
        register(_pow2_type(optuna_distribution=None))
    with pytest.raises(ValueError, match="'pow2': tune_domain must be a function"):
        register(_pow2_type(tune_domain="choice"))
    assert "pow2" not in DISTRIBUTIONS


def test_a_name_cannot_be_registered_twice() -> None:
    with pytest.raises(ValueError, match="'choice' is already registered"):
        register(_pow2_type(name="choice"))


@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_every_registered_type_builds_all_its_objects(name: str) -> None:
    kind = DISTRIBUTIONS[name]
    param: dict[str, Any] = {"type": name}
    if "low" in kind.keys:
        param.update(low=1, high=3)
    if "values" in kind.keys:
        param["values"] = [1, 2]
    spec = parse_space(
        {"experiment": "x", "space": {"entropy_coeff" if name != "bool" else "share_reward": param}}
    )
    (parsed,) = spec.space.values()
    assert isinstance(kind.tune_domain(parsed), Domain)
    assert isinstance(kind.optuna_distribution(parsed), optuna.distributions.BaseDistribution)
    assert isinstance(kind.wandb_parameter(parsed), dict)
    assert kind.candidates(parsed)
    assert kind.grid_values is None or kind.grid_values(parsed)


def test_the_builtin_types_are_registered_in_order() -> None:
    assert list(DISTRIBUTIONS) == ["loguniform", "uniform", "int", "choice", "bool"]
    assert distributions.allowed_text(DISTRIBUTIONS) == (
        "'loguniform', 'uniform', 'int', 'choice' or 'bool'"
    )
