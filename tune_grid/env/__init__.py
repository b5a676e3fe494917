"""The networked-microgrid environment and its factory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tune_grid.config import EnvConfig
from tune_grid.env.microgrid import ENV_NAME, NetworkedMicrogridEnv

__all__ = ["ENV_NAME", "NetworkedMicrogridEnv", "make_env"]


def make_env(
    config: Mapping[str, Any] | EnvConfig | None = None, **overrides: Any
) -> NetworkedMicrogridEnv:
    """Build the ParallelEnv from a config mapping (or EnvConfig) plus keyword overrides.

    Unknown keys, wrong types and out-of-range values raise ``ValueError`` naming the key.
    """
    values = config.to_dict() if isinstance(config, EnvConfig) else dict(config or {})
    values.update(overrides)
    return NetworkedMicrogridEnv(EnvConfig.from_dict(values))
