"""tune-grid: hyperparameter search for multi-agent RL on networked microgrids.

Public entry points: :func:`make_env`, :func:`evaluate`, :mod:`tune_grid.baselines`.
They load lazily, so ``import tune_grid.results.schema`` stays light; nothing here imports Ray.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tune_grid import baselines
    from tune_grid.config import EnvConfig, RunConfig
    from tune_grid.env import ENV_NAME, NetworkedMicrogridEnv, make_env
    from tune_grid.env.evaluation import evaluate

__all__ = [
    "ENV_NAME",
    "EnvConfig",
    "NetworkedMicrogridEnv",
    "RunConfig",
    "baselines",
    "evaluate",
    "make_env",
]
__version__ = "0.1.0"

_LAZY = {
    "ENV_NAME": "tune_grid.env",
    "NetworkedMicrogridEnv": "tune_grid.env",
    "make_env": "tune_grid.env",
    "evaluate": "tune_grid.env.evaluation",
    "EnvConfig": "tune_grid.config",
    "RunConfig": "tune_grid.config",
}


def __getattr__(name: str) -> Any:
    if name == "baselines":
        return importlib.import_module("tune_grid.baselines")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tune_grid' has no attribute {name!r}")
