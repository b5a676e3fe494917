"""The algorithm registry: PPO is one entry; a toy entry registered here, with no other file
touched, trains, validates and mutates through the same code paths."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tiny import TINY_RUN, tiny_search

from tune_grid.config import ConfigError, RunConfig
from tune_grid.search.spec.space_file import SpaceFileError, parse_space
from tune_grid.training.algorithms import (
    HP_PREFIX,
    SHARED_KEYS,
    Algorithm,
    algorithm_for,
    apply_hyperparameters,
    check_run,
    hyperparameter_columns,
    register,
    registered,
    unregister,
)

TINY: dict[str, Any] = {**TINY_RUN, "train_batch_size": 96}


def test_ppo_is_found_and_every_run_key_is_read_by_it() -> None:
    ppo = algorithm_for(RunConfig())
    assert ppo.name == "ppo" and "ppo" in registered()
    assert {"critic", "value_norm"} <= set(ppo.options)
    orphans = [k for k in RunConfig.field_names() if not ppo.reads(k)]
    assert not orphans, f"run keys no algorithm reads: {orphans}"
    assert not set(ppo.keys) & set(SHARED_KEYS)


def test_an_unknown_algorithm_gets_one_line_naming_the_registered_ones() -> None:
    run = RunConfig.from_dict({"algorithm": "sac"})  # any name parses; building checks it
    with pytest.raises(ConfigError, match=r"^algorithm: got 'sac', allowed: one of 'ppo'"):
        check_run(run)
    with pytest.raises(SpaceFileError, match=r"fixed\.algorithm: got 'sac', allowed: one of"):
        parse_space(tiny_search(fixed={**TINY, "algorithm": "sac"}))


def _toy_config(run: RunConfig) -> Any:
    """RLlib's own PPO loops and learner (PPO's reference config), reading a few keys only."""
    return algorithm_for("ppo").reference_config(run)  # type: ignore[misc]


def _set_lr(algo: Any, run: RunConfig) -> None:
    def apply(learner: Any, lr: float) -> None:
        for optimizer in learner._named_optimizers.values():
            learner._set_optimizer_lr(optimizer, lr)

    for result in algo.learner_group.foreach_learner(apply, lr=run.lr):
        result.get()


def _read_lr(algo: Any) -> dict[str, float]:
    def read(learner: Any) -> float:
        groups = [g for o in learner._named_optimizers.values() for g in o.param_groups]
        return float(groups[0]["lr"])

    return {"lr": next(r.get() for r in algo.learner_group.foreach_learner(read))}


@pytest.fixture
def toy() -> Iterator[Algorithm]:
    entry = register(
        Algorithm(
            name="toy_ppo",
            keys=("lr", "gamma", "minibatch_size", "num_epochs"),
            build_config=_toy_config,
            learner_class=lambda run: object,
            module_spec=lambda run: None,
            mutable={"lr": "the optimizers' param_groups"},
            apply_mutable=_set_lr,
            read_mutable=_read_lr,
        )
    )
    try:
        yield entry
    finally:
        unregister("toy_ppo")


def test_a_toy_entry_refuses_keys_it_does_not_read(toy: Algorithm) -> None:
    with pytest.raises(ConfigError, match=r"^critic: not read by algorithm 'toy_ppo'; it reads lr"):
        check_run(RunConfig.from_dict({"algorithm": "toy_ppo", "critic": "centralized"}))
    assert check_run(RunConfig.from_dict({"algorithm": "toy_ppo", "lr": 1e-3})) is toy
    with pytest.raises(SpaceFileError, match=r"fixed\.critic: not read by algorithm 'toy_ppo'"):
        parse_space(tiny_search(fixed={**TINY, "algorithm": "toy_ppo", "critic": "local"}))


def test_a_toy_entrys_mutable_keys_decide_what_pbt_may_change(toy: Algorithm) -> None:
    pbt = {
        "type": "pbt",
        "time_attr": "env_steps",
        "perturbation_interval": 96,
        "hyperparam_mutations": {"clip_param": {"type": "uniform", "low": 0.1, "high": 0.3}},
    }
    data = tiny_search(
        fixed={**TINY, "algorithm": "toy_ppo"},
        scheduler=pbt,
        num_samples=2,
        checkpoint_num_to_keep=3,
    )
    data["space"] = {"lr": data["space"]["lr"]}
    with pytest.raises(SpaceFileError) as info:
        parse_space(data)
    assert "hyperparam_mutations.clip_param: cannot change mid-run: it is not read by toy_ppo" in (
        str(info.value)
    )
    assert str(info.value).endswith("mutable: lr")
    # The same mutation is fine for PPO.
    parse_space({**data, "fixed": TINY})


def test_a_toy_entry_trains_and_its_mutable_keys_are_applied_and_read_back(
    ray_session: None, toy: Algorithm
) -> None:
    from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner

    from tune_grid.training.seed_group import SeedGroup

    runs = [RunConfig.from_dict({**TINY, "algorithm": "toy_ppo", "seed": s}) for s in (0, 1)]
    group = SeedGroup(runs)
    try:
        for algo in group.algos:
            assert type(algo.learner_group._learner) is PPOTorchLearner  # RLlib's, not ours
            algo.train()
        assert hyperparameter_columns(group.algos, runs[0]) == {HP_PREFIX + "lr": runs[0].lr}
        changed = runs[0].replace(lr=3e-3)
        for algo in group.algos:
            apply_hyperparameters(algo, changed)
        assert hyperparameter_columns(group.algos, changed) == {HP_PREFIX + "lr": 3e-3}
    finally:
        group.stop()


def test_registering_checks_the_entry() -> None:
    with pytest.raises(ValueError, match="not run-config keys"):
        register(
            Algorithm(
                name="bad",
                keys=("learning_rate",),
                build_config=_toy_config,
                learner_class=lambda run: object,
                module_spec=lambda run: None,
            )
        )
    with pytest.raises(ValueError, match="registered already"):
        register(algorithm_for("ppo"))
    assert "bad" not in registered()
