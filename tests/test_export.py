"""Parquet export: schema, typed params, de-duplication, incremental callback, idempotence."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
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
from tune_grid.results.parts import PARTS_DIR, WRITE_MODES, part_files, read_merged, write_mode
from tune_grid.results.schema import (
    ITERATION_COLUMNS,
    ITERATIONS_FILE,
    TRIAL_COLUMNS,
    TRIALS_FILE,
    ResultsSchemaError,
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


def _trial(trial_id: str = "t1") -> SimpleNamespace:
    return SimpleNamespace(
        trial_id=trial_id, config={**CONFIG, "__trial_info__": 1}, path=None, status="RUNNING"
    )


def test_rewrite_mode_rewrites_after_each_step(tmp_path: Path) -> None:
    """The previous code path (kept for ``bench driver``): events update the records; both
    files are rewritten at the end of Tune's step (after its experiment snapshot)."""
    from tune_grid.search.run.callbacks import ParquetExportCallback

    callback = ParquetExportCallback(tmp_path, META, write_mode="rewrite")
    callback.setup()
    trial = _trial()
    callback.on_trial_start(0, [trial], trial)
    callback.on_trial_result(0, [trial], trial, _result(1, 1.0))
    assert not (tmp_path / ITERATIONS_FILE).exists()  # not before the step ends
    callback.on_step_end(1, [trial])
    assert read_results(tmp_path / ITERATIONS_FILE, "iterations").num_rows == 1
    callback.on_trial_result(1, [trial], trial, _result(2, 2.0))
    callback.on_step_end(2, [trial])
    assert read_results(tmp_path / ITERATIONS_FILE, "iterations").num_rows == 2
    assert not (tmp_path / PARTS_DIR).exists()


def test_parts_mode_appends_only_what_changed(tmp_path: Path) -> None:
    """After the first flush (which writes the two files), a flush writes one pair of part
    files holding only the new rows; the merged view has everything, and a resumed driver
    starts from files plus parts; the end merges and deletes the parts."""
    from tune_grid.search.run.callbacks import ParquetExportCallback

    callback = ParquetExportCallback(tmp_path, META, flush_interval_s=0, merge_time_share=1e-9)
    callback.setup()
    trial, other = _trial("t1"), _trial("t2")
    callback.on_trial_start(0, [trial], trial)
    callback.on_trial_result(0, [trial], trial, _result(1, 1.0))
    callback.on_step_end(1, [trial])
    assert read_results(tmp_path / ITERATIONS_FILE, "iterations").num_rows == 1
    callback.on_step_end(2, [trial])  # nothing changed: nothing written
    assert part_files(tmp_path, "iterations") == []
    for step, (t, i) in enumerate([(trial, 2), (other, 1), (trial, 3)], start=3):
        callback.on_trial_result(step, [trial, other], t, _result(i, float(i)))
        callback.on_step_end(step, [trial, other])
    parts = part_files(tmp_path, "iterations")
    assert [seq for seq, _ in parts] == [1, 2, 3]
    assert [pq.read_table(p).num_rows for _, p in parts] == [1, 1, 1]
    last_trials = pq.read_table(part_files(tmp_path, "trials")[-1][1]).to_pylist()
    assert [(t["trial_id"], t["iterations"]) for t in last_trials] == [("t1", 3)]
    assert read_results(tmp_path / ITERATIONS_FILE, "iterations").num_rows == 1  # base lags
    merged = read_merged(tmp_path, "iterations").to_pylist()
    assert [(r["trial_id"], r["iteration"]) for r in merged] == [
        ("t1", 1),
        ("t1", 2),
        ("t1", 3),
        ("t2", 1),
    ]

    resumed = ParquetExportCallback(tmp_path, META, flush_interval_s=0, merge_time_share=1e-9)
    resumed.setup()
    assert sorted(resumed._records["t1"].rows) == [1, 2, 3]
    resumed.on_trial_result(0, [trial, other], other, _result(2, 9.0))
    resumed.on_step_end(1, [trial, other])  # a resumed driver's first flush merges
    assert part_files(tmp_path, "iterations") == []
    resumed.on_trial_result(1, [trial, other], other, _result(3, 9.0))
    resumed.on_step_end(2, [trial, other])
    assert [seq for seq, _ in part_files(tmp_path, "iterations")] == [4]
    trial.status = other.status = "TERMINATED"
    resumed.on_experiment_end([trial, other])
    assert not list((tmp_path / PARTS_DIR).iterdir())
    trials = read_results(tmp_path / TRIALS_FILE, "trials").to_pylist()
    assert [(t["trial_id"], t["status"], t["iterations"]) for t in trials] == [
        ("t1", "TERMINATED", 3),
        ("t2", "TERMINATED", 3),
    ]
    assert read_results(tmp_path / ITERATIONS_FILE, "iterations").num_rows == 6


