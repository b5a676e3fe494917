"""``tune-grid train`` and ``tune-grid evaluate``.

Every :class:`~tune_grid.config.RunConfig` key is an option of ``train``
(:mod:`tune_grid.cli.run_options`). Bad input is reported in one line (``error: ...``, exit
status 2) before Ray starts; Ray, torch and RLlib are imported only once the input is valid.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path

from tune_grid.cli.common import Subparsers, check_days_in_split, parse_days
from tune_grid.cli.run_options import (
    add_run_config_arguments,
    option_name,
    run_config_from_args,
)
from tune_grid.config import ConfigError

DEFAULT_EVAL_DAYS = "all"
"""Every day of the split (366 test days take about a minute for the four policies)."""


# --------------------------------------------------------------------------------- train
def add_train_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``train`` to ``subparsers`` (from ``parser.add_subparsers()``); handler in ``func``."""
    parser = subparsers.add_parser(
        "train",
        help="train PPO (shared or independent policies) on the networked microgrids",
        description=(
            "Train RLlib PPO on the networked-microgrid env: one progress line per iteration, "
            "checkpoints every N iterations plus best/ (lowest val_objective of the greedy policy "
            "on the validation days, validated every eval_interval env steps, unless "
            "--best-metric/--best-mode say otherwise) and final/, then a held-out evaluation "
            "against the baselines (table + final/evaluation.json)."
        ),
    )
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file of run-config keys")
    add_run_config_arguments(parser)
    group = parser.add_argument_group("run control")
    group.add_argument(
        "--iterations", type=int, metavar="N", default=50, help="iterations (default: 50)"
    )
    group.add_argument(
        "--env-steps",
        type=int,
        metavar="N",
        default=None,
        help="also stop once the run has sampled N env steps, if before --iterations",
    )
    group.add_argument(
        "--checkpoint-freq",
        type=int,
        metavar="N",
        default=10,
        help="save checkpoint_<iteration>/ every N iterations; 0: only best/ and final/ "
        "(default: 10)",
    )
    group.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        default="runs",
        help="folder of run folders; a run writes <dir>/<run name>/ (default: runs)",
    )
    group.add_argument(
        "--resume",
        metavar="PATH",
        help="continue from a checkpoint folder (its run config; iteration, env-step and history "
        "counters continue); --iterations more iterations are run",
    )
    group.add_argument(
        "--experiment-name",
        metavar="NAME",
        help="run-name part: <env>__<name>__<seed>__<time> (ppo_<sharing>)",
    )
    group.add_argument(
        "--best-metric",
        metavar="METRIC",
        default="val_objective",
        help="iteration metric that picks best/ (default: val_objective)",
    )
    group.add_argument(
        "--best-mode",
        choices=("max", "min"),
        default=None,
        help="(default: the metric's direction: max for return and throughput, min otherwise)",
    )
    group.add_argument(
        "--eval-days",
        default=DEFAULT_EVAL_DAYS,
        metavar="N|all",
        help=f"test days evaluated after training, evenly spaced; 0 skips "
        f"(default: {DEFAULT_EVAL_DAYS})",
    )
    group.add_argument("--num-cpus", type=int, metavar="N", help="CPUs for Ray (default: all)")
    group.add_argument("--wandb", action="store_true", help="log config and metrics to W&B")
    group.add_argument(
        "--wandb-project", metavar="NAME", default="tune-grid", help="(default: tune-grid)"
    )
    group.add_argument("--wandb-entity", metavar="NAME", help="W&B entity (team or user)")
    parser.set_defaults(func=run_train)
    return parser


