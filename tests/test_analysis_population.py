"""The report's PBT view on a hand-made population: ancestry, lineage table, schedule plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from analysis.load import load_results
from analysis.population import ancestry, best_trial, is_population, lineage_table
from analysis.report import build_report
from tune_grid.results.export import SearchMeta, TrialRecord, write_tables

STEPS = 100


def _row(i: int, objective: float, lr: float, exploits: int = 0, parent: Any = None) -> dict:
    return {
        "iteration": i,
        "objective": objective,
        "env_steps": STEPS * i,
        "exploits": exploits,
        "parent_trial_id": parent[0] if parent else None,
        "parent_iteration": parent[1] if parent else None,
        "hp/lr": lr,
        "hp/gamma": 0.99,
    }


def _population() -> list[TrialRecord]:
    """Trial c copied a at a's iteration 2, then b copied c at c's iteration 4 (whose weights
    came from a): b's final weights were trained by a (0-200), c (200-400) and b (400-600)."""
    rows = {
        "a": [_row(i, float(i), 1e-3) for i in (1, 2, 3, 4, 5, 6)],
        "c": [_row(1, 0.1, 3e-3), _row(2, 0.2, 3e-3)]
        + [_row(i, 2.5 + i, 8e-4, 1, ("a", 2)) for i in (3, 4, 5, 6)],
    }
    # b's own counter goes on (1..7) while its weights restart from c's iteration 4 (400 steps).
    b = [_row(i, 0.0, 5e-3) for i in (1, 2, 3, 4, 5)]
    b += [{**_row(i, 10.0 + i, 6e-4, 1, ("c", 4)), "env_steps": STEPS * (i - 1)} for i in (6, 7)]
    rows["b"] = b
    records = []
    for trial_id, trial_rows in sorted(rows.items()):
        record = TrialRecord(trial_id, status="TERMINATED", config={"lr": 1e-3, "seed": 0})
        for row in trial_rows:
            record.add_result(row)
        records.append(record)
    return records


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    meta = SearchMeta(experiment="pop", param_names=("lr",), early_stop="never")
    write_tables(tmp_path, _population(), meta)
    return tmp_path


def test_the_ancestry_follows_copies_back_to_the_root(results_dir: Path) -> None:
    results = load_results([results_dir])
    iterations, trials = results.iterations, results.trials
    assert is_population(iterations)
    assert not is_population(iterations.assign(exploits=0))
    assert best_trial(trials, "pop") == "b"
    rows = ancestry(iterations, "b")
    assert list(zip(rows["trial_id"], rows["iteration"], strict=True)) == [
        ("a", 1),
        ("a", 2),
        ("c", 3),
        ("c", 4),
        ("b", 6),
        ("b", 7),
    ]
    assert rows["env_steps"].is_monotonic_increasing
    table = lineage_table(iterations, "b")
    expected = pd.DataFrame(
        {
            "step": [0, 1, 2],
            "trial_id": ["a", "c", "b"],
            "copied_from": [None, "a", "c"],
            "parent_iteration": pd.array([None, 2, 4], dtype="Int64"),
            "from_env_steps": [0.0, 200.0, 400.0],
            "to_env_steps": [200.0, 400.0, 600.0],
            "iterations": [2, 2, 2],
            "lr": [1e-3, 8e-4, 6e-4],
        }
    )
    pd.testing.assert_frame_equal(table, expected)
    assert list(lineage_table(iterations, "a")["trial_id"]) == ["a"]


def test_the_report_has_a_pbt_section(results_dir: Path, tmp_path: Path) -> None:
    report = build_report([results_dir], tmp_path / "report", n_resamples=50)
    text = report.read_text()
    assert "Population-based training" in text and "lineage of the best trial b" in text
    assert (tmp_path / "report" / "plots" / "population_pop.png").stat().st_size > 0
    lineage = pd.read_csv(tmp_path / "report" / "lineage_pop.csv")
    assert list(lineage["trial_id"]) == ["a", "c", "b"]
