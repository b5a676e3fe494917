"""Population-based training without training: the search file's rules, the schedulers built from
it, the lineage a clone carries and its columns in the Parquet files (fast; no Ray cluster)."""

from __future__ import annotations

import copy
import json
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from tune_grid.config import RunConfig
from tune_grid.results.export import SearchMeta, TrialRecord, build_tables, write_tables
from tune_grid.results.schema import LINEAGE_COLUMNS, check_table, read_results, with_metadata
from tune_grid.results.trial_state import STATE_FILE, TrialState
from tune_grid.search.spec.space_file import SpaceFileError, load_space_file, parse_space
from tune_grid.training.algorithms import algorithm_for
from tune_grid.training.hyperparams import MUTABLE_KEYS

REPO = Path(__file__).resolve().parents[1]
PBT: dict[str, Any] = {
    "experiment": "p",
    "fixed": {"train_batch_size": 240, "minibatch_size": 60},
    "space": {"lr": {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-2}},
    "search": {"algorithm": "random"},
    "scheduler": {
        "type": "pbt",
        "time_attr": "env_steps",
        "perturbation_interval": 960,
        "hyperparam_mutations": {
            "lr": {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-2},
            "clip_param": {"type": "uniform", "low": 0.1, "high": 0.4},
        },
    },
    "num_samples": 4,
    "stop": {"env_steps": 4800},
    "checkpoint_num_to_keep": 6,
}


def _with(**changes: Any) -> dict[str, Any]:
    """PBT with ``changes``: ``key=value`` at the top, ``scheduler__key=value`` in the scheduler
    (None removes the key)."""
    data = copy.deepcopy(PBT)
    for key, value in changes.items():
        target, _, name = key.rpartition("__")
        where = data["scheduler"] if target == "scheduler" else data
        name = name or key
        if value is None:
            where.pop(name, None)
        else:
            where[name] = value
    return data


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(SpaceFileError) as info:
        parse_space(data, "pbt.yaml")
    message = str(info.value)
    assert "\n" not in message
    return message


MUTATION = {"type": "uniform", "low": 0.1, "high": 0.4}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {
                "scheduler__hyperparam_mutations": {
                    "hidden_sizes": {"type": "choice", "values": [1]}
                }
            },
            "pbt.yaml: scheduler.hyperparam_mutations.hidden_sizes: cannot change mid-run: it "
            "sets the networks' shape",
        ),
        (
            {
                "scheduler__hyperparam_mutations": {
                    "train_batch_size": {"type": "int", "low": 96, "high": 480}
                }
            },
            "scheduler.hyperparam_mutations.train_batch_size: cannot change mid-run: it is read "
            "by the algorithm's training loop",
        ),
        (
            {
                "scheduler__hyperparam_mutations": {
                    "policy_sharing": {"type": "choice", "values": ["shared"]}
                }
            },
            "policy_sharing: cannot change mid-run: it sets which RLModules exist",
        ),
        (
            {"scheduler__hyperparam_mutations": {"share_reward": {"type": "bool"}}},
            "share_reward: cannot change mid-run: it changes the environment",
        ),
        (
            {"scheduler__hyperparam_mutations": {"kl_coeff": MUTATION}},
            "kl_coeff: cannot change mid-run: it is adapted by the learner",
        ),
        ({"scheduler__hyperparam_mutations": {}}, "scheduler.hyperparam_mutations: name at least"),
        (
            {"scheduler__time_attr": "training_iteration"},
            "scheduler.time_attr: must be env_steps",
        ),
        ({"scheduler__perturbation_interval": None}, "scheduler.perturbation_interval: required"),
        ({"scheduler__quantile_fraction": 0.6}, "scheduler.quantile_fraction: must be <= 0.5"),
        (
            {"search": {"algorithm": "optuna"}},
            "search.algorithm: scheduler pbt chooses its population itself",
        ),
        ({"num_samples": 1}, "num_samples: scheduler pbt needs a population of >= 2 trials"),
        (
            {"checkpoint_num_to_keep": 5},
            "checkpoint_num_to_keep: must be >= 6 with scheduler pbt (perturbation_interval 960 / "
            "train_batch_size 240, + 2)",
        ),
        (
            {"fixed": {"train_batch_size": 240, "minibatch_size": 60, "clip_param": 0.2}},
            "scheduler.hyperparam_mutations.clip_param: is also set in fixed",
        ),
        (
            {"scheduler__hyperparam_mutations": {"clip_param": {**MUTATION, "high": 1.5}}},
            "scheduler.hyperparam_mutations.clip_param.high: clip_param must be in (0, 1]",
        ),
        (
            {"scheduler__hyperparam_mutations": {"clip_param": {**MUTATION, "low": 0.5}}},
            "scheduler.hyperparam_mutations.clip_param.low: must be < high",
        ),
        (
            {"scheduler__hyperparam_mutations": {"gamma": {"type": "bool"}}},
            "scheduler.hyperparam_mutations.gamma.type: bool samples true/false but gamma is float",
        ),
        (
            {"scheduler__hyperparam_mutations": {"lr": {"type": "normal", "low": 0, "high": 1}}},
            "scheduler.hyperparam_mutations.lr.type: got 'normal'; allowed:",
        ),
    ],
)
def test_bad_population_settings_name_the_key(changes: dict[str, Any], expected: str) -> None:
    assert expected in _error(_with(**changes))


