"""Validation of the greedy policy: what a search ranks trials by.

RLlib's ``episode_return_mean`` averages the last training episodes of the *exploring* policy
over a window whose length depends on the batch size. A search instead needs the quality of the
policy it would hand out: the deterministic (mean-action) policy on days no training episode
draws. :class:`Validator` rolls that policy on the ``validation`` split (every 8th day of 2023,
:mod:`tune_grid.grid.data`) with all days in lockstep (one batched env step and one forward pass
per module per hour) and reports, per day and pooled:

* ``val_daily_cost``: mean daily cost ($, the three microgrids, terminal settlement included);
* ``val_safety``: mean daily safety (pu-hours of voltage violation + line overload);
* ``val_objective``: mean daily objective, cost + penalty x cost_scale x safety
  (:func:`tune_grid.economics.objective`, the reward's weights in dollars): the search metric;
* ``val_violation_hours``: agent-hours with a violation per day;
* ``val_gap``: ``val_objective``'s gap to the oracle's objective on the same days
  (:func:`tune_grid.economics.relative_gap`), when the oracle's days are given.

The oracle is not solved here (seconds per day): the search driver solves the validation days
once, before the trials start, and hands every trial the per-day objectives
(:func:`oracle_objectives`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tune_grid import economics
from tune_grid.config import EnvConfig, RunConfig
from tune_grid.grid.data import select_days
from tune_grid.results.schema import VALIDATION_METRIC_NAMES

VALIDATION_SPLIT = "validation"
VALIDATION_METRICS = VALIDATION_METRIC_NAMES
"""What one validation reports (module doc); all but ``val_gap`` are always finite."""


def validation_env_config(run: RunConfig | EnvConfig) -> EnvConfig:
    """The run's environment on the validation split."""
    env = run.env_config() if isinstance(run, RunConfig) else run
    return env.replace(split=VALIDATION_SPLIT)


def validation_days(run: RunConfig) -> list[int]:
    """Day indices of the validation split a run validates on (``val_days``: N evenly spaced,
    or all of them)."""
    from tune_grid.grid.data import split_profiles

    num_days = split_profiles(VALIDATION_SPLIT).num_days
    return [int(d) for d in select_days(num_days, run.val_days)]


def oracle_objectives(
    run: RunConfig, solve: Callable[[list[int], EnvConfig], list[dict[str, Any]]] | None = None
) -> dict[str, float]:
    """The oracle's replayed objective per validation date of ``run``.

    ``solve(days, config)`` returns the oracle's rows (``OracleDay.to_row``) of those days; by
    default they are solved here one after the other (or read from the oracle's disk cache; a
    few seconds per uncached day). The search driver passes a solver that spreads the days over
    the cluster.
    """
    config = validation_env_config(run)
    rows = (solve or solve_days)(validation_days(run), config)
    return {str(row["date"]): float(row["objective"]) for row in rows}


def solve_days(days: list[int], config: EnvConfig) -> list[dict[str, Any]]:
    """The oracle's rows of ``days`` of ``config.split``, solved in this process (cached)."""
    from tune_grid.oracle import oracle_cost

    return [oracle_cost(config.split, day, config).to_row(config) for day in days]


@dataclass
class Validator:
    """Rolls a policy's greedy actions on a run's validation days (see the module doc)."""

    env_config: EnvConfig
    days: list[int]
    oracle: Mapping[str, float] = field(default_factory=dict)
    """Oracle objective per date; ``val_gap`` is NaN unless every validated date is here."""
    _envs: list[Any] = field(default_factory=list, repr=False)

    @classmethod
    def for_run(cls, run: RunConfig, oracle: Mapping[str, float] | None = None) -> Validator:
        return cls(validation_env_config(run), validation_days(run), dict(oracle or {}))

    def _environments(self) -> list[Any]:
        if not self._envs:
            from tune_grid.env import make_env

            self._envs = [make_env(self.env_config) for _ in self.days]
        return self._envs

    def per_day(self, act: Any) -> Any:
        """One row per validation day (``tune_grid.env.evaluation.ROLLED_COLUMNS``)."""
        from tune_grid.env.evaluation import roll_days

        return roll_days(act, self._environments(), self.days)

    def __call__(self, act: Any) -> dict[str, float]:
        """The validation metrics of a batch policy (``TrainedPolicy.act_batch``)."""
        return self.summarize(self.per_day(act))

    def summarize(self, per_day: Any) -> dict[str, float]:
        """``VALIDATION_METRICS`` of a per-day frame."""
        objective = float(per_day["objective"].mean())
        dates = [str(d) for d in per_day["date"]]
        gap = math.nan
        if dates and all(d in self.oracle for d in dates):
            reference = float(np.mean([self.oracle[d] for d in dates]))
            gap = economics.relative_gap(objective, reference)
        return {
            "val_objective": objective,
            "val_daily_cost": float(per_day["cost"].mean()),
            "val_safety": float(per_day["safety"].mean()),
            "val_violation_hours": float(per_day["violation_hours"].mean()),
            "val_gap": gap,
        }


def due(env_steps: int, last_validated: int | None, interval: int) -> bool:
    """Whether a run at ``env_steps`` validates now: at its first report, and whenever it has
    crossed a multiple of ``interval`` env steps since the last validation (``interval`` 0:
    only the first)."""
    if last_validated is None:
        return True
    if interval <= 0:
        return False
    return env_steps // interval > last_validated // interval
