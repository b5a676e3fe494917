"""Running observation normalization (``obs_norm: true``), inside the RLModule.

Each module owns an :class:`ObservationNormalizer`: the mean and variance of every observation
feature over all observations its learner has trained on, kept as buffers. So a checkpoint, the
env runners' copies (weights are synced with the buffers) and a loaded :class:`TrainedPolicy`
all normalize with the same statistics, and validation and evaluation need nothing extra.
The module's forward passes read ``clip((obs - mean) / sqrt(var + eps), -10, 10)``
(the defaults of Stable-Baselines3's ``VecNormalize``; Andrychowicz et al. 2021 found
observation normalization to matter for continuous-control PPO).

The statistics change only *after* an update (:class:`ObsNormLearnerMixin`): the learner
connector stages each batch's statistics (:class:`StageObservationStatistics`, the real
timesteps only) and the learner merges them in ``after_gradient_based_update``. The update
therefore sees the observations exactly as the policy that collected them did, and PPO's
probability ratio starts at 1. A centralized critic's ``global_obs`` has a normalizer of its own
(learner copy only).
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns

from tune_grid.training.global_state import GLOBAL_OBS

OBS_NORM_KEY = "tune_grid_obs_norm"
"""model_config key: whether the module normalizes its observations."""
CLIP = 10.0
EPSILON = 1e-8


class ObservationNormalizer(torch.nn.Module):
    """Per-feature mean and variance of every observation merged so far (Chan et al.'s parallel
    update, exact for any batch sizes), and the normalization they give.

    Before the first merge it is the identity.
    """

    count: torch.Tensor
    mean: torch.Tensor
    var: torch.Tensor

    def __init__(self, features: int) -> None:
        super().__init__()
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(features, dtype=torch.float64))
        self.register_buffer("var", torch.ones(features, dtype=torch.float64))
        self._pending: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        scaled = ((obs - self.mean) / torch.sqrt(self.var + EPSILON)).clamp(-CLIP, CLIP)
        return torch.where(self.count > 0, scaled.to(obs.dtype), obs)

    @torch.no_grad()
    def stage(self, obs: torch.Tensor) -> None:
        """Take in a batch (rows x features) for the next :meth:`commit`; empty ones are ignored."""
        rows = obs.detach().reshape(-1, self.mean.shape[0]).to(self.mean.device, torch.float64)
        if rows.shape[0] == 0:
            return
        batch = (
            torch.tensor(float(rows.shape[0]), dtype=torch.float64, device=rows.device),
            rows.mean(dim=0),
            rows.var(dim=0, unbiased=False),
        )
        self._pending = batch if self._pending is None else _merge(self._pending, batch)

    @torch.no_grad()
    def commit(self) -> None:
        """Merge the staged batches into the statistics the forward passes use."""
        if self._pending is None:
            return
        count, mean, var = _merge((self.count, self.mean, self.var), self._pending)
        self.count.copy_(count)
        self.mean.copy_(mean)
        self.var.copy_(var)
        self._pending = None


def _merge(
    a: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    b: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The count, mean and (population) variance of two sets' union."""
    (n_a, mean_a, var_a), (n_b, mean_b, var_b) = a, b
    total = n_a + n_b
    delta = mean_b - mean_a
    mean = mean_a + delta * n_b / total
    var = (var_a * n_a + var_b * n_b + delta.square() * n_a * n_b / total) / total
    return total, mean, var


def normalizers(module: Any) -> dict[str, ObservationNormalizer]:
    """The module's normalizers by the batch column they read (none: ``obs_norm: false``)."""
    found = {}
    for column, attribute in (
        (Columns.OBS, "obs_normalizer"),
        (GLOBAL_OBS, "global_obs_normalizer"),
    ):
        normalizer = getattr(module, attribute, None)
        if isinstance(normalizer, ObservationNormalizer):
            found[column] = normalizer
    return found


def normalized(
    batch: dict[str, Any], column: str, normalizer: ObservationNormalizer | None
) -> dict[str, Any]:
    """``batch`` with ``column`` normalized (a shallow copy), or ``batch`` itself."""
    if normalizer is None or column not in batch:
        return batch
    return {**batch, column: normalizer.normalize(batch[column])}


class StageObservationStatistics(ConnectorV2):
    """Learner connector piece: each module's normalizers stage their column of its batch (real
    timesteps only: the loss mask drops GAE's bootstrap step)."""

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
            mask = module_batch.get(Columns.LOSS_MASK)
            for column, normalizer in normalizers(rl_module[module_id].unwrapped()).items():
                if column not in module_batch:
                    continue
                rows = torch.as_tensor(module_batch[column])
                if mask is not None:
                    rows = rows[torch.as_tensor(mask, dtype=torch.bool, device=rows.device)]
                normalizer.stage(rows)
        return batch


class ObsNormLearnerMixin:
    """Stages each training batch's observation statistics and merges them after the update.
    Mix in before an RLlib ``Learner`` subclass; modules without normalizers are untouched."""

    def build(self) -> None:
        learner: Any = self
        super().build()  # type: ignore[misc]
        has_normalizers = any(normalizers(m.unwrapped()) for _, m in learner.module.items())
        if learner._learner_connector is not None and has_normalizers:
            learner._learner_connector.append(StageObservationStatistics())

    def after_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        learner: Any = self
        super().after_gradient_based_update(timesteps=timesteps)  # type: ignore[misc]
        for _, module in learner.module.items():
            for normalizer in normalizers(module.unwrapped()).values():
                normalizer.commit()
