"""``tune-grid bench search --replay TABLE``: searchers and schedulers replayed on recorded curves.

A replay table holds learning curves recorded by a real search
(``search_spaces/replay_table.yaml``): one row per configuration x seed x validation point, with
the validation objective and the seconds that seed had trained. A replayed search drives the
arm's own Ray Tune searcher and scheduler objects (built by their registry entries, exactly as a
search builds them) on a simulated clock: up to ``concurrent`` trials run at once; each snaps its
sampled values to the nearest recorded configuration, picks one of its recorded seeds, and
"reports" that seed's recorded points at the recorded training seconds since it started. The
searcher gets ``suggest``/``on_trial_result``/``on_trial_complete`` and the scheduler
``on_trial_add``/``on_trial_result``/``on_trial_complete`` in clock order, as Tune's controller
calls them, so ASHA stops trials at its rungs and model-based searchers suggest from the
results that would have been in at that moment: asynchrony as the recorded durations make it.

Why not Tune's controller itself: through ``Tuner.fit`` a replayed search of 16 trials costs
about 11 s here (Tune's per-search setup and event loop, with trials that take no time), so 50
repetitions of 10 arms would take 1.5 hours, and concurrent trials' results arrive in whatever
order the event loop sees them, so a repetition cannot be replayed exactly. On the simulated
clock a search takes well under a second and a seed replays the same trace. Random and grid
search sample with Tune's own variant generator (``generate_variants``, what Tune's
``BasicVariantGenerator`` runs). PBT is not replayed: a clone continues another trial's weights,
which no recorded curve holds.

Snapping: a numeric key goes to the nearest recorded value (in log space for a key searched on a
log scale), a categorical key must match. The seed of a trial is drawn from the recorded seeds by
the repetition's seed and the trial's index, so a repetition replays the same trace twice.

Per arm the benchmark reports, over repetitions, the env steps (all trials together) and the
recorded training seconds until the search's best-so-far first reaches each target level, as
medians with bootstrap intervals, and P(the arm needs fewer env steps than random+FIFO).

"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tune_grid.errors import TuneGridError

REQUIRED = ("config", "seed", "env_steps", "objective", "time_s")
LEVELS_METADATA = b"tune_grid.reference_levels"
"""Parquet metadata key of a written table: the rule-based and do-nothing baselines' (and the
oracle's) mean validation objective on the days the curves were validated on, as JSON."""
SHIPPED_TABLE = Path(__file__).resolve().parents[1] / "data" / "replay_table.parquet"
"""The table recorded with ``search_spaces/replay_table.yaml`` (docs/search.md)."""
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


def search_levels(results_dir: str | Path) -> dict[str, float]:
    """The reference levels of a search's validation days (:data:`LEVELS_METADATA`)."""
    from tune_grid.bench.search import reference_levels
    from tune_grid.search.run.tuner import load_saved_spec

    spec = load_saved_spec(Path(results_dir))
    if spec is None:
        raise ReplayError(f"{results_dir}: no search.json, so no validation days to level on")
    return reference_levels(spec)[1]


