"""The search objective: greedy-policy validation on validation days, per-seed random streams,
env-step budgets and metrics that cannot decide their own answer."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import tune_grid
from tune_grid.config import RunConfig
from tune_grid.env.evaluation import roll_days, run_day
from tune_grid.grid.data import split_profiles
from tune_grid.grid.devices import MICROGRIDS
from tune_grid.search.spec.space_file import SpaceFileError, parse_space
from tune_grid.training.validation import Validator, due, validation_days

SMALL_RUN = {
    "train_batch_size": 96,
    "minibatch_size": 48,
    "num_epochs": 1,
    "hidden_sizes": [16],
    "num_envs_per_env_runner": 2,
    "val_days": 3,
}


def test_validation_days_are_never_training_days() -> None:
    train = set(split_profiles("train").dates)
    validation = split_profiles("validation").dates
    days = validation_days(RunConfig())
    assert len(days) == len(validation) == 46
    assert not {validation[d] for d in days} & train
    spaced = validation_days(RunConfig(val_days=5))
    assert spaced == [0, 11, 22, 34, 45]


def test_batched_rollout_equals_day_by_day_rollout() -> None:
    """``roll_days`` (all days in lockstep, one batched step) gives each day's run_day totals."""
    rng = np.random.default_rng(0)
    days = [0, 7, 30, 45]
    actions = rng.uniform(-1.0, 1.0, (24, len(days), len(MICROGRIDS), 3))
    config = {"split": "validation"}
    hour = iter(range(24))

    def act(observations: np.ndarray) -> np.ndarray:
        assert observations.shape[:2] == (len(days), len(MICROGRIDS))
        return actions[next(hour)]

    rolled = roll_days(act, [tune_grid.make_env(config) for _ in days], days)
    env = tune_grid.make_env(config)
    for i, day in enumerate(days):
        steps = iter(actions[:, i])
        alone = run_day(env, lambda obs, s=steps: dict(zip(MICROGRIDS, next(s), strict=True)), day)
        for column in ("cost", "safety", "objective", "violation_hours", "return"):
            assert rolled[column][i] == pytest.approx(alone[column], rel=1e-12, abs=1e-9)
        assert rolled["date"][i] == alone["date"]


def test_validator_gap_needs_every_day_of_the_oracle() -> None:
    validator = Validator.for_run(RunConfig(val_days=2))
    dates = [split_profiles("validation").dates[d] for d in validator.days]
    frame = {
        "date": dates,
        "cost": np.array([100.0, 300.0]),
        "safety": np.array([0.5, 0.0]),
        "objective": np.array([150.0, 300.0]),
        "violation_hours": np.array([2, 0]),
    }
    import pandas as pd

    per_day = pd.DataFrame(frame)
    assert math.isnan(validator.summarize(per_day)["val_gap"])
    validator.oracle = {dates[0]: 100.0, dates[1]: 200.0}
    metrics = validator.summarize(per_day)
    assert metrics["val_objective"] == 225.0 and metrics["val_daily_cost"] == 200.0
    assert metrics["val_safety"] == 0.25 and metrics["val_violation_hours"] == 1.0
    assert metrics["val_gap"] == pytest.approx(225.0 / 150.0 - 1.0)


def test_validation_is_due_at_the_start_and_at_each_crossed_interval() -> None:
    assert due(960, None, 10_000)
    assert not due(9_600, 960, 10_000)
    assert due(10_560, 9_600, 10_000)
    assert due(31_000, 10_560, 10_000)
    assert not due(50_000, 960, 0)


SPACE: dict[str, Any] = {
    "experiment": "budgets",
    "space": {"train_batch_size": {"type": "choice", "values": [960, 1920]}},
    "scheduler": {"type": "asha", "time_attr": "env_steps", "max_t": 40000, "grace_period": 10000},
    "stop": {"env_steps": 40000},
}


def _space(**changes: Any) -> dict[str, Any]:
    return {**SPACE, **changes}


