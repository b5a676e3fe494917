"""``tune-grid bench search``: Optuna+ASHA vs random+FIFO at the same trial budget.

Both arms search the same small space (lr, train_batch_size, policy_sharing, share_reward) with the
same number of trials, iterations per trial and concurrency, on one local Ray. For every search
the best-so-far objective is followed over the iterations in the order they were reported; the
benchmark reports the wall time (from the start of ``tuner.fit``) and the env steps (all trials,
all seeds) until it first reaches the target, as the median over repetitions, and the ratio
random+FIFO / Optuna+ASHA (> 1: Optuna+ASHA gets there faster).
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tune_grid.results.schema import ITERATIONS_FILE, read_results
from tune_grid.search.space_file import SpaceFile, parse_space

ARMS = {"optuna_asha": ("optuna", "asha"), "random_fifo": ("random", "fifo")}


@dataclass
class BenchOptions:
    """Budget of the benchmark."""

    repetitions: int = 3
    num_samples: int = 8
    iterations: int = 8
    target: float | None = None
    storage: str | None = None
    smoke: bool = False
    num_cpus: int | None = None
    max_concurrent_trials: int = 2

    def resolved(self) -> BenchOptions:
        """The smoke budget overrides the others."""
        if not self.smoke:
            return self
        return BenchOptions(
            repetitions=1,
            num_samples=2,
            iterations=2,
            target=self.target,
            storage=self.storage,
            smoke=True,
            num_cpus=self.num_cpus,
            max_concurrent_trials=2,
        )


@dataclass
class SearchTrace:
    """One search's best-so-far objective against elapsed time and cumulative env steps."""

    arm: str
    repetition: int
    times: list[float]
    env_steps: list[int]
    best: list[float]

    def reach(self, target: float, mode: str) -> tuple[float, float]:
        """(seconds, env steps) until the best-so-far first reaches ``target``; inf if never."""
        for t, steps, value in zip(self.times, self.env_steps, self.best, strict=True):
            if value >= target if mode == "max" else value <= target:
                return t, float(steps)
        return math.inf, math.inf

    @property
    def final(self) -> float:
        return self.best[-1] if self.best else math.nan


def bench_space(arm: str, repetition: int, options: BenchOptions) -> SpaceFile:
    """The search file of one arm and repetition (the sampler seed is the repetition)."""
    algorithm, scheduler = ARMS[arm]
    batch = [96, 192] if options.smoke else [192, 384]
    data: dict[str, Any] = {
        "experiment": f"bench_{arm}_{repetition}",
        "fixed": {
            "minibatch_size": 48 if options.smoke else 64,
            "num_epochs": 1 if options.smoke else 2,
            "hidden_sizes": [16, 16] if options.smoke else [32, 32],
            "num_env_runners": 0,
            "num_envs_per_env_runner": 4,
        },
        "space": {
            "lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
            "train_batch_size": {"type": "choice", "values": batch},
            "policy_sharing": {"type": "choice", "values": ["shared", "independent"]},
            "share_reward": {"type": "bool"},
        },
        "search": {"algorithm": algorithm, "seed": repetition, "n_startup_trials": 2},
        "scheduler": {
            "type": scheduler,
            "time_attr": "training_iteration",
            "max_t": options.iterations,
            "grace_period": 1,
            "reduction_factor": 2,
        },
        "num_samples": options.num_samples,
        "max_concurrent_trials": options.max_concurrent_trials,
        "seeds": 1,
        "metric": "episode_return_mean",
        "mode": "max",
        "stop": {"training_iteration": options.iterations},
        "evaluation": {"enabled": False},
        "max_failures": 1,
    }
    return parse_space(data, f"<bench {arm}>")


