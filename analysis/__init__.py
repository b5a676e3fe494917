"""Analysis of tune-grid search results (the Parquet files of ``tune_grid.results.schema``).

Imports neither Ray nor torch, so it runs anywhere pandas and matplotlib do. Entry points:
:func:`analysis.report.build_report` and ``python -m analysis RESULTS_DIR ... [--out DIR]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from analysis.load import AnalysisError, Results, load_results

if TYPE_CHECKING:
    from analysis.report import build_report

__all__ = ["AnalysisError", "Results", "build_report", "load_results"]


def __getattr__(name: str) -> Any:
    if name == "build_report":  # lazily: it pulls in matplotlib
        from analysis.report import build_report

        return build_report
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
