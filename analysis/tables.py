"""Tables: leaderboards, factor statistics, probability of improvement, test day vs. baselines.

Every function returns a pandas DataFrame; :func:`write_table` saves it as CSV and Markdown.
The *search objective* is the trial's ``metric`` (``val_objective`` by default), ordered by its
``mode``. Leaderboards and the baseline table's honest pick rank trials by ``best_objective``, the
trial's best reported value: its best checkpoint, the one the held-out evaluation tests and the
search hands out. Factor tables compare trials at equal budget instead: each trial's objective at
the scope's comparison budget (:mod:`analysis.budget`), never its best over a run of its own
length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.budget import at_budget, budget_counts, measured_by
from analysis.load import (
    Results,
    better_word,
    categorical_params,
    experiment_metric,
    experiment_mode,
    param_columns,
    seed_values,
    short_name,
    value_label,
    varying_params,
)
from tune_grid.stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    probability_of_improvement,
    summarize,
)

ALL_EXPERIMENTS = "(all)"
CROSS_FACTOR = ("param_policy_sharing", "param_share_reward")
LAYOUT_FACTOR = ("param_policy_sharing", "param_critic")
"""policy_sharing x critic, shown as one factor named ``layout``."""
LAYOUT = "layout"
LAYOUT_LABELS = {
    ("shared", "centralized"): "MAPPO (shared+centralized)",
    ("independent", "centralized"): "unshared MAPPO (independent+centralized)",
    ("shared", "local"): "shared PPO (shared+local)",
    ("independent", "local"): "IPPO (independent+local)",
}
"""Group labels of the layout factor; other value pairs read ``<sharing>+<critic>``."""
# metric name -> (per-seed list column, scalar column); the objective is read at the budget
FACTOR_METRICS = {
    "objective": ("objective_at_budget_per_seed", "objective_at_budget"),
    "test_daily_cost": ("test_daily_cost_per_seed", "test_daily_cost"),
}
LEADERBOARD_COLUMNS = [
    "experiment",
    "rank",
    "trial_id",
    "test_daily_cost",  # what a reader needs first: the test cost, its gap, their intervals
    "test_daily_cost_low",
    "test_daily_cost_high",
    "test_optimality_gap",
    "test_optimality_gap_low",
    "test_optimality_gap_high",
    "test_mpc_gap",
    "best_objective",
    "best_env_steps",
    "status",
    "stopped_early",
    "iterations",
    "env_steps",
    "metric",
    "mode",
    "last_objective",
    "objective_at_budget",
    "budget_env_steps",
    "test_safety",
    "test_violation_hours",
]
FACTOR_COLUMNS = [
    "experiment",
    "factor",
    "group",
    "metric",
    "better",
    "budget_env_steps",
    "n_trials",
    "n_stopped_early",
    "n_values",
    "mean",
    "mean_ci_low",
    "mean_ci_high",
    "iqm",
    "iqm_ci_low",
    "iqm_ci_high",
]
IMPROVEMENT_COLUMNS = [
    "experiment",
    "factor",
    "metric",
    "budget_env_steps",
    "group_x",
    "group_y",
    "p_x_beats_y",
    "n_x",
    "n_y",
]
BASELINE_COLUMNS = [
    "experiment",
    "policy",
    "kind",
    "trial_id",
    "days",
    "daily_cost",
    "safety",
    "violation_hours",
    "optimality_gap",
    "mpc_gap",
    "delta_vs_do_nothing",
    "trials_beating",
]
BUDGET_COLUMNS = [
    "experiment",
    "metric",
    "mode",
    "measured_by",
    "budget_env_steps",
    "trials",
    "compared",
    "stopped_early",
    "not_reached",
    "no_value",
    "measured_env_steps_min",
    "measured_env_steps_max",
]


# --------------------------------------------------------------------------------------------
# Leaderboards


def leaderboard(
    results: Results, by: str = "objective", top: int | None = None, params: str = "all"
) -> pd.DataFrame:
    """Trials ranked per experiment by the search objective (``by="objective"``: the trial's
    ``best_objective`` in its mode, ties by ``last_objective``) or by ``test_daily_cost`` (lower is
    better; unevaluated trials left out). Every row also says whether the scheduler stopped the
    trial early and its objective at the experiment's comparison budget.

    ``params="varying"`` keeps only the ``param_*`` columns that vary within the experiment.
    """
    if by not in ("objective", "test_daily_cost"):
        raise ValueError(f"by must be 'objective' or 'test_daily_cost', got {by!r}")
    frames = []
    for name in results.experiments:
        trials = at_budget(results.experiment_trials(name), results.experiment_iterations(name))
        objective_ascending = experiment_mode(trials, name) == "min"
        if by == "objective":
            keys = ["best_objective", "last_objective"]
            ascending = [objective_ascending, objective_ascending]
        else:
            keys, ascending = ["test_daily_cost", "best_objective"], [True, objective_ascending]
        ranked = trials[np.isfinite(trials[keys[0]].astype(float))]
        ranked = ranked.sort_values([*keys, "trial_id"], ascending=[*ascending, True])
        if top is not None:
            ranked = ranked.head(top)
        ranked = ranked.assign(rank=np.arange(1, len(ranked) + 1))
        keep = varying_params(trials) if params == "varying" else param_columns(trials)
        frames.append(ranked.reindex(columns=LEADERBOARD_COLUMNS + keep))
    frame = pd.concat(frames, ignore_index=True, sort=False) if frames else pd.DataFrame()
    params_order = [c for c in frame.columns if c not in LEADERBOARD_COLUMNS]
    return frame.reindex(columns=LEADERBOARD_COLUMNS + params_order)


# --------------------------------------------------------------------------------------------
# Factor tables


def factor_definitions(trials: pd.DataFrame) -> list[tuple[str, ...]]:
    """The layout (policy_sharing x critic) and policy_sharing x share_reward where both of
    their params vary, then every categorical param on its own.

    Over several experiments, only params that every experiment records are considered.
    """
    categorical = categorical_params(trials)
    for _, part in trials.groupby("experiment"):
        categorical = [c for c in categorical if part[c].notna().any()]
    factors: list[tuple[str, ...]] = []
    for cross in (LAYOUT_FACTOR, CROSS_FACTOR):
        if all(c in categorical for c in cross):
            factors.append(cross)
    factors.extend((c,) for c in categorical)
    return factors


def factor_name(factor: Sequence[str]) -> str:
    if tuple(factor) == LAYOUT_FACTOR:
        return LAYOUT
    return " x ".join(short_name(c) for c in factor)


def layout_label(sharing: Any, critic: Any) -> str:
    """A layout's group label (:data:`LAYOUT_LABELS`)."""
    pair = (value_label(sharing), value_label(critic))
    return LAYOUT_LABELS.get(pair, "+".join(pair))


