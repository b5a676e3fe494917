"""The perfect-foresight oracle: LinDistFlow, hand-checkable dispatch optima, replay, cache."""

from __future__ import annotations

import argparse
import dataclasses
import math

import numpy as np
import pandapower as pp
import pandas as pd
import pytest

from tune_grid.baselines import do_nothing, random_policy, rule_based
from tune_grid.cli.oracle import add_oracle_parser
from tune_grid.env import make_env
from tune_grid.env.evaluation import evaluate, run_day
from tune_grid.grid.data import select_days
from tune_grid.grid.devices import BATTERY, DIESEL, MICROGRIDS, Battery, DieselGenerator
from tune_grid.oracle import core, evaluate_with_oracle, optimality_gaps, oracle_cost, oracle_days
from tune_grid.oracle.dispatch import (
    DayInputs,
    DispatchOptions,
    _fuel_envelope,
    fuel_cost,
    settlement,
    solve_dispatch,
)
from tune_grid.oracle.lindistflow import RadialNetwork
from tune_grid.oracle.replay import schedule_actions

try:
    from tests.hand_networks import one_site, two_bus
except ModuleNotFoundError:  # pytest run from inside tests/
    from hand_networks import one_site, two_bus  # type: ignore[no-redef]

ETA = 0.98
NO_BATTERY = Battery(max_power_mw=0.0)


def day_inputs(
    price: list[float], load_mw: float = 1.0, soc: float = 0.5, terminal: float | None = None
) -> DayInputs:
    hours = len(price)
    p_ext = np.zeros((2, hours))
    p_ext[1] = -load_mw
    return DayInputs(
        np.array(price, float), p_ext, np.zeros((2, hours)), soc, 0.9, terminal_price=terminal
    )


def test_lindistflow_two_bus_by_hand() -> None:
    net = two_bus(r=0.01, x=0.02, slack_w=1.05**2)
    out = net.solve(np.array([0.0, -0.5]), np.array([0.0, -0.2]))  # 0.5 MW, 0.2 Mvar demand
    assert out["p_mw"][0] == pytest.approx(0.5)
    assert out["q_mvar"][0] == pytest.approx(0.2)
    assert out["w"][1] == pytest.approx(1.05**2 - 2 * (0.01 * 0.5 + 0.02 * 0.2))
    assert out["loss_mw"][0] == pytest.approx(0.01 * (0.5**2 + 0.2**2) / 1.05**2)


def test_lindistflow_extraction_matches_pandapower_at_light_load() -> None:
    """Line (with charging) -> tapped transformer -> line with a load and a capacitor."""
    net = pp.create_empty_network(sn_mva=1.0, f_hz=60.0)
    b = [pp.create_bus(net, vn) for vn in (24.9, 24.9, 4.16, 4.16)]
    pp.create_ext_grid(net, b[0], vm_pu=1.02)
    pp.create_line_from_parameters(net, b[0], b[1], 5.0, 0.3, 0.4, 10.0, 0.3)
    pp.create_transformer_from_parameters(
        net, b[1], b[2], sn_mva=5.0, vn_hv_kv=24.9, vn_lv_kv=4.16, vkr_percent=1.0,
        vk_percent=8.0, pfe_kw=0.0, i0_percent=0.0, tap_side="lv", tap_neutral=0,
        tap_min=-16, tap_max=16, tap_step_percent=0.625, tap_pos=4, tap_changer_type="Ratio",
    )  # fmt: skip
    pp.create_line_from_parameters(net, b[2], b[3], 1.0, 0.4, 0.4, 10.0, 0.4)
    pp.create_load(net, b[3], p_mw=0.05, q_mvar=0.02)
    pp.create_shunt(net, b[3], q_mvar=-0.01, p_mw=0.0)
    pp.runpp(net, trafo_model="pi", calculate_voltage_angles=True)
    radial = RadialNetwork.from_pandapower(net)
    assert radial.alpha[radial.branch_kind.index("trafo")] == pytest.approx(1.025**2)
    p = np.zeros(4)
    q = np.zeros(4)
    p[3], q[3] = -0.05, -0.02
    out = radial.solve(p, q)
    np.testing.assert_allclose(out["vm_pu"], net.res_bus.vm_pu.to_numpy(), atol=5e-4)
    assert out["p_mw"][0] == pytest.approx(net.res_line.p_from_mw.iat[0], abs=2e-3)


