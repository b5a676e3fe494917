"""The oracle table shipped with the package: current keys, every shipped day, read unsolved."""

from __future__ import annotations

from pathlib import Path

import pytest

from tune_grid.oracle import core, oracle_cost


def test_the_shipped_oracle_table_holds_every_shipped_day_under_todays_key() -> None:
    """Each shipped record sits under the key the oracle computes now (a change of the model,
    network, config or data that forgot ``python -m tune_grid.oracle.core`` fails here), and
    the table holds every shipped day: a quickstart on a fresh machine solves none."""
    from tune_grid.config import EnvConfig
    from tune_grid.oracle import cache

    shipped = cache.shipped_records(core.SHIPPED_TABLE)
    found: dict[str, set[int]] = {}
    for key, record in shipped.items():
        cfg = core._physics(EnvConfig().replace(split=record["split"]))
        options = core.default_options(cfg)
        now = core.cache_key(
            cfg, record["day"], record["date"], options, core.DEFAULT_ITERATIONS, "ac"
        )
        assert now == key, (record["split"], record["date"])
        found.setdefault(record["split"], set()).add(record["day"])
    assert {k: sorted(v) for k, v in found.items()} == core.shipped_days()


def test_a_shipped_day_is_read_without_solving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_solve(*args: object, **kwargs: object) -> None:
        raise AssertionError("solved a shipped day")

    monkeypatch.setattr(core, "plan_day", no_solve)
    day = core.shipped_days()["test"][5]
    result = oracle_cost("test", day, cache_dir=tmp_path / "empty")
    assert result.cached and result.day == day


@pytest.mark.slow
def test_the_shipped_oracle_day_is_what_the_oracle_computes_now() -> None:
    from tune_grid.oracle import cache

    record = next(iter(cache.shipped_records(core.SHIPPED_TABLE).values()))
    now = oracle_cost(record["split"], record["day"], use_cache=False)
    assert now.replay_cost == pytest.approx(record["replay_cost"], abs=0.01)
    assert now.replay_safety == pytest.approx(record["replay_safety"], abs=1e-6)
