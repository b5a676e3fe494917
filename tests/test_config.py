"""Config validation: unknown keys, wrong types and out-of-range values name the key."""

from __future__ import annotations

import dataclasses
import math
import typing

import pytest

from tune_grid.config import ConfigError, EnvConfig, RunConfig, TrainingFields, field_docs


def test_defaults_follow_the_reference_setup() -> None:
    run = RunConfig()
    assert (run.train_batch_size, run.minibatch_size, run.num_epochs) == (4000, 128, 10)
    assert (run.lr, run.gamma, run.lambda_, run.clip_param) == (5e-5, 0.99, 0.95, 0.3)
    assert run.hidden_sizes == (256, 256)
    assert run.env_config() == EnvConfig()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"learning_rate": 1e-3},
            "unknown run config key 'learning_rate'; allowed: algorithm, policy_sharing",
        ),
        ({"lr": -1e-3}, "lr must be in (0, 1], got -0.001"),
        ({"minibatch_size": 8000}, "minibatch_size (8000) must be <= train_batch_size (4000)"),
        ({"policy_sharing": "mixed"}, "policy_sharing: got 'mixed', allowed: one of 'shared'"),
        ({"train_batch_size": 100.5}, "train_batch_size: expected an integer, got 100.5"),
        ({"share_reward": "yes"}, "share_reward: expected true or false, got 'yes'"),
        ({"penalty": math.nan}, "penalty: expected a finite number, got nan"),
        ({"penalty": -2.0}, "penalty must be >= 0, got -2.0"),
        ({"hidden_sizes": "64xa"}, "hidden_sizes: expected sizes like 256x256"),
    ],
)
def test_bad_run_configs_name_the_key(values: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict(values)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_flat_run_config_routes_env_keys() -> None:
    run = RunConfig.from_dict({"penalty": 3, "share_reward": True, "hidden_sizes": "64x32"})
    assert run.hidden_sizes == (64, 32)
    env = run.env_config()
    assert env.penalty == 3.0 and env.share_reward is True
    assert RunConfig.from_dict(run.to_dict()) == run


def test_env_config_rejects_unknown_and_out_of_range() -> None:
    with pytest.raises(ConfigError, match="unknown env config key 'lr'"):
        EnvConfig.from_dict({"lr": 0.1})
    with pytest.raises(ConfigError, match=r"export_discount must be in \[0, 1\], got 1.5"):
        EnvConfig.from_dict({"export_discount": 1.5})
    with pytest.raises(ConfigError, match="initial_soc must be in"):
        EnvConfig.from_dict({"initial_soc": 0.05})
    assert EnvConfig.from_dict({"initial_soc": None}).initial_soc is None


def test_run_config_derives_every_env_field_from_env_config() -> None:
    env_fields = {f.name: f for f in dataclasses.fields(EnvConfig)}
    run_fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    hints, run_hints = typing.get_type_hints(EnvConfig), typing.get_type_hints(RunConfig)
    assert list(run_fields) == [*TrainingFields.field_names(), *env_fields]
    for name, field in env_fields.items():
        assert run_fields[name].default == field.default, name
        assert run_hints[name] == hints[name], name
    assert RunConfig().env_config() == EnvConfig()


def test_every_run_config_field_has_a_docstring() -> None:
    docs = field_docs(RunConfig)
    missing = [name for name in RunConfig.field_names() if not docs.get(name)]
    assert not missing, f"fields without a docstring: {missing}"
    assert docs["lr"].startswith("Adam learning rate") and docs["penalty"].startswith(
        "Reward weight"
    )


def test_a_run_config_is_validated_by_the_env_rules_too() -> None:
    with pytest.raises(ConfigError, match="load_scale must be in"):
        RunConfig.from_dict({"load_scale": 5.0})
    with pytest.raises(ConfigError, match="unknown run config key 'bogus'"):
        RunConfig.from_dict({"bogus": 1})


def test_one_outcome_key_for_the_oracle_the_mpc_and_the_baseline_groups() -> None:
    """Configs that differ in the price of safety must not share an oracle, an MPC or a group of
    baselines (the gap of a trial trained at penalty 2 would be taken against penalty 1's
    oracle); configs that differ only in who is rewarded or what agents see must share them."""
    from tune_grid.oracle.core import config_key
    from tune_grid.search.answer.heldout import env_group

    base = EnvConfig(split="test").to_dict()
    for key, value in (("penalty", 2.0), ("cost_scale", 50.0), ("load_scale", 0.9)):
        other = {**base, key: value}
        assert env_group(other) != env_group(base), key
        assert config_key(other) != config_key(base), key
    for key, value in (("share_reward", True), ("price_lookahead", 2), ("split", "validation")):
        other = {**base, key: value}
        assert env_group(other) == env_group(base), key
        assert config_key(other) == config_key(base), key


@pytest.mark.parametrize("text", ["64xx", "64,", "x64", "64x,32", ""])
def test_malformed_hidden_sizes_are_refused_not_truncated(text: str) -> None:
    with pytest.raises(ConfigError, match="expected sizes like 256x256"):
        RunConfig.from_dict({"hidden_sizes": text})
    assert RunConfig.from_dict({"hidden_sizes": "64x32"}).hidden_sizes == (64, 32)
