"""Centralized critic and value normalization: inputs, statistics, training and evaluation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tune_grid.config import ConfigError, RunConfig
from tune_grid.grid.devices import MICROGRIDS

TINY = {
    "train_batch_size": 96,  # 2 envs x 48 steps: two whole 24-hour episodes per env
    "minibatch_size": 32,
    "num_epochs": 1,
    "hidden_sizes": [16, 16],
    "num_env_runners": 0,
    "num_envs_per_env_runner": 2,
}


def tiny_run(**overrides: object) -> RunConfig:
    return RunConfig.from_dict({**TINY, **overrides})


def _agent_id_columns() -> list[int]:
    from tune_grid.env.observation import feature_names, observation_features

    names = feature_names(observation_features())
    return [names.index(f"agent_{mg}") for mg in MICROGRIDS]


def _spaces() -> tuple[object, object]:
    from tune_grid import make_env

    env = make_env()
    return env.observation_space("MG1"), env.action_space("MG1")


# ------------------------------------------------------------------------------ config keys
@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"critic": "global"}, "critic: got 'global', allowed: one of 'local', 'centralized'"),
        ({"critic": None}, "critic: got None, allowed: one of 'local', 'centralized'"),
        ({"value_norm": "yes"}, "value_norm: expected true or false, got 'yes'"),
        ({"value_norm": 1}, "value_norm: expected true or false, got 1"),
    ],
)
def test_bad_critic_keys_are_one_line_errors(values: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_dict(values)
    assert str(caught.value) == message and "\n" not in str(caught.value)


def test_cli_rejects_a_bad_critic_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from tune_grid.cli import main

    assert main(["train", "--critic", "global"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: critic: got 'global', allowed: one of 'local', 'centralized'"]


def test_layouts_map_to_modules_and_learner_pieces() -> None:
    from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import (
        DefaultPPOTorchRLModule,
    )

    from tune_grid.training.critic import (
        CentralizedCriticPPOTorchRLModule,
        ValueNormPPOTorchRLModule,
    )
    from tune_grid.training.global_state import AddGlobalObservations
    from tune_grid.training.ppo import build_ppo_config, rllib_default_ppo_config
    from tune_grid.training.value_norm import ValueNormPPOTorchLearner

    obs_space, act_space = _spaces()
    spaces = {mid: (obs_space, act_space) for mid in ("shared_policy", *MICROGRIDS)}
    local = build_ppo_config(tiny_run(initial_log_std=None))
    spec = local.get_multi_rl_module_spec(spaces=spaces)
    assert spec.rl_module_specs["shared_policy"].module_class is DefaultPPOTorchRLModule
    assert local._learner_connector is None
    assert rllib_default_ppo_config(tiny_run()).learner_class.__name__ == "PPOTorchLearner"

    mappo = build_ppo_config(tiny_run(critic="centralized", value_norm=True))
    (module_spec,) = mappo.get_multi_rl_module_spec(spaces=spaces).rl_module_specs.values()
    assert module_spec.module_class is CentralizedCriticPPOTorchRLModule
    assert module_spec.model_config["critic_agents"] == 3 and module_spec.model_config["value_norm"]
    piece = mappo._learner_connector(None, None)
    assert isinstance(piece, AddGlobalObservations) and piece.agents == tuple(MICROGRIDS)
    assert issubclass(mappo.learner_class, ValueNormPPOTorchLearner)

    independent = build_ppo_config(tiny_run(policy_sharing="independent", critic="centralized"))
    specs = independent.get_multi_rl_module_spec(spaces=spaces).rl_module_specs
    assert set(specs) == set(MICROGRIDS)
    assert all(s.module_class is CentralizedCriticPPOTorchRLModule for s in specs.values())

    normalized = rllib_default_ppo_config(tiny_run(value_norm=True))
    (module_spec,) = normalized.get_multi_rl_module_spec(spaces=spaces).rl_module_specs.values()
    assert module_spec.module_class is ValueNormPPOTorchRLModule
    assert issubclass(normalized.learner_class, ValueNormPPOTorchLearner)


# ----------------------------------------------------------------------------- global state
def test_global_state_puts_own_observation_first_then_every_agent_in_order() -> None:
    from tune_grid.training.global_state import GlobalStateError, agent_global_states

    obs = {a: np.full((5, 2), float(i), dtype=np.float32) for i, a in enumerate(MICROGRIDS)}
    states = agent_global_states(obs, MICROGRIDS)
    assert states["MG1"].shape == (5, 6)
    np.testing.assert_array_equal(states["MG1"][0], [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(states["MG2"][0], [1, 1, 0, 0, 2, 2])
    np.testing.assert_array_equal(states["MG3"][0], [2, 2, 0, 0, 1, 1])
    with pytest.raises(GlobalStateError, match=r"lacks \['MG3'\]"):
        agent_global_states({a: obs[a] for a in ("MG1", "MG2")}, MICROGRIDS)
    with pytest.raises(GlobalStateError, match="act at every step"):
        agent_global_states({**obs, "MG2": obs["MG2"][:4]}, MICROGRIDS)


# -------------------------------------------------------------------------- value normalizer
def test_value_normalizer_statistics_update_and_denormalize() -> None:
    from tune_grid.training.value_norm import MIN_VARIANCE, ValueNormalizer

    norm = ValueNormalizer(beta=0.5)
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    torch.testing.assert_close(norm.normalize(x), x)  # identity before any update
    torch.testing.assert_close(norm.denormalize(x), x)

    first = torch.tensor([-10.0, -6.0, -2.0])  # mean -6, population variance 32/3
    norm.update(first)
    mean, var = norm.mean_and_var()
    assert float(mean) == pytest.approx(-6.0) and float(var) == pytest.approx(32 / 3)
    second = torch.tensor([2.0, 4.0])  # mean 3, mean square 10
    norm.update(second)
    # debiased: weights 0.5 * 0.5 and 0.5 over a debiasing term of 0.75
    expected_mean = (0.25 * -6.0 + 0.5 * 3.0) / 0.75
    expected_sq = (0.25 * (140 / 3) + 0.5 * 10.0) / 0.75
    mean, var = norm.mean_and_var()
    assert float(mean) == pytest.approx(expected_mean)
    assert float(var) == pytest.approx(expected_sq - expected_mean**2)
    y = torch.linspace(-20, 5, 7)
    torch.testing.assert_close(norm.denormalize(norm.normalize(y)), y)
    torch.testing.assert_close(
        norm.normalize(y), (y - expected_mean) / math.sqrt(expected_sq - expected_mean**2)
    )

    flat = ValueNormalizer()
    flat.update(torch.full((8,), 3.0))
    assert float(flat.mean_and_var()[1]) == pytest.approx(MIN_VARIANCE)
    norm.update(torch.tensor([]))  # an empty batch changes nothing
    assert float(norm.mean_and_var()[0]) == pytest.approx(expected_mean)


def test_centralized_module_reads_global_obs_and_denormalizes_values() -> None:
    from ray.rllib.core.columns import Columns
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from tune_grid.training.critic import CentralizedCriticPPOTorchRLModule
    from tune_grid.training.global_state import GLOBAL_OBS

    obs_space, act_space = _spaces()
    dim = obs_space.shape[0]
    spec = RLModuleSpec(
        module_class=CentralizedCriticPPOTorchRLModule,
        observation_space=obs_space,
        action_space=act_space,
        model_config={"fcnet_hiddens": [8], "critic_agents": 3, "value_norm": True},
    )
    module = spec.build()
    batch = {Columns.OBS: torch.randn(4, dim), GLOBAL_OBS: torch.randn(4, 3 * dim)}
    raw = module.critic(batch[GLOBAL_OBS]).squeeze(-1)
    module.value_normalizer.update(torch.tensor([10.0, 30.0]))  # mean 20, std 10
    torch.testing.assert_close(module.compute_values(batch), raw * 10.0 + 20.0)
    with module.value_normalizer.raw_outputs():
        torch.testing.assert_close(module.compute_values(batch), raw)
    torch.testing.assert_close(module.compute_values(batch), raw * 10.0 + 20.0)
    out = module.forward_inference({Columns.OBS: batch[Columns.OBS]})
    assert out[Columns.ACTION_DIST_INPUTS].shape == (4, 2 * act_space.shape[0])

    runner_copy = RLModuleSpec(
        module_class=CentralizedCriticPPOTorchRLModule,
        observation_space=obs_space,
        action_space=act_space,
        model_config={"fcnet_hiddens": [8], "critic_agents": 3, "value_norm": True},
        inference_only=True,
    ).build()
    assert not hasattr(runner_copy, "critic")
    runner_copy.set_state(module.get_state(inference_only=True))
    state = module.get_state(inference_only=True)
    assert state and all(k.startswith("actor.") for k in state)


def test_update_piece_uses_value_targets_of_real_steps_only() -> None:
    from ray.rllib.core.columns import Columns
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec
    from ray.rllib.evaluation.postprocessing import Postprocessing

    from tune_grid.training.critic import ValueNormPPOTorchRLModule
    from tune_grid.training.value_norm import UpdateValueNormalizers

    obs_space, act_space = _spaces()
    multi = MultiRLModuleSpec(
        rl_module_specs={
            "m": RLModuleSpec(
                module_class=ValueNormPPOTorchRLModule,
                observation_space=obs_space,
                action_space=act_space,
                model_config={"fcnet_hiddens": [8], "vf_share_layers": True},
            )
        }
    ).build()
    batch = {
        "m": {
            Postprocessing.VALUE_TARGETS: torch.tensor([1.0, 3.0, 100.0]),
            Columns.LOSS_MASK: torch.tensor([True, True, False]),  # the bootstrap step
        }
    }
    UpdateValueNormalizers()(rl_module=multi, batch=batch, episodes=[])
    mean, var = multi["m"].value_normalizer.mean_and_var()
    assert float(mean) == pytest.approx(2.0) and float(var) == pytest.approx(1.0)


# ---------------------------------------------------------------------- training end to end
def _record_inputs(module: torch.nn.Module, name: str, store: list) -> object:
    def hook(_module: torch.nn.Module, args: tuple) -> None:
        store.append(args[0].detach().clone())

    return getattr(module, name).register_forward_pre_hook(hook)


@pytest.mark.slow
def test_mappo_critic_sees_every_agent_and_actor_only_its_own(ray_session: None) -> None:
    from tune_grid.training.critic import CentralizedCriticPPOTorchRLModule
    from tune_grid.training.metrics import iteration_metrics
    from tune_grid.training.ppo import SHARED_MODULE_ID, build_ppo_config
    from tune_grid.training.vector_env import BatchedVectorEnv

    # RLlib's learner loop: it calls the actor and the critic as modules, so the hooks below see
    # every input. The lean loop's written-out gradients read the same columns (its gradients
    # equal autograd's through these modules: tests/test_mlp_gradients.py, test_lean_loop.py).
    run = tiny_run(critic="centralized", value_norm=True, training_loop="rllib")
    algo = build_ppo_config(run).build_algo()
    try:
        assert isinstance(algo.env_runner.env, BatchedVectorEnv)
        module = algo.learner_group._learner.module[SHARED_MODULE_ID].unwrapped()
        assert isinstance(module, CentralizedCriticPPOTorchRLModule)
        dim = module.observation_space.shape[0]
        actor_inputs: list[torch.Tensor] = []
        critic_inputs: list[torch.Tensor] = []
        hooks = [
            _record_inputs(module, "actor", actor_inputs),
            _record_inputs(module, "critic", critic_inputs),
        ]
        metrics = iteration_metrics(algo.train())
        for hook in hooks:
            hook.remove()
        assert metrics["env_steps"] == TINY["train_batch_size"]
        assert math.isfinite(metrics["daily_cost_mean"])
        assert float(module.value_normalizer.debiasing) > 0.0  # statistics took in the batch
    finally:
        algo.stop()

    ids = _agent_id_columns()
    actor = torch.cat(actor_inputs).numpy()
    assert actor.shape[1] == dim
    # Each actor row is one agent's observation: exactly one agent id set.
    np.testing.assert_array_equal(actor[:, ids].sum(axis=1), 1.0)

    # GAE's value pass is the first critic call: the whole batch, every agent's rows plus
    # one bootstrap row per episode chunk.
    gae = critic_inputs[0].numpy()
    assert gae.shape[1] == 3 * dim and gae.shape[0] >= 3 * TINY["train_batch_size"]
    chunks = gae.reshape(len(gae), 3, dim)
    agents_in_row = chunks[:, :, ids].argmax(axis=2)
    np.testing.assert_array_equal(np.sort(agents_in_row, axis=1), [[0, 1, 2]] * len(gae))
    np.testing.assert_array_equal(chunks[:, :, ids].sum(axis=2), 1.0)
    # The others' slots are real observations of the same step: each one is some agent's row.
    own_rows = {row.tobytes() for row in chunks[:, 0]}
    assert all(chunk.tobytes() in own_rows for chunk in chunks[:, 1:].reshape(-1, dim))
    assert {a for a in agents_in_row[:, 0]} == {0, 1, 2}
    # Then per minibatch: the actor's pass on obs, the loss's value pass on global_obs, row
    # for row the same agent-steps (own slot = the actor's input).
    assert len(critic_inputs) == len(actor_inputs) + 1
    for obs, state in zip(actor_inputs, critic_inputs[1:], strict=True):
        torch.testing.assert_close(state[:, :dim], obs, rtol=0, atol=0)
    loss_rows = {row.tobytes() for row in torch.cat(critic_inputs[1:]).numpy()}
    assert loss_rows <= {row.tobytes() for row in gae}


@pytest.mark.slow
def test_ippo_trains_one_iteration_through_the_batched_env(ray_session: None) -> None:
    from tune_grid.training.critic import TuneGridPPOTorchRLModule
    from tune_grid.training.metrics import iteration_metrics
    from tune_grid.training.ppo import build_ppo_config
    from tune_grid.training.vector_env import BatchedVectorEnv

    algo = build_ppo_config(tiny_run(policy_sharing="independent")).build_algo()
    try:
        assert isinstance(algo.env_runner.env, BatchedVectorEnv)
        modules = algo.learner_group._learner.module
        assert set(modules.keys()) == set(MICROGRIDS)
        # RLlib's default module with the initial log-std set (the default -1)
        assert all(type(modules[a].unwrapped()) is TuneGridPPOTorchRLModule for a in MICROGRIDS)
        result = algo.train()
        metrics = iteration_metrics(result)
        assert metrics["env_steps"] == TINY["train_batch_size"]
        assert math.isfinite(metrics["daily_cost_mean"])
        assert set(result["learners"]) - {"__all_modules__"} == set(MICROGRIDS)
    finally:
        algo.stop()


@pytest.mark.slow
def test_centralized_checkpoint_evaluates_from_local_observations(
    ray_session: None, tmp_path: Path
) -> None:
    from ray.rllib.core.columns import Columns

    from tune_grid import make_env
    from tune_grid.env.evaluation import evaluate
    from tune_grid.training.critic import CentralizedCriticPPOTorchRLModule
    from tune_grid.training.policy import TrainedPolicy
    from tune_grid.training.runner import TrainOptions, train

    run = tiny_run(policy_sharing="independent", critic="centralized", value_norm=True)
    options = TrainOptions(iterations=1, checkpoint_freq=1, checkpoint_dir=tmp_path, eval_days=0)
    result = train(run, options, print_fn=lambda _line: None)
    policy = TrainedPolicy.load(result.final_checkpoint)
    assert policy.policy_sharing == "independent" and set(policy.modules) == set(MICROGRIDS)
    seen: list[set[str]] = []
    critic_calls: list[int] = []
    for module in policy.modules.values():
        assert isinstance(module, CentralizedCriticPPOTorchRLModule)
        assert float(module.value_normalizer.debiasing) > 0.0  # restored statistics
        module.critic.register_forward_pre_hook(lambda *_: critic_calls.append(1))
        inner = module.forward_inference

        def recording(batch: dict, _inner=inner, **kwargs: object) -> dict:  # noqa: ANN001
            seen.append(set(batch))
            return _inner(batch, **kwargs)

        module.forward_inference = recording
    env = make_env(split="test")
    observations, _ = env.reset(seed=3)
    actions = policy(observations)
    assert set(actions) == set(MICROGRIDS) and env.step(actions)[0]
    days = evaluate(policy, split="test", days=1)
    assert len(days) == 1 and np.isfinite(days["cost"]).all()
    assert seen and all(keys == {Columns.OBS} for keys in seen) and not critic_calls
