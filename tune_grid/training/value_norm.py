"""MAPPO's value normalization (Yu et al. 2022): the value head learns standardized returns.

With ``value_norm: true`` a module owns a :class:`ValueNormalizer` (running mean and variance of
the value targets, kept as buffers, so checkpoints carry them). Its ``compute_values`` returns
``denormalize(head output)``: GAE, which RLlib runs on the learner before the update, then works
in reward units as always. :class:`ValueNormPPOTorchLearner` appends
:class:`UpdateValueNormalizers` after RLlib's GAE piece (the statistics take in the batch's value
targets once per training batch) and computes the value loss on the normalized scale: the head's
raw output against ``normalize(value target)``, so ``vf_clip_param`` is in standard deviations
of the return there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.typing import ModuleID

VALUE_NORM_BETA = 0.99999
"""Weight of the old statistics per update, MAPPO's default. With the debiasing term the
statistics are then, for a whole training run, practically the mean and variance over every
value target seen so far."""
MIN_VARIANCE = 1e-2
"""Floor of the variance (MAPPO's), so near-constant returns are not blown up."""


class ValueNormalizer(torch.nn.Module):
    """Debiased exponential running mean and mean square of value targets.

    Before the first :meth:`update` it is the identity (mean 0, std 1).
    """

    running_mean: torch.Tensor
    running_mean_sq: torch.Tensor
    debiasing: torch.Tensor
    """The buffers (registered in ``__init__``), declared for the type checker."""

    def __init__(self, beta: float = VALUE_NORM_BETA) -> None:
        super().__init__()
        self.beta = beta
        self.register_buffer("running_mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("running_mean_sq", torch.zeros((), dtype=torch.float64))
        self.register_buffer("debiasing", torch.zeros((), dtype=torch.float64))
        self._raw_outputs = False

    @torch.no_grad()
    def update(self, targets: torch.Tensor) -> None:
        """Take in one batch of value targets (any shape; empty batches are ignored)."""
        values = targets.detach().reshape(-1).to(self.running_mean.device, torch.float64)
        if values.numel() == 0:
            return
        beta = self.beta
        self.running_mean.mul_(beta).add_((1.0 - beta) * values.mean())
        self.running_mean_sq.mul_(beta).add_((1.0 - beta) * values.square().mean())
        self.debiasing.mul_(beta).add_(1.0 - beta)

    def mean_and_var(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The debiased mean and variance (0 and 1 before any update)."""
        seen = self.debiasing > 0.0  # a tensor: no host sync on a GPU
        debiasing = self.debiasing.clamp(min=1e-300)
        mean = self.running_mean / debiasing
        var = (self.running_mean_sq / debiasing - mean.square()).clamp(min=MIN_VARIANCE)
        return mean, torch.where(seen, var, torch.ones_like(var))

    def normalize(self, values: torch.Tensor) -> torch.Tensor:
        mean, var = self.mean_and_var()
        return ((values - mean) / var.sqrt()).to(values.dtype)

    def denormalize(self, values: torch.Tensor) -> torch.Tensor:
        mean, var = self.mean_and_var()
        return (values * var.sqrt() + mean).to(values.dtype)

    def output(self, head_output: torch.Tensor) -> torch.Tensor:
        """What ``compute_values`` returns: denormalized, or the raw head output inside
        :meth:`raw_outputs`."""
        return head_output if self._raw_outputs else self.denormalize(head_output)

    @contextlib.contextmanager
    def raw_outputs(self) -> Iterator[None]:
        """Within the block the module's ``compute_values`` returns the normalized head output."""
        previous, self._raw_outputs = self._raw_outputs, True
        try:
            yield
        finally:
            self._raw_outputs = previous


def value_normalizer(module: Any) -> ValueNormalizer | None:
    """The module's normalizer, or None (RLlib's default module, or ``value_norm: false``)."""
    normalizer = getattr(module, "value_normalizer", None)
    return normalizer if isinstance(normalizer, ValueNormalizer) else None


class UpdateValueNormalizers(ConnectorV2):
    """Learner connector piece after GAE: each module's statistics take in its batch's value
    targets (the real timesteps only: the loss mask drops GAE's bootstrap step)."""

    def __call__(
        self,
        *,
        rl_module: Any,
        batch: dict[str, Any],
        episodes: list[Any],
        explore: bool | None = None,
        shared_data: dict | None = None,
        **kwargs: Any,
    ) -> Any:
        for module_id, module_batch in batch.items():
            if module_id not in rl_module:
                continue
            normalizer = value_normalizer(rl_module[module_id].unwrapped())
            if normalizer is None or Postprocessing.VALUE_TARGETS not in module_batch:
                continue
            targets = torch.as_tensor(module_batch[Postprocessing.VALUE_TARGETS])
            mask = module_batch.get(Columns.LOSS_MASK)
            if mask is not None:
                targets = targets[torch.as_tensor(mask, dtype=torch.bool, device=targets.device)]
            normalizer.update(targets)
        return batch


class ValueNormPPOTorchLearner(PPOTorchLearner):
    """RLlib's PPO torch learner, plus value normalization for modules that have a normalizer
    (others train exactly as with RLlib's learner)."""

    def build(self) -> None:
        super().build()  # PPOLearner appends GAE to the learner connector here
        if self._learner_connector is not None and any(
            value_normalizer(module.unwrapped()) for _, module in self.module.items()
        ):
            self._learner_connector.append(UpdateValueNormalizers())

    def compute_loss_for_module(
        self,
        *,
        module_id: ModuleID,
        config: Any,
        batch: dict[str, Any],
        fwd_out: dict[str, Any],
    ) -> Any:
        parent = super().compute_loss_for_module
        return with_value_norm(
            self.module[module_id].unwrapped(),
            batch,
            lambda b: parent(module_id=module_id, config=config, batch=b, fwd_out=fwd_out),
        )


def with_value_norm(module: Any, batch: dict[str, Any], loss: Callable[[dict], Any]) -> Any:
    """``loss(batch)``, on the normalized scale where ``module`` has a normalizer: value targets
    normalized and ``compute_values`` returning the head's raw output; else ``loss(batch)``."""
    normalizer = value_normalizer(module)
    if normalizer is None:
        return loss(batch)
    targets = batch[Postprocessing.VALUE_TARGETS]
    normalized = {**batch, Postprocessing.VALUE_TARGETS: normalizer.normalize(targets)}
    with normalizer.raw_outputs():
        return loss(normalized)
