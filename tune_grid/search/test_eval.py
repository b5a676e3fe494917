"""Held-out evaluation of a finished search: trials' best checkpoints and the baselines.

Each evaluated trial's best checkpoint (by the search objective) is rolled on ``days`` test days
with every seed's deterministic policy; the seed means become the ``test_*`` columns and each
seed's daily cost ``test_daily_cost_per_seed``. The baselines see the same days and the fixed env
config. Results go to ``test_evaluation.json`` and ``baselines.json`` in the results folder.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tune_grid.results.export import (
    EVALUATION_FILE,
    TrialRecord,
    best_checkpoint,
    read_search_meta,
    records_from_experiment,
    write_json,
)
from tune_grid.search.space_file import SpaceFile

BASELINES_FILE = "baselines.json"
SPLIT = "test"


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def rank_trials(records: dict[str, TrialRecord], mode: str) -> list[TrialRecord]:
    """Trials with a checkpoint and a finite best objective, best first."""
    ranked = []
    for record in records.values():
        values = [row["objective"] for row in record.rows.values()]
        finite = [v for v in values if not math.isnan(v)]
        if finite and best_checkpoint(record, mode):
            ranked.append((max(finite) if mode == "max" else -min(finite), record.trial_id, record))
    ranked.sort(key=lambda item: (-item[0], item[1]))
    return [record for _, _, record in ranked]


def evaluate_trial_checkpoint(checkpoint: str | Path, days: int) -> dict[str, Any]:
    """Roll every ``seed_<k>/`` policy of a trial checkpoint on ``days`` test days."""
    from tune_grid.env.evaluation import evaluate
    from tune_grid.training.checkpoints import read_meta
    from tune_grid.training.policy import TrainedPolicy

    seed_dirs = sorted(Path(checkpoint).glob("seed_*"), key=lambda p: int(p.name.split("_")[1]))
    if not seed_dirs:
        raise FileNotFoundError(f"{checkpoint}: no seed_<k>/ checkpoints")
    per_seed: list[dict[str, float]] = []
    dates: list[str] = []
    for seed_dir in seed_dirs:
        env_config = read_meta(seed_dir).run_config.env_config().to_dict()
        frame = evaluate(TrainedPolicy.load(seed_dir), split=SPLIT, days=days, config=env_config)
        dates = [str(d) for d in frame["date"]]
        per_seed.append(
            {
                "cost": float(frame["cost"].mean()),
                "safety": float(frame["safety"].mean()),
                "violation_hours": float(frame["violation_hours"].mean()),
                "return": float(frame["return"].mean()),
            }
        )
    return {
        "checkpoint_path": str(checkpoint),
        "test_daily_cost": _mean([s["cost"] for s in per_seed]),
        "test_daily_cost_per_seed": [s["cost"] for s in per_seed],
        "test_safety": _mean([s["safety"] for s in per_seed]),
        "test_violation_hours": _mean([s["violation_hours"] for s in per_seed]),
        "test_return": _mean([s["return"] for s in per_seed]),
        "test_optimality_gap": math.nan,
        "test_days": len(dates),
        "dates": dates,
    }


def evaluate_baselines(spec: SpaceFile, days: int) -> dict[str, Any]:
    """The baselines on the same test days with the search's fixed env config."""
    from tune_grid.baselines import BASELINES
    from tune_grid.config import RunConfig
    from tune_grid.env.evaluation import evaluate

    env_config = RunConfig.from_dict(spec.fixed_config()).env_config().to_dict()
    policies: dict[str, Any] = {}
    count = 0
    for name in BASELINES:
        frame = evaluate(name, split=SPLIT, days=days, config=env_config)
        count = len(frame)
        policies[name] = {
            "daily_cost": float(frame["cost"].mean()),
            "safety": float(frame["safety"].mean()),
            "violation_hours": float(frame["violation_hours"].mean()),
            "return": float(frame["return"].mean()),
        }
    return {"split": SPLIT, "days": count, "policies": policies}


def evaluate_search(
    spec: SpaceFile, results_dir: str | Path, print_fn: Callable[[str], None] = print
) -> dict[str, Any]:
    """Evaluate the top-k trials (all with ``top_k: null``) and the baselines; write both files."""
    results_dir = Path(results_dir)
    meta = read_search_meta(results_dir)
    mode = meta.mode if meta else spec.resolved_mode
    ranked = rank_trials(records_from_experiment(results_dir), mode)
    top_k = spec.evaluation.top_k
    chosen = ranked if top_k is None else ranked[:top_k]
    days = spec.evaluation.days
    print_fn(f"evaluating {len(chosen)} trial(s) on {days} held-out {SPLIT} days")
    trials: dict[str, Any] = {}
    for record in chosen:
        checkpoint = best_checkpoint(record, mode)
        assert checkpoint is not None
        try:
            trials[record.trial_id] = evaluate_trial_checkpoint(checkpoint, days)
        except Exception as exc:  # noqa: BLE001 - one bad checkpoint must not lose the others
            print_fn(f"warning: trial {record.trial_id}: evaluation failed: {exc}")
    report: dict[str, Any] = {"split": SPLIT, "days": days, "trials": trials}
    write_json(results_dir / EVALUATION_FILE, report)
    if spec.evaluation.baselines:
        baselines = evaluate_baselines(spec, days)
        write_json(results_dir / BASELINES_FILE, baselines)
        report["baselines"] = baselines
    report["ranking"] = [r.trial_id for r in ranked]
    return report


def format_summary(spec: SpaceFile, results_dir: str | Path, report: dict[str, Any]) -> str:
    """The best configuration (by the search objective) and its test result vs the baselines."""
    ranking = report.get("ranking", [])
    if not ranking:
        return "no trial produced a finite objective and a checkpoint"
    best_id = ranking[0]
    records = records_from_experiment(results_dir)
    best = records[best_id]
    lines = [f"best trial {best_id} ({spec.metric}, {spec.resolved_mode}):"]
    for name in sorted(spec.space):
        lines.append(f"  {name} = {best.config.get(name)!r}")
    result = report["trials"].get(best_id)
    baselines = report.get("baselines", {}).get("policies", {})
    lines.append(
        f"test split, {report['days']} days: {'policy':<12} {'cost $/day':>11} "
        f"{'safety':>8} {'viol. h':>8}"
    )
    pad = " " * len(f"test split, {report['days']} days: ")
    if result:
        lines.append(
            f"{pad}{'best trial':<12} {result['test_daily_cost']:11.1f} "
            f"{result['test_safety']:8.4f} {result['test_violation_hours']:8.2f}"
        )
    for name, values in baselines.items():
        lines.append(
            f"{pad}{name:<12} {values['daily_cost']:11.1f} {values['safety']:8.4f} "
            f"{values['violation_hours']:8.2f}"
        )
    return "\n".join(lines)
