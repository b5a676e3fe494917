"""analysis.report / python -m analysis: outputs, HTML, errors, robustness, speed, isolation."""

from __future__ import annotations

import base64
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis import AnalysisError, build_report
from tune_grid.results.schema import ITERATIONS_FILE, TRIALS_FILE, VERSION_KEY, with_metadata

try:
    from tests import fixtures_results as fx
except ImportError:  # pytest's rootdir-less import mode puts tests/ itself on sys.path
    import fixtures_results as fx  # type: ignore[no-redef]

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
TABLE_STEMS = (
    "summary",
    "budget",
    "leaderboard_objective",
    "leaderboard_test_cost",
    "factors",
    "improvement",
    "importance",
    "early_stopping_rungs",
    "early_stopping_compute",
    "baselines",
)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "analysis", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )


def assert_references_every_png(report: Path) -> list[Path]:
    html = report.read_text(encoding="utf-8")
    pngs = sorted((report.parent / "plots").glob("*.png"))
    for png in pngs:
        assert f"plots/{png.name}" in html, f"{png.name} not linked"
        assert base64.b64encode(png.read_bytes()).decode() in html, f"{png.name} not embedded"
    embedded = re.findall(r"data:image/png;base64,", html)
    assert len(embedded) == len(pngs)
    return pngs


