"""Every table value of the analysis checked against a hand computation on the fixture.

The fixture (tests/fixtures_results.py) has two training-metric experiments, exp_a (mode max, 2
seeds, six trials, three stopped early, a time-only stop) and exp_b (mode min, 1 seed,
baselines.json, the legacy max_iterations 12), and exp_c, ranked by the validation objective
(mode min, 2 seeds, stop env_steps 8000), whose two groups ran for different lengths.

Comparison budgets: exp_a 2000 env steps (a3 stopped after 2 iterations of 1000), exp_b 1500
(b2 and b3 after 3 of 500), exp_c 4000 (c0 and c1 after 4 of 1000; c4 errored at 2000). A ramp
trial of n iterations is read at its first row at or past the budget: exp_a's 8-iteration trials
at 2/8 of their final value, the 4-iteration ones at 2/4; exp_b's 2000-step trials at their first
iteration, 2 - 1/10 times the final value (min ramps down from twice the final value).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from analysis.budget import at_budget, comparison_budget
from analysis.early_stopping import compute_saved, early_stopping_tables
from analysis.importance import epsilon_squared, importance_table, variance_importance
from analysis.load import AnalysisError, StopBound, load_results, stop_bound
from analysis.plots import curve_panels, curve_points
from analysis.tables import (
    ALL_EXPERIMENTS,
    baseline_table,
    budget_table,
    factor_definitions,
    factor_tables,
    leaderboard,
    to_markdown,
)
from tune_grid.results.export import SearchMeta, TrialRecord, trials_table
from tune_grid.results.schema import MAX_ITERATIONS_KEY, STOP_KEY, write_results

try:
    from tests import fixtures_results as fx
except ImportError:  # pytest's rootdir-less import mode puts tests/ itself on sys.path
    import fixtures_results as fx  # type: ignore[no-redef]


def hand_iqm(values):
    ordered = sorted(values)
    cut = len(ordered) // 4
    middle = ordered[cut : len(ordered) - cut]
    return sum(middle) / len(middle)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    return load_results(list(fx.two_experiments(root)))


@pytest.fixture(scope="module")
def factor_frames(results):
    return factor_tables(results, n_resamples=2000, seed=0)


def row(frame: pd.DataFrame, **where) -> pd.Series:
    mask = np.ones(len(frame), dtype=bool)
    for key, value in where.items():
        mask &= (frame[key] == value).to_numpy()
    assert mask.sum() == 1, f"expected one row for {where}, got {mask.sum()}"
    return frame[mask].iloc[0]


@pytest.fixture(scope="module")
def validation(tmp_path_factory):
    return load_results([fx.validation_experiment(tmp_path_factory.mktemp("validation"))])


def test_load_keeps_experiments_and_side_files(results):
    assert results.experiments == [fx.EXP_A, fx.EXP_B]
    assert len(results.trials) == 11
    assert results.stop_bound == {
        fx.EXP_A: StopBound(text="time_total_s=3600"),  # bounds neither steps nor iterations
        fx.EXP_B: StopBound(iterations=12, source="max_iterations", text="training_iteration=12"),
    }
    assert set(results.baselines) == {fx.EXP_B}
    assert results.baselines[fx.EXP_B]["policies"]["rule_based"]["daily_cost"] == 920.0
    assert results.optuna_db == {}


def test_leaderboard_by_objective_respects_mode(results):
    board = leaderboard(results, by="objective")
    a = board[board["experiment"] == fx.EXP_A]
    # max: a2 6, a1 5, a5 3, then a0 and a4 tie at 2 (trial id breaks the tie), a3 0
    assert list(a["trial_id"]) == ["a2", "a1", "a5", "a0", "a4", "a3"]
    assert list(a["last_objective"]) == [6.0, 5.0, 3.0, 2.0, 2.0, 0.0]
    assert list(a["rank"]) == [1, 2, 3, 4, 5, 6]
    b = board[board["experiment"] == fx.EXP_B]
    assert list(b["trial_id"]) == ["b4", "b0", "b1", "b2", "b3"]  # min: 870 < 900 < ...
    assert row(board, trial_id="a2")["param_policy_sharing"] == "independent"
    assert row(board, trial_id="a2")["param_lr"] == pytest.approx(1e-3)
    # each row says whether ASHA stopped the trial, and its objective at the 2000-step budget
    assert list(a["stopped_early"]) == [False, False, True, False, True, True]
    assert list(a["objective_at_budget"]) == [1.5, 1.25, 1.5, 0.5, 1.0, 0.0]
    assert set(a["budget_env_steps"]) == {2000}
    top = leaderboard(results, by="objective", top=2, params="varying")
    assert list(top["trial_id"]) == ["a2", "a1", "b4", "b0"]
    assert "param_num_epochs" not in top.columns  # constant in both experiments
    assert "param_policy_sharing" in top.columns


def test_leaderboard_by_test_cost_skips_unevaluated(results):
    board = leaderboard(results, by="test_daily_cost")
    assert list(board["trial_id"]) == ["a2", "a0", "a5", "a1", "b0", "b4", "b1"]
    assert list(board["test_daily_cost"]) == [93.0, 105.0, 120.0, 125.0, 880.0, 905.0, 940.0]


def test_factor_definitions(results):
    trials_a = results.experiment_trials(fx.EXP_A)
    assert factor_definitions(trials_a) == [
        ("param_policy_sharing", "param_share_reward"),
        ("param_policy_sharing",),
        ("param_share_reward",),
    ]  # lr is continuous (no repeated value); num_epochs and hidden_sizes are constant
    assert factor_definitions(results.experiment_trials(fx.EXP_B)) == [("param_policy_sharing",)]


def test_factor_means_and_iqm(factor_frames):
    factors, _ = factor_frames
    # seed values at the 2000-step budget (see the module doc)
    shared = [0.25, 0.75, 0, 2.5, 0.5, 2.5]  # a0, a1 (8 iterations: x 2/8), a5 (4: x 2/4)
    independent = [1, 2, -1, 1, 1, 1]  # a2 (x 2/8), a3 (its last row), a4 (x 2/4)
    for group, values, stopped in (("shared", shared, 1), ("independent", independent, 2)):
        r = row(
            factors, experiment=fx.EXP_A, factor="policy_sharing", group=group, metric="objective"
        )
        assert r["mean"] == pytest.approx(sum(values) / len(values))
        assert r["iqm"] == pytest.approx(hand_iqm(values))
        assert (r["n_trials"], r["n_values"], r["better"]) == (3, 6, "higher")
        assert (r["budget_env_steps"], r["n_stopped_early"]) == (2000, stopped)
        assert r["mean_ci_low"] <= r["mean"] <= r["mean_ci_high"]
    assert row(
        factors, experiment=fx.EXP_A, factor="policy_sharing", group="shared", metric="objective"
    )["iqm"] == pytest.approx(1.0)  # mean of 0.25, 0.5, 0.75, 2.5
    test = row(
        factors,
        experiment=fx.EXP_A,
        factor="policy_sharing",
        group="shared",
        metric="test_daily_cost",
    )
    assert test["mean"] == pytest.approx((100 + 110 + 120 + 130 + 115 + 125) / 6)
    assert test["iqm"] == pytest.approx(hand_iqm([100, 110, 120, 130, 115, 125]))
    assert test["better"] == "lower"
    assert math.isnan(test["budget_env_steps"])  # the best checkpoints' held-out cost
    b = row(
        factors, experiment=fx.EXP_B, factor="policy_sharing", group="shared", metric="objective"
    )
    # b0 and b4 at their first 2000-step row (x 1.9), b2 at its last (1500 steps)
    assert b["mean"] == pytest.approx((1710 + 1000 + 1653) / 3) and b["better"] == "lower"
    assert b["budget_env_steps"] == 1500


def test_factor_cis_on_tiny_groups(factor_frames):
    factors, _ = factor_frames
    # one trial, seeds [-1, 1]: resampled means -1, 0, 1 with p 1/4, 1/2, 1/4 -> [-1, 1]
    r = row(
        factors,
        experiment=fx.EXP_A,
        factor="policy_sharing x share_reward",
        group="policy_sharing=independent, share_reward=False",
        metric="objective",
    )
    assert (r["mean"], r["mean_ci_low"], r["mean_ci_high"]) == (0.0, -1.0, 1.0)
    assert (r["iqm_ci_low"], r["iqm_ci_high"]) == (-1.0, 1.0)
    r = row(
        factors,
        experiment=fx.EXP_A,
        factor="policy_sharing x share_reward",
        group="policy_sharing=shared, share_reward=True",
        metric="objective",
    )
    assert (r["mean_ci_low"], r["mean_ci_high"]) == (0.25, 0.75)  # a0 at the budget
    # two one-seed trials 1805 and 1100: means 1100, 1452.5, 1805 with p 1/4, 1/2, 1/4
    r = row(
        factors,
        experiment=fx.EXP_B,
        factor="policy_sharing",
        group="independent",
        metric="objective",
    )
    assert (r["mean_ci_low"], r["mean_ci_high"]) == (1100.0, 1805.0)
    # three one-seed trials: the extremes have p = 1/27 > 2.5% each
    r = row(
        factors, experiment=fx.EXP_B, factor="policy_sharing", group="shared", metric="objective"
    )
    assert (r["mean_ci_low"], r["mean_ci_high"]) == (1000.0, 1710.0)
    # a single value: a point interval
    r = row(
        factors,
        experiment=fx.EXP_B,
        factor="policy_sharing",
        group="independent",
        metric="test_daily_cost",
    )
    assert (r["mean_ci_low"], r["mean"], r["mean_ci_high"]) == (940.0, 940.0, 940.0)


def test_factor_rows_leave_out_groups_without_values(factor_frames):
    factors, _ = factor_frames
    # a3 (independent, share_reward False) was not evaluated on the test days
    test = factors[(factors["experiment"] == fx.EXP_A) & (factors["metric"] == "test_daily_cost")]
    assert "policy_sharing=independent, share_reward=False" not in set(test["group"])


def test_pooled_scope_is_stratified_and_skips_mixed_objectives(factor_frames):
    factors, improvements = factor_frames
    pooled = factors[factors["experiment"] == ALL_EXPERIMENTS]
    assert set(pooled["metric"]) == {"test_daily_cost"}  # the experiments' objectives differ
    r = row(pooled, factor="policy_sharing", group="independent")
    assert r["mean"] == pytest.approx((90 + 96 + 940) / 3)
    # stratified: every resample holds 2 exp_a values (a2) and 1 exp_b value (b1), so the
    # mean stays within [(90 + 90 + 940) / 3, (96 + 96 + 940) / 3]
    assert (90 + 90 + 940) / 3 - 1e-9 <= r["mean_ci_low"] <= r["mean_ci_high"]
    assert r["mean_ci_high"] <= (96 + 96 + 940) / 3 + 1e-9
    p = row(
        improvements, experiment=ALL_EXPERIMENTS, factor="policy_sharing", metric="test_daily_cost"
    )
    assert p["p_x_beats_y"] == pytest.approx((1.0 + 0.0) / 2)  # mean over the experiments


def test_probability_of_improvement_rows(factor_frames):
    _, improvements = factor_frames
    r = row(improvements, experiment=fx.EXP_A, factor="policy_sharing", metric="objective")
    assert (r["group_x"], r["group_y"]) == ("independent", "shared")
    # independent [1, 2, -1, 1, 1, 1] vs shared [0.25, 0.75, 0, 2.5, 0.5, 2.5]: every value but
    # -1 beats the four shared values below 1
    assert r["p_x_beats_y"] == pytest.approx(20 / 36)
    assert (r["n_x"], r["n_y"], r["budget_env_steps"]) == (6, 6, 2000)
    r = row(improvements, experiment=fx.EXP_A, factor="policy_sharing", metric="test_daily_cost")
    assert r["p_x_beats_y"] == 1.0  # 90 and 96 are cheaper than every shared value
    # exp_b minimises: independent [1805, 1100] beats shared [1710, 1000, 1653] only as 1100
    r = row(improvements, experiment=fx.EXP_B, factor="policy_sharing", metric="objective")
    assert r["p_x_beats_y"] == pytest.approx(2 / 6)
    r = row(improvements, experiment=fx.EXP_A, factor="share_reward", metric="objective")
    false, true = [0, 2.5, -1, 1, 0.5, 2.5], [0.25, 0.75, 1, 2, 1, 1]  # a1 a3 a5 / a0 a2 a4
    wins = sum((x > y) + 0.5 * (x == y) for x in false for y in true)
    assert r["p_x_beats_y"] == pytest.approx(wins / 36)


def test_early_stopping_rungs_and_compute_saved(results):
    rungs, compute = early_stopping_tables(results)
    counts = {(r.experiment, r.unit, r.rung): r.trials_stopped for r in rungs.itertuples()}
    assert counts == {
        (fx.EXP_A, "env_steps", 2000): 1,
        (fx.EXP_A, "env_steps", 4000): 2,
        (fx.EXP_B, "iterations", 3): 2,  # the legacy bound counts iterations
    }
    a = row(compute, experiment=fx.EXP_A)
    # a time-only stop bounds nothing: the three stopped trials run to the most observed,
    # 8000 env steps. Ran 8+8+8+2+4+4 = 34 iterations of 1000 steps; full 6 x 8 = 48
    assert (a["bound_env_steps"], a["bound_source"], a["stop"]) == (
        8000,
        "observed",
        "time_total_s=3600",
    )
    assert (a["env_steps_run"], a["env_steps_full"], a["env_steps_saved"]) == (34000, 48000, 14000)
    assert a["env_steps_saved_frac"] == pytest.approx(14 / 48)
    assert (a["iterations_run"], a["iterations_full"], a["iterations_saved"]) == (34, 48, 14)
    b = row(compute, experiment=fx.EXP_B)
    # legacy bound 12 iterations: ran 10+10+3+3+10 = 36; stopped b2, b3 to 12: 54
    assert (b["bound_iterations"], b["bound_source"]) == (12, "max_iterations")
    assert (b["iterations_run"], b["iterations_full"], b["iterations_saved"]) == (36, 54, 18)
    # steps: 3 x 20000 + 2 x 3 x 500 = 63000 run; stopped at 500 per iteration to 12: 72000
    assert (b["env_steps_run"], b["env_steps_full"], b["env_steps_saved"]) == (63000, 72000, 9000)
    assert b["env_steps_saved_frac"] == pytest.approx(9000 / 72000)
    assert (a["trials"], a["stopped_early"], b["trials"], b["stopped_early"]) == (6, 3, 5, 2)


def test_compute_saved_uses_the_env_step_stop(validation):
    rungs, compute = early_stopping_tables(validation)
    assert list(zip(rungs["unit"], rungs["rung"], rungs["trials_stopped"], strict=True)) == [
        ("env_steps", 4000, 2)
    ]
    c = row(compute, experiment=fx.EXP_C)
    # run: c0, c1 4000 each, c2, c3 8000, c4 (errored, counts as run) 2000 = 26000; the two
    # stopped trials run on to the 8000-step stop: 34000. Iterations 17 run, c0/c1 to 8: 25
    assert (c["stop"], c["bound_env_steps"], c["bound_source"]) == ("env_steps=8000", 8000, "stop")
    assert (c["env_steps_run"], c["env_steps_full"], c["env_steps_saved"]) == (26000, 34000, 8000)
    assert (c["iterations_run"], c["iterations_full"]) == (17, 25)
    # with an iteration bound as well, a stopped trial ends at whichever it reaches first:
    # 6 iterations of 1000 steps come before 8000 steps
    trials = validation.experiment_trials(fx.EXP_C)
    both = compute_saved(trials, fx.EXP_C, StopBound(env_steps=8000, iterations=6, source="stop"))
    assert (both["env_steps_full"], both["iterations_full"]) == (30000, 21)


def _trials_file(tmp_path, metadata):
    table = fx.trials_table("e", fx.SPECS_A[:1], "episode_return_mean", "max", 1000)
    path = tmp_path / "trials.parquet"
    write_results(table.replace_schema_metadata(metadata), path, "trials")
    return pq.read_table(path), path


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({STOP_KEY: b'{"env_steps": 5000}'}, StopBound(5000.0, None, "stop", "env_steps=5000")),
        (
            {STOP_KEY: b'{"training_iteration": 7, "time_total_s": 60}'},
            StopBound(None, 7, "stop", "time_total_s=60, training_iteration=7"),
        ),
        ({STOP_KEY: b'{"time_total_s": 60}'}, StopBound(text="time_total_s=60")),
        ({STOP_KEY: b"{}"}, StopBound()),
        (
            {MAX_ITERATIONS_KEY: b"12"},
            StopBound(None, 12, "max_iterations", "training_iteration=12"),
        ),
        (
            {STOP_KEY: b'{"env_steps": 900}', MAX_ITERATIONS_KEY: b"12"},
            StopBound(900.0, None, "stop", "env_steps=900"),
        ),
        ({}, StopBound()),
    ],
)
def test_stop_bound_reading(tmp_path, metadata, expected):
    table, path = _trials_file(tmp_path, metadata)
    assert stop_bound(table, path) == expected


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'{"env_steps": "many"}'])
def test_bad_stop_metadata_is_a_one_line_error(tmp_path, raw):
    table, path = _trials_file(tmp_path, {STOP_KEY: raw})
    with pytest.raises(AnalysisError, match="metadata tune_grid.stop is") as info:
        stop_bound(table, path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_the_exporters_stop_metadata_is_read(tmp_path):
    """The exporter's own trials table (not the fixture's) carries the bound analysis reads."""
    record = TrialRecord("t0", status="TERMINATED", config={"lr": 1e-4})
    record.add_result({"iteration": 1, "objective": 1.0, "env_steps": 5000})
    meta = SearchMeta(experiment="e", stop={"env_steps": 5000.0}, param_names=("lr",))
    path = tmp_path / "trials.parquet"
    write_results(trials_table([record], meta), path, "trials")
    assert stop_bound(pq.read_table(path), path) == StopBound(
        5000.0, None, "stop", "env_steps=5000"
    )


def test_baseline_table(results):
    table = baseline_table(results)
    b = table[table["experiment"] == fx.EXP_B]
    assert list(b["policy"]) == [
        "do_nothing",
        "random",
        "rule_based",
        "oracle",
        "selected by objective",
        "best on test",
        "median of 3 trials",
    ]
    # evaluated trials cost 880, 940, 905
    assert row(b, policy="do_nothing")["trials_beating"] == 1.0
    assert row(b, policy="rule_based")["trials_beating"] == pytest.approx(2 / 3)
    assert row(b, policy="oracle")["trials_beating"] == 0.0
    assert row(b, policy="random")["delta_vs_do_nothing"] == 200.0
    selected = row(b, policy="selected by objective")  # best objective (min): b4
    assert (selected["trial_id"], selected["daily_cost"]) == ("b4", 905.0)
    assert math.isnan(selected["optimality_gap"])
    assert selected["delta_vs_do_nothing"] == -95.0
    best = row(b, policy="best on test")
    assert (best["trial_id"], best["daily_cost"], best["optimality_gap"]) == ("b0", 880.0, 0.10)
    median = row(b, policy="median of 3 trials")
    assert median["daily_cost"] == 905.0
    assert median["optimality_gap"] == pytest.approx(0.135)  # median of 0.10 and 0.17
    # exp_a has no baselines.json: trial rows only, gap where non-NaN
    a = table[table["experiment"] == fx.EXP_A]
    assert set(a["kind"]) == {"trial", "trials"}
    assert row(a, policy="selected by objective")["trial_id"] == "a2"
    assert row(a, policy="selected by objective")["optimality_gap"] == pytest.approx(0.12)
    assert row(a, policy="median of 4 trials")["daily_cost"] == pytest.approx(112.5)


def test_epsilon_squared_hand_case():
    groups = pd.Series(["a", "a", "b", "b"])
    target = np.array([1.0, 3.0, 5.0, 7.0])
    # SS_total = 20, SS_within = 4, SS_between = 16, k = 2, MS_within = 4 / 2 = 2
    assert epsilon_squared(groups, target) == pytest.approx((16 - 1 * 2) / 20)
    assert epsilon_squared(pd.Series(["a"] * 4), target) == 0.0
    assert math.isnan(epsilon_squared(pd.Series(["a", "b", "c", "d"]), target))
    assert epsilon_squared(groups, np.ones(4)) == 0.0


def test_fallback_importance_reads_the_budget(results):
    trials = at_budget(results.experiment_trials(fx.EXP_A), results.experiment_iterations(fx.EXP_A))
    frame = variance_importance(trials, "objective_at_budget").set_index("param")
    sharing = trials["param_policy_sharing"]
    at_2000 = np.array([0.5, 1.25, 1.5, 0.0, 1.0, 1.5])  # a0..a5 at the budget
    assert frame.loc["policy_sharing", "importance"] == pytest.approx(
        epsilon_squared(sharing, at_2000)
    )
    assert frame.loc["num_epochs", "importance"] == 0.0  # constant
    # at equal budget lr explains nothing; read at each run's unequal end it seemed to matter
    assert frame.loc["lr", "importance"] == 0.0
    unequal = variance_importance(trials, "last_objective").set_index("param")
    # lr quartile bins {a5, a0} {a1} {a2} {a3, a4}, last values {3, 2} {5} {6} {0, 2}:
    # SS_total 24, SS_within 2.5, k 4: (21.5 - 3 x 2.5 / 2) / 24
    assert unequal.loc["lr", "importance"] == pytest.approx(17.75 / 24)
    assert unequal["share"].sum() == pytest.approx(1.0)
    assert (frame["share"] == 0.0).all()  # nothing explains anything: no share to hand out
    table, notes = importance_table(results)
    fallback = table[(table["method"] == "binned_variance") & (table["experiment"] == fx.EXP_A)]
    objective = fallback.set_index(["target", "param"])
    assert objective.loc[("objective", "policy_sharing"), "importance"] == pytest.approx(
        epsilon_squared(sharing, at_2000)
    )
    assert set(objective.loc["objective", "budget_env_steps"]) == {2000}
    assert objective.loc["test_daily_cost", "budget_env_steps"].isna().all()
    assert any("numeric ranges as observed (no optuna.db)" in n for n in notes[fx.EXP_A])


def test_fanova_on_the_values_at_the_budget(tmp_path):
    pytest.importorskip("sklearn")
    dir_a, _ = fx.two_experiments(tmp_path)
    fx.write_optuna_study(dir_a, fx.EXP_A, fx.SPECS_A)
    table, notes = importance_table(load_results([dir_a]))
    fanova = table[table["method"] == "fanova"]
    assert set(fanova["param"]) == {"policy_sharing", "share_reward", "lr"}
    assert fanova["importance"].sum() == pytest.approx(1.0)
    assert set(fanova["budget_env_steps"]) == {2000}
    note = "fANOVA on 6 trials, objective at 2000 env steps; ranges from study 'exp_a'"
    assert note in notes[fx.EXP_A]  # the study's lr range, under its nested name


def test_broken_optuna_db_is_a_note_not_an_error(tmp_path):
    pytest.importorskip("sklearn")
    dir_a, _ = fx.two_experiments(tmp_path)
    (dir_a / "optuna.db").write_bytes(b"not a database" * 10)
    before = (dir_a / "optuna.db").read_bytes()
    table, notes = importance_table(load_results([dir_a]))
    assert any(f"numeric ranges as observed ({dir_a / 'optuna.db'}" in n for n in notes[fx.EXP_A])
    assert (dir_a / "optuna.db").read_bytes() == before
    assert set(table["method"]) == {"binned_variance", "fanova"}


def test_same_experiment_name_in_two_folders_is_kept_apart(tmp_path):
    first = fx.write_experiment(tmp_path / "run1", "same", fx.SPECS_A)
    second = fx.write_experiment(tmp_path / "run2", "same", fx.SPECS_A[:2])
    results = load_results([first, second])
    assert results.experiments == ["same", "same@run2"]
    assert len(results.experiment_trials("same@run2")) == 2
    assert len(results.experiment_iterations("same@run2")) == 16
    assert results.study_name["same@run2"] == "same"


def test_bad_baselines_json(tmp_path):
    dir_a, _ = fx.two_experiments(tmp_path)
    (dir_a / "baselines.json").write_text('{"policies": {"do_nothing": {"safety": 1}}}')
    with pytest.raises(AnalysisError, match="baselines.json: policy 'do_nothing'"):
        load_results([dir_a])
    (dir_a / "baselines.json").write_text("{not json")
    with pytest.raises(AnalysisError, match="baselines.json: not valid JSON"):
        load_results([dir_a])


def test_markdown_table():
    frame = pd.DataFrame({"a": ["x|y", "z"], "b": [1.23456, math.nan], "c": [True, False]})
    assert to_markdown(frame) == (
        "| a | b | c |\n| --- | --- | --- |\n| x\\|y | 1.235 | True |\n| z |  | False |\n"
    )


# --------------------------------------------------------------------------------------------
# Equal budget on the validation objective (exp_c)


def test_validation_objective_at_equal_budget(validation):
    trials = at_budget(
        validation.experiment_trials(fx.EXP_C), validation.experiment_iterations(fx.EXP_C)
    ).set_index("trial_id")
    # c4 errored at 2000 steps and does not lower the budget; c0/c1 stopped at 4000 set it
    assert set(trials["budget_env_steps"]) == {4000}
    # c0 at 4000 steps carries its validation at 3000 (seeds 650, 750), not the unmeasured
    # 600/700 of that iteration; c2 was validated at 4000
    assert list(trials.loc["c0", "objective_at_budget_per_seed"]) == [650.0, 750.0]
    assert trials.loc["c0", "measured_env_steps"] == 3000
    assert list(trials.loc["c2", "objective_at_budget_per_seed"]) == [700.0, 750.0]
    assert trials.loc["c2", "measured_env_steps"] == 4000
    assert math.isnan(trials.loc["c4", "objective_at_budget"])
    assert list(trials["best_objective"]) == [700.0, 500.0, 410.0, 390.0, 1050.0]


def test_factor_table_compares_groups_at_the_shared_budget(validation):
    factors, improvements = factor_tables(validation, n_resamples=500, seed=0)
    assert set(factors["factor"]) == {"train_batch_size"}
    short = row(factors, group="1000", metric="objective")
    long = row(factors, group="2000", metric="objective")
    # at 4000 steps: batch 1000 [650, 750, 550, 450], batch 2000 [700, 750, 650, 700] (c4 out);
    # the batch-2000 runs end cheaper (best 410 and 390), which a best-of-run table would show
    assert (short["mean"], long["mean"]) == (600.0, 700.0)
    assert (short["n_trials"], short["n_stopped_early"]) == (2, 2)
    assert (long["n_trials"], long["n_stopped_early"]) == (2, 0)
    assert (short["budget_env_steps"], short["better"]) == (4000, "lower")
    p = row(improvements, metric="objective")
    assert (p["group_x"], p["group_y"], p["budget_env_steps"]) == ("1000", "2000", 4000)
    # lower wins: 650 beats 3 and ties 1, 750 ties 1, 550 and 450 beat all 4: 12 of 16
    assert p["p_x_beats_y"] == pytest.approx(12 / 16)


def test_budget_table_states_the_budget(validation, results):
    c = row(budget_table(validation), experiment=fx.EXP_C)
    assert (c["metric"], c["mode"], c["measured_by"]) == (
        "val_objective",
        "min",
        "validation (val_env_steps)",
    )
    assert (c["budget_env_steps"], c["trials"], c["compared"], c["stopped_early"]) == (
        4000,
        5,
        4,
        2,
    )
    assert (c["not_reached"], c["no_value"]) == (1, 0)
    assert (c["measured_env_steps_min"], c["measured_env_steps_max"]) == (3000, 4000)
    table = budget_table(results)  # the two objectives differ: no pooled row
    assert list(table["experiment"]) == [fx.EXP_A, fx.EXP_B]
    assert list(table["budget_env_steps"]) == [2000, 1500]
    assert row(table, experiment=fx.EXP_B)["measured_by"] == "training iteration (env_steps)"
    assert row(table, experiment=fx.EXP_B)["measured_env_steps_max"] == 2000  # b0's first row


def test_leaderboard_on_the_validation_objective(validation):
    board = leaderboard(validation, by="objective")
    # min: each trial's best validation, where it was measured, and whether ASHA stopped it
    assert list(board["trial_id"]) == ["c3", "c2", "c1", "c0", "c4"]
    assert list(board["best_objective"]) == [390.0, 410.0, 500.0, 700.0, 1050.0]
    assert list(board["best_env_steps"]) == [8000, 8000, 3000, 3000, 2000]
    assert list(board["stopped_early"]) == [False, False, True, True, False]
    assert list(board["objective_at_budget"])[:4] == [675.0, 725.0, 500.0, 700.0]


def test_budget_without_finished_trials_uses_every_trial(validation):
    trials = validation.experiment_trials(fx.EXP_C).assign(status="RUNNING")
    assert comparison_budget(trials, validation.experiment_iterations(fx.EXP_C)) == 2000


def test_curves_use_each_validation_once(validation):
    trials = validation.experiment_trials(fx.EXP_C)
    iterations = validation.experiment_iterations(fx.EXP_C)
    assert curve_panels(trials, iterations) == [
        ("objective", "val_env_steps", "validation objective ($/day), lower is better"),
        ("val_daily_cost", "val_env_steps", "validation daily cost ($/day)"),
    ]
    c0 = iterations[iterations["trial_id"] == "c0"]
    points = curve_points(c0, "val_objective", "val_env_steps")
    # four rows, two validations: at 1000 (seeds 900, 1000) and 3000 (650, 750)
    assert points["steps"].tolist() == [1000.0, 3000.0]
    assert points["value"].tolist() == [950.0, 700.0]


def test_curves_of_a_training_metric(results):
    trials = results.experiment_trials(fx.EXP_A)
    iterations = results.experiment_iterations(fx.EXP_A)  # no validation data
    assert curve_panels(trials, iterations) == [
        ("objective", "env_steps", "training episode return, higher is better"),
        ("daily_cost_mean", "env_steps", "training daily cost ($/day)"),
    ]
    points = curve_points(iterations[iterations["trial_id"] == "a3"], "objective", "env_steps")
    assert points["steps"].tolist() == [1000.0, 2000.0]
