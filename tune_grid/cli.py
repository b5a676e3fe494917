"""The `tune-grid` command line.

Subcommands: quickstart | train | evaluate | search | export | report | wandb-sweep | baselines |
bench {env,train,search} | data build. Bad input prints one ``error: ...`` line and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

Handler = Callable[[argparse.Namespace], int | None]


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

    run_env_benchmark(fast_steps=args.steps, pandapower_steps=args.pandapower_steps)
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
    parser = argparse.ArgumentParser(
        prog="tune-grid",
        description="Hyperparameter search for multi-agent RL on networked microgrids.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("baselines", help="evaluate the baseline policies on a data split")
    p.add_argument("--split", choices=["train", "test"], default="test")
    p.add_argument("--days", type=int, default=None, help="N evenly spaced days (default: all)")
    p.set_defaults(handler=_cmd_baselines)

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(
        dest="bench", required=True, metavar="BENCH"
    )
    p = bench.add_parser("env", help="env-step time: fast solver vs pandapower")
    p.add_argument("--steps", type=int, default=5000, help="timed fast-backend steps")
    p.add_argument("--pandapower-steps", type=int, default=100, help="timed pandapower steps")
    p.set_defaults(handler=_cmd_bench_env)

    data = sub.add_parser("data", help="packaged data").add_subparsers(
        dest="data", required=True, metavar="ACTION"
    )
    p = data.add_parser("build", help="rebuild the packaged profiles from the raw CAISO parquet")
    p.add_argument("raw", help="path to caiso_2023_2024_hourly.parquet")
    p.add_argument("--out", default=None, help="output path (default: the packaged file)")
    p.set_defaults(handler=_cmd_data_build)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
