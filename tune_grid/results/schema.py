"""The Parquet results format: ``trials.parquet`` and ``iterations.parquet``.

This module imports only pyarrow, so analysis scripts can use it without Ray or torch.

A search experiment folder holds:

* ``trials.parquet``: one row per trial (one sampled configuration; with ``seeds: K`` a trial trains
  K seeds in lockstep and reports their mean). Fixed columns are listed in ``TRIAL_COLUMNS``; every
  searched or fixed hyperparameter of the run config is its own typed column named
  ``param_<name>`` (float64, int64, bool or string).
* ``iterations.parquet``: one row per trial x training iteration, with the fixed columns in
  ``ITERATION_COLUMNS`` and any further reported numeric metric under its flattened name
  (``/`` kept, e.g. ``timers/sample_s``).

Both files also carry the lineage columns of :data:`LINEAGE_COLUMNS` (population-based training:
which trial's checkpoint a trial cloned); every writer writes them, and files written before they
existed read as trials that never cloned one.

Both files carry ``tune_grid.schema_version`` in their Parquet key-value metadata; readers refuse
files of another version with a one-line error.

Metric definitions (per training iteration, mean over the trial's seeds):

* ``episode_return_mean``: RLlib's ``env_runners/episode_return_mean`` (sum over agents).
* ``daily_cost_mean``: total operating cost of the three microgrids per 24-hour episode, $.
* ``safety_mean``: summed safety (voltage pu outside [0.95, 1.05] + line overload) per episode.
* ``violation_hours_mean``: agent-hours with a safety violation per episode.
* ``val_objective``, ``val_daily_cost``, ``val_safety``, ``val_violation_hours``, ``val_gap``:
  the latest validation of the trial's greedy policies on the validation days
  (:mod:`tune_grid.training.validation`), seed means, measured at ``val_env_steps``; the
  objective is cost + penalty x cost_scale x safety in $ per day, the gap is relative to the
  oracle's objective on the same days.
* ``objective``: the search metric (named in the trial's ``metric`` column), mean over seeds;
  by default ``val_objective``.

The training metrics (the first four) describe the exploring policy's training episodes: they
are diagnostics, not measures of the policy a search hands out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq

from tune_grid.errors import TuneGridError

SCHEMA_VERSION = "2"
"""2: validation metrics (``val_*``), the default objective; budgets in env steps."""
VERSION_KEY = b"tune_grid.schema_version"
KIND_KEY = b"tune_grid.kind"
TRIALS_FILE = "trials.parquet"
ITERATIONS_FILE = "iterations.parquet"
PARAM_PREFIX = "param_"
STOP_KEY = b"tune_grid.stop"
"""Key-value metadata of ``trials.parquet``: the search's stop condition as JSON (e.g.
``{"env_steps": 100000}``), the budget every trial would have run to without early stopping."""

MAX_ITERATIONS_KEY = b"tune_grid.max_iterations"
"""Metadata of results written before ``STOP_KEY``: the stop's iteration bound as text."""

TRAINING_METRIC_NAMES = (
    "episode_return_mean",
    "daily_cost_mean",
    "safety_mean",
    "violation_hours_mean",
)
"""Metrics of the exploring policy's training episodes (diagnostics)."""
VALIDATION_METRIC_NAMES = (
    "val_objective",
    "val_daily_cost",
    "val_safety",
    "val_violation_hours",
    "val_gap",
)
"""Metrics of the greedy policy on the validation days (see the module doc)."""
METRIC_NAMES = (*VALIDATION_METRIC_NAMES, *TRAINING_METRIC_NAMES)
"""Every metric a search may rank trials by."""
DEFAULT_METRIC = "val_objective"
MAXIMIZED_METRICS = ("episode_return_mean", "env_steps_per_s")
"""Metrics where higher is better; every other metric (costs, safety, gaps) is minimized."""


def better_mode(metric: str) -> Literal["max", "min"]:
    """The direction in which ``metric`` improves."""
    return "max" if metric in MAXIMIZED_METRICS else "min"