def write_table(results_dir: str | Path, out: str | Path) -> Path:
    """Write a finished search's replay table to ``out`` (Parquet), with its reference levels."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = table_from_search(results_dir)
    check_table(table, str(results_dir))
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    levels = json.dumps(search_levels(results_dir), sort_keys=True).encode()
    arrow = arrow.replace_schema_metadata(
        {**(arrow.schema.metadata or {}), LEVELS_METADATA: levels}
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(arrow, out, compression="zstd")
    return out


def read_table(path: str | Path) -> pd.DataFrame:
    """Read and check a replay table (a Parquet file, or a search's results folder)."""
    return read_table_and_levels(path)[0]


def read_table_and_levels(path: str | Path) -> tuple[pd.DataFrame, dict[str, float]]:
    """A replay table and its reference levels (empty when the file has none); ``shipped`` is
    :data:`SHIPPED_TABLE`."""
    import json

    import pyarrow.parquet as pq

    path = SHIPPED_TABLE if str(path) == "shipped" else Path(path)
    levels: dict[str, float] = {}
    if path.is_dir():
        try:
            table = table_from_search(path)
        except TuneGridError as exc:
            raise ReplayError(f"{path}: not a finished search to replay ({exc})") from None
        if (path / "search.json").exists():
            levels = search_levels(path)
    else:
        if not path.exists():
            raise ReplayError(f"{path}: no such replay table (a Parquet file or a results folder)")
        try:
            table = pd.read_parquet(path)
            metadata = pq.read_schema(path).metadata or {}
        except Exception as exc:  # noqa: BLE001 - any unreadable file is one line
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ReplayError(f"{path}: not a readable Parquet file ({first})") from None
        if LEVELS_METADATA in metadata:
            levels = {k: float(v) for k, v in json.loads(metadata[LEVELS_METADATA]).items()}
    check_table(table, str(path))
    return table, levels


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


# --------------------------------------------------------------------------- arms and runs
@dataclass(frozen=True)
class Arm:
    name: str
    searcher: dict[str, Any]
    scheduler: dict[str, Any]


def default_arms(
    stop: int, grace: int, reduction_factor: int = 2, n_startup_trials: int = 4
) -> list[Arm]:
    """random+FIFO (the reference), random+ASHA, and each model-based searcher with ASHA and
    FIFO; ASHA in env steps with rungs grace x reduction_factor^k."""
    asha = {"type": "asha", "time_attr": "env_steps", "max_t": stop, "grace_period": grace,
            "reduction_factor": reduction_factor}  # fmt: skip
    fifo = {"type": "fifo"}
    arms = [Arm("random_fifo", {"algorithm": "random"}, fifo)]
    arms.append(Arm("random_asha", {"algorithm": "random"}, asha))
    for name in ("optuna", "optuna_gp", "optuna_cmaes", "nevergrad"):
        options = {"n_startup_trials": n_startup_trials} if name.startswith("optuna") else {}
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


def _space_file(arm: Arm, recorded: Recorded, num_samples: int, stop: int, seed: int) -> Any:
    from tune_grid.search.spec.space_file import parse_space

    return parse_space(
        {
            "experiment": f"replay_{arm.name}_{seed}",
            "space": recorded.space(),
            "search": {**arm.searcher, "seed": seed},
            "scheduler": arm.scheduler,
            "num_samples": num_samples,
            "stop": {"env_steps": stop},
            "validation": {"oracle": False},
            "evaluation": {"enabled": False},
        }
    )


@dataclass
class _Trial:
    """What Tune's schedulers read of a trial."""

    trial_id: str
    config: dict[str, Any] = field(default_factory=dict)


class _Variants:
    """Random and grid search as Tune's BasicVariantGenerator runs them (``generate_variants``
    over the param space, repeated ``num_samples`` times), behind the Searcher calls."""

    def __init__(self, space: dict[str, Any], seed: int, repeats: int) -> None:
        from ray.tune.search.variant_generator import generate_variants

        rng = np.random.RandomState(seed)
        self._configs = iter(
            [
                config
                for _ in range(repeats)
                for _, config in generate_variants(space, random_state=rng)
            ]
        )

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        return next(self._configs, None)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        pass

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None) -> None:
        pass


def _searcher(spec: Any, storage_url: str) -> Any:
    from ray.tune.search import Searcher

    from tune_grid.search.spec.spaces import tune_param_space

    if not spec.search.kind.holds_space and spec.search.algorithm in ("random", "grid"):
        repeats = spec.num_samples if not spec.search.kind.grid else 1
        return _Variants(tune_param_space(spec), spec.search.seed, repeats)
    searcher = spec.search.kind.build(spec, storage_url)
    if not isinstance(searcher, Searcher):
        raise ReplayError(f"searcher {spec.search.algorithm}: not a Tune Searcher, cannot replay")
    return searcher


def replay_search(
    arm: Arm,
    recorded: Recorded,
    repetition: int,
    *,
    num_samples: int,
    concurrent: int,
    stop: int,
    seed: int,
) -> ReplayTrace:
    """One search of ``arm`` replayed on the simulated clock (module doc)."""
    import heapq

    from ray.tune.schedulers import TrialScheduler

    spec = _space_file(arm, recorded, num_samples, stop, seed)
    np.random.seed(seed)  # Tune's ASHA draws its bracket from numpy's global generator
    searcher = _searcher(spec, "sqlite:///:memory:")
    scheduler = spec.scheduler.kind.build(spec)
    scheduler.set_search_properties("objective", "min")
    trace = ReplayTrace(arm.name, repetition)
    totals: dict[str, tuple[int, float]] = {}
    running: dict[str, tuple[_Trial, tuple[np.ndarray, np.ndarray, np.ndarray], float]] = {}
    events: list[tuple[float, str, int]] = []
    count = 0

    def start(now: float) -> bool:
        nonlocal count
        trial_id = f"t{count:05d}"
        config = searcher.suggest(trial_id)
        if not isinstance(config, dict):
            return False
        count += 1
        trial = _Trial(trial_id, config)
        scheduler.on_trial_add(None, trial)
        snapped = recorded.snap(config)
        curve = recorded.curves[(snapped, recorded.seed_for(snapped, seed, count))]
        running[trial_id] = (trial, curve, now)
        heapq.heappush(events, (now + float(curve[2][0]), trial_id, 0))
        return True

    def fill(now: float) -> None:
        while count < num_samples and len(running) < concurrent and start(now):
            pass

    fill(0.0)
    while events:
        now, trial_id, i = heapq.heappop(events)
        trial, (steps, objective, seconds), began = running[trial_id]
        result = {
            "objective": float(objective[i]),
            "env_steps": int(steps[i]),
            "time_s": float(seconds[i]),
            "training_iteration": i + 1,
        }
        totals[trial_id] = (int(steps[i]), float(seconds[i]))
        best = min(trace.best[-1], result["objective"]) if trace.best else result["objective"]
        trace.env_steps.append(sum(s for s, _ in totals.values()))
        trace.seconds.append(sum(t for _, t in totals.values()))
        trace.best.append(float(best))
        searcher.on_trial_result(trial_id, result)
        action = scheduler.on_trial_result(None, trial, result)
        done = i + 1 >= len(steps) or steps[i] >= stop or steps[i + 1] > stop
        if action == TrialScheduler.STOP or done:
            searcher.on_trial_complete(trial_id, result)
            scheduler.on_trial_complete(None, trial, result)
            del running[trial_id]
            fill(now)
        else:
            heapq.heappush(events, (began + float(seconds[i + 1]), trial_id, i + 1))
    return trace


