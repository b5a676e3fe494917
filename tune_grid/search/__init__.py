"""Hyperparameter search: search-space YAML files, the multi-seed trainable, Tune/Optuna/ASHA.

Importing this package does not import Ray; :func:`run_search` and the trainable import it.

* :func:`load_space_file` / :func:`parse_space` validate a search file (:class:`SpaceFile`).
* :func:`run_search` runs or resumes a search (:class:`SearchOptions`) and exports Parquet.
* :func:`wandb_sweep` gives the equivalent W&B sweep configuration.
"""

from __future__ import annotations

from typing import Any

from tune_grid.search.spec.space_file import SpaceFile, SpaceFileError, load_space_file, parse_space
from tune_grid.search.spec.spaces import optuna_space, tune_param_space, wandb_sweep

__all__ = [
    "SearchOptions",
    "SpaceFile",
    "SpaceFileError",
    "load_space_file",
    "optuna_space",
    "parse_space",
    "run_search",
    "tune_param_space",
    "wandb_sweep",
]


def __getattr__(name: str) -> Any:
    if name == "run_search":
        from tune_grid.search.pipeline import run_search

        return run_search
    if name == "SearchOptions":
        from tune_grid.search.run.tuner import SearchOptions

        return SearchOptions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