def test_lindistflow_rejects_a_meshed_net() -> None:
    net = pp.create_empty_network()
    b = [pp.create_bus(net, 4.16) for _ in range(3)]
    pp.create_ext_grid(net, b[0])
    for i, j in ((0, 1), (1, 2), (2, 0)):
        pp.create_line_from_parameters(net, b[i], b[j], 1.0, 0.1, 0.1, 0.0, 0.4)
    with pytest.raises(ValueError, match="not radial"):
        RadialNetwork.from_pandapower(net)


# ------------------------------------------------------------------- hand-checkable optima
def test_dispatch_price_spread_optimum_by_hand() -> None:
    """Two hours at $20 and $200, 1 MW load, 2 MWh battery at 50 %, DG 100 p^2 + 50 p.

    Hour 2 needs the battery at full discharge (0.5 MW draws 0.5 / 0.98 MWh) and the DG at its
    marginal export value 0.9 x 200 = 200 p + 50 -> p = 0.65 (exports 0.15 MW). The energy left
    above the 0.2 MWh floor is discharged in hour 1: d1 = 0.98 (1.0 - 0.2 - 0.5 / 0.98).
    """
    result = solve_dispatch(two_bus(), [one_site()], day_inputs([20.0, 200.0]))
    d1 = ETA * (1.0 - 0.2 - 0.5 / ETA)
    np.testing.assert_allclose(result.battery_mw[0], [-d1, -0.5], atol=1e-5)
    np.testing.assert_allclose(result.dg_p_mw[0], [0.0, 0.65], atol=1e-5)
    expected = 20 * (1 - d1) + (100 * 0.65**2 + 50 * 0.65) + 0.9 * 200 * (1 - 0.5 - 0.65)
    assert result.cost == pytest.approx(expected, abs=1e-4)
    assert result.bound == pytest.approx(expected, abs=1e-4)
    np.testing.assert_allclose(result.soc[0, -1], BATTERY.soc_min, atol=1e-6)


def test_negative_price_dumping_is_polished_away() -> None:
    """A full battery at a negative price: the relaxation charges and discharges at once (it
    burns energy to import more); the polish forbids it, and the optimum is then by hand: no
    battery use in hour 1, full discharge and DG at 200 p + 50 = 100 in hour 2."""
    result = solve_dispatch(two_bus(), [one_site()], day_inputs([-50.0, 100.0], soc=1.0))
    assert np.minimum(result.charge_mw, result.discharge_mw).max() < 1e-6
    assert result.polished_hours >= 1
    expected = -50 * 1.0 + (100 * 0.25**2 + 50 * 0.25) + 100 * (1 - 0.5 - 0.25)
    assert result.cost == pytest.approx(expected, abs=1e-4)
    assert result.bound < expected - 0.5  # the relaxed (dumping) optimum is lower


def test_no_load_cost_convex_envelope_by_hand() -> None:
    """DG 100 p^2 + 50 p + 2 ($/h): p* = sqrt(2/100), envelope slope 50 + 2 sqrt(200) = 78.3.

    At $70 the DG stays off (on at p = 0.1 would cost 8 + 0.9 x 63 > 70); at $100 it runs at
    p = 0.25 and pays the no-load cost: 6.25 + 12.5 + 2 + 0.75 x 100."""
    dg = DieselGenerator(max_p_mw=1.0, a=100.0, b=50.0, c=2.0, min_stable_fraction=0.0)
    p_star, slope, _ = _fuel_envelope(dg)
    assert (p_star, slope) == (pytest.approx(math.sqrt(0.02)), pytest.approx(50 + 2 * 200**0.5))
    grid = np.linspace(0.0, 1.0, 101)
    envelope = np.where(grid < p_star, slope * grid, 100 * grid**2 + 50 * grid + 2)
    assert (envelope <= fuel_cost(dg, grid) + 1e-9).all()
    result = solve_dispatch(two_bus(), [one_site(NO_BATTERY, dg)], day_inputs([70.0, 100.0]))
    np.testing.assert_allclose(result.dg_p_mw[0], [0.0, 0.25], atol=1e-5)
    assert result.cost == pytest.approx(70.0 + 20.75 + 75.0, abs=1e-4)