# --------------------------------------------------------------------------- the benchmark
@dataclass
class ReplayOptions:
    table: str
    repetitions: int = 50
    num_samples: int = 16
    concurrent: int = 4
    grace: int | None = None
    reduction_factor: int = 2
    n_startup_trials: int = 4
    target: float | None = None
    """A target level (``--target``), besides the table's reference and quantile levels."""
    arms: tuple[str, ...] | None = None
    seed: int = 0
    levels: dict[str, float] = field(default_factory=dict)
    """Level name -> target objective; default: the table's own quantiles (see levels_of)."""


def levels_of(recorded: Recorded, reference: Mapping[str, float] | None = None) -> dict[str, float]:
    """Target levels: the rule-based baseline's validation objective (when the table carries its
    reference levels: the issue's goal is read there), the median final objective of all recorded
    curves (an average configuration's end point), and their 10th and 2nd percentiles (near the
    best)."""
    finals = np.array([curve[1][-1] for curve in recorded.curves.values()])
    levels = {}
    if reference and "rule_based" in reference:
        levels["rule_based"] = float(reference["rule_based"])
    levels.update(
        {
            "median_final": float(np.percentile(finals, 50)),
            "top_10pct": float(np.percentile(finals, 10)),
            "top_2pct": float(np.percentile(finals, 2)),
        }
    )
    return levels


def run_replay_benchmark(
    options: ReplayOptions, print_fn: Callable[[str], None] = print
) -> dict[str, Any]:
    """Replay every arm ``repetitions`` times; print and return the per-arm table."""
    for name in (
        "repetitions",
        "num_samples",
        "concurrent",
        "reduction_factor",
        "n_startup_trials",
    ):
        if getattr(options, name) < 1:
            flag = "--" + name.replace("_", "-")
            raise ReplayError(f"{flag} must be >= 1, got {getattr(options, name)}")

    table, reference = read_table_and_levels(options.table)
    recorded = Recorded.of(table)
    stop = max(int(c[0][-1]) for c in recorded.curves.values())
    first = min(int(c[0][0]) for c in recorded.curves.values())
    grace = options.grace or max(first, stop // 4)
    if options.reduction_factor < 2:
        raise ReplayError(f"--reduction-factor must be >= 2, got {options.reduction_factor}")
    arms = default_arms(stop, grace, options.reduction_factor, options.n_startup_trials)
    if options.arms:
        known = {a.name: a for a in arms}
        unknown = [a for a in options.arms if a not in known]
        if unknown:
            raise ReplayError(f"--arms {unknown[0]!r}: allowed: {', '.join(known)}")
        arms = [known[a] for a in options.arms]
    levels = options.levels or levels_of(recorded, reference)
    if options.target is not None:
        levels = {"target": float(options.target), **levels}
    print_fn(
        f"replay: {len(recorded.seeds)} recorded configurations x "
        f"{max(len(s) for s in recorded.seeds.values())} seeds, curves to {stop:,} env steps; "
        f"{len(arms)} arms x {options.repetitions} repetitions of {options.num_samples} trials "
        f"({options.concurrent} at once), ASHA grace {grace:,} reduction factor "
        f"{options.reduction_factor}, Optuna n_startup_trials {options.n_startup_trials}"
    )
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    traces: list[ReplayTrace] = []
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
                )
            )
        print_fn(
            f"  {arm.name}: {options.repetitions} repetitions in "
            f"{time.perf_counter() - start:.1f} s"
        )
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


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tune_grid.bench.replay RESULTS_DIR [OUT]``: write a finished search's replay
    table (default: the shipped one, :data:`SHIPPED_TABLE`)."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (1, 2):
        print("usage: python -m tune_grid.bench.replay RESULTS_DIR [OUT.parquet]", file=sys.stderr)
        return 2
    try:
        out = write_table(args[0], args[1] if len(args) == 2 else SHIPPED_TABLE)
    except TuneGridError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