def trace_of(results_dir: Path, arm: str, repetition: int, start: float, mode: str) -> SearchTrace:
    """Best-so-far objective over the reported iterations, in report order."""
    table = read_results(results_dir / ITERATIONS_FILE, "iterations").to_pylist()
    table.sort(key=lambda row: row.get("reported_at") or 0.0)
    times, steps, best = [], [], []
    total_steps = 0
    current = -math.inf if mode == "max" else math.inf
    for row in table:
        total_steps += int(row.get("env_steps_this_iter") or 0)
        value = row["objective"]
        if value is not None and not math.isnan(value):
            current = max(current, value) if mode == "max" else min(current, value)
        times.append(float(row.get("reported_at") or start) - start)
        steps.append(total_steps)
        best.append(current)
    return SearchTrace(arm, repetition, times, steps, best)


def default_target(traces: list[SearchTrace], mode: str) -> float:
    """The worst final best-so-far over all searches: every search reaches it."""
    finals = [t.final for t in traces if math.isfinite(t.final)]
    if not finals:
        return math.nan
    return min(finals) if mode == "max" else max(finals)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def summarize(
    traces: list[SearchTrace], target: float, mode: str = "max"
) -> dict[str, dict[str, float]]:
    """Median seconds and env steps to the target per arm, and the random/optuna ratios."""
    summary: dict[str, dict[str, float]] = {}
    for arm in ARMS:
        reached = [t.reach(target, mode) for t in traces if t.arm == arm]
        summary[arm] = {
            "seconds": _median([r[0] for r in reached]),
            "env_steps": _median([r[1] for r in reached]),
            "final_best": _median([t.final for t in traces if t.arm == arm]),
            "reached": float(sum(math.isfinite(r[0]) for r in reached)),
            "runs": float(len(reached)),
        }
    a, b = summary["optuna_asha"], summary["random_fifo"]
    summary["ratio"] = {
        "seconds": b["seconds"] / a["seconds"] if a["seconds"] else math.nan,
        "env_steps": b["env_steps"] / a["env_steps"] if a["env_steps"] else math.nan,
    }
    return summary


def format_summary(summary: dict[str, dict[str, float]], target: float, options: Any) -> str:
    """The printed table."""
    lines = [
        f"bench search: {options.num_samples} trials x <= {options.iterations} iterations, "
        f"{options.repetitions} repetition(s); target episode_return_mean >= {target:.2f}",
        f"{'arm':<14} {'median s':>10} {'median env steps':>17} {'final best':>11} {'reached':>8}",
    ]
    for arm in ARMS:
        s = summary[arm]
        lines.append(
            f"{arm:<14} {s['seconds']:10.1f} {s['env_steps']:17,.0f} {s['final_best']:11.2f} "
            f"{int(s['reached'])}/{int(s['runs'])}"
        )
    r = summary["ratio"]
    lines.append(
        f"ratio random+FIFO / Optuna+ASHA: time {r['seconds']:.2f}x, "
        f"env steps {r['env_steps']:.2f}x"
    )
    return "\n".join(lines)


def run_search_benchmark(
    options: BenchOptions | None = None, print_fn: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run both arms ``repetitions`` times on one local Ray and print the comparison."""
    import ray

    from tune_grid.search.tuner import SearchOptions, init_ray, run_search

    options = (options or BenchOptions()).resolved()
    storage = options.storage or tempfile.mkdtemp(prefix="tune_grid_bench_")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    started = init_ray(SearchOptions(num_cpus=options.num_cpus, verbose=0))
    traces: list[SearchTrace] = []
    try:
        for repetition in range(options.repetitions):
            for arm in ARMS:
                spec = bench_space(arm, repetition, options)
                name = f"{spec.experiment}_{stamp}"
                search = SearchOptions(storage=storage, name=name, evaluate=False, verbose=0)
                start = time.time()
                outcome = run_search(spec, search, print_fn=lambda _: None)
                trace = trace_of(outcome.paths.results_dir, arm, repetition, start, "max")
                traces.append(trace)
                print_fn(
                    f"{arm} repetition {repetition}: {outcome.trials} trials, best "
                    f"{trace.final:.2f} after {trace.times[-1] if trace.times else 0:.0f}s"
                )
    finally:
        if started:
            ray.shutdown()
    target = options.target if options.target is not None else default_target(traces, "max")
    summary = summarize(traces, target, "max")
    print_fn(format_summary(summary, target, options))
    return {"target": target, "summary": summary, "traces": traces, "storage": storage}
