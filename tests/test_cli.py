"""The `tune-grid` command line: wiring, one-line errors, small real runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest


def test_help_lists_every_command(run_cli: Callable[..., Any]) -> None:
    out = run_cli("--help").stdout
    for command in (
        "quickstart",
        "train",
        "evaluate",
        "search",
        "export",
        "report",
        "wandb-sweep",
        "baselines",
        "bench",
        "data",
    ):
        assert command in out, command


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("train", "--lr", "-1"), "lr must be in (0, 1], got -1.0"),
        (("train", "--minibatch-size", "9000"), "minibatch_size (9000) must be <="),
        (("train", "--learning-rate", "0.1"), "unrecognized arguments: --learning-rate"),
        (("report", "does/not/exist"), "does/not/exist"),
        (("search", "does/not/exist.yaml"), "does/not/exist.yaml"),
        (("evaluate", "does/not/exist"), "does/not/exist"),
        (("baselines", "--days", "0"), "days must be in [1, 366]"),
        (("data", "build", "missing.parquet"), "missing.parquet: no such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: tuple[str, ...], message: str, run_cli: Callable[..., Any]
) -> None:
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert message in lines[0]


def test_malformed_search_yaml_names_the_file(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment: x\nspace: {lr: {type: loguniform, low: 1e-3\n")
    result = run_cli("search", str(bad))
    assert result.returncode == 2
    assert str(bad) in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_baselines_command_prints_the_three_policies(run_cli: Callable[..., Any]) -> None:
    result = run_cli("baselines", "--days", "2")
    assert result.returncode == 0, result.stderr
    for name in ("do_nothing", "random", "rule_based"):
        assert name in result.stdout


def test_bench_env_prints_every_backend_and_the_ratios(run_cli: Callable[..., Any]) -> None:
    result = run_cli("bench", "env", "--steps", "300", "--pandapower-steps", "5", "--rounds", "2")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line}
    for backend in ("fast", "lightsim2grid", "pandapower"):
        assert backend in rows
    assert rows["fast"][1] == "300" and rows["pandapower"][1] == "5"
    ratio = float(result.stdout.split("ratio of median steps): ")[1].split("x")[0])
    assert ratio > 1.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "0"], "error: steps must be at least the number of rounds (5), got 0"),
        (["--rounds", "0"], "error: need rounds >= 1 and warmup >= 0, got 0 and 48"),
        (["--pandapower-steps", "2"], "error: pandapower steps must be at least the number"),
    ],
)
def test_bench_env_rejects_bad_counts_in_one_line(
    args: list[str], message: str, run_cli: Callable[..., Any]
) -> None:
    result = run_cli("bench", "env", *args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(message)


def test_data_build_reproduces_the_packaged_profiles(
    raw_data_path: Path, tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    out = tmp_path / "profiles.parquet"
    result = run_cli("data", "build", str(raw_data_path), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "17544 hourly rows (731 days)" in result.stdout
    from tune_grid.grid.data import load_profiles

    pd.testing.assert_frame_equal(pd.read_parquet(out), load_profiles())
