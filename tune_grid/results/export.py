"""Build ``trials.parquet`` and ``iterations.parquet`` (see :mod:`tune_grid.results.schema`).

Three entry points share one table builder, so every path writes the same rows:

* :class:`ParquetExportCallback`, a Tune callback that rewrites both files atomically after every
  reported iteration (a crash loses at most the iteration being reported);
* :func:`export_experiment`, which rebuilds both files from a Tune experiment directory: each
  trial's ``result.json`` plus the history kept in its latest checkpoint (``trial_state.json``),
  the trial statuses from Tune's experiment state, ``search.json`` (the validated search file) and
  ``test_evaluation.json`` (held-out results). It is deterministic: running it twice writes the
  same bytes. ``tune-grid search`` calls it once at the end, merged into the incremental files
  (``merge=True``: it never drops a trial or row they had); ``tune-grid export DIR`` runs it.

Rows are keyed by (trial_id, iteration); a later report of the same iteration (after a restore)
replaces the earlier one, so retried iterations are never duplicated. Rows a trial abandoned (it
restarted from an earlier checkpoint and reported a smaller iteration later: a resumed population
search can then take another path) are left out (:func:`current_rows`).
"""

from __future__ import annotations

import json
import math
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from tune_grid.config import RunConfig
from tune_grid.results.early_stop import DEFAULT_READING, STOP_READINGS, stop_reached
from tune_grid.results.parts import (
    last_part_seq,
    read_merged,
    remove_parts_through,
    with_parts_through,
)
from tune_grid.results.schema import (
    ADDED_COLUMNS,
    ITERATION_COLUMNS,
    ITERATIONS_FILE,
    PARAM_PREFIX,
    STOP_KEY,
    TRIAL_COLUMNS,
    TRIALS_FILE,
    VALIDATION_METRIC_NAMES,
    ResultsSchemaError,
    write_results,
)

SEARCH_META_FILE = "search.json"
EVALUATION_FILE = "test_evaluation.json"
TRIAL_DIR_PREFIX = "trial_"
STATE_FILE = "trial_state.json"
STATUSES = ("TERMINATED", "ERROR", "RUNNING", "PENDING", "PAUSED")
_TUNE_KEYS = {
    "training_iteration",
    "timestamp",
    "pid",
    "hostname",
    "node_ip",
    "date",
    "done",
    "time_this_iter_s",
    "time_total_s",
    "time_since_restore",
    "iterations_since_restore",
    "timesteps_total",
    "timesteps_since_restore",
    "episodes_total",
    "warmup_time",
    "checkpoint_dir_name",
    "should_checkpoint",
    "trial_id",
    "experiment_tag",
    "config",
}
_BOOKKEEPING = {"iteration", "seed", "num_seeds", "trial_time_total_s"}
_RUN_HINTS = typing.get_type_hints(RunConfig)


@dataclass(frozen=True)
class SearchMeta:
    """What the exporter needs to know about the search (saved as ``search.json``)."""

    experiment: str
    seeds: int = 1
    metric: str = "episode_return_mean"
    mode: str = "max"
    stop: dict[str, float] = field(default_factory=dict)
    param_names: tuple[str, ...] = ()
    early_stop: str = DEFAULT_READING
    """Name of the scheduler's :class:`~tune_grid.results.early_stop.StopReading`."""

    def to_json(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "seeds": self.seeds,
            "metric": self.metric,
            "mode": self.mode,
            "stop": self.stop,
            "param_names": list(self.param_names),
            "early_stop": self.early_stop,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SearchMeta:
        return cls(
            experiment=str(data["experiment"]),
            seeds=int(data.get("seeds", 1)),
            metric=str(data.get("metric", "episode_return_mean")),
            mode=str(data.get("mode", "max")),
            stop={str(k): float(v) for k, v in dict(data.get("stop", {})).items()},
            param_names=tuple(data.get("param_names", ())),
            early_stop=str(data.get("early_stop", DEFAULT_READING)),
        )


def write_search_meta(results_dir: str | Path, meta: SearchMeta, spec: Any = None) -> None:
    """Save ``search.json``: the exporter's metadata plus the whole validated search file."""
    data = meta.to_json()
    if spec is not None:
        data["spec"] = spec.model_dump(mode="json", exclude_unset=True)
    write_json(Path(results_dir) / SEARCH_META_FILE, data)


def read_search_meta(results_dir: str | Path) -> SearchMeta | None:
    """The saved :class:`SearchMeta`, or None when the folder has no ``search.json``."""
    path = Path(results_dir) / SEARCH_META_FILE
    if not path.exists():
        return None
    return SearchMeta.from_json(json.loads(path.read_text()))


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)


