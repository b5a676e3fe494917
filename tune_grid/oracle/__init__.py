"""Perfect-foresight optimal dispatch (the "oracle") of the three microgrids.

A convex multi-period program over the day with perfect knowledge of load, renewables and price
(batteries, diesel P/Q, exchange settled at the LMP, network through LinDistFlow), solved with
cvxpy + Clarabel by successive linearization around the env's own AC power flow, then replayed
through the real environment for its true AC cost and safety.

API::

    oracle_cost(split, day, config) -> OracleDay            # one day, cached on disk
    oracle_days(split, days, config) -> DataFrame           # rows like evaluation.evaluate's
    optimality_gaps(per_day, oracle_df) -> OptimalityGaps   # (policy - oracle) / |oracle|
    evaluate_with_oracle(policy, split, days, config)        # evaluate + gaps per day

Modeling choices: :mod:`tune_grid.oracle.dispatch` (devices, costs, relaxations, network terms),
:mod:`tune_grid.oracle.lindistflow` (the network model), :mod:`tune_grid.oracle.core` (the
linearization loop, the replay) and :mod:`tune_grid.oracle.cache` (where results are stored).
The model's optimum is not a strict lower bound of the AC problem (the network is linearized,
with second-order corrections); every accepted schedule is checked with the AC power flow, and
the replayed cost (an achievable cost, measured exactly like a policy's) is what gaps use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "DispatchOptions",
    "OptimalityGaps",
    "OracleDay",
    "config_key",
    "day_list",
    "evaluate_with_oracle",
    "optimality_gaps",
    "oracle_cost",
    "oracle_days",
    "plan_day",
]


def __getattr__(name: str) -> Any:
    """Load lazily: cvxpy takes a second to import, and the CLI only needs it to solve."""
    if name == "DispatchOptions":
        return importlib.import_module("tune_grid.oracle.dispatch").DispatchOptions
    if name in __all__:
        return getattr(importlib.import_module("tune_grid.oracle.core"), name)
    raise AttributeError(f"module 'tune_grid.oracle' has no attribute {name!r}")
