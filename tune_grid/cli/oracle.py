"""``tune-grid oracle``: the oracle's mean daily cost against the baselines on a data split."""

from __future__ import annotations

import argparse
import time
from typing import Any

from tune_grid.cli.common import Subparsers, check_days_in_split
from tune_grid.config import ConfigError

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
    add_mpc_arguments(p, "persistence")
    p.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="PATH",
        help="also score a trained policy (a checkpoint folder, or a search trial's checkpoint: "
        "each seed_<k>/; repeatable), on the env config it was trained on",
    )
    p.set_defaults(func=run_oracle_command)
    return p


def add_mpc_arguments(parser: argparse.ArgumentParser, default: str) -> None:
    """``--mpc FORECASTER`` (repeatable), ``--no-mpc`` and ``--horizon H``: the MPC rows of a
    comparison table (``default``: what runs without ``--mpc``, for the help text)."""
    parser.add_argument(
        "--mpc",
        action="append",
        default=None,
        metavar="FORECASTER",
        help="also run the receding-horizon MPC with this forecaster: perfect, persistence or "
        f"climatology (repeatable; default: {default}; ~20 s a day unless cached or shipped)",
    )
    parser.add_argument("--no-mpc", action="store_true", help="skip the MPC rows")
    parser.add_argument(
        "--horizon",
        type=int,
        default=None,
        help="MPC horizon in hours (default: 24, the rest of the day)",
    )


def mpc_forecasters(args: argparse.Namespace) -> list[str]:
    """The ``--mpc`` forecasters (default persistence; none with ``--no-mpc``), checked, and the
    ``--horizon``, before any work starts."""
    from tune_grid.oracle.forecast import check_forecaster
    from tune_grid.oracle.mpc import DEFAULT_FORECASTER, check_horizon

    if args.horizon is not None:
        check_horizon(args.horizon)
    if args.no_mpc:
        return []
    names = args.mpc or [DEFAULT_FORECASTER]
    return [check_forecaster(name) for name in dict.fromkeys(names)]


def run_mpc_days(
    forecasters: list[str], split: str, days: list[Any], config: dict[str, Any], **kwargs: Any
) -> list[tuple[str, Any]]:
    """(row name, per-day frame) of each forecaster's MPC, with progress lines."""
    from tune_grid.oracle.mpc import mpc_days

    frames = []
    for name in forecasters:
        start = time.perf_counter()

        def progress(done: int, total: int, name: str = name, start: float = start) -> None:
            if done % 10 == 0 or done == total:
                elapsed = time.perf_counter() - start
                print(f"  mpc ({name}): {done}/{total} days, {elapsed:.0f} s", flush=True)

        frame = mpc_days(split, days, config, forecaster=name, progress=progress, **kwargs)
        frames.append((f"mpc ({name})", frame))
    return frames