# --- trial records ------------------------------------------------------------------------------


@dataclass
class TrialRecord:
    """One trial as known so far: status, config, iteration rows and where it lives."""

    trial_id: str
    status: str = "PENDING"
    config: dict[str, Any] = field(default_factory=dict)
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)
    path: str | None = None
    checkpoints: dict[int, str] = field(default_factory=dict)
    """Iteration -> checkpoint folder name (as reported by Tune)."""

    def add_result(self, result: Mapping[str, Any]) -> int | None:
        """Record one reported result (a later report of the same iteration replaces it).

        Returns the iteration it recorded, None for a result without iteration or objective.
        """
        row = iteration_row(result)
        if row is None:
            return None
        self.rows[row["iteration"]] = row
        name = result.get("checkpoint_dir_name")
        if name:
            self.checkpoints[row["iteration"]] = str(name)
        return int(row["iteration"])


def current_rows(rows: Mapping[int, Mapping[str, Any]]) -> dict[int, Mapping[str, Any]]:
    """``rows`` without those reported before a row of a smaller iteration (by ``reported_at``;
    rows without it are kept): the trial went back to an earlier checkpoint after them."""
    stamped = [(_float(row.get("reported_at")), it) for it, row in rows.items()]
    stamped = sorted((t, it) for t, it in stamped if not math.isnan(t))
    abandoned, smallest_later = set(), math.inf
    for _, iteration in reversed(stamped):
        if iteration > smallest_later:
            abandoned.add(iteration)
        smallest_later = min(smallest_later, iteration)
    return {it: row for it, row in rows.items() if it not in abandoned}


