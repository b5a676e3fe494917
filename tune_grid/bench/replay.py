"""``tune-grid bench search --replay TABLE``: searchers and schedulers replayed on recorded curves.

A replay table holds learning curves recorded by a real search
(``search_spaces/replay_table.yaml``): one row per configuration x seed x validation point, with
the validation objective and the seconds that seed had trained. A replayed search runs through
Ray Tune itself, with the arm's searcher and scheduler: each trial snaps its sampled values to
the nearest recorded configuration, picks one of its recorded seeds, and "trains" by reporting
that seed's next recorded point. ASHA and the searchers therefore see what they would have
seen, with Tune's own concurrency and asynchrony, at a small fraction of the cost.

Snapping: a numeric key goes to the nearest recorded value (in log space for a key searched on a
log scale), a categorical key must match. The seed of a trial is drawn from the recorded seeds by
the repetition's seed and the trial's index, so a repetition replays the same trace twice.

Per arm the benchmark reports, over repetitions, the env steps (all trials together) and the
recorded training seconds until the search's best-so-far first reaches each target level, as
medians with bootstrap intervals, and P(the arm needs fewer env steps than random+FIFO).

Status (issue 28, in progress): through Tune a replayed search costs about 11 s here (Tune's
per-search setup and per-result loop, not the replay), so 50 repetitions of 10 arms take about
1.5 hours, not the 30 minutes asked; and Tune delivers concurrent trials' results in whatever
order its event loop sees them, so a repetition's trace is not exactly reproducible with more
than one trial at a time. The planned next step drives the same Tune searcher and scheduler
objects on a simulated clock (each trial's reports at its recorded seconds). PBT is not
replayed: a clone continues another trial's weights, which no recorded curve holds.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tune_grid.errors import TuneGridError

REQUIRED = ("config", "seed", "env_steps", "objective", "time_s")
"""Columns every replay table has, besides one ``param_<key>`` column per searched key."""
PARAM = "param_"
REFERENCE_ARM = "random_fifo"


class ReplayError(TuneGridError, ValueError):
    """A replay table is missing, unreadable or malformed; the message names what and where."""


# --------------------------------------------------------------------------- the table
def table_from_search(results_dir: str | Path) -> pd.DataFrame:
    """The replay table of a finished search: every trial's per-seed validation points
    (``objective_per_seed`` at each new ``val_env_steps``) and its training seconds per seed."""
    from tune_grid.results.schema import ITERATIONS_FILE, TRIALS_FILE, read_results

    results_dir = Path(results_dir)
    trials = read_results(results_dir / TRIALS_FILE, "trials").to_pandas()
    iterations = read_results(results_dir / ITERATIONS_FILE, "iterations").to_pandas()
    params = [c for c in trials.columns if c.startswith(PARAM) and trials[c].nunique() > 1]
    rows = []
    for config, trial in enumerate(trials.sort_values("trial_id").itertuples(index=False)):
        mine = iterations[iterations["trial_id"] == trial.trial_id].sort_values("iteration")
        mine = mine.drop_duplicates("val_env_steps")
        seeds = list(trial.seeds)
        for point in mine.itertuples(index=False):
            values = list(point.objective_per_seed)
            for k, seed in enumerate(seeds):
                rows.append(
                    {
                        "config": config,
                        "trial_id": trial.trial_id,
                        "seed": int(seed),
                        "env_steps": int(point.val_env_steps),
                        "objective": float(values[k]),
                        "time_s": float(point.time_total_s) / len(seeds),
                        **{p: getattr(trial, p) for p in params},
                    }
                )
    return pd.DataFrame(rows)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read and check a replay table (a Parquet file, or a search's results folder)."""
    path = Path(path)
    if path.is_dir():
        try:
            table = table_from_search(path)
        except TuneGridError as exc:
            raise ReplayError(f"{path}: not a finished search to replay ({exc})") from None
    else:
        if not path.exists():
            raise ReplayError(f"{path}: no such replay table (a Parquet file or a results folder)")
        try:
            table = pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is one line
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ReplayError(f"{path}: not a readable Parquet file ({first})") from None
    check_table(table, str(path))
    return table


