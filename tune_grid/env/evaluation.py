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
BatchPolicy = Callable[[np.ndarray], np.ndarray]
"""Observations ``(envs, agents, features)`` -> actions ``(envs, agents, 3)``, agents in
``MICROGRIDS`` order (e.g. ``TrainedPolicy.act_batch``)."""
ROLLED_COLUMNS = ("day", "date", "cost", "safety", "objective", "violation_hours", "return")
"""The columns of :func:`roll_days` (the first ``DAY_COLUMNS``, same meaning)."""
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


def roll_days(act: BatchPolicy, envs: Sequence[Any], days: Sequence[int | str]) -> pd.DataFrame:
    """Roll ``act`` on whole ``days``, env ``i`` of ``envs`` playing ``days[i]``, all in lockstep.

    One call of ``act`` per hour for every day together; batchable envs (``can_batch``) step in
    one compiled call. Returns one row per day (``ROLLED_COLUMNS``), totals over agents, equal to
    what :func:`run_day` gives for the same policy (tested).
    """
    from tune_grid.env.batch import MicrogridBatch, can_batch
    from tune_grid.grid.data import HOURS_PER_DAY
    from tune_grid.grid.devices import MICROGRIDS

    n = len(days)
    if n == 0 or len(envs) < n:
        raise ValueError(f"roll_days needs one env per day: {len(envs)} envs for {n} days")
    envs = list(envs[:n])
    batch = MicrogridBatch(envs) if all(can_batch(env) for env in envs) else None
    first = []
    for i, day in enumerate(days):
        obs, _ = (
            batch.reset(i, options={"day": day}) if batch else envs[i].reset(options={"day": day})
        )
        first.append(np.stack([obs[a] for a in MICROGRIDS]))
    observations = np.stack(first)
    cost, safety, ret = np.zeros(n), np.zeros(n), np.zeros(n)
    violation_hours = np.zeros(n, dtype=np.int64)
    stepping = np.ones(n, dtype=np.bool_)
    for hour in range(HOURS_PER_DAY):
        actions = act(observations)
        infos: list[list[dict[str, Any]]]
        rewards: list[list[float]]
        if batch is not None:
            step = batch.step(actions, stepping)  # every env steps: no row is None
            infos = [row for row in step.infos if row is not None]
            rewards = [row for row in step.rewards if row is not None]
            observations = step.observations
        else:
            results = [
                env.step(dict(zip(MICROGRIDS, actions[i], strict=True)))
                for i, env in enumerate(envs)
            ]
            infos = [[r[4][a] for a in MICROGRIDS] for r in results]
            rewards = [[r[1][a] for a in MICROGRIDS] for r in results]
            if hour < HOURS_PER_DAY - 1:
                observations = np.stack([np.stack([r[0][a] for a in MICROGRIDS]) for r in results])
        for i in range(n):
            day_infos, day_rewards = infos[i], rewards[i]
            assert day_infos is not None and day_rewards is not None  # every env steps each hour
            for info in day_infos:
                cost[i] += info["cost"]
                safety[i] += info["safety"]
                violation_hours[i] += int(info["safety"] > 0.0)
            ret[i] += sum(day_rewards)
    cfg = envs[0].config
    return pd.DataFrame(
        {
            "day": [env._day for env in envs],
            "date": [env.date for env in envs],
            "cost": cost,
            "safety": safety,
            "objective": economics.objective(cost, safety, cfg.cost_scale, cfg.penalty),
            "violation_hours": violation_hours,
            "return": ret,
        },
        columns=list(ROLLED_COLUMNS),
    )


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
    """Means per day over the evaluated days (cost in $ for all three microgrids), and the 95 %
    bootstrap interval over days of the daily cost: every per-day summary in tune-grid (the
    evaluation, the checkpoint report, the search's held-out test days) is this one."""
    from tune_grid.env.day_intervals import mean_interval

    _, low, high = mean_interval(per_day["cost"].to_numpy(float))
    return {
        "days": int(len(per_day)),
        "daily_cost": float(per_day["cost"].mean()),
        "daily_cost_low": low,
        "daily_cost_high": high,
        "safety": float(per_day["safety"].mean()),
        "violation_hours": float(per_day["violation_hours"].mean()),
        "return": float(per_day["return"].mean()),
        "objective": float(per_day["objective"].mean()),
    }