def test_pb2_takes_continuous_ranges_and_no_resample_probability() -> None:
    pb2 = {"scheduler__type": "pb2"}
    choice = {"type": "choice", "values": [0.1, 0.2]}
    message = _error(_with(**pb2, scheduler__hyperparam_mutations={"clip_param": choice}))
    assert "scheduler.hyperparam_mutations.clip_param.type: pb2 fits a Gaussian process" in message
    message = _error(_with(**pb2, scheduler__resample_probability=0.5))
    assert "scheduler.resample_probability: read by pbt only" in message
    parse_space(_with(**pb2))


def test_other_schedulers_refuse_population_keys() -> None:
    data = _with(scheduler__type="asha", scheduler__time_attr="training_iteration")
    for key in ("perturbation_interval", "quantile_fraction", "resample_probability"):
        data["scheduler"].pop(key, None)
    message = _error(data)
    assert "scheduler.hyperparam_mutations: read by 'pbt' or 'pb2' only" in message


def test_every_run_key_is_mutable_or_says_why_not() -> None:
    hints = typing.get_type_hints(RunConfig)
    ppo = algorithm_for("ppo")
    assert tuple(ppo.mutable) == MUTABLE_KEYS  # the entry names what the learner functions set
    for key in RunConfig.field_names():
        reason = ppo.why_not_mutable(key)
        assert (reason is None) == (key in MUTABLE_KEYS), key
        assert reason != "is not applied to a running learner" or key in (
            "algorithm",
            "critic",
            "value_norm",
            "initial_log_std",
            "training_loop",
            "eval_interval",
            "val_days",
        ), key
    for key in MUTABLE_KEYS:
        assert float in typing.get_args(hints[key]) or hints[key] is float, key


def test_mutated_keys_missing_from_space_start_from_their_range() -> None:
    from ray.tune.search.sample import Float

    from tune_grid.search.run.tuner import make_reporter, param_space, search_meta

    spec = parse_space(PBT)
    assert list(spec.initial_space) == ["lr", "clip_param"]
    space = param_space(spec)
    assert isinstance(space["clip_param"], Float) and space["train_batch_size"] == 240
    assert {"lr", "clip_param"} <= set(search_meta(spec).param_names)
    assert make_reporter(spec)._parameter_columns == ["lr", "clip_param"]
    only_mutations = parse_space(_with(space={}))
    assert list(only_mutations.initial_space) == ["lr", "clip_param"]


