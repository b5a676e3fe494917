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

from analysis.load import is_categorical, short_name, value_label, varying_params
from analysis.stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, curve_band
from analysis.tables import group_labels

CURVE_METRICS = (("objective", "objective"), ("daily_cost_mean", "daily cost ($/day)"))
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


def _grid(iterations: pd.DataFrame) -> np.ndarray:
    steps = np.unique(iterations["env_steps"].dropna().to_numpy(dtype=float))
    if steps.size <= MAX_GRID_POINTS:
        return steps
    return np.linspace(steps.min(), steps.max(), MAX_GRID_POINTS)


def _trial_curve(rows: pd.DataFrame, metric: str, grid: np.ndarray) -> np.ndarray:
    """The trial's metric interpolated on ``grid``; NaN outside the steps it reached."""
    data = rows[["env_steps", metric]].astype(float).dropna().sort_values("env_steps")
    data = data.groupby("env_steps", as_index=False)[metric].mean()
    curve = np.full(grid.size, np.nan)
    if data.empty:
        return curve
    x, y = data["env_steps"].to_numpy(), data[metric].to_numpy()
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
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Path | None:
    """Objective and daily cost vs. env steps, one mean line and bootstrap band per group.

    Early-stopped trials leave the mean where their data ends, so late steps average the
    survivors. Returns None when there is no iteration data.
    """
    if iterations.empty or iterations["env_steps"].dropna().empty:
        return None
    grid = _grid(iterations)
    labels = group_labels(trials, factor) if factor else pd.Series("all trials", trials.index)
    by_trial = dict(tuple(iterations.groupby("trial_id")))
    figure = _figure(11, 4.2)
    axes = figure.subplots(1, 2)
    colors = colormaps["tab10"]
    drawn = False
    for ax, (metric, label) in zip(axes, CURVE_METRICS, strict=True):
        for index, group in enumerate(sorted(pd.unique(labels))):
            ids = trials.loc[labels == group, "trial_id"]
            curves = [
                _trial_curve(by_trial[t], metric, grid)
                for t in ids
                if t in by_trial and metric in by_trial[t]
            ]
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
        ax.set_xlabel("env steps")
        ax.xaxis.set_major_formatter(EngFormatter())
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    if not drawn:
        return None
    axes[0].legend(fontsize=8, loc="best")
    figure.suptitle(f"{title}: mean and {confidence:.0%} bootstrap band over trials")
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
    """One line per trial across the varying params and the objective, on normalised axes.

    Numbers are min-max scaled (log10 first when positive and spanning two decades or more);
    categories are evenly spaced. Lines are colored by the objective (yellow = best, whatever the
    mode) and the best are drawn on top. None when no param varies.
    """
    params = varying_params(trials)[:MAX_PARALLEL_AXES]
    if not params:
        return None
    objective = trials["last_objective"].astype(float).to_numpy()
    columns = [*params, "last_objective"]
    positions = np.zeros((len(trials), len(columns)))
    ticks: list[tuple[list[float], list[str]]] = []
    for j, column in enumerate(columns):
        series = trials[column]
        if column != "last_objective" and is_categorical(series):
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
    ax.set_xticks(x, [short_name(c) if c != "last_objective" else "objective" for c in columns])
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.set_yticks([])
    ax.set_ylim(_MISSING - 0.05, 1.05)
    ax.set_xlim(-0.2, len(columns) - 0.5)
    figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="objective")
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


def early_stopping_plot(trials: pd.DataFrame, compute: dict, title: str, path: Path) -> Path | None:
    """Left: trials per final iteration count, stopped early or not. Right: compute run vs. full."""
    iterations = trials["iterations"].fillna(0).astype(int)
    stopped = trials["stopped_early"].fillna(False).astype(bool)
    levels = sorted(set(iterations))
    figure = _figure(11, 4)
    left, right = figure.subplots(1, 2)
    x = np.arange(len(levels))
    stopped_counts = [int(((iterations == v) & stopped).sum()) for v in levels]
    other_counts = [int(((iterations == v) & ~stopped).sum()) for v in levels]
    left.bar(x, stopped_counts, color="tab:red", label="stopped early (rung)")
    left.bar(x, other_counts, bottom=stopped_counts, color="tab:blue", label="not stopped")
    left.set_xticks(x, [str(v) for v in levels])
    left.set_xlabel("iterations run")
    left.set_ylabel("trials")
    left.legend(fontsize=8)
    left.grid(axis="y", alpha=0.3)
    kinds = ["iterations", "env_steps"]
    run = [compute[f"{k}_run"] / compute[f"{k}_full"] if compute[f"{k}_full"] else 0 for k in kinds]
    right.bar(
        np.arange(2) - 0.2, [1.0, 1.0], width=0.4, color="lightgray", label="all to the bound"
    )
    right.bar(np.arange(2) + 0.2, run, width=0.4, color="tab:green", label="actually run")
    for i, kind in enumerate(kinds):
        right.text(
            i + 0.2, run[i], f"-{compute[f'{kind}_saved_frac']:.0%}", ha="center", va="bottom"
        )
    right.set_xticks(np.arange(2), kinds)
    right.set_ylabel(f"fraction of running all to {compute['max_iterations']} iterations")
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
