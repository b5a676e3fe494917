"""Build the analysis report: tables (CSV + Markdown), PNG plots and one self-contained HTML page.

The HTML embeds every PNG as a base64 data URI (it opens from disk, alone, with no external JS or
CSS) and links each one's file under ``plots/`` as well.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import plots
from analysis.budget import at_budget, comparison_budget
from analysis.early_stopping import early_stopping_tables, rung_unit
from analysis.importance import importance_table
from analysis.load import Results, StopBound, load_results, read_answer, read_confirm
from analysis.population import best_trial, is_population, lineage_table
from analysis.separation import MIN_VALUES, interval_separation, separation_statements
from analysis.tables import (
    ALL_EXPERIMENTS,
    baseline_table,
    budget_table,
    constant_params,
    factor_definitions,
    factor_name,
    factor_tables,
    format_value,
    leaderboard,
    summary_table,
    write_table,
)
from tune_grid.search.answer.summary import format_answer
from tune_grid.stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES

REPORT_FILE = "report.html"
SEPARATION_TEXT = "separation.txt"
"""The separation statements, one per line (``tune-grid report`` prints them)."""
PLOTS_DIR = "plots"
TOP_N = 10


@dataclass
class _Page:
    """HTML fragments and the files written so far."""

    title: str
    parts: list[str] = field(default_factory=list)
    pngs: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)

    def add(self, fragment: str) -> None:
        self.parts.append(fragment)


def build_report(
    results_dirs: Sequence[Path | str],
    out_dir: Path | str | None = None,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    top: int = TOP_N,
) -> Path:
    """Analyse the results folders and write the report; returns the path of ``report.html``.

    ``out_dir`` defaults to ``<first results dir>/report``. Raises ``AnalysisError`` (a
    ``ValueError``) with a one-line message for unusable input.
    """
    results = load_results([Path(d) for d in results_dirs])
    out = Path(out_dir) if out_dir is not None else Path(results_dirs[0]) / "report"
    plots_dir = out / PLOTS_DIR
    plots_dir.mkdir(parents=True, exist_ok=True)
    for stale in plots_dir.glob("*.png"):  # plots/ belongs to the report: drop old figures
        stale.unlink()
    page = _Page(title="tune-grid report: " + ", ".join(results.experiments))
    options = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed}

    _answer_section(page, results, [Path(d) for d in results_dirs], out)
    _summary_section(page, results, out)
    _leaderboard_section(page, results, out, top)
    _factor_section(page, results, out, options)
    _curves_section(page, results, plots_dir, options)
    _importance_section(page, results, out, plots_dir, seed)
    _early_stopping_section(page, results, out, plots_dir)
    _population_section(page, results, out, plots_dir)
    _baselines_section(page, results, out, plots_dir)
    _methods_section(page, n_resamples, confidence, seed)
    _files_section(page, out)

    report = out / REPORT_FILE
    report.write_text(_document(page), encoding="utf-8")
    return report


# --------------------------------------------------------------------------------------------
# Sections


def _with_interval_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The test cost and gap with their intervals as one ``value [low, high]`` column each."""
    out = frame.copy()
    for column, label, percent in (
        ("test_daily_cost", "test $/day [95% CI]", False),
        ("test_optimality_gap", "gap to oracle [95% CI]", True),
    ):
        if column not in out:
            continue
        low, high = out.pop(f"{column}_low"), out.pop(f"{column}_high")
        columns = zip(out[column], low, high, strict=True)
        out[column] = [_interval_text(v, lo, hi, percent) for v, lo, hi in columns]
        out = out.rename(columns={column: label})
    return out


def _interval_text(value: float, low: float, high: float, percent: bool) -> str:
    def fmt(x: float) -> str:
        return f"{x:+.1%}" if percent else f"{x:.1f}"

    if value is None or not math.isfinite(float(value)):
        return ""
    if low is None or not math.isfinite(float(low)):
        return fmt(float(value))
    return f"{fmt(float(value))} [{fmt(float(low))}, {fmt(float(high))}]"


def _answer_section(page: _Page, results: Results, dirs: Sequence[Path], out: Path) -> None:
    """The answer first: each experiment's confirmed recommendation (``answer.json``), or the
    search's pick with what it rests on when the search had no confirmation stage."""
    page.add("<section id='answer' class='answer'><h2>Answer</h2>")
    for directory in dirs:
        answer = read_answer(directory)
        if answer is not None:
            lines = format_answer(answer).splitlines()
            page.add(f"<p><b>{_e(lines[0])}</b></p><ul>")
            for text in lines[1:]:
                page.add(f"<li>{_e(text.strip())}</li>")
            page.add("</ul>")
            confirm = read_confirm(directory)
            if confirm is not None:
                _confirm_table(page, confirm, out)
            continue
        page.add(f"<p class='note'><b>{_e(directory.name)}</b>: {_e(_unconfirmed(results))}</p>")
    page.add("</section>")


