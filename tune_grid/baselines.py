"""Baseline policies. A policy maps the observation dict to the action dict.

Each factory takes the environment (for its spaces and configuration) and returns a policy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tune_grid.env.microgrid import OBS_FEATURES, PRICE_SCALE, NetworkedMicrogridEnv
from tune_grid.grid.data import load_profiles
from tune_grid.grid.devices import BATTERY, DIESEL, MICROGRIDS

Policy = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
_I = {name: i for i, name in enumerate(OBS_FEATURES)}


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
    """A sensible operator's rules, with thresholds taken from the training year only.

    * Battery arbitrage: charge at full power when the LMP is below the 30th percentile of 2023
      prices, discharge at full power above the 70th percentile, otherwise idle.
    * Diesel generator: economic dispatch, running where its marginal cost 2aP + b is below the
      value of the energy it displaces: the LMP up to the net load, the discounted LMP beyond.
    * Reactive power: proportional voltage support from the last measured own voltages.
    """
    train_prices = load_profiles().query("split == 'train'")["price"].to_numpy()
    low, high = np.percentile(train_prices, [30, 70])
    discount = env.config.export_discount
    nominal_load = {
        mg: float(env.net.load.loc[env.net.load.zone == mg, "p_nom_mw"].sum())
        * env.config.load_scale
        for mg in MICROGRIDS
    }
    from tune_grid.grid.devices import PV_RATING_MW, WIND_RATING_MW

    def act(agent: str, obs: np.ndarray) -> np.ndarray:
        dg = DIESEL[agent]
        price = float(obs[_I["price"]]) * PRICE_SCALE
        if price < low:
            battery = 1.0
        elif price > high:
            battery = -1.0
        else:
            battery = 0.0
        net_load = (
            float(obs[_I["load"]]) * nominal_load[agent]
            - float(obs[_I["pv"]]) * PV_RATING_MW
            - float(obs[_I["wind"]]) * WIND_RATING_MW
            + battery * BATTERY.max_power_mw
        )
        within_load = np.clip((price - dg.b) / (2 * dg.a), 0.0, min(dg.max_p_mw, max(net_load, 0)))
        beyond_load = np.clip((discount * price - dg.b) / (2 * dg.a), 0.0, dg.max_p_mw)
        p_dg = max(within_load, beyond_load)
        dg_action = 2.0 * p_dg / dg.max_p_mw - 1.0
        v_mid = 0.5 * (float(obs[_I["v_min"]]) + float(obs[_I["v_max"]]))
        q_action = float(np.clip(-0.5 * v_mid, -1.0, 1.0))
        return np.array([battery, dg_action, q_action], dtype=np.float32)

    def policy(observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {agent: act(agent, obs) for agent, obs in observations.items()}

    return policy


BASELINES: dict[str, Callable[[NetworkedMicrogridEnv], Policy]] = {
    "do_nothing": do_nothing,
    "random": random_policy,
    "rule_based": rule_based,
}
