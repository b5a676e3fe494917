"""Snapshot and repair of Tune's experiment state for ``--resume`` (no Ray run; fast)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest

from tune_grid.results.export import SearchMeta, TrialRecord, merge_records
from tune_grid.results.schema import TRIALS_FILE, read_results
from tune_grid.search.run.resume_state import (
    DISCARDED_DIR,
    SNAPSHOT_FILE,
    ResumeStateError,
    repair_tune_state,
    snapshot_tune_state,
    staging_dir_of,
)

SESSION = "2026-01-01_10-00-00"
LATER = "2026-01-01_11-00-00"


def _write_state(directory: Path, session: str, iteration: int, trial_ids: list[str]) -> None:
    """Tune-shaped state files of one save (experiment state + search algorithm state)."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        "trial_data": [[json.dumps({"trial_id": t, "status": "RUNNING"}), "{}"] for t in trial_ids],
        "runner_data": {"_iteration": iteration, "_session_str": session},
        "stats": {},
    }
    (directory / f"experiment_state-{session}.json").write_text(json.dumps(state))
    gen = {"counter": len(trial_ids), "total_samples": 3, "finished": False}
    (directory / f"search_gen_state-{session}.json").write_bytes(pickle.dumps(gen))
    (directory / f"searcher-state-{session}.pkl").write_bytes(pickle.dumps({"ids": trial_ids}))


def _trial_ids(directory: Path, session: str) -> list[str]:
    state = json.loads((directory / f"experiment_state-{session}.json").read_text())
    return [json.loads(t)["trial_id"] for t, _ in state["trial_data"]]


def test_snapshot_copies_the_newest_session_once(tmp_path: Path) -> None:
    staging, results = tmp_path / "staging", tmp_path / "results"
    results.mkdir()
    _write_state(staging, "2025-12-31_09-00-00", 1, ["old"])  # downloaded on a resume
    _write_state(staging, SESSION, 4, ["a", "b"])
    (staging / ".1234-tmp-searcher-state-x.pkl").write_bytes(b"partial")
    signature = snapshot_tune_state(staging, results)
    payload = pickle.loads((results / SNAPSHOT_FILE).read_bytes())
    assert payload["session"] == SESSION
    assert sorted(payload["files"]) == [
        f"experiment_state-{SESSION}.json",
        f"search_gen_state-{SESSION}.json",
        f"searcher-state-{SESSION}.pkl",
    ]
    (results / SNAPSHOT_FILE).unlink()
    assert snapshot_tune_state(staging, results, signature) == signature
    assert not (results / SNAPSHOT_FILE).exists()  # unchanged staging files: nothing written
    assert snapshot_tune_state(tmp_path / "none", results) is None


def test_snapshot_copies_a_later_save_after_an_unchanged_check(tmp_path: Path) -> None:
    staging, results = tmp_path / "staging", tmp_path / "results"
    results.mkdir()
    _write_state(staging, SESSION, 4, ["a"])
    first = snapshot_tune_state(staging, results)
    assert snapshot_tune_state(staging, results, first) == first  # one stat, nothing copied
    _write_state(staging, SESSION, 5, ["a", "b"])  # Tune's next save
    second = snapshot_tune_state(staging, results, first)
    assert second != first
    payload = pickle.loads((results / SNAPSHOT_FILE).read_bytes())
    state = json.loads(payload["files"][f"experiment_state-{SESSION}.json"])
    assert [json.loads(t)["trial_id"] for t, _ in state["trial_data"]] == ["a", "b"]


def _snapshot_of(tmp_path: Path, iteration: int, trial_ids: list[str]) -> Path:
    staging, results = tmp_path / "staging", tmp_path / "results"
    _write_state(staging, SESSION, iteration, trial_ids)
    results.mkdir(exist_ok=True)
    snapshot_tune_state(staging, results)
    return results


