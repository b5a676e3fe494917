"""The lean training loop (``training_loop: lean``) against RLlib's own loops.

Sampling: with the same weights and the same torch seed, the lean runner's episodes give the
learner exactly the train batch RLlib's runner gives (every column, bit for bit), across sample
calls that cut days, for a shared policy and for independent policies with a centralized
critic, and the same episode metrics. Learning: the same episodes and numpy seed give the same
weights after an update (float tolerance), with KL penalty, gradient clipping and value
normalization on. The minibatch order and the closed-form loss are checked on their own too.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
import tree
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.minibatch_utils import MiniBatchCyclicIterator

from tune_grid.config import RunConfig
from tune_grid.training.lean_learner import CyclicMinibatches
from tune_grid.training.lean_sampling import LeanEnvRunner, lean_blockers
from tune_grid.training.ppo import LeanPPOTorchLearner, build_ppo_config
from tune_grid.training.ppo_loss import PPOCoefficients, ppo_loss

TINY = {
    "train_batch_size": 192,
    "minibatch_size": 32,
    "num_epochs": 3,
    "hidden_sizes": (16, 16),
    "num_envs_per_env_runner": 4,
}
"""4 envs and 48 steps per env per sample call: days (24 steps and a reset step) get cut."""


def _algo(run: RunConfig, *, lean_runner: bool = False, lean_learner: bool = False) -> Any:
    config = build_ppo_config(run.replace(training_loop="rllib"))
    if lean_runner:
        config.env_runners(env_runner_cls=LeanEnvRunner)
    if lean_learner:
        config.learners(learner_class=LeanPPOTorchLearner)
    return config.build_algo()


def _learner_batch(learner: Any, episodes: list) -> dict:
    return learner._learner_connector(
        rl_module=learner.module,
        batch={},
        episodes=copy.deepcopy(episodes),
        shared_data={},
        metrics=None,
    )


def _assert_batches_equal(expected: dict, actual: dict) -> None:
    assert expected.keys() == actual.keys()
    for module_id, columns in expected.items():
        assert columns.keys() == actual[module_id].keys(), module_id
        for column, value in columns.items():
            for want, got in zip(
                tree.flatten(value), tree.flatten(actual[module_id][column]), strict=True
            ):
                want, got = np.asarray(want), np.asarray(got)
                assert want.dtype == got.dtype and want.shape == got.shape, (module_id, column)
                assert np.array_equal(want, got), (module_id, column)


def _peek(metrics: dict, *path: str) -> Any:
    value = metrics
    for key in path:
        value = value[key]
    return value.peek() if hasattr(value, "peek") else value


@pytest.mark.parametrize(
    "layout",
    [
        {"policy_sharing": "shared", "critic": "local"},
        {"policy_sharing": "shared", "vf_share_layers": False},
        {"policy_sharing": "independent", "critic": "centralized"},
    ],
    ids=["shared-local", "shared-separate-networks", "independent-centralized"],
)
def test_lean_sampling_gives_rllib_train_batches(ray_session: None, layout: dict) -> None:
    run = RunConfig.from_dict({**TINY, **layout})
    rllib, lean = _algo(run), _algo(run, lean_runner=True)
    try:
        assert isinstance(lean.env_runner, LeanEnvRunner)
        assert lean_blockers(lean.env_runner) == []
        lean.set_weights(rllib.get_weights())
        learner = rllib.learner_group._learner
        cuts = 0
        for call, steps in enumerate((192, 192, 100)):
            torch.manual_seed(100 + call)
            expected = rllib.env_runner.sample(num_timesteps=steps)
            torch.manual_seed(100 + call)
            actual = lean.env_runner.sample(num_timesteps=steps)
            assert [len(e) for e in actual] == [len(e) for e in expected]
            assert [e.is_terminated for e in actual] == [e.is_terminated for e in expected]
            cuts += sum(not e.is_terminated for e in actual)
            _assert_batches_equal(
                _learner_batch(learner, expected), _learner_batch(learner, actual)
            )
        assert cuts > 0  # some days were cut between sample calls
        expected_metrics = rllib.env_runner.get_metrics()
        actual_metrics = lean.env_runner.get_metrics()
        for key in ("num_env_steps_sampled_lifetime", "num_episodes_lifetime"):
            assert _peek(actual_metrics, key) == _peek(expected_metrics, key)
        for key in ("episode_return_mean", "daily_cost_mean", "safety_mean", "episode_len_mean"):
            assert _peek(actual_metrics, key) == pytest.approx(_peek(expected_metrics, key))
    finally:
        rllib.stop()
        lean.stop()


def test_one_module_in_agent_order_acts_as_the_general_path(ray_session: None) -> None:
    """The shortcut for one module over all agents in their order (its rows are the observations
    as they are) draws what the general per-module path draws."""
    run = RunConfig.from_dict({**TINY, "policy_sharing": "shared"})
    algo = _algo(run, lean_runner=True)
    try:
        runner = algo.env_runner
        runner._lean_reset()
        state = runner._lean_state
        state["modules"] = {"shared_policy": [0, 1, 2]}
        obs = np.random.default_rng(0).normal(size=(4, 3, 22)).astype(np.float32)
        acting = np.ones(4, dtype=bool)
        results = []
        for shortcut in (True, False):
            state["one_module_in_order"] = shortcut
            torch.manual_seed(5)
            results.append(runner._act(obs, acting, 0))
        for fast, general in zip(*results, strict=True):
            assert fast.shape == general.shape and np.array_equal(fast, general)
    finally:
        algo.stop()


@pytest.mark.parametrize(
    ("layout", "written_out"),
    [
        ({"policy_sharing": "independent", "critic": "centralized"}, True),
        ({"policy_sharing": "shared", "obs_norm": True, "initial_log_std": -1.0}, True),
        ({"policy_sharing": "independent", "vf_share_layers": False}, True),
        ({"policy_sharing": "shared", "action_squash": "tanh"}, False),
    ],
    ids=[
        "independent-centralized",
        "shared-local",
        "independent-separate-networks",
        "shared-tanh-autograd",
    ],
)
def test_lean_learner_makes_rllib_updates(
    ray_session: None, layout: dict, written_out: bool
) -> None:
    run = RunConfig.from_dict(
        {
            **TINY,
            **layout,
            "value_norm": True,
            "kl_coeff": 0.2,
            "grad_clip": 0.5,
            "entropy_coeff": 0.01,
        }
    )
    rllib, lean = _algo(run), _algo(run, lean_learner=True)
    try:
        expected_learner = rllib.learner_group._learner
        actual_learner = lean.learner_group._learner
        assert isinstance(actual_learner, LeanPPOTorchLearner)
        actual_learner.set_state(expected_learner.get_state())
        module_ids = list(actual_learner.module.keys())
        plans = [actual_learner._mlp_plan(mid) for mid in module_ids]
        assert [plan is not None for plan in plans] == [written_out] * len(module_ids)
        for _ in range(2):  # the second update starts from adapted KL coefficients
            episodes = rllib.env_runner.sample(num_timesteps=192)
            results = []
            for learner in (expected_learner, actual_learner):
                np.random.seed(7)
                results.append(
                    learner.update(
                        episodes=copy.deepcopy(episodes),
                        timesteps={"num_env_steps_sampled_lifetime": 192},
                        num_epochs=run.num_epochs,
                        minibatch_size=run.minibatch_size,
                        shuffle_batch_per_epoch=True,
                    )
                )
            expected = tree.flatten(expected_learner.module.get_state())
            actual = tree.flatten(actual_learner.module.get_state())
            for want, got in zip(expected, actual, strict=True):
                np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-6, rtol=0)
            for module_id in module_ids:
                for key in ("policy_loss", "vf_loss", "entropy", "mean_kl_loss", "curr_kl_coeff"):
                    assert _peek(results[1], module_id, key) == pytest.approx(
                        _peek(results[0], module_id, key), rel=1e-4, abs=1e-6
                    ), (module_id, key)
                assert _peek(results[1], module_id, "num_module_steps_trained") == _peek(
                    results[0], module_id, "num_module_steps_trained"
                )
    finally:
        rllib.stop()
        lean.stop()


def test_gradients_are_written_out_only_where_autograd_adds_nothing() -> None:
    """Several learners (their gradients meet in autograd's hooks), no critic, or a loss
    overridden on the instance keep autograd."""
    from types import SimpleNamespace

    from tune_grid.training.lean_learner import LeanLearnerMixin

    def probe(num_learners: int = 0, use_critic: bool = True) -> Any:
        learner: Any = LeanLearnerMixin()
        module_config = SimpleNamespace(use_critic=use_critic)
        learner.config = SimpleNamespace(
            num_learners=num_learners, get_config_for_module=lambda module_id: module_config
        )
        return learner

    assert probe()._may_write_out("m")
    assert not probe(num_learners=2)._may_write_out("m")
    assert not probe(use_critic=False)._may_write_out("m")
    patched = probe()
    patched.compute_loss_for_module = lambda **kwargs: None
    assert not patched._may_write_out("m")


def test_gaussian_sample_is_rllibs_draw_and_logp_bit_for_bit() -> None:
    from ray.rllib.core.distribution.torch.torch_distribution import TorchDiagGaussian

    from tune_grid.training.lean_sampling import gaussian_sample

    generator = torch.Generator().manual_seed(0)
    for trial in range(200):
        scale = 10.0 ** (trial % 4 - 2)  # log-stds and means from 0.01 to 10
        inputs = torch.randn(96, 6, generator=generator) * scale
        torch.manual_seed(trial)
        dist = TorchDiagGaussian.from_logits(inputs)
        expected_sample = dist.sample()
        expected_logp = dist.logp(expected_sample)
        torch.manual_seed(trial)
        sampled, logp = gaussian_sample(inputs)
        assert torch.equal(sampled, expected_sample)
        assert logp.dtype == np.float32 and np.array_equal(logp, expected_logp.numpy()), trial


def test_cyclic_minibatches_follow_rllibs_iterator() -> None:
    sizes = {"a": 10, "b": 7}
    columns = {
        mid: {"x": np.arange(n, dtype=np.float32) + 100 * k, "y": np.arange(n) * 2}
        for k, (mid, n) in enumerate(sizes.items())
    }
    np.random.seed(3)
    rllib = MiniBatchCyclicIterator(
        MultiAgentBatch(
            {mid: SampleBatch({k: v.copy() for k, v in c.items()}) for mid, c in columns.items()},
            env_steps=10,
        ),
        num_epochs=3,
        minibatch_size=4,
        shuffle_batch_per_epoch=True,
    )
    expected = [{mid: dict(b) for mid, b in mb.policy_batches.items()} for mb in rllib]
    np.random.seed(3)
    lean = CyclicMinibatches(
        {mid: {k: torch.as_tensor(v) for k, v in c.items()} for mid, c in columns.items()},
        minibatch_size=4,
        num_epochs=3,
        shuffle=True,
    )
    actual = list(lean)
    assert len(actual) == len(expected) > 3 * 10 // 4
    for want, got in zip(expected, actual, strict=True):
        for mid in sizes:
            for key in ("x", "y"):
                assert np.array_equal(np.asarray(want[mid][key]), got[mid][key].numpy())


class _Module(torch.nn.Module):
    """A diagonal Gaussian policy's stand-in: ``compute_values`` returns fixed values."""

    def __init__(self, values: torch.Tensor) -> None:
        super().__init__()
        self.values = values

    def compute_values(self, batch: dict, embeddings: Any = None) -> torch.Tensor:
        return self.values


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("kl_coeff", [None, 0.3])
def test_closed_form_loss_equals_rllibs(masked: bool, kl_coeff: float | None) -> None:
    generator = torch.Generator().manual_seed(0)
    n, dims = 50, 3

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    inputs = randn(n, 2 * dims).requires_grad_()
    values = randn(n).requires_grad_()
    batch = {
        Columns.ACTION_DIST_INPUTS: randn(n, 2 * dims),
        Columns.ACTIONS: randn(n, dims),
        Columns.ACTION_LOGP: randn(n) - 3.0,
        Postprocessing.ADVANTAGES: randn(n),
        Postprocessing.VALUE_TARGETS: randn(n) * 4.0,
    }
    if masked:
        batch[Columns.LOSS_MASK] = torch.arange(n) % 7 != 0
    fwd_out = {Columns.ACTION_DIST_INPUTS: inputs}
    module = _Module(values)
    settings = {"clip_param": 0.2, "vf_clip_param": 5.0, "vf_loss_coeff": 0.7}

    logged: list[dict] = []
    coefficients = PPOCoefficients(
        **settings,
        entropy_coeff=0.05,
        kl_coeff=None if kl_coeff is None else torch.tensor(kl_coeff),
        use_critic=True,
    )
    ours = ppo_loss(
        module, batch, fwd_out, coefficients, log=lambda statistics: logged.append(statistics())
    )
    ours_grads = torch.autograd.grad(ours, (inputs, values))

    reference = _rllib_loss(module, batch, fwd_out, settings, entropy_coeff=0.05, kl=kl_coeff)
    reference_grads = torch.autograd.grad(reference, (inputs, values))
    assert ours.item() == pytest.approx(reference.item(), rel=1e-5)
    for mine, theirs in zip(ours_grads, reference_grads, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-6)
    assert logged and {"policy_loss", "vf_loss", "entropy", "mean_kl_loss"} <= set(logged[0])


def _rllib_loss(
    module: _Module,
    batch: dict,
    fwd_out: dict,
    settings: dict,
    *,
    entropy_coeff: float,
    kl: float | None,
) -> torch.Tensor:
    """RLlib's own ``PPOTorchLearner.compute_loss_for_module`` on the same inputs."""
    from ray.rllib.core.distribution.torch.torch_distribution import TorchDiagGaussian

    class Config:
        use_kl_loss = kl is not None
        use_critic = True
        clip_param = settings["clip_param"]
        vf_clip_param = settings["vf_clip_param"]
        vf_loss_coeff = settings["vf_loss_coeff"]

    class Scheduler:
        def get_current_value(self) -> float:
            return entropy_coeff

    class Metrics:
        def log_dict(self, *args: Any, **kwargs: Any) -> None:
            pass

    class Wrapped:
        def unwrapped(self) -> Any:
            module.get_train_action_dist_cls = lambda: TorchDiagGaussian
            module.get_exploration_action_dist_cls = lambda: TorchDiagGaussian
            return module

    class Probe(PPOTorchLearner):
        """RLlib's PPO learner with only what its loss reads (no Learner setup)."""

        def __init__(self) -> None:
            self.entropy_coeff_schedulers_per_module = {"m": Scheduler()}
            self.curr_kl_coeffs_per_module = {"m": torch.tensor(kl if kl is not None else 0.0)}
            self.metrics = Metrics()

        @property
        def module(self) -> Any:
            return {"m": Wrapped()}

    return Probe().compute_loss_for_module(
        module_id="m", config=Config(), batch=batch, fwd_out=fwd_out
    )
