"""`tune-grid bench train --quick`: the variants run end to end and the table is complete."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
ROWS = (
    "(a) RLlib defaults",
    "(b) tune-grid defaults",
    "(r) (b), RLlib's loops",
    "(b1) tune-grid, env by env",
    "(c) tune-grid, no-op env",
    "(e) centralized critic",
)


@pytest.mark.slow
def test_bench_train_quick_prints_every_row_and_finite_ratios() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-m", "tune_grid.cli", "bench", "train", "--quick"]
    argv += ["--iterations", "1", "--warmup", "0"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=240, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    for label in ROWS:
        row = [line for line in lines if line.startswith(label)]
        assert len(row) == 1, (label, proc.stdout)
        numbers = [float(x) for x in row[0][len(label) :].split()]
        # envs, fragment, threads, build s, 3 wall s, 3 CPU s, steps/s, updates, ms/update
        assert len(numbers) == 13 and all(math.isfinite(x) for x in numbers), row[0]
    speedups = [line for line in lines if line.startswith("speed-up (a)/(b)")]
    assert len(speedups) == 2
    ratios = [float(x) for line in speedups for x in re.findall(r"([0-9.]+)x", line)]
    assert len(ratios) == 7 and all(math.isfinite(r) and r > 0 for r in ratios), speedups
    batched = [line for line in lines if line.startswith("batched env stepping (b1)/(b)")]
    assert len(batched) == 1 and len(re.findall(r"[0-9.]+x", batched[0])) == 2, batched
    share = [line for line in lines if line.startswith("env share")]
    assert len(share) == 1 and len(re.findall(r"-?[0-9.]+%", share[0])) == 2, share
    lean = [line for line in lines if line.startswith("lean loops (r)/(b)")]
    assert len(lean) == 2 and all(len(re.findall(r"[0-9.]+x", line)) >= 3 for line in lean), lean
    central = [line for line in lines if line.startswith("centralized critic (e)/(b)")]
    assert len(central) == 1 and len(re.findall(r"[0-9.]+x", central[0])) == 2, central


def test_bench_train_help_is_fast_and_rejects_bad_options() -> None:
    from tune_grid.cli import build_parser

    args = build_parser().parse_args(["bench", "train", "--quick", "--train-batch-size", "960"])
    assert args.quick and args.iterations == 3 and args.train_batch_size == "960"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "train", "--iterations", "x"])


def test_bench_train_rejects_unknown_variants_before_starting_ray() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-m", "tune_grid.cli", "bench", "train", "--variants", "b,x"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: unknown variants ['x']; allowed: a, a1, b, r, b1, c, d, e"
    ]
