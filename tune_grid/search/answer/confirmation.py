"""The confirmation stage: retrain the search's finalists on fresh seeds, race them, answer.

After the search (and its held-out evaluation), the ``confirm:`` block of the search file sends
the ``top_k`` configurations by the search objective, plus the best one with each named factor
changed, into a race (:mod:`tune_grid.search.answer.racing`). Each round trains every remaining
configuration on the round's fresh seeds (:func:`fresh_seeds`: never a seed of the search) at the
search's full ``stop``, in lockstep in one Ray task per configuration. Each seed keeps its best
validation checkpoint (by the search metric), which is then scored on the confirmation's test
days. Every finished run is a row of ``confirm.parquet`` at once; the race is replayed from those
rows, so ``--resume`` after a killed driver continues with the missing runs only (a run cut
short is trained again from its start, its partial folder removed).

Files in the results folder: ``confirm.parquet`` (columns:
:data:`~tune_grid.results.schema.CONFIRM_COLUMNS`), ``racing.json`` (every round: seeds, best,
comparisons, drops, stop reason), ``answer.json`` (what
:func:`~tune_grid.search.answer.summary.format_answer` prints and the report opens with), and
``confirm/<candidate>/seed_<s>/`` (each confirmed run's scored checkpoint, a tune-grid
checkpoint ``evaluate`` and ``oracle --checkpoint`` take as given).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tune_grid.config import RunConfig
from tune_grid.env.day_intervals import (
    gap_interval,
    mean_interval,
    paired_difference,
    seeds_days_interval,
)
from tune_grid.errors import TuneGridError
from tune_grid.results.export import TrialRecord, records_from_experiment, write_json
from tune_grid.results.schema import CONFIRM_COLUMNS, CONFIRM_FILE, read_results, write_results
from tune_grid.search.answer.heldout import (
    SPLIT,
    best_value,
    env_group,
    evaluate_policies,
    mpc_policy_name,
    rank_trials,
)
from tune_grid.search.answer.racing import (
    RaceRules,
    RaceState,
    common_seed_matrices,
    compare,
    race,
)
from tune_grid.search.answer.summary import ANSWER_FILE, value_label
from tune_grid.search.spec.space_file import ConfirmSettings, SpaceFile

FRESH_SEED_OFFSET = 10_000
"""Confirmation seeds start here above the search's base seed; a search trains at most 64
seeds per trial (``seeds <= 64``), so they never meet."""
CONFIRM_DIR = "confirm"
RACING_FILE = "racing.json"
SEPARATED = {"worse": "separated (worse)", "better": "separated (better)"}
"""The race's verdicts that are separations, as the answer words them."""


class ConfirmError(TuneGridError, RuntimeError):
    """The confirmation stage cannot run or resume (no finalist, results of another search)."""


@dataclass(frozen=True)
class Candidate:
    """One configuration in the race."""

    name: str
    origin: str
    trial_id: str
    params: dict[str, Any]
    """The searched keys' values (the rest is the search's ``fixed``)."""
    search_value: float
    """The source trial's best search objective (NaN for a factor variant: never trained)."""
    factor: str | None = None
    """For a factor variant: the factor it changes from the best configuration."""

    def run_config(self, spec: SpaceFile) -> dict[str, Any]:
        return {**spec.fixed_config(), **self.params}


def race_rules(confirm: ConfirmSettings) -> RaceRules:
    """The race's rules from the ``confirm:`` block."""
    return RaceRules(confirm.seeds, confirm.seeds_per_round, confirm.confidence, confirm.tolerance)


def base_seed(spec: SpaceFile) -> int:
    return int(spec.fixed.get("seed", RunConfig.seed))


def search_seeds(spec: SpaceFile) -> list[int]:
    """The seeds every search trial trains (``seed, ..., seed + seeds - 1``)."""
    return [base_seed(spec) + k for k in range(spec.seeds)]


def fresh_seeds(spec: SpaceFile) -> list[int]:
    """The confirmation's seeds, in the order rounds take them; disjoint from the search's."""
    assert spec.confirm is not None
    start = base_seed(spec) + FRESH_SEED_OFFSET
    return [start + k for k in range(spec.confirm.seeds)]


