"""PPO's minibatch gradients for RLlib's default MLP module, without autograd.

With a 64x64 policy, a minibatch update's autograd graph (some forty nodes: the loss's
elementwise terms, the layers, gradient accumulation) costs more to build and walk than its
matrix products. For RLlib's default PPO module (an MLP encoder, shared or one per head, a
linear or MLP policy head with the log-std clamp, a value head; tanh or ReLU activations) the
gradient is short to write out: :func:`~tune_grid.training.ppo_loss.output_gradients` gives the
loss's gradient with respect to the heads' outputs, and each dense layer passes
``g @ W`` back and keeps ``g.T @ x`` and ``g.sum(0)`` as its weight and bias gradients, the
same matrix products autograd runs. Tests compare every parameter's gradient with autograd's
and whole updates with RLlib's learner.

:func:`mlp_plan` returns None for anything else (other module classes, layer norms, squashed
policies, no critic), which then takes the autograd path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchDiagGaussian
from ray.rllib.core.models.torch.encoder import TorchActorCriticEncoder, TorchMLPEncoder
from ray.rllib.core.models.torch.heads import TorchMLPHead
from ray.rllib.core.models.torch.primitives import TorchMLP

from tune_grid.training.critic import (
    CentralizedCriticPPOTorchRLModule,
    TuneGridPPOTorchRLModule,
    ValueNormPPOTorchRLModule,
)
from tune_grid.training.global_state import GLOBAL_OBS
from tune_grid.training.obs_norm import normalized
from tune_grid.training.ppo_loss import PPOCoefficients, PPOTerms, output_gradients, ppo_terms
from tune_grid.training.value_norm import with_value_norm

PLAIN_MODULES = (DefaultPPOTorchRLModule, TuneGridPPOTorchRLModule, ValueNormPPOTorchRLModule)
"""Module classes whose training forward pass and values are exactly the MLPs below (the two
subclasses only add an initial log-std, observation and value normalization)."""

_ACTIVATIONS = {torch.nn.Tanh: "tanh", torch.nn.ReLU: "relu"}


@dataclass(frozen=True)
class Dense:
    """One linear layer and the activation after it (None: none)."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    activation: str | None


Chain = tuple[Dense, ...]


@dataclass(frozen=True)
class MLPPlan:
    """A PPO module as chains of dense layers: ``trunk`` (the shared encoder; empty with
    separate encoders) feeds ``actor`` (actor encoder and policy head) and ``critic`` (critic
    encoder and value head). The centralized critic's ``critic`` reads the global state
    instead (``critic_input``), normalized by its own statistics."""

    module: Any
    trunk: Chain
    actor: Chain
    critic: Chain
    log_std_clip: float | None
    critic_input: str | None = None
    """The batch column the critic reads (None: the trunk's output)."""

    def parameters(self) -> list[torch.Tensor]:
        return [
            p
            for layer in (*self.trunk, *self.actor, *self.critic)
            for p in (layer.weight, layer.bias)
            if p is not None
        ]


def mlp_plan(module: Any) -> MLPPlan | None:
    """The plan of ``module`` (an unwrapped RLModule), or None where it is not a default PPO
    module or a centralized critic's module of plain dense layers with a diagonal Gaussian
    policy."""
    if type(module) not in (*PLAIN_MODULES, CentralizedCriticPPOTorchRLModule):
        return None
    if module.is_stateful() or not all(
        cls is TorchDiagGaussian
        for cls in (module.get_train_action_dist_cls(), module.get_exploration_action_dist_cls())
    ):
        return None
    if type(module) is CentralizedCriticPPOTorchRLModule:
        actor, critic = _chain(module.actor), _chain(getattr(module, "critic", None))
        if actor is None or critic is None:
            return None
        return _owning_all(
            MLPPlan(module, (), actor, critic, module.log_std_clip, critic_input=GLOBAL_OBS)
        )
    encoder, pi, vf = (getattr(module, name, None) for name in ("encoder", "pi", "vf"))
    if not isinstance(encoder, TorchActorCriticEncoder) or not all(
        type(head) is TorchMLPHead for head in (pi, vf)
    ):
        return None
    assert isinstance(pi, TorchMLPHead) and isinstance(vf, TorchMLPHead)
    parts: tuple[Chain | None, ...]
    if getattr(encoder.config, "shared", False):
        trunk = _chain(getattr(encoder, "encoder", None))
        actor, critic = _chain(pi), _chain(vf)
        parts = (trunk, actor, critic)
    else:
        trunk = ()
        actor_encoder = _chain(getattr(encoder, "actor_encoder", None))
        critic_encoder = _chain(getattr(encoder, "critic_encoder", None))
        heads = (_chain(pi), _chain(vf))
        if actor_encoder is None or critic_encoder is None or None in heads:
            return None
        actor = actor_encoder + heads[0]  # type: ignore[operator]
        critic = critic_encoder + heads[1]  # type: ignore[operator]
        parts = (actor, critic)
    if any(part is None for part in parts) or getattr(vf, "clip_log_std", False):
        return None
    return _owning_all(
        MLPPlan(
            module=module,
            trunk=trunk or (),
            actor=actor,  # type: ignore[arg-type]
            critic=critic,  # type: ignore[arg-type]
            log_std_clip=float(pi.log_std_clip_param_const.item()) if pi.clip_log_std else None,
        )
    )


