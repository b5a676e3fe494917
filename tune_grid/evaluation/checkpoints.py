"""Held-out evaluation of a checkpoint against the baselines: table + ``evaluation.json``."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tune_grid.baselines import BASELINES
from tune_grid.config import EnvConfig, RunConfig
from tune_grid.env.evaluation import Policy, evaluate, summarize
from tune_grid.training.checkpoints import read_meta, write_json
from tune_grid.training.policy import TrainedPolicy

EVALUATION_FILE = "evaluation.json"
TRAINED = "trained"
POLICY_ORDER = (TRAINED, *BASELINES)


def evaluate_policy(
    policy: Policy,
    env_config: Mapping[str, Any] | EnvConfig | None = None,
    split: str = "test",
    days: int | Sequence[int | str] | None = None,
    *,
    baselines: Sequence[str] = tuple(BASELINES),
) -> dict[str, Any]:
    """Evaluate ``policy`` (as ``"trained"``) and the baselines on the same whole days of ``split``.

    ``env_config``: the run's env keys (penalty, protocols...; ``split`` is overridden).
    ``days``: None for every day of the split, N for N days evenly spaced, or indices/dates.
    Returns ``{"split", "days", "dates", "env_config", "policies": {name: summary}, "per_day_cost",
    "seconds"}`` with names ``trained``, ``do_nothing``, ``random``, ``rule_based`` and each
    summary :func:`tune_grid.env.evaluation.summarize`'s (``daily_cost`` with its interval over
    days, ``safety``, ``violation_hours``, ``return``, ``objective``, ``days``).
    """
    start = time.perf_counter()
    if isinstance(env_config, EnvConfig):
        values = env_config.to_dict()
    else:
        values = EnvConfig.from_dict(dict(env_config or {})).to_dict()
    values["split"] = split
    frames = {TRAINED: evaluate(policy, split=split, days=days, config=values)}
    for name in baselines:
        frames[name] = evaluate(name, split=split, days=days, config=values)
    return {
        "split": split,
        "days": len(frames[TRAINED]),
        "dates": frames[TRAINED]["date"].tolist(),
        "env_config": values,
        "policies": {name: summarize(frame) for name, frame in frames.items()},
        "per_day_cost": {name: frame["cost"].tolist() for name, frame in frames.items()},
        "seconds": time.perf_counter() - start,
    }


def evaluate_checkpoint(
    path: str | Path,
    split: str = "test",
    days: int | Sequence[int | str] | None = None,
    *,
    run_config: RunConfig | None = None,
    baselines: Sequence[str] = tuple(BASELINES),
    write: bool = True,
) -> dict[str, Any]:
    """Evaluate a checkpoint's deterministic policy against the baselines (see evaluate_policy).

    The env config is the run's, from the checkpoint's ``tune_grid.json``; for a plain RLlib
    checkpoint (e.g. from Tune) pass ``run_config``. The report adds ``checkpoint``,
    ``run_name``, ``iteration`` and ``env_steps``; with ``write`` it is also saved as
    ``evaluation.json`` inside the checkpoint folder.
    """
    path = Path(path)
    if run_config is None:
        meta = read_meta(path)
        run_config = meta.run_config
        header = {
            "run_name": meta.run_name,
            "iteration": meta.iteration,
            "env_steps": meta.env_steps,
        }
    else:
        header = {"run_name": None, "iteration": None, "env_steps": None}
    policy = TrainedPolicy.load(path, policy_sharing=run_config.policy_sharing)
    report = {
        "checkpoint": str(path.resolve()),
        **header,
        **evaluate_policy(policy, run_config.env_config(), split, days, baselines=baselines),
    }
    if write:
        write_json(path / EVALUATION_FILE, report)
    return report


def format_table(report: dict[str, Any]) -> str:
    """A fixed-width table of the report's policies, with the cost change vs do-nothing."""
    policies = report["policies"]
    reference = policies.get("do_nothing", {}).get("daily_cost", math.nan)
    lines = [
        f"{report['split']} split, {report['days']} days"
        + (
            f", checkpoint iteration {report['iteration']} ({report['env_steps']:,} env steps)"
            if report.get("iteration") is not None
            else ""
        ),
        f"{'policy':<12} {'cost $/day':>12} {'[95 % CI over days]':>21} {'vs do-nothing':>14} "
        f"{'safety/day':>11} {'viol. h/day':>12} {'return/day':>11}",
    ]
    names = [n for n in POLICY_ORDER if n in policies] + sorted(set(policies) - {*POLICY_ORDER})
    for name in names:
        p = policies[name]
        delta = (p["daily_cost"] - reference) / abs(reference) if reference else math.nan
        interval = f"[{p['daily_cost_low']:.1f}, {p['daily_cost_high']:.1f}]"
        lines.append(
            f"{name:<12} {p['daily_cost']:12.1f} {interval:>21} {delta:+13.1%} "
            f"{p['safety']:11.4f} {p['violation_hours']:12.2f} {p['return']:11.2f}"
        )
    return "\n".join(lines)
