"""Map an RLlib training result to tune-grid's metric names (see ``tune_grid.results.schema``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ray.rllib.utils.metrics import (
    ENV_RUNNER_RESULTS,
    ENV_RUNNER_SAMPLING_TIMER,
    EPISODE_RETURN_MEAN,
    LEARNER_UPDATE_TIMER,
    NUM_ENV_STEPS_SAMPLED,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_EPISODES_LIFETIME,
    TIMERS,
)

from tune_grid.results.schema import VALIDATION_METRIC_NAMES
from tune_grid.training.callbacks import DAILY_COST_MEAN, SAFETY_MEAN, VIOLATION_HOURS_MEAN

RESULT_KEYS: dict[str, tuple[str, str]] = {
    "episode_return_mean": (ENV_RUNNER_RESULTS, EPISODE_RETURN_MEAN),
    "daily_cost_mean": (ENV_RUNNER_RESULTS, DAILY_COST_MEAN),
    "safety_mean": (ENV_RUNNER_RESULTS, SAFETY_MEAN),
    "violation_hours_mean": (ENV_RUNNER_RESULTS, VIOLATION_HOURS_MEAN),
    "timers/sample_s": (TIMERS, ENV_RUNNER_SAMPLING_TIMER),
    "timers/learn_s": (TIMERS, LEARNER_UPDATE_TIMER),
}
"""Schema name -> path in the RLlib result dict. ``env_runners/episode_return_mean`` etc."""

ITERATION_METRIC_NAMES = (
    "iteration",
    "env_steps",
    "env_steps_this_iter",
    "episodes",
    *RESULT_KEYS,
    "time_this_iter_s",
    "time_total_s",
    "env_steps_per_s",
    *VALIDATION_METRIC_NAMES,
)
"""What a ``tune-grid train`` iteration records: :func:`iteration_metrics` plus, from the
latest validation of the greedy policy, ``VALIDATION_METRIC_NAMES``."""


def _get(result: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = result
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def iteration_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """One training iteration's metrics under tune-grid names; NaN where RLlib has no value yet.

    Keys: ``iteration``, ``env_steps`` (lifetime sampled env steps, one step = one hour of all
    agents), ``env_steps_this_iter``, ``episodes`` (lifetime), ``episode_return_mean``,
    ``daily_cost_mean``, ``safety_mean``, ``violation_hours_mean``, ``timers/sample_s`` and
    ``timers/learn_s`` (this iteration's sampling and learner-update seconds),
    ``time_this_iter_s``, ``time_total_s`` and ``env_steps_per_s`` (this iteration).
    ``iteration``, ``env_steps``, ``env_steps_this_iter`` and ``episodes`` are ints.
    """
    env_steps = _get(result, (ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME))
    if env_steps is None:
        env_steps = result.get(NUM_ENV_STEPS_SAMPLED_LIFETIME, 0)
    this_iter = _get(result, (ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED)) or 0
    episodes = _get(result, (ENV_RUNNER_RESULTS, NUM_EPISODES_LIFETIME)) or 0
    time_this_iter = _number(result.get("time_this_iter_s"))
    metrics: dict[str, float] = {
        "iteration": int(result.get("training_iteration", 0)),
        "env_steps": int(env_steps),
        "env_steps_this_iter": int(this_iter),
        "episodes": int(episodes),
    }
    for name, path in RESULT_KEYS.items():
        metrics[name] = _number(_get(result, path))
    metrics["time_this_iter_s"] = time_this_iter
    metrics["time_total_s"] = _number(result.get("time_total_s"))
    metrics["env_steps_per_s"] = (
        int(this_iter) / time_this_iter if time_this_iter and time_this_iter > 0 else math.nan
    )
    return metrics


def format_progress(metrics: Mapping[str, float]) -> str:
    """The one progress line printed per iteration."""
    return (
        f"iter {int(metrics['iteration']):4d} | steps {int(metrics['env_steps']):9,d} | "
        f"return {metrics['episode_return_mean']:9.3f} | "
        f"cost/day ${metrics['daily_cost_mean']:9.1f} | "
        f"safety {metrics['safety_mean']:7.4f} ({metrics['violation_hours_mean']:5.2f} h) | "
        f"{metrics['env_steps_per_s']:6.0f} steps/s "
        f"(sample {metrics['timers/sample_s']:5.1f}s learn {metrics['timers/learn_s']:5.1f}s) | "
        f"{metrics['time_total_s']:7.1f}s"
        + (
            f" | val obj ${metrics['val_objective']:8.1f}"
            if math.isfinite(metrics.get("val_objective", math.nan))
            else ""
        )
    )