def test_the_shipped_file_builds_pbt_and_its_pb2_variant_builds_pb2() -> None:
    from ray.tune.search.sample import Float

    from tune_grid.search.run.tuner import make_scheduler
    from tune_grid.search.spec.population import LineagePB2, LineagePBT

    spec = load_space_file(REPO / "search_spaces" / "pbt.yaml")
    pbt = make_scheduler(spec)
    assert isinstance(pbt, LineagePBT)
    assert pbt._time_attr == "env_steps" and pbt._perturbation_interval == 960
    assert set(pbt._hyperparam_mutations) == {"lr", "clip_param", "entropy_coeff"}
    assert all(isinstance(d, Float) for d in pbt._hyperparam_mutations.values())
    assert pbt._custom_explore_fn.bounds["clip_param"] == (0.1, 0.4)
    data = spec.model_dump(exclude_unset=True)
    data["scheduler"]["type"] = "pb2"
    del data["scheduler"]["resample_probability"]
    pb2 = make_scheduler(parse_space(data))
    assert isinstance(pb2, LineagePB2)
    assert pb2._hyperparam_bounds["lr"] == [1.0e-4, 3.0e-3]


def test_discrete_mutations_move_along_their_values() -> None:
    from tune_grid.search.spec.population import continuous_bounds, pbt_mutations

    choice = {"type": "choice", "values": [0.9, 0.95, 0.99]}
    spec = parse_space(_with(scheduler__hyperparam_mutations={"gamma": choice}))
    assert pbt_mutations(spec) == {"gamma": [0.9, 0.95, 0.99]}
    assert continuous_bounds(spec) == {}


def test_explored_values_stay_in_their_ranges() -> None:
    from tune_grid.search.spec.population import KeepInRange

    keep = KeepInRange({"lr": (1e-4, 1e-2), "clip_param": (0.1, 0.4)})
    out = keep({"lr": 1.2e-2, "clip_param": np.float64(0.05), "gamma": 0.99})
    assert out == {"lr": 1e-2, "clip_param": 0.1, "gamma": 0.99}
    assert type(out["clip_param"]) is float

    from ray.tune.schedulers.pbt import _explore

    spec = parse_space(PBT)
    from tune_grid.search.spec.population import build_pbt

    scheduler = build_pbt(spec)
    config = {"lr": 1e-2, "clip_param": 0.4, "train_batch_size": 240}
    for _ in range(50):
        config, _ = _explore(
            config,
            scheduler._hyperparam_mutations,
            scheduler._resample_probability,
            scheduler._perturbation_factors,
            scheduler._custom_explore_fn,
        )
        assert 1e-4 <= config["lr"] <= 1e-2 and 0.1 <= config["clip_param"] <= 0.4
        RunConfig.from_dict(config)


class _Trial:
    status = "RUNNING"

    def __init__(self, trial_id: str, path: Path) -> None:
        self.trial_id = trial_id
        self.path = str(path)

    def is_finished(self) -> bool:
        return False  # as in Tune until it has processed the trial's end


def _ids(trials: list[Any]) -> list[str]:
    return [t.trial_id for t in trials]


@pytest.mark.parametrize("kind", ["pbt", "pb2"])
def test_trials_whose_report_met_the_stop_are_neither_exploited_nor_cloned(
    kind: str, tmp_path: Path
) -> None:
    """A trial whose last report met ``stop`` ends after it. Exploiting into it, or cloning its
    checkpoint (the clone takes over its env steps), would restart a trial that ends at once with
    new values no row was trained with. Tune marks such a trial finished only some reports later;
    until then Ray ranks it, and a finished best trial would be the only top trial and block every
    exploit (as once seen in CI: three trials, no exploit)."""
    from types import SimpleNamespace

    from tune_grid.search.run.tuner import make_scheduler

    scheduler = make_scheduler(parse_space(_with(scheduler__type=kind)))
    stop = PBT["stop"]["env_steps"]

    def state(score: float, env_steps: int) -> SimpleNamespace:
        row = {"iteration": 20, "env_steps": env_steps, "trial_time_total_s": 9.0}
        return SimpleNamespace(last_score=score, last_result=row, last_checkpoint=None)

    low, mid, high, done = (_Trial(name, tmp_path) for name in ("low", "mid", "high", "done"))
    scheduler._trial_state = {
        low: state(1.0, stop - 240),
        mid: state(2.0, stop - 240),
        high: state(3.0, stop - 240),
        done: state(9.0, stop),  # the best score, and its report met the stop
    }
    lower, upper = scheduler._quantiles()
    assert (_ids(lower), _ids(upper)) == (["low"], ["high"])
    scheduler._trial_state[low].last_result["env_steps"] = stop  # the bottom trial is done too
    lower, upper = scheduler._quantiles()
    assert (_ids(lower), _ids(upper)) == (["mid"], ["high"])
    scheduler._trial_state[mid].last_result["env_steps"] = stop  # one trial left: no ranking
    assert scheduler._quantiles() == ([], [])
    assert len(scheduler._trial_state) == 4, "the scheduler keeps every trial's state"


