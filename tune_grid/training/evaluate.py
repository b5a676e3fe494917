"""Held-out evaluation of a checkpoint against the baselines: table + ``evaluation.json``."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tune_grid.baselines import BASELINES
from tune_grid.env.evaluation import evaluate
from tune_grid.training.checkpoints import read_meta, write_json
from tune_grid.training.policy import TrainedPolicy

EVALUATION_FILE = "evaluation.json"
TRAINED = "trained"
POLICY_ORDER = (TRAINED, *BASELINES)
SUMMARY_KEYS = ("daily_cost_mean", "safety_mean", "violation_hours_mean", "return_mean")


def summarize(days: pd.DataFrame) -> dict[str, float]:
    """Means over days of a per-day frame from :func:`tune_grid.env.evaluation.evaluate`."""
    return {
        "daily_cost_mean": float(days["cost"].mean()),
        "daily_cost_std": float(days["cost"].std(ddof=0)),
        "safety_mean": float(days["safety"].mean()),
        "violation_hours_mean": float(days["violation_hours"].mean()),
        "return_mean": float(days["return"].mean()),
        "days": len(days),
    }


def evaluate_checkpoint(
    path: str | Path,
    split: str = "test",
    days: int | Sequence[int | str] | None = None,
    *,
    baselines: Sequence[str] = tuple(BASELINES),
    write: bool = True,
) -> dict[str, Any]:
    """Evaluate a checkpoint's deterministic policy and the baselines on whole days of ``split``.

    ``days``: None for every day of the split, N for N days evenly spaced, or indices/dates. All
    policies see the same days and the run's env config (penalty, protocols...). Returns
    ``{"checkpoint", "split", "days", "dates", "env_config", "iteration", "env_steps",
    "policies": {name: {daily_cost_mean, daily_cost_std, safety_mean, violation_hours_mean,
    return_mean, days}}}`` with names ``trained``, ``do_nothing``, ``random``, ``rule_based``;
    with ``write`` also saves it as ``evaluation.json`` inside the checkpoint folder.
    """
    start = time.perf_counter()
    meta = read_meta(path)
    policy = TrainedPolicy.load(path)
    env_config = meta.run_config.env_config().to_dict()
    env_config["split"] = split
    frames = {TRAINED: evaluate(policy, split=split, days=days, config=env_config)}
    for name in baselines:
        frames[name] = evaluate(name, split=split, days=days, config=env_config)
    report: dict[str, Any] = {
        "checkpoint": str(Path(path).resolve()),
        "run_name": meta.run_name,
        "iteration": meta.iteration,
        "env_steps": meta.env_steps,
        "split": split,
        "days": len(frames[TRAINED]),
        "dates": frames[TRAINED]["date"].tolist(),
        "env_config": env_config,
        "policies": {name: summarize(frame) for name, frame in frames.items()},
        "per_day_cost": {name: frame["cost"].tolist() for name, frame in frames.items()},
        "seconds": time.perf_counter() - start,
    }
    if write:
        write_json(Path(path) / EVALUATION_FILE, report)
    return report


def format_table(report: dict[str, Any]) -> str:
    """A fixed-width table of the report's policies, with the cost change vs do-nothing."""
    policies = report["policies"]
    reference = policies.get("do_nothing", {}).get("daily_cost_mean", math.nan)
    lines = [
        f"{report['split']} split, {report['days']} days, checkpoint iteration "
        f"{report['iteration']} ({report['env_steps']:,} env steps)",
        f"{'policy':<12} {'cost $/day':>12} {'vs do-nothing':>14} {'safety/day':>11} "
        f"{'viol. h/day':>12} {'return/day':>11}",
    ]
    names = [n for n in POLICY_ORDER if n in policies] + sorted(set(policies) - {*POLICY_ORDER})
    for name in names:
        p = policies[name]
        delta = (p["daily_cost_mean"] - reference) / abs(reference) if reference else math.nan
        lines.append(
            f"{name:<12} {p['daily_cost_mean']:12.1f} {delta:+13.1%} {p['safety_mean']:11.4f} "
            f"{p['violation_hours_mean']:12.2f} {p['return_mean']:11.2f}"
        )
    return "\n".join(lines)