TRIAL_COLUMNS: dict[str, pa.DataType] = {
    "experiment": pa.string(),
    "trial_id": pa.string(),
    "status": pa.string(),  # TERMINATED, ERROR, RUNNING, PENDING, PAUSED
    "stopped_early": pa.bool_(),  # stopped by the scheduler before the stop condition
    "iterations": pa.int64(),
    "env_steps": pa.int64(),
    "seed": pa.int64(),  # base seed; seeds are seed, seed+1, ...
    "seeds": pa.list_(pa.int64()),
    "metric": pa.string(),
    "mode": pa.string(),  # "max" or "min"
    "best_objective": pa.float64(),
    "best_iteration": pa.int64(),
    "last_objective": pa.float64(),
    "last_objective_per_seed": pa.list_(pa.float64()),
    "last_episode_return_mean": pa.float64(),
    "last_daily_cost_mean": pa.float64(),
    "last_safety_mean": pa.float64(),
    "best_env_steps": pa.int64(),  # env steps at the best objective
    "best_val_objective": pa.float64(),  # validation metrics at the best objective
    "best_val_daily_cost": pa.float64(),
    "best_val_gap": pa.float64(),
    "test_daily_cost": pa.float64(),  # held-out evaluation, NaN when not evaluated
    "test_daily_cost_per_seed": pa.list_(pa.float64()),
    "test_safety": pa.float64(),
    "test_violation_hours": pa.float64(),
    "test_return": pa.float64(),
    "test_optimality_gap": pa.float64(),
    "test_days": pa.int64(),
    "wall_time_s": pa.float64(),
    "node_id": pa.string(),
    "node_ip": pa.string(),
    "checkpoint_path": pa.string(),
}

ITERATION_COLUMNS: dict[str, pa.DataType] = {
    "experiment": pa.string(),
    "trial_id": pa.string(),
    "iteration": pa.int64(),
    "env_steps": pa.int64(),
    "time_total_s": pa.float64(),
    "objective": pa.float64(),
    "objective_per_seed": pa.list_(pa.float64()),
    "episode_return_mean": pa.float64(),
    "daily_cost_mean": pa.float64(),
    "safety_mean": pa.float64(),
    "violation_hours_mean": pa.float64(),
    "val_objective": pa.float64(),
    "val_daily_cost": pa.float64(),
    "val_safety": pa.float64(),
    "val_violation_hours": pa.float64(),
    "val_gap": pa.float64(),
    "val_env_steps": pa.int64(),
    "node_id": pa.string(),
}

CONFIRM_FILE = "confirm.parquet"
CONFIRM_COLUMNS: dict[str, pa.DataType] = {
    "experiment": pa.string(),
    "candidate": pa.string(),  # c1, c2, ... (search rank) or <factor>=<value> (factor variant)
    "origin": pa.string(),  # how the configuration entered the race, in words
    "trial_id": pa.string(),  # the search trial it comes from (a factor variant: its base)
    "config": pa.string(),  # the searched keys' values, JSON
    "round": pa.int64(),
    "seed": pa.int64(),  # a fresh seed, never used by the search
    "env_steps": pa.int64(),  # trained
    "best_env_steps": pa.int64(),  # env steps at the best validation (the scored checkpoint)
    "val_objective": pa.float64(),  # the search metric at the best validation
    "test_daily_cost": pa.float64(),  # mean over the test days, $/day
    "test_daily_costs": pa.list_(pa.float64()),  # per test day, in test-day order
    "test_safety": pa.float64(),
    "test_violation_hours": pa.float64(),
    "test_optimality_gap": pa.float64(),  # pooled cost gap to the oracle on the same days
    "test_mpc_gap": pa.float64(),  # pooled cost gap to the MPC baseline; NaN: none
    "test_days": pa.int64(),
    "checkpoint_path": pa.string(),  # the scored checkpoint (evaluate / oracle --checkpoint)
    "time_total_s": pa.float64(),
    "error": pa.string(),  # null, or why the run failed (then the test columns are NaN)
}
"""``confirm.parquet``: one row per confirmed run (configuration x fresh seed), see
:mod:`tune_grid.search.answer.confirmation`."""

