"""Resume: SIGKILL the ``tune-grid search`` driver after a trial finished, then ``--resume``.

No trial may be lost or duplicated and finished trials must not run again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tune_grid.results.schema import ITERATIONS_FILE, TRIALS_FILE, ResultsSchemaError, read_results

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


def _command(space: Path, storage: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tune_grid.cli_search",
        "search",
        str(space),
        "--storage",
        str(storage),
        "--num-cpus",
        "2",
        *extra,
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def _trials(results: Path) -> list[dict]:
    try:
        return read_results(results / TRIALS_FILE, "trials").to_pylist()
    except ResultsSchemaError:
        return []


def _ready_to_kill(results: Path) -> bool:
    """A trial finished and the next one is mid-training (or the window was missed)."""
    rows = _trials(results)
    finished = [r for r in rows if r["status"] == "TERMINATED"]
    running = [r for r in rows if r["status"] == "RUNNING" and r["iterations"] >= 1]
    return (bool(finished) and bool(running)) or 2 <= len(finished) < SPACE["num_samples"]


@pytest.mark.skip(
    reason="known race, issue 4 open: after a SIGKILL the resumed search sometimes knows fewer "
    "trials than trials.parquet showed (seen 1 of 3 in a clean-clone CI run)"
)
def test_resume_after_killing_the_driver(tmp_path: Path) -> None:
    space = tmp_path / "resume.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    storage = tmp_path / "results"
    results = storage / "resume"
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(
        _command(space, storage),
        cwd=tmp_path,
        env=_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not _ready_to_kill(results):
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no trial finished in time"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        time.sleep(3)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # Ray processes the killed driver started
        log.close()

    before = _trials(results)
    finished_before = {r["trial_id"] for r in before if r["status"] == "TERMINATED"}
    iterations_before = read_results(results / ITERATIONS_FILE, "iterations").to_pylist()
    finished_rows = {
        (r["trial_id"], r["iteration"]): r["time_total_s"]
        for r in iterations_before
        if r["trial_id"] in finished_before
    }
    assert finished_before and finished_rows

    # A plain rerun refuses to overwrite; --resume continues.
    again = subprocess.run(
        _command(space, storage), cwd=tmp_path, env=_env(), capture_output=True, text=True
    )
    assert again.returncode == 2 and "--resume" in again.stderr
    resumed = subprocess.run(
        _command(space, storage, "--resume"),
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

    after = _trials(results)
    ids = [r["trial_id"] for r in after]
    assert len(ids) == len(set(ids)) == SPACE["num_samples"], ids
    assert {r["trial_id"] for r in before} <= set(ids)
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
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == SPACE["num_samples"]
