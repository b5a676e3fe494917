"""The `tune-grid` command line.

Subcommands: quickstart | train | evaluate | search | export | report | wandb-sweep | oracle |
baselines |
bench {env,train,search,driver} | data build. Bad input prints one ``error: ...`` line and exits 2.
Heavy imports (Ray, torch) happen inside the handlers, so ``--help`` and input errors are fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

Handler = Callable[[argparse.Namespace], int | None]
REPO_ROOT = Path(__file__).resolve().parents[1]
QUICKSTART_SPACE = REPO_ROOT / "search_spaces" / "quickstart.yaml"


def _cmd_report(args: argparse.Namespace) -> int:
    from analysis.report import build_report

    html = build_report([Path(d) for d in args.results], Path(args.out) if args.out else None)
    print(f"report: {html}")
    return 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    """The main job: the quickstart search on a local Ray, then its report."""
    from tune_grid.cli_search import run_search_command

    if not QUICKSTART_SPACE.exists():
        raise FileNotFoundError(
            f"{QUICKSTART_SPACE}: not found; run tune-grid from a checkout (pip install -e .)"
        )
    storage = Path(args.storage)
    search_args = argparse.Namespace(
        space=str(QUICKSTART_SPACE),
        address=None,
        storage=str(storage),
        name=None,
        resume=args.resume,
        wandb=args.wandb,
        no_eval=False,
        num_cpus=None,
        verbose=1,
    )
    code = run_search_command(search_args)
    if code != 0:
        return code
    from tune_grid.search.space_file import load_space_file

    experiment = load_space_file(QUICKSTART_SPACE).experiment
    return _cmd_report(argparse.Namespace(results=[str(storage / experiment)], out=None))


def _cmd_data_build(args: argparse.Namespace) -> int:
    from tune_grid.grid.data import build_profiles, packaged_profiles_path

    raw = Path(args.raw)
    if not raw.exists():
        raise FileNotFoundError(f"{raw}: no such file (expected the CAISO hourly parquet)")
    out = Path(args.out) if args.out else packaged_profiles_path()
    table = build_profiles(raw)
    table.to_parquet(out, index=False, compression="zstd")
    print(f"wrote {len(table)} hourly rows ({table['day'].nunique()} days) to {out}")
    return 0


def _cmd_bench_env(args: argparse.Namespace) -> int:
    from tune_grid.bench.env import run_env_benchmark

    run_env_benchmark(
        fast_steps=args.steps, pandapower_steps=args.pandapower_steps, rounds=args.rounds
    )
    return 0


def _cmd_outcomes(args: argparse.Namespace) -> int:
    from tune_grid.search.outcomes import run_outcomes

    by = [name.strip() for name in args.by.split(",") if name.strip()]
    if not by:
        raise ValueError("--by needs at least one searched parameter, e.g. policy_sharing")
    if args.days < 1:
        raise ValueError(f"--days must be >= 1, got {args.days}")
    run_outcomes(args.results, args.days, by)
    return 0


def _cmd_baselines(args: argparse.Namespace) -> int:
    from tune_grid.env.evaluation import evaluate, summarize

    rows = []
    for name in ("do_nothing", "random", "rule_based"):
        per_day = evaluate(name, split=args.split, days=args.days)
        rows.append((name, summarize(per_day)))
    print(f"baselines on {args.split} split, {rows[0][1]['days']} days (per day, all 3 MGs):")
    print(f"{'policy':<12}{'cost $':>12}{'safety':>10}{'viol. h':>10}{'return':>10}")
    for name, s in rows:
        print(
            f"{name:<12}{s['daily_cost']:>12.2f}{s['safety']:>10.4f}"
            f"{s['violation_hours']:>10.2f}{s['return']:>10.2f}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    from tune_grid.cli_train import OneLineArgumentParser

    parser = OneLineArgumentParser(
        prog="tune-grid",
        description="Hyperparameter search for multi-agent RL on networked microgrids.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from tune_grid.cli_search import (
        add_bench_search_parser,
        add_export_parser,
        add_search_parser,
        add_wandb_sweep_parser,
    )
    from tune_grid.cli_train import add_evaluate_parser, add_train_parser
    from tune_grid.oracle.cli import add_oracle_parser

    p = sub.add_parser("quickstart", help="the main job: quickstart search, then its report")
    p.add_argument("--storage", default="results", help="results root (default: results)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted quickstart")
    p.add_argument("--wandb", action="store_true", help="log every trial to W&B (offline ok)")
    p.set_defaults(func=_cmd_quickstart)
    add_train_parser(sub)
    add_evaluate_parser(sub)
    add_search_parser(sub)
    add_export_parser(sub)
    add_wandb_sweep_parser(sub)
    add_oracle_parser(sub)
    p = sub.add_parser("report", help="tables, plots and report.html from Parquet results")
    p.add_argument("results", nargs="+", metavar="RESULTS_DIR", help="experiment folder(s)")
    p.add_argument("--out", default=None, help="output folder (default: <first>/report)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "outcomes", help="what each trial's trained policies do on test days, grouped by parameters"
    )
    p.add_argument("results", metavar="RESULTS_DIR", help="experiment folder (with trials.parquet)")
    p.add_argument(
        "--by",
        required=True,
        help="comma-separated parameters to group by, e.g. vertical_protocol,horizontal_protocol",
    )
    p.add_argument("--days", type=int, default=14, help="evenly spaced test days (default 14)")
    p.set_defaults(func=_cmd_outcomes)

    p = sub.add_parser("baselines", help="evaluate the baseline policies on a data split")
    p.add_argument("--split", choices=["train", "test"], default="test")
    p.add_argument("--days", type=int, default=None, help="N evenly spaced days (default: all)")
    p.set_defaults(func=_cmd_baselines)

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(
        dest="bench", required=True, metavar="BENCH"
    )
    p = bench.add_parser("env", help="env-step time of each power-flow backend, side by side")
    p.add_argument(
        "--steps", type=int, default=5000, help="timed steps of the fast and lightsim2grid backends"
    )
    p.add_argument("--pandapower-steps", type=int, default=100, help="timed pandapower steps")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds of the backends")
    p.set_defaults(func=_cmd_bench_env)
    from tune_grid.bench.train import add_bench_train_parser

    add_bench_train_parser(bench)
    add_bench_search_parser(bench)
    from tune_grid.bench.driver import add_bench_driver_parser

    add_bench_driver_parser(bench)

    data = sub.add_parser("data", help="packaged data").add_subparsers(
        dest="data", required=True, metavar="ACTION"
    )
    p = data.add_parser("build", help="rebuild the packaged profiles from the raw CAISO parquet")
    p.add_argument("raw", help="path to caiso_2023_2024_hourly.parquet")
    p.add_argument("--out", default=None, help="output path (default: the packaged file)")
    p.set_defaults(func=_cmd_data_build)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
