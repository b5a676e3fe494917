"""Hourly CAISO profiles that drive the microgrids.

The package ships ``tune_grid/data/profiles.parquet``, a compact table derived from the public CAISO
OASIS hourly dataset (2023-2024) by :func:`build_profiles`. One row per hour, 731 days of 24 hours.

Rules (all applied on purpose, all tested):

* **Days** are fixed-offset local days at UTC-8 (Pacific standard time all year), so every day has
  exactly 24 hours and the raw data, which starts 2023-01-01 08:00 UTC, splits into whole days.
  Calendar year 2024 (366 days) is the ``test`` split, used only to report a finished search.
  Calendar year 2023 is split in two: every 8th day (day-of-year index 4, 12, 20, ...: 46 days
  spread over every season and, since 8 = 7 + 1, over every weekday) is the ``validation`` split
  that searches rank trials on; the other 319 days are the ``train`` split that training
  episodes are drawn from. (The table's ``split`` column holds the year's role, ``train`` for
  2023 and ``test`` for 2024; :class:`SplitProfiles` applies the validation rule.)
* **Loads** (DSO: BANC, MG1: AVA, MG2: BANCMID, MG3: AZPS): a value is an anomaly when it is
  missing, not positive, or more than 50 % away from the centred 25-hour rolling median of its
  series (this catches the negative metering glitches of AZPS, -13,352 MW among them). Anomalies
  are replaced by time interpolation. Each area is divided by its train-year maximum, so 1.0 is
  the 2023 peak; the environment multiplies it by the nominal load and ``load_scale``.
* **Solar and wind** (NP15): negative values are night-time metering offsets and become 0; gaps are
  interpolated in time; the series is divided by its train-year maximum (a capacity factor).
* **Price**: the day-ahead LMP at node 0096WD_7_N001 in $/MWh, kept raw: negative prices and spikes
  above 1,000 $/MWh are real market outcomes the agents must face.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from tune_grid.config import ConfigError

RAW_LOAD_COLUMNS = {
    "load_dso": "load_mw__BANC",
    "load_mg1": "load_mw__AVA",
    "load_mg2": "load_mw__BANCMID",
    "load_mg3": "load_mw__AZPS",
}
RAW_SOLAR_COLUMN = "solar_mw__NP15"
RAW_WIND_COLUMN = "wind_mw__NP15"
RAW_PRICE_COLUMN = "dam_lmp_prc_usd_per_mwh__0096WD_7_N001"

PROFILE_COLUMNS = (
    "day",
    "hour",
    "split",
    "date",
    *RAW_LOAD_COLUMNS,
    "pv",
    "wind",
    "price",
)
SPLITS = ("train", "validation", "test")
VALIDATION_STRIDE = 8
VALIDATION_OFFSET = 4
"""2023 days with ``day_of_year % VALIDATION_STRIDE == VALIDATION_OFFSET`` are validation days."""
HOURS_PER_DAY = 24
LOCAL_UTC_OFFSET = pd.Timedelta(hours=-8)
ANOMALY_RELATIVE_DEVIATION = 0.5
ROLLING_WINDOW_HOURS = 25


def clean_load(series: pd.Series) -> pd.Series:
    """Replace missing, non-positive and spiky hours by time interpolation (see module docs)."""
    values = series.astype(float).where(series > 0)
    median = values.rolling(ROLLING_WINDOW_HOURS, center=True, min_periods=6).median()
    spiky = (values - median).abs() > ANOMALY_RELATIVE_DEVIATION * median
    values = values.mask(spiky)
    return values.interpolate(method="time", limit_direction="both")


def clean_renewable(series: pd.Series) -> pd.Series:
    """Clip night-time negative metering to 0 and interpolate gaps."""
    values = series.astype(float).clip(lower=0.0)
    return values.interpolate(method="time", limit_direction="both").clip(lower=0.0)


def build_profiles(raw_path: str | Path) -> pd.DataFrame:
    """Derive the compact per-unit profile table from the raw CAISO parquet file."""
    raw = pd.read_parquet(raw_path)
    if not isinstance(raw.index, pd.DatetimeIndex):
        raise ValueError(f"{raw_path}: expected a DatetimeIndex 'timestamp_utc', got {raw.index!r}")
    missing = [
        c
        for c in (*RAW_LOAD_COLUMNS.values(), RAW_SOLAR_COLUMN, RAW_WIND_COLUMN, RAW_PRICE_COLUMN)
        if c not in raw.columns
    ]
    if missing:
        raise ValueError(f"{raw_path}: missing columns {missing}")
    raw = raw.sort_index()
    local = raw.index.tz_convert(None) + LOCAL_UTC_OFFSET
    full_days = len(raw) // HOURS_PER_DAY
    raw = raw.iloc[: full_days * HOURS_PER_DAY]
    local = local[: full_days * HOURS_PER_DAY]
    if local[0].hour != 0:
        raise ValueError(f"{raw_path}: data must start at local midnight (UTC-8), got {local[0]}")

    out = pd.DataFrame(index=raw.index)
    out["day"] = np.repeat(np.arange(full_days), HOURS_PER_DAY).astype(np.int32)
    out["hour"] = np.tile(np.arange(HOURS_PER_DAY), full_days).astype(np.int8)
    out["split"] = np.where(local.year == 2023, "train", "test")
    out["date"] = local.strftime("%Y-%m-%d")
    train = out["split"].to_numpy() == "train"
    for name, column in RAW_LOAD_COLUMNS.items():
        cleaned = clean_load(raw[column])
        out[name] = (cleaned / cleaned[train].max()).astype(np.float32)
    for name, column in (("pv", RAW_SOLAR_COLUMN), ("wind", RAW_WIND_COLUMN)):
        cleaned = clean_renewable(raw[column])
        out[name] = (cleaned / cleaned[train].max()).astype(np.float32)
    out["price"] = raw[RAW_PRICE_COLUMN].astype(np.float32)
    out = out.reset_index().rename(columns={"index": "timestamp_utc"})
    if out[list(PROFILE_COLUMNS[4:])].isna().any().any():
        raise ValueError(f"{raw_path}: gaps remain after cleaning")
    return out


def packaged_profiles_path() -> Path:
    return Path(str(resources.files("tune_grid") / "data" / "profiles.parquet"))


@lru_cache(maxsize=1)
def load_profiles() -> pd.DataFrame:
    """The packaged profile table (cached; treat as read-only)."""
    path = packaged_profiles_path()
    if not path.exists():
        raise FileNotFoundError(
            f"packaged profiles missing at {path}; rebuild with "
            "`tune-grid data build PATH/TO/caiso_2023_2024_hourly.parquet`"
        )
    return pd.read_parquet(path)


def split_table(split: str) -> pd.DataFrame:
    """The profile rows (hours) of one split's days, in time order."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    table = load_profiles()
    table = table[table["split"] == ("test" if split == "test" else "train")]
    if split == "test":
        return table
    day_of_year = np.arange(len(table)) // HOURS_PER_DAY
    held_out = day_of_year % VALIDATION_STRIDE == VALIDATION_OFFSET
    return table[held_out if split == "validation" else ~held_out]


