"""The observation table: every column from its source, identity, day-ahead prices."""

from __future__ import annotations

import numpy as np
import pytest

from tune_grid import economics, make_env
from tune_grid.env.observation import (
    PRICE_SCALE,
    ObservationLayout,
    Source,
    feature_names,
    observation_features,
    observe,
)
from tune_grid.grid.devices import DIESEL, MICROGRIDS


def _observe(sources: list[int]) -> tuple[bool, np.ndarray]:
    n = len(sources)
    out = np.zeros((3, n))
    ok = observe(
        np.array(sources, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
        np.full(n, -1e9),
        np.full(n, 1e9),
        np.zeros((3, 2)),
        5,
        np.arange(24.0),
        7.0,
        *(np.ones(3), 0.5, 0.5),
        *(np.full(3, 0.5), np.zeros(3), np.zeros(3), np.ones(3), np.ones(3)),
        *(np.ones(3), np.ones(3), np.zeros(3)),
        out,
    )
    return ok, out


def test_every_source_is_computed_and_an_unknown_one_is_refused() -> None:
    ok, _ = _observe([int(s) for s in Source])
    assert ok
    ok, _ = _observe([max(Source) + 1])
    assert not ok
    used = {f.source for f in observation_features()}
    assert used == set(Source)  # no source without a feature, none forgotten in the table


def test_feature_names_are_unique_and_bounds_ordered() -> None:
    features = observation_features()
    names = feature_names(features)
    assert len(set(names)) == len(names)
    assert all(f.low < f.high and f.meaning for f in features)


def test_identity_diesel_data_and_price_lookahead() -> None:
    env = make_env(split="test", price_lookahead=6)
    obs, _ = env.reset(options={"day": 10})
    col = {name: i for i, name in enumerate(env.obs_features)}
    prices = env._profiles.price[10]
    terminal = float(economics.terminal_price(prices))
    hour = 0
    while env.agents:
        for i, agent in enumerate(MICROGRIDS):
            o = obs[agent]
            one_hot = [o[col[f"agent_{m}"]] for m in MICROGRIDS]
            assert one_hot == [1.0 if m == agent else 0.0 for m in MICROGRIDS]
            assert o[col["dg_cost"]] == pytest.approx(DIESEL[agent].b / PRICE_SCALE)
            assert o[col["dg_p_max"]] == pytest.approx(DIESEL[agent].max_p_mw)
            assert o[col["terminal_price"]] == pytest.approx(terminal / PRICE_SCALE, rel=1e-6)
            for k in range(7):
                name = "price" if k == 0 else f"price_ahead_{k}"
                expected = prices[hour + k] if hour + k < 24 else terminal  # past midnight
                assert o[col[name]] == pytest.approx(np.clip(expected / 100, -2, 12), rel=1e-6)
            assert i == MICROGRIDS.index(agent)
        obs, *_ = env.step({a: np.zeros(3) for a in env.agents})
        hour += 1
    assert "price_ahead_7" not in col


def test_layout_follows_the_table() -> None:
    features = observation_features()
    layout = ObservationLayout.of(features)
    assert layout.sources.tolist() == [int(f.source) for f in features]
    env = make_env()
    low = env.observation_space("MG1").low
    np.testing.assert_array_equal(low, np.array([f.low for f in features], dtype=np.float32))
    assert make_env(price_lookahead=0).observation_space("MG1").shape == (len(features) - 4,)