def check_table(table: pd.DataFrame, source: str) -> None:
    """One clear line for a missing column, no searched key, or a non-monotone env-step axis."""
    for column in REQUIRED:
        if column not in table.columns:
            raise ReplayError(
                f"{source}: missing column {column!r}; a replay table has "
                f"{', '.join(REQUIRED)} and one {PARAM}<key> column per searched key"
            )
    if not [c for c in table.columns if c.startswith(PARAM)]:
        raise ReplayError(f"{source}: no {PARAM}<key> column: nothing was searched")
    if table.empty:
        raise ReplayError(f"{source}: the table has no rows")
    for (config, seed), curve in table.groupby(["config", "seed"], sort=False):
        steps = curve["env_steps"].to_numpy()
        if np.any(np.diff(steps) <= 0):
            at = int(np.argmax(np.diff(steps) <= 0)) + 1
            raise ReplayError(
                f"{source}: config {config} seed {seed}: env_steps must increase along the "
                f"curve, but row {at} has {int(steps[at])} after {int(steps[at - 1])}"
            )
        if not np.all(np.isfinite(curve["objective"].to_numpy(float))):
            raise ReplayError(f"{source}: config {config} seed {seed}: non-finite objective")


@dataclass(frozen=True)
class Recorded:
    """The replay table in the form trials read: curves by (config, seed), and the values."""

    params: dict[str, list[Any]]
    """Key -> each config's value (index = config id)."""
    log_keys: frozenset[str]
    curves: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]]
    """(config, seed) -> (env_steps, objective, time_s)."""
    seeds: dict[int, list[int]]

    @classmethod
    def of(cls, table: pd.DataFrame) -> Recorded:
        keys = [c.removeprefix(PARAM) for c in table.columns if c.startswith(PARAM)]
        configs = table.drop_duplicates("config").sort_values("config")
        params = {k: [_plain(v) for v in configs[PARAM + k]] for k in keys}
        log_keys = frozenset(
            k
            for k, values in params.items()
            if _numeric(values) and min(values) > 0 and max(values) / min(values) >= 10
        )
        curves = {}
        seeds: dict[int, list[int]] = {}
        for (config, seed), curve in table.groupby(["config", "seed"]):
            curves[(int(config), int(seed))] = (
                curve["env_steps"].to_numpy(int),
                curve["objective"].to_numpy(float),
                curve["time_s"].to_numpy(float),
            )
            seeds.setdefault(int(config), []).append(int(seed))
        return cls(params, log_keys, curves, {c: sorted(s) for c, s in seeds.items()})

    def space(self) -> dict[str, dict[str, Any]]:
        """The search file's ``space`` over the recorded values: a numeric key with more than
        two values is a range (log scale when it spans a decade), the rest are choices."""
        out: dict[str, dict[str, Any]] = {}
        for key, values in self.params.items():
            distinct = sorted(set(values), key=str)
            if _numeric(distinct) and len(distinct) > 2 and not isinstance(distinct[0], bool):
                kind = "loguniform" if key in self.log_keys else "uniform"
                out[key] = {"type": kind, "low": min(distinct), "high": max(distinct)}
            else:
                out[key] = {"type": "choice", "values": sorted(set(values), key=str)}
        return out

    def snap(self, config: Mapping[str, Any]) -> int:
        """The recorded configuration nearest to ``config`` (categorical keys must match)."""
        best, best_distance = -1, math.inf
        for index in range(len(next(iter(self.params.values())))):
            distance = 0.0
            for key, values in self.params.items():
                a, b = config[key], values[index]
                if _numeric([a, b]) and not isinstance(a, bool):
                    x, y = (math.log(a), math.log(b)) if key in self.log_keys else (a, b)
                    distance += (x - y) ** 2
                elif str(a) != str(b):
                    distance += 1e12
            if distance < best_distance:
                best, best_distance = index, distance
        return best

    def seed_for(self, config: int, repetition_seed: int, sample: int) -> int:
        """One of the configuration's recorded seeds, fixed by the repetition and the sample."""
        seeds = self.seeds[config]
        rng = np.random.default_rng([repetition_seed, sample])
        return seeds[int(rng.integers(len(seeds)))]


