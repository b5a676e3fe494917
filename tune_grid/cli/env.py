"""``tune-grid baselines`` and ``tune-grid data build``: the environment's policies and data."""

from __future__ import annotations

import argparse
from pathlib import Path

from tune_grid.cli.common import Subparsers, check_days_in_split
from tune_grid.cli.oracle import add_mpc_arguments, mpc_forecasters, run_mpc_days
from tune_grid.config import ConfigError

BASELINE_NAMES = ("do_nothing", "random", "rule_based")


def run_baselines_command(args: argparse.Namespace) -> int:
    """Do-nothing, random, rule-based and the MPC on whole days of a split: one line each."""
    check_days_in_split(args.days, args.split)
    if args.split != "test" and not args.mpc:
        args.no_mpc = True  # the MPC is a test-day reference; ask for it by name elsewhere
    forecasters = mpc_forecasters(args)
    from tune_grid.env.day_intervals import mean_interval
    from tune_grid.env.evaluation import evaluate, summarize
    from tune_grid.oracle.core import day_list

    days = day_list(args.split, args.days)
    frames = [(name, evaluate(name, split=args.split, days=days)) for name in BASELINE_NAMES]
    horizon = {} if args.horizon is None else {"horizon": args.horizon}
    frames += run_mpc_days(forecasters, args.split, days, {}, **horizon)
    print(
        f"baselines on {args.split} split, {len(days)} days (per day, all 3 MGs; "
        "[95 % bootstrap interval over days]):"
    )
    print(
        f"{'policy':<20}{'cost $':>10}{'[95 % CI]':>19}{'safety':>10}{'viol. h':>10}{'return':>10}"
    )
    for name, frame in frames:
        s = summarize(frame)
        _, lo, hi = mean_interval(frame["cost"])
        print(
            f"{name:<20}{s['daily_cost']:>10.2f}{f'[{lo:.1f}, {hi:.1f}]':>19}"
            f"{s['safety']:>10.4f}{s['violation_hours']:>10.2f}{s['return']:>10.2f}"
        )
    return 0


def add_baselines_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``baselines`` to ``subparsers``."""
    parser = subparsers.add_parser(
        "baselines", help="evaluate the baseline policies (and the MPC) on a data split"
    )
    parser.add_argument("--split", choices=["train", "validation", "test"], default="test")
    parser.add_argument(
        "--days", type=int, default=None, help="N evenly spaced days (default: all)"
    )
    add_mpc_arguments(parser, "persistence on the test split, none on the others")
    parser.set_defaults(func=run_baselines_command)
    return parser


def run_data_build_command(args: argparse.Namespace) -> int:
    """Rebuild the packaged hourly profiles from the raw CAISO parquet."""
    from tune_grid.grid.data import build_profiles, packaged_profiles_path

    raw = Path(args.raw)
    if not raw.exists():
        raise ConfigError(f"{raw}: no such file (expected the CAISO hourly parquet)")
    out = Path(args.out) if args.out else packaged_profiles_path()
    table = build_profiles(raw)
    table.to_parquet(out, index=False, compression="zstd")
    print(f"wrote {len(table)} hourly rows ({table['day'].nunique()} days) to {out}")
    return 0


def add_data_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``data build`` to ``subparsers``."""
    parser = subparsers.add_parser("data", help="packaged data")
    actions = parser.add_subparsers(dest="data", required=True, metavar="ACTION")
    build = actions.add_parser(
        "build", help="rebuild the packaged profiles from the raw CAISO parquet"
    )
    build.add_argument("raw", help="path to caiso_2023_2024_hourly.parquet")
    build.add_argument("--out", default=None, help="output path (default: the packaged file)")
    build.set_defaults(func=run_data_build_command)
    return parser
