"""PNG figures, drawn with matplotlib's Agg canvas (no pyplot, no display, no global state)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from analysis.load import (
    better_word,
    experiment_metric,
    is_categorical,
    is_validation_metric,
    short_name,
    value_label,
    varying_params,
)
from analysis.tables import group_labels
from tune_grid.stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, curve_band

METRIC_LABELS = {
    "val_objective": "validation objective ($/day)",
    "val_daily_cost": "validation daily cost ($/day)",
    "val_safety": "validation safety (per day)",
    "val_violation_hours": "validation violation hours (per day)",
    "val_gap": "validation gap to the oracle",
    "episode_return_mean": "training episode return",
    "daily_cost_mean": "training daily cost ($/day)",
    "safety_mean": "training safety (per episode)",
    "violation_hours_mean": "training violation hours (per episode)",
}
SECOND_CURVES = ("val_daily_cost", "val_objective", "daily_cost_mean", "episode_return_mean")
"""The right-hand learning-curve panel: the first of these that is not the search metric and
has data."""
MAX_RUN_LENGTH_BARS = 12
MAX_GRID_POINTS = 80
MAX_PARALLEL_AXES = 16
DPI = 100
_MISSING = -0.12  # where a missing numeric value sits on a normalised axis


def slug(text: str) -> str:
    """A file-name-safe version of ``text``."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.")
    return cleaned[:80] or "x"


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=DPI, bbox_inches="tight")
    return path


# --------------------------------------------------------------------------------------------
# Learning curves


def metric_label(metric: str) -> str:
    """Axis text for a metric: what it measures, and its unit."""
    return METRIC_LABELS.get(metric, metric)


def _steps_column(column: str) -> str:
    """Where a column's values were measured: validations at ``val_env_steps``, the rest at the
    iteration's ``env_steps``."""
    return "val_env_steps" if is_validation_metric(column) else "env_steps"


