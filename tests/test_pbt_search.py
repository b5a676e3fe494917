"""Real PBT searches on a local Ray: exploits clone checkpoints, the mutated values show up as what
the learners used, the lineage in both Parquet files is consistent with Tune's PBT log, the report
draws it, and a driver killed after an exploit resumes without losing or redoing the lineage."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from search_cli import cli_env, kill_search_when, read_trials, search_command

from tune_grid.results.schema import ITERATIONS_FILE, TRIALS_FILE, read_results

pytestmark = pytest.mark.slow

# PBT can only exploit while two trials train at once. Start-up (a worker, RLlib's build) varies
# by seconds between trials on a busy machine, so each trial trains for longer than that: 30
# iterations of 480 env steps, about 8 s. With 8 iterations of 96 steps (1 s) a trial could finish
# before the next had reported once, and the search ended without an exploit. Four trials, so
# that quantile 0.5 ranks two top and two bottom: Ray clears a top trial's checkpoint when its
# own report ranks in the middle, and with three trials most exploits were skipped for that.
BATCH = 480
STOP = 30 * BATCH
SPACE: dict[str, Any] = {
    "experiment": "pbt",
    "fixed": {
        "train_batch_size": BATCH,
        "minibatch_size": 96,
        "num_epochs": 1,
        "hidden_sizes": [16, 16],
        "num_envs_per_env_runner": 4,
    },
    "space": {"lr": {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-2}},
    "search": {"algorithm": "random", "seed": 1},
    "scheduler": {
        "type": "pbt",
        "time_attr": "env_steps",
        "perturbation_interval": 3 * BATCH,  # a trial restarts on each exploit: a few, not 30
        "quantile_fraction": 0.5,
        "resample_probability": 0.5,
        "hyperparam_mutations": {
            "lr": {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-2},
            "clip_param": {"type": "uniform", "low": 0.1, "high": 0.4},
        },
    },
    "num_samples": 4,
    "max_concurrent_trials": 4,
    "resources_per_trial": {"cpu": 0.5},
    "seeds": 1,
    "stop": {"env_steps": STOP},
    "evaluation": {"enabled": False},
    "checkpoint_num_to_keep": 5,
}


def _id_of_tag(tag: str, trial_ids: list[str]) -> str:
    """Tune's PBT log names trials by tag (``<index>_<params>``); ids end in ``_<index>``."""
    index = int(tag.split("_")[0])
    (found,) = [t for t in trial_ids if int(t.rsplit("_", 1)[1]) == index]
    return found


def check_lineage(results: Path) -> list[dict[str, Any]]:
    """Assert the lineage is consistent across both files and Tune's PBT log; return the exploit
    rows (the first row after each exploit)."""
    trials = {r["trial_id"]: r for r in read_results(results / TRIALS_FILE, "trials").to_pylist()}
    rows = read_results(results / ITERATIONS_FILE, "iterations").to_pylist()
    by_key = {(r["trial_id"], r["iteration"]): r for r in rows}
    assert len(by_key) == len(rows), "one row per trial and iteration"
    exploit_rows = []
    for trial_id, trial in trials.items():
        own = sorted((r for r in rows if r["trial_id"] == trial_id), key=lambda r: r["iteration"])
        # The trial's own iteration counter goes on across exploits: no gap, no repeat.
        assert [r["iteration"] for r in own] == list(range(1, len(own) + 1)), trial_id
        previous = None
        for row in own:
            low, high = 1e-4, 1e-2
            assert low <= row["hp/lr"] <= high and 0.1 <= row["hp/clip_param"] <= 0.4
            exploits = row["exploits"] - (previous["exploits"] if previous else 0)
            assert exploits in (0, 1), (trial_id, row["iteration"])
            if exploits:
                exploit_rows.append(row)
                parent = by_key[(row["parent_trial_id"], row["parent_iteration"])]
                # The weights continue from the parent's checkpoint: its env steps + one batch.
                assert row["env_steps"] == parent["env_steps"] + row["env_steps_this_iter"]
                assert row["parent_trial_id"] != trial_id
            elif previous is not None:
                assert row["parent_trial_id"] == previous["parent_trial_id"]
                assert row["env_steps"] == previous["env_steps"] + row["env_steps_this_iter"]
            previous = row
        last = own[-1]
        assert (trial["exploits"], trial["parent_trial_id"]) == (
            last["exploits"],
            last["parent_trial_id"],
        )
        assert trial["status"] == "TERMINATED" and last["env_steps"] >= STOP
        # The values each learner used at the end are the trial's final config.
        assert math.isclose(last["hp/lr"], trial["param_lr"])
        assert math.isclose(last["hp/clip_param"], trial["param_clip_param"])

    # Tune's PBT log: one line per exploit, [trial tag, clone tag, ..., clone config, new config].
    log = [json.loads(line) for line in (results / "pbt_global.txt").read_text().splitlines()]
    assert len(log) == len(exploit_rows) >= 1
    ids = sorted(trials)
    for trial_id in ids:
        logged = [entry for entry in log if _id_of_tag(entry[0], ids) == trial_id]
        mine = sorted(
            (r for r in exploit_rows if r["trial_id"] == trial_id), key=lambda r: r["iteration"]
        )
        assert len(logged) == len(mine), trial_id
        for entry, row in zip(logged, mine, strict=True):
            assert _id_of_tag(entry[1], ids) == row["parent_trial_id"]
            new_config = entry[5]
            # The mutated values reached the learner in the first iteration after the copy.
            assert math.isclose(row["hp/lr"], new_config["lr"])
            assert math.isclose(row["hp/clip_param"], new_config["clip_param"])
    return exploit_rows


