"""``tune-grid bench driver``: what the search driver spends per result as the search grows.

A synthetic search on a local Ray: ``trials`` trials of a trivial function trainable that reports
the real result keys of a ``seeds``-seed trial (built by the real trainable's
:func:`~tune_grid.search.run.trainable.aggregate`) for ``iterations`` iterations, with a small
checkpoint where the real trainable makes one (at each validation, every ``eval_interval`` env
steps of the space file, and at the last iteration; every iteration with
``--checkpoint-every-iteration``, as under PBT; Tune's checkpoint bookkeeping, 2 kept), a
configuration sampled from ``search_spaces/full.yaml`` (random search, FIFO), ``concurrency`` at
once (that many logical CPUs, one per trial), the Tune settings of ``tune-grid search``
(experiment state saved at the ``export.flush_interval_s`` of the space file, and whenever a
trial wrote 2 checkpoints since the last save) and the real :class:`ParquetExportCallback`.

In the driver process, the benchmark times (wall clock, ``time.perf_counter``):

* **export**: every hook of the Parquet export callback: record updates, the
  ``tune_state.snapshot`` copy and the Parquet writes;
* **tune**: Tune's other callbacks (its JSON/CSV/TensorBoard loggers, the progress reporter)
  and Tune's own experiment-state save of every step (``TuneController.save_to_dir``);

and attributes them to the result being reported. It prints, per bin of ``bin_size`` results,
driver milliseconds per result (time spent in the bin / results in it; a bin includes the
flushes and merges that happen in it), the trials running and the driver's busy share (its time
in the bin over the bin's wall time), for each write mode side by side:

* ``parts``: the current export (append-only part files, time-based flush, bounded merging);
* ``rewrite``: the driver as it was: both files rewritten after every step with a result,
  Tune's state saved every step, Tune's automatic CSV and TensorBoard loggers on.
  Its cost grows with the search (a 300 x 200 search would take it hours), so its search stops
  after ``rewrite_results`` results; the table compares the two at the same result counts.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tune_grid.config import ConfigError, RunConfig
from tune_grid.results.export import SearchMeta
from tune_grid.results.parts import WRITE_MODES, write_mode
from tune_grid.results.schema import METRIC_NAMES

if TYPE_CHECKING:  # the callback imports Ray; the CLI builds this parser without it
    from tune_grid.search.run.callbacks import ParquetExportCallback

REPO_ROOT = Path(__file__).resolve().parents[2]
FULL_SPACE = REPO_ROOT / "search_spaces" / "full.yaml"


@dataclass(frozen=True)
class DriverBenchOptions:
    """Size of the synthetic search (defaults: ``search_spaces/full.yaml``'s)."""

    trials: int = 300
    iterations: int = 200
    concurrency: int = 32
    seeds: int = 3
    report_interval_s: float = 0.25
    """Pause of each trial between two reports."""
    checkpoint_every_iteration: bool = False
    """Checkpoint every result (as under PBT) instead of at each validation."""
    rewrite_results: int = 6000
    """The ``rewrite`` arm's search stops after this many results."""
    bin_size: int = 1000
    modes: tuple[str, ...] = ("rewrite", "parts")
    storage: str | None = None

    def validate(self) -> DriverBenchOptions:
        """Raise ConfigError naming the bad option and what is allowed."""
        for name in ("trials", "iterations", "concurrency", "seeds", "bin_size"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}"
                )
        if self.report_interval_s < 0:
            raise ConfigError(f"--report-interval must be >= 0, got {self.report_interval_s}")
        if self.rewrite_results < self.bin_size:
            raise ConfigError(
                f"--rewrite-results ({self.rewrite_results}) must be >= "
                f"--bin-size ({self.bin_size})"
            )
        unknown = [m for m in self.modes if m not in WRITE_MODES]
        if unknown or not self.modes:
            raise ConfigError(
                f"--modes: got {','.join(self.modes)}; allowed: {','.join(WRITE_MODES)}"
            )
        if self.trials * self.iterations < self.bin_size:
            raise ConfigError(
                f"--bin-size ({self.bin_size}) must be <= trials x iterations "
                f"({self.trials * self.iterations})"
            )
        return self


