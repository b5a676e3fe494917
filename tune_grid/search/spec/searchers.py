"""Search algorithms (``search.algorithm`` of a search file), one table entry each.

An entry names the options it takes (each with its type, default and rule), builds the Ray Tune
searcher, says whether Tune's ``param_space`` carries the searched domains or the searcher holds
its own space, whether it expands a grid, whether a population scheduler may use it, what it maps
to in a W&B sweep, and which package it needs. A new searcher is one :func:`register` call here;
the search file's checks, the tuner, the W&B export and the benchmarks read the entry.

Importing this module imports neither Ray nor the searchers' packages; ``build`` does.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tune_grid.search.spec.rules import RuleBroken
from tune_grid.search.spec.view import SpecView


@dataclass(frozen=True)
class Option:
    """One option a searcher takes under ``search:``."""

    kind: type
    """``int``, ``float`` or ``bool``."""
    default: Any
    """None: the library's own default (the option is not passed)."""
    doc: str
    minimum: float | None = None

    def check(self, name: str, value: Any) -> Any:
        """The value, or :class:`RuleBroken` naming what is allowed."""
        if self.kind is bool:
            if not isinstance(value, bool):
                raise RuleBroken(name, f"expected true or false, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RuleBroken(name, f"expected a number, got {value!r}")
        if self.kind is int and not float(value).is_integer():
            raise RuleBroken(name, f"expected an integer, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise RuleBroken(name, f"must be >= {self.minimum:g}, got {value!r}")
        return self.kind(value)


@dataclass(frozen=True)
class SearcherType:
    """Everything one ``search.algorithm`` needs."""

    name: str
    summary: str
    options: Mapping[str, Option]
    build: Callable[[SpecView, str], Any]
    """``(spec, optuna storage URL)`` -> the Tune searcher (Ray imported here)."""
    holds_space: bool
    """True: the searcher defines the searched domains itself (Optuna); Tune's ``param_space``
    then carries the fixed keys only."""
    grid: bool
    """Expands every combination of discrete values (``num_samples`` repeats the grid)."""
    population_ok: bool
    """May feed a population scheduler (PBT and PB2 take no model-based searcher)."""
    wandb_method: str | None
    """The W&B sweep ``method`` it maps to; None: ``wandb-sweep`` refuses it."""
    requires: str | None
    """The module it imports (None: none beyond Ray and Optuna)."""

    def missing(self) -> str | None:
        """Why it cannot run here (its package is not installed), or None."""
        if self.requires and importlib.util.find_spec(self.requires) is None:
            return f"needs the {self.requires} package (pip install {self.requires})"
        return None


SEARCHERS: dict[str, SearcherType] = {}
"""Registered searchers by name, in registration order."""


def register(kind: SearcherType) -> SearcherType:
    """Add ``kind`` to :data:`SEARCHERS`; ValueError for a bad entry or a taken name."""
    if not kind.name or not kind.name.isidentifier():
        raise ValueError(f"searcher name must be an identifier, got {kind.name!r}")
    if kind.name in SEARCHERS:
        raise ValueError(f"searcher {kind.name!r} is already registered")
    if not callable(kind.build):
        raise ValueError(f"searcher {kind.name!r}: build must be a function")
    for option, spec in kind.options.items():
        if option in ("algorithm", "seed") or not isinstance(spec, Option):
            raise ValueError(f"searcher {kind.name!r}: bad option {option!r}")
    SEARCHERS[kind.name] = kind
    return kind


def settings_of(spec: SpecView) -> dict[str, Any]:
    """The searcher's options as given, with defaults for the rest (None: library default)."""
    kind = SEARCHERS[spec.search.algorithm]
    return {name: spec.search.options.get(name, o.default) for name, o in kind.options.items()}


def _given(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _limited(spec: SpecView, searcher: Any) -> Any:
    from ray.tune.search import ConcurrencyLimiter

    if spec.max_concurrent_trials:
        return ConcurrencyLimiter(searcher, max_concurrent=spec.max_concurrent_trials)
    return searcher


# --- random and grid: Tune's variant generator --------------------------------------------------


def _build_variants(spec: SpecView, storage_url: str) -> Any:
    from ray.tune.search import BasicVariantGenerator

    return BasicVariantGenerator(
        random_state=spec.search.seed, max_concurrent=spec.max_concurrent_trials or 0
    )


register(
    SearcherType(
        name="random",
        summary="independent random samples from each distribution (seeded)",
        options={},
        build=_build_variants,
        holds_space=False,
        grid=False,
        population_ok=True,
        wandb_method="random",
        requires=None,
    )
)
register(
    SearcherType(
        name="grid",
        summary="every combination of the discrete values (num_samples repeats the grid)",
        options={},
        build=_build_variants,
        holds_space=False,
        grid=True,
        population_ok=True,
        wandb_method="grid",
        requires=None,
    )
)


# --- Optuna samplers: one persistent study in optuna.db ---------------------------------------

STARTUP = Option(int, 4, "random trials before the sampler models", minimum=1)


def optuna_space(spec: SpecView) -> dict[str, Any]:
    """Searched parameters as Optuna distributions (fixed keys are not part of the study)."""
    return {name: param.kind.optuna_distribution(param) for name, param in spec.space.items()}


def _optuna_searcher(spec: SpecView, storage_url: str, sampler: Any) -> Any:
    import optuna

    from tune_grid.search.spec.resumable_optuna import ResumableOptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = ResumableOptunaSearch(
        space=optuna_space(spec),
        metric="objective",
        mode=spec.resolved_mode,
        sampler=sampler,
        study_name=spec.experiment,
        storage=optuna.storages.RDBStorage(storage_url),
    )
    return _limited(spec, searcher)


def _build_tpe(spec: SpecView, storage_url: str) -> Any:
    import optuna

    options = settings_of(spec)
    sampler = optuna.samplers.TPESampler(
        seed=spec.search.seed,
        n_startup_trials=options["n_startup_trials"],
        **_given({k: options[k] for k in ("multivariate", "constant_liar")}),
    )
    return _optuna_searcher(spec, storage_url, sampler)


def _build_gp(spec: SpecView, storage_url: str) -> Any:
    import optuna

    sampler = optuna.samplers.GPSampler(
        seed=spec.search.seed, n_startup_trials=settings_of(spec)["n_startup_trials"]
    )
    return _optuna_searcher(spec, storage_url, sampler)


def _build_cmaes(spec: SpecView, storage_url: str) -> Any:
    import optuna

    options = settings_of(spec)
    sampler = optuna.samplers.CmaEsSampler(
        seed=spec.search.seed,
        n_startup_trials=options["n_startup_trials"],
        warn_independent_sampling=False,
        **_given({"restart_strategy": "ipop" if options["restarts"] else None}),
    )
    return _optuna_searcher(spec, storage_url, sampler)


register(
    SearcherType(
        name="optuna",
        summary="Optuna's TPE (tree-structured Parzen estimator), study kept in optuna.db",
        options={
            "n_startup_trials": STARTUP,
            "multivariate": Option(bool, None, "model the parameters jointly (Optuna's default)"),
            "constant_liar": Option(
                bool, None, "running trials count as bad results, so parallel trials spread out"
            ),
        },
        build=_build_tpe,
        holds_space=True,
        grid=False,
        population_ok=False,
        wandb_method="bayes",
        requires=None,
    )
)
register(
    SearcherType(
        name="optuna_gp",
        summary="Optuna's Gaussian-process Bayesian optimization (log expected improvement)",
        options={"n_startup_trials": STARTUP},
        build=_build_gp,
        holds_space=True,
        grid=False,
        population_ok=False,
        wandb_method="bayes",
        requires="torch",
    )
)
register(
    SearcherType(
        name="optuna_cmaes",
        summary="Optuna's CMA-ES on the numeric keys (categorical keys sampled at random)",
        options={
            "n_startup_trials": STARTUP,
            "restarts": Option(bool, False, "IPOP restarts with growing populations"),
        },
        build=_build_cmaes,
        holds_space=True,
        grid=False,
        population_ok=False,
        wandb_method=None,
        requires="cmaes",
    )
)


# --- Nevergrad: Tune's wrapper ----------------------------------------------------------------


def _build_nevergrad(spec: SpecView, storage_url: str) -> Any:
    import nevergrad as ng
    import numpy as np
    from ray.tune.search.nevergrad import NevergradSearch

    space = NevergradSearch.convert_search_space(
        {name: p.kind.tune_domain(p) for name, p in spec.space.items()}
    )
    space.random_state = np.random.RandomState(spec.search.seed)  # type: ignore[attr-defined]
    optimizer = ng.optimizers.registry[settings_of(spec)["optimizer"]]
    searcher = NevergradSearch(
        optimizer=optimizer, space=space, metric="objective", mode=spec.resolved_mode
    )
    return _limited(spec, searcher)


NEVERGRAD_OPTIMIZERS = ("NGOpt", "TwoPointsDE", "OnePlusOne", "CMA", "PSO", "RandomSearch")


@dataclass(frozen=True)
class _Choice(Option):
    """A string option with a fixed set of values."""

    values: tuple[str, ...] = ()

    def check(self, name: str, value: Any) -> Any:
        if value not in self.values:
            raise RuleBroken(name, f"got {value!r}; allowed: {', '.join(self.values)}")
        return value


register(
    SearcherType(
        name="nevergrad",
        summary="Nevergrad's gradient-free optimizers (NGOpt picks one for the space and budget)",
        options={
            "optimizer": _Choice(
                str, "NGOpt", "the Nevergrad optimizer", values=NEVERGRAD_OPTIMIZERS
            )
        },
        build=_build_nevergrad,
        holds_space=True,
        grid=False,
        population_ok=False,
        wandb_method=None,
        requires="nevergrad",
    )
)


def describe() -> list[str]:
    """One line per registered searcher: name, options, what it needs (docs and errors)."""
    lines = []
    for kind in SEARCHERS.values():
        options = ", ".join(kind.options) or "no options"
        missing = kind.missing()
        note = f"; not usable here: {missing}" if missing else ""
        lines.append(f"{kind.name}: {kind.summary} ({options}){note}")
    return lines


__all__ = ["SEARCHERS", "Option", "SearcherType", "describe", "register", "settings_of"]
