"""The confirmation race on synthetic costs, fresh seeds, confirm.parquet and the confirm: block."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from tune_grid.env.day_intervals import paired_difference, seeds_days_interval
from tune_grid.results.schema import CONFIRM_COLUMNS, CONFIRM_FILE, ResultsSchemaError
from tune_grid.search.answer.confirmation import (
    fresh_seeds,
    read_confirm_rows,
    search_seeds,
    write_confirm_rows,
)
from tune_grid.search.answer.racing import RaceRules, race
from tune_grid.search.spec.space_file import SpaceFileError, load_space_file, parse_space

DAYS = 30
RNG = np.random.default_rng(7)
DAY_COST = 400.0 + 300.0 * RNG.random(DAYS)  # days differ far more than the policies do


def runs(offset: float, seed_sd: float, seeds: list[int], rng_seed: int) -> dict[int, np.ndarray]:
    """Per-day costs: a shared day profile + the configuration's offset + seed and day noise."""
    rng = np.random.default_rng(rng_seed)
    return {s: DAY_COST + offset + rng.normal(0, seed_sd) + rng.normal(0, 5.0, DAYS) for s in seeds}


FRESH = [10_000 + k for k in range(6)]


def test_race_drops_a_clearly_worse_configuration_after_two_seeds() -> None:
    rules = RaceRules(seeds=6, seeds_per_round=2, tolerance=1.0)
    costs = {"good": runs(0.0, 3.0, FRESH[:2], 1), "bad": runs(60.0, 3.0, FRESH[:2], 2)}
    state = race(["good", "bad"], costs, FRESH, rules)
    assert state.finished and state.stop_reason == "one configuration remains"
    assert state.remaining == ["good"] and state.history[0].dropped == ["bad"]
    comparison = state.history[0].comparisons[0]
    assert comparison.verdict == "worse" and comparison.low > 0
    assert 50 < comparison.difference < 70


def test_race_keeps_both_while_intervals_overlap_and_respects_the_seed_budget() -> None:
    rules = RaceRules(seeds=4, seeds_per_round=2, tolerance=0.5)
    costs = {
        "a": runs(0.0, 25.0, FRESH[:4], 3),
        "b": runs(4.0, 25.0, FRESH[:4], 4),  # 4 $/day apart, seed noise of 25 $/day
    }
    state = race(["a", "b"], costs, FRESH, rules)
    assert [r.round for r in state.history] == [0, 1]
    assert state.remaining == ["a", "b"] and not any(r.dropped for r in state.history)
    last = state.history[-1].comparisons[0]
    assert last.low < 0 < last.high and last.verdict == "not separated"
    assert state.stop_reason == "seed budget spent"
    assert last.seeds == 4  # never more seeds than the budget
    assert [r.seeds for r in state.history] == [FRESH[:2], FRESH[2:4]]


def test_race_waits_for_a_round_to_finish_and_replays_deterministically() -> None:
    rules = RaceRules(seeds=6, seeds_per_round=2, tolerance=0.5)
    costs = {"a": runs(0.0, 25.0, FRESH[:4], 5), "b": runs(2.0, 25.0, FRESH[:3], 6)}
    first = race(["a", "b"], costs, FRESH, rules)
    assert not first.finished and first.next_round == 1  # round 2 misses b's seed 10003
    again = race(["a", "b"], costs, FRESH, rules)
    assert again.to_json() == first.to_json()


def test_race_stops_when_the_rest_is_equivalent_within_the_tolerance() -> None:
    rules = RaceRules(seeds=6, seeds_per_round=2, tolerance=20.0)
    costs = {"a": runs(0.0, 0.5, FRESH[:2], 8), "b": runs(1.0, 0.5, FRESH[:2], 9)}
    state = race(["a", "b"], costs, FRESH, rules)
    assert state.remaining == ["a", "b"]
    assert state.stop_reason is not None and "within +-20" in state.stop_reason
    assert state.history[0].comparisons[0].verdict == "equivalent"


def test_one_seed_is_never_enough_to_drop() -> None:
    rules = RaceRules(seeds=3, seeds_per_round=1, tolerance=0.0)
    costs = {"a": runs(0.0, 1.0, FRESH[:1], 10), "b": runs(80.0, 1.0, FRESH[:1], 11)}
    state = race(["a", "b"], costs, FRESH, rules)
    assert state.history[0].comparisons[0].verdict == "worse"
    assert state.history[0].dropped == [] and state.remaining == ["a", "b"]


def test_a_failed_configuration_leaves_the_race() -> None:
    rules = RaceRules(seeds=4, seeds_per_round=2)
    costs: dict[str, dict[int, Any]] = {
        "a": runs(0.0, 1.0, FRESH[:2], 12),
        "b": {FRESH[0]: None, FRESH[1]: None},
    }
    state = race(["a", "b"], costs, FRESH, rules)
    assert state.history[0].failed == ["b"] and state.remaining == ["a"]


def test_paired_difference_cancels_the_day_swing() -> None:
    a = np.stack(list(runs(0.0, 0.0, FRESH[:3], 13).values()))
    b = a + 3.0
    difference, low, high = paired_difference(a, b)
    assert difference == pytest.approx(3.0)
    assert low == pytest.approx(3.0) and high == pytest.approx(3.0)
    unpaired = seeds_days_interval(b)
    assert unpaired["high"] - unpaired["low"] > 50  # unpaired, the days dominate


