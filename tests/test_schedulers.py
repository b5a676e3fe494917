"""The scheduler registry: each entry builds its Tune scheduler and says how its stops read."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from tune_grid.results.early_stop import STOP_READINGS
from tune_grid.results.export import SearchMeta, TrialRecord, trial_row
from tune_grid.search.run.tuner import make_scheduler, search_meta
from tune_grid.search.spec.schedulers import SCHEDULERS, SchedulerType, register
from tune_grid.search.spec.space_file import SpaceFileError, parse_space
from tune_grid.search.spec.spaces import wandb_sweep

SPACE: dict[str, Any] = {
    "experiment": "sched",
    "space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}},
    "scheduler": {"type": "asha", "max_t": 8, "grace_period": 2, "reduction_factor": 3},
    "stop": {"training_iteration": 8},
}


POPULATION: dict[str, Any] = {
    "time_attr": "env_steps",
    "perturbation_interval": 8000,
    "hyperparam_mutations": {"clip_param": {"type": "uniform", "low": 0.1, "high": 0.3}},
}


def _spec(scheduler: dict[str, Any]) -> Any:
    kind = SCHEDULERS.get(scheduler["type"])
    if kind is not None and kind.population:  # the keys a population scheduler needs
        extra = {"search": {"algorithm": "random"}, "checkpoint_num_to_keep": 4}
        return parse_space({**SPACE, **extra, "scheduler": {**POPULATION, **scheduler}})
    return parse_space({**SPACE, "scheduler": scheduler})


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_every_scheduler_builds_and_names_a_known_reading(name: str) -> None:
    spec = _spec({"type": name})
    assert isinstance(make_scheduler(spec), TrialScheduler)
    assert STOP_READINGS[SCHEDULERS[name].stops.name] is SCHEDULERS[name].stops
    assert search_meta(spec).early_stop == SCHEDULERS[name].stops.name


def test_asha_uses_the_files_rungs_and_fifo_stops_nothing() -> None:
    asha = make_scheduler(_spec(SPACE["scheduler"]))
    assert isinstance(asha, ASHAScheduler)
    assert (asha._max_t, asha._reduction_factor) == (8, 3)
    assert isinstance(make_scheduler(_spec({"type": "fifo"})), FIFOScheduler)
    assert wandb_sweep(_spec(SPACE["scheduler"]))["early_terminate"]["eta"] == 3
    assert "early_terminate" not in wandb_sweep(_spec({"type": "fifo"}))


def test_unknown_scheduler_lists_the_registered_ones() -> None:
    with pytest.raises(
        SpaceFileError,
        match="scheduler.type: got 'hyperband'; allowed: 'asha', 'fifo', 'pbt' or 'pb2'",
    ):
        _spec({"type": "hyperband"})


def test_a_scheduler_without_a_piece_is_refused() -> None:
    fifo = SCHEDULERS["fifo"]
    with pytest.raises(ValueError, match="'nobuild': build must be a function"):
        register(dataclasses.replace(fifo, name="nobuild", build=None))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stops must be a StopReading"):
        register(dataclasses.replace(fifo, name="nostops", stops="never"))  # type: ignore[arg-type]
    assert "nobuild" not in SCHEDULERS and "nostops" not in SCHEDULERS


def _short_trial() -> TrialRecord:
    """Terminated after 2 of the 8 iterations the stop condition asks for."""
    record = TrialRecord(trial_id="t1", status="TERMINATED", config={"lr": 1e-3, "seed": 0})
    for i in (1, 2):
        record.add_result({"iteration": i, "training_iteration": i, "objective": 1.0})
    return record


@pytest.mark.parametrize(("scheduler", "stopped"), [("asha", True), ("fifo", False)])
def test_stopped_early_follows_the_schedulers_reading(scheduler: str, stopped: bool) -> None:
    meta = search_meta(_spec({"type": scheduler}))
    assert trial_row(_short_trial(), meta, None)["stopped_early"] is stopped


def test_search_meta_keeps_the_reading_and_old_files_read_as_rungs() -> None:
    meta = SearchMeta(experiment="x", early_stop="never")
    assert SearchMeta.from_json(meta.to_json()).early_stop == "never"
    old = {k: v for k, v in meta.to_json().items() if k != "early_stop"}
    assert SearchMeta.from_json(old).early_stop == "rung"


def test_scheduler_type_has_no_defaults() -> None:
    assert all(
        f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        for f in dataclasses.fields(SchedulerType)
    )
