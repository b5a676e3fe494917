"""The packaged CAISO profiles and the cleaning rules that produce them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tune_grid.grid.data import (
    SplitProfiles,
    build_profiles,
    clean_load,
    clean_renewable,
    load_profiles,
)


def test_packaged_profiles_cover_two_whole_years() -> None:
    table = load_profiles()
    assert len(table) == 17_544
    assert table.groupby("split").size().to_dict() == {"test": 8784, "train": 8760}
    assert (table.groupby("day").size() == 24).all()
    values = table[["load_dso", "load_mg1", "load_mg2", "load_mg3", "pv", "wind", "price"]]
    assert not values.isna().any().any()
    for column in ("load_dso", "load_mg1", "load_mg2", "load_mg3"):
        assert table[column].min() > 0.05, column
        train_max = table.loc[table.split == "train", column].max()
        assert train_max == pytest.approx(1.0)
    assert table["pv"].min() == 0.0 and table["wind"].min() == 0.0
    # Real market outcomes are kept: negative prices and spikes above 1000 $/MWh.
    assert table["price"].min() < -50 and table["price"].max() > 1000


def test_split_profiles_are_dense_day_by_hour() -> None:
    test = SplitProfiles("test")
    assert test.num_days == 366 and test.dates[0] == "2024-01-01"
    assert test.load["MG1"].shape == (366, 24)
    train, validation = SplitProfiles("train"), SplitProfiles("validation")
    assert (train.num_days, validation.num_days) == (319, 46)
    assert not set(train.dates) & set(validation.dates)  # training never draws a validation day
    assert set(train.dates) | set(validation.dates) == {
        f"{d:%Y-%m-%d}" for d in pd.date_range("2023-01-01", "2023-12-31")
    }
    months = {d[5:7] for d in validation.dates}
    assert len(months) == 12  # every season
    with pytest.raises(ValueError, match="split must be one of"):
        SplitProfiles("holdout")


def test_clean_load_replaces_missing_negative_and_spiky_hours() -> None:
    index = pd.date_range("2023-01-01", periods=72, freq="h", tz="UTC")
    base = 100 + 10 * np.sin(np.arange(72) * 2 * np.pi / 24)
    raw = pd.Series(base, index=index)
    raw.iloc[10] = np.nan
    raw.iloc[30] = -13_352.0
    raw.iloc[50] = 400.0  # a spike far above the rolling median
    cleaned = clean_load(raw)
    assert not cleaned.isna().any()
    for hour in (10, 30, 50):
        expected = 0.5 * (base[hour - 1] + base[hour + 1])
        assert cleaned.iloc[hour] == pytest.approx(expected)
    untouched = [h for h in range(72) if h not in (10, 30, 50)]
    np.testing.assert_allclose(cleaned.iloc[untouched], base[untouched])


def test_clean_renewable_clips_night_metering_and_fills_gaps() -> None:
    index = pd.date_range("2023-01-01", periods=5, freq="h", tz="UTC")
    cleaned = clean_renewable(pd.Series([-3.0, 0.0, np.nan, 40.0, -0.5], index=index))
    np.testing.assert_allclose(cleaned.to_numpy(), [0.0, 0.0, 20.0, 40.0, 0.0])


def test_packaged_file_is_reproducible_from_the_raw_data(raw_data_path) -> None:
    rebuilt = build_profiles(raw_data_path)
    packaged = load_profiles()
    pd.testing.assert_frame_equal(rebuilt.reset_index(drop=True), packaged, check_dtype=False)
    # The AZPS glitch (-13,352 MW on 2023-06-24 11:00 UTC) became a plausible summer load.
    glitch = rebuilt[rebuilt.timestamp_utc == pd.Timestamp("2023-06-24 11:00", tz="UTC")]
    assert 0.3 < float(glitch["load_mg3"].iloc[0]) < 1.0
