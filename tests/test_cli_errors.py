"""Every subcommand, given bad input, says what is wrong in one line and exits 2: no traceback.

Each case is a real invocation of ``python -m tune_grid.cli`` in a fresh process, so whatever a
user can type is covered, not just what a handler's unit test calls.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

try:
    from tests import fixtures_results as fx
except ModuleNotFoundError:  # pytest run from inside tests/
    import fixtures_results as fx  # type: ignore[no-redef]

from tune_grid.cli.commands import build_parser


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished experiment's results folder (trials.parquet, iterations.parquet)."""
    root = tmp_path_factory.mktemp("results")
    return fx.two_experiments(root)[0]


@pytest.fixture(scope="module")
def bad_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spaces") / "broken.yaml"
    path.write_text("experiment: x\nspace: {lr: {type: loguniform, low: 1e-3\n")
    return path


def cases(results: Path, bad_yaml: Path) -> list[tuple[tuple[str, ...], str]]:
    """(arguments, what the one line must contain) for every subcommand."""
    return [
        (("quickstart", "--storage", "/dev/null/x"), "storage: cannot create /dev/null/x"),
        (("train", "--hidden-sizes", "64xx"), "expected sizes like 256x256, got '64xx'"),
        (("train", "--algorithm", "sac"), "algorithm: got 'sac', allowed: one of 'ppo'"),
        (("evaluate", str(results)), "not a tune-grid checkpoint"),
        (("search", str(bad_yaml)), str(bad_yaml)),
        (("export", str(results / "nothing")), "nothing"),
        (("wandb-sweep", str(bad_yaml)), str(bad_yaml)),
        (("oracle", "--days", "400"), "days must be in [1, 366], got 400"),
        (("report", str(results / "trials.parquet")), "trials.parquet"),
        (("outcomes", str(results), "--by", "bogus"), "--by bogus: not parameters"),
        (("outcomes", str(results), "--by", "lr", "--days", "400"), "days must be in [1, 366]"),
        (("baselines", "--days", "0"), "days must be in [1, 366]"),
        (("bench", "env", "--steps", "0"), "steps must be at least"),
        (("bench", "train", "--iterations", "0"), "need iterations >= 1"),
        (("bench", "search", "--repetitions", "0"), "--repetitions must be >= 1, got 0"),
        (
            ("bench", "search", "--replay", str(results / "none.parquet")),
            "none.parquet: no such replay table",
        ),
        (("bench", "driver", "--trials", "0"), "--trials must be >= 1, got 0"),
        (("bench", "memory", "--iterations", "0"), "--iterations must be >= 1, got 0"),
        (("data", "build", str(results / "raw.parquet")), "no such file"),
    ]


def test_the_cases_cover_every_subcommand(tmp_path: Path) -> None:
    parser = build_parser()
    top = next(a for a in parser._actions if a.dest == "command")
    commands = set(top.choices)  # type: ignore[arg-type]
    bench = top.choices["bench"]  # type: ignore[index]
    bench_action = next(a for a in bench._actions if a.dest == "bench")
    covered = {args[0] for args, _ in cases(tmp_path, tmp_path)}
    assert commands == covered
    covered_bench = {args[1] for args, _ in cases(tmp_path, tmp_path) if args[0] == "bench"}
    assert set(bench_action.choices) == covered_bench  # type: ignore[arg-type]


@pytest.mark.parametrize("index", range(len(cases(Path("."), Path(".")))))
def test_bad_input_is_one_line_exit_2_and_no_traceback(
    index: int, results_dir: Path, bad_yaml: Path, tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    args, message = cases(results_dir, bad_yaml)[index]
    result = run_cli(*args, cwd=tmp_path, timeout=300)
    assert result.returncode == 2, (args, result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, (args, result.stderr)
    assert message in lines[0], (args, lines[0])
