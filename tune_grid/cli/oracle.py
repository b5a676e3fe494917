"""``tune-grid oracle``: the oracle's mean daily cost against the baselines on a data split."""

from __future__ import annotations

import argparse
import time

from tune_grid.cli.common import Subparsers, check_days_in_split


def add_oracle_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add the ``oracle`` subcommand to ``subparsers`` (from ``add_subparsers``)."""
    p = subparsers.add_parser(
        "oracle",
        help="perfect-foresight optimal dispatch vs the baselines (mean daily cost, solve time)",
        description=(
            "Solve the perfect-foresight dispatch of the chosen days, replay it in the env and "
            "print its mean daily cost (model and replayed) next to do_nothing and rule_based, "
            "with the solve time per day. Results are cached on disk (TUNE_GRID_CACHE)."
        ),
    )
    p.add_argument("--split", choices=["train", "test"], default="test")
    p.add_argument("--days", type=int, default=None, help="N evenly spaced days (default: all)")
    p.add_argument("--refresh", action="store_true", help="recompute cached days")
    p.add_argument("--cache-dir", default=None, help="cache folder (default: see docs)")
    p.add_argument(
        "--sensitivities",
        choices=["ac", "lindistflow"],
        default="ac",
        help="first-order sensitivities of the linearization (default: ac)",
    )
    p.set_defaults(func=run_oracle_command)
    return p


def run_oracle_command(args: argparse.Namespace) -> int:
    """Handler of ``tune-grid oracle``: prints the comparison table, returns 0."""
    check_days_in_split(args.days, args.split)
    import numpy as np
    import pandas as pd

    from tune_grid.env.evaluation import evaluate, summarize
    from tune_grid.oracle.core import day_list, optimality_gaps, oracle_cost

    config = {"split": args.split}
    days = day_list(args.split, args.days)
    start = time.perf_counter()
    results = []
    for i, day in enumerate(days, 1):
        results.append(
            oracle_cost(
                args.split,
                day,
                config,
                sensitivities=args.sensitivities,
                refresh=args.refresh,
                cache_dir=args.cache_dir,
            )
        )
        if i % 10 == 0 or i == len(days):
            elapsed = time.perf_counter() - start
            print(f"  oracle: {i}/{len(days)} days, {elapsed:.0f} s", flush=True)
    oracle = pd.DataFrame([r.to_row(config) for r in results])
    table: list[tuple[str, float, float | None, float | None, float | None]] = [
        ("oracle (model)", float(oracle["model_cost"].mean()), None, None, None),
    ]
    s = summarize(oracle)
    table.append(("oracle (replay)", s["daily_cost"], s["safety"], s["violation_hours"], None))
    for name in ("do_nothing", "rule_based"):
        per_day = evaluate(name, split=args.split, days=days)
        s = summarize(per_day)
        gap = optimality_gaps(per_day, oracle).gap
        table.append((name, s["daily_cost"], s["safety"], s["violation_hours"], gap))
    solve = np.array([r.solve_time_s for r in results])
    cached = sum(r.cached for r in results)
    print(f"oracle on the {args.split} split, {len(days)} days (means per day, all 3 MGs):")
    print(f"{'policy':<17}{'cost $':>11}{'safety':>9}{'viol. h':>9}{'gap':>9}")
    for name, cost, safety, viol, gap in table:
        line = f"{name:<17}{cost:>11.2f}"
        if safety is not None and viol is not None:
            line += f"{safety:>9.4f}{viol:>9.2f}"
        if gap is not None:
            line += f"{gap:>9.1%}"
        print(line)
    print(
        f"solve time per day: median {np.median(solve):.2f} s, max {solve.max():.2f} s "
        f"({len(results) - cached} solved now, {cached} from the cache with their original times)"
    )
    print("gap: (mean policy cost - mean oracle replayed cost) / |mean oracle replayed cost|")
    return 0