def group_labels(trials: pd.DataFrame, factor: Sequence[str]) -> pd.Series:
    """Each trial's group: the value label, the layout's name, or ``name=value, ...`` for
    several params."""
    if tuple(factor) == LAYOUT_FACTOR:
        return pd.Series(
            [layout_label(s, c) for s, c in zip(trials[factor[0]], trials[factor[1]], strict=True)],
            index=trials.index,
        )
    if len(factor) == 1:
        return trials[factor[0]].map(value_label)
    parts = [trials[c].map(lambda v, c=c: f"{short_name(c)}={value_label(v)}") for c in factor]
    labels = parts[0]
    for part in parts[1:]:
        labels = labels + ", " + part
    return labels


@dataclass(frozen=True)
class _Scope:
    """Trials compared together: one experiment, or all of them pooled."""

    name: str
    trials: pd.DataFrame
    """With their values at the scope's budget (:func:`analysis.budget.at_budget`)."""
    iterations: pd.DataFrame
    poolable: dict[str, bool]
    """Which factor metrics may be compared in this scope."""


def _scopes(results: Results) -> list[_Scope]:
    """One scope per experiment, plus the pooled one (one budget over all trials)."""
    scopes = []
    for name in results.experiments:
        iterations = results.experiment_iterations(name)
        trials = at_budget(results.experiment_trials(name), iterations)
        scopes.append(_Scope(name, trials, iterations, {m: True for m in FACTOR_METRICS}))
    if len(results.experiments) > 1:
        trials = at_budget(results.trials, results.iterations)
        same_objective = trials[["metric", "mode"]].drop_duplicates().shape[0] == 1
        poolable = {"objective": same_objective, "test_daily_cost": True}
        scopes.append(_Scope(ALL_EXPERIMENTS, trials, results.iterations, poolable))
    return scopes


def _better(trials: pd.DataFrame, metric: str) -> str:
    if metric != "objective":
        return "lower"
    return better_word(experiment_mode(trials, str(trials["experiment"].iloc[0])))


