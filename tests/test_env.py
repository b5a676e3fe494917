"""The networked-microgrid ParallelEnv: API, physics and money."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

from tune_grid import make_env
from tune_grid.grid.devices import BATTERY, DIESEL, MICROGRIDS
from tune_grid.grid.powerflow import PowerFlowResult


def constant_actions(battery: float, dg: float, q: float) -> dict[str, np.ndarray]:
    return {a: np.array([battery, dg, q], dtype=np.float32) for a in MICROGRIDS}


def test_pettingzoo_parallel_api() -> None:
    parallel_api_test(make_env(), num_cycles=60)


def test_pettingzoo_parallel_seed() -> None:
    parallel_seed_test(lambda: make_env(initial_soc=None), num_cycles=30)


def test_observations_have_one_shape_and_stay_in_their_space() -> None:
    env = make_env()
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    shapes = {o.shape for o in obs.values()}
    while env.agents:
        obs, *_ = env.step({a: rng.uniform(-1, 1, 3) for a in env.agents})
        shapes |= {o.shape for o in obs.values()}
        for agent, o in obs.items():
            assert env.observation_space(agent).contains(o)
    assert shapes == {(len(env.obs_features),)}


def test_soc_stays_in_bounds_and_clipping_is_reported() -> None:
    env = make_env(initial_soc=None)
    rng = np.random.default_rng(1)
    for episode in range(4):
        env.reset(seed=episode)
        while env.agents:
            _, _, _, _, infos = env.step(
                {a: rng.choice([-1.0, 1.0]) * np.ones(3) for a in env.agents}
            )
            for info in infos.values():
                assert BATTERY.soc_min - 1e-12 <= info["soc"] <= BATTERY.soc_max + 1e-12
    # An empty battery asked to discharge at full power: everything is clipped.
    env.reset(seed=0, options={"soc": BATTERY.soc_min})
    _, _, _, _, infos = env.step(constant_actions(-1.0, -1.0, 0.0))
    for info in infos.values():
        assert info["battery_mw"] == pytest.approx(0.0, abs=1e-12)
        assert info["battery_clipped_mw"] == pytest.approx(-BATTERY.max_power_mw)
    # A battery at 0.9 can take 0.1 * 2 MWh / 0.98 = 0.204 MW over one hour, not 0.5.
    env.reset(seed=0, options={"soc": 0.9})
    _, _, _, _, infos = env.step(constant_actions(1.0, -1.0, 0.0))
    expected = 0.1 * BATTERY.capacity_mwh / BATTERY.charge_efficiency
    for info in infos.values():
        assert info["battery_mw"] == pytest.approx(expected)
        assert info["battery_clipped_mw"] == pytest.approx(0.5 - expected)
        assert info["soc"] == pytest.approx(1.0)


def test_energy_balance_at_the_point_of_connection() -> None:
    env = make_env()
    env.reset(seed=0, options={"day": 100})
    rng = np.random.default_rng(2)
    while env.agents:
        _, _, _, _, infos = env.step({a: rng.uniform(-1, 1, 3) for a in env.agents})
        for info in infos.values():
            lossless = (
                info["load_mw"]
                + info["battery_mw"]
                - info["dg_p_mw"]
                - info["pv_mw"]
                - info["wind_mw"]
            )
            losses = info["exchange_mw"] - lossless
            assert 0.0 <= losses < 0.05 * (info["load_mw"] + abs(info["dg_p_mw"]) + 0.5)


def test_costs_and_rewards_equal_their_formulas() -> None:
    env = make_env(penalty=7.0, cost_scale=50.0, export_discount=0.8)
    env.reset(seed=0, options={"day": "2023-07-15"})
    actions = {
        "MG1": np.array([0.5, 0.0, 0.2]),  # charge 0.25 MW, DG on at its minimum 0.3 x 0.66 MW
        "MG2": np.array([-0.4, 1.0, 0.0]),  # discharge 0.2 MW, DG at full 0.60 MW
        "MG3": np.array([0.0, -0.5, 0.0]),  # DG off
    }
    _, rewards, _, _, infos = env.step(actions)
    assert infos["MG1"]["battery_mw"] == pytest.approx(0.25)
    assert infos["MG2"]["battery_mw"] == pytest.approx(-0.2)
    for agent, p in (("MG1", 0.198), ("MG2", 0.60), ("MG3", 0.0)):
        info = infos[agent]
        dg = DIESEL[agent]
        assert info["dg_p_mw"] == pytest.approx(p)
        fuel = dg.a * p**2 + dg.b * p + dg.c if p > 0 else 0.0
        assert info["cost_fuel"] == pytest.approx(fuel)
        price = info["price"]
        x = info["exchange_mw"]
        exchange_cost = x * price if x > 0 else x * price * 0.8
        assert info["cost_exchange"] == pytest.approx(exchange_cost)
        assert info["cost"] == pytest.approx(fuel + exchange_cost)
        expected = -info["cost"] / 50.0 - 7.0 * info["safety"]
        assert rewards[agent] == pytest.approx(expected)
        assert info["own_reward"] == pytest.approx(expected)
    # The DG's reactive power respects its 1 MVA rating.
    q = infos["MG1"]["dg_q_mvar"]
    assert q == pytest.approx(0.2 * np.sqrt(1.0 - 0.198**2))
    assert all(info["cost_terminal_soc"] == 0.0 for info in infos.values())  # not midnight yet


def test_share_reward_gives_every_agent_the_mean() -> None:
    rng = np.random.default_rng(5)
    actions = [{a: rng.uniform(-1, 1, 3) for a in MICROGRIDS} for _ in range(5)]
    own, shared = make_env(), make_env(share_reward=True)
    own.reset(seed=1, options={"day": 10})
    shared.reset(seed=1, options={"day": 10})
    for act in actions:
        _, r_own, _, _, _ = own.step(act)
        _, r_shared, _, _, _ = shared.step(act)
        mean = np.mean(list(r_own.values()))
        assert all(v == pytest.approx(mean) for v in r_shared.values())


def test_safety_counts_voltage_outside_limits() -> None:
    env = make_env()
    env.reset(seed=0, options={"day": "2023-08-16", "soc": 0.1})
    low = []
    while env.agents:  # charge at full power with the DG off through a summer day
        _, _, _, _, infos = env.step(constant_actions(1.0, -1.0, 0.0))
        low += [i for i in infos.values() if i["converged"] and i["v_min_pu"] < 0.95]
    assert low, "the summer peak should pull some microgrid below 0.95 pu"
    info = min(low, key=lambda i: i["v_min_pu"])
    # The lowest bus alone contributes 0.95 - v_min; the other low buses add to it.
    assert info["safety_voltage"] >= 0.95 - info["v_min_pu"] - 1e-12
    assert info["safety"] == pytest.approx(info["safety_voltage"] + info["safety_line"])


def test_nonconvergence_is_penalized_not_raised(monkeypatch) -> None:
    env = make_env(nonconvergence_safety=2.5)
    env.reset(seed=0)
    nan = np.full(1, np.nan)

    def diverge(*_args):
        return PowerFlowResult(False, nan, nan, nan, nan, float("nan"))

    monkeypatch.setattr(env._solver, "solve", diverge)
    obs, rewards, _, _, infos = env.step(constant_actions(0.0, -1.0, 0.0))
    for agent in MICROGRIDS:
        info = infos[agent]
        assert info["converged"] is False
        assert info["safety"] == 2.5
        assert np.isfinite(obs[agent]).all()
        lossless = info["load_mw"] - info["pv_mw"] - info["wind_mw"]
        assert info["exchange_mw"] == pytest.approx(lossless)
        assert rewards[agent] == pytest.approx(-info["cost"] / 100.0 - env.config.penalty * 2.5)


def test_bad_actions_and_configs_raise_clear_errors() -> None:
    env = make_env()
    env.reset(seed=0)
    bad = constant_actions(0.0, 0.0, 0.0)
    bad["MG2"] = np.array([np.nan, 0.0, 0.0])
    with pytest.raises(ValueError, match=r"actions for \['MG2'\] contain NaN or inf"):
        env.step(bad)
    with pytest.raises(ValueError, match="missing \\['MG3'\\]"):
        env.step({"MG1": np.zeros(3), "MG2": np.zeros(3)})
    with pytest.raises(ValueError, match="shape \\(3,\\)"):
        env.step({a: np.zeros(2) for a in MICROGRIDS})
    with pytest.raises(ValueError, match="unknown env config key 'penalti'"):
        make_env(penalti=1.0)
    with pytest.raises(ValueError, match="powerflow: got 'newton'"):
        make_env({"powerflow": "newton"})
    with pytest.raises(ValueError, match="not in the test split"):
        make_env(split="test").reset(options={"day": "2023-05-01"})


def test_days_are_seeded_or_chosen() -> None:
    env = make_env(split="test")
    env.reset(seed=11)
    first = env.date
    env.reset(seed=11)
    assert env.date == first
    env.reset(options={"day": "2024-02-29"})
    assert env.date == "2024-02-29"
    env.reset(options={"day": 0})
    assert env.date == "2024-01-01"


def test_fast_and_pandapower_backends_agree_on_a_day() -> None:
    fast, reference = make_env(), make_env(powerflow="pandapower")
    rng = np.random.default_rng(9)
    fast.reset(seed=0, options={"day": 40})
    reference.reset(seed=0, options={"day": 40})
    for _ in range(6):
        act = {a: rng.uniform(-1, 1, 3) for a in MICROGRIDS}
        o1, r1, _, _, i1 = fast.step(act)
        o2, r2, _, _, i2 = reference.step(act)
        for agent in MICROGRIDS:
            assert r1[agent] == pytest.approx(r2[agent], abs=1e-6)
            assert i1[agent]["exchange_mw"] == pytest.approx(i2[agent]["exchange_mw"], abs=1e-6)
            np.testing.assert_allclose(o1[agent], o2[agent], atol=1e-5)


def test_env_import_does_not_import_ray() -> None:
    code = "import sys, tune_grid, tune_grid.env; assert 'ray' not in sys.modules, 'ray imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_net_is_the_pandapower_model() -> None:
    env = make_env()
    assert len(env.net.bus) >= 34 + 3 * 13
    assert set(env.net.sgen["kind"]) == {"DG", "PV", "WT"}


def test_last_step_info_carries_the_day_totals() -> None:
    env = make_env(split="test")
    env.reset(options={"day": 100, "soc": 0.5})
    rng = np.random.default_rng(3)
    sums = {a: [0.0, 0.0, 0] for a in env.possible_agents}
    while env.agents:
        _, _, _, _, infos = env.step({a: rng.uniform(-1, 1, 3) for a in env.agents})
        for agent, info in infos.items():
            sums[agent][0] += info["cost"]
            sums[agent][1] += info["safety"]
            sums[agent][2] += int(info["safety"] > 0.0)
            assert ("day_cost" in info) == (not env.agents)
    for agent, info in infos.items():
        assert info["day_cost"] == pytest.approx(sums[agent][0])
        assert info["day_safety"] == pytest.approx(sums[agent][1])
        assert info["day_violation_hours"] == sums[agent][2]


def test_an_episode_does_not_depend_on_what_the_env_solved_before() -> None:
    """Reset starts the power flow cold, so a seeded day gives bit-identical numbers in a fresh
    env and in one that has run other days (a warm start would move the last bits)."""
    fresh, used = make_env(), make_env()
    used.reset(seed=3)
    for _ in range(7):
        used.step(constant_actions(0.5, 0.2, -0.3))
    used.reset(seed=4)
    actions = constant_actions(-0.4, 0.6, 0.1)
    for env in (fresh, used):
        env.reset(seed=9)
    for _ in range(24):
        a, b = fresh.step(actions), used.step(actions)
        for agent in MICROGRIDS:
            np.testing.assert_array_equal(a[0][agent], b[0][agent])
            assert a[1][agent] == b[1][agent] and a[4][agent] == b[4][agent]