class SplitProfiles:
    """Dense ``(days, 24)`` arrays of one split for fast per-step lookups."""

    def __init__(self, split: str) -> None:
        table = split_table(split)
        self.split = split
        self.num_days = len(table) // HOURS_PER_DAY
        self.dates: list[str] = table["date"].to_numpy()[::HOURS_PER_DAY].tolist()

        def grid(column: str) -> np.ndarray:
            return table[column].to_numpy(np.float64).reshape(self.num_days, HOURS_PER_DAY)

        self.load = {
            "DSO": grid("load_dso"),
            "MG1": grid("load_mg1"),
            "MG2": grid("load_mg2"),
            "MG3": grid("load_mg3"),
        }
        self.pv = grid("pv")
        self.wind = grid("wind")
        self.price = grid("price")


@lru_cache(maxsize=4)
def split_profiles(split: str) -> SplitProfiles:
    """The profiles of ``split``, built once per process (envs and the oracle share them)."""
    return SplitProfiles(split)


def check_day_count(days: int, num_days: int) -> None:
    """The one rule for "N evenly spaced days": 1 <= N <= the split's days (ConfigError)."""
    if not 1 <= days <= num_days:
        raise ConfigError(f"days must be in [1, {num_days}], got {days}")


def select_days(num_days: int, days: int | Sequence[int | str] | None) -> list[int | str]:
    """All days (None), N days evenly spaced over the split (int), or the given indices/dates."""
    if days is None:
        return list(range(num_days))
    if isinstance(days, int | np.integer):
        check_day_count(int(days), num_days)
        return sorted({int(round(x)) for x in np.linspace(0, num_days - 1, int(days))})
    return list(days)
