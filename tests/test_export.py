"""Parquet export: schema, typed params, de-duplication, incremental callback, idempotence."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest

from tune_grid.results.export import (
    SearchMeta,
    TrialRecord,
    build_tables,
    export_experiment,
    param_type,
    records_from_parquet,
    write_search_meta,
    write_tables,
)
from tune_grid.results.schema import (
    ITERATION_COLUMNS,
    ITERATIONS_FILE,
    TRIAL_COLUMNS,
    TRIALS_FILE,
    read_results,
)

META = SearchMeta(
    experiment="exp",
    seeds=2,
    metric="episode_return_mean",
    mode="max",
    stop={"training_iteration": 3},
    param_names=("hidden_sizes", "lr", "policy_sharing", "share_reward", "train_batch_size"),
)
CONFIG = {
    "lr": 1e-3,
    "policy_sharing": "shared",
    "share_reward": True,
    "train_batch_size": 96,
    "hidden_sizes": "16x16",
    "seed": 0,
}


def _result(iteration: int, objective: float, **extra: Any) -> dict[str, Any]:
    return {
        "iteration": iteration,
        "training_iteration": iteration,
        "env_steps": 96 * iteration,
        "trial_time_total_s": 1.5 * iteration,
        "objective": objective,
        "objective_per_seed": [objective - 1, objective + 1],
        "episode_return_mean": objective,
        "daily_cost_mean": 100.0 - iteration,
        "safety_mean": 0.5,
        "violation_hours_mean": 2.0,
        "env_steps_this_iter": 192,
        "timers/sample_s": 0.25,
        "node_id": "node-a",
        "node_ip": "10.0.0.1",
        "seed": 0,
        "num_seeds": 2,
        "pid": 1234,
        "date": "2026-01-01",
        **extra,
    }


def _record(trial_id: str, objectives: list[float], status: str = "TERMINATED") -> TrialRecord:
    record = TrialRecord(trial_id=trial_id, status=status, config=dict(CONFIG))
    for i, value in enumerate(objectives, start=1):
        record.add_result(_result(i, value))
    return record


def test_tables_follow_the_schema() -> None:
    records = [_record("b", [1.0, 3.0, 2.0]), _record("a", [0.5], status="TERMINATED")]
    trials, iterations = build_tables(records, META)
    for name, dtype in TRIAL_COLUMNS.items():
        assert trials.schema.field(name).type == dtype, name
    for name, dtype in ITERATION_COLUMNS.items():
        assert iterations.schema.field(name).type == dtype, name
    assert trials.schema.field("param_lr").type == pa.float64()
    assert trials.schema.field("param_train_batch_size").type == pa.int64()
    assert trials.schema.field("param_share_reward").type == pa.bool_()
    assert trials.schema.field("param_policy_sharing").type == pa.string()
    assert trials.schema.field("param_hidden_sizes").type == pa.string()
    assert iterations.schema.field("timers/sample_s").type == pa.float64()
    assert "pid" not in iterations.column_names and "date" not in iterations.column_names
    rows = {r["trial_id"]: r for r in trials.to_pylist()}
    assert list(rows) == ["a", "b"]  # sorted by trial_id
    b = rows["b"]
    assert b["best_objective"] == 3.0 and b["best_iteration"] == 2 and b["last_objective"] == 2.0
    assert b["seeds"] == [0, 1] and b["iterations"] == 3 and b["env_steps"] == 288
    assert b["stopped_early"] is False and rows["a"]["stopped_early"] is True
    assert b["param_hidden_sizes"] == "16x16" and b["param_share_reward"] is True
    assert math.isnan(b["test_daily_cost"]) and b["test_days"] is None
    assert b["wall_time_s"] == pytest.approx(4.5) and b["node_ip"] == "10.0.0.1"
    assert iterations.num_rows == 4


def test_reported_again_iteration_replaces_not_duplicates() -> None:
    record = _record("t", [1.0, 2.0])
    record.add_result(_result(2, 5.0, restores=1))  # retried from the checkpoint of iteration 1
    record.add_result(_result(3, 6.0, restores=1))
    _, iterations = build_tables([record], META)
    rows = iterations.to_pylist()
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    assert rows[1]["objective"] == 5.0 and rows[1]["restores"] == 1.0


def test_param_types_follow_run_config() -> None:
    assert param_type("grad_clip") == pa.float64()
    assert param_type("initial_soc") == pa.float64()
    assert param_type("num_epochs") == pa.int64()
    assert param_type("vertical_protocol") == pa.string()


def test_write_read_roundtrip(tmp_path: Path) -> None:
    records = [_record("x", [1.0, 2.0, 3.0]), _record("y", [4.0], status="RUNNING")]
    assert write_tables(tmp_path, records, META) == (2, 4)
    trials = read_results(tmp_path / TRIALS_FILE, "trials")
    read_results(tmp_path / ITERATIONS_FILE, "iterations")
    assert trials.column("status").to_pylist() == ["TERMINATED", "RUNNING"]
    again = records_from_parquet(tmp_path)
    assert set(again) == {"x", "y"}
    assert sorted(again["x"].rows) == [1, 2, 3]
    assert not list(tmp_path.glob("*.tmp"))


def test_incremental_callback_rewrites_after_each_step(tmp_path: Path) -> None:
    """Events update the records; files are written at the end of Tune's step (after its
    experiment snapshot), so they never show a trial --resume would not know."""
    from tune_grid.search.callbacks import ParquetExportCallback

    callback = ParquetExportCallback(tmp_path, META)
    callback.setup()
    trial = SimpleNamespace(trial_id="t1", config={**CONFIG, "__trial_info__": 1}, path=None)
    trial.status = "RUNNING"
    callback.on_trial_start(0, [trial], trial)
    callback.on_trial_result(0, [trial], trial, _result(1, 1.0))
    assert not (tmp_path / ITERATIONS_FILE).exists()  # not before the step ends
    callback.on_step_end(1, [trial])
    assert read_results(tmp_path / ITERATIONS_FILE, "iterations").num_rows == 1
    callback.on_trial_result(1, [trial], trial, _result(2, 2.0))
    callback.on_step_end(2, [trial])
    assert read_results(tmp_path / ITERATIONS_FILE, "iterations").num_rows == 2
    callback.on_trial_complete(2, [trial], trial)
    callback.on_step_end(3, [trial])
    status = read_results(tmp_path / TRIALS_FILE, "trials").column("status").to_pylist()
    assert status == ["TERMINATED"]
    resumed = ParquetExportCallback(tmp_path, META)  # a resumed driver starts from the files
    resumed.setup()
    other = SimpleNamespace(trial_id="t2", config=dict(CONFIG), path=None, status="RUNNING")
    resumed.on_trial_result(0, [other], other, _result(1, 7.0))
    resumed.on_step_end(1, [trial, other])
    trials = read_results(tmp_path / TRIALS_FILE, "trials").to_pylist()
    assert [t["trial_id"] for t in trials] == ["t1", "t2"]
    assert read_results(tmp_path / ITERATIONS_FILE, "iterations").num_rows == 3


def _fake_experiment(root: Path) -> Path:
    """A Tune-like experiment folder: result.json (one line cut off) plus checkpoint history."""
    directory = root / "exp"
    trial = directory / "trial_abc"
    checkpoint = trial / "checkpoint_000001"
    checkpoint.mkdir(parents=True)
    (trial / "params.json").write_text(json.dumps(CONFIG))
    rows = [_result(1, 1.0, checkpoint_dir_name="checkpoint_000000"), _result(2, 2.0, done=True)]
    # result.json lost iteration 1 (overwritten after a resume) and has a torn last line.
    (trial / "result.json").write_text(json.dumps(rows[1]) + "\n" + '{"iteration": 3, "obj')
    history = [{k: v for k, v in _result(1, 1.0).items() if k not in ("pid", "date")}]
    state = {"iteration": 1, "env_steps": 96, "time_total_s": 1.5, "history": history}
    (checkpoint / "trial_state.json").write_text(json.dumps(state))
    write_search_meta(directory, META)
    return directory


def test_export_from_directory_is_idempotent(tmp_path: Path) -> None:
    directory = _fake_experiment(tmp_path)
    assert export_experiment(directory) == (1, 2)
    first = [(directory / f).read_bytes() for f in (TRIALS_FILE, ITERATIONS_FILE)]
    assert export_experiment(directory) == (1, 2)
    second = [(directory / f).read_bytes() for f in (TRIALS_FILE, ITERATIONS_FILE)]
    assert first == second
    trial = read_results(directory / TRIALS_FILE, "trials").to_pylist()[0]
    assert trial["trial_id"] == "abc" and trial["status"] == "TERMINATED"
    assert trial["param_lr"] == pytest.approx(1e-3)
    assert trial["checkpoint_path"].endswith("trial_abc/checkpoint_000001")


def test_export_of_a_non_experiment_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no Tune trials"):
        export_experiment(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such experiment directory"):
        export_experiment(tmp_path / "missing")
