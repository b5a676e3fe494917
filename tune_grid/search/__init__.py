"""Hyperparameter search: search-space YAML files, the multi-seed trainable, Tune/Optuna/ASHA.

Importing this package does not import Ray; :func:`run_search` and the trainable import it.

* :func:`load_space_file` / :func:`parse_space` validate a search file (:class:`SpaceFile`).
* :func:`run_search` runs or resumes a search (:class:`SearchOptions`) and exports Parquet.
* :func:`wandb_sweep` gives the equivalent W&B sweep configuration.
"""

from __future__ import annotations

from typing import Any

from tune_grid.search.space_file import SpaceFile, SpaceFileError, load_space_file, parse_space
from tune_grid.search.spaces import optuna_space, tune_param_space, wandb_sweep

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
    if name in ("run_search", "SearchOptions"):
        from tune_grid.search import tuner

        return getattr(tuner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
