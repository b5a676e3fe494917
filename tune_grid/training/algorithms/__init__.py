"""The RL algorithms tune-grid trains: one registry entry per algorithm.

An entry holds what is specific to its algorithm:

* ``keys``: the run-config keys it reads besides :data:`SHARED_KEYS` (the environment, the
  multi-agent layout, sampling resources, seeds and validation), which every algorithm reads.
  A run that sets a key its algorithm does not read to anything but the default is refused;
* ``options``: the keys that select variants of the algorithm (for PPO the centralized critic
  and value normalization), with what each selects;
* ``build_config``: a run config -> an RLlib ``AlgorithmConfig`` (``reference_config``: the
  same with RLlib's own loops, the baseline of ``tune-grid bench train``, if the entry has one);
* ``learner_class`` and ``module_spec``: the learner and RLModule classes a run gets;
* ``mutable``: the keys a population scheduler (PBT, PB2) may change mid-run, each with how it
  is applied to and read back from a running learner (``apply_mutable``, ``read_mutable``), and
  ``fixed_reasons``: why other keys cannot change mid-run.

A new algorithm is one module in this package that defines ``ENTRY`` (found on first use),
plus its tests. Importing this package imports neither Ray nor torch: entries import them when
they build.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from typing import Any

from tune_grid.config import ConfigError, RunConfig
from tune_grid.training.algorithms.entry import HP_PREFIX, SHARED_KEYS, Algorithm
from tune_grid.training.hyperparams import HyperparameterError

__all__ = [
    "HP_PREFIX",
    "SHARED_KEYS",
    "Algorithm",
    "algorithm_for",
    "apply_hyperparameters",
    "check_run",
    "hyperparameter_columns",
    "register",
    "registered",
    "unregister",
]

_ALGORITHMS: dict[str, Algorithm] = {}
_DISCOVERED = False
_NOT_ENTRIES = {"entry"}


def registered() -> dict[str, Algorithm]:
    """Every entry by name: those of this package's modules (each module's ``ENTRY``, imported
    on first use) and any added with :func:`register`."""
    global _DISCOVERED
    if not _DISCOVERED:
        _DISCOVERED = True
        for info in pkgutil.iter_modules(__path__):
            if info.name.startswith("_") or info.name in _NOT_ENTRIES:
                continue
            module = importlib.import_module(f"{__name__}.{info.name}")
            register(module.ENTRY)
    return _ALGORITHMS


def register(entry: Algorithm) -> Algorithm:
    """Add ``entry``; its keys must be run-config keys and its mutable keys its own."""
    if entry.name in _ALGORITHMS:
        raise ValueError(f"algorithm {entry.name!r} is registered already")
    unknown = [k for k in (*entry.keys, *entry.options) if k not in RunConfig.field_names()]
    if unknown:
        raise ValueError(f"{entry.name}: {unknown} are not run-config keys")
    foreign = [k for k in entry.mutable if k not in entry.keys]
    if foreign or (entry.mutable and (entry.apply_mutable is None or entry.read_mutable is None)):
        raise ValueError(
            f"{entry.name}: mutable keys {foreign or list(entry.mutable)} need "
            "to be its own keys, with apply_mutable and read_mutable"
        )
    _ALGORITHMS[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove an entry (tests register toy entries and remove them again)."""
    _ALGORITHMS.pop(name, None)


def algorithm_for(run: RunConfig | str) -> Algorithm:
    """The entry of ``run.algorithm`` (or of a name); an unknown name is a one-line error."""
    name = run if isinstance(run, str) else run.algorithm
    entries = registered()
    if name not in entries:
        allowed = ", ".join(map(repr, entries))
        raise ConfigError(f"algorithm: got {name!r}, allowed: one of {allowed}")
    return entries[name]


def unread_keys(run: RunConfig) -> list[str]:
    """The keys ``run`` sets away from their defaults that its algorithm does not read."""
    entry = algorithm_for(run)
    defaults = RunConfig().to_dict()
    values = run.to_dict()
    return sorted(k for k, v in values.items() if not entry.reads(k) and v != defaults[k])


def check_run(run: RunConfig) -> Algorithm:
    """The run's algorithm, after checking that it reads every key the run sets."""
    entry = algorithm_for(run)
    unread = unread_keys(run)
    if unread:
        raise ConfigError(
            f"{unread[0]}: not read by algorithm {entry.name!r}; it reads "
            f"{', '.join(entry.keys)} besides the shared keys"
        )
    return entry


def apply_hyperparameters(algo: Any, run: RunConfig) -> None:
    """Write ``run``'s values of its algorithm's mutable keys into every learner of ``algo``
    (after a restore, see :mod:`tune_grid.training.hyperparams`)."""
    entry = algorithm_for(run)
    if entry.apply_mutable is not None:
        entry.apply_mutable(algo, run)


def hyperparameter_columns(algos: list[Any], run: RunConfig) -> dict[str, float]:
    """``{"hp/lr": ..., ...}``: the mutable keys' values every seed's learners use (they must
    agree; a disagreement is an error, since a population scheduler's change was then lost)."""
    entry = algorithm_for(run)
    if entry.read_mutable is None:
        return {}
    per_seed = [entry.read_mutable(algo) for algo in algos]
    out = {}
    for key in entry.mutable:
        values = [values[key] for values in per_seed]
        first = values[0]
        if not all(v == first or (math.isnan(v) and math.isnan(first)) for v in values):
            raise HyperparameterError(f"seeds disagree on {key}: {sorted(set(values))}")
        out[HP_PREFIX + key] = first
    return out