def _unconfirmed(results: Results) -> str:
    board = leaderboard(results, by="objective", top=1, params="varying")
    if board.empty:
        return "no confirmation stage and no ranked trial."
    row = board.iloc[0]
    params = ", ".join(
        f"{c.removeprefix('param_')}={format_value(row[c])}"
        for c in board.columns
        if c.startswith("param_")
    )
    cost = _interval_text(
        row["test_daily_cost"], row["test_daily_cost_low"], row["test_daily_cost_high"], False
    )
    gap = _interval_text(
        row["test_optimality_gap"],
        row["test_optimality_gap_low"],
        row["test_optimality_gap_high"],
        True,
    )
    tested = f" Test ${cost}/day, gap to the oracle {gap}." if cost else ""
    return (
        f"no confirmation stage (add confirm: to the search file): the search's pick is trial "
        f"{row['trial_id']} ({params}) by its own seeds' validation.{tested} Without fresh "
        "seeds nothing says whether the pick is a lucky seed."
    )


def _confirm_table(page: _Page, confirm: pd.DataFrame, out: Path) -> None:
    """Per configuration: seeds, mean test cost and gap over its confirmed runs."""
    ok = confirm[confirm["error"].isna()]
    table = (
        ok.groupby(["candidate", "origin"], sort=False)
        .agg(
            seeds=("seed", "count"),
            rounds=("round", "nunique"),
            test_daily_cost=("test_daily_cost", "mean"),
            test_optimality_gap=("test_optimality_gap", "mean"),
            val_objective=("val_objective", "mean"),
        )
        .reset_index()
    )
    page.tables += write_table(table, out, "confirm")
    page.add(
        "<p class='note'>Confirmed runs per configuration (fresh seeds, full budget; means over "
        "seeds; the race drops a configuration once it is separated as worse).</p>"
    )
    page.add(_table(table))


def _summary_section(page: _Page, results: Results, out: Path) -> None:
    summary = summary_table(results)
    page.tables += write_table(summary, out, "summary")
    page.add("<h2 id='summary'>Experiments</h2>")
    page.add(_table(summary))
    for name in results.experiments:
        fixed = constant_params(results.experiment_trials(name))
        if fixed:
            text = ", ".join(f"{k}={v}" for k, v in fixed.items())
            page.add(f"<p class='note'><b>{_e(name)}</b> fixed hyperparameters: {_e(text)}</p>")


def _leaderboard_section(page: _Page, results: Results, out: Path, top: int) -> None:
    page.add("<h2 id='leaderboard'>Leaderboards</h2>")
    page.add(
        "<p class='note'>best_objective is a trial's best reported value (its best checkpoint, "
        "the one the test days evaluate), reached after best_env_steps of a run of env_steps; "
        "stopped_early marks the trials the scheduler (ASHA) stopped at a rung, whose runs are "
        "shorter. objective_at_budget compares every trial at the same budget_env_steps (see "
        "Factors).</p>"
    )
    for by, stem, heading in (
        ("objective", "leaderboard_objective", "By search objective (best reported value)"),
        ("test_daily_cost", "leaderboard_test_cost", "By test-day daily cost (lower is better)"),
    ):
        full = leaderboard(results, by=by)
        page.tables += write_table(full, out, stem)
        shown = leaderboard(results, by=by, top=top, params="varying")
        shown = _with_interval_columns(shown.drop(columns=["metric", "mode"]))
        page.add(f"<h3>{_e(heading)}</h3>")
        if shown.empty:
            page.add("<p class='note'>No trial has a value for this ranking.</p>")
            continue
        page.add(f"<p class='note'>Top {top} per experiment; all ranked trials in {stem}.csv.</p>")
        page.add(_table(shown.rename(columns=lambda c: c.removeprefix("param_"))))