QUICK = DriverBenchOptions(
    trials=8, iterations=25, concurrency=4, report_interval_s=0.0, rewrite_results=100, bin_size=50
)
"""``--quick``: a tiny search that checks the benchmark end to end (not a measurement)."""


# --- the synthetic trainable (runs in Ray workers) ------------------------------------------------


@dataclass(frozen=True)
class SyntheticSettings:
    iterations: int
    seeds: int
    report_interval_s: float
    checkpoint_every_iteration: bool = False


def synthetic_trial(config: dict[str, Any], settings: SyntheticSettings) -> None:
    """Report ``iterations`` results with the real trainable's keys, checkpointing each one."""
    import json

    from ray import tune

    from tune_grid.results.trial_state import STATE_FILE
    from tune_grid.search.run.trainable import (
        aggregate,
        aggregate_validation,
        validates_now,
        with_objective,
    )

    rng = random.Random(str(tune.get_context().get_trial_id()))
    steps_per_iter = int(config.get("train_batch_size", 3840))
    eval_interval = int(config.get("eval_interval", RunConfig().eval_interval))
    validated_at: int | None = None
    total_s = 0.0
    for iteration in range(1, settings.iterations + 1):
        per_seed = []
        for _ in range(settings.seeds):
            metrics: dict[str, float] = {name: rng.uniform(-1.0, 1.0) for name in METRIC_NAMES}
            metrics["val_objective"] = rng.uniform(700.0, 1500.0)
            metrics.update(
                {
                    "env_steps": float(steps_per_iter * iteration),
                    "env_steps_this_iter": float(steps_per_iter),
                    "episodes": float(steps_per_iter // 24),
                    "timers/sample_s": rng.uniform(1.0, 1.2),
                    "timers/learn_s": rng.uniform(1.6, 2.0),
                }
            )
            per_seed.append(metrics)
        validation = aggregate_validation(per_seed, steps_per_iter * iteration)
        row = with_objective({**aggregate(per_seed), **validation}, "val_objective")
        total_s += 3.0
        row.update(
            iteration=iteration,
            env_steps_per_s=row["env_steps_this_iter"] / 3.0,
            trial_time_total_s=total_s,
            restores=0,
            reported_at=time.time(),
            seed=int(config.get("seed", 0)),
            num_seeds=settings.seeds,
            node_id="synthetic",
            node_ip="127.0.0.1",
        )
        env_steps = steps_per_iter * iteration
        # As the real trainable: a checkpoint at each validation only (every iteration with
        # a population scheduler, which --checkpoint-every-iteration stands for).
        if validates_now(
            env_steps,
            validated_at,
            eval_interval,
            final=iteration == settings.iterations,
            every_iteration=settings.checkpoint_every_iteration,
        ):
            validated_at = env_steps
            with tempfile.TemporaryDirectory(prefix="tune_grid_bench_ckpt_") as tmp:
                state = {"iteration": iteration, "env_steps": env_steps, "time_total_s": total_s}
                (Path(tmp) / STATE_FILE).write_text(json.dumps(state))
                tune.report(row, checkpoint=tune.Checkpoint.from_directory(tmp))
        else:
            tune.report(row)
        if settings.report_interval_s:
            time.sleep(settings.report_interval_s)


# --- measuring in the driver --------------------------------------------------------------------


CATEGORIES = ("export", "callbacks", "state")
"""What the driver's time is spent on: the Parquet export callback; Tune's other callbacks;
Tune's experiment-state save."""


@dataclass
class DriverMeter:
    """Cumulative driver seconds by category, sampled at every reported result."""

    spent: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0.0))
    at_result: list[tuple[float, ...]] = field(default_factory=list)
    """The cumulative seconds of each category as each result arrived."""
    running: list[int] = field(default_factory=list)
    """Trials running as each result arrived (fewer at the search's end: time-based costs,
    such as Tune's periodic saves, then fall on fewer results)."""
    arrived_s: list[float] = field(default_factory=list)
    """Wall clock (``time.perf_counter``) as each result arrived."""
    saves: int = 0
    """Tune experiment-state saves."""
    at_last_step: tuple[float, ...] | None = None
    """The cumulative seconds at the end of the last controller step (before the final state
    save and export, which are the search's end, not a result's)."""
    last_step_s: float | None = None
    """Wall clock at the end of the last controller step."""

    def mark_step(self) -> None:
        self.at_last_step = self.totals()
        self.last_step_s = time.perf_counter()

    def totals(self) -> tuple[float, ...]:
        return tuple(self.spent[c] for c in CATEGORIES)

    def mark_result(self, running: int = 0) -> None:
        self.at_result.append(self.totals())
        self.arrived_s.append(time.perf_counter())
        self.running.append(running)

    def busy_share(self, start: int, stop: int) -> float:
        """The share of the wall time from result ``start+1`` to the next after ``stop`` that
        the driver spent in the measured categories (its load: time-based costs raise the cost
        per result when fewer trials report, not this)."""
        if stop > self.results or start < 0 or stop <= start:
            return math.nan
        last = stop < self.results
        began, ended = self.arrived_s[start], self.arrived_s[stop] if last else self.last_step_s
        after = self.at_result[stop] if last else self.at_last_step
        if ended is None or after is None or ended <= began:
            return math.nan
        return (sum(after) - sum(self.at_result[start])) / (ended - began)

    def mean_running(self, start: int, stop: int) -> float:
        """Mean trials running over results ``start+1 .. stop``."""
        window = self.running[start:stop]
        return sum(window) / len(window) if window else math.nan

    def end_s(self) -> float:
        """Driver seconds after the last controller step: the final save, merge and export."""
        return sum(self.totals()) - sum(self.at_last_step or self.totals())

    @property
    def results(self) -> int:
        return len(self.at_result)

    def per_result_ms(self, start: int, stop: int) -> dict[str, float]:
        """Driver ms per result by category over results ``start+1 .. stop`` (1-based)."""
        if stop > self.results or start < 0 or stop <= start:
            return dict.fromkeys(CATEGORIES, math.nan)
        # Result k is charged what the driver spent from its arrival to the next one; the first
        # bin also gets the setup before the first result.
        before = self.at_result[start] if start else (0.0,) * len(CATEGORIES)
        # Time up to the next result is spent on the ``stop``-th (its flush comes after it).
        after = self.at_result[stop] if stop < self.results else self.at_last_step
        after = after or self.totals()
        n = stop - start
        return {c: 1000 * (after[i] - before[i]) / n for i, c in enumerate(CATEGORIES)}


