"""Helpers for tests that run ``tune-grid search`` as a user does: in its own process, which a
test may kill and resume."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from tune_grid.results.schema import TRIALS_FILE, ResultsSchemaError, read_results

REPO = Path(__file__).resolve().parents[1]


def search_command(space: Path, storage: Path, *extra: str) -> list[str]:
    """``tune-grid search SPACE --storage STORAGE --num-cpus 2 [extra]`` as an argv."""
    return [sys.executable, "-m", "tune_grid.cli", "search", str(space), "--storage",
            str(storage), "--num-cpus", "2", *extra]  # fmt: skip


def cli_env() -> dict[str, str]:
    """The environment with the checkout first on ``PYTHONPATH`` (Ray's workers import it)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def read_trials(results: Path) -> list[dict[str, Any]]:
    """The rows of ``trials.parquet`` so far (none while it does not exist yet)."""
    try:
        return read_results(results / TRIALS_FILE, "trials").to_pylist()
    except ResultsSchemaError:
        return []
