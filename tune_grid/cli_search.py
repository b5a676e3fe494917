"""``tune-grid search``, ``export``, ``wandb-sweep`` and ``bench search``: argparse builders.

Each ``add_*_parser(subparsers)`` adds one subcommand and stores its handler, a callable
``(args) -> int``, as both ``func`` and ``handler``. Bad input prints one ``error: ...`` line and
exits 2, before Ray starts. Standalone: ``python -m tune_grid.cli_search search SPACE.yaml``.
"""

from __future__ import annotations

import argparse
import sys
import types
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

EXIT_USAGE = 2
Handler = Callable[[argparse.Namespace], int]


def _one_line_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    parser.exit(EXIT_USAGE, f"{parser.prog}: error: {message}\n")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _guarded(handler: Handler) -> Handler:
    """Turn the expected input errors into one ``error:`` line and exit status 2."""

    def run(args: argparse.Namespace) -> int:
        from tune_grid.config import ConfigError
        from tune_grid.results.schema import ResultsSchemaError
        from tune_grid.search.space_file import SpaceFileError
        from tune_grid.search.tuner import SearchError

        try:
            return handler(args)
        except (SpaceFileError, SearchError, ConfigError, ResultsSchemaError) as exc:
            return _fail(str(exc))
        except FileNotFoundError as exc:
            return _fail(str(exc).splitlines()[0])

    run.__name__ = handler.__name__
    return run


def _finish(parser: argparse.ArgumentParser, handler: Handler) -> argparse.ArgumentParser:
    parser.error = types.MethodType(_one_line_error, parser)  # type: ignore[method-assign]
    guarded = _guarded(handler)
    parser.set_defaults(func=guarded, handler=guarded)
    return parser


# ------------------------------------------------------------------------------------ search
def run_search_command(args: argparse.Namespace) -> int:
    """Validate the file (before Ray starts), then run or resume the search."""
    from tune_grid.search.space_file import load_space_file
    from tune_grid.search.tuner import SearchOptions, run_search

    spec = load_space_file(args.space)
    if args.wandb:
        import os

        os.environ.setdefault("WANDB_SILENT", "true")
    options = SearchOptions(
        address=args.address,
        storage=args.storage,
        name=args.name,
        resume=args.resume,
        wandb=args.wandb,
        evaluate=not args.no_eval,
        num_cpus=args.num_cpus,
        verbose=args.verbose,
    )
    outcome = run_search(spec, options, space_path=args.space)
    return 0 if outcome.finished else 1


def add_search_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``search SPACE.yaml`` to ``subparsers``."""
    parser = subparsers.add_parser(
        "search",
        help="hyperparameter search (Ray Tune + Optuna/ASHA) from a search-space YAML",
        description=(
            "Run the search a YAML file describes (see docs/search.md) and write "
            "<storage>/<name>/trials.parquet and iterations.parquet, optuna.db, baselines.json."
        ),
    )
    parser.add_argument("space", metavar="SPACE.yaml", help="search-space file")
    parser.add_argument(
        "--address",
        default=None,
        help="join a running Ray cluster: 'auto' or ray://HOST:PORT (default: start a local Ray)",
    )
    parser.add_argument(
        "--storage",
        metavar="PATH_OR_URI",
        help="results root (default: the file's storage key, 'results'); on a multi-node "
        "cluster a path every node can reach",
    )
    parser.add_argument("--name", help="experiment name (default: the file's experiment key)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted search: finished trials kept, unfinished ones continue "
        "from their last checkpoint",
    )
    parser.add_argument(
        "--wandb", action="store_true", help="log every trial as a W&B run (offline without key)"
    )
    parser.add_argument(
        "--no-eval", action="store_true", help="skip the held-out test-day evaluation"
    )
    parser.add_argument(
        "--num-cpus", type=int, metavar="N", help="CPUs of the local Ray (default: all)"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        type=int,
        choices=(0, 1, 2, 3),
        default=1,
        help="Tune verbosity; 2+ also shows trial logs (default: 1)",
    )
    return _finish(parser, run_search_command)


# ------------------------------------------------------------------------------------ export
def run_export_command(args: argparse.Namespace) -> int:
    """Rebuild trials.parquet and iterations.parquet from a Tune experiment directory."""
    from pathlib import Path

    from tune_grid.results.export import export_experiment

    directory = Path(args.dir)
    if not directory.is_dir():
        return _fail(f"{directory}: no such directory")
    trials, rows = export_experiment(directory, args.out)
    print(f"wrote {trials} trials, {rows} iteration rows to {Path(args.out or directory)}")
    return 0


def add_export_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``export DIR`` to ``subparsers``."""
    parser = subparsers.add_parser(
        "export",
        help="rebuild trials.parquet/iterations.parquet from a Tune experiment directory",
    )
    parser.add_argument("dir", metavar="DIR", help="experiment directory (e.g. results/NAME)")
    parser.add_argument("--out", metavar="DIR", help="write the files here (default: DIR)")
    return _finish(parser, run_export_command)