def test_iteration_budgets_with_a_searched_batch_size_are_rejected() -> None:
    parse_space(_space())
    asha = {"type": "asha", "time_attr": "training_iteration", "max_t": 40, "grace_period": 5}
    with pytest.raises(
        SpaceFileError,
        match=r"scheduler\.time_attr: training_iteration: .*"
        r"train_batch_size is searched.*time_attr: env_steps",
    ):
        parse_space(_space(scheduler=asha, stop={"training_iteration": 40}))
    with pytest.raises(SpaceFileError, match=r"stop\.training_iteration: .*stop: \{env_steps: N\}"):
        parse_space(_space(stop={"training_iteration": 40}))
    # Without a searched batch size an iteration is the same budget in every trial.
    parse_space(
        _space(
            fixed={"train_batch_size": 960},
            space={"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-3}},
            scheduler=asha,
            stop={"training_iteration": 40},
        )
    )


def test_the_cli_rejects_iteration_rungs_before_ray_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import ray

    from tune_grid.cli import main

    path = tmp_path / "bad.yaml"
    asha = {"type": "asha", "time_attr": "training_iteration", "max_t": 40, "grace_period": 5}
    path.write_text(yaml.safe_dump(_space(scheduler=asha)))
    assert main(["search", str(path), "--storage", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "scheduler.time_attr" in err[0] and "env_steps" in err[0]
    assert not ray.is_initialized() and not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("metric", "key", "rejected"),
    [
        ("val_objective", "penalty", True),
        ("val_objective", "cost_scale", True),
        ("episode_return_mean", "penalty", True),
        ("val_daily_cost", "congestion_price", True),
        ("val_objective", "setpoint_penalty_price", True),
        ("val_daily_cost", "penalty", False),
        ("val_safety", "congestion_price", False),
        ("val_violation_hours", "export_discount", False),
    ],
)
def test_a_metric_cannot_rank_a_price_it_charges(metric: str, key: str, rejected: bool) -> None:
    space = _space(
        fixed={"train_batch_size": 960, "vertical_protocol": "price_signal"},
        space={key: {"type": "uniform", "low": 0.5, "high": 0.9}},
        metric=metric,
    )
    if rejected:
        with pytest.raises(SpaceFileError, match=rf"space\.{key}: metric {metric} charges {key}"):
            parse_space(space)
    else:
        parse_space(space)


@pytest.mark.slow
def test_seed_k_alone_trains_exactly_as_seed_k_of_a_group(ray_session: None) -> None:
    """Each seed draws from its own random stream: training seed 1 beside seed 0 changes
    nothing about seed 1."""
    import torch

    from tune_grid.training.seed_group import SeedGroup

    run = RunConfig.from_dict(SMALL_RUN)
    group = SeedGroup([run.replace(seed=0), run.replace(seed=1)])
    alone = SeedGroup([run.replace(seed=1)])
    try:
        for _ in range(2):
            in_group = group.train()[1]
            by_itself = alone.train()[0]
            for key in ("episode_return_mean", "daily_cost_mean", "env_steps"):
                assert in_group[key] == by_itself[key]
        weights = [
            algo.get_module("shared_policy").state_dict()
            for algo in (group.algos[1], alone.algos[0])
        ]
        assert weights[0].keys() == weights[1].keys()
        for name in weights[0]:
            assert torch.equal(torch.as_tensor(weights[0][name]), torch.as_tensor(weights[1][name]))
        assert group.validate()[1] == alone.validate()[0]
        # ...while seed 0 is a different run.
        assert group.validate()[0] != group.validate()[1]
    finally:
        group.stop()
        alone.stop()


@pytest.mark.slow
def test_a_diverged_seed_fails_with_its_number(ray_session: None) -> None:
    import torch

    from tune_grid.training.seed_group import SeedFailure, SeedGroup

    run = RunConfig.from_dict(SMALL_RUN)
    group = SeedGroup([run.replace(seed=3), run.replace(seed=4)])
    try:
        module = group.algos[1].get_module("shared_policy")
        with torch.no_grad():
            for parameter in module.parameters():
                parameter.fill_(math.nan)
        with pytest.raises(SeedFailure, match="^seed 4: "):
            group.validate()
    finally:
        group.stop()
