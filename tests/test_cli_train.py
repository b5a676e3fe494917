"""`tune-grid train/evaluate` input handling, config building and metrics, without starting Ray."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tune_grid.cli import build_parser, main
from tune_grid.cli.run_options import option_name, run_config_from_args
from tune_grid.config import ConfigError, RunConfig, field_docs
from tune_grid.training.checkpoints import (
    META_FILE,
    RLLIB_MARKER,
    CheckpointError,
    CheckpointMeta,
    read_meta,
    write_json,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> tuple[int, str, str, bool]:
    """Run ``main(args)`` in a fresh interpreter; also report whether Ray got imported."""
    script = textwrap.dedent(
        f"""
        import sys
        from tune_grid.cli import main
        try:
            rc = main({list(args)!r})
        except SystemExit as exc:
            rc = exc.code
        print("RAY_IMPORTED" if "ray" in sys.modules else "RAY_NOT_IMPORTED")
        sys.exit(rc)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    return proc.returncode, proc.stdout, proc.stderr, "RAY_NOT_IMPORTED" in proc.stdout


def parse(*argv: str) -> RunConfig:
    return run_config_from_args(build_parser().parse_args(["train", *argv]))[0]


# ------------------------------------------------------------------------ bad input, exit 2
@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["train", "--lr", "-1"], "lr must be in (0, 1]"),
        (["train", "--lr", "abc"], "lr: expected a number"),
        (["train", "--minibatch-size", "5000"], "minibatch_size (5000) must be <="),
        (["train", "--hidden-sizes", "12y3"], "hidden_sizes"),
        (["train", "--policy-sharing", "both"], "policy_sharing"),
        (["train", "--penalty", "-2"], "penalty must be >= 0"),
        (["train", "--iterations", "0"], "iterations must be >= 1"),
        (["train", "--best-metric", "loss"], "best_metric must be one of"),
        (["train", "--eval-days", "x"], "days"),
        (["train", "--resume", "/nonexistent/checkpoint"], "no such file or directory"),
        (["evaluate", "/nonexistent/checkpoint"], "no such file or directory"),
    ],
)
def test_bad_input_is_one_line_exit_2_before_ray(argv: list[str], fragment: str) -> None:
    rc, _, stderr, ray_not_imported = run_cli(*argv)
    assert rc == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and fragment in lines[0]
    assert ray_not_imported


def test_unknown_option_and_bad_type_are_one_line_usage_errors() -> None:
    for argv, fragment in (
        (["train", "--learning-rate", "0.1"], "unrecognized arguments"),
        (["train", "--iterations", "many"], "invalid int value"),
    ):
        rc, _, stderr, ray_not_imported = run_cli(*argv)
        assert rc == 2
        assert len(stderr.strip().splitlines()) == 1, stderr
        assert "error:" in stderr and fragment in stderr
        assert ray_not_imported


