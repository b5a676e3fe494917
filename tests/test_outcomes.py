"""`tune-grid outcomes`: trained policies of a real tiny protocol search, rolled on test days."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tune_grid.env.evaluation import BEHAVIOUR_COLUMNS
from tune_grid.evaluation.outcomes import OUTCOMES_FILE, run_outcomes
from tune_grid.results.schema import TRIALS_FILE, read_results
from tune_grid.search.spec.space_file import load_space_file

pytestmark = pytest.mark.slow

SPACE = {
    "experiment": "proto",
    "fixed": {
        "train_batch_size": 96,
        "minibatch_size": 32,
        "num_epochs": 1,
        "hidden_sizes": [16, 16],
        "horizontal_protocol": "p2p_trading",
    },
    "space": {"vertical_protocol": {"type": "choice", "values": ["none", "setpoint"]}},
    "search": {"algorithm": "grid", "seed": 0},
    "scheduler": {"type": "fifo"},
    "num_samples": 1,
    "max_concurrent_trials": 2,
    "seeds": 2,
    "metric": "daily_cost_mean",
    "mode": "min",
    "stop": {"training_iteration": 2},
    "evaluation": {"top_k": None, "days": 3, "oracle": False},
}


def test_outcomes_of_a_protocol_search(tmp_path: Path) -> None:
    import ray

    from tune_grid.search.pipeline import run_search
    from tune_grid.search.run.tuner import SearchOptions, init_ray

    space = tmp_path / "proto.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    init_ray(SearchOptions(num_cpus=2))
    try:
        run_search(load_space_file(space), SearchOptions(storage=str(tmp_path)), space_path=space)
    finally:
        ray.shutdown()
    results = tmp_path / "proto"
    lines: list[str] = []
    table = run_outcomes(results, days=3, by=["vertical_protocol"], print_fn=lines.append)

    per_seed = pd.read_parquet(results / OUTCOMES_FILE)
    assert len(per_seed) == 4 and set(per_seed["seed_dir"]) == {"seed_0", "seed_1"}
    assert set(per_seed["vertical_protocol"]) == {"none", "setpoint"}
    assert (per_seed["days"] == 3).all()
    for column in ("cost", "safety", *BEHAVIOUR_COLUMNS):
        assert per_seed[column].map(math.isfinite).all(), column
    assert (per_seed["p2p_traded_mwh"] >= 0).all() and (per_seed["import_mwh"] >= 0).all()

    # The same policies on the same days cost what the search's own evaluation reported.
    trials = read_results(results / TRIALS_FILE, "trials").to_pandas()
    for trial in trials.to_dict("records"):
        mine = per_seed[per_seed["trial_id"] == trial["trial_id"]]["cost"].mean()
        assert mine == pytest.approx(trial["test_daily_cost"], rel=1e-9)

    assert list(table["vertical_protocol"]) == ["none", "setpoint"]
    assert list(table["policies"]) == [2, 2]
    header = next(line for line in lines if line.lstrip().startswith("vertical_protocol"))
    assert "peak_import_mw" in header and "p2p_traded_mwh" in header
