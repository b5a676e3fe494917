"""Helpers for tests that run ``tune-grid search`` as a user does: in its own process, which a
test may kill and resume."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
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


def kill_search_when(
    command: list[str],
    cwd: Path,
    ready: Callable[[], bool],
    *,
    timeout: float,
    what: str,
) -> None:
    """Start ``command`` in its own session, wait until ``ready()``, then SIGKILL the driver and,
    a moment later, every process it started (the local Ray). The driver's output goes to
    ``cwd/first.log``; a driver that exits before the moment, or a moment that does not come in
    ``timeout`` seconds, fails the test with its log."""
    log_path = cwd / "first.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            command, cwd=cwd, env=cli_env(), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + timeout
            while not ready():
                assert proc.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, f"{what} did not come in time"
                time.sleep(0.2)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            time.sleep(3)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the Ray processes the driver started