def curve_panels(trials: pd.DataFrame, iterations: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(iterations column, steps column, axis label) of each learning-curve panel: the search
    objective, then the first of :data:`SECOND_CURVES` with data."""
    metric = experiment_metric(trials)
    mode = str(trials["mode"].dropna().iloc[0]) if trials["mode"].notna().any() else "max"
    panels = [
        (
            "objective",
            _steps_column(metric),
            f"{metric_label(metric)}, {better_word(mode)} is better",
        )
    ]
    for column in SECOND_CURVES:
        if column == metric or column not in iterations:
            continue
        if np.isfinite(iterations[column].astype(float)).any():
            panels.append((column, _steps_column(column), metric_label(column)))
            break
    return panels


def curve_points(rows: pd.DataFrame, column: str, steps_column: str) -> pd.DataFrame:
    """Measured points (``trial_id``, ``steps``, ``value``) of ``column`` in iteration ``rows``:
    one per trial and distinct ``steps_column`` value, so a validation carried on later rows
    counts once, at the steps it was measured at."""
    if steps_column not in rows or column not in rows:
        return pd.DataFrame(columns=["trial_id", "steps", "value"])
    steps = pd.to_numeric(rows[steps_column], errors="coerce").to_numpy(dtype=float)
    values = pd.to_numeric(rows[column], errors="coerce").to_numpy(dtype=float)
    keep = np.isfinite(steps) & np.isfinite(values)
    data = pd.DataFrame(
        {"trial_id": rows["trial_id"].to_numpy()[keep], "steps": steps[keep], "value": values[keep]}
    )
    return data.groupby(["trial_id", "steps"], as_index=False, sort=True)["value"].mean()


def _grid(points: list[pd.DataFrame]) -> np.ndarray:
    steps = np.unique(np.concatenate([p["steps"].to_numpy(dtype=float) for p in points]))
    if steps.size <= MAX_GRID_POINTS:
        return steps
    return np.linspace(steps.min(), steps.max(), MAX_GRID_POINTS)


def _trial_curve(points: pd.DataFrame, grid: np.ndarray) -> np.ndarray:
    """A trial's points interpolated on ``grid``; NaN outside the steps it measured."""
    curve = np.full(grid.size, np.nan)
    if points.empty:
        return curve
    x, y = points["steps"].to_numpy(dtype=float), points["value"].to_numpy(dtype=float)
    inside = (grid >= x[0]) & (grid <= x[-1])
    curve[inside] = np.interp(grid[inside], x, y)
    return curve


def learning_curves(
    trials: pd.DataFrame,
    iterations: pd.DataFrame,
    factor: Sequence[str] | None,
    title: str,
    path: Path,
    *,
    budget: int | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Path | None:
    """The search objective and a cost (:func:`curve_panels`) against env steps: one mean line
    and bootstrap band per group, the comparison ``budget`` as a dashed line.

    Each trial's curve joins its measured points (:func:`curve_points`: real validations for a
    validation metric); early-stopped trials leave the mean where their data ends, so late steps
    average the survivors. Returns None when there is no data to draw.
    """
    if iterations.empty or trials.empty:
        return None
    labels = group_labels(trials, factor) if factor else pd.Series("all trials", trials.index)
    panels = curve_panels(trials, iterations)
    figure = _figure(5.5 * len(panels), 4.2)
    axes = np.atleast_1d(figure.subplots(1, len(panels)))
    colors = colormaps["tab10"]
    drawn = False
    for ax, (column, steps_column, label) in zip(axes, panels, strict=True):
        groups = sorted(pd.unique(labels))
        by_trial = dict(tuple(curve_points(iterations, column, steps_column).groupby("trial_id")))
        points = {
            group: [by_trial[t] for t in trials.loc[labels == group, "trial_id"] if t in by_trial]
            for group in groups
        }
        measured = [p for ps in points.values() for p in ps]
        if not measured:
            continue
        grid = _grid(measured)
        for index, group in enumerate(groups):
            curves = [_trial_curve(p, grid) for p in points[group]]
            curves = [c for c in curves if np.isfinite(c).any()]
            if not curves:
                continue
            mean, low, high = curve_band(
                np.vstack(curves), n_resamples=n_resamples, confidence=confidence, seed=seed + index
            )
            color = colors(index % 10)
            marker = "o" if grid.size == 1 else None
            ax.plot(grid, mean, color=color, marker=marker, label=f"{group} (n={len(curves)})")
            ax.fill_between(grid, low, high, color=color, alpha=0.2, linewidth=0)
            drawn = True
        if budget is not None:
            ax.axvline(budget, color="black", linestyle="--", linewidth=0.8, label="budget")
        x_label = "env steps" + (" (at validation)" if steps_column == "val_env_steps" else "")
        ax.set_xlabel(x_label)
        ax.xaxis.set_major_formatter(EngFormatter())
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    if not drawn:
        return None
    axes[0].legend(fontsize=8, loc="best")
    budget_text = f"; dashed: comparison budget {budget:,} env steps" if budget is not None else ""
    figure.suptitle(
        f"{title}: mean and {confidence:.0%} bootstrap band over trials{budget_text}", fontsize=10
    )
    return _save(figure, path)


# --------------------------------------------------------------------------------------------
# Importance


def importance_bars(frame: pd.DataFrame, title: str, path: Path) -> Path | None:
    """Grouped horizontal bars of normalised importance (``share``) per method and target."""
    if frame.empty:
        return None
    frame = frame.assign(series=frame["method"] + " / " + frame["target"])
    series = list(dict.fromkeys(frame["series"]))
    order = (
        frame.groupby("param")["share"].max().fillna(0.0).sort_values(ascending=True).index.tolist()
    )
    height = max(2.5, 0.35 * len(order) * max(1, len(series)) ** 0.5 + 1.2)
    figure = _figure(8, height)
    ax = figure.subplots()
    width = 0.8 / len(series)
    colors = colormaps["tab10"]
    positions = np.arange(len(order))
    for index, name in enumerate(series):
        values = frame[frame["series"] == name].set_index("param")["share"]
        values = values.reindex(order).fillna(0.0).to_numpy()
        ax.barh(
            positions + (index - (len(series) - 1) / 2) * width,
            values,
            height=width,
            color=colors(index % 10),
            label=name,
        )
    ax.set_yticks(positions, order)
    ax.set_xlabel("normalised importance")
    ax.set_xlim(0, 1)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title)
    return _save(figure, path)


def parallel_coordinates(trials: pd.DataFrame, title: str, path: Path) -> Path | None:
    """One line per trial across the varying params and its objective at the comparison budget
    (``trials`` from :func:`analysis.budget.at_budget`), on normalised axes.

    Numbers are min-max scaled (log10 first when positive and spanning two decades or more);
    categories are evenly spaced. Lines are colored by the objective (yellow = best, whatever the
    mode) and the best are drawn on top; trials without a value at the budget are grey. None when
    no param varies.
    """
    params = varying_params(trials)[:MAX_PARALLEL_AXES]
    if not params:
        return None
    objective = trials["objective_at_budget"].astype(float).to_numpy()
    columns = [*params, "objective_at_budget"]
    positions = np.zeros((len(trials), len(columns)))
    ticks: list[tuple[list[float], list[str]]] = []
    for j, column in enumerate(columns):
        series = trials[column]
        if column != "objective_at_budget" and is_categorical(series):
            labels = series.map(value_label)
            categories = sorted(pd.unique(labels), key=_category_key)
            spacing = {
                c: (i / (len(categories) - 1) if len(categories) > 1 else 0.5)
                for i, c in enumerate(categories)
            }
            positions[:, j] = labels.map(spacing).to_numpy()
            ticks.append((list(spacing.values()), list(spacing.keys())))
        else:
            positions[:, j], tick = _numeric_axis(pd.to_numeric(series, errors="coerce"))
            ticks.append(tick)
    finite = np.isfinite(objective)
    norm = Normalize(
        vmin=float(objective[finite].min()) if finite.any() else 0.0,
        vmax=float(objective[finite].max()) if finite.any() else 1.0,
    )
    mode = str(trials["mode"].dropna().iloc[0]) if trials["mode"].notna().any() else "max"
    cmap = colormaps["viridis" if mode == "max" else "viridis_r"]  # yellow is best
    figure = _figure(max(6.0, 1.3 * len(columns) + 2), 4.5)
    ax = figure.subplots()
    x = np.arange(len(columns))
    order = np.argsort(np.where(finite, objective, -np.inf if mode == "max" else np.inf))
    if mode == "min":
        order = order[::-1]  # draw the best last, on top
    for i in order:
        color = cmap(norm(objective[i])) if finite[i] else (0.6, 0.6, 0.6, 0.6)
        ax.plot(x, positions[i], color=color, alpha=0.8, linewidth=1.2)
    for j, (tick_positions, tick_labels) in enumerate(ticks):
        ax.axvline(j, color="black", linewidth=0.8)
        for position, text in zip(tick_positions, tick_labels, strict=True):
            ax.text(j + 0.03, position, text, fontsize=7, va="center", ha="left")
    budget = trials["budget_env_steps"].iloc[0]
    at = f" at {int(budget):,} env steps" if pd.notna(budget) else ""
    ax.set_xticks(
        x, [short_name(c) if c != "objective_at_budget" else "objective" for c in columns]
    )
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.set_yticks([])
    ax.set_ylim(_MISSING - 0.05, 1.05)
    ax.set_xlim(-0.2, len(columns) - 0.5)
    label = f"{experiment_metric(trials)}{at} ({better_word(mode)} is better)"
    figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=label)
    ax.set_title(title)
    return _save(figure, path)