# ------------------------------------------------------------------------------- wandb-sweep
def run_wandb_sweep_command(args: argparse.Namespace) -> int:
    """Print (or write) the W&B sweep configuration equivalent to a search file."""
    import yaml

    from tune_grid.search.space_file import load_space_file
    from tune_grid.search.spaces import wandb_sweep

    spec = load_space_file(args.space)
    text = yaml.safe_dump(wandb_sweep(spec), sort_keys=False)
    if args.out:
        from pathlib import Path

        Path(args.out).write_text(text)
        print(f"wrote {args.out}; start it with: wandb sweep {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def add_wandb_sweep_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``wandb-sweep SPACE.yaml`` to ``subparsers``."""
    parser = subparsers.add_parser(
        "wandb-sweep", help="print the equivalent W&B sweep config (YAML)"
    )
    parser.add_argument("space", metavar="SPACE.yaml", help="search-space file")
    parser.add_argument("-o", "--out", metavar="FILE", help="write to FILE instead of stdout")
    return _finish(parser, run_wandb_sweep_command)


# ------------------------------------------------------------------------------ bench search
def run_bench_search_command(args: argparse.Namespace) -> int:
    """Optuna+ASHA vs random+FIFO at the same trial budget."""
    from tune_grid.search.bench import BenchOptions, run_search_benchmark

    options = BenchOptions(
        repetitions=args.repetitions,
        num_samples=args.num_samples,
        iterations=args.iterations,
        target=args.target,
        storage=args.storage,
        smoke=args.smoke,
        num_cpus=args.num_cpus,
    )
    run_search_benchmark(options)
    return 0


def add_bench_search_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``search`` to the ``bench`` subparsers (``tune-grid bench search``)."""
    parser = subparsers.add_parser(
        "search",
        help="Optuna+ASHA vs random+FIFO: time and env steps to reach a target objective",
    )
    parser.add_argument(
        "--repetitions", type=int, default=3, metavar="N", help="repetitions (median; default 3)"
    )
    parser.add_argument(
        "--num-samples", type=int, default=8, metavar="N", help="trials per search (default 8)"
    )
    parser.add_argument(
        "--iterations", type=int, default=8, metavar="N", help="max iterations per trial"
    )
    parser.add_argument(
        "--target",
        type=float,
        default=None,
        metavar="X",
        help="target objective (default: a quantile of what both searches reach)",
    )
    parser.add_argument(
        "--storage", metavar="DIR", default=None, help="results root (default: a temp dir)"
    )
    parser.add_argument("--num-cpus", type=int, metavar="N", help="CPUs of the local Ray")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny budget: checks the benchmark runs end to end"
    )
    return _finish(parser, run_bench_search_command)


def build_parser() -> argparse.ArgumentParser:
    """The standalone parser: search | export | wandb-sweep | bench search."""
    parser = argparse.ArgumentParser(prog="tune-grid", description="tune-grid search commands")
    parser.error = types.MethodType(_one_line_error, parser)  # type: ignore[method-assign]
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_search_parser(sub)
    add_export_parser(sub)
    add_wandb_sweep_parser(sub)
    bench = sub.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    add_bench_search_parser(bench_sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m tune_grid.cli_search``."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted: continue with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
