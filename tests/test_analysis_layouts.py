"""The layout factor (policy_sharing x critic) and the interval-separation statements."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.load import load_results
from analysis.report import SEPARATION_TEXT, build_report
from analysis.separation import interval_separation, separation_statements
from analysis.tables import LAYOUT_FACTOR, factor_definitions, factor_tables

try:
    from tests import fixtures_results as fx
except ImportError:  # pytest's rootdir-less import mode puts tests/ itself on sys.path
    import fixtures_results as fx  # type: ignore[no-redef]

EXP = "layouts"
# Test-day cost per seed (lower is better): MAPPO clearly cheapest, the others overlap.
LAYOUT_COSTS = {
    ("shared", "centralized"): [500, 502, 504, 506, 508],
    ("independent", "centralized"): [600, 640, 680, 720, 760],
    ("shared", "local"): [620, 660, 700, 740, 780],
    ("independent", "local"): [610, 650, 690, 730, 770],
}


def _layout_specs() -> list[fx.TrialSpec]:
    specs = []
    for index, ((sharing, critic), costs) in enumerate(LAYOUT_COSTS.items()):
        specs.append(
            fx.TrialSpec(
                f"t{index}",
                {"policy_sharing": sharing, "critic": critic, "lr": 5e-4},
                [float(c) for c in costs],
                [float(c) for c in costs],
                iterations=6,
            )
        )
    return specs


@pytest.fixture(scope="module")
def layout_dir(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    directory = tmp_path_factory.mktemp("results") / EXP
    fx.write_experiment(directory, EXP, _layout_specs(), metric="daily_cost_mean", mode="min")
    return directory


def test_layout_is_one_factor_named_by_its_four_layouts(layout_dir) -> None:  # noqa: ANN001
    results = load_results([layout_dir])
    trials = results.experiment_trials(EXP)
    assert factor_definitions(trials) == [
        LAYOUT_FACTOR,
        ("param_policy_sharing",),
        ("param_critic",),
    ]
    factors, improvements = factor_tables(results, n_resamples=500, seed=0)
    layout = factors[(factors["factor"] == "layout") & (factors["metric"] == "test_daily_cost")]
    assert sorted(layout["group"]) == [
        "IPPO (independent+local)",
        "MAPPO (shared+centralized)",
        "shared PPO (shared+local)",
        "unshared MAPPO (independent+centralized)",
    ]
    mappo = layout[layout["group"] == "MAPPO (shared+centralized)"].iloc[0]
    assert mappo["iqm"] == pytest.approx(504.0) and mappo["n_values"] == 5
    assert mappo["iqm_ci_low"] >= 500 and mappo["iqm_ci_high"] <= 508
    pairs = improvements[
        (improvements["factor"] == "layout") & (improvements["metric"] == "test_daily_cost")
    ]
    assert len(pairs) == 6


def test_separation_marks_non_overlapping_intervals_only() -> None:
    factors = pd.DataFrame(
        [
            {"group": "A", "iqm": 1.5, "iqm_ci_low": 1.0, "iqm_ci_high": 2.0},
            {"group": "B", "iqm": 3.5, "iqm_ci_low": 3.0, "iqm_ci_high": 4.0},
            {"group": "C", "iqm": 2.5, "iqm_ci_low": 2.0, "iqm_ci_high": 3.0},  # touches A, B
            {"group": "D", "iqm": math.nan, "iqm_ci_low": math.nan, "iqm_ci_high": math.nan},
        ]
    ).assign(experiment="e", factor="f", metric="cost", better="lower", n_values=5)
    table = interval_separation(factors)
    assert list(zip(table["group_x"], table["group_y"], table["separated"], strict=True)) == [
        ("A", "B", True),
        ("A", "C", False),
        ("B", "C", False),
    ]
    assert list(table["better_group"]) == ["A", "", ""]
    higher = interval_separation(factors.assign(better="higher"))
    assert list(higher["better_group"]) == ["B", "", ""]
    (sentence,) = separation_statements(table, 0.95)
    assert sentence == (
        "e, f, cost (lower is better): separated by their 95% IQM intervals: "
        "A (1.5 [1, 2]) better than B (3.5 [3, 4]). Not separated: A vs C; B vs C."
    )
    (none,) = separation_statements(table[~table["separated"]], 0.95)
    assert none == (
        "e, f, cost (lower is better): no pair of groups is separated by its 95% IQM intervals "
        "(A vs C; B vs C): these seeds do not tell the groups apart."
    )


def test_groups_with_too_few_values_are_never_called_separated() -> None:
    # Far apart, but one value (a zero-width interval) or two cannot support a claim.
    factors = pd.DataFrame(
        [
            {"group": "A", "iqm": 1.0, "iqm_ci_low": 1.0, "iqm_ci_high": 1.0, "n_values": 1},
            {"group": "B", "iqm": 9.0, "iqm_ci_low": 8.0, "iqm_ci_high": 10.0, "n_values": 5},
            {"group": "C", "iqm": 2.0, "iqm_ci_low": 1.5, "iqm_ci_high": 2.5, "n_values": 2},
            {"group": "D", "iqm": 5.0, "iqm_ci_low": 4.5, "iqm_ci_high": 5.5, "n_values": 3},
        ]
    ).assign(experiment="e", factor="f", metric="cost", better="lower")
    table = interval_separation(factors)
    rows = {
        (x, y): (e, s)
        for x, y, e, s in table[["group_x", "group_y", "enough_values", "separated"]].itertuples(
            index=False
        )
    }
    assert rows[("A", "B")] == (False, False)
    assert rows[("B", "C")] == (False, False)
    assert rows[("B", "D")] == (True, True)
    (sentence,) = separation_statements(table, 0.95)
    assert sentence == (
        "e, f, cost (lower is better): separated by their 95% IQM intervals: "
        "D (5 [4.5, 5.5]) better than B (9 [8, 10]). "
        "Too few values to compare (< 3): A vs B; A vs C; A vs D; B vs C; C vs D."
    )
    (lonely,) = separation_statements(table[~table["enough_values"]], 0.95)
    assert lonely.endswith(
        "no pair has 3 or more values in both groups. Too few values to "
        "compare (< 3): A vs B; A vs C; A vs D; B vs C; C vs D."
    )


def test_report_states_the_separated_layouts_and_draws_their_curves(layout_dir) -> None:  # noqa: ANN001
    report = build_report([layout_dir], n_resamples=500)
    html = report.read_text(encoding="utf-8")
    assert "Which differences the intervals separate" in html
    assert (report.parent / "plots" / f"curves_{EXP}_layout.png").is_file()
    lines = (report.parent / SEPARATION_TEXT).read_text().splitlines()
    layout_cost = [line for line in lines if line.startswith(f"{EXP}, layout, test_daily_cost")]
    assert len(layout_cost) == 1
    sentence = layout_cost[0]
    assert sentence.count("MAPPO (shared+centralized) (504 [") == 3
    for other in ("unshared MAPPO", "shared PPO", "IPPO"):
        assert f"better than {other} (" in sentence
    assert "Not separated: " in sentence and sentence.count(" vs ") == 3
    assert sentence in html.replace("&#x27;", "'")
    table = pd.read_csv(report.parent / "separation.csv")
    layout = table[(table["factor"] == "layout") & (table["metric"] == "test_daily_cost")]
    assert int(layout["separated"].sum()) == 3


def test_report_command_prints_the_statements(layout_dir, capsys) -> None:  # noqa: ANN001
    from tune_grid.cli import main

    assert main(["report", str(layout_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Differences the IQM intervals separate")
    assert any(line.startswith(f"- {EXP}, layout, test_daily_cost") for line in out)
    assert out[-1].startswith("report: ")
