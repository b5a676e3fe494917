"""Resume: SIGKILL the ``tune-grid search`` driver after a trial finished, then ``--resume``.

No trial may be lost or duplicated and finished trials must not run again. The second case also
empties Tune's newest state files in the experiment folder, as a kill during Tune's background
copy of them leaves them (issue 4: the resumed search then silently started a new experiment).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from search_cli import cli_env, kill_search_when, read_trials, search_command

from tune_grid.results.schema import ITERATIONS_FILE, read_results

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SPACE = {
    "experiment": "resume",
    "fixed": {
        "train_batch_size": 96,
        "minibatch_size": 32,
        "num_epochs": 1,
        "hidden_sizes": [16, 16],
        "num_envs_per_env_runner": 4,
    },
    "space": {
        "lr": {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-2},
        "share_reward": {"type": "bool"},
    },
    "search": {"algorithm": "optuna", "seed": 3, "n_startup_trials": 2},
    "scheduler": {"type": "fifo"},
    "num_samples": 3,
    "max_concurrent_trials": 1,
    "seeds": 1,
    "stop": {"training_iteration": 3},
    "evaluation": {"enabled": False},
}


def _mid_second_trial(rows: list[dict]) -> bool:
    """A trial finished and the next one is mid-training (or the window was missed)."""
    finished = [r for r in rows if r["status"] == "TERMINATED"]
    running = [r for r in rows if r["status"] == "RUNNING" and r["iterations"] >= 1]
    return (bool(finished) and bool(running)) or 2 <= len(finished) < SPACE["num_samples"]


def _third_trial_started(rows: list[dict]) -> bool:
    """Two trials finished and the last one started (the moment of the CI failure, issue 4)."""
    finished = [r for r in rows if r["status"] == "TERMINATED"]
    return len(finished) >= 2 and len(rows) == SPACE["num_samples"]


def _cut_tune_state(results: Path) -> list[str]:
    """Empty the newest Tune state files, as a driver killed while Tune's background thread
    copies them from its staging folder leaves them (seen as 0-byte files during a search)."""
    cut = []
    for pattern in ("experiment_state-*.json", "search_gen_state-*.json", "searcher-state-*.pkl"):
        newest = max(results.glob(pattern))
        newest.write_bytes(b"")
        cut.append(newest.name)
    return cut


@pytest.mark.parametrize(
    ("ready_to_kill", "cut_state"),
    [(_mid_second_trial, False), (_third_trial_started, True)],
    ids=["mid-second-trial", "third-started-state-cut"],
)
def test_resume_after_killing_the_driver(
    tmp_path: Path, ready_to_kill: Callable[[list[dict]], bool], cut_state: bool
) -> None:
    space = tmp_path / "resume.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    storage = tmp_path / "results"
    results = storage / "resume"
    kill_search_when(
        search_command(space, storage),
        tmp_path,
        lambda: ready_to_kill(read_trials(results)),
        timeout=240,
        what="the kill moment",
    )

    before = read_trials(results)
    finished_before = {r["trial_id"] for r in before if r["status"] == "TERMINATED"}
    iterations_before = read_results(results / ITERATIONS_FILE, "iterations").to_pylist()
    finished_rows = {
        (r["trial_id"], r["iteration"]): r["time_total_s"]
        for r in iterations_before
        if r["trial_id"] in finished_before
    }
    assert finished_before and finished_rows
    if cut_state:
        _cut_tune_state(results)

    # A plain rerun refuses to overwrite; --resume continues.
    again = subprocess.run(
        search_command(space, storage), cwd=tmp_path, env=cli_env(), capture_output=True, text=True
    )
    assert again.returncode == 2 and "--resume" in again.stderr
    resumed = subprocess.run(
        search_command(space, storage, "--resume"),
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=400,
    )
    output = resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert resumed.returncode == 0, output
    assert "Failed to restore the run state" not in resumed.stderr, output
    if cut_state:
        assert "restored 3 trials from the last step's snapshot" in resumed.stdout, output

    after = read_trials(results)
    ids = [r["trial_id"] for r in after]
    assert len(ids) == len(set(ids)) == SPACE["num_samples"], ids
    assert {r["trial_id"] for r in before} <= set(ids), (before, after)
    assert all(r["status"] == "TERMINATED" and r["iterations"] == 3 for r in after), after
    rows = read_results(results / ITERATIONS_FILE, "iterations").to_pylist()
    for trial_id in ids:
        assert [r["iteration"] for r in rows if r["trial_id"] == trial_id] == [1, 2, 3]
    # Finished trials were not run again: their iteration rows are unchanged.
    for r in rows:
        key = (r["trial_id"], r["iteration"])
        if key in finished_rows:
            assert r["time_total_s"] == finished_rows[key]

    import optuna

    study = optuna.load_study(study_name="resume", storage=f"sqlite:///{results / 'optuna.db'}")
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == SPACE["num_samples"], states
    assert optuna.trial.TrialState.RUNNING not in states, states
