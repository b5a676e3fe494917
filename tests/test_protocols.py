"""Coordination protocols: clearing, consensus, settlement rules and the env API per combination."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from tune_grid import make_env
from tune_grid.config import EnvConfig
from tune_grid.env.consensus import adjacency, metropolis_weights, run_consensus, weight_powers
from tune_grid.env.observation import feature_names, observation_features
from tune_grid.env.p2p import clear_double_auction, p2p_orders
from tune_grid.env.protocols import PROTOCOL_FEATURES, Settlement, energy_cost
from tune_grid.grid.devices import DIESEL, MICROGRIDS

VERTICAL = ("none", "price_signal", "setpoint")
HORIZONTAL = ("none", "p2p_trading", "consensus")
COMBINATIONS = list(itertools.product(VERTICAL, HORIZONTAL))
BASE_FEATURES = feature_names(observation_features(EnvConfig()))
N_BASE = len(BASE_FEATURES)


def actions(*rows: tuple[float, float, float]) -> dict[str, np.ndarray]:
    return {a: np.array(r, dtype=np.float32) for a, r in zip(MICROGRIDS, rows, strict=True)}


# MG1 exports (battery discharging, diesel at full power), MG2 and MG3 import.
MIXED = actions((-1.0, 1.0, 0.0), (0.5, -1.0, 0.0), (0.0, -0.6, 0.0))
# Every battery discharges and every diesel runs at full power: sellers only, most hours.
ALL_EXPORT = actions((-1.0, 1.0, 0.0), (-1.0, 1.0, 0.0), (-1.0, 1.0, 0.0))
# Everyone imports: batteries charge, diesels off.
ALL_IMPORT = actions((1.0, -1.0, 0.0), (1.0, -1.0, 0.0), (1.0, -1.0, 0.0))


# ------------------------------------------------------------------------------ the auction
def test_clearing_with_several_sellers_and_buyers_hand_computed() -> None:
    # Offers ascending 40, 45, 60; bids descending 70, 50, 42. Walk: 0.25 (40|70), 0.05 (40|50),
    # 0.2 (45|50), then 60 > 50 stops. Marginal offer 45, marginal bid 50 partly filled, so
    # b_next = 50 and o_next = 60: prices in [max(45, 50), min(50, 60)] = [50, 50].
    c = clear_double_auction(
        offer_mw=[0.3, 0.2, 0.4],
        offer_price=[40.0, 45.0, 60.0],
        bid_mw=[0.25, 0.35, 0.2],
        bid_price=[70.0, 50.0, 42.0],
    )
    np.testing.assert_allclose(c.sold_mw, [0.3, 0.2, 0.0], atol=1e-12)
    np.testing.assert_allclose(c.bought_mw, [0.25, 0.25, 0.0], atol=1e-12)
    assert c.price == pytest.approx(50.0)
    assert c.volume_mw == pytest.approx(0.5)


def test_clearing_price_is_the_midpoint_when_both_sides_are_exhausted() -> None:
    c = clear_double_auction([0.1, 0.1], [30.0, 34.0], [0.2], [50.0])
    np.testing.assert_allclose(c.sold_mw, [0.1, 0.1])
    np.testing.assert_allclose(c.bought_mw, [0.2])
    assert c.price == pytest.approx((34.0 + 50.0) / 2)  # interval [34, 50]


def test_clearing_shares_a_tied_level_pro_rata() -> None:
    # Two sellers tied at 45 share a 0.3 MW demand in proportion to 0.4 : 0.2; the offer level
    # is the partly filled (long) side, so it sets the price.
    c = clear_double_auction([0.4, 0.2], [45.0, 45.0], [0.3], [50.0])
    np.testing.assert_allclose(c.sold_mw, [0.2, 0.1])
    np.testing.assert_allclose(c.bought_mw, [0.3])
    assert c.price == pytest.approx(45.0)
    # Symmetric: two tied buyers share a short supply; the bid sets the price.
    c = clear_double_auction([0.3], [40.0], [0.3, 0.6], [50.0, 50.0])
    np.testing.assert_allclose(c.bought_mw, [0.1, 0.2])
    assert c.price == pytest.approx(50.0)


@pytest.mark.parametrize(
    ("offer_mw", "offer_price", "bid_mw", "bid_price"),
    [
        ([0.0, 0.0], [40.0, 40.0], [0.3, 0.1], [50.0, 50.0]),  # nobody has surplus
        ([0.2], [40.0], [0.0, 0.0], [50.0, 50.0]),  # nobody has a deficit
        ([0.2], [55.0], [0.3], [50.0]),  # offer above bid
        ([], [], [0.3], [50.0]),
    ],
)
def test_no_trade(offer_mw, offer_price, bid_mw, bid_price) -> None:
    c = clear_double_auction(offer_mw, offer_price, bid_mw, bid_price)
    assert c.volume_mw == 0.0
    assert not c.sold_mw.any() and not c.bought_mw.any()
    assert np.isnan(c.price)


def test_clearing_invariants_on_random_markets() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        n_o, n_b = rng.integers(1, 5, size=2)
        oq = rng.uniform(0, 1, n_o) * (rng.random(n_o) > 0.2)
        bq = rng.uniform(0, 1, n_b) * (rng.random(n_b) > 0.2)
        op = rng.choice([30.0, 40.0, 50.0, 60.0], n_o)  # repeated prices exercise tied levels
        bp = rng.choice([35.0, 45.0, 55.0, 65.0], n_b)
        c = clear_double_auction(oq, op, bq, bp)
        assert (c.sold_mw >= 0).all() and (c.sold_mw <= oq + 1e-12).all()
        assert (c.bought_mw >= 0).all() and (c.bought_mw <= bq + 1e-12).all()
        assert c.sold_mw.sum() == pytest.approx(c.bought_mw.sum(), abs=1e-12)
        if c.volume_mw == 0.0:
            # No trade only when no offer is at or below any bid.
            active_o, active_b = op[oq > 1e-9], bp[bq > 1e-9]
            assert not active_o.size or not active_b.size or active_o.min() > active_b.max()
            continue
        payments = np.concatenate([c.bought_mw * c.price, -c.sold_mw * c.price])
        assert payments.sum() == pytest.approx(0.0, abs=1e-9)
        # Individually rational: sellers get at least their offer, buyers pay at most their bid.
        assert (op[c.sold_mw > 1e-12] <= c.price + 1e-12).all()
        assert (bp[c.bought_mw > 1e-12] >= c.price - 1e-12).all()
        # Efficient: nothing left that could still trade at a profit.
        left_o = op[oq - c.sold_mw > 1e-9]
        left_b = bp[bq - c.bought_mw > 1e-9]
        if left_o.size and left_b.size:
            assert left_o.min() > left_b.max()


def test_orders_follow_exchange_and_marginal_cost() -> None:
    exchange = np.array([-0.4, -0.1, 0.3])
    dg_p = np.array([0.66, 0.0, 0.2])
    offer_mw, offer_price, bid_mw, bid_price = p2p_orders(exchange, dg_p, 100.0, 90.0)
    np.testing.assert_allclose(offer_mw, [0.4, 0.1, 0.0])
    np.testing.assert_allclose(bid_mw, [0.0, 0.0, 0.3])
    mc1 = 2 * DIESEL["MG1"].a * 0.66 + DIESEL["MG1"].b  # 204.4 $/MWh, capped at the import price
    assert mc1 > 100.0
    np.testing.assert_allclose(offer_price[:2], [100.0, 90.0])  # idle diesel asks the DSO price
    np.testing.assert_allclose(bid_price, 100.0)
    # A cheap running diesel asks its marginal cost; below the export price it asks that price.
    _, asked, _, _ = p2p_orders(np.array([-0.1, -0.1, 0.1]), np.array([0.1, 0.01, 0]), 100, 90)
    assert asked[0] == pytest.approx(2 * 100 * 0.1 + 72.4)  # MG1's diesel: 92.4 $/MWh
    assert asked[1] == pytest.approx(90.0)  # MG2's diesel: 53.6 $/MWh, below the export price
    # Negative prices: the export price is above the import price and nothing trades.
    o_mw, o_p, b_mw, b_p = p2p_orders(exchange, dg_p, -20.0, -18.0)
    assert clear_double_auction(o_mw, o_p, b_mw, b_p).volume_mw == 0.0


# ------------------------------------------------------------------------------ consensus
@pytest.mark.parametrize("topology", ["line", "ring", "complete"])
def test_metropolis_weights_are_doubly_stochastic(topology: str) -> None:
    w = metropolis_weights(adjacency(topology, 3))
    np.testing.assert_allclose(w, w.T)
    np.testing.assert_allclose(w.sum(axis=0), 1.0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    assert (w >= 0).all()


def test_adjacency_of_the_topologies() -> None:
    line = adjacency("line", 4)
    assert line.sum() == 2 * 3 and line[0, 1] and line[2, 3] and not line[0, 3]
    ring = adjacency("ring", 4)
    assert ring.sum() == 2 * 4 and ring[0, 3]
    assert adjacency("complete", 4).sum() == 4 * 3
    with pytest.raises(ValueError, match="unknown topology 'star'"):
        adjacency("star", 3)


@pytest.mark.parametrize("topology", ["line", "ring", "complete"])
def test_consensus_converges_to_the_average(topology: str) -> None:
    values = np.array([[0.3, 0.2], [-0.6, 0.9], [1.2, 0.5]])
    w = metropolis_weights(adjacency(topology, 3))
    estimates, rounds = run_consensus(values, w, max_rounds=100)
    np.testing.assert_allclose(estimates, np.broadcast_to(values.mean(axis=0), (3, 2)), atol=1e-8)
    assert 1 <= rounds <= 100
    if topology != "line":  # for three agents the ring is the complete graph: one round
        assert rounds == 1


def test_consensus_respects_the_round_bound_and_preserves_the_sum() -> None:
    values = np.array([[1.0], [0.0], [-1.0]])
    w = metropolis_weights(adjacency("line", 3))
    for bound in range(4):
        estimates, rounds = run_consensus(values, w, max_rounds=bound)
        assert rounds == bound
        assert estimates.sum() == pytest.approx(0.0, abs=1e-12)  # the average is invariant
        # On the 3-agent line the disagreement [1, 0, -1] shrinks by exactly 2/3 per round.
        expected = np.array([1, 0, -1]) * (2 / 3) ** bound
        np.testing.assert_allclose(estimates[:, 0], expected, atol=1e-15)
    _, rounds = run_consensus(np.ones((3, 2)), w, max_rounds=5)
    assert rounds == 0  # already agreed
    # The vectorized path (precomputed W^k) gives the rounds of the plain loop.
    x = values
    for _ in range(3):
        x = w @ x
    estimates, rounds = run_consensus(values, w, 3, powers=weight_powers(w, 10))
    assert rounds == 3
    np.testing.assert_allclose(estimates, x, atol=1e-15)


# -------------------------------------------------------------------------------- the env
@pytest.mark.parametrize(("vertical", "horizontal"), COMBINATIONS)
def test_parallel_api(vertical: str, horizontal: str) -> None:
    parallel_api_test(
        make_env(vertical_protocol=vertical, horizontal_protocol=horizontal), num_cycles=30
    )


@pytest.mark.parametrize(("vertical", "horizontal"), COMBINATIONS)
def test_observation_space_is_fixed_and_declared(vertical: str, horizontal: str) -> None:
    env = make_env(vertical_protocol=vertical, horizontal_protocol=horizontal)
    extra = (*PROTOCOL_FEATURES[vertical], *PROTOCOL_FEATURES[horizontal])
    assert env.obs_features == BASE_FEATURES + extra
    n = N_BASE + len(extra)
    rng = np.random.default_rng(4)
    for episode in range(2):
        obs, _ = env.reset(seed=episode)
        while True:
            for agent, o in obs.items():
                space = env.observation_space(agent)
                assert space.shape == (n,) and o.shape == (n,)
                assert np.isfinite(space.low).all() and np.isfinite(space.high).all()
                assert space.contains(o)
            if not env.agents:
                break
            obs, *_ = env.step({a: rng.uniform(-1, 1, 3) for a in env.agents})


def run_day(env, act: dict[str, np.ndarray], hours: int = 24, day: int = 150):
    """Reset on ``day`` and step ``hours`` times with constant actions; return the infos."""
    obs, _ = env.reset(seed=0, options={"day": day})
    out = []
    for _ in range(hours):
        obs, rewards, _, _, infos = env.step(act)
        out.append((obs, rewards, infos))
    return out


class _StubProtocols:
    """The protocol hooks as they were before protocols existed: no features, LMP settlement."""

    obs_features: tuple[str, ...] = ()
    obs_size = 0
    obs_low = obs_high = np.zeros(0, dtype=np.float32)
    active = True  # take the env's settle/after_step path, which 'none'/'none' skips

    def reset(self, **_kwargs) -> None:
        return None

    def observations(self) -> list[tuple[float, ...]]:
        return [()] * len(MICROGRIDS)

    def settle(self, *, exchange_cost: np.ndarray, **_kwargs) -> Settlement:
        return Settlement(exchange_cost=exchange_cost, extra_cost=np.zeros(len(MICROGRIDS)))

    def after_step(self, **_kwargs) -> list[dict]:
        return [{} for _ in MICROGRIDS]


def test_none_none_is_unchanged() -> None:
    """'none'/'none' gives exactly what the env gave with the protocol stub it replaced."""
    env, stub = make_env(initial_soc=None), make_env(initial_soc=None)
    stub.protocols = _StubProtocols()
    assert env.obs_features == BASE_FEATURES
    assert env.observation_space("MG1") == stub.observation_space("MG1")
    rng = np.random.default_rng(123)
    for seed in (0, 1):
        o1, _ = env.reset(seed=seed)
        o2, _ = stub.reset(seed=seed)
        while True:
            for a in o1:
                np.testing.assert_array_equal(o1[a], o2[a])
                assert o1[a].shape == (N_BASE,)
            if not env.agents:
                break
            act = {a: rng.uniform(-1, 1, 3) for a in MICROGRIDS}
            o1, r1, _, _, i1 = env.step(act)
            o2, r2, _, _, i2 = stub.step(act)
            assert r1 == r2
            assert i1 == i2
            assert all(i1[a]["cost_protocol"] == 0.0 for a in MICROGRIDS)


@pytest.mark.parametrize(("vertical", "horizontal"), COMBINATIONS[1:])
def test_protocols_keep_physics_and_base_observations(vertical: str, horizontal: str) -> None:
    """Same actions give the same power flow and base features under every protocol."""
    base = run_day(make_env(), MIXED, hours=6)
    other = run_day(
        make_env(vertical_protocol=vertical, horizontal_protocol=horizontal), MIXED, hours=6
    )
    for (o1, _, i1), (o2, _, i2) in zip(base, other, strict=True):
        for a in MICROGRIDS:
            np.testing.assert_array_equal(o1[a], o2[a][:N_BASE])
            for key in ("exchange_mw", "cost_fuel", "safety", "soc"):
                assert i1[a][key] == i2[a][key]
            assert i2[a]["cost"] == pytest.approx(
                i2[a]["cost_fuel"] + i2[a]["cost_exchange"] + i2[a]["cost_protocol"]
            )


def test_consensus_changes_observations_only() -> None:
    base = run_day(make_env(), MIXED, hours=24)
    cons = run_day(make_env(horizontal_protocol="consensus"), MIXED, hours=24)
    for (_, r1, i1), (_, r2, _) in zip(base, cons, strict=True):
        assert r1 == r2
        assert all(i1[a]["cost_protocol"] == 0.0 for a in MICROGRIDS)


@pytest.mark.parametrize(("topology", "iterations"), [("line", 2), ("line", 100), ("complete", 5)])
def test_consensus_in_the_env(topology: str, iterations: int) -> None:
    env = make_env(
        horizontal_protocol="consensus",
        consensus_topology=topology,
        consensus_iterations=iterations,
    )
    col_x = env.obs_features.index("consensus_exchange")
    col_soc = env.obs_features.index("consensus_soc")
    for obs, _, infos in run_day(env, MIXED, hours=5):
        exchange = np.array([infos[a]["exchange_mw"] for a in MICROGRIDS])
        soc = np.array([infos[a]["soc"] for a in MICROGRIDS])
        rounds = {infos[a]["consensus_rounds"] for a in MICROGRIDS}
        assert len(rounds) == 1 and 0 <= rounds.pop() <= iterations
        for a in MICROGRIDS:
            assert obs[a][col_x] == pytest.approx(infos[a]["consensus_exchange_mw"], abs=1e-6)
            assert obs[a][col_soc] == pytest.approx(infos[a]["consensus_soc"], abs=1e-6)
        estimates = np.array([infos[a]["consensus_exchange_mw"] for a in MICROGRIDS])
        assert estimates.mean() == pytest.approx(exchange.mean(), abs=1e-12)
        if iterations >= 100 or topology == "complete":
            np.testing.assert_allclose(estimates, exchange.mean(), atol=1e-8)
            socs = [infos[a]["consensus_soc"] for a in MICROGRIDS]
            np.testing.assert_allclose(socs, soc.mean(), atol=1e-8)
        else:  # two rounds on a line are not enough: the estimates still differ
            assert np.ptp(estimates) > 1e-6


def test_p2p_payments_sum_to_zero_and_energy_balances() -> None:
    env = make_env(horizontal_protocol="p2p_trading")
    none = make_env()
    traded_hours = 0
    for act in (MIXED, ALL_EXPORT, actions((-1, 1, 0), (-1, 1, 0), (1, -1, 0))):
        for (obs, _, infos), (_, _, base) in zip(
            run_day(env, act), run_day(none, act), strict=True
        ):
            sold = np.array([infos[a]["p2p_sold_mw"] for a in MICROGRIDS])
            bought = np.array([infos[a]["p2p_bought_mw"] for a in MICROGRIDS])
            payment = np.array([infos[a]["p2p_payment"] for a in MICROGRIDS])
            exchange = np.array([infos[a]["exchange_mw"] for a in MICROGRIDS])
            assert sold.sum() == pytest.approx(bought.sum(), abs=1e-12)
            assert payment.sum() == pytest.approx(0.0, abs=1e-9)
            assert (sold <= np.maximum(-exchange, 0.0) + 1e-12).all()
            assert (bought <= np.maximum(exchange, 0.0) + 1e-12).all()
            assert not (sold * bought).any()  # nobody is on both sides
            price = infos["MG1"]["p2p_price"]
            dso_price = infos["MG1"]["price"]
            for i, a in enumerate(MICROGRIDS):
                info = infos[a]
                assert info["dso_exchange_mw"] == pytest.approx(exchange[i] + sold[i] - bought[i])
                expected = energy_cost(np.array([info["dso_exchange_mw"]]), dso_price, 0.9)[0]
                assert info["cost_exchange"] == pytest.approx(expected)
                assert info["cost_protocol"] == pytest.approx(payment[i])
                # Trading never makes anyone worse off than settling everything with the DSO.
                assert info["cost"] <= base[a]["cost"] + 1e-9
                assert obs[a][env.obs_features.index("p2p_net")] == pytest.approx(
                    bought[i] - sold[i], abs=1e-6
                )
            if sold.sum() > 0:
                traded_hours += 1
                assert 0.9 * dso_price - 1e-9 <= price <= dso_price + 1e-9
                np.testing.assert_allclose(payment, (bought - sold) * price)
                total = sum(infos[a]["cost"] for a in MICROGRIDS)
                base_total = sum(base[a]["cost"] for a in MICROGRIDS)
                # The DSO's export discount on the traded energy is saved by the community.
                assert base_total - total == pytest.approx(0.1 * dso_price * sold.sum(), rel=1e-9)
    assert traded_hours > 10


def test_p2p_no_trade_when_nobody_has_surplus() -> None:
    env = make_env(horizontal_protocol="p2p_trading")
    none = make_env()
    for (_, rewards, infos), (_, r0, _) in zip(
        run_day(env, ALL_IMPORT), run_day(none, ALL_IMPORT), strict=True
    ):
        assert all(infos[a]["exchange_mw"] > 0 for a in MICROGRIDS)
        for a in MICROGRIDS:
            assert infos[a]["p2p_sold_mw"] == 0.0 and infos[a]["p2p_bought_mw"] == 0.0
            assert infos[a]["p2p_payment"] == 0.0 and np.isnan(infos[a]["p2p_price"])
            assert np.isnan(infos[a]["p2p_offer_price"])
        assert rewards == r0


class _RecordingSolver:
    """Wraps the env's solver and keeps every result."""

    def __init__(self, solver) -> None:
        self.solver = solver
        self.results = []

    def solve(self, *args):
        result = self.solver.solve(*args)
        self.results.append(result)
        return result

    def reset(self) -> None:
        self.solver.reset()


