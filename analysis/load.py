"""Load one or more results folders into pandas, with one-line errors for unusable input.

A results folder holds ``trials.parquet`` and ``iterations.parquet`` (see
``tune_grid.results.schema``) and may hold ``optuna.db`` and ``baselines.json``. The search's stop
condition comes from the trials file's ``tune_grid.stop`` metadata (files written before it carry
only ``tune_grid.max_iterations``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
import pandas as pd
import pyarrow as pa

from tune_grid.results.schema import (
    CONFIRM_FILE,
    ITERATIONS_FILE,
    MAX_ITERATIONS_KEY,
    PARAM_PREFIX,
    STOP_KEY,
    TRIALS_FILE,
    VALIDATION_METRIC_NAMES,
    ResultsSchemaError,
    read_results,
)

OPTUNA_DB_FILE = "optuna.db"
BASELINES_FILE = "baselines.json"
BASELINE_METRICS = ("daily_cost", "safety", "violation_hours")
MODES = ("max", "min")
# A numeric param with at most this many distinct values, one of them repeated, is treated as
# categorical (a choice such as num_epochs in [5, 10, 20]).
MAX_NUMERIC_LEVELS = 6


class AnalysisError(ResultsSchemaError):
    """Results cannot be analysed: a missing or unreadable file, another schema version, no trials.

    A ``ValueError`` (through ``ResultsSchemaError``); the message is one line and names the path.
    """


@dataclass(frozen=True)
class StopBound:
    """Where every trial would have ended without early stopping (the first bound reached).

    ``env_steps`` and ``iterations`` are None when the stop condition does not bound them (a
    time limit alone bounds neither); ``source`` says where the bound was read.
    """

    env_steps: float | None = None
    iterations: int | None = None
    source: str = "none"  # "stop" (tune_grid.stop), "max_iterations" (older files), "none"
    text: str = ""
    """The stop condition as written, e.g. ``env_steps=100000``."""


@dataclass
class Results:
    """Trials and iterations of every experiment loaded, plus per-experiment side files."""

    trials: pd.DataFrame
    iterations: pd.DataFrame
    experiments: list[str]
    source: dict[str, Path] = field(default_factory=dict)
    optuna_db: dict[str, Path] = field(default_factory=dict)
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    stop_bound: dict[str, StopBound] = field(default_factory=dict)
    study_name: dict[str, str] = field(default_factory=dict)  # the Optuna study in optuna.db

    def experiment_trials(self, experiment: str) -> pd.DataFrame:
        return self.trials[self.trials["experiment"] == experiment].reset_index(drop=True)

    def experiment_iterations(self, experiment: str) -> pd.DataFrame:
        return self.iterations[self.iterations["experiment"] == experiment].reset_index(drop=True)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _read(path: Path, kind: str) -> pa.Table:
    try:
        return read_results(path, kind)
    except ResultsSchemaError as exc:
        raise AnalysisError(_one_line(str(exc))) from None
    except (pa.ArrowException, OSError) as exc:
        raise AnalysisError(
            f"{path}: not a readable Parquet file ({_one_line(str(exc))})"
        ) from None


def _is_limit(value: Any) -> TypeGuard[float]:
    return _is_number(value) and math.isfinite(value) and value > 0


def stop_bound(table: pa.Table, path: Path) -> StopBound:
    """The stop bound in ``table``'s metadata: ``tune_grid.stop``, else the older
    ``tune_grid.max_iterations``, else none (callers fall back to what was observed)."""
    metadata = table.schema.metadata or {}
    raw = metadata.get(STOP_KEY)
    if raw is not None:
        try:
            stop = json.loads(raw.decode())
        except (UnicodeDecodeError, json.JSONDecodeError):
            stop = None
        if not isinstance(stop, dict) or not all(_is_number(v) for v in stop.values()):
            raise AnalysisError(
                f"{path}: metadata {STOP_KEY.decode()} is {raw!r}, expected a JSON object of "
                "stop keys to numbers"
            )
        env_steps = stop.get("env_steps")
        iterations = stop.get("training_iteration", stop.get("iteration"))
        text = ", ".join(f"{k}={_number_text(v)}" for k, v in sorted(stop.items()))
        if _is_limit(env_steps) or _is_limit(iterations):
            return StopBound(
                env_steps=float(env_steps) if _is_limit(env_steps) else None,
                iterations=math.ceil(iterations) if _is_limit(iterations) else None,
                source="stop",
                text=text,
            )
        return StopBound(text=text)
    raw = metadata.get(MAX_ITERATIONS_KEY)
    if raw is None:
        return StopBound()
    try:
        value = int(raw.decode())
    except ValueError:
        raise AnalysisError(
            f"{path}: metadata {MAX_ITERATIONS_KEY.decode()} is {raw!r}, expected an integer"
        ) from None
    if value <= 0:
        return StopBound()
    return StopBound(iterations=value, source="max_iterations", text=f"training_iteration={value}")


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def read_baselines(path: Path) -> dict[str, Any]:
    """Parse and check ``baselines.json``: ``{"split", "days", "policies": {name: {...}}}``."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise AnalysisError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AnalysisError(f"{path}: not valid JSON ({_one_line(str(exc))})") from None
    policies = data.get("policies") if isinstance(data, dict) else None
    if not isinstance(policies, dict) or not policies:
        raise AnalysisError(f"{path}: expected an object with a non-empty 'policies' object")
    clean: dict[str, dict[str, float]] = {}
    for name, values in policies.items():
        if not isinstance(values, dict) or not _is_number(values.get("daily_cost")):
            raise AnalysisError(f"{path}: policy {name!r} lacks a numeric 'daily_cost'")
        clean[str(name)] = {
            key: float(values[key]) if _is_number(values.get(key)) else math.nan
            for key in BASELINE_METRICS
        }
    days = data.get("days")
    return {
        "split": str(data.get("split", "")),
        "days": int(days) if _is_number(days) else None,
        "policies": clean,
    }