def build_candidates(
    spec: SpaceFile, records: Mapping[str, TrialRecord], mode: str
) -> list[Candidate]:
    """The top-k distinct configurations by the search objective, then the factor variants of
    the best one (each other value of each factor, unless already a finalist)."""
    assert spec.confirm is not None
    names = list(spec.space)
    candidates: list[Candidate] = []
    seen: dict[str, Candidate] = {}
    for record in rank_trials(dict(records), mode):
        params = {k: record.config.get(k) for k in names}
        key = json.dumps(params, sort_keys=True, default=str)
        if key in seen:
            continue
        rank = len(candidates) + 1
        candidate = Candidate(
            name=f"c{rank}",
            origin=f"search rank {rank} ({record.trial_id})",
            trial_id=record.trial_id,
            params=params,
            search_value=best_value(record, mode),
        )
        candidates.append(candidate)
        seen[key] = candidate
        if len(candidates) == spec.confirm.top_k:
            break
    if not candidates:
        raise ConfirmError(
            "confirm: no search trial has a finite objective and a checkpoint; nothing to confirm"
        )
    best = candidates[0]
    for factor in spec.confirm.factors:
        for value in spec.space[factor].grid_values():
            if value == best.params[factor]:
                continue
            params = {**best.params, factor: value}
            key = json.dumps(params, sort_keys=True, default=str)
            if key in seen:
                continue
            variant = Candidate(
                name=f"{factor}={value_label(value)}",
                origin=f"{best.name} with {factor}={value_label(value)}",
                trial_id=best.trial_id,
                params=params,
                search_value=math.nan,
                factor=factor,
            )
            candidates.append(variant)
            seen[key] = variant
    return candidates


# --------------------------------------------------------------------------- one Ray task
@dataclass(frozen=True)
class ConfirmJob:
    """One configuration's seeds of one round (picklable; runs in a Ray task)."""

    config: dict[str, Any]
    seeds: list[int]
    stop: dict[str, float]
    metric: str
    mode: str
    oracle: dict[str, float]
    run_dir: str
    days: int


def run_job(job: ConfirmJob) -> list[dict[str, Any]]:
    """Train the job's seeds in lockstep to the stop, keep each seed's best validation
    checkpoint, score it on the test days; one result per seed (``error`` set if it failed)."""
    from tune_grid.results.early_stop import stop_reached
    from tune_grid.search.run.trainable import validates_now
    from tune_grid.training.checkpoints import CheckpointMeta, save_checkpoint
    from tune_grid.training.runner import improved
    from tune_grid.training.seed_group import SeedGroup

    runs = [RunConfig.from_dict({**job.config, "seed": seed}) for seed in job.seeds]
    run_dir = Path(job.run_dir)
    best: list[float | None] = [None] * len(runs)
    best_steps = [0] * len(runs)
    counters = {"iteration": 0, "env_steps": 0, "time_total_s": 0.0}
    validated_at: int | None = None
    start = time.perf_counter()
    try:
        group = SeedGroup(runs, oracle=job.oracle)
    except Exception as exc:  # noqa: BLE001 - a configuration that cannot build fails its runs
        return [_failed(seed, exc) for seed in job.seeds]
    try:
        while True:
            per_seed = group.train()
            counters["iteration"] += 1
            counters["env_steps"] = int(min(m["env_steps"] for m in per_seed))
            counters["time_total_s"] = time.perf_counter() - start
            final = stop_reached(job.stop, counters)
            steps = int(counters["env_steps"])
            if validates_now(
                steps, validated_at, runs[0].eval_interval, final=final, every_iteration=False
            ):
                validation = group.validate()
                validated_at = steps
                for k, (algo, run) in enumerate(zip(group.algos, runs, strict=True)):
                    value = float({**per_seed[k], **validation[k]}.get(job.metric, math.nan))
                    if improved(value, best[k], job.mode):
                        best[k], best_steps[k] = value, steps
                        meta = CheckpointMeta(
                            run_name=f"confirm_seed{run.seed}",
                            run_config=run,
                            iteration=int(counters["iteration"]),
                            env_steps=steps,
                            time_total_s=float(counters["time_total_s"]),
                            best_metric=job.metric,
                            best_mode=job.mode,
                            best_value=value,
                            best_iteration=int(counters["iteration"]),
                        )
                        save_checkpoint(algo, run_dir / f"seed_{run.seed}", meta)
            if final:
                break
    except Exception as exc:  # noqa: BLE001 - a diverged seed fails the configuration's runs
        return [_failed(seed, exc) for seed in job.seeds]
    finally:
        group.stop()
    elapsed = time.perf_counter() - start
    out = []
    for k, run in enumerate(runs):
        checkpoint = run_dir / f"seed_{run.seed}"
        if best[k] is None:
            out.append(_failed(run.seed, RuntimeError(f"no finite {job.metric} to pick from")))
            continue
        frame = _score(checkpoint, run, job.days)
        out.append(
            {
                "seed": run.seed,
                "env_steps": int(counters["env_steps"]),
                "best_env_steps": best_steps[k],
                "val_objective": best[k],
                "test_daily_costs": [float(c) for c in frame["cost"]],
                "test_daily_cost": float(frame["cost"].mean()),
                "test_safety": float(frame["safety"].mean()),
                "test_violation_hours": float(frame["violation_hours"].mean()),
                "test_days": len(frame),
                "checkpoint_path": str(checkpoint.resolve()),
                "time_total_s": elapsed,
                "error": None,
            }
        )
    return out


