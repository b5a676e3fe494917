"""Coordination protocols between the DSO and the microgrids (vertical) and among microgrids
(horizontal). They change what agents observe and how energy is settled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tune_grid.config import EnvConfig
from tune_grid.grid.devices import MICROGRIDS


@dataclass
class Settlement:
    """Money of one hour after the protocols: exchange cost and protocol costs per agent ($)."""

    exchange_cost: np.ndarray
    extra_cost: np.ndarray
    info: list[dict[str, Any]] = field(default_factory=lambda: [{} for _ in MICROGRIDS])


class Protocols:
    """The active vertical and horizontal protocols of one environment."""

    def __init__(self, config: EnvConfig, net: Any) -> None:
        if config.vertical_protocol != "none" or config.horizontal_protocol != "none":
            raise ValueError(
                "protocols other than 'none' are not available in this build; "
                "allowed: vertical_protocol='none', horizontal_protocol='none'"
            )
        self.config = config
        self.obs_size = 0
        self.obs_low = np.zeros(0, dtype=np.float32)
        self.obs_high = np.zeros(0, dtype=np.float32)

    def reset(self, rng: np.random.Generator) -> None:
        return None

    def observations(self) -> list[tuple[float, ...]]:
        return [()] * len(MICROGRIDS)

    def settle(
        self,
        *,
        price: float,
        exchange: np.ndarray,
        exchange_cost: np.ndarray,
        dg_p: np.ndarray,
        result: Any,
        hour: int,
    ) -> Settlement:
        return Settlement(exchange_cost=exchange_cost, extra_cost=np.zeros(len(MICROGRIDS)))

    def after_step(self, *, next_hour: int, day: int, profiles: Any) -> None:
        return None
