"""Baseline policies and the evaluate() helper."""

from __future__ import annotations

import numpy as np
import pytest

from tune_grid import baselines, evaluate, make_env
from tune_grid.env.evaluation import BEHAVIOUR_COLUMNS, DAY_COLUMNS, select_days, summarize


def test_rule_based_beats_do_nothing_and_random_on_test_days() -> None:
    days = 20  # evenly spaced over 2024; the closing note reports the whole split
    results = {
        name: summarize(evaluate(name, split="test", days=days)) for name in baselines.BASELINES
    }
    rule, idle, rand = results["rule_based"], results["do_nothing"], results["random"]
    assert rule["days"] == idle["days"] == rand["days"] == days
    assert rule["daily_cost"] < idle["daily_cost"] < rand["daily_cost"]
    assert rule["return"] > idle["return"] > rand["return"]
    assert rule["safety"] < idle["safety"]


def test_evaluate_returns_one_row_per_day_with_totals() -> None:
    env = make_env(split="test")
    per_day = evaluate(baselines.do_nothing(env), split="test", days=["2024-03-01", 5])
    assert list(per_day.columns) == [*DAY_COLUMNS, *BEHAVIOUR_COLUMNS]
    assert per_day["date"].tolist() == ["2024-03-01", "2024-01-06"]
    # Do-nothing buys every MWh at the LMP: cost equals the sum of exchange x price.
    env.reset(options={"day": "2024-03-01"})
    policy = baselines.do_nothing(env)
    obs, total = env.reset(options={"day": "2024-03-01"})[0], 0.0
    while env.agents:
        obs, _, _, _, infos = env.step(policy(obs))
        for info in infos.values():
            price = info["price"]
            x = info["exchange_mw"]
            total += x * price if x > 0 else 0.9 * x * price
            assert info["cost_fuel"] == 0.0
    assert per_day["cost"].iloc[0] == pytest.approx(total)


def test_baseline_actions_are_valid() -> None:
    env = make_env()
    obs, _ = env.reset(seed=0)
    for factory in (baselines.do_nothing, baselines.random_policy, baselines.rule_based):
        actions = factory(env)(obs)
        for agent, a in actions.items():
            assert env.action_space(agent).contains(np.asarray(a, dtype=np.float32))


def test_select_days_and_bad_input() -> None:
    assert select_days(366, 3) == [0, 182, 365]
    assert select_days(5, None) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match=r"days must be in \[1, 366\]"):
        select_days(366, 0)
    with pytest.raises(ValueError, match="unknown baseline 'greedy'"):
        evaluate("greedy", days=1)


def test_behaviour_totals_follow_the_infos() -> None:
    """Do-nothing: no diesel, no battery, no trades; imports and ramps equal the exchanges'."""
    env = make_env(split="test")
    row = evaluate(baselines.do_nothing(env), split="test", days=["2024-07-10"]).iloc[0]
    assert row["dg_mwh"] == 0.0 and row["battery_throughput_mwh"] == 0.0
    assert row["p2p_traded_mwh"] == 0.0
    obs, _ = env.reset(options={"day": "2024-07-10"})
    exchange = []
    while env.agents:
        obs, _, _, _, infos = env.step(baselines.do_nothing(env)(obs))
        exchange.append([infos[a]["exchange_mw"] for a in env.possible_agents])
    x = np.array(exchange)  # (24, 3)
    assert row["import_mwh"] == pytest.approx(x.clip(min=0).sum())
    assert row["export_mwh"] == pytest.approx((-x).clip(min=0).sum())
    assert row["peak_import_mw"] == pytest.approx(x.sum(axis=1).max())
    assert row["exchange_ramp_mw"] == pytest.approx(np.abs(np.diff(x, axis=0)).sum())

    p2p_env = make_env(split="test", horizontal_protocol="p2p_trading")
    rule = evaluate(baselines.rule_based(p2p_env), split="test", days=["2024-07-10"],
                    config={"horizontal_protocol": "p2p_trading"}).iloc[0]  # fmt: skip
    assert rule["dg_mwh"] > 0.0 and rule["battery_throughput_mwh"] > 0.0
    assert rule["p2p_traded_mwh"] >= 0.0
