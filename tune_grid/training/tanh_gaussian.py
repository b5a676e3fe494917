"""The tanh-squashed Gaussian policy of ``action_squash: tanh``.

Every action space here is ``Box(-1, 1)``. With ``action_squash: clip`` (RLlib's default) the
policy is a diagonal Gaussian whose samples the env clips, so a wide policy puts much of its mass
on the bounds, where the gradient of the log-probability says nothing about the clipped part.
``tanh`` samples ``u`` from the Gaussian and acts ``tanh(u)``, strictly inside the bounds.

:class:`TanhGaussian` is RLlib's ``TorchSquashedGaussian`` with what PPO needs and RLlib leaves
out:

* ``kl``: the KL divergence of the two pre-squash Gaussians, which is exact (tanh is a bijection,
  and a KL divergence is invariant under one);
* ``entropy``: the pre-squash Gaussian's entropy (the squashed one has no closed form); it enters
  the loss only with ``entropy_coeff > 0`` and is what RLlib logs as the entropy;
* ``to_deterministic``: ``tanh(mean)``, the greedy action (RLlib's gives the pre-squash mean);
* samples are clamped to ``±(1 - 1e-6)``, the same bound RLlib's log-probability clamps an action
  to before ``atanh``: a sample that saturates in float32 keeps a log-probability consistent with
  the one the learner recomputes, and the env never receives a bound.
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.core.distribution.torch.torch_distribution import (
    TorchDeterministic,
    TorchDiagGaussian,
    TorchSquashedGaussian,
)
from ray.rllib.utils.numpy import SMALL_NUMBER

ACTION_SQUASH_KEY = "tune_grid_action_squash"
"""model_config key: ``"tanh"`` for :class:`TanhGaussian`, else the module's Gaussian."""
BOUND = 1.0 - SMALL_NUMBER
"""The largest action magnitude a sample takes."""


class TanhGaussian(TorchSquashedGaussian):
    """``tanh(u)``, ``u`` a diagonal Gaussian, on ``[-1, 1]`` (see the module docstring)."""

    def _squash(self, sample: Any) -> Any:
        return torch.tanh(sample).clamp(-BOUND, BOUND)

    def _gaussian(self) -> TorchDiagGaussian:
        return TorchDiagGaussian(loc=self.loc, scale=self._dist.scale)

    def entropy(self, **kwargs: Any) -> Any:
        return self._gaussian().entropy()

    def kl(self, other: Any, **kwargs: Any) -> Any:
        assert isinstance(other, TanhGaussian), other
        return self._gaussian().kl(other._gaussian())

    def to_deterministic(self) -> TorchDeterministic:
        loc = torch.as_tensor(self.loc)
        return TorchDeterministic(loc=torch.tanh(loc).clamp(-BOUND, BOUND))


def action_dist_cls(config: Any) -> type | None:
    """:class:`TanhGaussian` when the module config asks for it, else None (keep the module's)."""
    squash = config.get(ACTION_SQUASH_KEY) if isinstance(config, dict) else None
    return TanhGaussian if squash == "tanh" else None