def assert_self_contained(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)=['"](https?:)?//""", html)
    assert "<link" not in html.lower()


# --------------------------------------------------------------------------------------------
# The full report


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("full")
    dir_a, dir_b = fx.two_experiments(root)
    fx.write_optuna_study(dir_a, fx.EXP_A, fx.SPECS_A)
    return build_report([dir_a, dir_b]), dir_a


def test_report_default_location_and_files(full_report):
    report, dir_a = full_report
    assert report == dir_a / "report" / "report.html"
    for stem in TABLE_STEMS:
        assert (report.parent / f"{stem}.csv").stat().st_size > 0
        assert (report.parent / f"{stem}.md").read_text().startswith("| ")


def test_report_plots_are_all_referenced(full_report):
    report, _ = full_report
    names = {p.name for p in assert_references_every_png(report)}
    expected = {
        "curves_exp_a_policy_sharing_x_share_reward.png",
        "curves_exp_a_policy_sharing.png",
        "curves_exp_a_share_reward.png",
        "curves_exp_b_policy_sharing.png",
        "importance_exp_a.png",
        "importance_exp_b.png",
        "parallel_exp_a.png",
        "parallel_exp_b.png",
        "early_stopping_exp_a.png",
        "early_stopping_exp_b.png",
        "baselines_exp_a.png",
        "baselines_exp_b.png",
    }
    assert names == expected
    for name in names:  # real PNGs
        assert (report.parent / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_self_contained(report)


def test_report_content(full_report):
    report, _ = full_report
    html = report.read_text(encoding="utf-8")
    assert "<title>tune-grid report: exp_a, exp_b</title>" in html
    for heading in (
        "Leaderboards",
        "Factors",
        "Probability of improvement",
        "Learning curves",
        "Hyperparameter importance",
        "Early stopping",
        "Test days vs. baselines",
    ):
        assert heading in html
    assert "ranges from study &#x27;exp_a&#x27;" in html
    assert "rule_based" in html and "selected by objective" in html
    assert "0.5556" in html  # P(independent beats shared) in exp_a at 2000 env steps, 20/36
    assert "Trials are compared at equal budget" in html
    assert "training_iteration=12" in html  # exp_b's legacy stop bound


def test_report_on_the_validation_objective(tmp_path):
    directory = fx.validation_experiment(tmp_path)
    report = build_report([directory])
    names = {p.name for p in assert_references_every_png(report)}
    assert "curves_exp_c_train_batch_size.png" in names
    html = report.read_text(encoding="utf-8")
    assert "validation (val_env_steps)" in html and "env_steps=8000" in html
    # c4 errored before the budget: the report says who was compared
    assert "exp_c: 4 of 5 trials compared at 4000 env steps (1 did not reach it" in html
    budget = (report.parent / "budget.csv").read_text().splitlines()
    assert budget[0].startswith("experiment,metric,mode,measured_by,budget_env_steps")
    assert budget[1].startswith("exp_c,val_objective,min,validation (val_env_steps),4000,5,4,2,1")
    leaderboard = (report.parent / "leaderboard_objective.csv").read_text().splitlines()
    assert [line.split(",")[2] for line in leaderboard[1:]] == ["c3", "c2", "c1", "c0", "c4"]


def test_rerun_replaces_stale_plots(tmp_path):
    directory = fx.write_experiment(tmp_path / "e", "e", fx.SPECS_A)
    stale = directory / "report" / "plots" / "old.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"\x89PNG old")
    report = build_report([directory])
    assert not stale.exists()
    assert_references_every_png(report)


def test_out_dir_and_cli_success(tmp_path):
    dir_a, dir_b = fx.two_experiments(tmp_path / "r")
    out = tmp_path / "elsewhere"
    result = run_cli(str(dir_a), str(dir_b), "--out", str(out), "--resamples", "200")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out / "report.html")
    assert_references_every_png(out / "report.html")


# --------------------------------------------------------------------------------------------
# Robustness: what a real tiny search may produce


def test_single_trial_without_test_or_side_files(tmp_path):
    spec = fx.TrialSpec("only", {"policy_sharing": "shared", "lr": 1e-4}, [1.5], None, 3)
    directory = fx.write_experiment(tmp_path / "one", "one", [spec])
    report = build_report([directory])
    pngs = assert_references_every_png(report)
    assert {p.name for p in pngs} == {"curves_one_all_trials.png", "early_stopping_one.png"}
    html = report.read_text()
    assert "No hyperparameter varies" in html
    assert "fANOVA skipped: no hyperparameter varies among the compared trials" in html
    assert "No trial was evaluated on the test days and no baselines.json" in html


def test_constant_params_and_nan_tests(tmp_path):
    specs = [
        fx.TrialSpec(
            f"t{i}",
            {"policy_sharing": "shared", "share_reward": False, "lr": 1e-4},
            [float(i), float(i) + 1],
            None,
            4,
        )
        for i in range(4)
    ]
    directory = fx.write_experiment(tmp_path / "c", "c", specs)
    report = build_report([directory])
    assert_references_every_png(report)
    html = report.read_text()
    assert "fixed hyperparameters: policy_sharing=shared, share_reward=False, lr=0.0001" in html
    assert "No categorical hyperparameter varies" in html


def test_trial_without_iterations_and_errored(tmp_path):
    specs = [
        fx.TrialSpec("ok", {"policy_sharing": "shared"}, [1.0], [100.0], 3),
        fx.TrialSpec("err", {"policy_sharing": "independent"}, [math.nan], None, 0, status="ERROR"),
    ]
    directory = fx.write_experiment(tmp_path / "e", "e", specs)
    report = build_report([directory])
    assert_references_every_png(report)


def test_fifty_trials_give_a_complete_report(tmp_path):
    """(How long it takes is a benchmark's question, not a test's: machines here are noisy.)"""
    directory = tmp_path / "big"
    specs = fx.random_experiment(directory, n_trials=50, seeds=3)
    fx.write_optuna_study(directory, "random_search", specs)
    report = build_report([directory])
    assert len(assert_references_every_png(report)) >= 8


# --------------------------------------------------------------------------------------------
# Errors


def test_missing_directory_and_file(tmp_path):
    with pytest.raises(AnalysisError, match=re.escape(str(tmp_path / "nope"))):
        build_report([tmp_path / "nope"])
    directory = fx.write_experiment(tmp_path / "e", "e", fx.SPECS_A)
    (directory / ITERATIONS_FILE).unlink()
    with pytest.raises(AnalysisError, match=re.escape(str(directory / ITERATIONS_FILE))):
        build_report([directory])


def test_other_schema_version(tmp_path):
    directory = fx.write_experiment(tmp_path / "e", "e", fx.SPECS_A)
    table = pq.read_table(directory / TRIALS_FILE)
    metadata = dict(table.schema.metadata)
    metadata[VERSION_KEY] = b"0"
    pq.write_table(table.replace_schema_metadata(metadata), directory / TRIALS_FILE)
    with pytest.raises(AnalysisError, match=r"trials\.parquet: schema version 0") as info:
        build_report([directory])
    assert str(directory / TRIALS_FILE) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_corrupt_parquet(tmp_path):
    directory = fx.write_experiment(tmp_path / "e", "e", fx.SPECS_A)
    (directory / ITERATIONS_FILE).write_bytes(b"PAR1 this is not parquet at all PAR1")
    with pytest.raises(AnalysisError, match="not a readable Parquet file") as info:
        build_report([directory])
    assert str(directory / ITERATIONS_FILE) in str(info.value)


def test_empty_experiment(tmp_path):
    directory = fx.write_experiment(tmp_path / "e", "e", fx.SPECS_A)
    table = pq.read_table(directory / TRIALS_FILE).slice(0, 0)
    pq.write_table(with_metadata(table, "trials"), directory / TRIALS_FILE)
    with pytest.raises(AnalysisError, match="no trials") as info:
        build_report([directory])
    assert str(directory / TRIALS_FILE) in str(info.value)


@pytest.mark.parametrize("case", ["missing", "version", "corrupt", "empty"])
def test_cli_exits_2_with_one_line_error(tmp_path, case):
    directory = fx.write_experiment(tmp_path / "e", "e", fx.SPECS_A[:2])
    target = directory / TRIALS_FILE
    if case == "missing":
        target.unlink()
    elif case == "version":
        table = pq.read_table(target)
        pq.write_table(table.replace_schema_metadata({VERSION_KEY: b"0"}), target)
    elif case == "corrupt":
        target.write_bytes(os.urandom(256))
    else:
        empty = pa.Table.from_batches([], schema=pq.read_table(target).schema)
        pq.write_table(empty, target)
    result = run_cli(str(directory))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert str(target) in lines[0]
    assert not (directory / "report" / "report.html").exists()


# --------------------------------------------------------------------------------------------
# Isolation and the browser


def test_analysis_imports_neither_ray_nor_torch():
    code = (
        "import sys, analysis.report, analysis.__main__; "
        "assert 'ray' not in sys.modules and 'torch' not in sys.modules, "
        "sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'torch'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_report_renders_in_headless_chromium(full_report, tmp_path):
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    report, _ = full_report
    binary = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    result = subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            report.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Uncaught" not in result.stderr
    assert "ERROR:CONSOLE" not in result.stderr
    assert "tune-grid report: exp_a, exp_b" in result.stdout
    assert result.stdout.count("<img") == len(list((report.parent / "plots").glob("*.png")))
