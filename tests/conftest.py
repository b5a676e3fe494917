"""Shared fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

REPO_ROOT = Path(__file__).resolve().parents[1]
RAW_DATA = REPO_ROOT.parent / "shared" / "data" / "caiso_2023_2024_hourly.parquet"


@pytest.fixture(scope="session")
def raw_data_path() -> Path:
    if not RAW_DATA.exists():
        pytest.skip(f"raw CAISO data not found at {RAW_DATA}")
    return RAW_DATA


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    """A local 2-CPU Ray for the module's tests, with the env registered (reused if running)."""
    import ray

    from tune_grid.training.rllib_env import register_rllib_env

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    register_rllib_env()
    yield
    if started:
        ray.shutdown()


@pytest.fixture
def tiny_run() -> dict[str, Any]:
    """A copy of the tiny run-config keys (``tests/tiny.py``)."""
    from tiny import TINY_RUN

    return dict(TINY_RUN)


@pytest.fixture
def tiny_search() -> Callable[..., dict[str, Any]]:
    """``tiny_search(**changes)``: a tiny search file as a dict (``tests/tiny.py``)."""
    from tiny import tiny_search as make

    return make


def _run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tune_grid.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_cli(*args, cwd=None)``: ``python -m tune_grid.cli ARGS`` in a fresh process, output
    captured (what a user typing ``tune-grid ARGS`` gets)."""
    return _run_cli