def _factor_section(page: _Page, results: Results, out: Path, options: dict) -> None:
    budgets = budget_table(results)
    factors, improvements = factor_tables(results, **options)
    page.tables += write_table(budgets, out, "budget")
    page.tables += write_table(factors, out, "factors")
    page.tables += write_table(improvements, out, "improvement")
    level = f"{options['confidence']:.0%}"
    page.add("<h2 id='factors'>Factors</h2>")
    page.add(
        "<p class='note'>Trials are compared at equal budget: the objective each trial reported "
        "when it first reached budget_env_steps, the most env steps every finished trial ran "
        "(what ASHA ranks by at a rung that high). A validation objective is the latest "
        "validation by then (measured at measured_env_steps). Trials that never reached the "
        "budget (errored, still running) are left out; stopped_early counts the compared trials "
        "the scheduler stopped. test_daily_cost rows are each evaluated trial's best "
        "checkpoint on the test days.</p>"
    )
    page.add(_table(budgets))
    for record in budgets.itertuples():
        if record.not_reached or record.no_value:
            page.add(
                f"<p class='note warn'>{_e(record.experiment)}: {record.compared} of "
                f"{record.trials} trials compared at {format_value(record.budget_env_steps)} "
                f"env steps ({record.not_reached} did not reach it, {record.no_value} had no "
                "finite value there).</p>"
            )
    if factors.empty:
        page.add("<p class='note'>No categorical hyperparameter varies: no factor table.</p>")
        return
    page.add(
        f"<p class='note'>Seed-level values; {level} stratified bootstrap intervals "
        f"({options['n_resamples']} resamples). <i>better</i> tells the direction.</p>"
    )
    compact = factors.assign(
        mean=[_with_ci(r.mean, r.mean_ci_low, r.mean_ci_high) for r in factors.itertuples()],
        iqm=[_with_ci(r.iqm, r.iqm_ci_low, r.iqm_ci_high) for r in factors.itertuples()],
    )[
        [
            "experiment",
            "factor",
            "metric",
            "better",
            "budget_env_steps",
            "group",
            "n_trials",
            "n_stopped_early",
            "n_values",
            "mean",
            "iqm",
        ]
    ]
    page.add(
        _table(compact.rename(columns={"mean": f"mean [{level} CI]", "iqm": f"IQM [{level} CI]"}))
    )
    separation = interval_separation(factors)
    page.tables += write_table(separation, out, "separation")
    page.add("<h3>Which differences the intervals separate</h3>")
    page.add(
        f"<p class='note'>Two groups are separated when their {level} IQM intervals do not "
        "overlap (a conservative test); overlapping intervals mean these seeds cannot tell the "
        "groups apart, not that they are equal. A group with fewer than "
        f"{MIN_VALUES} values takes part in no claim. All pairs in separation.csv.</p>"
    )
    statements = separation_statements(separation, options["confidence"])
    words = out / SEPARATION_TEXT
    words.write_text("".join(f"{line}\n" for line in statements), encoding="utf-8")
    page.tables.append(words)
    if statements:
        page.add("<ul>" + "".join(f"<li>{_e(s)}</li>" for s in statements) + "</ul>")
    else:
        page.add("<p class='note'>No factor has two groups with intervals.</p>")
    page.add("<h3>Probability of improvement</h3>")
    page.add(
        "<p class='note'>P(a seed-level value of X beats one of Y) at the same budget, ties "
        "count one half; beating follows the metric's direction (lower beats higher for a "
        "cost).</p>"
    )
    page.add(_table(improvements))


def _curves_section(page: _Page, results: Results, plots_dir: Path, options: dict) -> None:
    page.add("<h2 id='curves'>Learning curves</h2>")
    count = 0
    for name in results.experiments:
        trials = results.experiment_trials(name)
        iterations = results.experiment_iterations(name)
        budget = comparison_budget(trials, iterations)
        factors: list[tuple[str, ...] | None] = [*factor_definitions(trials)] or [None]
        for factor in factors:
            label = factor_name(factor) if factor else "all trials"
            path = plots_dir / f"curves_{plots.slug(name)}_{plots.slug(label)}.png"
            made = plots.learning_curves(
                trials, iterations, factor, f"{name}: {label}", path, budget=budget, **options
            )
            if made is not None:
                _figure(page, made, f"{name}: learning curves by {label}")
                count += 1
    if not count:
        page.add("<p class='note'>No iteration data: no learning curves.</p>")


def _importance_section(
    page: _Page, results: Results, out: Path, plots_dir: Path, seed: int
) -> None:
    frame, notes = importance_table(results, seed=seed)
    page.tables += write_table(frame, out, "importance")
    page.add("<h2 id='importance'>Hyperparameter importance</h2>")
    for name in results.experiments:
        page.add(f"<h3>{_e(name)}</h3>")
        for note in notes.get(name, []):
            page.add(f"<p class='note'>{_e(note)}</p>")
        subset = frame[frame["experiment"] == name]
        path = plots.importance_bars(
            subset, f"{name}: importance", plots_dir / f"importance_{plots.slug(name)}.png"
        )
        if path is not None:
            _figure(page, path, f"{name}: normalised importance per method and target")
        if not subset.empty:
            page.add(_table(subset))
        trials = at_budget(results.experiment_trials(name), results.experiment_iterations(name))
        path = plots.parallel_coordinates(
            trials, f"{name}: parallel coordinates", plots_dir / f"parallel_{plots.slug(name)}.png"
        )
        if path is not None:
            _figure(page, path, f"{name}: trials across the varying hyperparameters")
        else:
            page.add("<p class='note'>No hyperparameter varies: no parallel coordinates.</p>")


