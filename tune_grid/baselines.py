"""Baseline policies. A policy maps the observation dict to the action dict.

Each factory takes the environment (for its spaces and configuration) and returns a policy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tune_grid import economics
from tune_grid.env.microgrid import NetworkedMicrogridEnv
from tune_grid.env.observation import PRICE_SCALE
from tune_grid.grid.devices import BATTERY, DIESEL, HOUR, MICROGRIDS, PV_RATING_MW, WIND_RATING_MW

Policy = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
LOW_VOLTAGE_OBS = -0.6  # 0.97 pu in the observation's (v - 1) / 0.05 scale
IMPORT_LIMIT_MW = 0.3  # per microgrid: about where the idle feeder reaches 0.97 pu
CHARGE_BELOW = 0.85
"""Charge when the LMP is below this fraction of the day's terminal price..."""
DISCHARGE_ABOVE = 1.15
"""... and discharge above this fraction: the round trip through the terminal settlement costs
a factor 1 / (eta_c eta_d) = 1.04, so these margins leave profit after it."""


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
    """A sensible operator's rules, from the observation alone (day-ahead prices included).

    The feeder is long and weak: a microgrid's import moves its voltage by roughly 0.1 pu per
    MW, so the rules keep imports moderate and never export on purpose.

    * Battery arbitrage against the day's terminal price (its mean LMP, at which the battery's
      end-of-day energy is settled): below ``CHARGE_BELOW`` x that price, and if the own voltage
      did not sag below 0.97 pu in the last hour, charge as far as the import stays under
      ``IMPORT_LIMIT_MW``; above ``DISCHARGE_ABOVE`` x it, discharge up to the net load.
    * Diesel (unit commitment): economic output ``(LMP - b) / 2a``, at least the minimum stable
      load and at most the net load; run it only where the net load allows the minimum and the
      average cost at that output, no-load term included, is below the LMP.
    * No reactive power.
    """
    index = {name: i for i, name in enumerate(env.obs_features)}
    nominal_load = {
        mg: float(env.net.load.loc[env.net.load.zone == mg, "p_nom_mw"].sum())
        * env.config.load_scale
        for mg in MICROGRIDS
    }

    def act(agent: str, obs: np.ndarray) -> np.ndarray:
        dg = DIESEL[agent]
        price = float(obs[index["price"]]) * PRICE_SCALE
        reference = float(obs[index["terminal_price"]]) * PRICE_SCALE
        sagging = float(obs[index["v_min"]]) < LOW_VOLTAGE_OBS
        net_load = (
            float(obs[index["load"]]) * nominal_load[agent]
            - float(obs[index["pv"]]) * PV_RATING_MW
            - float(obs[index["wind"]]) * WIND_RATING_MW
        )
        if price < CHARGE_BELOW * reference and not sagging:
            battery_mw = float(np.clip(IMPORT_LIMIT_MW - net_load, 0.0, BATTERY.max_power_mw))
        elif price > DISCHARGE_ABOVE * reference:
            battery_mw = -float(np.clip(net_load, 0.0, BATTERY.max_power_mw))
        else:
            battery_mw = 0.0
        cap = float(np.clip(net_load + battery_mw, 0.0, dg.max_p_mw))
        p_dg = min(max((price - dg.b) / (2 * dg.a), dg.min_p_mw), cap)
        commit = p_dg >= dg.min_p_mw and (
            economics.fuel_cost(p_dg, dg.a, dg.b, dg.c, HOUR) < price * p_dg * HOUR
        )
        dg_action = (p_dg - dg.min_p_mw) / (dg.max_p_mw - dg.min_p_mw) if commit else -1.0
        return np.array([battery_mw / BATTERY.max_power_mw, dg_action, 0.0], dtype=np.float32)

    def policy(observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {agent: act(agent, obs) for agent, obs in observations.items()}

    return policy


BASELINES: dict[str, Callable[[NetworkedMicrogridEnv], Policy]] = {
    "do_nothing": do_nothing,
    "random": random_policy,
    "rule_based": rule_based,
}