def _config_hash(config: Mapping[str, Any]) -> int:
    """A stable integer of the sampled values (the same sample, the same recorded seed)."""
    import hashlib
    import json

    text = json.dumps({k: config[k] for k in sorted(config)}, default=str)
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


# --------------------------------------------------------------------------- a replayed trial
@dataclass(frozen=True)
class ReplaySettings:
    recorded: Recorded
    repetition_seed: int
    stop_env_steps: int


def replay_trial(config: dict[str, Any], settings: ReplaySettings) -> None:
    """Tune function trainable: report the snapped configuration's recorded curve point by point
    (``objective``, ``env_steps``, ``time_s``), as a real trial would have."""
    from ray import tune

    recorded = settings.recorded
    snapped = recorded.snap(config)
    seed = recorded.seed_for(snapped, settings.repetition_seed, _config_hash(config))
    steps, objective, seconds = recorded.curves[(snapped, seed)]
    for i, (s, v, t) in enumerate(zip(steps, objective, seconds, strict=True), 1):
        if s > settings.stop_env_steps:
            return
        tune.report(
            {
                "objective": float(v),
                "env_steps": int(s),
                "time_s": float(t),
                "training_iteration_replayed": i,
                "recorded_config": snapped,
                "recorded_seed": seed,
            }
        )


# --------------------------------------------------------------------------- arms and runs
@dataclass(frozen=True)
class Arm:
    name: str
    searcher: dict[str, Any]
    scheduler: dict[str, Any]


def default_arms(stop: int, grace: int) -> list[Arm]:
    """random+FIFO (the reference), random+ASHA, and each model-based searcher with ASHA and
    FIFO; ASHA in env steps with rungs grace x 2^k."""
    asha = {"type": "asha", "time_attr": "env_steps", "max_t": stop, "grace_period": grace,
            "reduction_factor": 2}  # fmt: skip
    fifo = {"type": "fifo"}
    arms = [Arm("random_fifo", {"algorithm": "random"}, fifo)]
    arms.append(Arm("random_asha", {"algorithm": "random"}, asha))
    for name in ("optuna", "optuna_gp", "optuna_cmaes", "nevergrad"):
        options = {"n_startup_trials": 4} if name.startswith("optuna") else {}
        arms.append(Arm(f"{name}_fifo", {"algorithm": name, **options}, fifo))
        arms.append(Arm(f"{name}_asha", {"algorithm": name, **options}, asha))
    return arms


@dataclass
class ReplayTrace:
    """One replayed search: each result in the order Tune received it."""

    arm: str
    repetition: int
    env_steps: list[int] = field(default_factory=list)
    """Cumulative env steps of all trials so far."""
    seconds: list[float] = field(default_factory=list)
    """Cumulative recorded training seconds of all trials so far."""
    best: list[float] = field(default_factory=list)
    """Best objective so far."""

    def reach(self, level: float) -> tuple[float, float]:
        """(env steps, seconds) when the best-so-far first reached ``level`` (inf: never)."""
        for steps, seconds, best in zip(self.env_steps, self.seconds, self.best, strict=True):
            if best <= level:
                return float(steps), float(seconds)
        return math.inf, math.inf


