"""What a trial asks Ray for (tune_grid.search.run.resources): CPUs, GPUs and a measured memory
model, as the placement-group bundles Tune reserves."""

from __future__ import annotations

from pathlib import Path

import pytest

from tune_grid.search.run.resources import (
    GIB,
    MEASURED,
    TrialResources,
    largest_trial,
    network_parameters,
    run_config_of,
    trial_resources_of,
)
from tune_grid.search.spec.space_file import SpaceFileError, load_space_file, parse_space

REPO_ROOT = Path(__file__).resolve().parents[1]
SMALL = {"train_batch_size": 1920, "hidden_sizes": [64, 64], "policy_sharing": "shared"}
LARGE = {"train_batch_size": 7680, "hidden_sizes": [256, 256, 256], "policy_sharing": "independent"}
LOCAL = {"num_env_runners": 0, "num_envs_per_env_runner": 32}


def memory_of(config: dict, seeds: int) -> float:
    return MEASURED.trial_process_bytes(run_config_of({**LOCAL, **config}), seeds)


def test_memory_grows_with_seeds_envs_batch_and_network() -> None:
    base = memory_of(SMALL, 1)
    assert memory_of(SMALL, 3) > base
    assert memory_of({**SMALL, "num_envs_per_env_runner": 4}, 1) < base
    assert memory_of({**SMALL, "train_batch_size": 7680}, 1) > base
    # Network weights count, though less than a 64 MiB step at these sizes.
    small = run_config_of({**LOCAL, **SMALL})
    wide = small.replace(hidden_sizes=(256, 256, 256))
    assert network_parameters(wide) > network_parameters(small) > 0
    assert network_parameters(wide.replace(policy_sharing="independent")) == 3 * network_parameters(
        wide
    )
    assert memory_of(LARGE, 1) >= memory_of({**LARGE, "policy_sharing": "shared"}, 1)
    # Whole 64 MiB steps, and within what one process of this size can be.
    for value in (base, memory_of(LARGE, 3)):
        assert value % (64 * 1024**2) == 0
        assert 0.5 * GIB < value < 4 * GIB


def test_auto_memory_goes_into_the_trial_bundle() -> None:
    bundles = TrialResources(cpu=1, gpu=0).bundles({**LOCAL, **LARGE}, seeds=3)
    assert bundles == [{"CPU": 1.0, "memory": float(memory_of(LARGE, 3))}]


def test_remote_env_runners_get_a_bundle_each_with_their_own_memory() -> None:
    config = {**SMALL, "num_env_runners": 2, "num_envs_per_env_runner": 32}
    bundles = TrialResources(cpu=2, gpu=0.5).bundles(config, seeds=3)
    head, *runners = bundles
    assert head["CPU"] == 2.0 and head["GPU"] == 0.5
    assert len(runners) == 6 and all(r["CPU"] == 1.0 for r in runners)
    # The learners' process holds no envs; each runner holds its 32.
    run = run_config_of(config)
    assert head["memory"] == MEASURED.trial_process_bytes(run, 3)
    assert runners[0]["memory"] == MEASURED.env_runner_bytes(run)
    assert head["memory"] < memory_of(SMALL, 3)


def test_explicit_memory_is_the_whole_trials() -> None:
    config = {**SMALL, "num_env_runners": 1}
    bundles = TrialResources(cpu=1, memory_gib=2.5).bundles(config, seeds=2)
    assert bundles[0] == {"CPU": 1.0, "memory": 2.5 * GIB}
    assert bundles[1:] == [{"CPU": 1.0}, {"CPU": 1.0}]


def test_trial_resources_is_tunes_placement_group() -> None:
    from tune_grid.search.run.tuner import trial_resources

    factory = trial_resources({**LOCAL, **SMALL, "lr": 1e-3}, TrialResources(), seeds=3)
    assert factory.bundles == [{"CPU": 1.0, "memory": float(memory_of(SMALL, 3))}]


def _space(**resources: object) -> dict:
    return {
        "experiment": "x",
        "space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}},
        "resources_per_trial": resources,
    }


@pytest.mark.parametrize(
    ("given", "expected"), [({}, None), ({"memory": "auto"}, None), ({"memory": 3}, 3.0)]
)
def test_space_file_memory(given: dict, expected: float | None) -> None:
    spec = parse_space(_space(cpu=1, **given))
    assert trial_resources_of(spec).memory_gib == expected


@pytest.mark.parametrize("value", [0, -1, "lots", True, [1]])
def test_space_file_rejects_bad_memory_in_one_line(value: object) -> None:
    with pytest.raises(SpaceFileError) as info:
        parse_space(_space(memory=value), "x.yaml")
    message = str(info.value)
    assert message.startswith("x.yaml: resources_per_trial.memory: ")
    assert "auto or a number of GiB > 0" in message and "\n" not in message


def test_largest_trial_of_full_is_its_largest_corner() -> None:
    full = load_space_file(REPO_ROOT / "search_spaces" / "full.yaml")
    largest = largest_trial(full)
    assert largest["CPU"] == 1.0
    assert largest["memory"] == memory_of({**LARGE, "torch_threads": 1}, full.seeds)
