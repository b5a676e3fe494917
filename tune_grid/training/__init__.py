"""PPO training with RLlib: config building, metrics, checkpoints, trained policy, evaluation.

Names are imported lazily (the submodules import Ray and torch, but never start Ray).
The search layer uses:

* :func:`build_ppo_config` (the one RunConfig -> PPOConfig mapping), after
  :func:`register_rllib_env`,
* :func:`iteration_metrics` (an RLlib result -> tune-grid metric names),
* :class:`TrainedPolicy` (a checkpoint as a policy, for evaluation),
* :func:`train` with :class:`TrainOptions` (the ``tune-grid train`` loop).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MicrogridMetricsCallback": "callbacks",
    "CheckpointError": "checkpoints",
    "CheckpointMeta": "checkpoints",
    "read_meta": "checkpoints",
    "iteration_metrics": "metrics",
    "TrainedPolicy": "policy",
    "SHARED_MODULE_ID": "ppo",
    "build_ppo_config": "ppo",
    "module_ids": "ppo",
    "RLLIB_ENV_NAME": "rllib_env",
    "env_creator": "rllib_env",
    "register_rllib_env": "rllib_env",
    "TrainOptions": "runner",
    "TrainResult": "runner",
    "train": "runner",
}


def __getattr__(name: str) -> Any:
    """Import submodules on first use, so ``tune_grid.training.checkpoints`` stays light."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"tune_grid.training.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "RLLIB_ENV_NAME",
    "SHARED_MODULE_ID",
    "CheckpointError",
    "CheckpointMeta",
    "MicrogridMetricsCallback",
    "TrainOptions",
    "TrainResult",
    "TrainedPolicy",
    "build_ppo_config",
    "env_creator",
    "iteration_metrics",
    "module_ids",
    "read_meta",
    "register_rllib_env",
    "train",
]
