"""Perfect-foresight optimal dispatch (the "oracle") of the three microgrids.

A convex multi-period program over the day with perfect knowledge of load, renewables and price
(batteries, diesel P/Q, exchange settled at the LMP, LinDistFlow network limits), solved with
cvxpy + Clarabel, then replayed through the real environment for its true AC cost and safety.

API::

    oracle_cost(split, day, config) -> OracleDay        # one day (cached on disk)
    oracle_days(split, days, config) -> DataFrame       # rows like evaluation.evaluate's
    optimality_gaps(per_day, oracle_df) -> OptimalityGaps   # (policy - oracle) / |oracle|

Modeling choices are documented in :mod:`tune_grid.oracle.dispatch` (devices, costs, relaxations),
:mod:`tune_grid.oracle.lindistflow` (network) and :mod:`tune_grid.oracle.core` (linearization loop).
The model optimum is not a strict lower bound of the AC problem (LinDistFlow and its AC anchoring
are approximations); the replayed cost is an achievable cost, the one gaps use by default.
"""

from tune_grid.oracle.core import (
    OptimalityGaps,
    OracleDay,
    optimality_gaps,
    oracle_cost,
    oracle_days,
    plan_day,
)
from tune_grid.oracle.dispatch import DispatchOptions

__all__ = [
    "DispatchOptions",
    "OptimalityGaps",
    "OracleDay",
    "optimality_gaps",
    "oracle_cost",
    "oracle_days",
    "plan_day",
]
