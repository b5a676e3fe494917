"""PPO's gradients written out for RLlib's default MLP module (``mlp_gradients``) against
autograd through the module's own forward pass and the closed-form loss: every parameter, with
shared and separate encoders, tanh and ReLU, a policy-head MLP, the log-std clamp active,
value and observation normalization, the centralized critic, a loss mask and the KL penalty.
Modules the plan does not describe get None, so they keep autograd."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.algorithms.ppo.ppo_catalog import PPOCatalog
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.evaluation.postprocessing import Postprocessing

from tune_grid.training.critic import (
    CRITIC_AGENTS_KEY,
    INITIAL_LOG_STD_KEY,
    VALUE_NORM_KEY,
    CentralizedCriticPPOTorchRLModule,
    TuneGridPPOTorchRLModule,
    ValueNormPPOTorchRLModule,
)
from tune_grid.training.global_state import GLOBAL_OBS
from tune_grid.training.mlp_gradients import mlp_gradients
from tune_grid.training.mlp_plan import mlp_plan
from tune_grid.training.obs_norm import OBS_NORM_KEY
from tune_grid.training.ppo_loss import PPOCoefficients, ppo_loss
from tune_grid.training.tanh_gaussian import ACTION_SQUASH_KEY
from tune_grid.training.value_norm import value_normalizer, with_value_norm

OBS, ACTIONS = 7, 3
OBS_SPACE = gym.spaces.Box(-5.0, 5.0, (OBS,), np.float32)
ACTION_SPACE = gym.spaces.Box(-1.0, 1.0, (ACTIONS,), np.float32)


def _module(cls: type, **model_config: Any) -> Any:
    config = {"fcnet_hiddens": [16, 16], "head_fcnet_hiddens": [], **model_config}
    module = RLModuleSpec(
        module_class=cls,
        catalog_class=PPOCatalog,
        observation_space=OBS_SPACE,
        action_space=ACTION_SPACE,
        model_config=config,
    ).build()
    module.train()
    return module


def _batch(rows: int, *, masked: bool, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    batch = {
        Columns.OBS: randn(rows, OBS) * 2.0 + 1.0,
        GLOBAL_OBS: randn(rows, 3 * OBS) * 2.0 - 1.0,
        Columns.ACTIONS: randn(rows, ACTIONS).clamp(-1, 1),
        Columns.ACTION_DIST_INPUTS: randn(rows, 2 * ACTIONS) * 0.3,
        Columns.ACTION_LOGP: randn(rows) - 2.0,
        Postprocessing.ADVANTAGES: randn(rows),
        Postprocessing.VALUE_TARGETS: randn(rows) * 3.0 + 2.0,
    }
    if masked:
        batch[Columns.LOSS_MASK] = torch.arange(rows) % 5 != 0
    return batch


def _autograd_gradients(module: Any, batch: dict, c: PPOCoefficients) -> dict[Any, torch.Tensor]:
    module.zero_grad(set_to_none=True)
    fwd_out = module._forward_train(batch)
    loss = with_value_norm(
        module, batch, lambda b: ppo_loss(module, b, fwd_out, c, log=lambda statistics: None)
    )
    loss.backward()
    return {p: p.grad.clone() for p in module.parameters()}


def _coefficients(kl: bool) -> PPOCoefficients:
    return PPOCoefficients(
        clip_param=0.2,
        vf_clip_param=4.0,
        vf_loss_coeff=0.5,
        entropy_coeff=0.03,
        kl_coeff=torch.tensor(0.3) if kl else None,
        use_critic=True,
    )


MODULES = {
    "rllib-default-shared": (DefaultPPOTorchRLModule, {}),
    "rllib-default-separate-relu-head-mlp": (
        DefaultPPOTorchRLModule,
        {"vf_share_layers": False, "fcnet_activation": "relu", "head_fcnet_hiddens": [8]},
    ),
    "initial-log-std": (TuneGridPPOTorchRLModule, {INITIAL_LOG_STD_KEY: -1.0}),
    "value-and-obs-norm": (
        ValueNormPPOTorchRLModule,
        {VALUE_NORM_KEY: True, OBS_NORM_KEY: True, INITIAL_LOG_STD_KEY: 0.5},
    ),
    "centralized-critic": (CentralizedCriticPPOTorchRLModule, {CRITIC_AGENTS_KEY: 3}),
    "centralized-critic-normalized": (
        CentralizedCriticPPOTorchRLModule,
        {CRITIC_AGENTS_KEY: 3, VALUE_NORM_KEY: True, OBS_NORM_KEY: True},
    ),
}


@pytest.mark.parametrize("name", list(MODULES))
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("kl", [False, True], ids=["no-kl", "kl"])
def test_written_out_gradients_equal_autograds(name: str, masked: bool, kl: bool) -> None:
    torch.manual_seed(3)
    cls, config = MODULES[name]
    module = _module(cls, **config)
    batch = _batch(64, masked=masked)
    for attribute, features in (("obs_normalizer", OBS), ("global_obs_normalizer", 3 * OBS)):
        if getattr(module, attribute, None) is not None:
            getattr(module, attribute).stage(torch.randn(500, features) * 3.0 - 1.0)
            getattr(module, attribute).commit()
    normalizer = value_normalizer(module)
    if normalizer is not None:
        normalizer.update(torch.randn(300) * 5.0 + 10.0)
    c = _coefficients(kl)
    plan = mlp_plan(module)
    assert plan is not None
    grads, terms = mlp_gradients(plan, batch, c)
    expected = _autograd_gradients(module, batch, c)
    assert set(grads) == set(expected)  # every parameter, each once
    for parameter, want in expected.items():
        assert want.abs().sum() > 0  # every layer gets a gradient: the check is not vacuous
        torch.testing.assert_close(grads[parameter], want, rtol=1e-4, atol=1e-6)
    # the loss the statistics report is autograd's loss
    fwd_out = module._forward_train(batch)
    with torch.no_grad():
        loss = with_value_norm(
            module, batch, lambda b: ppo_loss(module, b, fwd_out, c, log=lambda statistics: None)
        )
    assert terms.total(c).item() == pytest.approx(loss.item(), rel=1e-5)


def test_the_log_std_clamp_stops_the_gradient_where_it_binds() -> None:
    torch.manual_seed(4)
    module = _module(DefaultPPOTorchRLModule)
    module.pi.log_std_clip_param_const.fill_(0.05)  # binds on most rows
    plan = mlp_plan(module)
    assert plan is not None and plan.log_std_clip == pytest.approx(0.05)
    batch = _batch(64, masked=False)
    c = _coefficients(kl=True)
    grads, _ = mlp_gradients(plan, batch, c)
    expected = _autograd_gradients(module, batch, c)
    for parameter, want in expected.items():
        torch.testing.assert_close(grads[parameter], want, rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        raw_log_std = module._forward_train(batch)[Columns.ACTION_DIST_INPUTS]
        binding = (module.pi.net(module.encoder.encoder.net(batch[Columns.OBS])).abs() > 0.05)[
            :, ACTIONS:
        ]
    assert raw_log_std.shape == (64, 2 * ACTIONS) and 0 < binding.float().mean() < 1


@pytest.mark.parametrize(
    ("cls", "config"),
    [
        (TuneGridPPOTorchRLModule, {ACTION_SQUASH_KEY: "tanh"}),
        (DefaultPPOTorchRLModule, {"fcnet_use_layernorm": True}),
        (CentralizedCriticPPOTorchRLModule, {CRITIC_AGENTS_KEY: 3, ACTION_SQUASH_KEY: "tanh"}),
    ],
    ids=["tanh-squashed", "layer-norm", "centralized-tanh-squashed"],
)
def test_other_modules_keep_autograd(cls: type, config: dict) -> None:
    assert mlp_plan(_module(cls, **config)) is None
