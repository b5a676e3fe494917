"""The lean learner loop: RLlib's PPO update rule, without RLlib's per-minibatch bookkeeping.

RLlib's ``Learner.update`` slices every minibatch out of a ``MultiAgentBatch`` of
``SampleBatch`` objects (``MiniBatchCyclicIterator``: a ``concat_samples`` and a new
``MultiAgentBatch`` per minibatch) and logs a dozen metrics per minibatch into its
``MetricsLogger`` (loss terms, off-policyness, steps trained), each a tree walk and a stats
object. With a 64x64 policy those costs are larger than the forward and backward passes.

:class:`LeanLearnerMixin` overrides ``update`` for the case PPO uses (episodes in, minibatches,
no recurrent modules):

* the learner connector (GAE, the centralized critic's global state, value normalization) runs
  once, as in RLlib, and its tensors are cut into minibatches by slicing (views);
* the minibatches are exactly RLlib's: the same cyclic order, per module, with the same
  ``np.random.permutation`` reshuffle of a module's rows each time its pass wraps, so a seeded
  run draws the same minibatches (tested against RLlib's ``update``);
* each minibatch gets RLlib's update rule (PPO's loss, gradients, the learner's clipping and
  optimizer step), value normalization and the centralized critic included: for RLlib's default
  MLP modules the gradients are written out (:mod:`~tune_grid.training.mlp_gradients`, the same
  numbers as autograd's without building its graph), for other modules they come from
  autograd through the learner's forward pass and :func:`~tune_grid.training.ppo_loss.ppo_loss`;
* metrics logged during the minibatch loop go to a :class:`_LastValues` collector that keeps
  each key's last value, and reach the ``MetricsLogger`` once per ``update`` call: RLlib logs
  these keys with ``window=1``, so its reduced result is that last value too (and PPO's KL
  coefficient adapts from it, as in RLlib). Steps trained are logged once, as totals.

Anything else (batches instead of episodes, no minibatches, stateful modules, gradient scalers)
runs RLlib's own ``update``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from ray.rllib.core import ALL_MODULES
from ray.rllib.core.distribution.torch.torch_distribution import TorchDiagGaussian
from ray.rllib.core.learner.training_data import TrainingData
from ray.rllib.utils.metrics import (
    MODULE_TRAIN_BATCH_SIZE_MEAN,
    NUM_ENV_STEPS_TRAINED,
    NUM_ENV_STEPS_TRAINED_LIFETIME,
    NUM_MODULE_STEPS_TRAINED,
    NUM_MODULE_STEPS_TRAINED_LIFETIME,
    WEIGHTS_SEQ_NO,
)

from tune_grid.training.mlp_gradients import mlp_gradients
from tune_grid.training.mlp_plan import MLPPlan, cached_plan, mlp_plan
from tune_grid.training.ppo_loss import PPOCoefficients, ppo_loss
from tune_grid.training.value_norm import with_value_norm

Batch = dict[str, Any]


class _LastValues:
    """Stands in for the learner's ``MetricsLogger`` during the minibatch loop: keeps the last
    value logged under each key (detached), with the keyword arguments it came with."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, ...], tuple[Any, dict[str, Any]]] = {}
        self.pending: dict[tuple[str, ...], tuple[Callable[[], dict], dict[str, Any]]] = {}

    def log_value(self, key: Any, value: Any, **kwargs: Any) -> None:
        if isinstance(value, torch.Tensor):
            value = value.detach()
        self.values[key if isinstance(key, tuple) else (key,)] = (value, kwargs)

    def log_later(self, key: Any, values: Callable[[], dict[str, Any]], **kwargs: Any) -> None:
        """Log ``values()`` under ``key`` unless a later minibatch logs the key again: what only
        the last minibatch reports is computed once per update."""
        self.pending[key if isinstance(key, tuple) else (key,)] = (values, kwargs)

    def flush(self) -> None:
        with torch.no_grad():
            for key, (values, kwargs) in self.pending.items():
                self.log_dict(values(), key=key, **kwargs)
        self.pending.clear()

    def log_dict(self, values: dict[str, Any], *, key: Any = None, **kwargs: Any) -> None:
        prefix = () if key is None else key if isinstance(key, tuple) else (key,)
        for name, value in values.items():
            path = (*prefix, *name) if isinstance(name, tuple) else (*prefix, name)
            if isinstance(value, dict):
                self.log_dict(value, key=path, **kwargs)
            else:
                self.log_value(path, value, **kwargs)


def _take(columns: Batch, index: Any) -> Batch:
    """Rows ``index`` (a slice or an index tensor) of every column, nested dicts included."""
    return {k: _take(v, index) if isinstance(v, dict) else v[index] for k, v in columns.items()}


