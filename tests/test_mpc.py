"""The receding-horizon MPC baseline: forecasters, the oracle reproduced, acting on forecasts,
its cache key, the shipped table, bad input, and the intervals over days."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tune_grid import economics
from tune_grid.env import make_env
from tune_grid.env.day_intervals import gap_interval, mean_interval
from tune_grid.env.evaluation import run_day
from tune_grid.grid.data import select_days, split_profiles
from tune_grid.grid.devices import BATTERY
from tune_grid.oracle import core, oracle_cost
from tune_grid.oracle import forecast as fc
from tune_grid.oracle.dispatch import DayInputs, DispatchOptions, solve_dispatch
from tune_grid.oracle.replay import executable

try:
    from tests.hand_networks import one_site, two_bus
except ModuleNotFoundError:  # pytest run from inside tests/
    from hand_networks import one_site, two_bus  # type: ignore[no-redef]
from tune_grid.oracle.mpc import (
    DEFAULT_HORIZON,
    SHIPPED_FORECASTERS,
    MpcError,
    MpcPolicy,
    _stored_key,
    cache_key,
    check_horizon,
    mpc_day,
    mpc_day_is_stored,
    shipped_days,
    shipped_records,
)

PERFECT_DAYS = (0, 67, 100)
"""Sampled test days on which perfect-foresight MPC is held to the oracle (2024-03-08 once ended
$18 worse: a plan with a diesel below P_min was judged as planned, not as the env runs it)."""
FIRST_PLAN_TOL_MW = 1e-4
"""The first plan of perfect-foresight MPC is the oracle's schedule to the solver's precision
(0.1 kW: its settlement is written against a constant, not the first hour's energy variable)."""
NOT_WORSE_USD = 0.01
"""...and its day, re-planned every hour, never ends worse than the oracle's replay by more."""


@pytest.fixture(scope="module", autouse=True)
def empty_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Oracle and MPC days solved here, never read from the developer's cache."""
    root = tmp_path_factory.mktemp("tune_grid_cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("TUNE_GRID_CACHE", str(root))
    yield root
    mp.undo()


# ------------------------------------------------------------------------------ forecasters
def test_forecasters_by_their_definitions() -> None:
    test = split_profiles("test")
    # perfect is the day itself
    perfect = fc.forecast("perfect", "test", 40)
    np.testing.assert_array_equal(perfect.pv, test.pv[40])
    # persistence: the day before, across the split boundary for 2024-01-01
    np.testing.assert_array_equal(fc.forecast("persistence", "test", 40).wind, test.wind[39])
    np.testing.assert_array_equal(
        fc.forecast("persistence", "test", 40).load["MG2"], test.load["MG2"][39]
    )
    validation = split_profiles("validation")  # 2023-12-31 is a validation day
    assert validation.dates[-1] == "2023-12-31"
    np.testing.assert_array_equal(fc.forecast("persistence", "test", 0).pv, validation.pv[-1])
    train = split_profiles("train")
    # climatology: the train split's hourly mean of the month (never a validation day)
    july = [i for i, d in enumerate(train.dates) if d.startswith("2023-07")]
    assert 20 <= len(july) < 31  # validation days are left out
    day = test.dates.index("2024-07-04")
    np.testing.assert_allclose(
        fc.forecast("climatology", "test", day).load["DSO"], train.load["DSO"][july].mean(axis=0)
    )
    # the data's first day has no day before; 2023 has no training data before it
    with pytest.raises(fc.ForecastError, match="no data for 2022-12-31"):
        fc.forecast("persistence", "train", 0)
    with pytest.raises(fc.ForecastError, match="validation split has no training data before"):
        fc.forecast("climatology", "validation", 3)


def test_forecast_errors_by_hand_and_zero_for_perfect() -> None:
    days = [int(d) for d in select_days(366, 30)]
    errors = fc.forecast_errors(fc.FORECASTERS, "test", days).set_index("forecaster")
    assert (errors.loc["perfect", ["load_mae_pct", "pv_mae_pct", "wind_mae_pct"]] == 0.0).all()
    for name in ("persistence", "climatology"):
        assert (errors.loc[name, ["load_mae_pct", "pv_mae_pct", "wind_mae_pct"]] > 0.5).all()
    one = fc.forecast_errors(["persistence"], "test", [40]).iloc[0]
    test = split_profiles("test")
    assert one["pv_mae_pct"] == pytest.approx(100 * np.abs(test.pv[39] - test.pv[40]).mean())
    loads = [np.abs(test.load[z][39] - test.load[z][40]).mean() for z in fc.ZONES]
    assert one["load_mae_pct"] == pytest.approx(100 * np.mean(loads))


# ------------------------------------------------------------------------------ bad input
def test_unknown_forecaster_bad_horizon_and_a_month_without_training_data() -> None:
    with pytest.raises(fc.ForecastError, match="allowed: perfect, persistence, climatology"):
        fc.check_forecaster("tomorrow")
    for bad in (0, -3, 2.5, True):
        with pytest.raises(MpcError, match="whole number of hours >= 1"):
            check_horizon(bad)  # type: ignore[arg-type]
    env = make_env(split="test")
    with pytest.raises(MpcError, match="iterations must be >= 1"):
        MpcPolicy(env, "perfect", iterations=0)
    january_only = {1: fc.forecast("perfect", "train", 0)}
    with pytest.raises(fc.ForecastError, match="no days in month 7.*months with training data: 1"):
        fc.climatology("test", split_profiles("test").dates.index("2024-07-04"), january_only)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("oracle", "--days", "2", "--mpc", "tomorrow"), "unknown forecaster 'tomorrow'"),
        (("oracle", "--days", "2", "--horizon", "0"), "MPC horizon must be a whole number"),
        (("baselines", "--days", "2", "--mpc", "yesterday"), "allowed: perfect, persistence"),
    ],
)
def test_cli_refuses_bad_mpc_input_in_one_line(
    args: tuple[str, ...], message: str, run_cli: Callable[..., Any]
) -> None:
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------------------ cache key
def test_cache_key_changes_with_the_forecaster_horizon_and_physics() -> None:
    cfg = core._physics(core._config({}, "test"))
    options = DispatchOptions()
    guess = fc.forecast("persistence", "test", 5)
    date = split_profiles("test").dates[5]
    base = cache_key(cfg, 5, date, "persistence", 24, 3, options, guess)
    assert base == cache_key(cfg, 5, date, "persistence", 24, 3, options, guess)
    others = {
        cache_key(cfg, 5, date, "climatology", 24, 3, options, guess),
        cache_key(cfg, 5, date, "persistence", 6, 3, options, guess),
        cache_key(cfg, 5, date, "persistence", 24, 2, options, guess),
        cache_key(cfg, 5, date, "persistence", 24, 3, options, fc.forecast("perfect", "test", 5)),
        cache_key(cfg.replace(load_scale=0.9), 5, date, "persistence", 24, 3, options, guess),
        cache_key(cfg, 5, date, "persistence", 24, 3, DispatchOptions(violation_price=7.0), guess),
    }
    assert base not in others and len(others) == 6


