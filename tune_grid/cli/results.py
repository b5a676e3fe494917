"""``tune-grid report`` and ``tune-grid outcomes``: what a finished search's results say."""

from __future__ import annotations

import argparse
from pathlib import Path

from tune_grid.cli.common import Subparsers, check_days_in_split
from tune_grid.config import ConfigError


def run_report_command(args: argparse.Namespace) -> int:
    """Tables, plots and report.html from the Parquet results of one or more experiments."""
    from analysis.report import SEPARATION_TEXT, build_report

    html = build_report([Path(d) for d in args.results], Path(args.out) if args.out else None)
    statements = (html.parent / SEPARATION_TEXT).read_text(encoding="utf-8").splitlines()
    if statements:
        print("Differences the IQM intervals separate (and those they do not):")
        for line in statements:
            print(f"- {line}")
    print(f"report: {html}")
    return 0


def add_report_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``report RESULTS_DIR...`` to ``subparsers``."""
    parser = subparsers.add_parser(
        "report", help="tables, plots and report.html from Parquet results"
    )
    parser.add_argument("results", nargs="+", metavar="RESULTS_DIR", help="experiment folder(s)")
    parser.add_argument("--out", default=None, help="output folder (default: <first>/report)")
    parser.set_defaults(func=run_report_command)
    return parser


def run_outcomes_command(args: argparse.Namespace) -> int:
    """What each trial's trained policies do on test days, grouped by searched parameters."""
    from tune_grid.evaluation.outcomes import run_outcomes

    by = [name.strip() for name in args.by.split(",") if name.strip()]
    if not by:
        raise ConfigError("--by needs at least one searched parameter, e.g. policy_sharing")
    check_days_in_split(args.days, "test")
    run_outcomes(args.results, args.days, by)
    return 0


def add_outcomes_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``outcomes RESULTS_DIR --by ...`` to ``subparsers``."""
    parser = subparsers.add_parser(
        "outcomes", help="what each trial's trained policies do on test days, grouped by parameters"
    )
    parser.add_argument(
        "results", metavar="RESULTS_DIR", help="experiment folder (with trials.parquet)"
    )
    parser.add_argument(
        "--by",
        required=True,
        help="comma-separated parameters to group by, e.g. vertical_protocol,horizontal_protocol",
    )
    parser.add_argument("--days", type=int, default=14, help="evenly spaced test days (default 14)")
    parser.set_defaults(func=run_outcomes_command)
    return parser
