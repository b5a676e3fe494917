"""The v1 money rules in the env: terminal energy, diesel commitment, one objective."""

from __future__ import annotations

import numpy as np
import pytest

from tune_grid import economics, make_env
from tune_grid.baselines import do_nothing
from tune_grid.env.evaluation import run_day
from tune_grid.grid.data import split_profiles
from tune_grid.grid.devices import BATTERY, DIESEL, MICROGRIDS

SOC0 = 0.5


def steady_battery(env, stored_mwh_per_hour: float):  # noqa: ANN001, ANN201 - a policy
    """Move the battery's stored energy by the same amount every hour, diesel off."""
    if stored_mwh_per_hour < 0:  # discharge: the grid side gets eta_d of what leaves the cells
        grid_mw = stored_mwh_per_hour * BATTERY.discharge_efficiency
    else:
        grid_mw = stored_mwh_per_hour / BATTERY.charge_efficiency
    action = np.array([grid_mw / BATTERY.max_power_mw, -1.0, 0.0], dtype=np.float32)
    return lambda observations: {agent: action.copy() for agent in observations}


def _days(env, policy_of, days):  # noqa: ANN001, ANN202
    return [run_day(env, policy_of(env), day) for day in days]


def test_draining_the_battery_earns_nothing_on_any_test_day() -> None:
    """Drain from SoC 0.5 to the floor evenly over the day: the buy-back at midnight costs more
    than the energy sold or not imported was worth, on every one of the 366 test days. Under the
    v0 rule (``terminal_soc: free``) the same policy is paid for energy it never bought."""
    per_hour = -(SOC0 - BATTERY.soc_min) * BATTERY.capacity_mwh / 24
    days = range(split_profiles("test").num_days)
    settled = make_env(split="test", initial_soc=SOC0)
    base = _days(settled, do_nothing, days)
    drain = _days(settled, lambda e: steady_battery(e, per_hour), days)
    free_env = make_env(split="test", initial_soc=SOC0, terminal_soc="free")
    free = _days(free_env, lambda e: steady_battery(e, per_hour), days)
    prices = economics.terminal_price(split_profiles("test").price)
    for b, d, f, price in zip(base, drain, free, prices, strict=True):
        earned = b["cost"] - (d["cost"] - d["cost_terminal_soc"])  # before the buy-back
        buy_back = d["cost_terminal_soc"]
        assert buy_back == pytest.approx(
            3 * (SOC0 - BATTERY.soc_min) * BATTERY.capacity_mwh * price / 0.98, rel=1e-9
        )
        assert earned <= buy_back + 1e-9, d["date"]
        assert d["cost"] >= b["cost"] - 1e-9, d["date"]
        assert f["cost_terminal_soc"] == 0.0
    free_gain = np.array([b["cost"] - f["cost"] for b, f in zip(base, free, strict=True)])
    assert (free_gain > 0).mean() > 0.9  # the loophole the settlement closes


def test_filling_the_battery_is_credited_at_the_same_rule() -> None:
    env = make_env(split="test", initial_soc=SOC0)
    per_hour = (BATTERY.soc_max - SOC0) * BATTERY.capacity_mwh / 24 * 0.9
    prices = economics.terminal_price(split_profiles("test").price)
    for day in (0, 120, 250):
        base = run_day(env, do_nothing(env), day)
        row = run_day(env, steady_battery(env, per_hour), day)
        policy = steady_battery(env, per_hour)
        obs, infos = env.reset(options={"day": day})
        while env.agents:
            obs, _, _, _, infos = env.step(policy(obs))
        for agent in MICROGRIDS:
            surplus = (infos[agent]["soc"] - SOC0) * BATTERY.capacity_mwh
            assert surplus == pytest.approx(24 * per_hour, rel=1e-6)  # float32 actions
            credit = -surplus * BATTERY.discharge_efficiency * prices[day]
            assert infos[agent]["cost_terminal_soc"] == pytest.approx(credit, rel=1e-12)
        assert row["cost_terminal_soc"] == pytest.approx(3 * credit, rel=1e-9)
        assert row["cost"] >= base["cost"] - 1e-9  # a round trip at the day's mean never pays


def test_a_stopped_diesel_gives_no_active_or_reactive_power() -> None:
    """DG "off" (a1 < 0) with the largest reactive request: P = Q = 0 in the info and in the
    power flow, which solves exactly as with no reactive request at all."""
    results = []
    for q_action in (1.0, 0.0, -1.0):
        env = make_env(split="test")
        env.reset(options={"day": 40})
        _, _, _, _, infos = env.step({a: np.array([0.0, -0.3, q_action]) for a in MICROGRIDS})
        for agent in MICROGRIDS:
            assert infos[agent]["dg_p_mw"] == 0.0 and infos[agent]["dg_q_mvar"] == 0.0
            assert infos[agent]["cost_fuel"] == 0.0
        assert (env._sgen_p[env._dg_rows] == 0.0).all()
        assert (env._sgen_q[env._dg_rows] == 0.0).all()
        results.append([infos[a]["exchange_mw"] for a in MICROGRIDS] + [infos["MG1"]["v_min_pu"]])
    assert results[0] == results[1] == results[2]


def test_a_running_diesel_spans_its_minimum_to_its_rating_and_pays_no_load() -> None:
    env = make_env(split="test")
    for a1, fraction in ((0.0, 0.0), (0.5, 0.5), (1.0, 1.0)):
        env.reset(options={"day": 3})
        _, _, _, _, infos = env.step({a: np.array([0.0, a1, 0.5]) for a in MICROGRIDS})
        for agent in MICROGRIDS:
            dg = DIESEL[agent]
            p = dg.min_p_mw + fraction * (dg.max_p_mw - dg.min_p_mw)
            assert infos[agent]["dg_p_mw"] == pytest.approx(p)
            assert infos[agent]["dg_q_mvar"] == pytest.approx(0.5 * np.sqrt(dg.s_mva**2 - p**2))
            assert infos[agent]["cost_fuel"] == pytest.approx(dg.a * p * p + dg.b * p + dg.c)


def test_formulas_in_one_place() -> None:
    assert economics.fuel_cost(0.0, 100.0, 50.0, 2.0, 1.0) == 0.0
    assert economics.fuel_cost(0.5, 100.0, 50.0, 2.0, 1.0) == pytest.approx(25 + 25 + 2)
    assert economics.exchange_cost(-2.0, 50.0, 0.9, 1.0) == pytest.approx(-90.0)
    assert economics.exchange_cost(2.0, -50.0, 0.9, 1.0) == pytest.approx(-100.0)
    assert economics.terminal_soc_cost(0.4, 0.5, 2.0, 50.0, 0.98, 0.98) == pytest.approx(
        0.2 * 50 / 0.98
    )
    assert economics.terminal_soc_cost(0.6, 0.5, 2.0, 50.0, 0.98, 0.98) == pytest.approx(
        -0.2 * 50 * 0.98
    )
    assert economics.objective(10.0, 0.5, 100.0, 2.0) == pytest.approx(110.0)
    assert economics.reward(10.0, 0.5, 100.0, 2.0) == pytest.approx(-1.1)
    np.testing.assert_allclose(
        economics.terminal_price(np.array([[-10.0, -20.0], [10, 30]])), [0, 20]
    )