def _space_file(arm: Arm, recorded: Recorded, num_samples: int, concurrent: int, stop: int,
                seed: int) -> Any:  # fmt: skip
    from tune_grid.search.space_file import parse_space

    return parse_space(
        {
            "experiment": f"replay_{arm.name}_{seed}",
            "space": recorded.space(),
            "search": {**arm.searcher, "seed": seed},
            "scheduler": arm.scheduler,
            "num_samples": num_samples,
            "max_concurrent_trials": concurrent,
            "stop": {"env_steps": stop},
            "validation": {"oracle": False},
            "evaluation": {"enabled": False},
        }
    )


def replay_search(
    arm: Arm,
    recorded: Recorded,
    repetition: int,
    *,
    num_samples: int,
    concurrent: int,
    stop: int,
    seed: int,
    storage: Path,
) -> ReplayTrace:
    """One search of ``arm`` replayed through Ray Tune (Ray must be running)."""
    from ray import tune

    from tune_grid.search.spaces import tune_param_space

    spec = _space_file(arm, recorded, num_samples, concurrent, stop, seed)
    trace = ReplayTrace(arm.name, repetition)
    totals: dict[str, tuple[int, float]] = {}

    class Recorder(tune.Callback):
        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                            **info: Any) -> None:  # fmt: skip
            totals[trial.trial_id] = (int(result["env_steps"]), float(result["time_s"]))
            best = min(trace.best[-1], result["objective"]) if trace.best else result["objective"]
            trace.env_steps.append(sum(s for s, _ in totals.values()))
            trace.seconds.append(sum(t for _, t in totals.values()))
            trace.best.append(float(best))

    space = tune_param_space(spec)
    if spec.search.kind.holds_space:
        space = {k: v for k, v in space.items() if k not in spec.space}
    settings = ReplaySettings(recorded, seed, stop)
    trainable = tune.with_resources(
        tune.with_parameters(replay_trial, settings=settings), {"cpu": 1.0 / concurrent}
    )
    optuna_url = f"sqlite:///{storage / f'{spec.experiment}.db'}"
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            metric="objective",
            mode="min",
            search_alg=spec.search.kind.build(spec, optuna_url),
            scheduler=spec.scheduler.kind.build(spec),
            num_samples=num_samples,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=spec.experiment,
            storage_path=str(storage),
            callbacks=[Recorder()],
            verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )
    tuner.fit()
    return trace


# --------------------------------------------------------------------------- the benchmark
@dataclass
class ReplayOptions:
    table: str
    repetitions: int = 50
    num_samples: int = 16
    concurrent: int = 4
    grace: int | None = None
    arms: tuple[str, ...] | None = None
    seed: int = 0
    levels: dict[str, float] = field(default_factory=dict)
    """Level name -> target objective; default: the table's own quantiles (see levels_of)."""
    num_cpus: int | None = None


def levels_of(recorded: Recorded) -> dict[str, float]:
    """Target levels read from the table: the median final objective of all recorded curves
    (an average configuration's end point), and the 10th and 2nd percentiles (near the best)."""
    finals = np.array([curve[1][-1] for curve in recorded.curves.values()])
    return {
        "median_final": float(np.percentile(finals, 50)),
        "top_10pct": float(np.percentile(finals, 10)),
        "top_2pct": float(np.percentile(finals, 2)),
    }