def _concat(pieces: list[Batch]) -> Batch:
    if len(pieces) == 1:
        return pieces[0]
    first = pieces[0]
    return {
        k: _concat([p[k] for p in pieces])
        if isinstance(first[k], dict)
        else torch.cat([p[k] for p in pieces])
        for k in first
    }


def _rows(columns: Batch) -> int:
    for value in columns.values():
        return _rows(value) if isinstance(value, dict) else len(value)
    return 0


class CyclicMinibatches:
    """RLlib's ``MiniBatchCyclicIterator`` over per-module column tensors, without
    ``SampleBatch`` objects: each module's rows are walked in order and wrap around, a pass that
    wraps counts as an epoch of that module and (with ``shuffle``) reshuffles its rows with
    ``np.random.permutation``; iteration ends when every module has had ``num_epochs`` passes."""

    def __init__(
        self,
        batches: dict[str, Batch],
        *,
        minibatch_size: int,
        num_epochs: int,
        shuffle: bool,
        permutation: Callable[[int], np.ndarray] = np.random.permutation,
    ) -> None:
        self.batches = dict(batches)
        self.sizes = {mid: _rows(b) for mid, b in self.batches.items()}
        empty = [mid for mid, n in self.sizes.items() if n == 0]
        if empty:
            raise ValueError(f"the train batch of module(s) {empty} is empty")
        self.minibatch_size = minibatch_size
        self.num_epochs = num_epochs
        self.shuffle = shuffle
        self.permutation = permutation

    def __iter__(self):  # noqa: ANN204 - a generator of {module id: columns}
        start = dict.fromkeys(self.batches, 0)
        covered = dict.fromkeys(self.batches, 0)
        while min(covered.values()) < self.num_epochs:
            minibatch: dict[str, Batch] = {}
            for mid, size in self.sizes.items():
                s, wanted, pieces = start[mid], self.minibatch_size, []
                while s + wanted >= size:
                    pieces.append(_take(self.batches[mid], slice(s, size)))
                    wanted -= size - s
                    s = 0
                    covered[mid] += 1
                    if self.shuffle:
                        order = torch.as_tensor(self.permutation(size))
                        self.batches[mid] = _take(self.batches[mid], order)
                end = s + wanted
                if end > s:
                    pieces.append(_take(self.batches[mid], slice(s, end)))
                minibatch[mid] = _concat(pieces)
                start[mid] = end
            yield minibatch