def read_answer(directory: Path) -> dict[str, Any] | None:
    """The confirmed answer of a search (``answer.json``), None when it had no confirmation."""
    from tune_grid.search.answer.summary import ANSWER_FILE

    path = Path(directory) / ANSWER_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AnalysisError(f"{path}: unreadable ({_one_line(str(exc))})") from None
    required = ("experiment", "split", "recommended", "test_cost", "baselines", "alternatives")
    missing = [k for k in required if not isinstance(data, dict) or k not in data]
    if missing:
        raise AnalysisError(f"{path}: not a tune-grid answer (missing {', '.join(missing)})")
    return data


def read_confirm(directory: Path) -> pd.DataFrame | None:
    """``confirm.parquet`` (one row per confirmed run), None when absent."""
    path = Path(directory) / CONFIRM_FILE
    if not path.exists():
        return None
    return read_results(path, "confirm").to_pandas()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def load_results(results_dirs: list[Path] | list[str]) -> Results:
    """Read every folder; experiments keep their names unless two folders share one."""
    if not results_dirs:
        raise AnalysisError("no results directory given")
    trial_frames: list[pd.DataFrame] = []
    iteration_frames: list[pd.DataFrame] = []
    results = Results(trials=pd.DataFrame(), iterations=pd.DataFrame(), experiments=[])
    for raw_dir in results_dirs:
        directory = Path(raw_dir)
        if not directory.is_dir():
            raise AnalysisError(f"{directory}: no such results directory")
        trials_path = directory / TRIALS_FILE
        trials_table = _read(trials_path, "trials")
        iterations_table = _read(directory / ITERATIONS_FILE, "iterations")
        trials = trials_table.to_pandas()
        if "test_mpc_gap" not in trials:  # written before the MPC baseline existed
            trials["test_mpc_gap"] = float("nan")
        iterations = iterations_table.to_pandas()
        if len(trials) == 0:
            raise AnalysisError(f"{trials_path}: no trials (empty experiment)")
        if trials["experiment"].isna().any() or (trials["experiment"] == "").any():
            raise AnalysisError(f"{trials_path}: trials without an experiment name")
        bound = stop_bound(trials_table, trials_path)
        baselines = None
        if (directory / BASELINES_FILE).exists():
            baselines = read_baselines(directory / BASELINES_FILE)
        renames: dict[str, str] = {}
        for name in pd.unique(trials["experiment"]):
            new_name = name
            if name in results.source:  # the same experiment name in two folders
                new_name = f"{name}@{directory.name or directory}"
                suffix = 2
                while new_name in results.source:
                    new_name = f"{name}@{directory.name}#{suffix}"
                    suffix += 1
                renames[name] = new_name
            results.experiments.append(new_name)
            results.source[new_name] = directory
            results.study_name[new_name] = name
            results.stop_bound[new_name] = bound
            if (directory / OPTUNA_DB_FILE).exists():
                results.optuna_db[new_name] = directory / OPTUNA_DB_FILE
            if baselines is not None:
                results.baselines[new_name] = baselines
        if renames:
            trials["experiment"] = trials["experiment"].replace(renames)
            iterations["experiment"] = iterations["experiment"].replace(renames)
        trial_frames.append(trials)
        iteration_frames.append(iterations)
    results.trials = pd.concat(trial_frames, ignore_index=True, sort=False)
    results.iterations = pd.concat(iteration_frames, ignore_index=True, sort=False)
    for name in results.experiments:  # fail early on a bad mode
        try:
            experiment_mode(results.experiment_trials(name), name)
        except AnalysisError as exc:
            raise AnalysisError(f"{results.source[name] / TRIALS_FILE}: {exc}") from None
    return results


