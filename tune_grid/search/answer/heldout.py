"""Held-out evaluation of a finished search: trials' best checkpoints, baselines and the oracle.

Each evaluated trial's best checkpoint (by the search objective) is rolled on ``days`` evenly
spaced test days with every seed's deterministic policy; the seed means become the ``test_*``
columns and each seed's mean daily cost ``test_daily_cost_per_seed``. ``test_optimality_gap`` is
(cost - oracle cost) / |oracle cost| pooled over the days, against the perfect-foresight dispatch
of :mod:`tune_grid.oracle` (``evaluation.oracle: false`` skips it), and ``test_mpc_gap`` the same
against the receding-horizon MPC (``evaluation.mpc``: its forecaster, default persistence; null
skips it). The baselines (with the oracle and the MPC)
see the same days under the search's fixed env config, and again under each other env config the
evaluated trials used (e.g. searched protocols). Results: ``test_evaluation.json`` and
``baselines.json`` in the results folder.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tune_grid.config import outcome_key
from tune_grid.env.day_intervals import seeds_days_interval
from tune_grid.env.evaluation import evaluate, summarize
from tune_grid.results.export import (
    EVALUATION_FILE,
    TrialRecord,
    best_checkpoint,
    read_search_meta,
    records_from_experiment,
    write_json,
)
from tune_grid.search.spec.space_file import SpaceFile

BASELINES_FILE = "baselines.json"
SPLIT = "test"


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def best_value(record: TrialRecord, mode: str) -> float:
    """A trial's best reported objective in ``mode`` (NaN when it reported none)."""
    values = [row["objective"] for row in record.rows.values()]
    finite = [v for v in values if v is not None and not math.isnan(v)]
    if not finite:
        return math.nan
    return max(finite) if mode == "max" else min(finite)


def _best_row(record: TrialRecord, mode: str) -> dict[str, Any]:
    """The iteration row of the trial's best objective (the first one reaching it)."""
    best = best_value(record, mode)
    for iteration in sorted(record.rows):
        if record.rows[iteration]["objective"] == best:
            return dict(record.rows[iteration])
    return {}


def rank_trials(records: dict[str, TrialRecord], mode: str) -> list[TrialRecord]:
    """Trials with a checkpoint and a finite best objective, best first (ties by trial_id)."""
    ranked = [
        r
        for r in records.values()
        if not math.isnan(best_value(r, mode)) and best_checkpoint(r, mode)
    ]
    sign = -1.0 if mode == "max" else 1.0
    return sorted(ranked, key=lambda r: (sign * best_value(r, mode), r.trial_id))


def env_group(env_config: dict[str, Any]) -> str:
    """Trials whose env configs share this key share the baselines, the oracle and the MPC
    (``config.outcome_key``: the price of safety is part of it)."""
    return outcome_key(env_config)


def evaluate_trial_checkpoint(checkpoint: str | Path, days: int) -> tuple[dict[str, Any], Any]:
    """Roll every ``seed_<k>/`` policy of a trial checkpoint on ``days`` test days.

    Returns the ``test_*`` values and the per-day frame averaged over seeds (for the gap).
    """
    from tune_grid.training.checkpoints import read_meta, seed_dirs
    from tune_grid.training.policy import TrainedPolicy

    seeds = seed_dirs(checkpoint)
    if not seeds:
        raise FileNotFoundError(f"{checkpoint}: no seed_<k>/ checkpoints")
    frames = []
    env_config: dict[str, Any] = {}
    for seed_dir in seeds:
        env_config = read_meta(seed_dir).run_config.env_config().to_dict()
        env_config["split"] = SPLIT
        frames.append(
            evaluate(TrainedPolicy.load(seed_dir), split=SPLIT, days=days, config=env_config)
        )
    per_seed = [summarize(f) for f in frames]
    costs = np.stack([f["cost"].to_numpy(float) for f in frames])
    interval = seeds_days_interval(costs, statistic="mean")
    mean_frame = frames[0][["day", "date"]].copy()
    for column in ("cost", "safety", "violation_hours", "return"):
        mean_frame[column] = sum(f[column].to_numpy() for f in frames) / len(frames)
    values = {
        "checkpoint_path": str(checkpoint),
        "test_daily_cost": _mean([s["daily_cost"] for s in per_seed]),
        "test_daily_cost_per_seed": [s["daily_cost"] for s in per_seed],
        "test_daily_cost_low": interval["low"],
        "test_daily_cost_high": interval["high"],
        "test_costs": costs.tolist(),  # (seeds, days): each seed's cost per test day
        "test_safety": _mean([s["safety"] for s in per_seed]),
        "test_violation_hours": _mean([s["violation_hours"] for s in per_seed]),
        "test_return": _mean([s["return"] for s in per_seed]),
        "test_optimality_gap": math.nan,
        "test_optimality_gap_low": math.nan,
        "test_optimality_gap_high": math.nan,
        "test_mpc_gap": math.nan,
        "test_days": len(mean_frame),
        "dates": [str(d) for d in mean_frame["date"]],
        "env_config": env_config,
    }
    return values, mean_frame