def run_oracle_command(args: argparse.Namespace) -> int:
    """Handler of ``tune-grid oracle``: prints the comparison table, returns 0."""
    check_days_in_split(args.days, args.split)
    forecasters = mpc_forecasters(args)
    import numpy as np
    import pandas as pd

    from tune_grid.env.day_intervals import gap_interval, mean_interval
    from tune_grid.env.evaluation import evaluate
    from tune_grid.oracle.core import day_list, optimality_gaps, oracle_cost
    from tune_grid.oracle.forecast import forecast_errors

    policies: list[tuple[str, Any, dict[str, Any]]] = []
    from tune_grid.training.checkpoints import policy_checkpoints, read_meta
    from tune_grid.training.policy import TrainedPolicy

    for given in args.checkpoint:
        for seed_path in policy_checkpoints(given):  # a search trial's checkpoint: each seed
            run = read_meta(seed_path).run_config
            policy = TrainedPolicy.load(seed_path, policy_sharing=run.policy_sharing)
            policies.append((str(seed_path), policy, run.env_config().to_dict()))
    configs = {repr(sorted(c.items())) for _, _, c in policies}
    if len(configs) > 1:
        raise ConfigError("--checkpoint: the checkpoints were trained on different env configs")
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
    horizon = {} if args.horizon is None else {"horizon": args.horizon}
    mpc = run_mpc_days(
        forecasters, args.split, days, config, refresh=args.refresh, cache_dir=args.cache_dir,
        **horizon,
    )  # fmt: skip
    frames = [(name, evaluate(name, args.split, days, config)) for name in BASELINE_ROWS]
    frames += mpc
    for i, (path, policy, _) in enumerate(policies, 1):
        print(f"policy {i}: {path}")
        frames.append((f"policy {i}", evaluate(policy, args.split, days, config)))
    reference = mpc[0] if mpc else None
    print(
        f"oracle on the {args.split} split, {len(days)} days (means per day, all 3 MGs; "
        "[95 % bootstrap interval over days]):"
    )
    header = (
        f"{'policy':<17}{'cost $':>10}{'[95 % CI]':>19}{'safety':>9}{'objective $':>13}"
        f"{'cost gap':>10}{'[95 % CI]':>17}{'obj. gap':>10}"
    )
    if reference is not None:
        header += f"{'gap to ' + reference[0]:>28}"
    print(header)
    print(f"{'oracle (relaxed)':<17}{oracle['model_bound'].mean():>10.2f}")
    print(
        f"{'oracle (model)':<17}{oracle['model_cost'].mean():>10.2f}{'':>28}"
        f"{oracle['model_objective'].mean():>13.2f}"
    )
    for name, frame in [("oracle (replay)", oracle), *frames]:
        cost, lo, hi = mean_interval(frame["cost"])
        line = (
            f"{name:<17}{cost:>10.2f}{f'[{lo:.1f}, {hi:.1f}]':>19}"
            f"{frame['safety'].mean():>9.4f}{frame['objective'].mean():>13.2f}"
        )
        if frame is not oracle:
            gaps = optimality_gaps(frame, oracle)
            matched = gaps.per_day
            gap, glo, ghi = gap_interval(matched["policy_cost"], matched["oracle_cost"])
            line += f"{gap:>10.1%}{f'[{glo:+.1%}, {ghi:+.1%}]':>17}{gaps.objective_gap:>10.1%}"
            if reference is not None and frame is not reference[1]:
                ref = optimality_gaps(frame, reference[1]).per_day
                mgap, mlo, mhi = gap_interval(ref["policy_cost"], ref["oracle_cost"])
                line += f"{f'{mgap:+.1%} [{mlo:+.1%}, {mhi:+.1%}]':>28}"
        print(line)
    solve = np.array([r.solve_time_s for r in results])
    cached = sum(r.cached for r in results)
    print(
        f"oracle solve time per day: median {np.median(solve):.2f} s, max {solve.max():.2f} s "
        f"({len(results) - cached} solved now, {cached} from the cache with their original times)"
    )
    for name, frame in mpc:
        times = frame["solve_time_s"].to_numpy(float)
        print(
            f"{name} solve time per day: median {np.median(times):.1f} s, max {times.max():.1f} "
            f"s ({int((~frame['cached']).sum())} solved now); horizon "
            f"{int(frame['horizon'].iloc[0])} h"
        )
    if forecasters:
        indices = [int(oracle_row) for oracle_row in oracle["day"]]
        errors = forecast_errors(forecasters, args.split, indices)
        print("forecast error on these days, mean absolute error in % of the rating:")
        for row in errors.itertuples():
            print(
                f"  {row.forecaster:<12} load {row.load_mae_pct:5.1f} %  PV {row.pv_mae_pct:5.1f}"
                f" %  wind {row.wind_mae_pct:5.1f} %"
            )
    print(
        "objective = cost + penalty x cost_scale x safety (the reward's weights; the oracle "
        f"prices safety at ${results[0].safety_price:.0f} per pu-hour). Gaps: (mean policy - "
        "mean reference) / |mean reference|, days resampled in pairs for the interval. The "
        "replayed oracle is an achievable schedule, not a proven lower bound: a policy (or the "
        "MPC, which re-plans every hour) can beat it."
    )
    return 0
