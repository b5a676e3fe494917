"""A search repeats itself: the same search file in two fresh ``tune-grid search`` processes, whose
own string-hash seeds differ, trains the same trajectories (RLlib visits an episode's agents in
the order of a set of agent-id strings, which follows the worker process's hash seed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from search_cli import cli_env, search_command
from tiny import tiny_search

from tune_grid.results.schema import ITERATIONS_FILE, read_results

pytestmark = pytest.mark.slow

SEEDED = ("objective", "episode_return_mean", "daily_cost_mean", "val_objective")


def _iterations(tmp_path: Path, name: str, hash_seed: str) -> list[dict[str, float]]:
    space = tmp_path / "tiny.yaml"
    space.write_text(yaml.safe_dump(tiny_search(num_samples=1, stop={"env_steps": 3 * 96})))
    env = {**cli_env(), "PYTHONHASHSEED": hash_seed}  # the driver's seed; workers must not care
    storage = tmp_path / name
    proc = subprocess.run(
        search_command(space, storage),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = read_results(storage / "tiny" / ITERATIONS_FILE, "iterations").to_pylist()
    return sorted(rows, key=lambda r: r["iteration"])


def test_a_search_repeats_in_a_new_process(tmp_path: Path) -> None:
    first = _iterations(tmp_path, "a", "1")
    second = _iterations(tmp_path, "b", "2")
    assert [r["iteration"] for r in first] == [1, 2, 3] == [r["iteration"] for r in second]
    for a, b in zip(first, second, strict=True):
        for key in SEEDED:
            # Equal up to the warm-started power flow's last bits (see test_training).
            assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-9), (a["iteration"], key)
