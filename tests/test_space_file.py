"""Search-space YAML validation: every shipped file loads; each bad case names file and key path."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tune_grid.config import RunConfig
from tune_grid.search.spec.space_file import SpaceFileError, load_space_file, parse_space

REPO = Path(__file__).resolve().parents[1]
SPACES = sorted((REPO / "search_spaces").glob("*.yaml"))
BASE: dict[str, Any] = {
    "experiment": "t",
    "fixed": {"minibatch_size": 32},
    "space": {
        "lr": {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-2},
        "policy_sharing": {"type": "choice", "values": ["shared", "independent"]},
    },
    "stop": {"training_iteration": 3},
}


def _error(data: Any, tmp_path: Path) -> str:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpaceFileError) as info:
        load_space_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    return message


def _with(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    change(data)
    return data


@pytest.mark.parametrize("path", SPACES, ids=[p.name for p in SPACES])
def test_every_shipped_space_loads(path: Path) -> None:
    spec = load_space_file(path)
    assert spec.experiment
    assert spec.space
    for name in spec.space:
        assert name in RunConfig.field_names()
    RunConfig.from_dict(spec.fixed_config())


def test_shipped_spaces_exist_and_comment_keys() -> None:
    names = {p.name for p in SPACES}
    assert {"quickstart.yaml", "sharing.yaml", "lr_batch.yaml", "full.yaml"} <= names
    quick = load_space_file(REPO / "search_spaces" / "quickstart.yaml")
    assert {"lr", "train_batch_size", "share_reward", "policy_sharing"} <= set(quick.space)
    for name in ("quickstart.yaml", "sharing.yaml", "lr_batch.yaml", "full.yaml"):
        text = (REPO / "search_spaces" / name).read_text()
        assert text.count("#") >= 8, f"{name} should explain its keys in comments"


def test_good_file_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(BASE))
    spec = load_space_file(path)
    assert spec.metric == "val_objective" and spec.resolved_mode == "min"
    assert spec.scheduler.time_attr == "env_steps" and spec.validation.oracle
    assert spec.search.algorithm == "optuna" and spec.scheduler.type == "asha"
    assert spec.with_name("other").experiment == "other"
    cost = parse_space({**BASE, "metric": "daily_cost_mean"})
    assert cost.resolved_mode == "min"
    assert parse_space({**BASE, "metric": "episode_return_mean"}).resolved_mode == "max"


def test_yaml_11_exponents_are_numbers(tmp_path: Path) -> None:
    data = _with(lambda d: d["space"].update(lr={"type": "loguniform", "low": "1e-4", "high": 0.1}))
    data["fixed"]["gamma"] = "9.9e-1"
    spec = parse_space(data)
    assert spec.space["lr"].low == pytest.approx(1e-4)
    assert spec.fixed_config()["gamma"] == pytest.approx(0.99)


@pytest.mark.parametrize(
    ("change", "key_path", "fragment"),
    [
        (lambda d: d["space"]["lr"].update(type="gauss"), "space.lr.type", "allowed: 'loguniform'"),
        (lambda d: d["space"]["lr"].update(low=0.1, high=0.01), "space.lr.low", "must be < high"),
        (lambda d: d["space"]["lr"].update(low=0.0), "space.lr.low", "must be > 0"),
        (
            lambda d: d["space"]["policy_sharing"].update(values=[]),
            "space.policy_sharing.values",
            "non-empty",
        ),
        (lambda d: d["space"].update(foo={"type": "bool"}), "space.foo", "unknown run config"),
        (
            lambda d: d["space"]["policy_sharing"].update(values=["shared", "mixed"]),
            "space.policy_sharing.values[1]",
            "'shared', 'independent'",
        ),
        (
            lambda d: d["space"].update(policy_sharing={"type": "int", "low": 0, "high": 1}),
            "space.policy_sharing.type",
            "policy_sharing is one of 'shared'",
        ),
        (
            lambda d: d["space"].update(
                train_batch_size={"type": "loguniform", "low": 96, "high": 960}
            ),
            "space.train_batch_size.type",
            "train_batch_size is int",
        ),
        (
            lambda d: d["space"].update(share_reward={"type": "choice", "values": [1, 0]}),
            "space.share_reward.values[0]",
            "true or false",
        ),
        (
            lambda d: d["space"].update(share_reward={"type": "bool", "values": [True]}),
            "space.share_reward.values",
            "not allowed for type bool",
        ),
        (
            lambda d: d["space"].update(num_epochs={"type": "int", "low": 1.5, "high": 3}),
            "space.num_epochs.low",
            "integer",
        ),
        (
            lambda d: d["space"].update(train_batch_size={"type": "choice", "values": [16, 64]}),
            "space.train_batch_size.values[0]",
            "train_batch_size must be >= 24",
        ),
        (lambda d: d["space"]["lr"].update(lowx=1), "space.lr.lowx", "allowed: type, low"),
        (lambda d: d.update(bogus=1), "bogus", "unknown key; allowed: experiment"),
        (lambda d: d.update(scheduler={"max_tt": 3}), "scheduler.max_tt", "unknown key"),
        (
            lambda d: d.update(scheduler={"type": "hyperband"}),
            "scheduler.type",
            "'asha', 'fifo', 'pbt' or 'pb2'",
        ),
        (
            lambda d: d.update(scheduler={"grace_period": 9, "max_t": 3}),
            "scheduler.grace_period",
            "<= max_t",
        ),
        (lambda d: d.update(fixed={"foo": 1}), "fixed.foo", "unknown run config key"),
        (lambda d: d["fixed"].update(gamma="high"), "fixed.gamma", "expected a number"),
        (lambda d: d["fixed"].update(gamma=2.0), "fixed.gamma", "gamma must be in (0, 1]"),
        (lambda d: d["fixed"].update(lr=0.1), "space.lr", "also set in fixed"),
        (lambda d: d.update(search={"algorithm": "grid"}), "space.lr.type", "grid search"),
        (lambda d: d.update(search={"algorithm": "tpe"}), "search.algorithm", "'optuna'"),
        (
            lambda d: d["space"].update(penalty={"type": "uniform", "low": 1, "high": 20}),
            "space.penalty",
            "metric val_objective charges penalty",
        ),
        (lambda d: d.pop("experiment"), "experiment", "required key is missing"),
        (lambda d: d.update(experiment="a b"), "experiment", "letters, digits"),
        (lambda d: d.update(space={}), "space", "at least one"),
        (lambda d: d["space"].update(lr="loguniform"), "space.lr", "expected a mapping"),
        (lambda d: d.update(seeds=0), "seeds", "must be >= 1"),
        (lambda d: d.update(metric="reward"), "metric", "'val_objective'"),
        (lambda d: d.update(mode="maximize"), "mode", "'max' or 'min'"),
        (lambda d: d.update(stop={"iterations": 3}), "stop.iterations", "'training_iteration'"),
        (lambda d: d.update(stop={"env_steps": 0}), "stop.env_steps", "must be > 0"),
        (
            lambda d: d.update(resources_per_trial={"cpu": 0}),
            "resources_per_trial.cpu",
            "must be > 0",
        ),
        (lambda d: d.update(evaluation={"top_k": 0}), "evaluation.top_k", "must be >= 1"),
        (lambda d: d.update(num_samples="many"), "num_samples", "expected an integer"),
    ],
)
def test_bad_files_name_file_and_key_path(
    tmp_path: Path, change: Any, key_path: str, fragment: str
) -> None:
    message = _error(_with(change), tmp_path)
    assert f": {key_path}: " in message, message
    assert fragment in message, message


def test_malformed_yaml_and_wrong_document(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("experiment: x\nspace:\n  lr: {type: loguniform, low: 1\n")
    with pytest.raises(SpaceFileError, match=r"broken\.yaml: malformed YAML: line \d+"):
        load_space_file(path)
    path.write_text("- 1\n- 2\n")
    with pytest.raises(SpaceFileError, match="expected a mapping"):
        load_space_file(path)
    with pytest.raises(SpaceFileError, match="cannot read file"):
        load_space_file(tmp_path / "missing.yaml")


def test_cli_reports_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_with(lambda d: d["space"]["lr"].update(low=1, high=0.1))))
    for command in (["search", str(path)], ["wandb-sweep", str(path)]):
        proc = subprocess.run(
            [sys.executable, "-m", "tune_grid.cli", *command],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
        assert "space.lr.low" in lines[0]


def test_validation_does_not_import_ray(tmp_path: Path) -> None:
    code = (
        "import sys; from tune_grid.search import load_space_file; "
        f"load_space_file({str(REPO / 'search_spaces' / 'quickstart.yaml')!r}); "
        "print('ray' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert proc.stdout.strip() == "False", proc.stderr


@pytest.mark.parametrize("value", [-1, "fast", True, float("nan")])
def test_flush_interval_takes_seconds_or_auto(value: Any, tmp_path: Path) -> None:
    message = _error({**BASE, "export": {"flush_interval_s": value}}, tmp_path)
    assert "export.flush_interval_s: must be a number of seconds >= 0 or 'auto'" in message


def test_flush_interval_auto_is_tunes_adaptive_period(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({**BASE, "export": {"flush_interval_s": "auto"}}))
    export = load_space_file(path).export
    assert (export.tune_state_period, export.callback_flush_interval_s) == ("auto", 0.0)
    path.write_text(yaml.safe_dump({**BASE, "export": {"flush_interval_s": 2.5}}))
    export = load_space_file(path).export
    assert (export.tune_state_period, export.callback_flush_interval_s) == ("2.5", 2.5)
