"""What ``stopped_early`` means in ``trials.parquet``: one reading per kind of trial scheduler.

Each scheduler of :data:`tune_grid.search.spec.schedulers.SCHEDULERS` names its reading; the
exporter writes ``stopped_early`` with it and the search folder's ``search.json`` records its name
(``early_stop``). Analysis prices early stopping (``analysis/early_stopping.py``) by running every
early-stopped trial on to the iteration bound, which is right for every reading whose scheduler
ends trials. Dependency-free, like the schema module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TERMINATED = "TERMINATED"
_COUNTER_OF = {"training_iteration": "iteration"}


def stop_reached(stop: Mapping[str, float], counters: Mapping[str, Any]) -> bool:
    """True when any of the search's stop conditions (``training_iteration``, ``env_steps``,
    ``time_total_s``, ...) is met by a trial's ``counters`` (``iteration``, ``env_steps``,
    ``time_total_s``); a missing or NaN counter meets nothing."""
    for key, limit in stop.items():
        value = counters.get(_COUNTER_OF.get(key, key), counters.get(key))
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if value >= limit:
            return True
    return False


@dataclass(frozen=True)
class StopReading:
    """How one kind of scheduler's stops read in the results."""

    name: str
    stops_trials: bool
    """Whether the scheduler ends trials before the search's stop condition."""
    meaning: str
    """What ``stopped_early = true`` says about a trial under this scheduler."""

    def stopped_early(self, status: str, reported: bool, stop_reached: bool) -> bool:
        """A trial that ended normally after reporting, short of the stop condition, was stopped
        by the scheduler, if this scheduler stops trials at all."""
        return self.stops_trials and status == TERMINATED and reported and not stop_reached


RUNG = StopReading(
    name="rung",
    stops_trials=True,
    meaning="ended by the scheduler at a rung, before the stop condition (its iterations are "
    "the rung); left alone it would have run to the iteration bound",
)
NEVER = StopReading(
    name="never",
    stops_trials=False,
    meaning="never set: the scheduler runs every trial to the stop condition (a population "
    "scheduler replaces a trial's weights and hyperparameters instead of stopping it)",
)
STOP_READINGS: dict[str, StopReading] = {r.name: r for r in (RUNG, NEVER)}
DEFAULT_READING = RUNG.name
"""The reading of results saved before readings were recorded (ASHA, the default scheduler)."""