def test_settlement_against_the_days_start_by_hand() -> None:
    """A plan that starts mid-day settles the battery against the day's start SoC, not its own
    first hour's. One hour, 1 MW load, price $112, terminal price $110: a stored MWh above the
    reference is credited 110 x 0.98 = $107.8 at midnight, below it bought back at 110 / 0.98 =
    $112.2; discharging now earns 112 x 0.98 = $109.8 per stored MWh. So the battery discharges
    exactly down to the reference: none with the reference at the start (0.7), 0.1 x capacity of
    stored energy with 0.6, 0.2 x capacity with 0.5."""
    no_dg_site = [one_site(BATTERY, dataclasses.replace(one_site().dg, max_p_mw=0.0))]
    common = dict(
        price=np.array([112.0]),
        p_ext_mw=np.array([[0.0], [-1.0]]),
        q_ext_mvar=np.zeros((2, 1)),
        initial_soc=0.7,
        terminal_price=110.0,
    )
    eta_d, cap = BATTERY.discharge_efficiency, BATTERY.capacity_mwh
    for reference, stored_mwh in ((None, 0.0), (0.6, 0.1 * cap), (0.5, 0.2 * cap)):
        day = DayInputs(**common, reference_soc=reference)  # type: ignore[arg-type]
        result = solve_dispatch(two_bus(), no_dg_site, day)
        assert result.battery_mw[0, 0] == pytest.approx(-stored_mwh * eta_d, abs=1e-4), reference
        start = 0.7 if reference is None else reference
        expected = economics.terminal_soc_cost(
            float(result.soc[0, -1]), start, cap, 110.0, BATTERY.charge_efficiency, eta_d
        )
        assert result.terminal_cost[0] == pytest.approx(float(expected), abs=1e-6)


def test_the_shipped_table_holds_every_shipped_day_under_todays_key() -> None:
    """Every shipped record is found under the key the MPC computes now (a change of MPC_VERSION,
    ORACLE_VERSION, config, network or data that forgot to rebuild the table fails here), and it
    holds each forecaster's shipped days, so a quickstart on a fresh machine solves none."""
    shipped = shipped_records()
    by_forecaster: dict[str, set[int]] = {}
    for key, record in shipped.items():
        assert record["horizon"] == DEFAULT_HORIZON
        _, day, _, now = _stored_key("test", record["day"], None, record["forecaster"], 24, 3)
        assert now == key, (record["date"], record["forecaster"])
        by_forecaster.setdefault(record["forecaster"], set()).add(day)
    for forecaster, counts in SHIPPED_FORECASTERS.items():
        assert by_forecaster[forecaster] == set(shipped_days(counts)), forecaster
    assert mpc_day_is_stored("test", shipped_days((14,))[3], None, "persistence")


