"""What an algorithm's registry entry holds (:mod:`tune_grid.training.algorithms`).

Entry modules import this module only, never the registry, so the registry can find them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tune_grid.config import ENV_KEYS, RunConfig

SHARED_KEYS: tuple[str, ...] = (
    *ENV_KEYS,
    "algorithm",
    "policy_sharing",
    "hidden_sizes",
    "train_batch_size",
    "num_env_runners",
    "num_envs_per_env_runner",
    "rollout_fragment_length",
    "num_gpus",
    "torch_threads",
    "seed",
    "eval_interval",
    "val_days",
)
"""Run-config keys every algorithm reads: the environment, the layout (one module shared by all
agents, or one per agent, and their widths), the env steps per iteration, sampling resources,
the seed and the validation schedule."""

_ENV_REASON = "changes the environment the policy was trained on (its rewards or observations)"


@dataclass(frozen=True)
class Algorithm:
    """One RL algorithm (see the package docstring)."""

    name: str
    keys: tuple[str, ...]
    build_config: Callable[[RunConfig], Any]
    learner_class: Callable[[RunConfig], type]
    module_spec: Callable[[RunConfig], Any]
    options: Mapping[str, str] = field(default_factory=dict)
    reference_config: Callable[[RunConfig], Any] | None = None
    mutable: Mapping[str, str] = field(default_factory=dict)
    """Key -> how a new value reaches a running learner (and is read back)."""
    apply_mutable: Callable[[Any, RunConfig], None] | None = None
    """``(algo, run)``: write the run's values of the :attr:`mutable` keys into every learner
    (with what they depend on, e.g. the lr schedule ``lr`` starts)."""
    read_mutable: Callable[[Any], dict[str, float]] | None = None
    """``algo -> {key: value}``: the values of :attr:`mutable` keys the learners use."""
    fixed_reasons: Mapping[str, str] = field(default_factory=dict)
    """Key -> why it cannot change mid-run (for a one-line error)."""

    def reads(self, key: str) -> bool:
        return key in SHARED_KEYS or key in self.keys

    def why_not_mutable(self, key: str) -> str | None:
        """None when ``key`` may change mid-run; else why it cannot."""
        if key in self.mutable:
            return None
        if key in self.fixed_reasons:
            return self.fixed_reasons[key]
        if key in ENV_KEYS:
            return _ENV_REASON
        if not self.reads(key):
            return f"is not read by {self.name}"
        return "is not applied to a running learner"


HP_PREFIX = "hp/"
"""Prefix of the per-iteration columns with the mutable keys' values read back (``hp/lr``)."""