@pytest.mark.parametrize("solver", ["CLARABEL", "HIGHS", "OSQP"])
def test_line_limit_binds_by_hand(solver: str) -> None:
    """1.5 MW load behind a 1 MVA line at $200: the DG (100 p^2 + 150 p) alone would run at
    p = 0.25, the limit forces p = 0.5. QP solvers use the inscribed 24-gon (apothem
    cos(pi / 24)), so they must produce a little more."""
    net = dataclasses.replace(two_bus(), s_max_mva=np.array([1.0]), branch_kind=("line",))
    dg = DieselGenerator(max_p_mw=1.0, a=100.0, b=150.0, c=0.0, min_stable_fraction=0.0)
    site = dataclasses.replace(one_site(NO_BATTERY, dg), lines=(0,))
    options = DispatchOptions(solver=solver)
    result = solve_dispatch(net, [site], day_inputs([200.0], load_mw=1.5), options=options)
    limit = 1.0 if solver == "CLARABEL" else math.cos(math.pi / 24)
    p = 1.5 - limit
    assert result.dg_p_mw[0, 0] == pytest.approx(p, abs=1e-4)
    assert result.cost == pytest.approx(200 * limit + 100 * p**2 + 150 * p, abs=1e-3)
    assert result.violation == pytest.approx(0.0, abs=1e-6)


def test_commitment_minimum_stable_load_by_hand() -> None:
    """DG 100 p^2 + 50 p, P_min 0.3 MW, 1 MW load, no battery. At $70 the economic output
    (70 - 50) / 200 = 0.1 is below P_min, and running at P_min (9 + 15 + 0.7 x 70 = 73) costs more
    than importing (70): off, with no reactive power. At $100 the economic 0.25 is below P_min
    too, but P_min pays (9 + 15 + 0.7 x 100 = 94 < 100): on at exactly 0.3 MW."""
    dg = DieselGenerator(max_p_mw=1.0, a=100.0, b=50.0, c=0.0, min_stable_fraction=0.3)
    result = solve_dispatch(two_bus(), [one_site(NO_BATTERY, dg)], day_inputs([70.0, 100.0]))
    np.testing.assert_allclose(result.dg_p_mw[0], [0.0, 0.3], atol=1e-5)
    assert result.dg_q_mvar[0, 0] == 0.0
    assert result.cost == pytest.approx(70.0 + 94.0, abs=1e-3)


def test_terminal_energy_settlement_by_hand() -> None:
    """No DG, 1 MW load, prices $20 then $200, terminal price $110. Charging at $20 stores 0.98
    MWh per MWh, credited 0.98 x 110: charge fully (0.5 MW). Discharging at $200 beats the
    buy-back 110 / 0.98 per stored MWh: discharge fully. The day ends 0.5 / 0.98 - 0.49 MWh
    short, bought back at 110 / 0.98. With the final energy free, the battery is drained instead
    (both hours discharge) and the day is cheaper only because that energy is never paid for."""
    no_dg = DieselGenerator(max_p_mw=0.0, a=100.0, b=50.0, c=0.0)
    site = [one_site(BATTERY, no_dg)]
    settled = solve_dispatch(two_bus(), site, day_inputs([20.0, 200.0], terminal=110.0))
    np.testing.assert_allclose(settled.battery_mw[0], [0.5, -0.5], atol=1e-5)
    deficit = 0.5 / ETA - 0.5 * ETA
    assert settled.terminal_cost[0] == pytest.approx(deficit * 110.0 / ETA, abs=1e-4)
    assert settled.cost == pytest.approx(20 * 1.5 + 200 * 0.5 + deficit * 110 / ETA, abs=1e-3)
    free = solve_dispatch(two_bus(), site, day_inputs([20.0, 200.0]))
    assert free.battery_mw[0].max() < 1e-6 and free.terminal_cost[0] == 0.0
    assert free.cost < settled.cost


