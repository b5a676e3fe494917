"""The observation: one table of features, and the compiled kernel that computes them.

Every feature is a row of :func:`observation_features`: its name, its bounds (the observation
space; values are clipped to them), what it measures and how it is normalized, and which
``Source`` the kernel computes it from (with an argument, e.g. how many hours ahead). The env's
observation space, the env's step, the batched env and the checkpoints' feature list all derive
from that table; the kernel :func:`observe` computes each column from its source code, so the
columns never depend on positions kept in sync by hand. A new feature is a table row plus, for a
new kind of quantity, a ``Source`` and its branch in :func:`observe` (a test checks every source
is computed).

Protocol features (``tune_grid.env.protocols``) are appended after these by the env.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numba
import numpy as np

from tune_grid.config import EnvConfig
from tune_grid.grid.devices import DIESEL, MICROGRIDS

PRICE_SCALE = 100.0
"""$/MWh per unit of the price features."""
VOLTAGE_OBS_SCALE = 0.05
"""pu per unit of the voltage features ((v - 1) / 0.05: +-1 at the safety limits)."""


class Source(IntEnum):
    """What a feature column is computed from (the branches of :func:`observe`)."""

    HOUR_SIN = 0
    HOUR_COS = 1
    PRICE_AHEAD = 2
    TERMINAL_PRICE = 3
    LOAD = 4
    PV = 5
    WIND = 6
    SOC = 7
    DG_P = 8
    DG_Q = 9
    V_MIN = 10
    V_MAX = 11
    EXCHANGE = 12
    AGENT_ID = 13
    DG_COST = 14
    DG_P_MAX = 15


@dataclass(frozen=True)
class ObsFeature:
    """One observation column."""

    name: str
    source: Source
    low: float
    high: float
    meaning: str
    arg: int = 0
    """Source argument: hours ahead (PRICE_AHEAD), agent index (AGENT_ID)."""


def observation_features(config: EnvConfig | None = None) -> tuple[ObsFeature, ...]:
    """The base observation of ``config`` (without protocol features), in column order.

    Load, PV, wind and prices are those of the hour the action will apply to; DG, SoC, voltage
    and exchange features describe the state after the last step.
    """
    config = config or EnvConfig()
    price = (-2.0, 12.0)
    rows = [
        ObsFeature("hour_sin", Source.HOUR_SIN, -1.0, 1.0, "sin(2 pi hour / 24)"),
        ObsFeature("hour_cos", Source.HOUR_COS, -1.0, 1.0, "cos(2 pi hour / 24)"),
        ObsFeature("price", Source.PRICE_AHEAD, *price, "LMP of this hour / 100 $/MWh"),
    ]
    rows += [
        ObsFeature(
            f"price_ahead_{k}",
            Source.PRICE_AHEAD,
            *price,
            f"LMP {k} h ahead / 100 $/MWh (day-ahead prices; past midnight the terminal price)",
            arg=k,
        )
        for k in range(1, config.price_lookahead + 1)
    ]
    rows += [
        ObsFeature(
            "terminal_price",
            Source.TERMINAL_PRICE,
            0.0,
            12.0,
            "the day's terminal price (mean LMP, >= 0) / 100 $/MWh: what the battery's "
            "end-of-day energy is settled at (tune_grid.economics)",
        ),
        ObsFeature("load", Source.LOAD, 0.0, 2.0, "own load, per unit of its 2023 peak"),
        ObsFeature("pv", Source.PV, 0.0, 2.0, "PV capacity factor"),
        ObsFeature("wind", Source.WIND, 0.0, 2.0, "wind capacity factor"),
        ObsFeature("soc", Source.SOC, 0.0, 1.0, "battery state of charge"),
        ObsFeature("dg_p", Source.DG_P, 0.0, 1.0, "last DG output / P_max (0: off)"),
        ObsFeature("dg_q", Source.DG_Q, -1.0, 1.0, "last DG reactive power / S"),
        ObsFeature("v_min", Source.V_MIN, -10.0, 10.0, "own lowest bus voltage, (v - 1) / 0.05"),
        ObsFeature("v_max", Source.V_MAX, -10.0, 10.0, "own highest bus voltage, (v - 1) / 0.05"),
        ObsFeature("exchange", Source.EXCHANGE, -5.0, 5.0, "last import at the POC, MW"),
    ]
    rows += [
        ObsFeature(f"agent_{mg}", Source.AGENT_ID, 0.0, 1.0, f"1 for {mg}, else 0", arg=i)
        for i, mg in enumerate(MICROGRIDS)
    ]
    rows += [
        ObsFeature("dg_cost", Source.DG_COST, 0.0, 5.0, "own diesel's linear fuel cost b / 100"),
        ObsFeature("dg_p_max", Source.DG_P_MAX, 0.0, 5.0, "own diesel's P_max, MW"),
    ]
    return tuple(rows)


def feature_names(features: tuple[ObsFeature, ...]) -> tuple[str, ...]:
    return tuple(f.name for f in features)


@dataclass(frozen=True)
class ObservationLayout:
    """A feature table as the arrays :func:`observe` reads."""

    sources: np.ndarray
    args: np.ndarray
    low: np.ndarray
    high: np.ndarray
    agent_constants: np.ndarray
    """(agents, 2): each agent's diesel b / PRICE_SCALE and P_max (the DG_COST, DG_P_MAX
    sources)."""

    @classmethod
    def of(cls, features: tuple[ObsFeature, ...]) -> ObservationLayout:
        constants = np.array(
            [[DIESEL[mg].b / PRICE_SCALE, DIESEL[mg].max_p_mw] for mg in MICROGRIDS]
        )
        return cls(
            sources=np.array([int(f.source) for f in features], dtype=np.int64),
            args=np.array([f.arg for f in features], dtype=np.int64),
            low=np.array([f.low for f in features]),
            high=np.array([f.high for f in features]),
            agent_constants=constants,
        )


@numba.njit(cache=True)
def observe(  # noqa: PLR0913 - numba kernel
    sources: np.ndarray,
    args: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    agent_constants: np.ndarray,
    hour: int,
    day_prices: np.ndarray,
    terminal_price: float,
    load: np.ndarray,
    pv: float,
    wind: float,
    soc: np.ndarray,
    dg_p: np.ndarray,
    dg_q: np.ndarray,
    dg_pmax: np.ndarray,
    dg_s: np.ndarray,
    v_min: np.ndarray,
    v_max: np.ndarray,
    exchange: np.ndarray,
    out: np.ndarray,
) -> bool:
    """Every agent's features (columns of the layout) at ``hour``, clipped, into the first
    ``sources.size`` columns of ``out`` (agents x columns). Returns False on an unknown source.

    ``day_prices``: the day's 24 LMPs; ``load``: each agent's own load factor this hour.
    """
    angle = 2.0 * math.pi * hour / 24.0
    for i in range(out.shape[0]):
        for j in range(sources.size):
            s = sources[j]
            if s == Source.HOUR_SIN:
                v = math.sin(angle)
            elif s == Source.HOUR_COS:
                v = math.cos(angle)
            elif s == Source.PRICE_AHEAD:
                h = hour + args[j]
                v = (day_prices[h] if h < day_prices.size else terminal_price) / PRICE_SCALE
            elif s == Source.TERMINAL_PRICE:
                v = terminal_price / PRICE_SCALE
            elif s == Source.LOAD:
                v = load[i]
            elif s == Source.PV:
                v = pv
            elif s == Source.WIND:
                v = wind
            elif s == Source.SOC:
                v = soc[i]
            elif s == Source.DG_P:
                v = dg_p[i] / dg_pmax[i]
            elif s == Source.DG_Q:
                v = dg_q[i] / dg_s[i]
            elif s == Source.V_MIN:
                v = (v_min[i] - 1.0) / VOLTAGE_OBS_SCALE
            elif s == Source.V_MAX:
                v = (v_max[i] - 1.0) / VOLTAGE_OBS_SCALE
            elif s == Source.EXCHANGE:
                v = exchange[i]
            elif s == Source.AGENT_ID:
                v = 1.0 if args[j] == i else 0.0
            elif s == Source.DG_COST:
                v = agent_constants[i, 0]
            elif s == Source.DG_P_MAX:
                v = agent_constants[i, 1]
            else:
                return False
            out[i, j] = min(max(v, low[j]), high[j])
    return True