def mpc_policy_name(forecaster: str) -> str:
    """The MPC's row name in ``baselines.json`` (e.g. ``mpc_persistence``)."""
    return f"mpc_{forecaster}"


def evaluate_policies(
    env_config: dict[str, Any],
    days: int,
    oracle: bool,
    print_fn: Callable[[str], None],
    mpc: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The baselines (with the oracle and the MPC of forecaster ``mpc``) on the test days under
    ``env_config``: each policy's summary, and its per-day frame by the same name (the oracle
    and the MPC absent when skipped or failed; gaps are taken to their frames)."""
    from tune_grid.baselines import BASELINES
    from tune_grid.config import EnvConfig
    from tune_grid.grid.data import select_days, split_profiles

    frames = {name: evaluate(name, split=SPLIT, days=days, config=env_config) for name in BASELINES}
    indices = [int(d) for d in select_days(split_profiles(SPLIT).num_days, days)]
    if mpc is not None:
        try:
            from tune_grid.oracle.mpc import mpc_days
            from tune_grid.search.run.oracle_tasks import mpc_on_ray

            mpc_on_ray(indices, EnvConfig.from_dict(env_config), mpc)  # in parallel, cached
            frames[mpc_policy_name(mpc)] = mpc_days(SPLIT, days, env_config, forecaster=mpc)
        except Exception as exc:  # noqa: BLE001 - the gap is optional; the rest must be written
            print_fn(f"warning: MPC failed, no gaps to it: {str(exc).splitlines()[0]}")
    if oracle:
        try:
            from tune_grid.oracle import oracle_days
            from tune_grid.search.run.oracle_tasks import solve_on_ray

            solve_on_ray(indices, EnvConfig.from_dict(env_config))  # in parallel, into the cache
            frames["oracle"] = oracle_days(SPLIT, days, env_config)
        except Exception as exc:  # noqa: BLE001 - the gap is optional; the rest must be written
            print_fn(f"warning: oracle failed, no optimality gaps: {str(exc).splitlines()[0]}")
    return {name: summarize(frame) for name, frame in frames.items()}, frames


def _gap_interval(values: dict[str, Any], frame: Any, reference_frame: Any) -> tuple[float, float]:
    """The 95 % interval of a trial's oracle gap over its seeds and the test days (paired by
    day with the reference); NaN when the reference is missing or covers other days."""
    if reference_frame is None or list(reference_frame["date"]) != list(frame["date"]):
        return math.nan, math.nan
    interval = seeds_days_interval(
        values["test_costs"], reference_frame["cost"].to_numpy(float), statistic="mean"
    )
    return interval["gap_low"], interval["gap_high"]


def _gap(trial_frame: Any, reference_frame: Any) -> float:
    """The trial's pooled cost gap to a reference policy's days (NaN without one)."""
    if reference_frame is None:
        return math.nan
    from tune_grid.oracle import optimality_gaps

    try:
        return float(optimality_gaps(trial_frame, reference_frame).gap)
    except ValueError:
        return math.nan


def evaluate_search(
    spec: SpaceFile, results_dir: str | Path, print_fn: Callable[[str], None] = print
) -> dict[str, Any]:
    """Evaluate the top-k trials (all with ``top_k: null``), the baselines and the oracle."""
    from tune_grid.config import RunConfig

    results_dir = Path(results_dir)
    meta = read_search_meta(results_dir)
    mode = meta.mode if meta else spec.resolved_mode
    settings = spec.evaluation
    ranked = rank_trials(records_from_experiment(results_dir), mode)
    chosen = ranked if settings.top_k is None else ranked[: settings.top_k]
    days = settings.days
    print_fn(f"evaluating {len(chosen)} trial(s) on {days} held-out {SPLIT} days")
    trials: dict[str, Any] = {}
    frames: dict[str, Any] = {}
    for record in chosen:
        checkpoint = best_checkpoint(record, mode)
        assert checkpoint is not None
        try:
            trials[record.trial_id], frames[record.trial_id] = evaluate_trial_checkpoint(
                checkpoint, days
            )
        except Exception as exc:  # noqa: BLE001 - one bad checkpoint must not lose the others
            print_fn(f"warning: trial {record.trial_id}: evaluation failed: {exc}")

    fixed_env = RunConfig.from_dict(spec.fixed_config()).env_config().to_dict()
    fixed_env["split"] = SPLIT
    groups: dict[str, dict[str, Any]] = {env_group(fixed_env): {"env": fixed_env, "trials": []}}
    for trial_id, values in trials.items():
        group = groups.setdefault(env_group(values["env_config"]), {"env": values["env_config"]})
        group.setdefault("trials", []).append(trial_id)
    use_policies = settings.baselines or settings.oracle or settings.mpc is not None
    for group in groups.values():
        if not use_policies:
            group["policies"], group["references"] = {}, {}
            continue
        group["policies"], group["references"] = evaluate_policies(
            group["env"], days, settings.oracle, print_fn, settings.mpc
        )
        for trial_id in group["trials"]:
            refs = group["references"]
            mpc_frame = refs.get(mpc_policy_name(settings.mpc)) if settings.mpc else None
            trials[trial_id]["test_optimality_gap"] = _gap(frames[trial_id], refs.get("oracle"))
            low, high = _gap_interval(trials[trial_id], frames[trial_id], refs.get("oracle"))
            trials[trial_id]["test_optimality_gap_low"] = low
            trials[trial_id]["test_optimality_gap_high"] = high
            trials[trial_id]["test_mpc_gap"] = _gap(frames[trial_id], mpc_frame)

    report: dict[str, Any] = {"split": SPLIT, "days": days, "trials": trials}
    write_json(results_dir / EVALUATION_FILE, report)
    fixed_group = groups[env_group(fixed_env)]
    baselines: dict[str, Any] = {
        "split": SPLIT,
        "days": days,
        "policies": fixed_group["policies"],
        "env_config": fixed_env,
    }
    others = [g for key, g in groups.items() if key != env_group(fixed_env)]
    if others:
        baselines["per_env"] = [
            {
                "env_config": {k: v for k, v in g["env"].items() if fixed_env.get(k) != v},
                "trials": sorted(g["trials"]),
                "policies": g["policies"],
            }
            for g in others
        ]
    if use_policies:
        write_json(results_dir / BASELINES_FILE, baselines)
    report["baselines"] = baselines
    report["groups"] = {tid: g["policies"] for g in groups.values() for tid in g["trials"]}
    report["ranking"] = [r.trial_id for r in ranked]
    return report


def format_summary(spec: SpaceFile, results_dir: str | Path, report: dict[str, Any]) -> str:
    """The best configuration (by the search objective) and its test result vs the baselines."""
    ranking = report.get("ranking", [])
    if not ranking:
        return "no trial produced a finite objective and a checkpoint"
    best_id = ranking[0]
    best = records_from_experiment(results_dir)[best_id]
    lines = [f"best trial {best_id} by {spec.metric} ({spec.resolved_mode}):"]
    for name in sorted(spec.space):
        lines.append(f"  {name} = {best.config.get(name)!r}")
    chosen = _best_row(best, spec.resolved_mode)
    if chosen and chosen.get("val_objective") is not None:
        gap = chosen.get("val_gap")
        gap_text = (
            f", gap to the oracle {gap:+.1%}" if gap is not None and math.isfinite(gap) else ""
        )
        lines.append(
            f"validation days at {chosen.get('env_steps', 0):,} env steps: objective "
            f"${chosen['val_objective']:.1f}/day, "
            f"cost ${chosen.get('val_daily_cost', math.nan):.1f}/day{gap_text}"
        )
    result = report["trials"].get(best_id)
    policies = report.get("groups", {}).get(best_id) or report["baselines"]["policies"]
    lines.append(
        f"held-out {report['split']} days ({report['days']}), per day, [95 % interval over days]:"
    )
    lines.append(f"  {'policy':<16} {'cost $':>9} {'[95 % CI]':>20} {'safety':>8} {'viol. h':>8}")

    def line(name: str, cost: float, low: float, high: float, safety: float, hours: float) -> str:
        interval = f"[{low:.1f}, {high:.1f}]" if math.isfinite(low) else ""
        return f"  {name:<16} {cost:9.1f} {interval:>20} {safety:8.4f} {hours:8.2f}"

    if result:
        lines.append(
            line(
                "best trial",
                result["test_daily_cost"],
                result.get("test_daily_cost_low", math.nan),
                result.get("test_daily_cost_high", math.nan),
                result["test_safety"],
                result["test_violation_hours"],
            )
        )
    for name, values in policies.items():
        lines.append(
            line(
                name,
                values["daily_cost"],
                values.get("daily_cost_low", math.nan),
                values.get("daily_cost_high", math.nan),
                values["safety"],
                values["violation_hours"],
            )
        )
    if result and not math.isnan(result["test_optimality_gap"]):
        low = result.get("test_optimality_gap_low", math.nan)
        high = result.get("test_optimality_gap_high", math.nan)
        interval = f" [{low:+.1%}, {high:+.1%}]" if math.isfinite(low) else ""
        lines.append(
            f"  optimality gap of the best trial: {result['test_optimality_gap']:+.1%}{interval}"
        )
    mpc_gap = result.get("test_mpc_gap", math.nan) if result else math.nan
    if not math.isnan(mpc_gap):
        name = next((n for n in policies if n.startswith("mpc_")), "mpc")
        lines.append(f"  gap of the best trial to {name}: {mpc_gap:+.1%}")
    return "\n".join(lines)
