"""One exception tree: every tune-grid error derives from TuneGridError; main prints it once."""

from __future__ import annotations

import argparse
import ast
import importlib
from pathlib import Path

import pytest

from tune_grid.cli import main
from tune_grid.cli.commands import build_parser
from tune_grid.config import ConfigError
from tune_grid.errors import TuneGridError

REPO = Path(__file__).resolve().parents[1]


def _exception_classes() -> list[tuple[str, str]]:
    """(module, class) of every class named ``*Error`` defined in tune_grid/ and analysis/."""
    found = []
    for root in ("tune_grid", "analysis"):
        for path in sorted((REPO / root).rglob("*.py")):
            module = ".".join(path.relative_to(REPO).with_suffix("").parts)
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                    found.append((module, node.name))
    return found


def test_the_known_errors_are_all_found() -> None:
    names = {name for _, name in _exception_classes()}
    assert {
        "ConfigError",
        "SpaceFileError",
        "ResultsSchemaError",
        "CheckpointError",
        "AnalysisError",
        "SearchError",
        "ResumeStateError",
    } <= names


@pytest.mark.parametrize(("module", "name"), _exception_classes())
def test_every_error_derives_from_tune_grid_error(module: str, name: str) -> None:
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, TuneGridError), f"{module}.{name}"


def test_config_error_is_still_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_main_prints_any_tune_grid_error_as_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Odd(TuneGridError):
        pass

    def handler(args: argparse.Namespace) -> int:
        raise Odd("the reason\nand a second line nobody should see")

    monkeypatch.setattr("tune_grid.cli.env.run_baselines_command", handler)
    assert build_parser().parse_args(["baselines"]).func is handler
    assert main(["baselines"]) == 2
    assert capsys.readouterr().err == "error: the reason\n"


def test_every_subcommand_is_wired_to_a_handler() -> None:
    parser = build_parser()
    for argv in (
        ["quickstart"],
        ["train"],
        ["evaluate", "x"],
        ["search", "x.yaml"],
        ["export", "x"],
        ["wandb-sweep", "x.yaml"],
        ["oracle"],
        ["report", "x"],
        ["outcomes", "x", "--by", "lr"],
        ["baselines"],
        ["bench", "env"],
        ["bench", "train"],
        ["bench", "search"],
        ["data", "build", "x"],
    ):
        assert callable(parser.parse_args(argv).func), argv