def test_price_signal_settlement_hand_computed() -> None:
    env = make_env(
        vertical_protocol="price_signal", congestion_price=150.0, congestion_threshold=0.2
    )
    none = make_env()
    recorder = _RecordingSolver(env._solver)
    env._solver = recorder
    dso_lines = np.flatnonzero(env.net.line["zone"].to_numpy() == "DSO")
    day = 200
    prices = env._profiles.price[day]
    # Reactive injection (q = +1 from diesels running at their minimum) loads the feeder well
    # above the threshold.
    act = actions((0.0, 0.0, 1.0), (0.0, 0.0, 1.0), (-0.5, 0.0, 1.0))
    obs, _ = env.reset(seed=0, options={"day": day})
    col = env.obs_features.index("dso_price")
    base = run_day(none, act, hours=6, day=day)
    adders = []
    for h in range(6):
        loading = recorder.results[-1].line_loading_percent[dso_lines].max() / 100.0
        published = prices[h] + 150.0 * max(0.0, loading - 0.2)
        adders.append(published - prices[h])
        assert obs["MG1"][col] == pytest.approx(published / 100.0, rel=1e-6)
        assert obs["MG1"][env.obs_features.index("feeder_loading")] == pytest.approx(loading, 1e-6)
        obs, _, _, _, infos = env.step(act)
        for a in MICROGRIDS:
            info, ref = infos[a], base[h][2][a]
            assert info["dso_price"] == pytest.approx(published)
            assert info["congestion_adder"] == pytest.approx(published - prices[h])
            x = info["exchange_mw"]
            assert x == ref["exchange_mw"]
            expected = x * published if x > 0 else x * 0.9 * published
            assert info["cost_exchange"] == pytest.approx(expected)
            assert info["cost"] - ref["cost"] == pytest.approx(
                x * (published - prices[h]) * (1.0 if x > 0 else 0.9)
            )
    assert max(adders) > 10.0  # the scenario is congested