class LeanLearnerMixin:
    """``update`` without per-minibatch ``SampleBatch`` slicing and metric logging (see module
    docstring). Mix in before an RLlib ``TorchLearner`` subclass."""

    def update(  # noqa: PLR0913 - RLlib's signature
        self,
        batch: Any = None,
        batches: Any = None,
        batch_refs: Any = None,
        episodes: Any = None,
        episodes_refs: Any = None,
        data_iterators: Any = None,
        training_data: Any = None,
        *,
        timesteps: dict[str, Any] | None = None,
        num_total_minibatches: int = 0,
        num_epochs: int = 1,
        minibatch_size: int | None = None,
        shuffle_batch_per_epoch: bool = False,
        _no_metrics_reduce: bool = False,
        **kwargs: Any,
    ) -> Any:
        learner: Any = self
        if training_data is not None and _episodes_only(training_data):
            training_data.solve_refs()
            episodes, training_data = training_data.episodes, None
        lean = (
            episodes is not None
            and minibatch_size
            and num_total_minibatches == 0
            and not any(x is not None for x in (batch, batches, batch_refs, episodes_refs))
            and not data_iterators
            and training_data is None
            and learner._grad_scalers is None
            and not any(m.is_stateful() for m in learner.module.values())
        )
        if not lean:
            return super().update(  # type: ignore[misc]
                batch=batch,
                batches=batches,
                batch_refs=batch_refs,
                episodes=episodes,
                episodes_refs=episodes_refs,
                data_iterators=data_iterators,
                training_data=training_data,
                timesteps=timesteps,
                num_total_minibatches=num_total_minibatches,
                num_epochs=num_epochs,
                minibatch_size=minibatch_size,
                shuffle_batch_per_epoch=shuffle_batch_per_epoch,
                _no_metrics_reduce=_no_metrics_reduce,
                **kwargs,
            )
        return self._lean_update(
            episodes,
            timesteps=timesteps or {},
            num_epochs=num_epochs,
            minibatch_size=int(minibatch_size or 0),
            shuffle=shuffle_batch_per_epoch and num_epochs > 1,
            reduce=not _no_metrics_reduce,
        )

    def _lean_update(
        self,
        episodes: list[Any],
        *,
        timesteps: dict[str, Any],
        num_epochs: int,
        minibatch_size: int,
        shuffle: bool,
        reduce: bool,
    ) -> Any:
        learner: Any = self
        learner._check_is_built()
        learner.before_gradient_based_update(timesteps=timesteps)
        learner._weights_seq_no += 1
        train_batch = learner._make_batch_if_necessary(
            training_data=TrainingData(episodes=episodes)
        )
        env_steps = int(train_batch.env_steps())
        modules = {
            mid: {k: _as_tensor(v, learner.device) for k, v in module_batch.items()}
            for mid, module_batch in train_batch.policy_batches.items()
            if learner.should_module_be_updated(mid, train_batch)
        }
        if not modules:
            return {}
        unknown = set(modules) - set(learner.module.keys())
        if unknown:
            raise ValueError(f"batch holds modules {sorted(unknown)} this learner does not have")
        minibatches = CyclicMinibatches(
            modules, minibatch_size=minibatch_size, num_epochs=num_epochs, shuffle=shuffle
        )
        collector = _LastValues()
        metrics, learner.metrics = learner.metrics, collector
        count = 0
        loss_per_module: dict[str, Any] = {}
        configs = {mid: learner.config.get_config_for_module(mid) for mid in modules}
        try:
            learner._compute_off_policyness(modules)  # once, over the whole batch
            for module in learner.module.values():
                module.train()
            for minibatch in minibatches:
                loss_per_module = self._lean_step(minibatch, configs)
                count += 1
            collector.flush()
        finally:
            learner.metrics = metrics
        for key, (value, kwargs) in collector.values.items():
            metrics.log_value(key, value, **kwargs)
        with torch.no_grad():
            for mid, loss in loss_per_module.items():
                metrics.log_value((mid, learner.TOTAL_LOSS_KEY), loss().detach(), window=1)
        _log_steps_trained(learner, {mid: minibatch_size for mid in modules}, env_steps, count)
        learner.after_gradient_based_update(timesteps=timesteps)
        return metrics.reduce() if reduce else None

    def _lean_step(
        self, minibatch: dict[str, Batch], configs: dict[str, Any]
    ) -> dict[str, Callable[[], torch.Tensor]]:
        """One minibatch update: gradients, clipping and optimizer step, as RLlib's
        ``TorchLearner._uncompiled_update`` does them, minus its per-call bookkeeping. The
        gradients are written out (:mod:`~tune_grid.training.mlp_gradients`) where every
        module is RLlib's default MLP module, else autograd's. Returns each module's total
        loss, computed on demand."""
        learner: Any = self
        plans = {mid: self._mlp_plan(mid) for mid in minibatch}
        if all(plan is not None for plan in plans.values()):
            gradients: dict[Any, Any] = dict.fromkeys(learner._params)
            totals: dict[str, Callable[[], torch.Tensor]] = {}
            for mid, batch in minibatch.items():
                plan, coefficients = plans[mid], self._coefficients(mid, configs[mid])
                assert plan is not None
                module_gradients, terms = mlp_gradients(plan, batch, coefficients)
                gradients.update(module_gradients)
                self._log_statistics(
                    mid, functools.partial(terms.statistics, coefficients.use_critic)
                )
                totals[mid] = functools.partial(terms.total, coefficients)
            learner.apply_gradients(learner.postprocess_gradients(gradients))
            return totals
        losses = {}
        for mid, batch in minibatch.items():
            fwd_out = learner.module[mid]._forward_train(batch)
            losses[mid] = learner.compute_loss_for_module(
                module_id=mid, config=configs[mid], batch=batch, fwd_out=fwd_out
            )
        gradients = learner.compute_gradients(losses)
        learner.apply_gradients(learner.postprocess_gradients(gradients))
        return {mid: functools.partial(_identity, loss) for mid, loss in losses.items()}

    def _mlp_plan(self, module_id: str) -> MLPPlan | None:
        """The module's :class:`MLPPlan` (None: autograd), cached while the module stays."""
        learner: Any = self
        return cached_plan(
            learner.__dict__.setdefault("_mlp_plans", {}),
            module_id,
            learner.module[module_id].unwrapped(),
            lambda module: mlp_plan(module) if self._may_write_out(module_id) else None,
        )

    def _may_write_out(self, module_id: str) -> bool:
        """Whether this learner computes PPO's loss as :func:`ppo_loss` (a subclass that
        overrides the loss keeps autograd), the module's config uses a critic, and the learner
        is the only one (several learners average their gradients in autograd's hooks)."""
        learner: Any = self
        loss = getattr(learner.compute_loss_for_module, "__func__", None)  # None: patched
        own_loss = loss is LeanLearnerMixin.compute_loss_for_module
        config = learner.config
        return (
            own_loss
            and config.num_learners <= 1
            and config.get_config_for_module(module_id).use_critic
        )

    def _coefficients(self, module_id: str, config: Any) -> PPOCoefficients:
        learner: Any = self
        return PPOCoefficients(
            clip_param=config.clip_param,
            vf_clip_param=config.vf_clip_param,
            vf_loss_coeff=config.vf_loss_coeff,
            entropy_coeff=learner.entropy_coeff_schedulers_per_module[
                module_id
            ].get_current_value(),
            kl_coeff=learner.curr_kl_coeffs_per_module[module_id] if config.use_kl_loss else None,
            use_critic=config.use_critic,
        )

    def _log_statistics(self, module_id: str, statistics: Callable[[], dict[str, Any]]) -> None:
        """Log the loss statistics: once per update in the lean loop, else now."""
        learner: Any = self
        if isinstance(learner.metrics, _LastValues):
            learner.metrics.log_later(module_id, statistics, window=1)
        else:
            _log_now(learner.metrics, module_id, statistics)

    def compute_loss_for_module(
        self, *, module_id: str, config: Any, batch: dict[str, Any], fwd_out: dict[str, Any]
    ) -> Any:
        """PPO's loss, in closed form for diagonal Gaussian policies (:func:`ppo_loss`); other
        distributions use the parent's (RLlib's) loss."""
        learner: Any = self
        module = learner.module[module_id].unwrapped()
        if not _diag_gaussian(module):
            return super().compute_loss_for_module(  # type: ignore[misc]
                module_id=module_id, config=config, batch=batch, fwd_out=fwd_out
            )
        coefficients = self._coefficients(module_id, config)
        return with_value_norm(
            module,
            batch,
            lambda b: ppo_loss(
                module,
                b,
                fwd_out,
                coefficients,
                log=functools.partial(self._log_statistics, module_id),
            ),
        )