@pytest.mark.parametrize("kind", ["pbt", "pb2"])
def test_a_top_trial_is_cloned_from_the_checkpoint_it_reported(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray would ask a top trial to save its checkpoint a second time; the reported one is used."""
    from types import SimpleNamespace

    from ray.tune.schedulers import PopulationBasedTraining

    from tune_grid.search.run.tuner import make_scheduler

    handed_to_ray: list[str] = []

    def record(self: Any, trial: Any, controller: Any, upper: list[Any], lower: list[Any]) -> None:
        handed_to_ray.append(trial.trial_id)

    monkeypatch.setattr(PopulationBasedTraining, "_checkpoint_or_exploit", record)
    scheduler = make_scheduler(parse_space(_with(scheduler__type=kind)))
    top, bottom = _Trial("top", tmp_path), _Trial("bottom", tmp_path)
    reported = {"iteration": 7, "env_steps": 1680, "checkpoint_dir_name": "checkpoint_000006"}
    scheduler._trial_state[top] = SimpleNamespace(last_result=reported, last_checkpoint=None)
    scheduler._trial_state[bottom] = SimpleNamespace(last_result={"iteration": 7})
    scheduler._checkpoint_or_exploit(top, None, [top], [bottom])
    assert scheduler._trial_state[top].last_checkpoint.path == str(tmp_path / "checkpoint_000006")
    assert handed_to_ray == []
    scheduler._checkpoint_or_exploit(bottom, None, [top], [bottom])
    assert handed_to_ray == ["bottom"]


# --- the clone an exploit restarts from ---------------------------------------------------------


def _checkpoint(folder: Path, state: TrialState, weights: bytes) -> Path:
    (folder / "seed_0").mkdir(parents=True)
    (folder / "seed_0" / "weights.bin").write_bytes(weights)
    (folder / STATE_FILE).write_text(json.dumps(state.to_json()))
    return folder


def test_a_clone_carries_the_donors_weights_and_the_trials_own_counters(tmp_path: Path) -> None:
    from ray.tune import Checkpoint

    from tune_grid.search.spec.population import CLONE_PREFIX, clone_checkpoint

    donor_dir = _checkpoint(
        tmp_path / "trial_b" / "checkpoint_000004",
        TrialState(iteration=4, env_steps=960, time_total_s=9.0, history=[{"iteration": 4}]),
        b"donor weights",
    )
    own_rows = [{"iteration": i, "objective": -i} for i in (1, 2, 3, 4, 5)]
    trial_dir = tmp_path / "trial_a"
    clones = []
    for n in (1, 2, 3):
        # The checkpoint the trial reported with the result that made it exploit.
        name = f"checkpoint_00000{n}"
        own = TrialState(
            iteration=5, env_steps=1200, time_total_s=12.5, restores=1, history=own_rows
        )
        own.exploits = n - 1
        _checkpoint(trial_dir / name, own, b"own weights")
        result = {"iteration": 5, "checkpoint_dir_name": name, "exploits": n - 1}
        clone = clone_checkpoint(Checkpoint.from_directory(str(donor_dir)), "b", trial_dir, result)
        clones.append(Path(clone.path))
        state = TrialState.from_json(json.loads((Path(clone.path) / STATE_FILE).read_text()))
        # The trial's own iteration counter and history go on; the weights' env steps are the
        # donor's; the lineage names the checkpoint cloned.
        assert (state.iteration, state.env_steps, state.time_total_s) == (5, 960, 12.5)
        assert state.history == own_rows and state.restores == 1
        assert (state.exploits, state.parent_trial_id, state.parent_iteration) == (n, "b", 4)
        assert (Path(clone.path) / "seed_0" / "weights.bin").read_bytes() == b"donor weights"
    kept = sorted(p.name for p in trial_dir.glob(CLONE_PREFIX + "*"))
    assert kept == [clones[1].name, clones[2].name]  # the newest two


def test_without_its_reported_checkpoint_the_trials_row_gives_the_counters(
    tmp_path: Path,
) -> None:
    from tune_grid.search.spec.population import own_state

    result = {"iteration": 7, "env_steps": 700, "trial_time_total_s": 3.5, "restores": 2}
    state = own_state(tmp_path, {**result, "exploits": 1, "parent_trial_id": "c"})
    assert (state.iteration, state.time_total_s, state.restores, state.exploits) == (7, 3.5, 2, 1)
    assert state.parent_trial_id == "c" and state.history == []


# --- lineage in the Parquet files ---------------------------------------------------------------


def _rows(trial_id: str, exploit_at: int | None, parent: str | None) -> TrialRecord:
    record = TrialRecord(trial_id=trial_id, status="TERMINATED", config={"lr": 1e-3, "seed": 0})
    for i in (1, 2, 3):
        exploited = exploit_at is not None and i >= exploit_at
        record.add_result(
            {
                "iteration": i,
                "objective": float(i),
                "env_steps": 100 * i,
                "exploits": int(exploited),
                "parent_trial_id": parent if exploited else None,
                "parent_iteration": 2 if exploited else None,
                "hp/lr": 1e-3,
            }
        )
    return record


def test_lineage_columns_are_typed_and_consistent_across_both_files(tmp_path: Path) -> None:
    meta = SearchMeta(experiment="p", param_names=("lr",))
    records = [_rows("a", None, None), _rows("b", 3, "a")]
    write_tables(tmp_path, records, meta)
    trials = read_results(tmp_path / "trials.parquet", "trials")
    iterations = read_results(tmp_path / "iterations.parquet", "iterations")
    for table, kind in ((trials, "trials"), (iterations, "iterations")):
        for name, dtype in LINEAGE_COLUMNS[kind].items():
            assert table.schema.field(name).type == dtype, name
    assert iterations.schema.field("hp/lr").type == pa.float64()
    t = {r["trial_id"]: r for r in trials.to_pylist()}
    assert (t["a"]["exploits"], t["a"]["parent_trial_id"]) == (0, None)
    assert (t["b"]["exploits"], t["b"]["parent_trial_id"]) == (1, "a")
    b_rows = [r for r in iterations.to_pylist() if r["trial_id"] == "b"]
    assert [r["exploits"] for r in b_rows] == [0, 0, 1]
    assert [r["parent_iteration"] for r in b_rows] == [None, None, 2]


def test_files_without_lineage_columns_still_read() -> None:
    records = [_rows("a", None, None)]
    trials, iterations = build_tables(records, SearchMeta(experiment="p"))
    old = with_metadata(iterations.drop_columns(list(LINEAGE_COLUMNS["iterations"])), "iterations")
    check_table(old, "iterations")
    wrong = iterations.set_column(
        iterations.column_names.index("exploits"),
        "exploits",
        pa.array([1.0] * iterations.num_rows),
    )
    with pytest.raises(ValueError, match="column 'exploits' is double, expected int64"):
        check_table(with_metadata(wrong, "iterations"), "iterations")


def test_rows_a_trial_abandoned_are_left_out() -> None:
    """Resumed from its checkpoint at iteration 5, a trial reports iteration 6 again and stops
    there (it cloned weights further on): its old iteration 7 belongs to the abandoned path."""
    record = TrialRecord(trial_id="a", status="TERMINATED", config={"seed": 0})
    for i in range(1, 8):
        record.add_result({"iteration": i, "objective": 1.0, "reported_at": float(i)})
    record.add_result({"iteration": 6, "objective": 2.0, "reported_at": 8.0})
    trials, iterations = build_tables([record], SearchMeta(experiment="p"))
    assert iterations.column("iteration").to_pylist() == [1, 2, 3, 4, 5, 6]
    assert trials.column("iterations").to_pylist() == [6]
    assert trials.column("last_objective").to_pylist() == [2.0]
    unstamped = TrialRecord(trial_id="b")
    for i in (3, 1):
        unstamped.add_result({"iteration": i, "objective": 1.0})
    assert build_tables([unstamped], SearchMeta(experiment="p"))[1].num_rows == 2