def timed_export_callback(meter: DriverMeter) -> type[ParquetExportCallback]:
    """A :class:`ParquetExportCallback` whose hooks add their wall time to ``meter.export_s``."""
    from tune_grid.search.run.callbacks import ParquetExportCallback

    def timed(name: str) -> Callable[..., None]:
        method = getattr(ParquetExportCallback, name)

        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
            start = time.perf_counter()
            try:
                method(self, *args, **kwargs)
            finally:
                meter.spent["export"] += time.perf_counter() - start
            if name == "on_trial_result":
                trials = args[1] if len(args) > 1 else kwargs.get("trials", [])
                meter.mark_result(sum(t.status == "RUNNING" for t in trials))

        return wrapper

    hooks = (
        "setup",
        "on_step_end",
        "on_trial_start",
        "on_trial_result",
        "on_trial_complete",
        "on_trial_error",
        "on_experiment_end",
    )
    return type(
        "TimedParquetExportCallback", (ParquetExportCallback,), {h: timed(h) for h in hooks}
    )


@contextlib.contextmanager
def timing_tune(meter: DriverMeter) -> Iterator[None]:
    """Time Tune's callback list (minus the export, timed itself) and its experiment-state save
    into ``meter`` while the block runs."""
    from ray.tune.callback import CallbackList
    from ray.tune.execution.tune_controller import TuneController

    originals: dict[tuple[type, str], Any] = {}

    def wrap(cls: type, name: str, category: str) -> None:
        method = getattr(cls, name)
        originals[(cls, name)] = method

        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            start, export_before = time.perf_counter(), meter.spent["export"]
            try:
                return method(self, *args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                if category == "callbacks":
                    spent -= meter.spent["export"] - export_before
                elif category == "state":
                    meter.saves += 1
                meter.spent[category] += spent

        setattr(cls, name, wrapper)

    for name in vars(CallbackList):
        if name.startswith("on_"):
            wrap(CallbackList, name, "callbacks")
    wrap(TuneController, "save_to_dir", "state")
    step = TuneController.step
    originals[(TuneController, "step")] = step

    @functools.wraps(step)
    def step_wrapper(self: Any) -> None:
        try:
            step(self)
        finally:
            meter.mark_step()

    TuneController.step = step_wrapper  # type: ignore[method-assign]
    try:
        yield
    finally:
        for (cls, name), method in originals.items():
            setattr(cls, name, method)


# --- one arm ------------------------------------------------------------------------------------


@dataclass
class ArmResult:
    mode: str
    meter: DriverMeter
    wall_s: float
    rows_written: int
    results_dir: Path
    state_period: str
    """How often Tune saved its experiment state, in words."""


ARM_TUNE_ENV = {
    "rewrite": {"TUNE_GLOBAL_CHECKPOINT_S": "0", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "0"},
    "parts": {},
}
"""Tune settings of each arm beyond :func:`configure_tune_env`: ``rewrite`` is the driver as it
was (Tune's state saved every step, Tune's automatic CSV and TensorBoard loggers on)."""


@contextlib.contextmanager
def _tune_env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _stopper(limit: int | None) -> Any:
    from ray import tune

    class StopAfterResults(tune.Stopper):
        """Stop the whole search after ``limit`` results (None: never)."""

        def __init__(self) -> None:
            self.count = 0

        def __call__(self, trial_id: str, result: dict) -> bool:
            self.count += 1
            return False

        def stop_all(self) -> bool:
            return limit is not None and self.count >= limit

    return StopAfterResults()


def run_arm(mode: str, options: DriverBenchOptions, storage: Path) -> ArmResult:
    """One synthetic search with the export in ``mode``; Ray must be running."""
    from ray import tune

    from tune_grid.results.parts import read_merged
    from tune_grid.search.run.tuner import configure_tune_env, search_meta
    from tune_grid.search.spec.space_file import load_space_file
    from tune_grid.search.spec.spaces import tune_param_space

    spec = load_space_file(FULL_SPACE)
    configure_tune_env(spec.export.tune_state_period)
    spec = spec.model_copy(
        update={"search": spec.search.model_copy(update={"algorithm": "random"})}
    )
    name = f"bench_driver_{mode}"
    meta: SearchMeta = replace(search_meta(spec), experiment=name)
    meter = DriverMeter()
    results_dir = storage / name
    callback = timed_export_callback(meter)(
        results_dir,
        meta,
        flush_interval_s=spec.export.callback_flush_interval_s,
        merge_time_share=spec.export.merge_time_share,
        write_mode=write_mode(mode),
    )
    settings = SyntheticSettings(
        options.iterations,
        options.seeds,
        options.report_interval_s,
        options.checkpoint_every_iteration,
    )
    trainable = tune.with_resources(
        tune.with_parameters(synthetic_trial, settings=settings), {"CPU": 1}
    )
    limit = options.rewrite_results if mode == "rewrite" else None
    from ray.tune.logger import JsonLoggerCallback

    tuner = tune.Tuner(
        trainable,
        param_space={**tune_param_space(spec), "seed": tune.randint(0, 10_000)},
        tune_config=tune.TuneConfig(
            num_samples=options.trials,
            max_concurrent_trials=options.concurrency,
            reuse_actors=True,
            trial_dirname_creator=lambda t: f"trial_{t.trial_id}",
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(storage),
            stop=_stopper(limit),
            # "rewrite" runs as before: Tune's automatic loggers (JSON, CSV, TensorBoard).
            callbacks=[callback] if mode == "rewrite" else [JsonLoggerCallback(), callback],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            verbose=0,
        ),
    )
    start = time.perf_counter()
    with timing_tune(meter), _tune_env(ARM_TUNE_ENV[mode]):
        period = os.environ.get("TUNE_GLOBAL_CHECKPOINT_S", "auto")  # what Tune reads
        tuner.fit()
    wall_s = time.perf_counter() - start
    rows = read_merged(results_dir, "iterations").num_rows
    return ArmResult(mode, meter, wall_s, rows, results_dir, _period_words(period))


def _period_words(period: str) -> str:
    """``TUNE_GLOBAL_CHECKPOINT_S`` in words."""
    if period == "auto":
        return "every max(10 s, 19 x its duration) (auto)"
    return "every step" if float(period) == 0 else f"every {period} s"


# --- the report ---------------------------------------------------------------------------------


def report_bins(results: list[ArmResult], bin_size: int, max_rows: int = 8) -> list[int]:
    """Bin starts to print: the first, the end of every arm, and evenly spaced ones between."""
    ends = sorted({(r.meter.results // bin_size) * bin_size - bin_size for r in results})
    ends = [e for e in ends if e >= 0]
    last = max(ends, default=0)
    starts = {0, *ends}
    step = max(1, last // bin_size // max(1, max_rows - len(starts)))
    starts |= set(range(0, last + 1, step * bin_size))
    return sorted(starts)[: max_rows + len(ends)]


def format_report(results: list[ArmResult], options: DriverBenchOptions) -> str:
    """The side-by-side table."""
    modes = [r.mode for r in results]
    lines = [
        f"bench driver: {options.trials} trials x {options.iterations} iterations "
        f"({options.trials * options.iterations:,} results), {options.concurrency} at once, "
        f"{options.seeds} seeds per trial, "
        + (
            "a checkpoint per result"
            if options.checkpoint_every_iteration
            else "a checkpoint per validation (eval_interval of the space file)"
        ),
        "driver ms per result (wall time in the bin / results in it): export = the Parquet "
        "callback (records, tune_state.snapshot, writes); callbacks = Tune's other callbacks "
        "(loggers, reporter); state = Tune's experiment-state save; total = all three; "
        "running = mean trials running in the bin; busy = the share of the bin's wall time "
        "the driver spent on all three",
    ]
    for r in results:
        lines.append(
            f"  {r.mode}: {r.meter.results:,} results in {r.wall_s:.0f} s, "
            f"{r.rows_written:,} iteration rows in the Parquet files, Tune state saved "
            f"{r.state_period} ({r.meter.saves:,} saves)"
            + (" (stopped early: its cost grows with the search)" if r.mode == "rewrite" else "")
            + f"; {r.meter.end_s():.1f} s after the last step (final state save and merge)"
        )
    columns = [(m, c) for c in (*CATEGORIES, "total") for m in modes]
    lines.append(
        f"{'results':>15}"
        + "".join(f"{'running ' + m:>15}" for m in modes)
        + "".join(f"{c + ' ' + m:>18}" for m, c in columns)
        + "".join(f"{'busy ' + m:>13}" for m in modes)
    )
    by_mode = {r.mode: r for r in results}
    for start in report_bins(results, options.bin_size):
        stop = start + options.bin_size
        cells = {m: by_mode[m].meter.per_result_ms(start, stop) for m in modes}
        for m in modes:
            cells[m]["total"] = sum(cells[m][c] for c in CATEGORIES)
        line = f"{start + 1:>7,}-{stop:<7,}"
        line += "".join(f"{_ms(by_mode[m].meter.mean_running(start, stop)):>15}" for m in modes)
        line += "".join(f"{_ms(cells[m][c]):>18}" for m, c in columns)
        line += "".join(f"{_percent(by_mode[m].meter.busy_share(start, stop)):>13}" for m in modes)
        lines.append(line)
    for r in results:
        n = r.meter.results
        if n >= 2 * options.bin_size:
            first = sum(r.meter.per_result_ms(0, options.bin_size).values())
            end = sum(r.meter.per_result_ms(n - options.bin_size, n).values())
            bins = [
                sum(r.meter.per_result_ms(b, b + options.bin_size).values())
                for b in range(0, n - options.bin_size + 1, options.bin_size)
            ]
            lines.append(
                f"{r.mode}: total {first:.2f} ms per result over the first {options.bin_size:,} "
                f"results, {end:.2f} over the last {options.bin_size:,} (x{end / first:.2f}); "
                f"over all {len(bins)} bins: median {statistics.median(bins):.2f}, "
                f"max {max(bins):.2f}"
            )
    if {"parts", "rewrite"} <= set(modes):
        n = min(by_mode[m].meter.results for m in ("parts", "rewrite"))
        n -= n % options.bin_size
        if n:
            a = sum(by_mode["rewrite"].meter.per_result_ms(n - options.bin_size, n).values())
            b = sum(by_mode["parts"].meter.per_result_ms(n - options.bin_size, n).values())
            lines.append(
                f"at results {n - options.bin_size + 1:,}-{n:,}: rewrite / parts = "
                f"{_ratio(a / b if b else math.nan)} (total driver time per result)"
            )
    return "\n".join(lines)


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f} %"


def _ratio(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}x"


def run_driver_benchmark(
    options: DriverBenchOptions | None = None, print_fn: Callable[[str], None] = print
) -> list[ArmResult]:
    """Run every arm on one local Ray (``concurrency`` logical CPUs) and print the table."""
    import ray

    from tune_grid.search.run.tuner import SearchOptions, init_ray

    options = (options or DriverBenchOptions()).validate()
    own_storage = options.storage is None
    storage = Path(options.storage or tempfile.mkdtemp(prefix="tune_grid_bench_driver_"))
    started = init_ray(SearchOptions(num_cpus=options.concurrency, verbose=0))
    results: list[ArmResult] = []
    try:
        for mode in options.modes:
            results.append(run_arm(mode, options, storage))
            print_fn(f"{mode}: {results[-1].meter.results:,} results in {results[-1].wall_s:.0f} s")
    finally:
        if started:
            ray.shutdown()
        if own_storage:
            shutil.rmtree(storage, ignore_errors=True)
    print_fn(format_report(results, options))
    return results


def run_bench_driver_command(args: Any) -> int:
    """Handler of ``tune-grid bench driver``."""
    if args.quick:
        options = replace(QUICK, modes=tuple(args.modes.split(",")), storage=args.storage)
    else:
        options = DriverBenchOptions(
            trials=args.trials,
            iterations=args.iterations,
            concurrency=args.concurrency,
            seeds=args.seeds,
            report_interval_s=args.report_interval,
            checkpoint_every_iteration=args.checkpoint_every_iteration,
            rewrite_results=args.rewrite_results,
            bin_size=args.bin_size,
            modes=tuple(m.strip() for m in args.modes.split(",") if m.strip()),
            storage=args.storage,
        )
    run_driver_benchmark(options.validate())
    return 0


def add_bench_driver_parser(subparsers: Any) -> Any:
    """Add ``driver`` to the ``bench`` subparsers (``tune-grid bench driver``)."""
    d = DriverBenchOptions()
    parser = subparsers.add_parser(
        "driver",
        help="the search driver's time per result (export, snapshot, Tune) as a search grows",
        description=(__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument("--trials", type=int, default=d.trials, metavar="N")
    parser.add_argument("--iterations", type=int, default=d.iterations, metavar="N")
    parser.add_argument(
        "--concurrency", type=int, default=d.concurrency, metavar="N", help="trials at once"
    )
    parser.add_argument("--seeds", type=int, default=d.seeds, metavar="K")
    parser.add_argument(
        "--report-interval",
        type=float,
        default=d.report_interval_s,
        metavar="S",
        help=f"pause of each trial between reports, seconds (default {d.report_interval_s})",
    )
    parser.add_argument(
        "--rewrite-results",
        type=int,
        default=d.rewrite_results,
        metavar="N",
        help=f"stop the rewrite arm's search after N results (default {d.rewrite_results})",
    )
    parser.add_argument(
        "--checkpoint-every-iteration",
        action="store_true",
        help="checkpoint every result, as under PBT (default: at each validation, as full.yaml)",
    )
    parser.add_argument("--bin-size", type=int, default=d.bin_size, metavar="N")
    parser.add_argument(
        "--modes",
        default=",".join(d.modes),
        help=f"comma-separated write modes to run, of {','.join(WRITE_MODES)} (default both)",
    )
    parser.add_argument("--storage", metavar="DIR", default=None, help="default: a temp dir")
    parser.add_argument(
        "--quick", action="store_true", help="tiny search: a smoke test, not a measurement"
    )
    parser.set_defaults(func=run_bench_driver_command)
    return parser


__all__ = ["DriverBenchOptions", "add_bench_driver_parser", "run_driver_benchmark"]