def _score(checkpoint: Path, run: RunConfig, days: int) -> Any:
    from tune_grid.env.evaluation import evaluate
    from tune_grid.training.policy import TrainedPolicy

    env_config = run.env_config().to_dict()
    return evaluate(TrainedPolicy.load(checkpoint), split=SPLIT, days=days, config=env_config)


def _failed(seed: int, exc: BaseException) -> dict[str, Any]:
    text = str(exc).strip().splitlines()
    return {"seed": seed, "error": f"{type(exc).__name__}: {text[0] if text else ''}"}


# --------------------------------------------------------------------------- rows and files
def read_confirm_rows(results_dir: Path) -> list[dict[str, Any]]:
    """The confirmed runs so far (empty before the stage started)."""
    path = results_dir / CONFIRM_FILE
    if not path.exists():
        return []
    return read_results(path, "confirm").to_pylist()


def write_confirm_rows(results_dir: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write every row atomically (a reader or a killed driver never sees half a file)."""
    import pyarrow as pa

    schema = pa.schema([pa.field(n, t) for n, t in CONFIRM_COLUMNS.items()])
    full = [{name: row.get(name) for name in CONFIRM_COLUMNS} for row in rows]
    write_results(pa.Table.from_pylist(full, schema=schema), results_dir / CONFIRM_FILE, "confirm")


def _costs(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[int, np.ndarray | None]]:
    out: dict[str, dict[int, np.ndarray | None]] = {}
    for row in rows:
        costs = row.get("test_daily_costs")
        value = None if row.get("error") or not costs else np.asarray(costs, float)
        out.setdefault(row["candidate"], {})[int(row["seed"])] = value
    return out


# --------------------------------------------------------------------------- the stage
@dataclass
class References:
    """The baselines' per-day frames on the confirmation's test days, per env group."""

    spec: SpaceFile
    print_fn: Callable[[str], None]
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)

    def for_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """``{"env": ..., "summaries": ..., "frames": ...}`` of the run config's env group."""
        assert self.spec.confirm is not None
        env = RunConfig.from_dict(dict(config)).env_config().to_dict()
        env["split"] = SPLIT
        key = env_group(env)
        if key not in self.groups:
            settings = self.spec.evaluation
            summaries, frames = evaluate_policies(
                env, self.spec.confirm.days, settings.oracle, self.print_fn, settings.mpc
            )
            self.groups[key] = {"env": env, "summaries": summaries, "frames": frames}
        return self.groups[key]


def _gap(costs: Sequence[float], frame: Any) -> float:
    if frame is None:
        return math.nan
    return gap_interval(costs, frame["cost"].to_numpy(float))[0]


def run_confirmation(
    spec: SpaceFile,
    results_dir: str | Path,
    oracle: Mapping[str, Mapping[str, float]] | None = None,
    print_fn: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Race the finalists on fresh seeds (resuming from ``confirm.parquet``); return the answer
    (also written to ``answer.json``). ``oracle``: the validation days' oracle objectives by
    env config key, as the search's trials got them (:func:`tune_grid.search.run.tuner.
    validation_oracle`), for the runs' ``val_gap``."""
    import ray

    confirm = spec.confirm
    if confirm is None:
        raise ConfirmError("the search file has no confirm: block")
    results_dir = Path(results_dir)
    mode = spec.resolved_mode
    records = records_from_experiment(results_dir)
    candidates = build_candidates(spec, records, mode)
    by_name = {c.name: c for c in candidates}
    rules = race_rules(confirm)
    fresh = fresh_seeds(spec)
    rows = read_confirm_rows(results_dir)
    _check_resumed(rows, by_name, results_dir)
    references = References(spec, print_fn)
    print_fn(
        f"confirm: {len(candidates)} configurations ({', '.join(by_name)}) on fresh seeds "
        f"{fresh[0]}..{fresh[-1]}, {confirm.seeds_per_round} per round, scored on "
        f"{confirm.days} {SPLIT} days"
    )
    remote = ray.remote(run_job).options(
        num_cpus=spec.resources_per_trial.cpu, num_gpus=spec.resources_per_trial.gpu, max_retries=0
    )
    while True:
        state = race(list(by_name), _costs(rows), fresh, rules)
        _write_racing(results_dir, state, candidates, fresh, rules)
        if state.finished:
            break
        seeds = rules.round_seeds(fresh, state.next_round)
        done = {(r["candidate"], int(r["seed"])) for r in rows}
        pending = {}
        for name in state.remaining:
            todo = [s for s in seeds if (name, s) not in done]
            if not todo:
                continue
            run_dir = results_dir / CONFIRM_DIR / name
            for seed in todo:
                shutil.rmtree(run_dir / f"seed_{seed}", ignore_errors=True)  # a run cut short
            job = ConfirmJob(
                config=by_name[name].run_config(spec),
                seeds=todo,
                stop=dict(spec.stop.items()),
                metric=spec.metric,
                mode=mode,
                oracle=_oracle_for(oracle, by_name[name].run_config(spec)),
                run_dir=str(run_dir),
                days=confirm.days,
            )
            pending[remote.remote(job)] = (name, state.next_round, todo)
        print_fn(
            f"confirm: round {state.next_round + 1}/{rules.rounds}: seeds {seeds} for "
            f"{', '.join(state.remaining)} ({len(pending)} tasks)"
        )
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            name, round_index, job_seeds = pending.pop(ready[0])
            try:
                results = ray.get(ready[0])
            except Exception as exc:  # noqa: BLE001 - a lost worker (e.g. out of memory) fails
                results = [_failed(seed, exc) for seed in job_seeds]  # its runs, not the stage
            for result in results:
                row = _row(spec, by_name[name], round_index, result, references)
                rows.append(row)
                print_fn(_progress(row))
            write_confirm_rows(results_dir, rows)
    answer = build_answer(spec, candidates, rows, state, references)
    write_json(results_dir / ANSWER_FILE, answer)
    return answer


def _oracle_for(
    oracle: Mapping[str, Mapping[str, float]] | None, config: Mapping[str, Any]
) -> dict[str, float]:
    from tune_grid.oracle import config_key

    run = RunConfig.from_dict(dict(config))
    return dict((oracle or {}).get(config_key(run.env_config()), {}))


def _check_resumed(
    rows: Sequence[Mapping[str, Any]], by_name: Mapping[str, Candidate], results_dir: Path
) -> None:
    for row in rows:
        candidate = by_name.get(row["candidate"])
        config = json.dumps(candidate.params, sort_keys=True, default=str) if candidate else None
        if candidate is None or row["config"] != config:
            raise ConfirmError(
                f"{results_dir / CONFIRM_FILE}: run {row['candidate']} seed {row['seed']} does "
                "not match this search's finalists; move the file away to confirm again"
            )


def _row(
    spec: SpaceFile,
    candidate: Candidate,
    round_index: int,
    result: Mapping[str, Any],
    references: References,
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(CONFIRM_COLUMNS)
    row.update(
        experiment=spec.experiment,
        candidate=candidate.name,
        origin=candidate.origin,
        trial_id=candidate.trial_id,
        config=json.dumps(candidate.params, sort_keys=True, default=str),
        round=round_index,
        test_optimality_gap=math.nan,
        test_mpc_gap=math.nan,
    )
    row.update(result)
    if not row.get("error"):
        frames = references.for_config(candidate.run_config(spec))["frames"]
        mpc = spec.evaluation.mpc
        row["test_optimality_gap"] = _gap(row["test_daily_costs"], frames.get("oracle"))
        mpc_frame = frames.get(mpc_policy_name(mpc)) if mpc else None
        row["test_mpc_gap"] = _gap(row["test_daily_costs"], mpc_frame)
    return row


def _progress(row: Mapping[str, Any]) -> str:
    where = f"confirm: {row['candidate']} seed {row['seed']}"
    if row.get("error"):
        return f"{where}: failed ({row['error']})"
    gap = row["test_optimality_gap"]
    gap_text = f", gap to the oracle {gap:+.1%}" if math.isfinite(gap) else ""
    return (
        f"{where}: test ${row['test_daily_cost']:.1f}/day over {row['test_days']} days"
        f"{gap_text}, best validation at {row['best_env_steps']:,} env steps"
    )


def _write_racing(
    results_dir: Path,
    state: RaceState,
    candidates: Sequence[Candidate],
    fresh: Sequence[int],
    rules: RaceRules,
) -> None:
    write_json(
        results_dir / RACING_FILE,
        {
            "procedure": "paired bootstrap race (tune_grid.search.answer.racing)",
            "rules": asdict(rules),
            "fresh_seeds": list(fresh),
            "candidates": [asdict(c) for c in candidates],
            **state.to_json(),
        },
    )


# --------------------------------------------------------------------------- the answer
def build_answer(
    spec: SpaceFile,
    candidates: Sequence[Candidate],
    rows: Sequence[Mapping[str, Any]],
    state: RaceState,
    references: References,
) -> dict[str, Any]:
    """The recommended configuration, its confirmed figures, the baselines, what it is
    separated from, the factors, the winner's curse and the command that trains it."""
    confirm = spec.confirm
    assert confirm is not None
    costs = _costs(rows)
    by_name = {c.name: c for c in candidates}
    alive = [n for n in state.remaining if n in by_name]
    if not alive:
        raise ConfirmError("confirm: every configuration failed to train; see confirm.parquet")
    winner = alive[0] if len(alive) == 1 else (state.best or alive[0])
    chosen = by_name[winner]
    ok = {s: c for s, c in costs[winner].items() if c is not None}
    matrix = np.stack([ok[s] for s in sorted(ok)])
    group = references.for_config(chosen.run_config(spec))
    frames = group["frames"]
    oracle_costs = frames["oracle"]["cost"].to_numpy(float) if "oracle" in frames else None
    summary = seeds_days_interval(matrix, oracle_costs, confidence=confirm.confidence)
    mpc = spec.evaluation.mpc
    mpc_frame = frames.get(mpc_policy_name(mpc)) if mpc else None
    mpc_summary = (
        seeds_days_interval(matrix, mpc_frame["cost"].to_numpy(float), confirm.confidence)
        if mpc_frame is not None
        else None
    )
    baselines = {}
    for name, frame in frames.items():
        costs_by_day = frame["cost"].to_numpy(float)
        mean, low, high = mean_interval(costs_by_day, confirm.confidence)
        # The recommended configuration against this baseline, paired by day (each seed's
        # days against the baseline's same days): negative means the learned policy is cheaper.
        versus = paired_difference(
            np.tile(costs_by_day, (matrix.shape[0], 1)), matrix, confidence=confirm.confidence
        )
        baselines[name] = {
            "daily_cost": mean,
            "low": low,
            "high": high,
            "recommended_minus": {"difference": versus[0], "low": versus[1], "high": versus[2]},
        }
    comparisons: list[dict[str, Any]] = []
    for other in candidates:
        if other.name == winner:
            continue
        pair = common_seed_matrices(costs[winner], costs.get(other.name, {}))
        if pair is None:
            comparisons.append({"name": other.name, "origin": other.origin, "verdict": "failed"})
            continue
        comparison = compare(*pair, other.name, winner, race_rules(confirm))
        comparisons.append(
            {
                "name": other.name,
                "origin": other.origin,
                "params": other.params,
                "seeds": comparison.seeds,
                "difference": comparison.difference,
                "low": comparison.low,
                "high": comparison.high,
                "verdict": SEPARATED.get(comparison.verdict, comparison.verdict),
            }
        )
    factors = _factor_statements(candidates, costs, confirm)
    winner_rows = [r for r in rows if r["candidate"] == winner and not r.get("error")]
    confirmed_val = [float(r["val_objective"]) for r in winner_rows]
    from tune_grid.stats import iqm

    answer = {
        "experiment": spec.experiment,
        "metric": spec.metric,
        "split": SPLIT,
        "recommended": {**asdict(chosen), "run_config": chosen.run_config(spec)},
        "seeds": sorted(ok),
        "days": int(matrix.shape[1]),
        "confidence": confirm.confidence,
        "tolerance": confirm.tolerance,
        "test_cost": summary,
        "mpc_gap": mpc_summary,
        "baselines": baselines,
        "alternatives": comparisons,
        "factors": factors,
        "winners_curse": {
            "search_value": chosen.search_value,
            "confirmed_iqm": iqm(confirmed_val),
            "confirmed_values": confirmed_val,
        },
        "stop_reason": state.stop_reason,
        "rounds": len(state.history),
        "command": train_command(spec, chosen),
        "checkpoints": [r["checkpoint_path"] for r in winner_rows],
    }
    return answer


def _factor_statements(
    candidates: Sequence[Candidate],
    costs: Mapping[str, Mapping[int, np.ndarray | None]],
    confirm: ConfirmSettings,
) -> list[dict[str, Any]]:
    base = candidates[0]
    out = []
    for variant in candidates:
        if variant.factor is None:
            continue
        pair = common_seed_matrices(costs.get(base.name, {}), costs.get(variant.name, {}))
        entry: dict[str, Any] = {
            "factor": variant.factor,
            "value": variant.params[variant.factor],
            "base_value": base.params[variant.factor],
            "name": variant.name,
        }
        if pair is None:
            entry["verdict"] = "failed"
        else:
            comparison = compare(*pair, variant.name, base.name, race_rules(confirm))
            entry.update(
                seeds=comparison.seeds,
                difference=comparison.difference,
                low=comparison.low,
                high=comparison.high,
                verdict="separated" if comparison.verdict in SEPARATED else "not separated",
            )
        out.append(entry)
    return out


def train_command(spec: SpaceFile, candidate: Candidate) -> str:
    """``tune-grid train`` with the configuration's keys (those that differ from RunConfig's
    defaults, the seed left to the user) at the search's budget."""
    from tune_grid.config import command_line_flags

    config = {k: v for k, v in candidate.run_config(spec).items() if k != "seed"}
    parts = ["tune-grid train", *command_line_flags(config)]
    if "env_steps" in spec.stop:
        parts.append(f"--env-steps {int(spec.stop['env_steps'])} --iterations 100000")
    elif "training_iteration" in spec.stop:
        parts.append(f"--iterations {int(spec.stop['training_iteration'])}")
    return " ".join(parts)
