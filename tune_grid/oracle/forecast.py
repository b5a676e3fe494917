"""Day-ahead forecasts of load, PV and wind for the MPC baseline (:mod:`tune_grid.oracle.mpc`).

A forecaster maps a day of a split to hourly per-unit profiles shaped like the data's own
(load per zone as a fraction of the zone's 2023 peak, PV and wind as capacity factors). Prices are
never forecast: they are the day-ahead LMPs, known at midnight.

* ``perfect``: the day's true profiles (the MPC then re-plans the oracle's problem every hour).
* ``persistence``: the same hour of the day before (the calendar day before, whatever split it
  belongs to: the day before 2024-01-01 is 2023-12-31). The data's first day, 2023-01-01, has no
  day before and is refused.
* ``climatology``: the mean, hour by hour, of the ``train`` split's days in the same calendar
  month (2023 minus the validation days), so no validation or test day informs it. It forecasts
  the ``test`` split (2024) only: for a 2023 day the month's mean would hold that very day or later
  ones, and no training data comes before them.

Each is a plain function of the day; forecast errors against the truth are measured by
:func:`forecast_errors` (mean absolute error in % of the profile's rating).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tune_grid.errors import TuneGridError
from tune_grid.grid.data import HOURS_PER_DAY, load_profiles, split_profiles
from tune_grid.grid.devices import MICROGRIDS

FORECASTERS = ("perfect", "persistence", "climatology")
"""Forecasters the MPC accepts (``--mpc NAME``)."""
ZONES = ("DSO", *MICROGRIDS)
_LOAD_COLUMNS = {"DSO": "load_dso", "MG1": "load_mg1", "MG2": "load_mg2", "MG3": "load_mg3"}
CLIMATOLOGY_SOURCE = "train"
"""The split climatology averages: training days only."""
CLIMATOLOGY_TARGET = "test"
"""The one split climatology forecasts: every training day lies before it."""


class ForecastError(TuneGridError, ValueError):
    """A forecaster cannot be built or used as asked (unknown name, no data for a day)."""


@dataclass(frozen=True)
class DayForecast:
    """Hourly per-unit profiles of one day (24 values each)."""

    load: Mapping[str, np.ndarray]
    """Per zone (DSO, MG1, MG2, MG3): fraction of the zone's 2023 peak."""
    pv: np.ndarray
    wind: np.ndarray

    def digest_payload(self) -> list[list[float]]:
        """The values, rounded, for cache keys."""
        rows = [self.load[z] for z in ZONES] + [self.pv, self.wind]
        return [[round(float(v), 7) for v in r] for r in rows]


def check_forecaster(name: str) -> str:
    """``name`` if it is a known forecaster; else a one-line :class:`ForecastError`."""
    if name not in FORECASTERS:
        raise ForecastError(f"unknown forecaster {name!r}; allowed: {', '.join(FORECASTERS)}")
    return name


@functools.lru_cache(maxsize=1)
def _calendar() -> tuple[dict[str, int], dict[str, np.ndarray]]:
    """Every day of the data in time order: date -> row, and (days, 24) arrays per quantity."""
    table = load_profiles()
    days = len(table) // HOURS_PER_DAY
    dates = table["date"].to_numpy()[::HOURS_PER_DAY].tolist()

    def grid(column: str) -> np.ndarray:
        return table[column].to_numpy(np.float64).reshape(days, HOURS_PER_DAY)

    arrays = {z: grid(c) for z, c in _LOAD_COLUMNS.items()}
    arrays["pv"], arrays["wind"] = grid("pv"), grid("wind")
    return {d: i for i, d in enumerate(dates)}, arrays


def _from_arrays(arrays: Mapping[str, np.ndarray], row: int | np.ndarray) -> DayForecast:
    return DayForecast(
        load={z: np.asarray(arrays[z][row], float) for z in ZONES},
        pv=np.asarray(arrays["pv"][row], float),
        wind=np.asarray(arrays["wind"][row], float),
    )


def truth(split: str, day: int) -> DayForecast:
    """The day's true profiles (what ``perfect`` returns)."""
    profiles = split_profiles(split)
    return DayForecast(
        load={z: profiles.load[z][day] for z in ZONES},
        pv=profiles.pv[day],
        wind=profiles.wind[day],
    )


def persistence(split: str, day: int) -> DayForecast:
    """Yesterday's profiles, hour by hour."""
    date = split_profiles(split).dates[day]
    yesterday = (pd.Timestamp(date) - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    rows, arrays = _calendar()
    if yesterday not in rows:
        raise ForecastError(
            f"persistence: no data for {yesterday}, the day before {date} (the data's first "
            "day); allowed: the days after it"
        )
    return _from_arrays(arrays, rows[yesterday])


@functools.lru_cache(maxsize=1)
def _monthly_means(source: str = CLIMATOLOGY_SOURCE) -> dict[int, DayForecast]:
    profiles = split_profiles(source)
    months = pd.to_datetime(pd.Series(profiles.dates)).dt.month.to_numpy()
    out = {}
    for month in np.unique(months):
        rows = months == month
        out[int(month)] = DayForecast(
            load={z: profiles.load[z][rows].mean(axis=0) for z in ZONES},
            pv=profiles.pv[rows].mean(axis=0),
            wind=profiles.wind[rows].mean(axis=0),
        )
    return out


def climatology(
    split: str, day: int, means: Mapping[int, DayForecast] | None = None
) -> DayForecast:
    """The training split's mean of the day's calendar month, hour by hour."""
    if split != CLIMATOLOGY_TARGET:
        raise ForecastError(
            f"climatology: the {split} split has no training data before its days (the "
            f"{CLIMATOLOGY_SOURCE} split's months hold them or later days); allowed: "
            f"split {CLIMATOLOGY_TARGET}, or persistence"
        )
    means = _monthly_means() if means is None else means
    date = split_profiles(split).dates[day]
    month = pd.Timestamp(date).month
    if month not in means:
        have = ", ".join(str(m) for m in sorted(means)) or "none"
        raise ForecastError(
            f"climatology: the {CLIMATOLOGY_SOURCE} split has no days in month {month} (of "
            f"{date}); months with training data: {have}; use persistence or perfect"
        )
    return means[month]


def forecast(name: str, split: str, day: int) -> DayForecast:
    """The ``name`` forecast of ``day`` (an index into ``split``)."""
    check_forecaster(name)
    if name == "perfect":
        return truth(split, day)
    if name == "persistence":
        return persistence(split, day)
    return climatology(split, day)


def forecast_errors(names: Sequence[str], split: str, days: Sequence[int]) -> pd.DataFrame:
    """Mean absolute error of each forecaster on ``days``, in % of the rating: load (all four
    zones, % of each zone's 2023 peak), PV and wind (% of capacity). One row per forecaster."""
    rows = []
    for name in names:
        errors: dict[str, list[float]] = {"load": [], "pv": [], "wind": []}
        for day in days:
            guess, real = forecast(name, split, day), truth(split, day)
            errors["load"] += [float(np.abs(guess.load[z] - real.load[z]).mean()) for z in ZONES]
            errors["pv"].append(float(np.abs(guess.pv - real.pv).mean()))
            errors["wind"].append(float(np.abs(guess.wind - real.wind).mean()))
        rows.append(
            {
                "forecaster": name,
                "days": len(days),
                **{f"{k}_mae_pct": 100.0 * float(np.mean(v)) for k, v in errors.items()},
            }
        )
    return pd.DataFrame(rows)