def test_repair_replaces_emptied_state_files(tmp_path: Path) -> None:
    results = _snapshot_of(tmp_path, 7, ["a", "b", "c"])
    for name in ("experiment_state", "search_gen_state"):
        (results / f"{name}-{SESSION}.json").write_bytes(b"")
    (results / f"searcher-state-{SESSION}.pkl").write_bytes(b"")
    report = repair_tune_state(results)
    assert report.from_snapshot and report.trial_ids == ("a", "b", "c")
    assert len(report.restored) == 3
    assert _trial_ids(results, SESSION) == ["a", "b", "c"]
    assert pickle.loads((results / f"searcher-state-{SESSION}.pkl").read_bytes()) == {
        "ids": ["a", "b", "c"]
    }
    assert not repair_tune_state(results).changed  # idempotent


def test_repair_replaces_a_stale_or_half_copied_state(tmp_path: Path) -> None:
    results = _snapshot_of(tmp_path, 7, ["a", "b", "c"])
    _write_state(results, SESSION, 3, ["a"])  # Tune's background copy lagged behind
    assert repair_tune_state(results).restored
    assert _trial_ids(results, SESSION) == ["a", "b", "c"]

    _write_state(results, SESSION, 7, ["a", "b", "c"])
    path = results / f"searcher-state-{SESSION}.pkl"
    path.write_bytes(path.read_bytes()[:-3])  # cut off mid-copy
    assert repair_tune_state(results).restored == [path.name]
    assert pickle.loads(path.read_bytes()) == {"ids": ["a", "b", "c"]}


def test_repair_prefers_the_snapshot_to_a_copy_that_mixes_two_saves(tmp_path: Path) -> None:
    """Tune's thread copied the next step's trial list with the previous step's searcher."""
    results = _snapshot_of(tmp_path, 7, ["a", "b"])
    _write_state(results, SESSION, 8, ["a", "b", "c"])
    (results / f"search_gen_state-{SESSION}.json").write_bytes(
        (tmp_path / "staging" / f"search_gen_state-{SESSION}.json").read_bytes()
    )
    report = repair_tune_state(results)
    assert report.from_snapshot and report.trial_ids == ("a", "b")
    assert _trial_ids(results, SESSION) == ["a", "b"]


