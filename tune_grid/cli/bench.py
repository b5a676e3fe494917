"""``tune-grid bench env | train | search | driver | memory``: the benchmarks."""

from __future__ import annotations

import argparse
from dataclasses import replace

from tune_grid.cli.common import Subparsers
from tune_grid.cli.run_options import add_run_config_arguments, run_config_from_args


def run_bench_env_command(args: argparse.Namespace) -> int:
    """Env-step time of each power-flow backend, side by side."""
    from tune_grid.bench.env import run_env_benchmark

    run_env_benchmark(
        fast_steps=args.steps, pandapower_steps=args.pandapower_steps, rounds=args.rounds
    )
    return 0


def run_bench_train_command(args: argparse.Namespace) -> int:
    """PPO iteration time: RLlib's defaults vs tune-grid's vs a no-op env."""
    from tune_grid.bench.train import check_variant_keys, run_train_benchmark

    run, given = run_config_from_args(args)
    variants = args.variants.split(",") if args.variants else None
    if variants is not None:
        check_variant_keys(variants)
    run_train_benchmark(
        iterations=args.iterations,
        warmup=args.warmup,
        quick=args.quick,
        overrides={key: getattr(run, key) for key in given},
        num_cpus=args.num_cpus,
        variants=variants,
    )
    return 0


def run_bench_search_command(args: argparse.Namespace) -> int:
    """Optuna+ASHA vs random+FIFO vs PBT at equal budget in env steps, on the validation
    objective."""
    if args.replay is not None:
        from tune_grid.bench.replay import ReplayOptions, run_replay_benchmark

        arms = tuple(a.strip() for a in args.arms.split(",")) if args.arms else None
        run_replay_benchmark(
            ReplayOptions(
                table=args.replay,
                repetitions=args.repetitions,
                num_samples=args.num_samples or 16,
                concurrent=args.concurrent,
                grace=args.grace,
                reduction_factor=args.reduction_factor,
                n_startup_trials=args.n_startup_trials,
                target=args.target,
                arms=arms,
                seed=args.seed,
            )
        )
        return 0
    from tune_grid.bench.search import BenchOptions, run_search_benchmark

    options = BenchOptions(
        repetitions=args.repetitions,
        num_samples=args.num_samples,
        env_steps=args.env_steps,
        target=args.target,
        storage=args.storage,
        smoke=args.smoke,
        num_cpus=args.num_cpus,
        seed=args.seed,
    )
    if args.arms is not None:
        options = replace(options, arms=tuple(a.strip() for a in args.arms.split(",")))
    run_search_benchmark(options)
    return 0


