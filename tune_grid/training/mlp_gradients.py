"""PPO's minibatch gradients for RLlib's default MLP module, without autograd.

With a 64x64 policy, a minibatch update's autograd graph (some forty nodes: the loss's
elementwise terms, the layers, gradient accumulation) costs more to build and walk than its
matrix products. For a module an :class:`~tune_grid.training.mlp_plan.MLPPlan` describes, the
gradient is short to write out: :func:`~tune_grid.training.ppo_loss.output_gradients` gives the
loss's gradient with respect to the heads' outputs, and each dense layer passes ``g @ W`` back
and keeps ``g.T @ x`` and ``g.sum(0)`` as its weight and bias gradients, the same matrix
products autograd runs. Tests compare every parameter's gradient with autograd's and whole
updates with RLlib's learner.
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.core.columns import Columns

from tune_grid.training.mlp_plan import Chain, MLPPlan, forward
from tune_grid.training.obs_norm import normalized
from tune_grid.training.ppo_loss import PPOCoefficients, PPOTerms, output_gradients, ppo_terms
from tune_grid.training.value_norm import with_value_norm


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
    assert plan.critic is not None  # mlp_plan's plans have one
    batch = normalized(batch, Columns.OBS, getattr(module, "obs_normalizer", None))
    weight = plan.actor[0].weight if not plan.trunk else plan.trunk[0].weight
    obs = batch[Columns.OBS].to(weight.dtype)
    features, trunk_seen = forward(plan.trunk, obs)
    policy_out, actor_seen = forward(plan.actor, features)
    critic_in = features
    if plan.critic_input is not None:
        normalizer = getattr(module, "global_obs_normalizer", None)
        critic_in = normalized(batch, plan.critic_input, normalizer)[plan.critic_input]
    value_out, critic_seen = forward(plan.critic, critic_in.to(weight.dtype))
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