def test_config_file_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("lrr: 0.1\n")
    garbage = tmp_path / "garbage.yaml"
    garbage.write_text("lr: [\n")
    for path, fragment in ((unknown, "unknown run config key 'lrr'"), (garbage, "cannot read")):
        assert main(["train", "--config", str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and fragment in err[0]
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_corrupt_checkpoints_are_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_dir = tmp_path / "file.txt"
    not_a_dir.write_text("hello")
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / RLLIB_MARKER).write_text("{}")
    (broken / META_FILE).write_text("{not json")
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / RLLIB_MARKER).write_text("{}")
    (wrong / META_FILE).write_text(json.dumps({"format": "tune_grid.checkpoint", "version": 1}))
    for path, fragment in (
        (not_a_dir, "not a directory"),
        (empty, "not a tune-grid checkpoint"),
        (broken, "unreadable metadata"),
        (wrong, "corrupt tune-grid checkpoint metadata"),
    ):
        with pytest.raises(CheckpointError, match=fragment):
            read_meta(path)
        assert main(["evaluate", str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: checkpoint") and fragment in err[0]
        assert main(["train", "--resume", str(path)]) == 2
        assert fragment in capsys.readouterr().err


def test_resume_refuses_run_config_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--resume", str(tmp_path), "--lr", "0.001"]) == 2
    assert "drop --lr" in capsys.readouterr().err


# ---------------------------------------------------------------------------- parsing
def test_every_run_config_key_is_an_option_with_its_default() -> None:
    parser = build_parser()
    help_text = parser._subparsers._group_actions[0].choices["train"].format_help()  # noqa: SLF001
    for key in RunConfig.field_names():
        assert option_name(key) in help_text
    assert "--no-share-reward" in help_text
    assert parse() == RunConfig()


def test_train_help_shows_every_fields_docstring() -> None:
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]  # noqa: SLF001
    helps = {action.dest: action.help for action in train._actions}  # noqa: SLF001
    for key, doc in field_docs(RunConfig).items():
        assert helps[key].startswith(f"{doc} (default: "), key
    assert "GAE lambda" in train.format_help()


def test_cli_values_are_typed_and_override_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("lr: 0.001\ntrain_batch_size: 480\nhidden-sizes: [64, 64]\nlambda: 0.9\n")
    run = parse(
        "--config",
        str(path),
        "--lr",
        "3e-4",
        "--share-reward",
        "--grad-clip",
        "none",
        "--initial-soc",
        "null",
        "--hidden-sizes",
        "32x16",
        "--policy-sharing",
        "independent",
    )
    assert run.lr == 3e-4 and run.train_batch_size == 480 and run.lambda_ == 0.9
    assert run.share_reward is True and run.grad_clip is None and run.initial_soc is None
    assert run.hidden_sizes == (32, 16) and run.policy_sharing == "independent"
    assert parse("--no-share-reward").share_reward is False
    assert parse("--lambda", "0.8").lambda_ == 0.8
    with pytest.raises(ConfigError, match="seed: expected an integer"):
        parse("--seed", "1.5")


# ----------------------------------------------------------------------- config & metrics
def test_build_ppo_config_maps_every_key() -> None:
    from tune_grid.training.ppo import SHARED_MODULE_ID, build_ppo_config, rollout_fragment_length

    run = RunConfig.from_dict(
        {
            "lr": 1e-4,
            "train_batch_size": 480,
            "minibatch_size": 64,
            "num_epochs": 3,
            "gamma": 0.98,
            "lambda_": 0.9,
            "clip_param": 0.2,
            "entropy_coeff": 0.01,
            "vf_clip_param": 5.0,
            "vf_loss_coeff": 0.5,
            "kl_coeff": 0.0,
            "grad_clip": 0.5,
            "hidden_sizes": [32, 32],
            "num_env_runners": 2,
            "num_envs_per_env_runner": 4,
            "num_gpus": 0.5,
            "seed": 7,
            "penalty": 3.0,
        }
    )
    config = build_ppo_config(run)
    assert config.enable_rl_module_and_learner and config.enable_env_runner_and_connector_v2
    assert config.lr == 1e-4 and config.train_batch_size_per_learner == 480
    assert config.minibatch_size == 64 and config.num_epochs == 3
    assert (config.gamma, config.lambda_, config.clip_param) == (0.98, 0.9, 0.2)
    assert (config.entropy_coeff, config.vf_clip_param, config.vf_loss_coeff) == (0.01, 5.0, 0.5)
    assert config.use_kl_loss is False and config.grad_clip == 0.5
    assert config.model_config["fcnet_hiddens"] == [32, 32]
    assert config.num_env_runners == 2 and config.num_envs_per_env_runner == 4
    assert config.rollout_fragment_length == rollout_fragment_length(run) == 60  # 480 / (2 * 4)
    assert config.num_gpus_per_learner == 0.5 and config.seed == 7
    assert config.env_config == run.env_config().to_dict()
    assert set(config.policies) == {SHARED_MODULE_ID}
    assert config.policy_mapping_fn("MG2", None) == SHARED_MODULE_ID
    independent = build_ppo_config(run.replace(policy_sharing="independent"))
    assert set(independent.policies) == {"MG1", "MG2", "MG3"}
    assert independent.policy_mapping_fn("MG2", None) == "MG2"
    assert build_ppo_config(run.replace(rollout_fragment_length=7)).rollout_fragment_length == 7


def test_iteration_metrics_maps_rllib_names() -> None:
    from tune_grid.training.metrics import format_progress, iteration_metrics

    result = {
        "training_iteration": 3,
        "time_this_iter_s": 2.0,
        "time_total_s": 6.0,
        "env_runners": {
            "episode_return_mean": -12.5,
            "daily_cost_mean": 1000.0,
            "safety_mean": 0.25,
            "violation_hours_mean": 2.0,
            "num_env_steps_sampled_lifetime": 720,
            "num_env_steps_sampled": 240,
            "num_episodes_lifetime": 30,
        },
        "timers": {"env_runner_sampling_timer": 1.5, "learner_update_timer": 0.4},
    }
    metrics = iteration_metrics(result)
    assert metrics["iteration"] == 3 and metrics["env_steps"] == 720
    assert metrics["episode_return_mean"] == -12.5 and metrics["daily_cost_mean"] == 1000.0
    assert metrics["safety_mean"] == 0.25 and metrics["violation_hours_mean"] == 2.0
    assert metrics["timers/sample_s"] == 1.5 and metrics["timers/learn_s"] == 0.4
    assert metrics["env_steps_per_s"] == 120.0
    assert "iter    3" in format_progress(metrics)
    empty = iteration_metrics({"training_iteration": 1})
    assert math.isnan(empty["episode_return_mean"]) and empty["env_steps"] == 0


def test_best_metrics_are_iteration_metrics() -> None:
    from tune_grid.training.metrics import ITERATION_METRIC_NAMES
    from tune_grid.training.runner import BEST_METRICS, DEFAULT_BEST_METRIC

    assert DEFAULT_BEST_METRIC in BEST_METRICS
    assert set(BEST_METRICS) <= set(ITERATION_METRIC_NAMES)


def test_checkpoint_meta_round_trip_keeps_nan_as_null(tmp_path: Path) -> None:
    (tmp_path / RLLIB_MARKER).write_text("{}")
    meta = CheckpointMeta(
        run_name="r",
        run_config=RunConfig(seed=3),
        iteration=2,
        env_steps=480,
        history=[{"iteration": 1, "episode_return_mean": math.nan}],
    )
    write_json(tmp_path / META_FILE, meta.to_json())
    assert "NaN" not in (tmp_path / META_FILE).read_text()
    loaded = read_meta(tmp_path)
    assert loaded.run_config == RunConfig(seed=3) and loaded.env_steps == 480
    assert math.isnan(loaded.history[0]["episode_return_mean"])


def test_checkpoint_of_another_env_is_refused_with_both_feature_lists(tmp_path: Path) -> None:
    (tmp_path / RLLIB_MARKER).write_text("{}")
    meta = CheckpointMeta(run_name="r", run_config=RunConfig(price_lookahead=2))
    stored = meta.to_json()
    assert stored["env_name"] == "networked_microgrids_v1"
    assert stored["obs_features"][:5] == ["hour_sin", "hour_cos", "price", "price_ahead_1",
                                          "price_ahead_2"]  # fmt: skip
    # Written by an older env: twelve features, no lookahead, no identity.
    old = dict(stored, env_name="networked_microgrids_v0", obs_features=stored["obs_features"][:12])
    write_json(tmp_path / META_FILE, old)
    with pytest.raises(CheckpointError, match="trained on networked_microgrids_v0 with 12") as err:
        read_meta(tmp_path)
    assert "builds networked_microgrids_v1 with 20" in str(err.value)
    assert "\n" not in str(err.value)
    write_json(tmp_path / META_FILE, {k: v for k, v in stored.items() if k != "env_name"})
    with pytest.raises(CheckpointError, match="before networked_microgrids_v1"):
        read_meta(tmp_path)


# --------------------------------------------------------------------------------- W&B
def test_wandb_goes_offline_without_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tune_grid.training import wandb_logging

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    assert wandb_logging.decide_mode() == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setattr(wandb_logging, "_network_reachable", lambda *a, **k: False)
    assert wandb_logging.decide_mode() == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_logging.decide_mode() == "disabled"


def test_wandb_mode_outside_wandbs_modes_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from tune_grid.config import ConfigError
    from tune_grid.training import wandb_logging

    monkeypatch.setenv("WANDB_MODE", "dryrun")
    with pytest.raises(ConfigError, match="'dryrun' is not one of online, offline, disabled"):
        wandb_logging.decide_mode()


def test_wandb_failures_only_warn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import wandb

    from tune_grid.training.wandb_logging import WandbLogger

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no W&B today")

    monkeypatch.setattr(wandb, "init", boom)
    with pytest.warns(UserWarning, match="W&B init failed"):
        logger = WandbLogger(enabled=True, run_name="r", config={}, directory=tmp_path)
    assert not logger.active
    logger.log({"a": 1.0}, step=1)
    logger.finish()


def test_wandb_offline_run_logs_and_prints_sync_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tune_grid.training.wandb_logging import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    lines: list[str] = []
    logger = WandbLogger(
        enabled=True,
        run_name="test-run",
        config={"lr": 1e-3},
        directory=tmp_path,
        print_fn=lines.append,
    )
    assert logger.active
    logger.log({"episode_return_mean": -1.0}, step=1)
    logger.summary({"test/trained/daily_cost_mean": 10.0})
    logger.finish()
    assert any("wandb sync" in line for line in lines)
    assert list(tmp_path.glob("wandb/offline-run-*"))