def _float(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _int_or_none(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) else None


def _float_list(value: Any) -> list[float] | None:
    if not isinstance(value, list | tuple):
        return None
    return [_float(v) for v in value]


def iteration_row(result: Mapping[str, Any]) -> dict[str, Any] | None:
    """Normalise one reported result (or a checkpoint history row) into an iterations row."""
    iteration = _int_or_none(result.get("iteration", result.get("training_iteration")))
    if iteration is None or "objective" not in result:
        return None
    time_total = result.get("trial_time_total_s", result.get("time_total_s"))
    row: dict[str, Any] = {
        "iteration": iteration,
        "env_steps": _int_or_none(result.get("env_steps")) or 0,
        "time_total_s": _float(time_total),
        "objective": _float(result.get("objective")),
        "objective_per_seed": _float_list(result.get("objective_per_seed")),
        "episode_return_mean": _float(result.get("episode_return_mean")),
        "daily_cost_mean": _float(result.get("daily_cost_mean")),
        "safety_mean": _float(result.get("safety_mean")),
        "violation_hours_mean": _float(result.get("violation_hours_mean")),
        **{name: _float(result.get(name)) for name in VALIDATION_METRIC_NAMES},
        "val_env_steps": _int_or_none(result.get("val_env_steps")),
        "node_id": str(result.get("node_id") or ""),
        "node_ip": str(result.get("node_ip") or ""),
        "seed": _int_or_none(result.get("seed")),
        "exploits": _int_or_none(result.get("exploits")) or 0,
        "parent_trial_id": result.get("parent_trial_id") or None,
        "parent_iteration": _int_or_none(result.get("parent_iteration")),
    }
    for key, value in result.items():
        if key in row or key in _TUNE_KEYS or key in _BOOKKEEPING:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            row[key] = float(value)
    return row


# --- tables -------------------------------------------------------------------------------------


def param_type(name: str) -> pa.DataType:
    """Arrow type of ``param_<name>`` from RunConfig's annotation (tuples are ``"64x64"``)."""
    hint = _RUN_HINTS.get(name)
    origin = typing.get_origin(hint)
    if origin in (typing.Literal, tuple, list):
        return pa.string()
    options = typing.get_args(hint) if origin is not None else (hint,)
    if bool in options:
        return pa.bool_()
    if int in options:
        return pa.int64()
    if float in options:
        return pa.float64()
    return pa.string()


def param_value(name: str, value: Any) -> Any:
    """A config value as stored in its typed ``param_`` column."""
    if value is None:
        return None
    kind = param_type(name)
    if isinstance(value, list | tuple):
        return "x".join(str(int(v)) for v in value)
    if kind == pa.float64():
        return float(value)
    if kind == pa.int64():
        return int(value)
    if kind == pa.bool_():
        return bool(value)
    return str(value)


def _best(rows: Mapping[int, Mapping[str, Any]], mode: str) -> tuple[float, int | None]:
    best_value, best_iteration = math.nan, None
    for iteration in sorted(rows):
        value = rows[iteration]["objective"]
        if value is None or math.isnan(value):
            continue
        if best_iteration is None or (value > best_value if mode == "max" else value < best_value):
            best_value, best_iteration = value, iteration
    return best_value, best_iteration


def best_checkpoint(record: TrialRecord, mode: str) -> str | None:
    """Path of the trial's best still-existing checkpoint (by objective), else its latest one."""
    if record.path is None or not record.checkpoints:
        return None
    base = Path(record.path)
    kept = {
        it: name
        for it, name in record.checkpoints.items()
        if "://" in record.path or (base / name).exists()
    }
    if not kept:
        return None
    rows = {it: record.rows[it] for it in kept if it in record.rows}
    _, iteration = _best(rows, mode)
    if iteration is None:
        iteration = max(kept)
    return f"{record.path.rstrip('/')}/{kept[iteration]}"


def trial_row(
    record: TrialRecord, meta: SearchMeta, evaluation: Mapping[str, Any] | None
) -> dict[str, Any]:
    """One ``trials.parquet`` row."""
    rows = current_rows(record.rows)
    last = rows[max(rows)] if rows else {}
    best_value, best_iteration = _best(rows, meta.mode)
    best = rows[best_iteration] if best_iteration is not None else {}
    base_seed = _int_or_none(record.config.get("seed"))
    if base_seed is None:
        base_seed = _int_or_none(last.get("seed")) or 0
    evaluation = evaluation or {}
    status = record.status if record.status in STATUSES else "PENDING"
    row: dict[str, Any] = {
        "experiment": meta.experiment,
        "trial_id": record.trial_id,
        "status": status,
        "stopped_early": STOP_READINGS[meta.early_stop].stopped_early(
            status, bool(rows), stop_reached(meta.stop, last)
        ),
        "iterations": int(last.get("iteration", 0)),
        "env_steps": int(last.get("env_steps", 0)),
        "seed": base_seed,
        "seeds": [base_seed + k for k in range(meta.seeds)],
        "metric": meta.metric,
        "mode": meta.mode,
        "best_objective": best_value,
        "best_iteration": best_iteration,
        "last_objective": _float(last.get("objective")),
        "last_objective_per_seed": last.get("objective_per_seed"),
        "last_episode_return_mean": _float(last.get("episode_return_mean")),
        "last_daily_cost_mean": _float(last.get("daily_cost_mean")),
        "last_safety_mean": _float(last.get("safety_mean")),
        "best_env_steps": _int_or_none(best.get("env_steps")),
        "best_val_objective": _float(best.get("val_objective")),
        "best_val_daily_cost": _float(best.get("val_daily_cost")),
        "best_val_gap": _float(best.get("val_gap")),
        "test_daily_cost": _float(evaluation.get("test_daily_cost")),
        "test_daily_cost_per_seed": _float_list(evaluation.get("test_daily_cost_per_seed")),
        "test_safety": _float(evaluation.get("test_safety")),
        "test_violation_hours": _float(evaluation.get("test_violation_hours")),
        "test_return": _float(evaluation.get("test_return")),
        "test_optimality_gap": _float(evaluation.get("test_optimality_gap")),
        "test_mpc_gap": _float(evaluation.get("test_mpc_gap")),
        "test_daily_cost_low": _float(evaluation.get("test_daily_cost_low")),
        "test_daily_cost_high": _float(evaluation.get("test_daily_cost_high")),
        "test_optimality_gap_low": _float(evaluation.get("test_optimality_gap_low")),
        "test_optimality_gap_high": _float(evaluation.get("test_optimality_gap_high")),
        "test_days": _int_or_none(evaluation.get("test_days")),
        "wall_time_s": _float(last.get("time_total_s")),
        "node_id": last.get("node_id") or None,
        "node_ip": last.get("node_ip") or None,
        "checkpoint_path": evaluation.get("checkpoint_path") or best_checkpoint(record, meta.mode),
        "exploits": int(last.get("exploits") or 0),
        "parent_trial_id": last.get("parent_trial_id") or None,
    }
    names = list(meta.param_names) or sorted(k for k in record.config if k in _RUN_HINTS)
    for name in names:
        row[PARAM_PREFIX + name] = param_value(name, record.config.get(name))
    return row


def _param_names(records: list[TrialRecord], meta: SearchMeta) -> list[str]:
    return list(meta.param_names) or sorted(
        {k for r in records for k in r.config if k in _RUN_HINTS}
    )


def trials_table(
    records: Iterable[TrialRecord],
    meta: SearchMeta,
    evaluation: Mapping[str, Mapping[str, Any]] | None = None,
) -> pa.Table:
    """The trials table of ``records``, sorted by trial_id."""
    evaluation = evaluation or {}
    records = sorted(records, key=lambda r: r.trial_id)
    trial_rows = [trial_row(r, meta, evaluation.get(r.trial_id)) for r in records]
    trial_schema = pa.schema(
        [pa.field(n, t) for n, t in {**TRIAL_COLUMNS, **ADDED_COLUMNS["trials"]}.items()]
        + [pa.field(PARAM_PREFIX + n, param_type(n)) for n in _param_names(records, meta)]
    )
    table = pa.Table.from_pylist(trial_rows, schema=trial_schema)
    return table.replace_schema_metadata({STOP_KEY: json.dumps(dict(meta.stop)).encode()})


def iterations_table(
    records: Iterable[TrialRecord],
    meta: SearchMeta,
    only: Mapping[str, Iterable[int]] | None = None,
) -> pa.Table:
    """The iterations table of ``records`` (with ``only``: just those trial ids' iterations),
    sorted by trial_id and iteration."""
    iteration_rows: list[dict[str, Any]] = []
    extras: set[str] = set()
    fixed = {**ITERATION_COLUMNS, **ADDED_COLUMNS["iterations"]}
    for record in sorted(records, key=lambda r: r.trial_id):
        rows = current_rows(record.rows)
        if only is None:
            wanted: Iterable[int] = rows
        elif record.trial_id in only:
            wanted = [i for i in only[record.trial_id] if i in rows]
        else:
            continue
        for iteration in sorted(wanted):
            row = {k: v for k, v in rows[iteration].items() if k not in ("node_ip", "seed")}
            row["experiment"] = meta.experiment
            row["trial_id"] = record.trial_id
            extras.update(k for k in row if k not in fixed)
            iteration_rows.append(row)
    iteration_schema = pa.schema(
        [pa.field(n, t) for n, t in fixed.items()]
        + [pa.field(n, pa.float64()) for n in sorted(extras)]
    )
    return pa.Table.from_pylist(iteration_rows, schema=iteration_schema)


def build_tables(
    records: Iterable[TrialRecord],
    meta: SearchMeta,
    evaluation: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[pa.Table, pa.Table]:
    """The (trials, iterations) tables, sorted by trial_id and iteration."""
    records = list(records)
    return trials_table(records, meta, evaluation), iterations_table(records, meta)


def write_tables(
    results_dir: str | Path,
    records: Iterable[TrialRecord],
    meta: SearchMeta,
    evaluation: Mapping[str, Mapping[str, Any]] | None = None,
    parts_through: int = 0,
) -> tuple[int, int]:
    """Write both files atomically (iterations first); return (trials, iteration rows).

    ``parts_through``: the last part file (:mod:`tune_grid.results.parts`) ``records`` include;
    it is recorded in both files, and those parts are deleted once both are written.
    """
    trials, iterations = build_tables(records, meta, evaluation)
    results_dir = Path(results_dir)
    if parts_through:
        trials = with_parts_through(trials, parts_through)
        iterations = with_parts_through(iterations, parts_through)
    write_results(iterations, results_dir / ITERATIONS_FILE, "iterations")
    write_results(trials, results_dir / TRIALS_FILE, "trials")
    if parts_through:
        remove_parts_through(results_dir, parts_through)
    return trials.num_rows, iterations.num_rows


def read_evaluation(results_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Held-out results by trial_id from ``test_evaluation.json`` ({} when absent)."""
    path = Path(results_dir) / EVALUATION_FILE
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return dict(data.get("trials", {}))


def records_from_parquet(results_dir: str | Path) -> dict[str, TrialRecord]:
    """Trial records from existing Parquet files ({} when there are none or they are unreadable)."""
    results_dir = Path(results_dir)
    try:
        trials = read_merged(results_dir, "trials").to_pylist()
        iterations = read_merged(results_dir, "iterations").to_pylist()
    except ResultsSchemaError:
        return {}
    records: dict[str, TrialRecord] = {}
    for row in trials:
        config = {
            k.removeprefix(PARAM_PREFIX): v for k, v in row.items() if k.startswith(PARAM_PREFIX)
        }
        config.setdefault("seed", row["seed"])
        records[row["trial_id"]] = TrialRecord(
            trial_id=row["trial_id"], status=row["status"], config=config
        )
    node_ips = {row["trial_id"]: row["node_ip"] for row in trials}
    for row in iterations:
        record = records.setdefault(row["trial_id"], TrialRecord(trial_id=row["trial_id"]))
        values = {k: v for k, v in row.items() if k not in ("experiment", "trial_id")}
        values["node_ip"] = node_ips.get(row["trial_id"]) or ""
        values["trial_time_total_s"] = values.pop("time_total_s")
        record.add_result(values)
    return records


# --- from a Tune experiment directory -----------------------------------------------------------


def _read_result_json(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a half-written last line of a killed driver
    return rows


def _checkpoint_history(trial_dir: Path) -> tuple[list[dict[str, Any]], str | None, int | None]:
    """History rows from the trial's newest checkpoint, its folder name and iteration."""
    checkpoints = sorted(p for p in trial_dir.glob("checkpoint_*") if (p / STATE_FILE).exists())
    if not checkpoints:
        return [], None, None
    newest = checkpoints[-1]
    try:
        state = json.loads((newest / STATE_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return [], None, None
    return list(state.get("history", [])), newest.name, int(state.get("iteration", 0))


def _tune_trials(experiment_dir: Path) -> list[Any]:
    """Tune's stub trials from the newest experiment state ([] when there is none)."""
    from ray.tune import ExperimentAnalysis

    try:
        return list(ExperimentAnalysis(str(experiment_dir)).trials)
    except (ValueError, FileNotFoundError, OSError):
        return []


def records_from_experiment(experiment_dir: str | Path) -> dict[str, TrialRecord]:
    """Trial records from a Tune experiment directory (result.json + checkpoint histories)."""
    experiment_dir = Path(experiment_dir).resolve()
    records: dict[str, TrialRecord] = {}
    for trial in _tune_trials(experiment_dir):
        dir_name = trial.storage.trial_dir_name if trial.storage else None
        record = TrialRecord(
            trial_id=str(trial.trial_id),
            status=str(trial.status),
            config={k: v for k, v in dict(trial.config).items() if k in _RUN_HINTS},
            path=str(experiment_dir / dir_name) if dir_name else None,
        )
        records[record.trial_id] = record
    for trial_dir in sorted(experiment_dir.glob(TRIAL_DIR_PREFIX + "*")):
        if not trial_dir.is_dir():
            continue
        trial_id = trial_dir.name.removeprefix(TRIAL_DIR_PREFIX)
        if records and trial_id not in records:
            continue  # never reached Tune's saved state: Tune will not resume it
        record = records.setdefault(trial_id, TrialRecord(trial_id=trial_id))
        record.path = str(trial_dir)
        if not record.config and (trial_dir / "params.json").exists():
            params = json.loads((trial_dir / "params.json").read_text())
            record.config = {k: v for k, v in params.items() if k in _RUN_HINTS}
        history, checkpoint_name, checkpoint_iteration = _checkpoint_history(trial_dir)
        for row in history:
            record.add_result(row)
        if checkpoint_name is not None and checkpoint_iteration is not None:
            record.checkpoints[checkpoint_iteration] = checkpoint_name
        for result in _read_result_json(trial_dir / "result.json"):
            record.add_result(result)
        if record.status == "PENDING" and record.rows and _last_done(trial_dir):
            record.status = "TERMINATED"
    return records


def _last_done(trial_dir: Path) -> bool:
    results = _read_result_json(trial_dir / "result.json")
    return bool(results and results[-1].get("done"))


def merge_records(
    existing: Mapping[str, TrialRecord], rebuilt: Mapping[str, TrialRecord]
) -> dict[str, TrialRecord]:
    """``rebuilt`` plus whatever ``existing`` had that it lacks (trials, iteration rows).

    Where both have a trial, the rebuilt record wins (status, config, path, checkpoints) and its
    rows replace existing rows of the same iteration. A trial only ``existing`` has is kept; one
    that was still unfinished there can no longer continue (Tune does not know it), so it is
    kept as ``ERROR``.
    """
    merged: dict[str, TrialRecord] = {}
    for trial_id, old in existing.items():
        if trial_id not in rebuilt:
            kept = TrialRecord(
                trial_id=trial_id,
                status=old.status if old.status in ("TERMINATED", "ERROR") else "ERROR",
                config=dict(old.config),
                rows=dict(old.rows),
                path=old.path,
                checkpoints=dict(old.checkpoints),
            )
            merged[trial_id] = kept
    for trial_id, new in rebuilt.items():
        previous = existing.get(trial_id)
        if previous is not None:
            new.rows = {**previous.rows, **new.rows}
            new.config = new.config or dict(previous.config)
            new.path = new.path or previous.path
            new.checkpoints = {**previous.checkpoints, **new.checkpoints}
        merged[trial_id] = new
    return merged


def export_experiment(
    experiment_dir: str | Path,
    results_dir: str | Path | None = None,
    meta: SearchMeta | None = None,
    *,
    merge: bool = False,
) -> tuple[int, int]:
    """Rebuild both Parquet files from a Tune experiment directory; return (trials, rows).

    ``results_dir`` defaults to ``experiment_dir``; ``meta`` to its ``search.json`` (else the
    folder name with default metric settings). With ``merge``, trials and iteration rows of the
    Parquet files already in ``results_dir`` that the experiment directory lacks are kept
    (:func:`merge_records`); ``tune-grid search`` exports this way, so its final pass never
    drops a row its incremental files showed.
    """
    experiment_dir = Path(experiment_dir)
    if not experiment_dir.is_dir():
        raise FileNotFoundError(f"{experiment_dir}: no such experiment directory")
    results_dir = Path(results_dir) if results_dir is not None else experiment_dir
    meta = meta or read_search_meta(results_dir) or read_search_meta(experiment_dir)
    # Parts written after this point (a driver still running) are not merged, nor deleted.
    parts_through = last_part_seq(results_dir)
    records = records_from_experiment(experiment_dir)
    if merge:
        records = merge_records(records_from_parquet(results_dir), records)
    if not records:
        raise FileNotFoundError(f"{experiment_dir}: no Tune trials found (not a Tune experiment?)")
    if meta is None:
        meta = SearchMeta(experiment=experiment_dir.resolve().name)
    evaluation = read_evaluation(results_dir)
    return write_tables(results_dir, records.values(), meta, evaluation, parts_through)
