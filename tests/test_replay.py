"""The replay benchmark's table: checks with one clear line, snapping, levels, a real replay."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tune_grid.bench.replay import (
    Recorded,
    ReplayError,
    ReplayOptions,
    levels_of,
    read_table,
    run_replay_benchmark,
)

LRS = [3e-4, 1e-3, 3e-3]


def synthetic_table() -> pd.DataFrame:
    """3 lrs x 2 sharings x 2 seeds, 6 validation points each; lr 1e-3 shared is best."""
    rng = np.random.default_rng(0)
    rows = []
    for config, (lr, sharing) in enumerate(itertools.product(LRS, ["shared", "independent"])):
        quality = 1000 + 200 * abs(np.log10(lr / 1e-3)) + (40 if sharing == "independent" else 0)
        for seed in (0, 1):
            for k in range(1, 7):
                rows.append(
                    {
                        "config": config,
                        "seed": seed,
                        "env_steps": 10_000 * k,
                        "objective": quality + 500 * np.exp(-k / 2) + rng.normal(0, 5),
                        "time_s": 4.0 * k,
                        "param_lr": lr,
                        "param_policy_sharing": sharing,
                    }
                )
    return pd.DataFrame(rows)


def test_a_table_reads_back_and_snaps_to_the_nearest_recorded_configuration(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.parquet"
    synthetic_table().to_parquet(path)
    recorded = Recorded.of(read_table(path))
    assert recorded.log_keys == {"lr"}
    assert recorded.space() == {
        "lr": {"type": "loguniform", "low": 3e-4, "high": 3e-3},
        "policy_sharing": {"type": "choice", "values": ["independent", "shared"]},
    }
    # 1.6e-3 is nearer 1e-3 than 3e-3 on a log scale (log distance 0.20 vs 0.27)
    config = recorded.snap({"lr": 1.6e-3, "policy_sharing": "independent"})
    assert recorded.params["lr"][config] == 1e-3
    assert recorded.params["policy_sharing"][config] == "independent"
    assert recorded.seed_for(config, 7, 123) == recorded.seed_for(config, 7, 123)
    levels = levels_of(recorded)
    assert levels["top_2pct"] <= levels["top_10pct"] <= levels["median_final"]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda t: t.drop(columns=["env_steps"]), "missing column 'env_steps'"),
        (lambda t: t.drop(columns=["param_lr", "param_policy_sharing"]), "nothing was searched"),
        (
            lambda t: t.assign(env_steps=t["env_steps"].where(t.index != 3, 10_000)),
            "config 0 seed 0: env_steps must increase along the curve, but row 3 has 10000",
        ),
    ],
)
def test_a_bad_table_gets_one_clear_line(tmp_path: Path, change, says: str) -> None:  # noqa: ANN001
    path = tmp_path / "t.parquet"
    change(synthetic_table()).to_parquet(path)
    with pytest.raises(ReplayError) as info:
        read_table(path)
    assert says in str(info.value) and "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_a_missing_or_corrupt_table_gets_one_line(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="no such replay table"):
        read_table(tmp_path / "none.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"junk")
    with pytest.raises(ReplayError, match="not a readable Parquet file"):
        read_table(tmp_path / "bad.parquet")


def test_a_replayed_search_drives_tunes_searcher_and_scheduler(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    synthetic_table().to_parquet(path)
    out = run_replay_benchmark(
        ReplayOptions(
            table=str(path),
            repetitions=2,
            num_samples=4,
            concurrent=2,
            arms=("random_fifo", "optuna_asha"),
        ),
        print_fn=lambda line: None,
    )
    traces = out["traces"]
    assert [t.arm for t in traces] == ["random_fifo"] * 2 + ["optuna_asha"] * 2
    for trace in traces:
        assert trace.env_steps == sorted(trace.env_steps)  # cumulative
        assert trace.best == sorted(trace.best, reverse=True)  # best so far
    fifo = [t for t in traces if t.arm == "random_fifo"]
    assert fifo[0].env_steps[-1] == 4 * 60_000  # 4 whole curves under FIFO
    rows = {(r["level"], r["arm"]): r for r in out["table"]}
    assert rows[("median_final", "random_fifo")]["p_beats_random_fifo"] == 0.5
    asha = [t for t in traces if t.arm == "optuna_asha"]
    assert asha[0].env_steps[-1] < 4 * 60_000  # ASHA stopped some trial at a rung
    # the same seed replays the same trace, two trials at a time included
    again = run_replay_benchmark(
        ReplayOptions(
            table=str(path), repetitions=2, num_samples=4, concurrent=2,
            arms=("random_fifo", "optuna_asha"),
        ),
        print_fn=lambda line: None,
    )  # fmt: skip
    for first, second in zip(traces, again["traces"], strict=True):
        assert (first.env_steps, first.best) == (second.env_steps, second.best)


def test_reference_levels_travel_with_a_written_table(tmp_path: Path) -> None:
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from tune_grid.bench.replay import LEVELS_METADATA, read_table_and_levels

    path = tmp_path / "t.parquet"
    arrow = pa.Table.from_pandas(synthetic_table(), preserve_index=False)
    levels = {"rule_based": 1150.0, "do_nothing": 1400.0}
    arrow = arrow.replace_schema_metadata({LEVELS_METADATA: json.dumps(levels).encode()})
    pq.write_table(arrow, path)
    table, read = read_table_and_levels(path)
    assert read == levels and len(table) == len(synthetic_table())
    ordered = levels_of(Recorded.of(table), read)
    assert list(ordered)[0] == "rule_based" and ordered["rule_based"] == 1150.0
    assert "rule_based" not in levels_of(Recorded.of(table), {})


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"reduction_factor": 1}, "--reduction-factor must be >= 2, got 1"),
        ({"n_startup_trials": 0}, "--n-startup-trials must be >= 1, got 0"),
    ],
)
def test_bad_replay_settings_get_one_line(tmp_path: Path, change: dict, says: str) -> None:
    path = tmp_path / "t.parquet"
    synthetic_table().to_parquet(path)
    with pytest.raises(ReplayError, match=says):
        run_replay_benchmark(ReplayOptions(table=str(path), repetitions=1, **change))


def test_the_shipped_table_is_the_recorded_grid_with_its_reference_levels() -> None:
    from tune_grid.bench.replay import SHIPPED_TABLE, read_table_and_levels

    assert SHIPPED_TABLE.stat().st_size < 5 * 2**20
    table, levels = read_table_and_levels("shipped")
    recorded = Recorded.of(table)
    assert len(recorded.seeds) == 48 and all(s == [0, 1, 2] for s in recorded.seeds.values())
    assert set(recorded.params) == {"lr", "train_batch_size", "share_reward", "policy_sharing"}
    # every curve is whole: validated every ~10k env steps up to 160k
    assert all(c[0][-1] >= 160_000 and len(c[0]) >= 17 for c in recorded.curves.values())
    assert levels["oracle"] < levels["rule_based"] < levels["do_nothing"]