def _identity(value: torch.Tensor) -> torch.Tensor:
    return value


def _log_now(metrics: Any, module_id: str, values: Callable[[], dict[str, Any]]) -> None:
    with torch.no_grad():
        metrics.log_dict(values(), key=module_id, window=1)


def _diag_gaussian(module: Any) -> bool:
    return (
        module.get_train_action_dist_cls() is TorchDiagGaussian
        and module.get_exploration_action_dist_cls() is TorchDiagGaussian
    )


def _episodes_only(training_data: TrainingData) -> bool:
    """Whether ``training_data`` holds episodes (or refs to them) and nothing else."""
    return (training_data.episodes is not None or training_data.episodes_refs is not None) and all(
        getattr(training_data, name) is None
        for name in ("batch", "batches", "batch_refs", "data_iterators")
    )


def _as_tensor(value: Any, device: Any) -> Any:
    if isinstance(value, dict):
        return {k: _as_tensor(v, device) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        return value if value.device == device else value.to(device)
    return torch.as_tensor(np.asarray(value), device=device)


def _log_steps_trained(
    learner: Any, rows_per_minibatch: dict[str, int], env_steps: int, minibatches: int
) -> None:
    """What RLlib's ``_log_steps_trained_metrics`` logs per minibatch, logged once as totals
    (RLlib counts the whole batch's env steps once per minibatch; so does this)."""
    metrics = learner.metrics
    for mid, rows in rows_per_minibatch.items():
        metrics.log_value((mid, WEIGHTS_SEQ_NO), learner._weights_seq_no, window=1)
        metrics.log_value((mid, MODULE_TRAIN_BATCH_SIZE_MEAN), rows, reduce="mean")
        total = rows * minibatches
        metrics.log_value((mid, NUM_MODULE_STEPS_TRAINED), total, reduce="sum")
        metrics.log_value(
            (mid, NUM_MODULE_STEPS_TRAINED_LIFETIME),
            total,
            reduce="lifetime_sum",
            with_throughput=True,
        )
        metrics.log_value(
            (ALL_MODULES, NUM_MODULE_STEPS_TRAINED), total, reduce="sum", with_throughput=True
        )
        metrics.log_value(
            (ALL_MODULES, NUM_MODULE_STEPS_TRAINED_LIFETIME),
            total,
            reduce="lifetime_sum",
            with_throughput=True,
        )
    steps = env_steps * minibatches
    metrics.log_value(
        (ALL_MODULES, NUM_ENV_STEPS_TRAINED), steps, reduce="sum", with_throughput=True
    )
    metrics.log_value(
        (ALL_MODULES, NUM_ENV_STEPS_TRAINED_LIFETIME),
        steps,
        reduce="lifetime_sum",
        with_throughput=True,
    )
