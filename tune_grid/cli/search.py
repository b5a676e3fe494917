"""``tune-grid search``, ``quickstart``, ``export`` and ``wandb-sweep``.

The search file is validated before Ray starts; bad input is one ``error: ...`` line, exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tune_grid.cli.common import Subparsers
from tune_grid.config import ConfigError
from tune_grid.search.answer.summary import ANSWER_FILE, format_answer

REPO_ROOT = Path(__file__).resolve().parents[2]
QUICKSTART_SPACE = REPO_ROOT / "search_spaces" / "quickstart.yaml"


# ------------------------------------------------------------------------------------ search
def run_search_command(args: argparse.Namespace) -> int:
    """Validate the file (before Ray starts), then run or resume the search."""
    from tune_grid.search.pipeline import run_search
    from tune_grid.search.run.tuner import SearchOptions
    from tune_grid.search.spec.space_file import load_space_file

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
        confirm=not getattr(args, "no_confirm", False),
        print_answer=getattr(args, "print_answer", True),
        num_cpus=args.num_cpus,
        verbose=args.verbose,
    )
    outcome = run_search(spec, options, space_path=args.space)
    return 0 if outcome.finished else 1


def add_search_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
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
        "--no-confirm",
        action="store_true",
        help="skip the file's confirm: stage (fresh-seed racing of the finalists)",
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
    parser.set_defaults(func=run_search_command)
    return parser


# ------------------------------------------------------------------------------------ export
def run_export_command(args: argparse.Namespace) -> int:
    """Rebuild trials.parquet and iterations.parquet from a Tune experiment directory."""
    from tune_grid.results.export import export_experiment

    directory = Path(args.dir)
    if not directory.is_dir():
        raise ConfigError(f"{directory}: no such directory")
    trials, rows = export_experiment(directory, args.out)
    print(f"wrote {trials} trials, {rows} iteration rows to {Path(args.out or directory)}")
    return 0


def add_export_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``export DIR`` to ``subparsers``."""
    parser = subparsers.add_parser(
        "export",
        help="rebuild trials.parquet/iterations.parquet from a Tune experiment directory",
    )
    parser.add_argument("dir", metavar="DIR", help="experiment directory (e.g. results/NAME)")
    parser.add_argument("--out", metavar="DIR", help="write the files here (default: DIR)")
    parser.set_defaults(func=run_export_command)
    return parser


# ------------------------------------------------------------------------------- wandb-sweep
def run_wandb_sweep_command(args: argparse.Namespace) -> int:
    """Print (or write) the W&B sweep configuration equivalent to a search file."""
    import yaml

    from tune_grid.search.spec.space_file import load_space_file
    from tune_grid.search.spec.spaces import wandb_sweep

    spec = load_space_file(args.space)
    text = yaml.safe_dump(wandb_sweep(spec), sort_keys=False)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}; start it with: wandb sweep {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def add_wandb_sweep_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``wandb-sweep SPACE.yaml`` to ``subparsers``."""
    parser = subparsers.add_parser(
        "wandb-sweep", help="print the equivalent W&B sweep config (YAML)"
    )
    parser.add_argument("space", metavar="SPACE.yaml", help="search-space file")
    parser.add_argument("-o", "--out", metavar="FILE", help="write to FILE instead of stdout")
    parser.set_defaults(func=run_wandb_sweep_command)
    return parser


# -------------------------------------------------------------------------------- quickstart
def run_quickstart_command(args: argparse.Namespace) -> int:
    """The main job: the quickstart search on a local Ray, then its report."""
    from tune_grid.cli.results import run_report_command

    if not QUICKSTART_SPACE.exists():
        raise ConfigError(
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
        no_confirm=False,
        print_answer=False,  # printed after the report, as the last lines
        num_cpus=None,
        verbose=1,
    )
    code = run_search_command(search_args)
    if code != 0:
        return code
    from tune_grid.search.spec.space_file import load_space_file

    experiment = load_space_file(QUICKSTART_SPACE).experiment
    code = run_report_command(argparse.Namespace(results=[str(storage / experiment)], out=None))
    answer_path = storage / experiment / ANSWER_FILE
    if code == 0 and answer_path.exists():
        import json

        print(format_answer(json.loads(answer_path.read_text())))
    return code


def add_quickstart_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``quickstart`` to ``subparsers``."""
    parser = subparsers.add_parser(
        "quickstart", help="the main job: quickstart search, then its report"
    )
    parser.add_argument("--storage", default="results", help="results root (default: results)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted quickstart")
    parser.add_argument("--wandb", action="store_true", help="log every trial to W&B (offline ok)")
    parser.set_defaults(func=run_quickstart_command)
    return parser
