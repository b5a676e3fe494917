"""What one trial asks Ray for: CPUs, GPUs and memory, as placement-group bundles.

A trial is one process training its seeds in lockstep (plus one process per remote env runner
per seed when ``num_env_runners`` > 0). Its memory request comes from :data:`MEASURED`, a model of
that process's peak resident memory fitted to ``tune-grid bench memory`` (peak RSS of a process
doing what a trial does; docs/cluster.md has the table). Ray then places trials by memory as
well as by CPUs, so a node never holds more trials than its memory does.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tune_grid.config import RUN_KEYS, ConfigError, RunConfig
from tune_grid.search.spec.view import SpecView

MIB = 1024**2
GIB = 1024**3
AGENTS = 3
"""Microgrids, each an agent: one RL module each with ``policy_sharing: independent``."""
MEMORY_KEYS = (
    "train_batch_size",
    "hidden_sizes",
    "policy_sharing",
    "num_envs_per_env_runner",
    "num_env_runners",
)
"""The run-config keys the memory model reads (the largest trial varies only these)."""


@dataclass(frozen=True)
class MemoryModel:
    """Peak resident memory of a trial's processes, in parts (``tune-grid bench memory``)."""

    process_mib: float
    """A process with Python, torch, Ray, RLlib and tune-grid imported and Ray's worker up."""
    env_mib: float
    """Each env of the process (the process's batched envs, shared by its seeds)."""
    seed_mib: float
    """Each seed's PPO algorithm beyond its batch: RL modules, learner, env runner."""
    step_kib: float
    """Each env step of a seed's train batch (episodes, learner batch, loss tensors)."""
    param_bytes: float
    """Each network parameter: weights, gradient, two Adam moments."""
    margin: float
    """Factor over the fit: growth over a long trial, Tune's session in the trial's worker."""

    def trial_process_bytes(self, run: RunConfig, seeds: int) -> int:
        """The trial's own process: every seed's learner (and its envs when sampling locally)."""
        local_envs = envs_per_runner(run) if run.num_env_runners == 0 else 0
        per_seed = (
            self.seed_mib * MIB
            + run.train_batch_size * self.step_kib * 1024
            + network_parameters(run) * self.param_bytes
        )
        fit = self.process_mib * MIB + local_envs * self.env_mib * MIB + seeds * per_seed
        return _round_up(fit * self.margin)

    def env_runner_bytes(self, run: RunConfig) -> int:
        """One remote env runner process (its envs and a copy of the modules)."""
        fit = (
            self.process_mib * MIB
            + envs_per_runner(run) * self.env_mib * MIB
            + network_parameters(run) * self.param_bytes
        )
        return _round_up(fit * self.margin)


MEASURED = MemoryModel(
    process_mib=768, env_mib=4, seed_mib=16, step_kib=20, param_bytes=16, margin=1.25
)
"""Upper envelope of ``tune-grid bench memory`` on the development machine (Ray 2.60, torch
2.13, CPU): peaks of 0.81 to 1.11 GB for 1 to 3 seeds, 4 to 32 envs, batches of 1,920 to 7,680
steps and ``[64, 64]`` shared to ``[256, 256, 256]`` independent networks; the process (imports)
is most of it. ``margin`` covers growth over a long trial and Tune's part of a trial worker."""


def _round_up(value: float, unit: int = 64 * MIB) -> int:
    """Whole multiples of ``unit``: requests read as round numbers in ``ray status``."""
    return int(-(-value // unit) * unit)


def envs_per_runner(run: RunConfig) -> int:
    """Envs in each sampling process (the one formula of :mod:`tune_grid.training.ppo`)."""
    from tune_grid.training.ppo import envs_per_env_runner

    return envs_per_env_runner(run)


def network_parameters(run: RunConfig) -> int:
    """Weights of a seed's RL modules: a policy and a value MLP of ``hidden_sizes`` per module."""
    from tune_grid.env.observation import observation_features

    widths = [len(observation_features(run)), *run.hidden_sizes]
    per_mlp = sum(a * b + b for a, b in itertools.pairwise(widths)) + widths[-1] * 7
    modules = 1 if run.policy_sharing == "shared" else AGENTS
    return 2 * per_mlp * modules


def run_config_of(config: Mapping[str, Any]) -> RunConfig:
    """The trial's RunConfig (Tune adds keys of its own to a trial's config)."""
    return RunConfig.from_dict({k: v for k, v in config.items() if k in RUN_KEYS})


@dataclass(frozen=True)
class TrialResources:
    """``resources_per_trial`` of a search file. ``memory_gib``: the whole trial's memory, in the
    trial process's bundle; None (``memory: auto``): each process's from :data:`MEASURED`."""

    cpu: float = 1.0
    gpu: float = 0.0
    memory_gib: float | None = None

    def bundles(self, config: Mapping[str, Any], seeds: int) -> list[dict[str, float]]:
        """The trial's placement-group bundles: its process, then one per remote env runner."""
        run = run_config_of(config)
        head: dict[str, float] = {"CPU": self.cpu}
        if self.gpu:
            head["GPU"] = self.gpu
        if self.memory_gib is None:
            head["memory"] = float(MEASURED.trial_process_bytes(run, seeds))
        else:
            head["memory"] = float(_round_up(self.memory_gib * GIB, MIB))
        runner: dict[str, float] = {"CPU": 1.0}
        if self.memory_gib is None:
            runner["memory"] = float(MEASURED.env_runner_bytes(run))
        return [head] + [dict(runner) for _ in range(run.num_env_runners * seeds)]

    def totals(self, config: Mapping[str, Any], seeds: int) -> dict[str, float]:
        """What the trial's bundles add up to (CPU, GPU, memory bytes)."""
        out: dict[str, float] = {}
        for bundle in self.bundles(config, seeds):
            for key, value in bundle.items():
                out[key] = out.get(key, 0.0) + value
        return out


def trial_resources_of(spec: SpecView) -> TrialResources:
    """The :class:`TrialResources` of a search file."""
    r = spec.resources_per_trial
    return TrialResources(cpu=r.cpu, gpu=r.gpu, memory_gib=None if r.memory == "auto" else r.memory)


def largest_trial(spec: SpecView) -> dict[str, float]:
    """The most CPUs and the most memory any trial of ``spec`` requests (each over every
    combination of the candidate values of the searched keys the request depends on)."""
    resources = trial_resources_of(spec)
    names = [n for n in MEMORY_KEYS if n in spec.space]
    pools = [spec.space[n].candidates() for n in names]
    largest: dict[str, float] = {}
    for combo in itertools.product(*pools):
        config = {**spec.fixed_config(), **dict(zip(names, combo, strict=True))}
        try:
            totals = resources.totals(config, spec.seeds)
        except ConfigError:
            continue  # a combination no trial has (the search file's checks allow others)
        for key, value in totals.items():
            largest[key] = max(largest.get(key, 0.0), value)
    if not largest:
        raise ConfigError(f"{spec.experiment}: no valid combination of {', '.join(names)}")
    return largest


__all__ = [
    "MEASURED",
    "MEMORY_KEYS",
    "MemoryModel",
    "TrialResources",
    "largest_trial",
    "network_parameters",
    "trial_resources_of",
]