def _early_stopping_section(page: _Page, results: Results, out: Path, plots_dir: Path) -> None:
    rungs, compute = early_stopping_tables(results)
    page.tables += write_table(rungs, out, "early_stopping_rungs")
    page.tables += write_table(compute, out, "early_stopping_compute")
    page.add("<h2 id='early-stopping'>Early stopping</h2>")
    page.add(
        "<p class='note'>Saved compute, in env steps per seed (iterations alongside), compares "
        "what ran with every early-stopped trial run on to the stop bound: the search's stop "
        "condition (stop, from the results' tune_grid.stop metadata), else the most env steps "
        "observed (bound_source observed); other trials count as run. Rungs are how far each "
        "stopped trial had got, in env steps (a report can pass a rung by up to one batch).</p>"
    )
    page.add(_table(compute))
    page.add("<h3>Trials stopped per rung</h3>")
    page.add(_table(rungs) if not rungs.empty else "<p class='note'>No trial stopped early.</p>")
    for record in compute.to_dict("records"):
        name = record["experiment"]
        path = plots.early_stopping_plot(
            results.experiment_trials(name),
            record,
            rung_unit(results.stop_bound.get(name, StopBound())),
            f"{name}: early stopping",
            plots_dir / f"early_stopping_{plots.slug(name)}.png",
        )
        if path is not None:
            _figure(page, path, f"{name}: where trials ended, and compute saved")


def _population_section(page: _Page, results: Results, out: Path, plots_dir: Path) -> None:
    names = [n for n in results.experiments if is_population(results.experiment_iterations(n))]
    if not names:
        return
    page.add("<h2 id='population'>Population-based training</h2>")
    page.add(
        "<p class='note'>Values are read back from each trial's learners every iteration "
        "(hp/&lt;key&gt; in iterations.parquet), along the ancestry of the trial's final weights: "
        "a trial that copied another continues that trial's line from the copied checkpoint."
        "</p>"
    )
    for name in names:
        trials, iterations = results.experiment_trials(name), results.experiment_iterations(name)
        best = best_trial(trials, name)
        path = plots.population_schedules(
            trials,
            iterations,
            best,
            f"{name}: hyperparameter schedules",
            plots_dir / f"population_{plots.slug(name)}.png",
        )
        if path is not None:
            _figure(page, path, f"{name}: hyperparameter schedules of the final population")
        if best is None:
            continue
        table = lineage_table(iterations, best)
        page.tables += write_table(table, out, f"lineage_{plots.slug(name)}")
        page.add(f"<h3>{_e(name)}: lineage of the best trial {_e(best)}</h3>")
        page.add(
            "<p class='note'>Oldest first: the trial that trained the weights from "
            "from_env_steps to to_env_steps, and the trial and iteration it copied them from.</p>"
        )
        page.add(_table(table))


def _baselines_section(page: _Page, results: Results, out: Path, plots_dir: Path) -> None:
    table = baseline_table(results)
    page.tables += write_table(table, out, "baselines")
    page.add("<h2 id='baselines'>Test days vs. baselines</h2>")
    if table.empty:
        page.add(
            "<p class='note'>No trial was evaluated on the test days and no baselines.json.</p>"
        )
        return
    page.add(
        "<p class='note'><i>selected by objective</i> is the trial with the best search objective "
        "(best_objective, as the search ranks trials) among the evaluated ones, chosen without "
        "the test days; <i>best on test</i> is optimistic. delta_vs_do_nothing: cost minus the "
        "do-nothing cost.</p>"
    )
    page.add(_table(table))
    for name in results.experiments:
        if name not in results.baselines:
            page.add(f"<p class='note'>{_e(name)}: no baselines.json in its results folder.</p>")
        subset = table[table["experiment"] == name]
        days = subset["days"].dropna().unique()
        if len(days) > 1:
            page.add(
                f"<p class='note warn'>{_e(name)}: baselines and trials were evaluated on "
                f"different numbers of days ({', '.join(str(int(d)) for d in days)}).</p>"
            )
        path = plots.baselines_plot(
            subset, f"{name}: test-day cost", plots_dir / f"baselines_{plots.slug(name)}.png"
        )
        if path is not None:
            _figure(page, path, f"{name}: test-day daily cost against the baselines")


