"""What every subcommand shares: the parser class, the handler type and the one error helper.

A subcommand module has ``add_<name>_parser(subparsers)``, which adds its parser and stores its
handler with ``set_defaults(func=handler)``; a handler returns the exit status and raises a
:class:`~tune_grid.errors.TuneGridError` for bad input, which :func:`tune_grid.cli.main` prints
with :func:`print_error`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from tune_grid.config import ConfigError

EXIT_USAGE = 2
"""Exit status of bad input (argparse's own, and every TuneGridError)."""
Handler = Callable[[argparse.Namespace], int]
Subparsers = Any
"""``parser.add_subparsers()``'s return value (argparse does not name its type publicly)."""


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, ``<prog>: error: <message>``, exit status 2.

    Subcommand parsers from ``add_subparsers`` are of the parent's class, so the root parser being
    one makes every parser one.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def print_error(error: BaseException) -> int:
    """Print ``error: <first line of the message>`` to stderr; return the exit status, 2."""
    lines = str(error).strip().splitlines() or [type(error).__name__]
    print(f"error: {lines[0]}", file=sys.stderr)
    return EXIT_USAGE


def parse_days(text: str | None, *, allow_zero: bool) -> int | None:
    """``--days N|all``: None for all, else N (>= 1, or >= 0 with ``allow_zero``)."""
    if text is None or str(text).lower() == "all":
        return None
    try:
        days = int(text)
    except ValueError:
        raise ConfigError(f"days: expected an integer or 'all', got {text!r}") from None
    if days < (0 if allow_zero else 1):
        raise ConfigError(f"days must be >= {0 if allow_zero else 1} or 'all', got {days}")
    return days


def check_days_in_split(days: int | None, split: str) -> None:
    """``days`` evenly spaced days must fit in the split (raised before any work starts)."""
    if days is None:
        return
    from tune_grid.grid.data import check_day_count, split_profiles

    check_day_count(days, split_profiles(split).num_days)