def test_a_failed_snapshot_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tune_grid.search.run import resume_state
    from tune_grid.search.run.callbacks import ParquetExportCallback

    staging = tmp_path / "staging"
    _write_state(staging, SESSION, 2, ["t1"])
    trial = SimpleNamespace(
        trial_id="t1",
        config={"seed": 0},
        path=None,
        status="RUNNING",
        storage=SimpleNamespace(experiment_driver_staging_path=str(staging)),
    )
    callback = ParquetExportCallback(tmp_path, SearchMeta(experiment="x"), flush_interval_s=0)
    callback.setup()
    callback.on_step_end(1, [trial])
    assert (tmp_path / SNAPSHOT_FILE).exists()

    def fail(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(resume_state, "snapshot_tune_state", fail)
    with pytest.warns(UserWarning, match="snapshot failed"):
        callback.on_step_end(2, [trial])
    assert not (tmp_path / SNAPSHOT_FILE).exists()


def test_repair_moves_aside_a_broken_later_session(tmp_path: Path) -> None:
    """A resumed driver killed during its first copy: its session must not shadow the last one."""
    results = _snapshot_of(tmp_path, 7, ["a", "b", "c"])
    _write_state(results, SESSION, 7, ["a", "b", "c"])
    _write_state(results, LATER, 7, ["a", "b", "c"])
    (results / f"experiment_state-{LATER}.json").write_bytes(b'{"trial_data": [')
    report = repair_tune_state(results)
    assert report.session == SESSION and len(report.discarded) == 3
    assert not list(results.glob(f"*{LATER}*"))
    assert len(list((results / DISCARDED_DIR).glob(f"*{LATER}*"))) == 3


def test_repair_without_snapshot_uses_the_newest_complete_session(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _write_state(results, SESSION, 5, ["a", "b"])
    _write_state(results, LATER, 6, ["a", "b"])
    (results / f"search_gen_state-{LATER}.json").write_bytes(b"")
    report = repair_tune_state(results)
    assert report.session == SESSION and not report.from_snapshot
    (results / f"experiment_state-{SESSION}.json").write_bytes(b"")
    with pytest.raises(ResumeStateError, match="no complete Tune experiment state"):
        repair_tune_state(results)


def test_callback_snapshots_before_writing_parquet(tmp_path: Path) -> None:
    from tune_grid.search.run.callbacks import ParquetExportCallback

    staging = tmp_path / "staging"
    _write_state(staging, SESSION, 2, ["t1"])
    storage = SimpleNamespace(experiment_driver_staging_path=str(staging))
    trial = SimpleNamespace(
        trial_id="t1", config={"seed": 0}, path=None, status="RUNNING", storage=storage
    )
    assert staging_dir_of([trial]) == staging
    callback = ParquetExportCallback(tmp_path, SearchMeta(experiment="x"))
    callback.setup()
    callback.on_trial_start(0, [trial], trial)
    callback.on_step_end(1, [trial])
    assert (tmp_path / SNAPSHOT_FILE).exists() and (tmp_path / TRIALS_FILE).exists()
    assert repair_tune_state(tmp_path).trial_ids == ("t1",)


def test_merge_keeps_rows_the_rebuild_lacks() -> None:
    def record(trial_id: str, status: str, iterations: list[int], objective: float) -> TrialRecord:
        rec = TrialRecord(trial_id=trial_id, status=status, config={"seed": 0})
        for i in iterations:
            rec.add_result({"iteration": i, "objective": objective})
        return rec

    existing = {
        "a": record("a", "TERMINATED", [1, 2], 1.0),
        "ghost": record("ghost", "RUNNING", [1], 1.0),
        "done": record("done", "TERMINATED", [1], 1.0),
    }
    rebuilt = {"a": record("a", "TERMINATED", [2, 3], 2.0), "b": record("b", "RUNNING", [1], 3.0)}
    merged = merge_records(existing, rebuilt)
    assert sorted(merged) == ["a", "b", "done", "ghost"]
    assert sorted(merged["a"].rows) == [1, 2, 3]
    assert merged["a"].rows[1]["objective"] == 1.0 and merged["a"].rows[2]["objective"] == 2.0
    assert merged["ghost"].status == "ERROR"  # Tune no longer knows it: it cannot continue
    assert merged["done"].status == "TERMINATED" and merged["b"].status == "RUNNING"


def test_final_export_merges_into_existing_files(tmp_path: Path) -> None:
    from tune_grid.results.export import export_experiment, write_tables

    meta = SearchMeta(experiment="exp")
    ghost = TrialRecord(trial_id="ghost", status="TERMINATED", config={"seed": 0})
    ghost.add_result({"iteration": 1, "objective": 1.0})
    write_tables(tmp_path, [ghost], meta)
    trial_dir = tmp_path / "trial_abc"
    trial_dir.mkdir()
    (trial_dir / "result.json").write_text(
        json.dumps({"training_iteration": 1, "objective": 2.0, "done": True}) + "\n"
    )
    assert export_experiment(tmp_path, meta=meta, merge=True) == (2, 2)
    ids = read_results(tmp_path / TRIALS_FILE, "trials").column("trial_id").to_pylist()
    assert ids == ["abc", "ghost"]
    assert export_experiment(tmp_path, meta=meta) == (1, 1)  # a plain rebuild


def test_optuna_orphans_are_closed_on_restore(tmp_path: Path) -> None:
    import optuna

    from tune_grid.search.spec.resumable_optuna import ResumableOptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"

    def searcher() -> ResumableOptunaSearch:
        return ResumableOptunaSearch(
            space={"x": optuna.distributions.FloatDistribution(0.0, 1.0)},
            metric="objective",
            mode="max",
            study_name="s",
            storage=optuna.storages.RDBStorage(url),
        )

    first = searcher()
    assert first.suggest("t1") is not None
    saved = tmp_path / "searcher-state.pkl"
    first.save(str(saved))  # Tune's state knows t1 only
    assert first.suggest("t2") is not None  # asked after the save, then the driver died
    resumed = searcher()
    resumed.restore(str(saved))
    states = {t.number: t.state for t in optuna.load_study(study_name="s", storage=url).trials}
    assert states == {0: optuna.trial.TrialState.RUNNING, 1: optuna.trial.TrialState.FAIL}
    resumed.on_trial_complete("t1", {"objective": 1.0, "training_iteration": 1})
    study = optuna.load_study(study_name="s", storage=url)
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE
