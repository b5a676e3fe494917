"""Receding-horizon MPC with forecasts: the causal baseline a power engineer compares RL against.

Every hour ``h`` of a day, :class:`MpcPolicy` re-solves the oracle's dispatch problem (the same
convex model, solver and AC successive linearization,
:func:`~tune_grid.oracle.core.linearized_plan`)
over hours ``h .. min(h + H, 24) - 1`` with only what is known at that hour:

* the day-ahead prices of the whole day (known at midnight, so also the day's terminal price);
* the measured state: each battery's SoC now, and the day's start SoC the env settles against;
* forecasts of load, PV and wind from a forecaster (:mod:`tune_grid.oracle.forecast`).

It applies the first hour's set points in the real env (AC power flow, the env's own money),
steps, and repeats. A plan whose horizon ends before midnight values its last hour's stored energy
with the env's own day-end settlement against the day's start (the terminal price), so a short
horizon neither drains nor hoards the battery for free. The first plan of a day is solved like
the oracle's (up to ``DEFAULT_ITERATIONS`` linearizations); later ones start from the previous
plan shifted by an hour (or from doing nothing, whichever is better in AC merit on the forecast)
and take at most ``iterations`` solves. With ``perfect`` forecasts the first plan starts exactly
as the oracle's does (do-nothing or the rule's schedule), so its day replays the oracle's (tested).

Days are cached on disk like the oracle's (:mod:`tune_grid.oracle.cache`), keyed by the
forecaster, ``H``, the iterations, the env's physics and money keys, the network, the devices, the
day's true profiles and its forecast. A table shipped with the package
(``tune_grid/data/mpc_days.parquet``, rebuilt by ``python -m tune_grid.oracle.mpc``) holds the
same records for the default env config's 61 and 14 evenly spaced test days, so a quickstart
need not solve them; a test re-solves shipped days and compares.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tune_grid import economics
from tune_grid.config import EnvConfig
from tune_grid.errors import TuneGridError
from tune_grid.grid.data import HOURS_PER_DAY
from tune_grid.grid.devices import BATTERY, DIESEL, MICROGRIDS, PV_RATING_MW, WIND_RATING_MW
from tune_grid.oracle import cache
from tune_grid.oracle.core import (
    DEFAULT_ITERATIONS,
    DEFAULT_SOC,
    ORACLE_VERSION,
    SCHEDULE_KEYS,
    ZONES,
    _config,
    _physics,
    _profiles,
    _resolve_day,
    _rule_based_controls,
    _system,
    ac_merit,
    default_options,
    exogenous_from,
    linearized_plan,
)
from tune_grid.oracle.dispatch import DayInputs, DispatchOptions
from tune_grid.oracle.forecast import DayForecast, check_forecaster, forecast
from tune_grid.oracle.replay import executable, schedule_actions

MPC_VERSION = 2
"""Bump when the MPC's procedure changes, so cached and shipped days are recomputed (the key
also holds ``ORACLE_VERSION``, for the model and solver it shares with the oracle).
2: every hour the plan is the best, as the env executes it (``replay.executable``), of the new
solve, doing nothing and the previous plan shifted."""
DEFAULT_FORECASTER = "persistence"
DEFAULT_HORIZON = 24
"""Hours planned ahead; a plan never runs past midnight, so 24 is always the rest of the day."""
REPLAN_ITERATIONS = 3
"""Most linearizations of each hourly re-plan after the first (warm-started) one."""
SHIPPED_TABLE = "mpc_days.parquet"


class MpcError(TuneGridError, ValueError):
    """The MPC cannot run as asked (a bad horizon or iteration count)."""


def check_horizon(horizon: int) -> int:
    """``horizon`` if it is a whole number of hours >= 1; else a one-line :class:`MpcError`."""
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise MpcError(f"MPC horizon must be a whole number of hours >= 1, got {horizon!r}")
    return int(horizon)


class MpcPolicy:
    """A causal policy for :func:`tune_grid.env.evaluation.run_day`: at each call it reads the
    env's measured state (day, hour, SoC), re-plans on forecasts and returns the first hour's
    actions. ``env`` is the env it acts in (a plain ``NetworkedMicrogridEnv``); ``predict``
    replaces the named forecaster (e.g. a hand-made forecast in a test)."""

    def __init__(
        self,
        env: Any,
        forecaster: str = DEFAULT_FORECASTER,
        horizon: int = DEFAULT_HORIZON,
        iterations: int = REPLAN_ITERATIONS,
        options: DispatchOptions | None = None,
        predict: Callable[[str, int], DayForecast] | None = None,
    ) -> None:
        self.env = env
        self.forecaster = check_forecaster(forecaster)
        self._truth_known = predict is None and self.forecaster == "perfect"
        self.predict = predict or functools.partial(forecast, self.forecaster)
        """(split, day) -> the day's forecast; by default the named forecaster's."""
        self.horizon = check_horizon(horizon)
        if iterations < 1:
            raise MpcError(f"MPC iterations must be >= 1, got {iterations}")
        self.iterations = int(iterations)
        self.cfg = _physics(env.config)
        self.options = options or default_options(self.cfg)
        self.system = _system(self.cfg)
        self.solve_time_s = 0.0
        self.solves = 0
        self.plans: list[np.ndarray] = []
        """Every hour's plan (3, M, T_h): battery MW, diesel MW, diesel Mvar."""
        self._day: int | None = None
        self._hour: int | None = None
        self._predicted: Any = None
        self._previous: np.ndarray | None = None

    def _start_day(self, day: int) -> None:
        profiles = _profiles(self.cfg.split)
        guess = self.predict(self.cfg.split, day)
        self._predicted = exogenous_from(
            self.system, guess.load, guess.pv, guess.wind, profiles.price[day], self.cfg.load_scale
        )
        self._day, self._previous = day, None
        self.plans = []

    def plan(self) -> np.ndarray:
        """Re-plan from the env's current hour; the plan (3, M, hours left in the horizon)."""
        env, cfg = self.env, self.cfg
        hour = int(env.hour)
        if hour == 0 or self._day != env.day_index:
            self._start_day(int(env.day_index))
        elif hour != (self._hour or 0) + 1:
            raise RuntimeError(
                f"MpcPolicy planned hour {self._hour} and is asked for hour {hour}: it must act in "
                "the env it was built with (pass that env to run_day)"
            )
        self._hour = hour
        end = min(HOURS_PER_DAY, hour + self.horizon)
        span = slice(hour, end)
        exo = self._predicted
        window = dataclasses.replace(
            exo,
            price=exo.price[span],
            load_p=exo.load_p[:, span],
            load_q=exo.load_q[:, span],
            pv=exo.pv[:, span],
            wind=exo.wind[:, span],
            p_ext=exo.p_ext[:, span],
            q_ext=exo.q_ext[:, span],
        )
        settle = cfg.terminal_soc == "settle"
        inputs = DayInputs(
            price=window.price,
            p_ext_mw=window.p_ext,
            q_ext_mvar=window.q_ext,
            initial_soc=env.soc,
            export_discount=cfg.export_discount,
            terminal_price=float(economics.terminal_price(exo.price)) if settle else None,
            reference_soc=env.day_start_soc,
        )
        length = end - hour
        starts = [np.zeros((3, len(MICROGRIDS), length))]
        if self._previous is not None:
            shifted = np.zeros_like(starts[0])
            tail = self._previous[:, :, 1 : 1 + length]
            shifted[:, :, : tail.shape[2]] = tail
            starts.append(shifted)
        if hour == 0 and self._truth_known and length == HOURS_PER_DAY:
            # The oracle's own starts: perfect foresight then re-plans the oracle's day.
            starts.append(_rule_based_controls(cfg, int(env.day_index), float(env.soc[0])))
        iterations = DEFAULT_ITERATIONS if hour == 0 else self.iterations
        began = time.perf_counter()
        final, _, solves = linearized_plan(
            self.system, window, inputs, cfg, self.options, starts, iterations
        )
        # The plan is the best, in AC merit on the forecast and as the env will run it (a diesel
        # planned below P_min runs at P_min), of the new solve and the starts (doing nothing,
        # the previous plan shifted): the final polish is not merit-checked, and so a re-plan
        # never loses against the plan it replaces.
        solved = executable(np.stack([final.battery_mw, final.dg_p_mw, final.dg_q_mvar]))
        merit = functools.partial(ac_merit, self.system, window, inputs, cfg, self.options)
        candidates = [solved, *(executable(start) for start in starts)]
        controls = min(candidates, key=merit)
        self.solve_time_s += time.perf_counter() - began
        self.solves += solves
        self._previous = controls
        self.plans.append(controls)
        return controls

    def __call__(self, observations: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        controls = self.plan()
        actions = schedule_actions(controls[0][:, :1], controls[1][:, :1], controls[2][:, :1])[0]
        return {agent: actions[i].astype(np.float32) for i, agent in enumerate(MICROGRIDS)}


@dataclass(frozen=True)
class MpcDay:
    """One day run by the MPC (money in $ for all three microgrids together): the row
    ``evaluation.run_day`` gives for the day (cost, safety, objective, ...) plus how it was made."""

    split: str
    day: int
    date: str
    forecaster: str
    horizon: int
    row: dict[str, Any]
    """``evaluation.run_day``'s totals of the day (``DAY_COLUMNS`` and behaviour columns)."""
    solve_time_s: float
    solves: int
    initial_soc: float
    first_plan: dict[str, list[list[float]]]
    """The day's first plan as the env runs it (battery_mw, dg_p_mw, dg_q_mvar; M x 24)."""
    cached: bool = False

    def to_row(self) -> dict[str, Any]:
        return {
            **self.row,
            "forecaster": self.forecaster,
            "horizon": self.horizon,
            "solve_time_s": self.solve_time_s,
            "solves": self.solves,
            "cached": self.cached,
        }

    def to_json(self) -> dict[str, Any]:
        return cache.to_record(self)

    @classmethod
    def from_json(cls, record: Mapping[str, Any], cached: bool = True) -> MpcDay:
        return cache.from_record(cls, record, cached)


def cache_key(
    config: EnvConfig,
    day: int,
    date: str,
    forecaster: str,
    horizon: int,
    iterations: int,
    options: DispatchOptions,
    guess: DayForecast,
) -> str:
    """Hash of everything an MPC day depends on (see the module doc)."""
    profiles = _profiles(config.split)
    truth = [profiles.load[z][day].tolist() for z in ZONES]
    truth += [profiles.pv[day].tolist(), profiles.wind[day].tolist(), profiles.price[day].tolist()]
    payload = {
        "version": MPC_VERSION,
        "split": config.split,
        "day": day,
        "date": date,
        "config": _physics(config).to_dict() | {"split": config.split},
        "forecaster": forecaster,
        "horizon": horizon,
        "iterations": iterations,
        "first_iterations": DEFAULT_ITERATIONS,
        "oracle_version": ORACLE_VERSION,
        "options": dataclasses.asdict(options),
        "network": _system(config).fingerprint,
        "devices": [repr(BATTERY), [repr(DIESEL[m]) for m in MICROGRIDS]],
        "ratings": [PV_RATING_MW, WIND_RATING_MW],
        "profiles": cache.digest(truth),
        "forecast": cache.digest(guess.digest_payload()),
    }
    return cache.digest(payload)


def shipped_table_path() -> Path:
    return cache.shipped_table_path(SHIPPED_TABLE)


def shipped_records() -> dict[str, dict[str, Any]]:
    """The shipped MPC days by cache key (empty when the package has no table)."""
    return cache.shipped_records(SHIPPED_TABLE)


def write_shipped_table(records: Mapping[str, MpcDay], path: Path | None = None) -> Path:
    """Write ``records`` (cache key -> day) as the shipped table."""
    return cache.write_shipped_table(
        SHIPPED_TABLE,
        {key: r.to_json() for key, r in records.items()},
        {"forecaster": [r.forecaster for r in records.values()]},
        path,
    )


def _stored_key(
    split: str,
    day: int | str,
    config: Mapping[str, Any] | EnvConfig | None,
    forecaster: str,
    horizon: int,
    iterations: int,
) -> tuple[EnvConfig, int, str, str]:
    """(physics config, day index, date, cache key) of an MPC day."""
    cfg = _physics(_config(config, split))
    if cfg.initial_soc is None:
        cfg = cfg.replace(initial_soc=DEFAULT_SOC)
    profiles = _profiles(cfg.split)
    d = _resolve_day(profiles, cfg.split, day)
    date = profiles.dates[d]
    guess = forecast(forecaster, cfg.split, d)
    options = default_options(cfg)
    return cfg, d, date, cache_key(cfg, d, date, forecaster, horizon, iterations, options, guess)


def mpc_day_is_stored(
    split: str,
    day: int | str,
    config: Mapping[str, Any] | EnvConfig | None = None,
    forecaster: str = DEFAULT_FORECASTER,
    horizon: int = DEFAULT_HORIZON,
    iterations: int = REPLAN_ITERATIONS,
    cache_dir: str | Path | None = None,
) -> bool:
    """Whether :func:`mpc_day` would read the day from the disk cache or the shipped table."""
    cfg, _, date, key = _stored_key(split, day, config, forecaster, horizon, iterations)
    return _entry(cache_dir, cfg.split, date, key).exists() or key in shipped_records()


def store_record(key: str, record: Mapping[str, Any], cache_dir: str | Path | None = None) -> None:
    """Write an MPC day's record (``MpcDay.to_json``) into the disk cache under ``key``."""
    cache.store(_entry(cache_dir, record["split"], record["date"], key), dict(record))


def _entry(cache_dir: str | Path | None, split: str, date: str, key: str) -> Path:
    """Where an MPC day is cached on disk: ``<oracle cache>/mpc/``."""
    return cache.entry_path(cache.cache_dir(cache_dir) / "mpc", split, date, key)


def mpc_day(
    split: str,
    day: int | str,
    config: Mapping[str, Any] | EnvConfig | None = None,
    *,
    forecaster: str = DEFAULT_FORECASTER,
    horizon: int = DEFAULT_HORIZON,
    iterations: int = REPLAN_ITERATIONS,
    use_cache: bool = True,
    refresh: bool = False,
    cache_dir: str | Path | None = None,
    keep: dict[str, MpcDay] | None = None,
) -> MpcDay:
    """One day (index or date) of ``split`` run by the MPC; cached (disk, then the shipped
    table) unless ``use_cache`` is False. ``config.initial_soc = None`` uses 0.5, like the
    oracle. ``keep``: a dict that receives the record under its cache key (to ship a table)."""
    check_forecaster(forecaster)
    horizon = check_horizon(horizon)
    cfg, d, date, key = _stored_key(split, day, config, forecaster, horizon, iterations)
    options = default_options(cfg)
    path = _entry(cache_dir, cfg.split, date, key)
    if use_cache and not refresh:
        record = cache.load(path) or shipped_records().get(key)
        if record is not None:
            result = MpcDay.from_json(record)
            if keep is not None:
                keep[key] = result
            return result
    from tune_grid.env import make_env
    from tune_grid.env.evaluation import run_day

    env = make_env(cfg)  # its own env: the oracle's cached one computes the rule's schedule
    policy = MpcPolicy(env, forecaster, horizon, iterations, options)
    row = run_day(env, policy, d)
    first = policy.plans[0]
    result = MpcDay(
        split=cfg.split,
        day=d,
        date=date,
        forecaster=forecaster,
        horizon=horizon,
        row={k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()},
        solve_time_s=policy.solve_time_s,
        solves=policy.solves,
        initial_soc=float(cfg.initial_soc or DEFAULT_SOC),
        first_plan={
            name: [[round(float(v), 9) for v in r] for r in first[i]]
            for i, name in enumerate(SCHEDULE_KEYS)
        },
    )
    if use_cache:
        store_record(key, result.to_json(), cache_dir)
    if keep is not None:
        keep[key] = result
    return result


def mpc_days(
    split: str = "test",
    days: int | Sequence[int | str] | None = None,
    config: Mapping[str, Any] | EnvConfig | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """Per-day MPC rows for ``days`` (None: all, N: N evenly spaced, or indices/dates), in the
    format of ``evaluation.evaluate`` plus ``forecaster``, ``horizon``, ``solve_time_s``,
    ``solves`` and ``cached``. kwargs: see :func:`mpc_day`. ``progress(done, total)`` is called
    after each day."""
    from tune_grid.oracle.core import day_list

    cfg = _config(config, split)
    chosen = day_list(split, days)
    rows = []
    for i, d in enumerate(chosen, 1):
        rows.append(mpc_day(cfg.split, d, cfg, **kwargs).to_row())
        if progress is not None:
            progress(i, len(chosen))
    return pd.DataFrame(rows)


SHIPPED_FORECASTERS = {"persistence": (61, 14), "climatology": (61, 14), "perfect": (61,)}
"""Forecaster -> the evenly spaced test-day sets shipped (the docs' 61, the quickstart's 14)."""


def shipped_days(counts: Sequence[int]) -> list[int]:
    """The union of the evenly spaced test-day sets of ``counts`` days."""
    from tune_grid.oracle.core import day_list

    return sorted({int(d) for n in counts for d in day_list("test", n)})


def build_shipped_table(print_fn: Callable[[str], None] = print) -> Path:
    """Run (or read from the disk cache) every shipped day under the default env config and
    write the table into the package (``python -m tune_grid.oracle.mpc``)."""
    keep: dict[str, MpcDay] = {}
    for forecaster, counts in SHIPPED_FORECASTERS.items():
        days = shipped_days(counts)
        start = time.perf_counter()
        for i, day in enumerate(days, 1):
            mpc_day("test", day, forecaster=forecaster, keep=keep)
            if i % 10 == 0 or i == len(days):
                elapsed = time.perf_counter() - start
                print_fn(f"  mpc ({forecaster}): {i}/{len(days)} days, {elapsed:.0f} s")
    path = write_shipped_table(keep)
    print_fn(f"wrote {len(keep)} MPC days to {path}")
    return path


if __name__ == "__main__":
    build_shipped_table()