def test_parts_mode_flushes_at_most_every_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tune_grid.search.run import callbacks as module

    now = [100.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])
    callback = module.ParquetExportCallback(tmp_path, META, flush_interval_s=5.0)
    callback.setup()
    trial = _trial()
    callback.on_trial_result(0, [trial], trial, _result(1, 1.0))
    callback.on_step_end(1, [trial])
    assert read_results(tmp_path / ITERATIONS_FILE, "iterations").num_rows == 1
    # The next merge waits until merging took at most merge_time_share of the time since.
    callback._merge_s = 1.0  # as if that merge took 1 s: the next one 50 s after it
    now[0] += 4.0
    callback.on_trial_result(1, [trial], trial, _result(2, 2.0))
    callback.on_step_end(2, [trial])
    assert part_files(tmp_path, "iterations") == [] and callback.pending
    now[0] += 1.0
    callback.on_step_end(3, [trial])
    assert len(part_files(tmp_path, "iterations")) == 1 and not callback.pending
    now[0] += 30.0
    callback.on_trial_result(3, [trial], trial, _result(3, 3.0))
    callback.on_step_end(4, [trial])
    assert len(part_files(tmp_path, "iterations")) == 2
    now[0] += 30.0
    callback.on_trial_result(4, [trial], trial, _result(4, 4.0))
    callback.on_step_end(5, [trial])
    assert part_files(tmp_path, "iterations") == []
    assert read_results(tmp_path / ITERATIONS_FILE, "iterations").num_rows == 4


def test_periodic_merge_folds_parts_as_a_rebuild_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the first and the last merge, parts are folded into the two files columnar: the
    files then hold what a rebuild from the driver's records writes (a re-reported iteration
    replaced, not repeated), and the merged parts are gone."""
    from tune_grid.results.parts import merge_parts, parts_through
    from tune_grid.search.run import callbacks as module

    now = [0.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])
    callback = module.ParquetExportCallback(tmp_path, META, flush_interval_s=0)
    callback.setup()
    trials = [_trial("t1"), _trial("t2")]

    def report(step: int, trial: Any, iteration: int, objective: float) -> None:
        callback.on_trial_result(step, trials, trial, _result(iteration, objective))
        callback.on_step_end(step, trials)

    report(1, trials[0], 1, 1.0)  # the first flush rebuilds both files
    assert merge_parts(tmp_path) == 0  # nothing to fold
    callback._merge_s = 1.0  # the next merge is due 50 s after this one
    report(2, trials[0], 2, 2.0)
    report(3, trials[1], 1, 5.0)
    report(4, trials[0], 2, 3.0)  # iteration 2 again (after a restore): replaces the row
    assert len(part_files(tmp_path, "iterations")) == 3
    now[0] += 60.0
    callback.on_trial_complete(5, trials, trials[1])
    callback.on_step_end(5, trials)  # a fourth part (t2's status), then the columnar merge
    assert part_files(tmp_path, "iterations") == part_files(tmp_path, "trials") == []
    assert parts_through(tmp_path, "iterations") == parts_through(tmp_path, "trials") == 4
    assert callback._fold_s is not None  # folded, not rebuilt (the first try of a fold)

    rebuilt = tmp_path / "rebuilt"
    write_tables(rebuilt, callback._records.values(), META)
    for kind, name in (("iterations", ITERATIONS_FILE), ("trials", TRIALS_FILE)):
        folded = read_results(tmp_path / name, kind).to_pylist()
        expected = read_results(rebuilt / name, kind).to_pylist()
        assert json.dumps(folded) == json.dumps(expected), kind  # NaN written as NaN
    rows = read_results(tmp_path / ITERATIONS_FILE, "iterations").to_pylist()
    assert [(r["trial_id"], r["iteration"], r["objective"]) for r in rows] == [
        ("t1", 1, 1.0),
        ("t1", 2, 3.0),
        ("t2", 1, 5.0),
    ]
    statuses = read_results(tmp_path / TRIALS_FILE, "trials").column("status").to_pylist()
    assert statuses == ["RUNNING", "TERMINATED"]


def test_callback_rejects_bad_settings(tmp_path: Path) -> None:
    from tune_grid.search.run.callbacks import ParquetExportCallback

    with pytest.raises(ValueError, match="write_mode must be one of"):
        ParquetExportCallback(tmp_path, META, write_mode="append")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="merge_time_share must be in"):
        ParquetExportCallback(tmp_path, META, merge_time_share=0)


def test_write_mode_names_the_allowed_modes() -> None:
    assert [write_mode(m) for m in WRITE_MODES] == ["parts", "rewrite"]
    with pytest.raises(ValueError, match="one of parts, rewrite, got 'append'"):
        write_mode("append")


def test_read_merged_skips_parts_the_base_includes(tmp_path: Path) -> None:
    """A driver killed between writing the merged files and deleting the parts: the parts the
    files record as merged are not applied again (they would undo a later row)."""
    from tune_grid.results.export import iterations_table
    from tune_grid.results.parts import write_part

    old = _record("x", [1.0])
    write_part(tmp_path, 1, iterations_table([old], META), "iterations")
    new = _record("x", [5.0, 6.0])
    write_tables(tmp_path, [new], META)
    assert read_merged(tmp_path, "iterations").column("objective").to_pylist() == [1.0, 6.0]
    write_tables(tmp_path, [new], META, parts_through=1)
    assert part_files(tmp_path, "iterations") == []
    write_part(tmp_path, 1, iterations_table([old], META), "iterations")  # left behind
    assert read_merged(tmp_path, "iterations").column("objective").to_pylist() == [5.0, 6.0]
    with pytest.raises(ResultsSchemaError, match="no such file"):
        read_merged(tmp_path / "empty", "trials")


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
