"""Search file -> Tune domains, Optuna distributions and the W&B sweep config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from tune_grid.config import RunConfig
from tune_grid.search.spec.space_file import parse_space
from tune_grid.search.spec.spaces import (
    encode_value,
    optuna_space,
    tune_param_space,
    wandb_sweep,
)

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = str(REPO / "search_spaces" / "quickstart.yaml")
SPACE = {
    "experiment": "spaces",
    "fixed": {"minibatch_size": 32, "hidden_sizes": [16, 16]},
    "space": {
        "lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
        "gamma": {"type": "uniform", "low": 0.9, "high": 0.99},
        "num_epochs": {"type": "int", "low": 1, "high": 3},
        "policy_sharing": {"type": "choice", "values": ["shared", "independent"]},
        "share_reward": {"type": "bool"},
        "train_batch_size": {"type": "choice", "values": [96, 192]},
    },
    "scheduler": {"type": "asha", "grace_period": 192, "max_t": 768, "reduction_factor": 3},
    "stop": {"env_steps": 768},
    "num_samples": 5,
}


def test_optuna_distributions() -> None:
    dists = optuna_space(parse_space(SPACE))
    assert dists["lr"] == optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    assert dists["gamma"] == optuna.distributions.FloatDistribution(0.9, 0.99)
    assert dists["num_epochs"] == optuna.distributions.IntDistribution(1, 3)
    assert dists["share_reward"].choices == (False, True)
    assert dists["policy_sharing"].choices == ("shared", "independent")
    assert "minibatch_size" not in dists


def test_optuna_samples_are_valid_run_configs() -> None:
    spec = parse_space(SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask(fixed_distributions=optuna_space(spec))
        RunConfig.from_dict({**spec.fixed_config(), **trial.params})
        study.tell(trial, 0.0)


def test_tune_domains_and_grid() -> None:
    from ray import tune
    from ray.tune.search.sample import Categorical, Float, Integer

    spec = parse_space(SPACE)
    space = tune_param_space(spec)
    assert space["minibatch_size"] == 32 and space["hidden_sizes"] == "16x16"
    assert isinstance(space["lr"], Float) and isinstance(space["num_epochs"], Integer)
    assert isinstance(space["share_reward"], Categorical)
    assert space["num_epochs"].upper == 4  # tune.randint excludes its upper bound
    grid = parse_space(
        {
            "experiment": "grid",
            "space": {
                "num_epochs": {"type": "int", "low": 1, "high": 3},
                "share_reward": {"type": "bool"},
            },
            "search": {"algorithm": "grid"},
        }
    )
    grid_space = tune_param_space(grid)
    assert grid_space["num_epochs"] == tune.grid_search([1, 2, 3])
    assert grid_space["share_reward"] == tune.grid_search([False, True])


def test_list_choices_are_encoded_for_optuna() -> None:
    spec = parse_space(
        {
            "experiment": "x",
            "space": {"hidden_sizes": {"type": "choice", "values": [[16, 16], [32, 32, 32]]}},
        }
    )
    assert optuna_space(spec)["hidden_sizes"].choices == ("16x16", "32x32x32")
    assert encode_value([64, 64]) == "64x64" and encode_value(3) == 3
    assert RunConfig.from_dict({"hidden_sizes": "32x32x32"}).hidden_sizes == (32, 32, 32)


def test_wandb_sweep_config() -> None:
    sweep = wandb_sweep(parse_space(SPACE))
    assert sweep["method"] == "bayes" and sweep["metric"]["goal"] == "minimize"
    params = sweep["parameters"]
    assert params["lr"] == {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2}
    assert params["num_epochs"]["distribution"] == "int_uniform"
    assert params["share_reward"] == {"values": [False, True]}
    assert params["minibatch_size"] == {"value": 32}
    # 192 env steps of grace are 1 iteration of the largest batch (192).
    assert sweep["early_terminate"] == {"type": "hyperband", "min_iter": 1, "eta": 3}
    assert "${args_json_file}" in sweep["command"]
    assert sweep["command"][sweep["command"].index("--env-steps") + 1] == "768"
    yaml.safe_load(yaml.safe_dump(sweep))


def test_wandb_sweep_cli_prints_yaml() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tune_grid.cli",
            "wandb-sweep",
            "search_spaces/quickstart.yaml",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    sweep = yaml.safe_load(proc.stdout)
    assert sweep["name"] == "quickstart"
    assert set(sweep["parameters"]) >= {"lr", "train_batch_size", "share_reward", "policy_sharing"}


@pytest.mark.parametrize("algorithm", ["random", "grid"])
def test_non_optuna_space_has_no_study(algorithm: str) -> None:
    data = {
        "experiment": "x",
        "space": {"policy_sharing": {"type": "choice", "values": ["shared", "independent"]}},
        "search": {"algorithm": algorithm},
    }
    spec = parse_space(data)
    assert spec.search.algorithm == algorithm