def test_settlement_and_schedule_actions_invert_the_env() -> None:
    assert settlement(np.array([50.0]), np.array([-2.0]), 0.9)[0] == pytest.approx(-90.0)
    assert settlement(np.array([-50.0]), np.array([2.0]), 0.9)[0] == pytest.approx(-100.0)
    rng = np.random.default_rng(0)
    battery = rng.uniform(-0.5, 0.5, (3, 24))
    p_min = np.array([DIESEL[m].min_p_mw for m in MICROGRIDS])[:, None]
    p_max = np.array([DIESEL[m].max_p_mw for m in MICROGRIDS])[:, None]
    on = rng.uniform(size=(3, 24)) < 0.5
    dg_p = np.where(on, p_min + rng.uniform(0.0, 1.0, (3, 24)) * (p_max - p_min), 0.0)
    dg_q = np.where(on, rng.uniform(-1, 1, (3, 24)) * np.sqrt(1.0 - dg_p**2), 0.0)
    a = schedule_actions(battery, dg_p, dg_q).transpose(1, 0, 2)  # (M, T, 3)
    assert np.abs(a).max() <= 1.0
    np.testing.assert_allclose(a[..., 0] * BATTERY.max_power_mw, battery)
    assert (a[..., 1][~on] == -1.0).all() and (a[..., 1][on] >= 0.0).all()
    np.testing.assert_allclose((p_min + a[..., 1] * (p_max - p_min))[on], dg_p[on])
    np.testing.assert_allclose(a[..., 2] * np.sqrt(1.0 - dg_p**2), dg_q)
    # Replayed through the env, the actions give back the set points.
    env = make_env(split="test")
    env.reset(options={"day": 0})
    for t in range(3):
        _, _, _, _, infos = env.step({m: a[i, t] for i, m in enumerate(MICROGRIDS)})
        for i, m in enumerate(MICROGRIDS):
            assert infos[m]["dg_p_mw"] == pytest.approx(dg_p[i, t])
            assert infos[m]["dg_q_mvar"] == pytest.approx(dg_q[i, t])


def test_optimality_gaps_by_hand() -> None:
    oracle = pd.DataFrame(
        {"day": [0, 1], "date": ["a", "b"], "cost": [100.0, -50.0], "objective": [100.0, 50.0]}
    )
    policy = pd.DataFrame(
        {"day": [1, 0], "date": ["b", "a"], "cost": [-25.0, 150.0], "objective": [75.0, 200.0]}
    )
    gaps = optimality_gaps(policy, oracle)
    np.testing.assert_allclose(gaps.per_day["gap"], [0.5, 0.5])
    assert gaps.gap == pytest.approx((62.5 - 25.0) / 25.0)
    assert (gaps.mean, gaps.median, gaps.days) == (0.5, 0.5, 2)
    # A policy that saves money by violating limits: its cost gap hides what the objective shows.
    np.testing.assert_allclose(gaps.per_day["objective_gap"], [0.5, 1.0])
    assert gaps.objective_gap == pytest.approx((137.5 - 75.0) / 75.0)
    with pytest.raises(ValueError, match="no oracle result"):
        optimality_gaps(policy.assign(date=["b", "zz"]), oracle)