def run_replay_benchmark(
    options: ReplayOptions, print_fn: Callable[[str], None] = print
) -> dict[str, Any]:
    """Replay every arm ``repetitions`` times; print and return the per-arm table."""
    import ray

    recorded = Recorded.of(read_table(options.table))
    stop = max(int(c[0][-1]) for c in recorded.curves.values())
    first = min(int(c[0][0]) for c in recorded.curves.values())
    grace = options.grace or max(first, stop // 4)
    arms = default_arms(stop, grace)
    if options.arms:
        known = {a.name: a for a in arms}
        unknown = [a for a in options.arms if a not in known]
        if unknown:
            raise ReplayError(f"--arms {unknown[0]!r}: allowed: {', '.join(known)}")
        arms = [known[a] for a in options.arms]
    levels = options.levels or levels_of(recorded)
    print_fn(
        f"replay: {len(recorded.seeds)} recorded configurations x "
        f"{max(len(s) for s in recorded.seeds.values())} seeds, curves to {stop:,} env steps; "
        f"{len(arms)} arms x {options.repetitions} repetitions of {options.num_samples} trials "
        f"({options.concurrent} at once), ASHA grace {grace:,}"
    )
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=options.num_cpus, include_dashboard=False, log_to_driver=False,
                 logging_level=40)  # fmt: skip (logging.ERROR)
    traces: list[ReplayTrace] = []
    try:
        with tempfile.TemporaryDirectory(prefix="tune_grid_replay_") as tmp:
            for arm in arms:
                start = time.perf_counter()
                for r in range(options.repetitions):
                    traces.append(
                        replay_search(
                            arm,
                            recorded,
                            r,
                            num_samples=options.num_samples,
                            concurrent=options.concurrent,
                            stop=stop,
                            seed=options.seed + r,
                            storage=Path(tmp),
                        )
                    )
                print_fn(
                    f"  {arm.name}: {options.repetitions} repetitions in "
                    f"{time.perf_counter() - start:.0f} s"
                )
    finally:
        if started:
            ray.shutdown()
    table = summarize_traces(traces, levels)
    print_fn(format_table(table, levels))
    return {"traces": traces, "table": table, "levels": levels}


def _bootstrap_median(values: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    from tune_grid.stats import percentile_interval

    rng = np.random.default_rng(seed)
    samples = np.median(values[rng.integers(0, len(values), (2000, len(values)))], axis=1)
    low, high = percentile_interval(samples)
    return float(np.median(values)), low, high


def summarize_traces(
    traces: Sequence[ReplayTrace], levels: Mapping[str, float]
) -> list[dict[str, Any]]:
    """Per arm and level: median env steps and seconds to reach it [95 % bootstrap CI], the
    share of repetitions that reached it, and P(fewer env steps than random+FIFO)."""
    from tune_grid.stats import probability_of_improvement

    arms = list(dict.fromkeys(t.arm for t in traces))
    rows = []
    for level_name, level in levels.items():
        reference = np.array([t.reach(level)[0] for t in traces if t.arm == REFERENCE_ARM])
        for arm in arms:
            reached = [t.reach(level) for t in traces if t.arm == arm]
            steps = np.array([r[0] for r in reached])
            seconds = np.array([r[1] for r in reached])
            median, low, high = _bootstrap_median(steps)
            row = {
                "level": level_name,
                "target": level,
                "arm": arm,
                "repetitions": len(reached),
                "reached": float(np.isfinite(steps).mean()),
                "env_steps": median,
                "env_steps_low": low,
                "env_steps_high": high,
                "seconds": _bootstrap_median(seconds)[0],
                "p_beats_random_fifo": (
                    probability_of_improvement(-steps, -reference) if reference.size else math.nan
                ),
            }
            rows.append(row)
    return rows


def format_table(rows: Sequence[Mapping[str, Any]], levels: Mapping[str, float]) -> str:
    lines = []
    for level_name, level in levels.items():
        lines.append(f"level {level_name}: objective <= {level:,.1f} $/day")
        lines.append(
            f"  {'arm':<20} {'reached':>8} {'env steps (median [95% CI])':>34} "
            f"{'seconds':>9} {'P(beats random_fifo)':>21}"
        )
        for row in (r for r in rows if r["level"] == level_name):
            low, high = _k(row["env_steps_low"]), _k(row["env_steps_high"])
            interval = f"{_k(row['env_steps'])} [{low}, {high}]"
            lines.append(
                f"  {row['arm']:<20} {row['reached']:>8.0%} {interval:>34} "
                f"{row['seconds']:>9.0f} {row['p_beats_random_fifo']:>21.2f}"
            )
    return "\n".join(lines)


def _k(value: float) -> str:
    return "never" if not math.isfinite(value) else f"{value / 1000:,.0f}k"