def test_price_signal_without_congestion_is_the_lmp() -> None:
    env = make_env(vertical_protocol="price_signal", congestion_price=0.0)
    for (_, r0, i0), (_, r1, i1) in zip(
        run_day(make_env(), MIXED), run_day(env, MIXED), strict=True
    ):
        assert r1 == pytest.approx(r0)
        assert all(i1[a]["dso_price"] == i0[a]["price"] for a in MICROGRIDS)


def test_setpoint_deviation_settled_hand_computed() -> None:
    env = make_env(vertical_protocol="setpoint", setpoint_penalty_price=80.0, load_scale=0.3)
    none = make_env(load_scale=0.3)
    day = 75
    base = run_day(none, MIXED, day=day)
    # The target is the day's mean net load (load - PV - wind), as measured in the infos.
    targets = {
        a: np.mean([i[a]["load_mw"] - i[a]["pv_mw"] - i[a]["wind_mw"] for _, _, i in base])
        for a in MICROGRIDS
    }
    obs, _ = env.reset(seed=0, options={"day": day})
    col = env.obs_features.index("setpoint")
    for a in MICROGRIDS:
        assert obs[a][col] == pytest.approx(targets[a], abs=1e-6)
    for h in range(24):
        obs, rewards, _, _, infos = env.step(MIXED)
        for a in MICROGRIDS:
            info, ref = infos[a], base[h][2][a]
            x = info["exchange_mw"]
            assert info["setpoint_mw"] == pytest.approx(targets[a])
            assert info["setpoint_deviation_mw"] == pytest.approx(x - targets[a])
            penalty = 80.0 * abs(x - targets[a])
            assert info["setpoint_cost"] == pytest.approx(penalty)
            assert info["cost_protocol"] == pytest.approx(penalty)
            assert info["cost_exchange"] == pytest.approx(ref["cost_exchange"])
            assert info["cost"] == pytest.approx(ref["cost"] + penalty)
            assert rewards[a] == pytest.approx(base[h][1][a] - penalty / 100.0)
            assert obs[a][col] == pytest.approx(targets[a], abs=1e-6)


def test_price_signal_with_p2p_trades_at_the_dso_price() -> None:
    env = make_env(vertical_protocol="price_signal", horizontal_protocol="p2p_trading")
    hours = run_day(env, MIXED, hours=24)
    traded = [infos for _, _, infos in hours if infos["MG1"]["p2p_sold_mw"] > 0]
    assert len(traded) >= 3, "MG1 sold on the P2P market in fewer than 3 hours of the day"
    for _, _, infos in hours:
        dso_price = infos["MG1"]["dso_price"]
        if infos["MG1"]["p2p_sold_mw"] > 0:
            assert infos["MG2"]["p2p_bid_price"] == pytest.approx(dso_price)
            assert 0.9 * dso_price - 1e-9 <= infos["MG1"]["p2p_price"] <= dso_price + 1e-9
        for a in MICROGRIDS:
            x = infos[a]["dso_exchange_mw"]
            expected = x * dso_price * (1.0 if x > 0 else 0.9)
            assert infos[a]["cost_exchange"] == pytest.approx(expected)
