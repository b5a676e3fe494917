"""`tune-grid bench driver`: the meter's bins, and a quick run of both write modes end to end."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from tune_grid.bench.driver import CATEGORIES, QUICK, DriverMeter, run_driver_benchmark
from tune_grid.config import ConfigError


def _meter(per_result: list[float], end: float) -> DriverMeter:
    """A meter that spent ``per_result[i]`` export seconds after result i, then ``end``."""
    meter = DriverMeter()
    for spent in per_result:
        meter.mark_result()
        meter.spent["export"] += spent
        meter.mark_step()
    meter.spent["export"] += end
    return meter


def test_bins_charge_each_result_until_the_next_and_leave_the_end_out() -> None:
    meter = _meter([0.001, 0.001, 0.003, 0.005], end=2.0)
    assert meter.per_result_ms(0, 2)["export"] == pytest.approx(1.0)
    assert meter.per_result_ms(2, 4)["export"] == pytest.approx(4.0)  # not the 2 s end
    assert meter.end_s() == pytest.approx(2.0)
    assert all(math.isnan(v) for v in meter.per_result_ms(2, 5).values())
    assert set(meter.per_result_ms(0, 4)) == set(CATEGORIES)


def test_busy_share_is_the_driver_time_over_the_wall_time_of_the_bin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tune_grid.bench import driver as module

    clock = [0.0]
    monkeypatch.setattr(module.time, "perf_counter", lambda: clock[0])
    meter = DriverMeter()
    for spent, running in ((0.5, 4), (0.25, 4), (0.25, 2)):
        meter.mark_result(running)
        meter.spent["state"] += spent
        clock[0] += 2.0  # each result is followed by 2 s of wall time
        meter.mark_step()
    assert meter.busy_share(0, 2) == pytest.approx(0.75 / 4.0)
    assert meter.busy_share(2, 3) == pytest.approx(0.25 / 2.0)  # up to the last step
    assert meter.mean_running(0, 3) == pytest.approx(10 / 3)
    assert math.isnan(meter.busy_share(1, 4))


def test_bad_options_name_what_is_allowed() -> None:
    with pytest.raises(ConfigError, match="--modes: got fast; allowed: parts,rewrite"):
        replace(QUICK, modes=("fast",)).validate()
    with pytest.raises(ConfigError, match="--rewrite-results"):
        replace(QUICK, rewrite_results=10).validate()


def _checkpoints_per_trial(experiment: Path) -> list[int]:
    """Checkpointed iterations of each trial, from Tune's result.json (one line per result)."""
    counts = []
    for result_file in sorted(experiment.glob("trial_*/result.json")):
        rows = [json.loads(line) for line in result_file.read_text().splitlines() if line]
        counts.append(sum(1 for r in rows if r.get("should_checkpoint")))
    return counts


@pytest.mark.slow
def test_quick_run_measures_both_modes_and_checkpoints_as_the_real_trainable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "auto")  # as full.yaml asks (setdefault)
    lines: list[str] = []
    options = replace(QUICK, storage=str(tmp_path))
    results = {r.mode: r for r in run_driver_benchmark(options, print_fn=lines.append)}
    total = QUICK.trials * QUICK.iterations
    parts, rewrite = results["parts"], results["rewrite"]
    assert parts.meter.results == total and parts.rows_written == total
    # Stopped early: after about rewrite_results (the last ones in flight may not reach it).
    assert QUICK.rewrite_results - QUICK.concurrency <= rewrite.meter.results < total
    assert rewrite.rows_written == rewrite.meter.results  # every result reached the files
    # The trial reporting is running, and never more than the concurrency allows.
    assert len(parts.meter.running) == total
    assert all(1 <= n <= QUICK.concurrency for n in parts.meter.running)
    assert "running parts" in "\n".join(lines)
    report = "\n".join(lines)
    assert "rewrite / parts = " in report and "parts: total " in report
    # Every bin of both arms has a finite, positive driver time per result.
    for arm in (parts, rewrite):
        n = arm.meter.results - arm.meter.results % QUICK.bin_size
        for start in range(0, n, QUICK.bin_size):
            cost = arm.meter.per_result_ms(start, start + QUICK.bin_size)
            assert all(math.isfinite(v) and v >= 0 for v in cost.values())
            assert sum(cost.values()) > 0
    assert rewrite.state_period == "every step"
    assert "(auto)" in parts.state_period  # search_spaces/full.yaml's export.flush_interval_s
    assert 1 <= parts.meter.saves < rewrite.meter.saves
    # full.yaml validates every 50k env steps; 25 iterations of 1920-7680 steps: at the first
    # iteration, at each crossing of 50k and at the last, far fewer than one per result.
    counts = _checkpoints_per_trial(parts.results_dir)
    assert len(counts) == QUICK.trials
    assert all(2 <= c <= 2 + 7680 * QUICK.iterations // 50_000 for c in counts), counts
