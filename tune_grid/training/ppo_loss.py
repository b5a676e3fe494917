"""PPO's loss for a diagonal Gaussian policy, in closed form, and its gradient with respect to
the network outputs.

:func:`ppo_loss` is RLlib's ``PPOTorchLearner.compute_loss_for_module`` written out: the
log-probability, entropy and KL of the Gaussian in closed form, and masked means as weighted sums
(no boolean indexing). The same terms and coefficients: clipped surrogate, value loss clipped at
``vf_clip_param``, entropy bonus and, with a KL coefficient, the KL penalty to the sampling
policy. :func:`output_gradients` is its derivative with respect to the policy's mean and log-std
and the value head's output, for :mod:`tune_grid.training.mlp_gradients`. Both read the same
per-row terms (:class:`PPOTerms`); tests compare the loss with RLlib's and the derivative with
autograd's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from ray.rllib.algorithms.ppo.ppo import (
    LEARNER_RESULTS_KL_KEY,
    LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY,
    LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY,
)
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.torch_utils import explained_variance

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@dataclass(frozen=True)
class PPOCoefficients:
    """What PPO's loss weighs its terms with (RLlib's names); ``kl_coeff`` None: no KL term."""

    clip_param: float
    vf_clip_param: float
    vf_loss_coeff: float
    entropy_coeff: float
    kl_coeff: Any
    use_critic: bool


@dataclass
class PPOTerms:
    """The per-row terms of PPO's loss on one minibatch, and the weights of its masked mean."""

    batch: dict[str, Any]
    mean: torch.Tensor
    log_std: torch.Tensor
    std: torch.Tensor
    scaled_error: torch.Tensor
    """``(action - mean) / std``, per action dimension."""
    ratio: torch.Tensor
    unclipped: torch.Tensor
    """``advantage * ratio``."""
    clipped: torch.Tensor
    """``advantage * clamp(ratio, 1 - clip, 1 + clip)``."""
    surrogate: torch.Tensor
    entropy: torch.Tensor
    values: torch.Tensor
    vf_loss: torch.Tensor
    vf_loss_clipped: torch.Tensor
    var_ratio: torch.Tensor | None
    """``exp(2 (old log-std - log-std))``, with a KL term."""
    distance: torch.Tensor | None
    """``((old mean - mean) / std)^2``, with a KL term."""
    kl: torch.Tensor | None
    weights: torch.Tensor | None
    """Each row's weight in the masked mean (None: no mask, a plain mean)."""

    def masked_mean(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean() if self.weights is None else (x * self.weights).sum()

    def total(self, c: PPOCoefficients) -> torch.Tensor:
        rows = (
            -self.surrogate
            + c.vf_loss_coeff * self.vf_loss_clipped
            - c.entropy_coeff * self.entropy
        )
        total = self.masked_mean(rows)
        if self.kl is not None:
            total = total + c.kl_coeff * self.kl
        return total

    def statistics(self, use_critic: bool) -> dict[str, Any]:
        """What RLlib logs per module after its loss."""
        targets = self.batch[Postprocessing.VALUE_TARGETS]
        return {
            POLICY_LOSS_KEY: -self.masked_mean(self.surrogate),
            VF_LOSS_KEY: self.masked_mean(self.vf_loss_clipped),
            LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY: self.masked_mean(self.vf_loss),
            LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY: explained_variance(targets, self.values)
            if use_critic
            else torch.zeros(()),
            ENTROPY_KEY: self.masked_mean(self.entropy),
            LEARNER_RESULTS_KL_KEY: self.kl if self.kl is not None else torch.zeros(()),
        }


def ppo_terms(
    mean: torch.Tensor,
    log_std: torch.Tensor,
    values: torch.Tensor | None,
    batch: dict[str, Any],
    c: PPOCoefficients,
) -> PPOTerms:
    """The loss's per-row terms from the policy's mean and log-std and the value head's output
    (None without a critic)."""
    old_mean, old_log_std = batch[Columns.ACTION_DIST_INPUTS].chunk(2, dim=-1)
    std = log_std.exp()
    scaled_error = (batch[Columns.ACTIONS] - mean) / std
    logp = (-0.5 * scaled_error.square() - log_std - _HALF_LOG_2PI).sum(-1)
    ratio = torch.exp(logp - batch[Columns.ACTION_LOGP])
    entropy = (0.5 + _HALF_LOG_2PI + log_std).sum(-1)
    mask = batch.get(Columns.LOSS_MASK)
    weights = None
    if mask is not None:
        weights = mask.to(logp.dtype)
        weights = weights / weights.sum()
    advantages = batch[Postprocessing.ADVANTAGES]
    unclipped = advantages * ratio
    clipped = advantages * torch.clamp(ratio, 1 - c.clip_param, 1 + c.clip_param)
    if c.use_critic and values is not None:
        vf_loss = (values - batch[Postprocessing.VALUE_TARGETS]).square()
        vf_loss_clipped = torch.clamp(vf_loss, 0, c.vf_clip_param)
    else:
        values = vf_loss = vf_loss_clipped = torch.zeros((), device=logp.device)
    terms = PPOTerms(
        batch=batch,
        mean=mean,
        log_std=log_std,
        std=std,
        scaled_error=scaled_error,
        ratio=ratio,
        unclipped=unclipped,
        clipped=clipped,
        surrogate=torch.min(unclipped, clipped),
        entropy=entropy,
        values=values,
        vf_loss=vf_loss,
        vf_loss_clipped=vf_loss_clipped,
        var_ratio=None,
        distance=None,
        kl=None,
        weights=weights,
    )
    if c.kl_coeff is not None:
        terms.var_ratio = torch.exp(2.0 * (old_log_std - log_std))
        terms.distance = ((old_mean - mean) / std).square()
        rows = 0.5 * (terms.var_ratio + terms.distance - 1.0) - (old_log_std - log_std)
        terms.kl = terms.masked_mean(rows.sum(-1))
    return terms


def ppo_loss(
    module: Any,
    batch: dict[str, Any],
    fwd_out: dict[str, Any],
    c: PPOCoefficients,
    *,
    log: Callable[[Callable[[], dict[str, Any]]], None],
) -> torch.Tensor:
    """RLlib's PPO loss for a diagonal Gaussian policy (see the module docstring).

    ``log`` receives a function returning the loss statistics RLlib logs (called once per
    update by the lean loop, not per minibatch)."""
    values = None
    if c.use_critic:
        values = module.compute_values(batch, embeddings=fwd_out.get(Columns.EMBEDDINGS))
    mean, log_std = fwd_out[Columns.ACTION_DIST_INPUTS].chunk(2, dim=-1)
    terms = ppo_terms(mean, log_std, values, batch, c)
    log(lambda: terms.statistics(c.use_critic))
    return terms.total(c)


def output_gradients(
    terms: PPOTerms, c: PPOCoefficients
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The loss's gradients with respect to the mean, the log-std and the values (rows of
    :func:`ppo_terms`'s inputs), as autograd would give them.

    The surrogate ``min(A r, A clamp(r))`` passes ``A`` to the ratio where the unclipped term is
    the smaller one or the ratio lies inside the clip range (ties split evenly in autograd and
    add up to ``A`` there), else nothing; ``d logp / d mean = z / std`` and
    ``d logp / d log_std = z^2 - 1`` with ``z = (a - mean) / std``. The clipped value loss passes
    its gradient where ``(v - target)^2 <= vf_clip``. ``c.use_critic`` must be true.
    """
    rows = terms.ratio.shape[0]
    weights = (
        terms.weights if terms.weights is not None else terms.ratio.new_full((rows,), 1 / rows)
    )
    inside = (terms.ratio >= 1 - c.clip_param) & (terms.ratio <= 1 + c.clip_param)
    passes = (terms.unclipped < terms.clipped) | inside
    advantages = terms.batch[Postprocessing.ADVANTAGES]
    logp_grad = (-(weights * advantages * terms.ratio) * passes).unsqueeze(-1)
    z = terms.scaled_error
    mean_grad = logp_grad * z / terms.std
    log_std_grad = logp_grad * (z.square() - 1.0) - (c.entropy_coeff * weights).unsqueeze(-1)
    if terms.kl is not None:
        assert terms.var_ratio is not None and terms.distance is not None
        old_mean = terms.batch[Columns.ACTION_DIST_INPUTS].chunk(2, dim=-1)[0]
        kl_weights = (c.kl_coeff * weights).unsqueeze(-1)
        mean_grad = mean_grad + kl_weights * (terms.mean - old_mean) / terms.std.square()
        log_std_grad = log_std_grad + kl_weights * (1.0 - terms.var_ratio - terms.distance)
    error = terms.values - terms.batch[Postprocessing.VALUE_TARGETS]
    value_grad = (2.0 * c.vf_loss_coeff) * weights * error * (terms.vf_loss <= c.vf_clip_param)
    return mean_grad, log_std_grad, value_grad
