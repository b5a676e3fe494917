"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

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
