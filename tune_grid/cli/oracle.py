"""``tune-grid oracle``: the oracle's mean daily cost against the baselines on a data split."""

from __future__ import annotations

import argparse
import time
from typing import Any

from tune_grid.cli.common import Subparsers, check_days_in_split

BASELINE_ROWS = ("do_nothing", "rule_based")


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
    p.add_argument("--split", choices=["train", "validation", "test"], default="test")
    p.add_argument("--days", type=int, default=None, help="N evenly spaced days (default: all)")
    p.add_argument("--refresh", action="store_true", help="recompute cached days")
    p.add_argument("--cache-dir", default=None, help="cache folder (default: see docs)")
    p.add_argument(
        "--sensitivities",
        choices=["ac", "lindistflow"],
        default="ac",
        help="first-order sensitivities of the linearization (default: ac)",
    )
    p.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="PATH",
        help="also score a trained policy (a checkpoint folder; repeatable), on the env config "
        "it was trained on",
    )
    p.set_defaults(func=run_oracle_command)
    return p


def run_oracle_command(args: argparse.Namespace) -> int:
    """Handler of ``tune-grid oracle``: prints the comparison table, returns 0."""
    check_days_in_split(args.days, args.split)
    import numpy as np
    import pandas as pd

    from tune_grid.env.evaluation import evaluate
    from tune_grid.oracle.core import day_list, optimality_gaps, oracle_cost

    policies: list[tuple[str, Any, dict[str, Any]]] = []
    for path in args.checkpoint:
        from tune_grid.training.checkpoints import read_meta
        from tune_grid.training.policy import TrainedPolicy

        run = read_meta(path).run_config
        policy = TrainedPolicy.load(path, policy_sharing=run.policy_sharing)
        policies.append((str(path), policy, run.env_config().to_dict()))
    configs = {repr(sorted(c.items())) for _, _, c in policies}
    if len(configs) > 1:
        raise ValueError("--checkpoint: the checkpoints were trained on different env configs")
    config = dict(policies[0][2]) if policies else {}
    config["split"] = args.split
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
    frames = [(name, evaluate(name, args.split, days, config)) for name in BASELINE_ROWS]
    frames += [(name, evaluate(policy, args.split, days, config)) for name, policy, _ in policies]
    print(f"oracle on the {args.split} split, {len(days)} days (means per day, all 3 MGs):")
    print(
        f"{'policy':<17}{'cost $':>10}{'safety':>9}{'objective $':>13}{'cost gap':>10}"
        f"{'obj. gap':>10}"
    )
    print(f"{'oracle (relaxed)':<17}{oracle['model_bound'].mean():>10.2f}")
    print(
        f"{'oracle (model)':<17}{oracle['model_cost'].mean():>10.2f}{'':>9}"
        f"{oracle['model_objective'].mean():>13.2f}"
    )
    rows = [("oracle (replay)", oracle), *frames]
    for name, frame in rows:
        gaps = optimality_gaps(frame, oracle)
        line = (
            f"{name:<17}{frame['cost'].mean():>10.2f}{frame['safety'].mean():>9.4f}"
            f"{frame['objective'].mean():>13.2f}"
        )
        if frame is not oracle:
            line += f"{gaps.gap:>10.1%}{gaps.objective_gap:>10.1%}"
        print(line)
    solve = np.array([r.solve_time_s for r in results])
    cached = sum(r.cached for r in results)
    print(
        f"solve time per day: median {np.median(solve):.2f} s, max {solve.max():.2f} s "
        f"({len(results) - cached} solved now, {cached} from the cache with their original times)"
    )
    print(
        "objective = cost + penalty x cost_scale x safety (the reward's weights; the oracle "
        f"prices safety at ${results[0].safety_price:.0f} per pu-hour). Gaps: (mean policy - "
        "mean oracle replay) / |mean oracle replay|. The replayed oracle is an achievable "
        "schedule, not a proven lower bound: a policy can beat it."
    )
    return 0