# ------------------------------------------------------------------------------ real days
@pytest.mark.slow
@pytest.mark.parametrize("day", PERFECT_DAYS)
def test_perfect_forecast_mpc_reproduces_the_oracle(day: int) -> None:
    oracle = oracle_cost("test", day)
    mpc = mpc_day("test", day, forecaster="perfect", use_cache=False)
    first = np.array([mpc.first_plan[k] for k in ("battery_mw", "dg_p_mw", "dg_q_mvar")])
    schedule = np.array([oracle.schedule[k] for k in ("battery_mw", "dg_p_mw", "dg_q_mvar")])
    assert np.abs(first - executable(schedule)).max() <= FIRST_PLAN_TOL_MW
    assert mpc.row["objective"] <= oracle.replay_objective + NOT_WORSE_USD
    assert mpc.solves >= 24 and mpc.solve_time_s > 0.0


@pytest.mark.slow
def test_mpc_acts_on_its_forecast_not_on_the_truth() -> None:
    """A forecast of 60 % more microgrid load and no sun or wind: the MPC plans and runs more
    diesel than with the true forecast, and pays for it on the real day."""
    day, horizon = 150, 6

    def too_high(split: str, d: int) -> fc.DayForecast:
        real = fc.truth(split, d)
        load = {z: v if z == "DSO" else 1.6 * v for z, v in real.load.items()}
        return fc.DayForecast(load=load, pv=0.0 * real.pv, wind=0.0 * real.wind)

    runs = {}
    for name, predict in (("truth", fc.truth), ("wrong", too_high)):
        env = make_env(split="test")
        policy = MpcPolicy(env, "perfect", horizon=horizon, predict=predict)
        runs[name] = (run_day(env, policy, day), policy)
    (right_row, right), (wrong_row, wrong) = runs["truth"], runs["wrong"]
    assert all(p.shape[2] <= horizon for p in wrong.plans) and len(wrong.plans) == 24
    planned = [sum(p[1, :, 0].sum() for p in policy.plans) for policy in (right, wrong)]
    assert planned[1] > planned[0] + 1.0  # MWh of diesel planned for the hour at hand
    assert wrong_row["dg_mwh"] > right_row["dg_mwh"] + 1.0  # ...and run
    assert wrong_row["cost"] > right_row["cost"]


@pytest.mark.slow
def test_the_shipped_table_is_what_the_mpc_computes_now() -> None:
    shipped = shipped_records()
    records = list(shipped.values())
    picks = [
        next(r for r in records if r["forecaster"] == name and r["horizon"] == 24)
        for name in ("persistence", "climatology")
    ]
    for record in picks:
        now = mpc_day("test", record["day"], forecaster=record["forecaster"], use_cache=False)
        for column in ("cost", "safety", "objective", "dg_mwh"):
            assert now.row[column] == pytest.approx(record["row"][column], abs=0.01), column


@pytest.mark.slow
def test_oracle_command_shows_the_mpc_with_both_gaps_and_intervals(
    run_cli: Callable[..., Any],
) -> None:
    result = run_cli("oracle", "--days", "2", "--mpc", "persistence", "--mpc", "climatology")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "mpc (persistence)" in out and "gap to mpc (persistence)" in out
    table = [line for line in out.splitlines() if line.startswith("mpc (") and "solve" not in line]
    rows = {line.split("  ")[0]: line.split() for line in table}
    assert rows.keys() == {"mpc (persistence)", "mpc (climatology)"}
    # each row is its own forecaster's MPC (the shipped days 2024-01-01 and 2024-12-31)
    shipped = list(shipped_records().values())
    for name in ("persistence", "climatology"):
        costs = [
            r["row"]["cost"] for r in shipped if r["forecaster"] == name and r["day"] in (0, 365)
        ]
        assert float(rows[f"mpc ({name})"][2]) == pytest.approx(np.mean(costs), abs=0.01)
    rule = next(line for line in out.splitlines() if line.startswith("rule_based"))
    assert rule.count("[") == 3  # cost, gap to the oracle, gap to the MPC: each with an interval
    assert "forecast error on these days" in out and "persistence  load" in out


# ------------------------------------------------------------------------------ intervals
def test_day_intervals_cover_the_mean_and_pair_the_days() -> None:
    rng = np.random.default_rng(1)
    days = rng.uniform(200.0, 1200.0, 61)  # days differ a lot...
    mean, lo, hi = mean_interval(days)
    assert lo < mean < hi and hi - lo > 50.0
    assert mean_interval(days) == (mean, lo, hi)  # seeded
    better = days * 0.9  # ...a policy 10 % cheaper on every day is clearly separated, paired
    gap, glo, ghi = gap_interval(better, days)
    assert gap == pytest.approx(-0.1) and glo == pytest.approx(-0.1) and ghi == pytest.approx(-0.1)
    shuffled = rng.permutation(better)  # unpaired noise: wide
    assert np.ptp(gap_interval(shuffled, days)[1:]) > 0.05
    assert np.isnan(mean_interval([5.0])[1]) and np.isnan(mean_interval([])[0])
    with pytest.raises(ValueError, match="paired days"):
        gap_interval([1.0, 2.0], [1.0])
    frame = pd.DataFrame({"cost": days})
    assert mean_interval(frame["cost"])[0] == pytest.approx(days.mean())
