"""The confirmation stage end to end: a real tiny search on a local Ray whose driver is killed
during confirmation, resumed, then its answer, report and every printed checkpoint path."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from search_cli import cli_env, kill_search_when, search_command
from tiny import tiny_search

from tune_grid.results.schema import CONFIRM_FILE, TRIALS_FILE, read_results

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SPACE: dict[str, Any] = tiny_search(
    experiment="confirmed",
    stop={"env_steps": 288},
    evaluation={"top_k": 2, "days": 3, "oracle": False, "mpc": None},
    confirm={
        "top_k": 2,
        "seeds": 4,
        "seeds_per_round": 2,
        "days": 4,
        "factors": ["policy_sharing"],
        "tolerance": 0.0,
    },
)


def _confirm_rows(results: Path) -> list[dict[str, Any]]:
    path = results / CONFIRM_FILE
    if not path.exists():
        return []
    try:
        return read_results(path, "confirm").to_pylist()
    except Exception:  # noqa: BLE001 - written atomically, but read while it is replaced
        return []


@pytest.fixture(scope="module")
def resumed_search(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Kill the driver once the first confirmed runs are written, then ``--resume``."""
    tmp = tmp_path_factory.mktemp("confirm")
    space = tmp / "confirmed.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    storage = tmp / "results"
    results = storage / "confirmed"
    kill_search_when(
        search_command(space, storage, "-v", "0"),
        tmp,
        lambda: bool(_confirm_rows(results)),
        timeout=600,
        what="the first confirmed run",
    )
    before = _confirm_rows(results)
    resumed = subprocess.run(
        search_command(space, storage, "-v", "0", "--resume"),
        cwd=tmp,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    return {"results": results, "before": before, "resumed": resumed, "tmp": tmp}


def test_killed_during_confirmation_resumes_without_losing_or_repeating_a_run(
    resumed_search: dict[str, Any],
) -> None:
    resumed = resumed_search["resumed"]
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    results: Path = resumed_search["results"]
    before, after = resumed_search["before"], _confirm_rows(results)
    keys = [(r["candidate"], r["seed"]) for r in after]
    assert len(keys) == len(set(keys)), keys
    after_by_key = {(r["candidate"], r["seed"]): r for r in after}
    for row in before:  # what was confirmed before the kill is kept as it was
        kept = after_by_key[(row["candidate"], row["seed"])]
        assert kept["test_daily_costs"] == row["test_daily_costs"]
        assert kept["checkpoint_path"] == row["checkpoint_path"]
    racing = json.loads((results / "racing.json").read_text())
    expected = {
        (name, seed)
        for round_ in racing["rounds"]
        for name in [round_["best"], *(c["name"] for c in round_["comparisons"])]
        for seed in round_["seeds"]
    }
    assert set(keys) == expected
    assert racing["stop_reason"] in (
        "one configuration remains",
        "seed budget spent",
    ) or racing["stop_reason"].startswith("the remaining configurations")
    search_seeds = set(read_results(results / TRIALS_FILE, "trials").column("seed").to_pylist())
    assert not {seed for _, seed in keys} & search_seeds


def test_the_answer_ends_the_output_and_names_what_a_user_needs(
    resumed_search: dict[str, Any],
) -> None:
    output = resumed_search["resumed"].stdout
    tail = output[output.index("ANSWER (confirmed)") :]
    assert "recommended: " in tail and "test cost: IQM $" in tail
    assert "same days: do_nothing $" in tail and "rule_based $" in tail
    assert "train it: tune-grid train " in tail and "race: " in tail
    answer = json.loads((resumed_search["results"] / "answer.json").read_text())
    assert len(answer["seeds"]) >= 2 and answer["days"] == 4
    assert answer["test_cost"]["low"] <= answer["test_cost"]["value"] <= answer["test_cost"]["high"]
    names = {a["name"] for a in answer["alternatives"]} | {answer["recommended"]["name"]}
    assert len(names) == 3  # c1, c2 and the factor variant of the best


def test_every_checkpoint_path_it_prints_evaluates(
    resumed_search: dict[str, Any], run_cli: Any
) -> None:
    results: Path = resumed_search["results"]
    answer = json.loads((results / "answer.json").read_text())
    trial_paths = read_results(results / TRIALS_FILE, "trials").column("checkpoint_path")
    paths = [
        answer["checkpoints"][0],
        *[p for p in trial_paths.to_pylist() if p],
        *(r["checkpoint_path"] for r in _confirm_rows(results) if r["checkpoint_path"]),
    ]
    assert len(paths) >= 4
    for path in paths[:4]:  # the answer's, the search's trial checkpoints, a confirmed run's
        result = run_cli("evaluate", path, "--days", "2")
        assert result.returncode == 0, result.stderr[-2000:]
        assert "trained" in result.stdout
    multi = next(p for p in trial_paths.to_pylist() if p)
    result = run_cli("evaluate", multi, "--days", "2")
    assert "seed_0:" in result.stdout  # a search trial's checkpoint evaluates each seed
    for path in (multi, answer["checkpoints"][0]):
        result = run_cli("oracle", "--days", "2", "--checkpoint", path)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "policy 1" in result.stdout


def test_report_shows_the_answer_above_the_fold(
    resumed_search: dict[str, Any], tmp_path: Path
) -> None:
    binary = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if binary is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    from analysis import build_report

    report = build_report([resumed_search["results"]], tmp_path / "report")
    # A copy with a probe that writes the answer block's box into the title (the report itself
    # carries no script); headless Chromium lays the page out in a 1400 x 900 window.
    probe = (
        "<script>window.onload=function(){var r=document.getElementById('answer')"
        ".getBoundingClientRect();document.title='BOX '+r.top+' '+r.bottom+' '+"
        "window.innerHeight+' '+document.documentElement.scrollWidth;}</script>"
    )
    page = tmp_path / "probe.html"
    page.write_text(report.read_text().replace("</body>", probe + "</body>"))
    result = subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,900",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    title = result.stdout.split("<title>")[1].split("</title>")[0]
    _, top, bottom, height, width = title.split()
    # The viewport of a 1400 x 900 window is smaller than the window (its frame): 757 px here.
    assert 700 < float(height) <= 900, title
    assert float(top) >= 0 and float(bottom) <= float(height), title
    assert float(width) <= 1400, title  # nothing pushes the page sideways
    assert "recommended: " in result.stdout and "test cost: IQM $" in result.stdout