def _budget(trials: pd.DataFrame, metric: str) -> int | None:
    """The env steps a factor metric is compared at (None: each trial's best checkpoint)."""
    if metric != "objective" or trials.empty or pd.isna(trials["budget_env_steps"].iloc[0]):
        return None
    return int(trials["budget_env_steps"].iloc[0])


def factor_tables(
    results: Results,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(group statistics, pairwise probability of improvement) for every factor and metric.

    ``objective`` rows compare every trial at the scope's comparison budget
    (``budget_env_steps``, :mod:`analysis.budget`); trials that did not reach it are left out.
    ``test_daily_cost`` rows are the held-out cost of each evaluated trial's best checkpoint.
    Values are seed-level (the per-seed list columns exploded). Within one experiment the CI is
    the two-stage bootstrap over the group's trials and their seeds; the pooled ``(all)`` scope
    stratifies by experiment, and its probability of improvement is the mean of the
    per-experiment probabilities (as rliable averages over tasks).
    """
    factor_rows: list[dict[str, Any]] = []
    improvement_rows: list[dict[str, Any]] = []
    counter = 0
    for scope in _scopes(results):
        trials, poolable = scope.trials, scope.poolable
        metric_values = {
            metric: [seed_values(row, *columns) for _, row in trials.iterrows()]
            for metric, columns in FACTOR_METRICS.items()
            if poolable[metric]
        }
        stopped = trials["stopped_early"].fillna(False).astype(bool).to_numpy()
        for factor in factor_definitions(trials):
            labels = group_labels(trials, factor)
            for metric, values in metric_values.items():
                if not any(v.size for v in values):
                    continue
                better = _better(trials, metric)
                budget = _budget(trials, metric)
                groups = sorted(pd.unique(labels))
                by_group: dict[str, list[int]] = {
                    g: [i for i in range(len(trials)) if labels.iloc[i] == g] for g in groups
                }
                for group in groups:
                    rows = by_group[group]
                    clusters = [values[i] for i in rows]
                    strata = [trials["experiment"].iloc[i] for i in rows]
                    summary = summarize(
                        clusters,
                        strata,
                        n_resamples=n_resamples,
                        confidence=confidence,
                        seed=seed + counter,
                    )
                    counter += 1
                    if summary.n_values == 0:
                        continue
                    factor_rows.append(
                        {
                            "experiment": scope.name,
                            "factor": factor_name(factor),
                            "group": group,
                            "metric": metric,
                            "better": better,
                            "budget_env_steps": budget,
                            "n_trials": sum(1 for c in clusters if c.size),
                            "n_stopped_early": sum(
                                1 for i in rows if values[i].size and stopped[i]
                            ),
                            "n_values": summary.n_values,
                            "mean": summary.mean,
                            "mean_ci_low": summary.mean_low,
                            "mean_ci_high": summary.mean_high,
                            "iqm": summary.iqm,
                            "iqm_ci_low": summary.iqm_low,
                            "iqm_ci_high": summary.iqm_high,
                        }
                    )
                improvement_rows.extend(
                    _improvements(
                        scope.name, factor, metric, better, budget, trials, by_group, values
                    )
                )
    return (
        pd.DataFrame(factor_rows, columns=FACTOR_COLUMNS),
        pd.DataFrame(improvement_rows, columns=IMPROVEMENT_COLUMNS),
    )


def budget_table(results: Results) -> pd.DataFrame:
    """Per scope: the comparison budget of the factor tables and how many trials it compares.

    ``not_reached``: trials that never got to the budget (errored, still running, no rows);
    ``no_value``: trials that reached it with a non-finite objective; ``stopped_early``: compared
    trials the scheduler stopped; ``measured_env_steps_*``: the steps the compared values were
    measured at (a validation metric's latest validation by then).
    """
    rows = []
    for scope in _scopes(results):
        if not scope.poolable["objective"]:
            continue
        trials = scope.trials
        counts = budget_counts(trials, scope.iterations)
        measured = trials["measured_env_steps"].astype(float)
        measured = measured[np.isfinite(trials["objective_at_budget"].astype(float))]
        metric = experiment_metric(trials)
        rows.append(
            {
                "experiment": scope.name,
                "metric": metric,
                "mode": experiment_mode(trials, scope.name),
                "measured_by": measured_by(metric),
                "budget_env_steps": _budget(trials, "objective"),
                "trials": counts.trials,
                "compared": counts.compared,
                "stopped_early": counts.stopped_early,
                "not_reached": counts.not_reached,
                "no_value": counts.no_value,
                "measured_env_steps_min": int(measured.min()) if measured.notna().any() else None,
                "measured_env_steps_max": int(measured.max()) if measured.notna().any() else None,
            }
        )
    return pd.DataFrame(rows, columns=BUDGET_COLUMNS)


def _improvements(
    scope: str,
    factor: Sequence[str],
    metric: str,
    better: str,
    budget: int | None,
    trials: pd.DataFrame,
    by_group: dict[str, list[int]],
    values: list[np.ndarray],
) -> list[dict[str, Any]]:
    rows = []
    groups = list(by_group)
    experiments = trials["experiment"].to_numpy()

    def pooled(group: str, experiment: str | None = None) -> np.ndarray:
        parts = [
            values[i] for i in by_group[group] if experiment is None or experiments[i] == experiment
        ]
        return np.concatenate(parts) if parts else np.array([])

    for i, x in enumerate(groups):
        for y in groups[i + 1 :]:
            per_stratum = []
            for experiment in pd.unique(experiments):
                p = probability_of_improvement(
                    pooled(x, experiment),
                    pooled(y, experiment),
                    higher_is_better=better == "higher",
                )
                if math.isfinite(p):
                    per_stratum.append(p)
            if not per_stratum:
                continue
            rows.append(
                {
                    "experiment": scope,
                    "factor": factor_name(factor),
                    "metric": metric,
                    "budget_env_steps": budget,
                    "group_x": x,
                    "group_y": y,
                    "p_x_beats_y": float(np.mean(per_stratum)),
                    "n_x": int(pooled(x).size),
                    "n_y": int(pooled(y).size),
                }
            )
    return rows


# --------------------------------------------------------------------------------------------
# Test day vs. baselines


def baseline_table(results: Results) -> pd.DataFrame:
    """Per experiment: each baseline policy, then trials on the test days.

    Trial rows: the trial with the best search objective (``best_objective``, as the search ranks
    its trials) among the evaluated ones (the honest pick: it is chosen without the test days),
    the best on the test days (optimistic) and the median over evaluated trials.
    ``daily_cost_low``/``_high``: its 95 % interval over the test days (NaN for a median row
    and for files written before intervals existed). ``delta_vs_do_nothing`` is cost minus the
    do-nothing policy's cost (negative is better);
    ``trials_beating`` is the fraction of evaluated trials cheaper than that baseline.
    """
    rows: list[dict[str, Any]] = []
    for name in results.experiments:
        trials = results.experiment_trials(name)
        evaluated = trials[np.isfinite(trials["test_daily_cost"].astype(float))]
        baselines = results.baselines.get(name)
        if baselines is None and evaluated.empty:
            continue
        policies = baselines["policies"] if baselines else {}
        reference = policies.get("do_nothing", {}).get("daily_cost", math.nan)
        costs = evaluated["test_daily_cost"].astype(float).to_numpy()
        for policy, values in policies.items():
            rows.append(
                {
                    "experiment": name,
                    "policy": policy,
                    "kind": "baseline",
                    "trial_id": "",
                    "days": baselines["days"] if baselines else None,
                    "daily_cost": values["daily_cost"],
                    "daily_cost_low": values.get("daily_cost_low", math.nan),
                    "daily_cost_high": values.get("daily_cost_high", math.nan),
                    "safety": values["safety"],
                    "violation_hours": values["violation_hours"],
                    "optimality_gap": math.nan,
                    "mpc_gap": math.nan,
                    "delta_vs_do_nothing": values["daily_cost"] - reference,
                    "trials_beating": float(np.mean(costs < values["daily_cost"]))
                    if costs.size
                    else math.nan,
                }
            )
        if evaluated.empty:
            continue
        mode = experiment_mode(trials, name)
        picks = [
            ("selected by objective", _pick(evaluated, "best_objective", mode == "min")),
            ("best on test", _pick(evaluated, "test_daily_cost", True)),
        ]
        for label, row in picks:
            rows.append(_trial_row(name, label, row, reference))
        rows.append(
            {
                "experiment": name,
                "policy": f"median of {len(evaluated)} trials",
                "kind": "trials",
                "trial_id": "",
                "days": _median_int(evaluated["test_days"]),
                "daily_cost": float(np.median(costs)),
                "daily_cost_low": math.nan,
                "daily_cost_high": math.nan,
                "safety": _nanmedian(evaluated["test_safety"]),
                "violation_hours": _nanmedian(evaluated["test_violation_hours"]),
                "optimality_gap": _nanmedian(evaluated["test_optimality_gap"]),
                "mpc_gap": _nanmedian(evaluated["test_mpc_gap"]),
                "delta_vs_do_nothing": float(np.median(costs)) - reference,
                "trials_beating": math.nan,
            }
        )
    return pd.DataFrame(rows, columns=BASELINE_COLUMNS)


def _pick(trials: pd.DataFrame, column: str, ascending: bool) -> pd.Series:
    ordered = trials.assign(_key=trials[column].astype(float)).sort_values(
        ["_key", "trial_id"], ascending=[ascending, True], na_position="last"
    )
    return ordered.iloc[0]


def _nanmedian(series: pd.Series) -> float:
    values = series.astype(float).to_numpy()
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else math.nan


def _median_int(series: pd.Series) -> int | None:
    value = _nanmedian(series)
    return int(value) if math.isfinite(value) else None


def _trial_row(experiment: str, label: str, row: pd.Series, reference: float) -> dict[str, Any]:
    days = row.get("test_days")
    return {
        "experiment": experiment,
        "policy": label,
        "kind": "trial",
        "trial_id": row["trial_id"],
        "days": int(days) if days is not None and np.isfinite(days) else None,
        "daily_cost": float(row["test_daily_cost"]),
        "daily_cost_low": float(row.get("test_daily_cost_low", math.nan)),
        "daily_cost_high": float(row.get("test_daily_cost_high", math.nan)),
        "safety": float(row["test_safety"]),
        "violation_hours": float(row["test_violation_hours"]),
        "optimality_gap": float(row["test_optimality_gap"]),
        "mpc_gap": float(row["test_mpc_gap"]),
        "delta_vs_do_nothing": float(row["test_daily_cost"]) - reference,
        "trials_beating": math.nan,
    }


# --------------------------------------------------------------------------------------------
# Output


def format_value(value: Any) -> str:
    """Compact text for tables: 4 significant digits, thousands kept whole; blank for NaN."""
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return ""
        if math.isinf(number):
            return "inf" if number > 0 else "-inf"
        if number.is_integer() and abs(number) < 1e6:
            return str(int(number))
        if abs(number) >= 1000:
            return f"{number:.1f}"
        return f"{number:.4g}"
    return str(value)


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (pipes escaped)."""
    header = [str(c) for c in frame.columns]
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    for record in frame.itertuples(index=False):
        cells = [format_value(v).replace("|", "\\|").replace("\n", " ") for v in record]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table(frame: pd.DataFrame, out_dir: Path, stem: str) -> list[Path]:
    """Write ``<stem>.csv`` (full precision) and ``<stem>.md``; returns both paths."""
    csv_path, md_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.md"
    frame.to_csv(csv_path, index=False)
    md_path.write_text(to_markdown(frame))
    return [csv_path, md_path]


def constant_params(trials: pd.DataFrame) -> dict[str, str]:
    """Params fixed across ``trials`` (name without prefix -> value label)."""
    varying = set(varying_params(trials))
    return {
        short_name(c): value_label(trials[c].dropna().iloc[0])
        for c in param_columns(trials)
        if c not in varying
    }


def summary_table(results: Results) -> pd.DataFrame:
    """One row per experiment: source, metric, mode, stop condition, trial counts by status."""
    rows = []
    for name in results.experiments:
        trials = results.experiment_trials(name)
        statuses = trials["status"].fillna("?").value_counts()
        rows.append(
            {
                "experiment": name,
                "results_dir": str(results.source[name]),
                "metric": experiment_metric(trials),
                "mode": experiment_mode(trials, name),
                "stop": results.stop_bound[name].text if name in results.stop_bound else "",
                "trials": len(trials),
                "status": ", ".join(f"{s} {n}" for s, n in statuses.items()),
                "stopped_early": int(trials["stopped_early"].fillna(False).astype(bool).sum()),
                "seeds_per_trial": _median_int(trials["seeds"].map(_length)),
                "evaluated_on_test": int(
                    np.isfinite(trials["test_daily_cost"].astype(float)).sum()
                ),
                "optuna_db": "yes" if name in results.optuna_db else "no",
                "baselines": "yes" if name in results.baselines else "no",
            }
        )
    return pd.DataFrame(rows)


def _length(value: Any) -> float:
    try:
        return float(len(value))
    except TypeError:
        return math.nan