def _category_key(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def _numeric_axis(values: pd.Series) -> tuple[np.ndarray, tuple[list[float], list[str]]]:
    data = values.to_numpy(dtype=float)
    finite = np.isfinite(data)
    positions = np.full(data.size, _MISSING)
    if not finite.any():
        return positions, ([_MISSING], ["none"])
    low, high = float(data[finite].min()), float(data[finite].max())
    use_log = low > 0 and high / low >= 100
    scaled = np.log10(np.where(finite, data, 1.0)) if use_log else data
    s_low, s_high = (math.log10(low), math.log10(high)) if use_log else (low, high)
    span = s_high - s_low
    positions[finite] = (scaled[finite] - s_low) / span if span > 0 else 0.5
    tick_positions = [0.0, 1.0] if span > 0 else [0.5]
    tick_labels = [f"{low:.3g}", f"{high:.3g}"] if span > 0 else [f"{low:.3g}"]
    if use_log:
        tick_labels = [f"{t} (log)" for t in tick_labels]
    if not finite.all():
        tick_positions.append(_MISSING)
        tick_labels.append("none")
    return positions, (tick_positions, tick_labels)


# --------------------------------------------------------------------------------------------
# Early stopping


def _run_length_bars(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Bar index per trial and bar labels: one bar per run length, or equal-width bins of them
    when there are more than :data:`MAX_RUN_LENGTH_BARS` (env-step rungs overshoot by a batch)."""
    levels = np.unique(values)
    if levels.size <= MAX_RUN_LENGTH_BARS:
        return np.searchsorted(levels, values), [f"{int(v):,}" for v in levels]
    edges = np.linspace(levels[0], levels[-1], MAX_RUN_LENGTH_BARS + 1)
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, MAX_RUN_LENGTH_BARS - 1)
    labels = [f"{int(a):,}-{int(b):,}" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return index, labels


def early_stopping_plot(
    trials: pd.DataFrame, compute: dict, unit: str, title: str, path: Path
) -> Path | None:
    """Left: trials per run length in ``unit`` (env steps or iterations), stopped early or not.
    Right: env steps and iterations run, as a fraction of every stopped trial run to the bound."""
    lengths = trials[unit].fillna(0).astype(float).to_numpy()
    stopped = trials["stopped_early"].fillna(False).astype(bool).to_numpy()
    bars, labels = _run_length_bars(lengths)
    figure = _figure(11, 4)
    left, right = figure.subplots(1, 2)
    x = np.arange(len(labels))
    stopped_counts = [int(((bars == i) & stopped).sum()) for i in x]
    other_counts = [int(((bars == i) & ~stopped).sum()) for i in x]
    left.bar(x, stopped_counts, color="tab:red", label="stopped early (rung)")
    left.bar(x, other_counts, bottom=stopped_counts, color="tab:blue", label="not stopped")
    left.set_xticks(x, labels)
    left.tick_params(axis="x", labelsize=8, labelrotation=20 if len(labels) > 6 else 0)
    left.set_xlabel(f"{unit.replace('_', ' ')} run")
    left.set_ylabel("trials")
    left.legend(fontsize=8)
    left.grid(axis="y", alpha=0.3)
    kinds = ["env_steps", "iterations"]
    run = [compute[f"{k}_run"] / compute[f"{k}_full"] if compute[f"{k}_full"] else 0 for k in kinds]
    right.bar(
        np.arange(2) - 0.2, [1.0, 1.0], width=0.4, color="lightgray", label="all to the bound"
    )
    right.bar(np.arange(2) + 0.2, run, width=0.4, color="tab:green", label="actually run")
    for i, kind in enumerate(kinds):
        right.text(
            i + 0.2, run[i], f"-{compute[f'{kind}_saved_frac']:.0%}", ha="center", va="bottom"
        )
    right.set_xticks(np.arange(2), [k.replace("_", " ") for k in kinds])
    bound = compute["stop"] if compute["bound_source"] != "observed" else "the most observed"
    right.set_ylabel(f"fraction of running to {bound}", fontsize=9)
    right.set_ylim(0, 1.15)
    right.legend(fontsize=8, loc="lower right")
    figure.suptitle(title)
    return _save(figure, path)


# --------------------------------------------------------------------------------------------
# Test day vs. baselines


def baselines_plot(frame: pd.DataFrame, title: str, path: Path) -> Path | None:
    """Bars of test-day daily cost: baselines grey, trials colored."""
    frame = frame[np.isfinite(frame["daily_cost"].astype(float))]
    if frame.empty:
        return None
    figure = _figure(max(6.0, 0.9 * len(frame) + 2), 4)
    ax = figure.subplots()
    colors = ["tab:gray" if kind == "baseline" else "tab:blue" for kind in frame["kind"]]
    labels = [
        f"{p}\n{t}" if isinstance(t, str) and t else str(p)
        for p, t in zip(frame["policy"], frame["trial_id"], strict=True)
    ]
    x = np.arange(len(frame))
    values = frame["daily_cost"].astype(float).to_numpy()
    ax.bar(x, values, color=colors)
    for i, value in enumerate(values):
        ax.text(
            i, value, f"{value:.4g}", ha="center", va="bottom" if value >= 0 else "top", fontsize=8
        )
    ax.set_xticks(x, labels)
    ax.tick_params(axis="x", labelsize=8, labelrotation=20)
    ax.set_ylabel("test daily cost ($/day, lower is better)")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title)
    return _save(figure, path)


# --------------------------------------------------------------------------------------------
# Population-based training


def population_schedules(
    trials: pd.DataFrame, iterations: pd.DataFrame, best: str | None, title: str, path: Path
) -> Path | None:
    """One panel per varying ``hp/<key>``: for every trial of the final population, the values
    its final weights were trained under against env steps (along its ancestry, so a copy
    continues the parent's line); dots mark the copies, the best trial is drawn thick."""
    from analysis.population import ancestry, schedule_columns

    columns = schedule_columns(iterations)
    ids = [t for t in trials["trial_id"] if t in set(iterations["trial_id"])]
    if not columns or not ids:
        return None
    figure = _figure(11, 2.6 * len(columns) + 0.6)
    axes = figure.subplots(len(columns), 1, sharex=True, squeeze=False)[:, 0]
    colors = colormaps["tab10"]
    for index, trial_id in enumerate(sorted(ids, key=lambda t: t == best)):
        rows = ancestry(iterations, trial_id)
        is_best = trial_id == best
        color = "black" if is_best else colors(index % 10)
        label = f"{trial_id} (best)" if is_best else trial_id
        # A row's value was in effect during the iteration that ended at its env steps.
        copied = rows["segment"].diff().fillna(0) > 0
        copy_steps = rows["env_steps"].shift(1)[copied]
        for ax, column in zip(axes, columns, strict=True):
            ax.step(
                rows["env_steps"],
                rows[column],
                where="pre",
                color=color,
                linewidth=2.4 if is_best else 1.2,
                alpha=1.0 if is_best else 0.75,
                label=label,
            )
            ax.plot(copy_steps, rows.loc[copied, column], "o", color=color, markersize=4)
    for ax, column in zip(axes, columns, strict=True):
        values = iterations[column].dropna().to_numpy(dtype=float)
        if values.size and values.min() > 0 and values.max() / values.min() > 5:
            ax.set_yscale("log")
        ax.set_ylabel(column.removeprefix("hp/"))
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("env steps of the weights")
    axes[-1].xaxis.set_major_formatter(EngFormatter())
    axes[0].legend(fontsize=7, loc="best", ncol=2)
    figure.suptitle(f"{title}: values read back from the learners (dots: copied another trial)")
    return _save(figure, path)
