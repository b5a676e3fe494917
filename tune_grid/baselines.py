"""Baseline policies. A policy maps the observation dict to the action dict.

Each factory takes the environment (for its spaces and configuration) and returns a policy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tune_grid.env.microgrid import OBS_FEATURES, PRICE_SCALE, NetworkedMicrogridEnv
from tune_grid.grid.data import load_profiles
from tune_grid.grid.devices import BATTERY, DIESEL, MICROGRIDS, PV_RATING_MW, WIND_RATING_MW

Policy = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
_I = {name: i for i, name in enumerate(OBS_FEATURES)}
LOW_VOLTAGE_OBS = -0.6  # 0.97 pu in the observation's (v - 1) / 0.05 scale
IMPORT_LIMIT_MW = 0.3  # per microgrid: about where the idle feeder reaches 0.97 pu


def do_nothing(env: NetworkedMicrogridEnv) -> Policy:
    """Battery idle, diesel generator off, no reactive power: all energy comes from the DSO."""
    action = np.array([0.0, -1.0, 0.0], dtype=np.float32)

    def policy(observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {agent: action.copy() for agent in observations}

    return policy


def random_policy(env: NetworkedMicrogridEnv, seed: int = 0) -> Policy:
    """Uniform random actions from a private, seeded generator."""
    rng = np.random.default_rng(seed)

    def policy(observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {
            agent: rng.uniform(-1.0, 1.0, size=env.action_space(agent).shape).astype(np.float32)
            for agent in observations
        }

    return policy


def rule_based(env: NetworkedMicrogridEnv) -> Policy:
    """A sensible operator's rules, with price thresholds taken from the training year only.

    The feeder is long and weak: a microgrid's import moves its voltage by roughly 0.1 pu per
    MW, so the rules never export and keep imports moderate.

    * Battery arbitrage: when the LMP is below the 30th percentile of 2023 prices and the own
      voltage did not sag below 0.97 pu in the last hour, charge, but only as far as the import
      stays under ``IMPORT_LIMIT_MW``; above the 70th percentile, discharge up to the net load.
    * Diesel generator: economic dispatch up to the net load: run where the marginal cost
      2aP + b is below the LMP.
    * No reactive power.
    """
    train_prices = load_profiles().query("split == 'train'")["price"].to_numpy()
    low, high = np.percentile(train_prices, [30, 70])
    nominal_load = {
        mg: float(env.net.load.loc[env.net.load.zone == mg, "p_nom_mw"].sum())
        * env.config.load_scale
        for mg in MICROGRIDS
    }

    def act(agent: str, obs: np.ndarray) -> np.ndarray:
        dg = DIESEL[agent]
        price = float(obs[_I["price"]]) * PRICE_SCALE
        sagging = float(obs[_I["v_min"]]) < LOW_VOLTAGE_OBS
        net_load = (
            float(obs[_I["load"]]) * nominal_load[agent]
            - float(obs[_I["pv"]]) * PV_RATING_MW
            - float(obs[_I["wind"]]) * WIND_RATING_MW
        )
        if price < low and not sagging:
            battery_mw = float(np.clip(IMPORT_LIMIT_MW - net_load, 0.0, BATTERY.max_power_mw))
        elif price > high:
            battery_mw = -float(np.clip(net_load, 0.0, BATTERY.max_power_mw))
        else:
            battery_mw = 0.0
        cap = float(np.clip(net_load + battery_mw, 0.0, dg.max_p_mw))
        p_dg = float(np.clip((price - dg.b) / (2 * dg.a), 0.0, cap))
        return np.array(
            [battery_mw / BATTERY.max_power_mw, 2.0 * p_dg / dg.max_p_mw - 1.0, 0.0],
            dtype=np.float32,
        )

    def policy(observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {agent: act(agent, obs) for agent, obs in observations.items()}

    return policy


BASELINES: dict[str, Callable[[NetworkedMicrogridEnv], Policy]] = {
    "do_nothing": do_nothing,
    "random": random_policy,
    "rule_based": rule_based,
}
