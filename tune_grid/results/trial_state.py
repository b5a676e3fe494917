"""A search trial's counters, carried across restores in each checkpoint as ``trial_state.json``.

The trainable (:mod:`tune_grid.search.run.trainable`) writes it; a population scheduler
(:mod:`tune_grid.search.spec.population`) reads it to clone one trial's checkpoint into another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

STATE_FILE = "trial_state.json"


@dataclass
class TrialState:
    """Counters carried across restores; saved as ``trial_state.json`` in each checkpoint."""

    iteration: int = 0
    env_steps: int = 0
    time_total_s: float = 0.0
    restores: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    validation: dict[str, Any] = field(default_factory=dict)
    """The latest validation's row values (``val_*``, per seed, ``val_env_steps``)."""
    exploits: int = 0
    """How often a population scheduler replaced this trial's weights by another trial's."""
    parent_trial_id: str | None = None
    """The trial whose checkpoint the last exploit cloned (None: never exploited)."""
    parent_iteration: int | None = None
    """That checkpoint's iteration in the parent trial."""

    def to_json(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "time_total_s": self.time_total_s,
            "restores": self.restores,
            "history": self.history,
            "validation": json_safe(self.validation),
            **self.lineage(),
        }

    def lineage(self) -> dict[str, Any]:
        """The lineage columns of every reported row."""
        return {
            "exploits": self.exploits,
            "parent_trial_id": self.parent_trial_id,
            "parent_iteration": self.parent_iteration,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrialState:
        return cls(
            iteration=int(data["iteration"]),
            env_steps=int(data["env_steps"]),
            time_total_s=float(data["time_total_s"]),
            restores=int(data.get("restores", 0)),
            history=list(data.get("history", [])),
            validation=from_json(dict(data.get("validation", {}))),
            exploits=int(data.get("exploits", 0)),
            parent_trial_id=data.get("parent_trial_id"),
            parent_iteration=data.get("parent_iteration"),
        )

    @property
    def validated_at(self) -> int | None:
        """Env steps of the latest validation (None before the first)."""
        value = self.validation.get("val_env_steps")
        return None if value is None else int(value)


def is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def json_safe(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, float) and not math.isfinite(value):
            out[key] = None
        elif isinstance(value, list):
            out[key] = [None if is_nan(v) else v for v in value]
        else:
            out[key] = value
    return out


def from_json(row: dict[str, Any]) -> dict[str, Any]:
    """Undo :func:`json_safe` (None back to NaN)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value is None:
            out[key] = math.nan
        elif isinstance(value, list):
            out[key] = [math.nan if v is None else v for v in value]
        else:
            out[key] = value
    return out


def row_counters(row: dict[str, Any]) -> dict[str, float]:
    """The stop counters of a reported row (as :func:`stop_reached` reads them)."""
    return {
        "iteration": row.get("iteration", math.nan),
        "env_steps": row.get("env_steps", math.nan),
        "time_total_s": row.get("trial_time_total_s", math.nan),
    }