def experiment_mode(trials: pd.DataFrame, experiment: str) -> str:
    """The search mode ('max' or 'min') shared by an experiment's trials."""
    modes = set(trials["mode"].dropna().unique())
    if len(modes) != 1 or not modes <= set(MODES):
        raise AnalysisError(
            f"experiment {experiment!r}: expected one mode of {MODES}, got {sorted(modes)}"
        )
    return modes.pop()


def experiment_metric(trials: pd.DataFrame) -> str:
    metrics = sorted(str(m) for m in trials["metric"].dropna().unique())
    return ", ".join(metrics) if metrics else "objective"


def is_validation_metric(metric: str) -> bool:
    """Whether ``metric`` is measured by validating the greedy policy (``val_*``), so its value on
    an iteration row is the latest validation's, measured at that row's ``val_env_steps``."""
    return metric in VALIDATION_METRIC_NAMES


def better_word(mode: str) -> str:
    """'higher' for mode max, 'lower' for mode min."""
    return "higher" if mode == "max" else "lower"


def param_columns(trials: pd.DataFrame) -> list[str]:
    """``param_*`` columns that are not entirely null."""
    return [c for c in trials.columns if c.startswith(PARAM_PREFIX) and trials[c].notna().any()]


def _distinct(series: pd.Series) -> int:
    return int(series.map(value_label).nunique())


def varying_params(trials: pd.DataFrame) -> list[str]:
    return [c for c in param_columns(trials) if _distinct(trials[c]) > 1]


def is_categorical(series: pd.Series) -> bool:
    """Strings and bools always; numbers when they take few distinct values (a choice)."""
    values = series.dropna()
    if values.empty:
        return False
    if pd.api.types.is_bool_dtype(values) or values.map(lambda v: isinstance(v, bool)).all():
        return True
    if pd.api.types.is_numeric_dtype(values):
        # a choice: few levels, and some level repeats (a continuous draw rarely does)
        levels = _distinct(values)
        return levels <= MAX_NUMERIC_LEVELS and levels < len(values)
    return True


def categorical_params(trials: pd.DataFrame) -> list[str]:
    return [c for c in varying_params(trials) if is_categorical(trials[c])]


def short_name(column: str) -> str:
    return column[len(PARAM_PREFIX) :] if column.startswith(PARAM_PREFIX) else column


def value_label(value: Any) -> str:
    """A stable text label for a parameter value (also used to group trials)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "none"
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        return str(int(number)) if number.is_integer() and abs(number) < 1e15 else f"{number:.6g}"
    if isinstance(value, np.integer):
        return str(int(value))
    if isinstance(value, list | tuple | np.ndarray):
        return "x".join(value_label(v) for v in value)
    return str(value)


def seed_values(row: pd.Series, list_column: str, scalar_column: str) -> np.ndarray:
    """Finite per-seed values of a trial; the scalar mean stands in when the list is empty."""
    raw = row.get(list_column)
    values = np.asarray([] if raw is None else raw, dtype=float).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        scalar = row.get(scalar_column)
        if scalar is not None and np.isfinite(scalar):
            values = np.asarray([float(scalar)])
    return values
