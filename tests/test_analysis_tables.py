"""Every table value of the analysis checked against a hand computation on the fixture.

The fixture (tests/fixtures_results.py) has two experiments: exp_a (mode max, 2 seeds, six
trials, three stopped early) and exp_b (mode min, 1 seed, baselines.json, max_iterations 12).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.early_stopping import early_stopping_tables
from analysis.importance import epsilon_squared, importance_table, variance_importance
from analysis.load import AnalysisError, load_results
from analysis.tables import (
    ALL_EXPERIMENTS,
    baseline_table,
    factor_definitions,
    factor_tables,
    leaderboard,
    to_markdown,
)

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


def test_load_keeps_experiments_and_side_files(results):
    assert results.experiments == [fx.EXP_A, fx.EXP_B]
    assert len(results.trials) == 11
    assert results.max_iterations == {fx.EXP_A: None, fx.EXP_B: 12}
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
    shared = [1, 3, 0, 10, 1, 5]  # a0, a1, a5 seeds
    independent = [4, 8, -1, 1, 2, 2]  # a2, a3, a4 seeds
    for group, values in (("shared", shared), ("independent", independent)):
        r = row(
            factors, experiment=fx.EXP_A, factor="policy_sharing", group=group, metric="objective"
        )
        assert r["mean"] == pytest.approx(sum(values) / len(values))
        assert r["iqm"] == pytest.approx(hand_iqm(values))
        assert (r["n_trials"], r["n_values"], r["better"]) == (3, 6, "higher")
        assert r["mean_ci_low"] <= r["mean"] <= r["mean_ci_high"]
    assert row(
        factors, experiment=fx.EXP_A, factor="policy_sharing", group="shared", metric="objective"
    )["iqm"] == pytest.approx(2.5)
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
    b = row(
        factors, experiment=fx.EXP_B, factor="policy_sharing", group="shared", metric="objective"
    )
    assert b["mean"] == pytest.approx((900 + 1000 + 870) / 3) and b["better"] == "lower"


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
    assert (r["mean_ci_low"], r["mean_ci_high"]) == (1.0, 3.0)
    # two one-seed trials 950 and 1100: means 950, 1025, 1100 with p 1/4, 1/2, 1/4
    r = row(
        factors,
        experiment=fx.EXP_B,
        factor="policy_sharing",
        group="independent",
        metric="objective",
    )
    assert (r["mean_ci_low"], r["mean_ci_high"]) == (950.0, 1100.0)
    # three one-seed trials: the extremes have p = 1/27 > 2.5% each
    r = row(
        factors, experiment=fx.EXP_B, factor="policy_sharing", group="shared", metric="objective"
    )
    assert (r["mean_ci_low"], r["mean_ci_high"]) == (870.0, 1000.0)
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
    assert r["p_x_beats_y"] == pytest.approx(17 / 36)  # 1 - P(shared > independent) = 1 - 19/36
    assert (r["n_x"], r["n_y"]) == (6, 6)
    r = row(improvements, experiment=fx.EXP_A, factor="policy_sharing", metric="test_daily_cost")
    assert r["p_x_beats_y"] == 1.0  # 90 and 96 are cheaper than every shared value
    # exp_b minimises: independent [950, 1100] beats shared [900, 1000, 870] only as 950 < 1000
    r = row(improvements, experiment=fx.EXP_B, factor="policy_sharing", metric="objective")
    assert r["p_x_beats_y"] == pytest.approx(1 / 6)
    r = row(improvements, experiment=fx.EXP_A, factor="share_reward", metric="objective")
    false, true = [0, 10, -1, 1, 1, 5], [1, 3, 4, 8, 2, 2]
    wins = sum((x > y) + 0.5 * (x == y) for x in false for y in true)
    assert r["p_x_beats_y"] == pytest.approx(wins / 36)


def test_early_stopping_rungs_and_compute_saved(results):
    rungs, compute = early_stopping_tables(results)
    counts = {(r.experiment, r.rung): r.trials_stopped for r in rungs.itertuples()}
    assert counts == {(fx.EXP_A, 2): 1, (fx.EXP_A, 4): 2, (fx.EXP_B, 3): 2}
    a = row(compute, experiment=fx.EXP_A)
    # ran 8+8+8+2+4+4 = 34; the three stopped trials run to the observed max of 8: 48
    assert (a["max_iterations"], a["max_iterations_source"]) == (8, "observed")
    assert (a["iterations_run"], a["iterations_full"], a["iterations_saved"]) == (34, 48, 14)
    assert a["iterations_saved_frac"] == pytest.approx(14 / 48)
    assert (a["env_steps_run"], a["env_steps_full"], a["env_steps_saved"]) == (34000, 48000, 14000)
    b = row(compute, experiment=fx.EXP_B)
    # bound 12 from metadata: ran 10+10+3+3+10 = 36; stopped b2, b3 to 12: 10+10+12+12+10 = 54
    assert (b["max_iterations"], b["max_iterations_source"]) == (12, "metadata")
    assert (b["iterations_run"], b["iterations_full"], b["iterations_saved"]) == (36, 54, 18)
    # steps: 3 x 20000 + 2 x 3 x 500 = 63000 run; stopped at 500 per iteration to 12: 72000
    assert (b["env_steps_run"], b["env_steps_full"], b["env_steps_saved"]) == (63000, 72000, 9000)
    assert b["env_steps_saved_frac"] == pytest.approx(9000 / 72000)
    assert (a["trials"], a["stopped_early"], b["trials"], b["stopped_early"]) == (6, 3, 5, 2)


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


def test_fallback_importance(results):
    trials = results.experiment_trials(fx.EXP_A)
    frame = variance_importance(trials, "last_objective").set_index("param")
    objective = trials["last_objective"].to_numpy()
    sharing = trials["param_policy_sharing"]
    assert frame.loc["policy_sharing", "importance"] == pytest.approx(
        epsilon_squared(sharing, objective)
    )
    assert frame.loc["num_epochs", "importance"] == 0.0  # constant
    assert frame["share"].sum() == pytest.approx(1.0)
    table, notes = importance_table(results)
    assert set(table["method"]) == {"binned_variance"}
    assert any("no optuna.db" in n for n in notes[fx.EXP_A])


def test_fanova_from_optuna_study(tmp_path):
    pytest.importorskip("sklearn")
    dir_a, _ = fx.two_experiments(tmp_path)
    fx.write_optuna_study(dir_a, fx.EXP_A, fx.SPECS_A)
    table, notes = importance_table(load_results([dir_a]))
    fanova = table[table["method"] == "fanova"]
    assert set(fanova["param"]) == {"policy_sharing", "share_reward", "lr"}  # nested name mapped
    assert fanova["importance"].sum() == pytest.approx(1.0)
    assert any("fANOVA on study 'exp_a'" in n for n in notes[fx.EXP_A])


def test_broken_optuna_db_is_a_note_not_an_error(tmp_path):
    dir_a, _ = fx.two_experiments(tmp_path)
    (dir_a / "optuna.db").write_bytes(b"not a database" * 10)
    before = (dir_a / "optuna.db").read_bytes()
    table, notes = importance_table(load_results([dir_a]))
    assert any(n.startswith("fANOVA skipped") for n in notes[fx.EXP_A])
    assert (dir_a / "optuna.db").read_bytes() == before
    assert set(table["method"]) == {"binned_variance"}


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
