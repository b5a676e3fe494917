"""``python -m analysis RESULTS_DIR [RESULTS_DIR ...] [--out DIR]``: write the HTML report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from analysis.load import AnalysisError
from tune_grid.stats import DEFAULT_RESAMPLES


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description="Analyse tune-grid results folders into tables, plots and report.html.",
    )
    parser.add_argument("results_dirs", nargs="+", type=Path, metavar="RESULTS_DIR")
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: <first dir>/report)"
    )
    parser.add_argument(
        "--resamples", type=int, default=DEFAULT_RESAMPLES, help="bootstrap resamples"
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap and fANOVA seed")
    args = parser.parse_args(argv)
    if args.resamples < 1:
        parser.error("--resamples must be >= 1")
    from analysis.report import build_report

    try:
        path = build_report(args.results_dirs, args.out, n_resamples=args.resamples, seed=args.seed)
    except AnalysisError as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