def test_seeds_days_interval_gap_to_a_reference() -> None:
    costs = np.stack([DAY_COST * 1.2, DAY_COST * 1.2])
    out = seeds_days_interval(costs, DAY_COST)
    assert out["value"] == pytest.approx(DAY_COST.mean() * 1.2)
    assert out["gap"] == pytest.approx(0.2)
    assert out["gap_low"] == pytest.approx(0.2) and out["gap_high"] == pytest.approx(0.2)
    assert out["low"] < out["value"] < out["high"]
    with pytest.raises(ValueError, match="paired days"):
        seeds_days_interval(costs, DAY_COST[:5])


# --------------------------------------------------------------------------- the search file
BASE: dict[str, Any] = {
    "experiment": "c",
    "fixed": {"seed": 3},
    "space": {
        "lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
        "policy_sharing": {"type": "choice", "values": ["shared", "independent"]},
        "share_reward": {"type": "bool"},
    },
    "seeds": 5,
    "stop": {"env_steps": 960},
    "confirm": {"top_k": 2, "seeds": 4, "seeds_per_round": 2, "factors": ["policy_sharing"]},
}


def test_fresh_seeds_never_repeat_search_seeds() -> None:
    for seeds in (1, 5, 64):
        for base in (0, 3, 9_999):
            spec = parse_space({**BASE, "fixed": {"seed": base}, "seeds": seeds})
            fresh = fresh_seeds(spec)
            assert len(fresh) == 4 and len(set(fresh)) == 4
            assert not set(fresh) & set(search_seeds(spec))
            assert search_seeds(spec) == list(range(base, base + seeds))


@pytest.mark.parametrize(
    ("confirm", "where", "says"),
    [
        ({"top_k": 0}, "confirm.top_k", "must be >= 1"),
        ({"seeds": 1}, "confirm.seeds", "must be >= 2"),
        ({"seeds": 2, "seeds_per_round": 3}, "confirm.seeds", "must be >= seeds_per_round (3)"),
        ({"factors": ["bogus"]}, "confirm.factors[0]", "allowed: policy_sharing, share_reward"),
        ({"factors": ["lr"]}, "confirm.factors[0]", "not a searched discrete parameter"),
        ({"tolerance": -1}, "confirm.tolerance", "must be >= 0"),
        ({"confidence": 1.5}, "confirm.confidence", "must be < 1"),
        ({"rounds": 3}, "confirm.rounds", "unknown key"),
    ],
)
def test_bad_confirm_blocks_get_one_line(
    tmp_path: Path, confirm: dict[str, Any], where: str, says: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**BASE, "confirm": confirm}))
    with pytest.raises(SpaceFileError) as info:
        load_space_file(path)
    message = str(info.value)
    assert "\n" not in message and f"{path}: {where}: " in message and says in message


def test_confirm_needs_a_budget_in_env_steps_or_iterations() -> None:
    with pytest.raises(SpaceFileError, match="confirm: retrains at the search's full budget"):
        parse_space({**BASE, "stop": {"time_total_s": 60}})


def test_cli_refuses_a_bad_confirm_block_before_ray_starts(tmp_path: Path, run_cli: Any) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**BASE, "confirm": {"top_k": 0}}))
    result = run_cli("search", str(path), "--storage", str(tmp_path / "r"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "confirm.top_k: must be >= 1" in lines[0]
    assert "Traceback" not in result.stderr and not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- confirm.parquet
def _row(candidate: str, seed: int, error: str | None = None) -> dict[str, Any]:
    costs = [float(c) for c in DAY_COST[:5] + seed % 7]
    return {
        "experiment": "c",
        "candidate": candidate,
        "origin": "search rank 1 (t1)",
        "trial_id": "t1",
        "config": json.dumps({"lr": 0.001}),
        "round": 0,
        "seed": seed,
        "env_steps": 960,
        "best_env_steps": 480,
        "val_objective": 612.5,
        "test_daily_cost": math.nan if error else float(np.mean(costs)),
        "test_daily_costs": None if error else costs,
        "test_safety": 0.0,
        "test_violation_hours": 0.0,
        "test_optimality_gap": 0.12,
        "test_mpc_gap": math.nan,
        "test_days": 5,
        "checkpoint_path": "/x/confirm/c1/seed_10000",
        "time_total_s": 12.0,
        "error": error,
    }


def test_confirm_parquet_round_trips_its_schema(tmp_path: Path) -> None:
    rows = [_row("c1", 10_000), _row("c2", 10_000, error="SeedFailure: diverged")]
    write_confirm_rows(tmp_path, rows)
    table = pq.read_table(tmp_path / CONFIRM_FILE)
    assert table.schema.names == list(CONFIRM_COLUMNS)
    assert table.schema.metadata[b"tune_grid.kind"] == b"confirm"
    back = read_confirm_rows(tmp_path)
    assert back[0]["test_daily_costs"] == rows[0]["test_daily_costs"]
    assert back[1]["error"] == "SeedFailure: diverged" and back[1]["test_daily_costs"] is None
    for name in CONFIRM_COLUMNS:
        expected, got = rows[0][name], back[0][name]
        if isinstance(expected, float) and math.isnan(expected):
            assert math.isnan(got), name
        else:
            assert got == expected, name


def test_a_corrupt_or_foreign_confirm_file_gets_one_line(tmp_path: Path) -> None:
    (tmp_path / CONFIRM_FILE).write_bytes(b"not parquet")
    with pytest.raises(ResultsSchemaError, match="not a readable Parquet file"):
        read_confirm_rows(tmp_path)
    import pyarrow as pa

    pq.write_table(pa.table({"x": [1]}), tmp_path / CONFIRM_FILE)
    with pytest.raises(ResultsSchemaError, match="schema version"):
        read_confirm_rows(tmp_path)