LINEAGE_COLUMNS: dict[str, dict[str, pa.DataType]] = {
    "trials": {
        "exploits": pa.int64(),  # how often the trial's weights were replaced by another's
        "parent_trial_id": pa.string(),  # the trial its last exploit cloned; null: none
    },
    "iterations": {
        "exploits": pa.int64(),  # exploits up to this iteration
        "parent_trial_id": pa.string(),  # the trial the weights were last cloned from
        "parent_iteration": pa.int64(),  # the cloned checkpoint's iteration in that trial
    },
    "confirm": {},
}
"""Typed columns every writer adds; a reader accepts files without them (written before)."""
MPC_COLUMNS: dict[str, dict[str, pa.DataType]] = {
    "trials": {
        "test_mpc_gap": pa.float64(),  # held-out cost gap to the MPC baseline, NaN: none
        # 95 % bootstrap intervals over the test days (and the seeds): env.day_intervals
        "test_daily_cost_low": pa.float64(),
        "test_daily_cost_high": pa.float64(),
        "test_optimality_gap_low": pa.float64(),
        "test_optimality_gap_high": pa.float64(),
    },
    "iterations": {},
    "confirm": {},
}
"""Like the lineage columns: written by every writer, optional for readers (older files)."""
ADDED_COLUMNS: dict[str, dict[str, pa.DataType]] = {
    kind: {**LINEAGE_COLUMNS[kind], **MPC_COLUMNS[kind]} for kind in LINEAGE_COLUMNS
}
"""Every column a reader accepts a file without."""

_COLUMNS_BY_KIND = {
    "trials": TRIAL_COLUMNS,
    "iterations": ITERATION_COLUMNS,
    "confirm": CONFIRM_COLUMNS,
}


class ResultsSchemaError(TuneGridError, ValueError):
    """A results file is missing, unreadable, of another schema version, or lacks columns."""


def with_metadata(table: pa.Table, kind: str) -> pa.Table:
    """Attach the schema version and kind to a table before writing it."""
    if kind not in _COLUMNS_BY_KIND:
        raise ValueError(f"kind must be one of {sorted(_COLUMNS_BY_KIND)}, got {kind!r}")
    metadata = dict(table.schema.metadata or {})
    metadata[VERSION_KEY] = SCHEMA_VERSION.encode()
    metadata[KIND_KEY] = kind.encode()
    return table.replace_schema_metadata(metadata)


def check_table(table: pa.Table, kind: str, source: str = "table") -> None:
    """Raise ResultsSchemaError unless ``table`` has this version and every fixed column's type."""
    metadata = table.schema.metadata or {}
    version = metadata.get(VERSION_KEY, b"<none>").decode()
    if version != SCHEMA_VERSION:
        raise ResultsSchemaError(
            f"{source}: schema version {version}, this tune-grid reads version {SCHEMA_VERSION}"
        )
    for name, dtype in _COLUMNS_BY_KIND[kind].items():
        if name not in table.column_names:
            raise ResultsSchemaError(f"{source}: missing column {name!r} of the {kind} schema")
        _check_type(table, name, dtype, source)
    for name, dtype in ADDED_COLUMNS[kind].items():
        if name in table.column_names:
            _check_type(table, name, dtype, source)


def _check_type(table: pa.Table, name: str, dtype: pa.DataType, source: str) -> None:
    actual = table.schema.field(name).type
    if actual != dtype and not (pa.types.is_null(actual)):
        raise ResultsSchemaError(f"{source}: column {name!r} is {actual}, expected {dtype}")


def read_results(path: str | Path, kind: str) -> pa.Table:
    """Read and check a results file; ``kind`` is "trials", "iterations" or "confirm"."""
    path = Path(path)
    if not path.exists():
        raise ResultsSchemaError(f"{path}: no such file (expected a tune-grid {kind} file)")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ResultsSchemaError(f"{path}: not a readable Parquet file ({exc})") from None
    check_table(table, kind, str(path))
    return table


def write_results(table: pa.Table, path: str | Path, kind: str) -> None:
    """Write atomically (temp file + rename) so a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = with_metadata(table, kind)
    check_table(table, kind, str(path))
    tmp = path.with_suffix(path.suffix + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