# --------------------------------------------------------------------------- real days
TEST_DAYS = select_days(366, 3)  # 2024-01-01, mid-year, 2024-12-31
VOLTAGE_SAFETY_MAX = 1e-3
"""Replayed safety allowed per day (pu x bus-hours summed): the model keeps 0.002 pu inside the
limits and every accepted schedule is checked with the env's AC power flow, so only float noise
could remain; 1e-3 is far below one bus one hour 0.01 pu out (0.01)."""


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> object:
    """An empty oracle cache, and no shipped table: the module's days are solved here."""
    from tune_grid.oracle import cache

    root = tmp_path_factory.mktemp("tune_grid_cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("TUNE_GRID_CACHE", str(root))
    mp.setattr(cache, "shipped_records", lambda filename: {})
    yield root
    mp.undo()


@pytest.fixture(scope="module")
def oracle_results(cache_root: object) -> list:
    return [oracle_cost("test", d) for d in TEST_DAYS]


def test_replayed_schedule_is_safe_and_matches_the_model(oracle_results: list) -> None:
    for o in oracle_results:
        assert not o.cached
        soc = np.array(o.schedule["soc"])
        replay_soc = np.array(o.schedule["replay_soc"])
        assert soc.shape == (3, 25) and replay_soc.shape == (3, 24)
        for s in (soc, replay_soc):
            assert s.min() >= BATTERY.soc_min - 1e-6 and s.max() <= BATTERY.soc_max + 1e-6
        np.testing.assert_allclose(replay_soc, soc[:, 1:], atol=1e-5)
        assert o.replay_clipped_mwh < 1e-4
        assert o.replay_safety <= VOLTAGE_SAFETY_MAX
        assert o.max_voltage_error_pu < 2e-3
        # The model's money is the env's at the final anchor (AC exchange and voltages).
        assert o.model_cost == pytest.approx(o.replay_cost, abs=0.05 + 1e-3 * abs(o.replay_cost))
        assert o.solve_time_s < 30.0


def test_oracle_beats_every_baseline_on_each_day(oracle_results: list) -> None:
    """On the objective it minimises (the reward's): cost + penalty x cost_scale x safety."""
    env = make_env(split="test")
    for o in oracle_results:
        assert o.safety_price == env.config.penalty * env.config.cost_scale
        assert o.replay_objective == pytest.approx(o.replay_cost + o.safety_price * o.replay_safety)
        for factory in (do_nothing, random_policy, rule_based):
            baseline = run_day(env, factory(env), o.day)
            assert o.replay_objective <= baseline["objective"] + 1e-6, (factory.__name__, o.date)


def test_replayed_cost_is_what_run_day_measures(oracle_results: list) -> None:
    o = oracle_results[0]
    actions = o.actions()
    hour = iter(range(24))

    def policy(obs: dict) -> dict:
        t = next(hour)
        return {agent: actions[t, i] for i, agent in enumerate(MICROGRIDS)}

    row = run_day(make_env(split="test"), policy, o.date)  # set points stored to 1e-9
    assert row["cost"] == pytest.approx(o.replay_cost, abs=1e-4)
    assert row["safety"] == pytest.approx(o.replay_safety, abs=1e-8)


def test_cache_hit_returns_identical_numbers_without_solving(
    oracle_results: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_solve(*args: object, **kwargs: object) -> None:
        raise AssertionError("cache miss: plan_day was called")

    monkeypatch.setattr(core, "plan_day", no_solve)
    first = oracle_results[0]
    again = oracle_cost("test", first.date, {"share_reward": True})
    assert again.cached
    assert again.to_json() == first.to_json()
    # Physics (load_scale) and the price of safety (penalty) are part of the key.
    for changed in ({"load_scale": 0.25}, {"penalty": 3.0}):
        with pytest.raises(AssertionError, match="cache miss"):
            oracle_cost("test", first.day, changed)


def test_oracle_days_evaluate_with_oracle_and_cli(
    oracle_results: list, capsys: pytest.CaptureFixture
) -> None:
    frame = oracle_days("test", TEST_DAYS)
    assert list(frame["cost"]) == [o.replay_cost for o in oracle_results]
    assert frame["cached"].all()
    per_day = evaluate_with_oracle("do_nothing", "test", TEST_DAYS)
    baseline = evaluate("do_nothing", "test", TEST_DAYS)
    np.testing.assert_allclose(per_day["oracle_cost"], frame["cost"])
    expected = (baseline["cost"] - frame["cost"]) / frame["cost"].abs()
    np.testing.assert_allclose(per_day["optimality_gap"], expected)
    assert (per_day["optimality_gap"] >= 0).all()

    parser = argparse.ArgumentParser()
    add_oracle_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["oracle", "--split", "test", "--days", "2"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "oracle (replay)" in out and "rule_based" in out and "solve time per day" in out
