"""The ``tune-grid`` command line (entry point ``tune_grid.cli.commands``).

Subcommands: quickstart | train | evaluate | search | export | wandb-sweep | oracle | report |
outcomes | baselines | bench {env,train,search} | data build. One module per group of commands,
each with ``add_<name>_parser(subparsers)`` storing its handler as ``func``; handlers raise a
:class:`~tune_grid.errors.TuneGridError` for bad input, which :func:`main` prints as one
``error: ...`` line with exit status 2. Heavy imports (Ray, torch) happen inside the handlers, so
``--help`` and input errors are fast. ``python -m tune_grid.cli`` runs the same commands.
"""

from __future__ import annotations

from tune_grid.cli.commands import build_parser, main

__all__ = ["build_parser", "main"]
