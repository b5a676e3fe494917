"""The root parser and :func:`main`: the one place where errors become an exit status."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from tune_grid.cli.bench import add_bench_parser
from tune_grid.cli.common import OneLineArgumentParser, print_error
from tune_grid.cli.env import add_baselines_parser, add_data_parser
from tune_grid.cli.oracle import add_oracle_parser
from tune_grid.cli.results import add_outcomes_parser, add_report_parser
from tune_grid.cli.search import (
    add_export_parser,
    add_quickstart_parser,
    add_search_parser,
    add_wandb_sweep_parser,
)
from tune_grid.cli.train import add_evaluate_parser, add_train_parser
from tune_grid.errors import TuneGridError

EXIT_INTERRUPTED = 130
SUBCOMMANDS = (
    add_quickstart_parser,
    add_train_parser,
    add_evaluate_parser,
    add_search_parser,
    add_export_parser,
    add_wandb_sweep_parser,
    add_oracle_parser,
    add_report_parser,
    add_outcomes_parser,
    add_baselines_parser,
    add_bench_parser,
    add_data_parser,
)
"""Every subcommand's ``add_<name>_parser``, in the order ``--help`` lists them."""


def build_parser() -> OneLineArgumentParser:
    """The ``tune-grid`` parser with every subcommand."""
    parser = OneLineArgumentParser(
        prog="tune-grid",
        description="Hyperparameter search for multi-agent RL on networked microgrids.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; bad input (any TuneGridError, or a path that does not exist) prints one
    ``error: ...`` line and returns 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        resume = " (continue with --resume)" if args.command in ("search", "quickstart") else ""
        print(f"interrupted{resume}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (TuneGridError, FileNotFoundError) as exc:
        return print_error(exc)


if __name__ == "__main__":
    sys.exit(main())