def test_pbt_search_clones_checkpoints_and_mutations_reach_the_learners(tmp_path: Path) -> None:
    from analysis.report import build_report
    from tune_grid.search.pipeline import run_search
    from tune_grid.search.run.tuner import SearchOptions
    from tune_grid.search.spec.space_file import load_space_file

    path = tmp_path / "pbt.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    outcome = run_search(
        load_space_file(path),
        SearchOptions(storage=str(tmp_path / "results"), num_cpus=2, verbose=0),
        space_path=path,
        print_fn=lambda _: None,
    )
    assert outcome.finished
    results = outcome.paths.results_dir
    exploit_rows = check_lineage(results)
    for row in exploit_rows:
        clones = list((results / f"trial_{row['trial_id']}").glob("pbt_clone_*"))
        assert clones and all((c / "seed_0").is_dir() for c in clones)

    report = build_report([results], tmp_path / "report", n_resamples=50)
    assert "lineage of the best trial" in report.read_text()
    assert (tmp_path / "report" / "plots" / "population_pbt.png").exists()


def test_pbt_search_resumes_after_the_driver_is_killed_after_an_exploit(tmp_path: Path) -> None:
    path = tmp_path / "pbt.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    storage = tmp_path / "results"
    results = storage / "pbt"
    kill_search_when(
        search_command(path, storage),
        tmp_path,
        lambda: any(r["exploits"] for r in read_trials(results)),
        timeout=300,
        what="an exploit",
    )
    before = read_trials(results)
    assert any(r["status"] != "TERMINATED" for r in before), "killed after the search ended"

    resumed = subprocess.run(
        search_command(path, storage, "--resume"),
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    after = read_trials(results)
    assert sorted(r["trial_id"] for r in after) == sorted(r["trial_id"] for r in before)
    # The exploit seen before the kill is still in the lineage afterwards.
    exploited = {r["trial_id"] for r in before if r["exploits"]}
    rows = read_results(results / ITERATIONS_FILE, "iterations").to_pylist()
    assert exploited <= {r["trial_id"] for r in rows if r["exploits"]}
    with (results / "pbt_global.txt").open() as handle:
        assert sum(1 for _ in handle) >= len(exploited)
    _check_after_resume(results)


def _check_after_resume(results: Path) -> None:
    """As :func:`check_lineage`, except the PBT log: an exploit decided just before the kill may
    be logged though the trial resumed from its own earlier checkpoint (Tune's state was older)."""
    trials = {r["trial_id"]: r for r in read_results(results / TRIALS_FILE, "trials").to_pylist()}
    rows = read_results(results / ITERATIONS_FILE, "iterations").to_pylist()
    by_key = {(r["trial_id"], r["iteration"]): r for r in rows}
    for trial_id, trial in trials.items():
        own = sorted((r for r in rows if r["trial_id"] == trial_id), key=lambda r: r["iteration"])
        assert [r["iteration"] for r in own] == list(range(1, len(own) + 1)), trial_id
        assert trial["status"] == "TERMINATED" and own[-1]["env_steps"] >= STOP
        assert trial["exploits"] == own[-1]["exploits"]
        for previous, row in zip(own, own[1:], strict=False):
            if row["exploits"] > previous["exploits"]:
                parent = by_key[(row["parent_trial_id"], row["parent_iteration"])]
                assert row["env_steps"] == parent["env_steps"] + row["env_steps_this_iter"]
            else:
                assert row["env_steps"] == previous["env_steps"] + row["env_steps_this_iter"]
