"""RLlib's default PPO modules (and the centralized critic's) read as chains of dense layers.

A module that is an MLP encoder (shared, or one per head), a policy head with the log-std clamp
and a value head, all plain ``Linear`` layers with tanh or ReLU activations, is described by an
:class:`MLPPlan`. The lean loops use it to run the module's forward pass as a short list of
tensor operations (the same operations, so the same numbers) and to write out PPO's gradients
(:mod:`tune_grid.training.mlp_gradients`). Any other module gets None and keeps RLlib's calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
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
    critic: Chain | None
    """None only inside :func:`policy_plan` (an inference-only module has no value head)."""
    log_std_clip: float | None
    critic_input: str | None = None
    """The batch column the critic reads (None: the trunk's output)."""

    def parameters(self) -> list[torch.Tensor]:
        return [
            p
            for layer in (*self.trunk, *self.actor, *(self.critic or ()))
            for p in (layer.weight, layer.bias)
            if p is not None
        ]


def mlp_plan(module: Any) -> MLPPlan | None:
    """The plan of ``module`` (an unwrapped RLModule with its value head), or None where it is
    not a default PPO module or a centralized critic's module of plain dense layers with a
    diagonal Gaussian policy."""
    plan = _plan(module)
    if plan is None or plan.critic is None:
        return None
    owned = {id(p) for p in module.parameters()}
    return plan if owned == {id(p) for p in plan.parameters()} else None


@dataclass(frozen=True)
class PolicyPlan:
    """The policy's half of an :class:`MLPPlan`: what an env runner's module needs to act."""

    module: Any
    chain: Chain
    log_std_clip: float | None

    def dist_inputs(self, obs: torch.Tensor) -> torch.Tensor:
        """The module's ``ACTION_DIST_INPUTS`` for ``obs``: normalized where the module
        normalizes, through the chain, the log-std clamped as RLlib's policy head does."""
        normalizer = getattr(self.module, "obs_normalizer", None)
        if normalizer is not None:
            obs = normalizer.normalize(obs)
        dtype = self.chain[0].weight.dtype
        out, _ = forward(self.chain, obs if obs.dtype == dtype else obs.to(dtype))
        if self.log_std_clip is not None:  # in place: the values of RLlib's chunk-clamp-cat
            out[:, out.shape[-1] // 2 :].clamp_(-self.log_std_clip, self.log_std_clip)
        return out


PlanT = TypeVar("PlanT", MLPPlan, PolicyPlan)


def policy_plan(module: Any) -> PolicyPlan | None:
    """The policy's plan of ``module`` (a learner's or an env runner's inference-only copy), or
    None (see :func:`mlp_plan`)."""
    plan = _plan(module)
    if plan is None or not (plan.trunk + plan.actor):
        return None
    return PolicyPlan(module, plan.trunk + plan.actor, plan.log_std_clip)


def cached_plan(
    cache: dict[str, tuple[Any, Any]],
    module_id: str,
    module: Any,
    build: Callable[[Any], PlanT | None],
) -> PlanT | None:
    """``build(module)``, kept in ``cache`` under ``module_id`` while that id names the same
    module object (weights load in place; a module added again is built again)."""
    entry = cache.get(module_id)
    if entry is not None and entry[0] is module:
        return entry[1]
    plan = build(module)
    cache[module_id] = (module, plan)
    return plan


def _plan(module: Any) -> MLPPlan | None:
    """The chains of ``module``; ``critic`` is None where it has no value head (an
    inference-only copy)."""
    if type(module) not in (*PLAIN_MODULES, CentralizedCriticPPOTorchRLModule):
        return None
    if module.is_stateful() or not all(
        cls is TorchDiagGaussian
        for cls in (module.get_train_action_dist_cls(), module.get_exploration_action_dist_cls())
    ):
        return None
    if type(module) is CentralizedCriticPPOTorchRLModule:
        actor = _chain(module.actor)
        critic = _chain(getattr(module, "critic", None))
        if actor is None:
            return None
        return MLPPlan(module, (), actor, critic, module.log_std_clip, critic_input=GLOBAL_OBS)
    encoder, pi, vf = (getattr(module, name, None) for name in ("encoder", "pi", "vf"))
    if not isinstance(encoder, TorchActorCriticEncoder) or type(pi) is not TorchMLPHead:
        return None
    assert isinstance(pi, TorchMLPHead)
    if vf is not None and (type(vf) is not TorchMLPHead or getattr(vf, "clip_log_std", False)):
        return None
    head, value_head = _chain(pi), _chain(vf) if vf is not None else None
    if getattr(encoder.config, "shared", False):
        trunk, actor, critic = _chain(getattr(encoder, "encoder", None)), head, value_head
    else:
        trunk = ()
        actor_encoder = _chain(getattr(encoder, "actor_encoder", None))
        critic_encoder = _chain(getattr(encoder, "critic_encoder", None))
        actor = None if actor_encoder is None or head is None else actor_encoder + head
        critic = (
            None if critic_encoder is None or value_head is None else critic_encoder + value_head
        )
    if trunk is None or actor is None:
        return None
    return MLPPlan(
        module=module,
        trunk=trunk,
        actor=actor,
        critic=critic,
        log_std_clip=float(pi.log_std_clip_param_const.item()) if pi.clip_log_std else None,
    )


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


def forward(chain: Chain, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
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