def fix_hash_seed() -> None:
    """Re-run this command with ``PYTHONHASHSEED=0`` unless the hash seed is already fixed.

    RLlib iterates sets of agent-id strings (the order follows the string-hash seed), so without a
    fixed hash seed the same ``--seed`` does not repeat a run. Only for a real command line: inside
    pytest (or when the hash seed is set) nothing happens.
    """
    if os.environ.get("PYTHONHASHSEED") is not None or "pytest" in sys.modules:
        return
    argv = getattr(sys, "orig_argv", None)
    if not argv or "train" not in argv:
        return
    os.environ["PYTHONHASHSEED"] = "0"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *argv[1:]])


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``tune-grid train``: validate everything, then train. Returns the exit status."""
    run, given = run_config_from_args(args)
    eval_days = parse_days(args.eval_days, allow_zero=True)
    from tune_grid.training.checkpoints import read_meta
    from tune_grid.training.runner import TrainOptions

    options = TrainOptions(
        iterations=args.iterations,
        env_steps=args.env_steps,
        checkpoint_freq=args.checkpoint_freq,
        checkpoint_dir=args.checkpoint_dir,
        resume=args.resume,
        experiment_name=args.experiment_name,
        wandb=args.wandb,
        wandb_project=args.wandb_project,
        wandb_entity=args.wandb_entity,
        eval_days=eval_days,
        best_metric=args.best_metric,
        best_mode=args.best_mode,
        num_cpus=args.num_cpus,
    )
    options.validate()
    if args.resume is not None:
        if given or args.config:
            flags = [option_name(k) for k in given] + (["--config"] if args.config else [])
            raise ConfigError(
                f"--resume continues the checkpoint's own run config; drop {', '.join(flags)}"
            )
        read_meta(args.resume)
    else:
        check_days_in_split(eval_days or None, options.eval_split)
        from tune_grid.training.algorithms import check_run

        check_run(run)  # an unknown algorithm, or a key it does not read, before Ray starts

    fix_hash_seed()
    from tune_grid.training.runner import train

    train(None if args.resume else run, options, print_fn=functools.partial(print, flush=True))
    return 0


# ------------------------------------------------------------------------------ evaluate
def add_evaluate_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``evaluate`` to ``subparsers``; handler in ``func``."""
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a checkpoint against do-nothing, random and rule-based",
        description=(
            "Run a checkpoint's deterministic policy and the three baselines on whole days of a "
            "data split; print a table and write evaluation.json into the checkpoint folder."
        ),
    )
    parser.add_argument(
        "checkpoint",
        metavar="CHECKPOINT",
        help="a checkpoint folder, or a search trial's checkpoint (every seed_<k>/ is evaluated)",
    )
    parser.add_argument(
        "--days",
        default=DEFAULT_EVAL_DAYS,
        metavar="N|all",
        help=f"N days evenly spaced over the split, or all (default: {DEFAULT_EVAL_DAYS})",
    )
    parser.add_argument(
        "--split", choices=("test", "train"), default="test", help="(default: test)"
    )
    parser.set_defaults(func=run_evaluate)
    return parser


def run_evaluate(args: argparse.Namespace) -> int:
    """Handler of ``tune-grid evaluate``. Returns the exit status."""
    days = parse_days(args.days, allow_zero=False)
    check_days_in_split(days, args.split)
    from tune_grid.training.checkpoints import policy_checkpoints

    paths = policy_checkpoints(args.checkpoint)
    from tune_grid.evaluation.checkpoints import (
        EVALUATION_FILE,
        evaluate_checkpoint,
        format_table,
    )

    costs = []
    for path in paths:
        if path != Path(args.checkpoint):  # a search trial's checkpoint: one table per seed
            print(f"{path.name}:")
        report = evaluate_checkpoint(path, split=args.split, days=days)
        costs.append(report["policies"]["trained"]["daily_cost"])
        print(format_table(report))
        print(f"written to {Path(path) / EVALUATION_FILE}")
    if len(paths) > 1:
        print(
            f"trained policy, mean over {len(paths)} seeds: ${sum(costs) / len(costs):.1f}/day "
            f"(per seed: {', '.join(f'{c:.1f}' for c in costs)})"
        )
    return 0
