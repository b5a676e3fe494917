"""Score a policy on whole days of a data split."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tune_grid.config import EnvConfig

Policy = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
DAY_COLUMNS = ("day", "date", "cost", "safety", "violation_hours", "return", "clipped_mwh")
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


def select_days(num_days: int, days: int | Sequence[int | str] | None) -> list[int | str]:
    """All days (None), N days evenly spaced over the split (int), or the given indices/dates."""
    if days is None:
        return list(range(num_days))
    if isinstance(days, int | np.integer):
        if not 1 <= days <= num_days:
            raise ValueError(f"days must be in [1, {num_days}], got {days}")
        return sorted({int(round(x)) for x in np.linspace(0, num_days - 1, int(days))})
    return list(days)


def run_day(env: Any, policy: Policy, day: int | str) -> dict[str, Any]:
    """Roll one whole day with ``policy``; its totals over agents and hours (``DAY_COLUMNS``
    and ``BEHAVIOUR_COLUMNS``)."""
    observations, _ = env.reset(options={"day": day})
    totals = {"cost": 0.0, "safety": 0.0, "violation_hours": 0, "return": 0.0, "clipped_mwh": 0.0}
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
    }


def evaluate_with_oracle(
    policy: Policy | str,
    split: str = "test",
    days: int | Sequence[int | str] | None = None,
    config: Mapping[str, Any] | EnvConfig | None = None,
) -> pd.DataFrame:
    """``evaluate`` plus, per day, the oracle's replayed cost and the policy's optimality gap.

    Adds the columns ``oracle_cost`` ($, the perfect-foresight dispatch replayed in the env,
    cached on disk, see :mod:`tune_grid.oracle`) and ``optimality_gap`` ((cost - oracle_cost) /
    |oracle_cost|). Aggregate with ``tune_grid.oracle.optimality_gaps``.
    """
    from tune_grid.oracle import optimality_gaps, oracle_days

    per_day = evaluate(policy, split, days, config)
    values = config.to_dict() if isinstance(config, EnvConfig) else dict(config or {})
    values["split"] = split
    oracle = oracle_days(split, list(per_day["date"]), values)
    gaps = optimality_gaps(per_day, oracle).per_day
    return per_day.assign(
        oracle_cost=gaps["oracle_cost"].to_numpy(), optimality_gap=gaps["gap"].to_numpy()
    )