def add_bench_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``bench {env,train,search,driver,memory}`` to ``subparsers``."""
    from tune_grid.bench.driver import add_bench_driver_parser
    from tune_grid.bench.memory import add_bench_memory_parser

    parser = subparsers.add_parser("bench", help="benchmarks")
    benches = parser.add_subparsers(dest="bench", required=True, metavar="BENCH")
    _add_env(benches)
    _add_train(benches)
    _add_search(benches)
    add_bench_driver_parser(benches)
    add_bench_memory_parser(benches)
    return parser


def _add_env(benches: Subparsers) -> None:
    p = benches.add_parser("env", help="env-step time of each power-flow backend, side by side")
    p.add_argument(
        "--steps", type=int, default=5000, help="timed steps of the fast and lightsim2grid backends"
    )
    p.add_argument("--pandapower-steps", type=int, default=100, help="timed pandapower steps")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds of the backends")
    p.set_defaults(func=run_bench_env_command)


def _add_train(benches: Subparsers) -> None:
    p = benches.add_parser(
        "train",
        help="PPO iteration time: RLlib's defaults vs tune-grid's vs a no-op env",
        description=(
            "Trains (a) RLlib's default settings, (b) tune-grid's defaults and (c) (b) on a no-op "
            "env, interleaved in one process; prints median sampling, learning and whole-iteration "
            "seconds (wall and CPU) and the ratios. Run-config options change the hyperparameters "
            "of all three (layout options only (b) and (c))."
        ),
    )
    p.add_argument(
        "--iterations", type=int, default=3, metavar="N", help="timed iterations (default 3)"
    )
    p.add_argument(
        "--warmup", type=int, default=1, metavar="N", help="untimed iterations first (default 1)"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny budget (batch 480, 2 epochs, 64x64, 4 envs): a smoke test, not a measurement",
    )
    p.add_argument(
        "--num-cpus", type=int, default=2, metavar="N", help="CPUs of the local Ray (default 2)"
    )
    p.add_argument(
        "--variants",
        default=None,
        metavar="LIST",
        help="comma-separated subset of a,a1,b,b1,c,d,e (default: all that apply here)",
    )
    add_run_config_arguments(p)
    p.set_defaults(func=run_bench_train_command)


def _add_search(benches: Subparsers) -> None:
    p = benches.add_parser(
        "search",
        help="Optuna+ASHA vs random+FIFO vs PBT at equal env steps: env steps and time to a "
        "target validation objective",
        description=(
            "Runs the arms on the same space (lr, train_batch_size, num_epochs) with the same "
            "trials and the same stop in env steps, ranked by val_objective; prints, as medians "
            "over repetitions, the env steps (all trials) and seconds until each search's "
            "best-so-far first reaches the target, and the ratios random+FIFO / arm. PBT trains "
            "its population side by side on the same CPUs and perturbs lr. The default target "
            "is the rule-based baseline's objective on the same validation days."
        ),
    )
    p.add_argument(
        "--repetitions", type=int, default=3, metavar="N", help="repetitions (median; default 3)"
    )
    p.add_argument(
        "--num-samples", type=int, default=None, metavar="N", help="trials per search (default 8)"
    )
    p.add_argument(
        "--env-steps",
        type=int,
        default=None,
        metavar="N",
        help="stop of every trial in env steps (default 46080; ASHA's rungs scale with it)",
    )
    p.add_argument(
        "--target",
        type=float,
        default=None,
        metavar="DOLLARS",
        help="target val_objective in $/day (default: the rule-based baseline's on the same "
        "validation days)",
    )
    p.add_argument(
        "--seed", type=int, default=0, metavar="N", help="search seed of repetition 0 (default 0)"
    )
    p.add_argument(
        "--storage", metavar="DIR", default=None, help="results root (default: a temp dir)"
    )
    p.add_argument("--num-cpus", type=int, metavar="N", help="CPUs of the local Ray")
    p.add_argument(
        "--arms",
        default=None,
        metavar="ARMS",
        help="comma-separated arms to run (default all: Optuna+ASHA, random+FIFO, PBT; a wrong "
        "name lists them; ratios need random_fifo)",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="one repetition of a tiny budget: checks the benchmark runs end to end",
    )
    p.add_argument(
        "--replay",
        metavar="TABLE",
        default=None,
        help="replay recorded learning curves instead of training: a replay table (Parquet) or "
        "a finished search's results folder (tune_grid/bench/replay.py); arms: random_fifo, "
        "random_asha and <searcher>_fifo/_asha for each model-based searcher; 'shipped': the "
        "table recorded with search_spaces/replay_table.yaml",
    )
    p.add_argument(
        "--grace",
        type=int,
        default=None,
        metavar="ENV_STEPS",
        help="--replay: ASHA's grace period (default: a quarter of the curves' length)",
    )
    p.add_argument(
        "--concurrent",
        type=int,
        default=4,
        metavar="N",
        help="--replay: trials at once (default 4)",
    )
    p.add_argument(
        "--reduction-factor",
        type=int,
        default=2,
        metavar="N",
        help="--replay: ASHA's reduction factor (default 2)",
    )
    p.add_argument(
        "--n-startup-trials",
        type=int,
        default=4,
        metavar="N",
        help="--replay: random trials before the Optuna samplers model (default 4)",
    )
    p.set_defaults(func=run_bench_search_command)
