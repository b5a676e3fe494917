"""Score a policy on whole days of a data split."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tune_grid import economics
from tune_grid.config import EnvConfig
from tune_grid.grid.data import select_days

Policy = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
DAY_COLUMNS = (
    "day",
    "date",
    "cost",
    "safety",
    "objective",
    "violation_hours",
    "return",
    "clipped_mwh",
    "cost_terminal_soc",
)
"""Per day, all three microgrids: cost ($, terminal settlement included), safety, the objective
(cost + penalty x cost_scale x safety, ``economics.objective``), hours with a violation, the
summed reward, battery energy clipped at the SoC bounds, and the terminal settlement alone."""
BEHAVIOUR_COLUMNS = (
    "import_mwh",
    "export_mwh",
    "peak_import_mw",
    "exchange_ramp_mw",
    "dg_mwh",
    "battery_throughput_mwh",
    "p2p_traded_mwh",
)
"""What the policy did in a day (all three microgrids): energy bought from and sold to the DSO
(after P2P trades), the highest hourly sum of the three exchanges, the summed hour-to-hour
changes of each exchange (how flat the profiles are), diesel energy, battery throughput
(|charge| + |discharge|) and energy bought from peers."""


def run_day(env: Any, policy: Policy, day: int | str) -> dict[str, Any]:
    """Roll one whole day with ``policy``; its totals over agents and hours (``DAY_COLUMNS``
    and ``BEHAVIOUR_COLUMNS``)."""
    observations, _ = env.reset(options={"day": day})
    totals = {
        "cost": 0.0,
        "safety": 0.0,
        "violation_hours": 0,
        "return": 0.0,
        "clipped_mwh": 0.0,
        "cost_terminal_soc": 0.0,
    }
    behaviour = dict.fromkeys(BEHAVIOUR_COLUMNS, 0.0)
    last_exchange: dict[str, float] = {}
    while env.agents:
        observations, rewards, _, _, infos = env.step(policy(observations))
        hour_exchange = 0.0
        for agent, info in infos.items():
            totals["cost"] += info["cost"]
            totals["safety"] += info["safety"]
            totals["violation_hours"] += int(info["safety"] > 0.0)
            totals["clipped_mwh"] += abs(info["battery_clipped_mw"])
            totals["cost_terminal_soc"] += info["cost_terminal_soc"]
            totals["return"] += rewards[agent]
            exchange = info["exchange_mw"]
            with_dso = info.get("dso_exchange_mw", exchange)  # after P2P trades, if any
            behaviour["import_mwh"] += max(with_dso, 0.0)
            behaviour["export_mwh"] += max(-with_dso, 0.0)
            behaviour["dg_mwh"] += info["dg_p_mw"]
            behaviour["battery_throughput_mwh"] += abs(info["battery_mw"])
            behaviour["p2p_traded_mwh"] += info.get("p2p_bought_mw", 0.0)
            if agent in last_exchange:
                behaviour["exchange_ramp_mw"] += abs(exchange - last_exchange[agent])
            last_exchange[agent] = exchange
            hour_exchange += exchange
        behaviour["peak_import_mw"] = max(behaviour["peak_import_mw"], hour_exchange)
    cfg = env.config
    totals["objective"] = float(
        economics.objective(totals["cost"], totals["safety"], cfg.cost_scale, cfg.penalty)
    )
    return {"day": env._day, "date": env.date, **totals, **behaviour}


def evaluate(
    policy: Policy | str,
    split: str = "test",
    days: int | Sequence[int | str] | None = None,
    config: Mapping[str, Any] | EnvConfig | None = None,
) -> pd.DataFrame:
    """Per-day cost ($), safety, violation hours, return and behaviour of ``policy`` on ``split``.

    ``policy`` is a policy, or the name of a baseline ("do_nothing", "random", "rule_based").
    ``days``: None for every day of the split, N for N days evenly spaced, or indices/dates.
    """
    from tune_grid.env import make_env

    values = config.to_dict() if isinstance(config, EnvConfig) else dict(config or {})
    values["split"] = split
    env = make_env(values)
    if isinstance(policy, str):
        from tune_grid.baselines import BASELINES

        if policy not in BASELINES:
            raise ValueError(f"unknown baseline {policy!r}; allowed: {', '.join(BASELINES)}")
        policy = BASELINES[policy](env)
    rows = [run_day(env, policy, day) for day in select_days(env.num_days, days)]
    return pd.DataFrame(rows, columns=[*DAY_COLUMNS, *BEHAVIOUR_COLUMNS])


def summarize(per_day: pd.DataFrame) -> dict[str, float]:
    """Means per day over the evaluated days (cost in $ for all three microgrids)."""
    return {
        "days": int(len(per_day)),
        "daily_cost": float(per_day["cost"].mean()),
        "safety": float(per_day["safety"].mean()),
        "violation_hours": float(per_day["violation_hours"].mean()),
        "return": float(per_day["return"].mean()),
        "objective": float(per_day["objective"].mean()),
    }