def _owning_all(plan: MLPPlan) -> MLPPlan | None:
    """``plan``, or None where the module has a parameter the chains would not train."""
    owned = {id(p) for p in plan.module.parameters()}
    return plan if owned == {id(p) for p in plan.parameters()} else None


def _chain(part: Any) -> Chain | None:
    """The dense layers of RLlib's ``TorchMLP``, or of an encoder or head built on one."""
    if isinstance(part, TorchMLPEncoder | TorchMLPHead):
        part = part.net
    if type(part) is not TorchMLP:
        return None
    return _dense_layers(list(part.mlp))


def _dense_layers(layers: list[torch.nn.Module]) -> Chain | None:
    chain: list[Dense] = []
    for layer in layers:
        if type(layer) is torch.nn.Identity:
            continue
        if type(layer) is torch.nn.Linear:
            chain.append(Dense(layer.weight, layer.bias, None))
        elif type(layer) in _ACTIVATIONS and chain and chain[-1].activation is None:
            chain[-1] = Dense(chain[-1].weight, chain[-1].bias, _ACTIVATIONS[type(layer)])
        else:
            return None
    return tuple(chain)


def _forward(chain: Chain, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The chain's output and each layer's input (and last the output)."""
    seen = [x]
    for layer in chain:
        x = torch.nn.functional.linear(x, layer.weight, layer.bias)
        if layer.activation == "tanh":
            x = torch.tanh(x)
        elif layer.activation == "relu":
            x = torch.relu(x)
        seen.append(x)
    return x, seen


def _backward(
    chain: Chain,
    seen: list[torch.Tensor],
    grad: torch.Tensor,
    grads: dict[Any, torch.Tensor],
    *,
    input_grad: bool,
) -> torch.Tensor | None:
    """Accumulate the chain's parameter gradients into ``grads`` from the gradient of its
    output; returns the gradient of its input when ``input_grad``."""
    for index in range(len(chain) - 1, -1, -1):
        layer = chain[index]
        if layer.activation == "tanh":
            grad = torch.ops.aten.tanh_backward(grad, seen[index + 1])
        elif layer.activation == "relu":
            grad = torch.ops.aten.threshold_backward(grad, seen[index + 1], 0)
        grads[layer.weight] = grad.t().mm(seen[index])
        if layer.bias is not None:
            grads[layer.bias] = grad.sum(0)
        if index > 0 or input_grad:
            grad = grad.mm(layer.weight)
    return grad if input_grad else None


@torch.no_grad()
def mlp_gradients(
    plan: MLPPlan, batch: dict[str, Any], c: PPOCoefficients
) -> tuple[dict[Any, torch.Tensor], PPOTerms]:
    """Every parameter's gradient of PPO's loss on ``batch`` (the module's training forward
    pass, value normalization as in the learner) and the loss's terms, for statistics."""
    module = plan.module
    batch = normalized(batch, Columns.OBS, getattr(module, "obs_normalizer", None))
    weight = plan.actor[0].weight if not plan.trunk else plan.trunk[0].weight
    obs = batch[Columns.OBS].to(weight.dtype)
    features, trunk_seen = _forward(plan.trunk, obs)
    policy_out, actor_seen = _forward(plan.actor, features)
    critic_in = features
    if plan.critic_input is not None:
        normalizer = getattr(module, "global_obs_normalizer", None)
        critic_in = normalized(batch, plan.critic_input, normalizer)[plan.critic_input]
    value_out, critic_seen = _forward(plan.critic, critic_in.to(weight.dtype))
    mean, raw_log_std = policy_out.chunk(2, dim=-1)
    log_std = raw_log_std
    if plan.log_std_clip is not None:
        log_std = torch.clamp(raw_log_std, -plan.log_std_clip, plan.log_std_clip)
    terms = with_value_norm(
        module, batch, lambda b: ppo_terms(mean, log_std, value_out.squeeze(-1), b, c)
    )
    mean_grad, log_std_grad, value_grad = output_gradients(terms, c)
    if plan.log_std_clip is not None:
        log_std_grad = log_std_grad * (raw_log_std.abs() <= plan.log_std_clip)
    grads: dict[Any, torch.Tensor] = {}
    shared = bool(plan.trunk)
    from_actor = _backward(
        plan.actor, actor_seen, torch.cat((mean_grad, log_std_grad), -1), grads, input_grad=shared
    )
    from_critic = _backward(
        plan.critic, critic_seen, value_grad.unsqueeze(-1), grads, input_grad=shared
    )
    if shared:
        assert from_actor is not None and from_critic is not None
        _backward(plan.trunk, trunk_seen, from_actor + from_critic, grads, input_grad=False)
    return grads, terms