def _methods_section(page: _Page, n_resamples: int, confidence: float, seed: int) -> None:
    page.add("<h2 id='methods'>Methods</h2><ul class='note'>")
    for item in (
        "Search objective: the trial's metric (val_objective by default: the greedy policy's "
        "cost plus safety penalty on the validation days, $/day, lower is better), ordered by "
        "its mode. Leaderboards rank by each trial's best reported value; factor tables, "
        "importance and parallel coordinates compare every trial at one budget, the most env "
        "steps every finished trial reached, reading the value it reported on first reaching "
        "it.",
        "IQM: mean of the middle 50% of seed-level values (25% trimmed each side).",
        f"CIs: {confidence:.0%} percentile intervals from {n_resamples} stratified bootstrap "
        f"resamples (seed {seed}): within each experiment, trials are drawn with replacement and "
        "then each drawn trial's seeds; pooled rows keep each experiment's size (strata).",
        "Separation: two groups whose IQM intervals do not overlap; touching intervals overlap.",
        "Probability of improvement: P(X beats Y) + P(tie)/2 over seed-level value pairs; the "
        f"{ALL_EXPERIMENTS} rows average it over experiments.",
        "Importance: fANOVA (Optuna's evaluator, random forest) on the objective at the budget, "
        "numeric ranges from optuna.db when it has them; binned_variance is a model-free "
        "one-way ANOVA effect size (epsilon squared) on quantile-binned params, main effects "
        "only.",
        "Learning curves: each trial's measured points (one per validation, at val_env_steps, "
        "for a validation metric) joined and interpolated on a common env-steps grid; the band "
        "resamples trials; early-stopped trials drop out where their data ends.",
    ):
        page.add(f"<li>{_e(item)}</li>")
    page.add("</ul>")


def _files_section(page: _Page, out: Path) -> None:
    links = [f"<a href='{_e(p.relative_to(out).as_posix())}'>{_e(p.name)}</a>" for p in page.tables]
    page.add("<h2 id='files'>Files</h2><p class='note'>" + " &middot; ".join(links) + "</p>")


# --------------------------------------------------------------------------------------------
# HTML


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }
h1 { font-size: 1.6em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: .82em; margin: .5em 0 1em; display: block;
        overflow-x: auto; }
th, td { border: 1px solid #ddd; padding: .25em .5em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; white-space: normal; }
td.text { text-align: left; white-space: normal; min-width: 6em; max-width: 22em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption, .note { color: #555; font-size: .9em; } .warn { color: #a40; }
nav a { margin-right: 1em; }
.answer { background: #f5f9ff; border: 1px solid #9bc; padding: .2em 1em .5em; }
.answer h2 { margin-top: .3em; } .answer li { margin: .15em 0; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _with_ci(value: float, low: float, high: float) -> str:
    if not math.isfinite(value):
        return ""
    return f"{format_value(value)} [{format_value(low)}, {format_value(high)}]"


def _table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p class='note'>(empty)</p>"
    head = "".join(f"<th>{_e(c)}</th>" for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = []
        for value in record:
            numeric = isinstance(value, int | float | np.integer | np.floating) and not isinstance(
                value, bool | np.bool_
            )
            css = "" if numeric else " class='text'"
            cells.append(f"<td{css}>{_e(format_value(value))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _figure(page: _Page, path: Path, caption: str) -> None:
    page.pngs.append(path)
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    relative = f"{PLOTS_DIR}/{path.name}"
    page.add(
        f"<figure><img src='data:image/png;base64,{data}' alt='{_e(caption)}' "
        f"data-file='{_e(relative)}'><figcaption>{_e(caption)} "
        f"(<a href='{_e(relative)}'>{_e(relative)}</a>)</figcaption></figure>"
    )


def _document(page: _Page) -> str:
    nav = " ".join(
        f"<a href='#{anchor}'>{label}</a>"
        for anchor, label in (
            ("answer", "Answer"),
            ("summary", "Experiments"),
            ("leaderboard", "Leaderboards"),
            ("factors", "Factors"),
            ("curves", "Learning curves"),
            ("importance", "Importance"),
            ("early-stopping", "Early stopping"),
            ("population", "PBT"),
            ("baselines", "Baselines"),
            ("methods", "Methods"),
        )
    )
    body = "\n".join(page.parts)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(page.title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{_e(page.title)}</h1><nav>{nav}</nav>\n{body}\n</body></html>\n"
    )
