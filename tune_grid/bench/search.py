"""``tune-grid bench search``: Optuna+ASHA vs random+FIFO vs PBT at equal budget in env steps.

The arms search the same space (lr, train_batch_size in whole days, num_epochs) with the same
number of trials and the same stop in env steps, on one local Ray, and rank trials by the
validation objective (``val_objective``: the greedy policy's mean daily cost + penalty x safety
on the validation days, lower is better). ASHA's rungs count env steps too. Optuna+ASHA and
random+FIFO run the same number of trials at once; PBT trains its whole population side by side
(as population-based training is meant to run) on the same CPUs, each trial with the matching
share of them, and every ``perturbation_interval`` env steps its worst quarter clones a top
trial's weights and configuration and continues with a perturbed learning rate.

For every search the best-so-far ``val_objective`` is followed over the reported results in
wall-clock order. The benchmark reports, per arm, the env steps (all trials, all seeds) and the
wall time (from the start of the search) until the best-so-far first reaches the target, as the
median over repetitions (the search seed is the repetition), and the ratios random+FIFO / arm
of those medians (> 1: that arm gets there with less).

The target is, unless ``--target`` gives one, the rule-based baseline's objective on the same
validation days: a trial that reaches it has learnt a policy at least as good as the hand-written
rule, which is the first level at which a learnt policy is worth having.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tune_grid.errors import TuneGridError
from tune_grid.results.schema import ITERATIONS_FILE, TRIALS_FILE, read_results
from tune_grid.search.spec.searchers import SEARCHERS
from tune_grid.search.spec.space_file import SpaceFile, checkpoints_for, parse_space

ARMS = {
    "optuna_asha": ("optuna", "asha"),
    "random_fifo": ("random", "fifo"),
    "pbt": ("random", "pbt"),
}
"""Arm name -> (search algorithm, scheduler)."""
REFERENCE_ARM = "random_fifo"
"""The arm every ratio divides: ``REFERENCE_ARM / arm`` > 1 means the arm needs less."""
METRIC = "val_objective"
MODE = "min"
TARGET_BASELINE = "rule_based"


class BenchError(TuneGridError, RuntimeError):
    """A search of the benchmark did not finish (interrupted): no figures."""


@dataclass(frozen=True)
class BenchScale:
    """The searched space and the budgets of one search (the same for both arms)."""

    num_samples: int
    stop_env_steps: int
    """Env steps after which every trial ends (ASHA's ``max_t``)."""
    grace_period: int
    """ASHA's first rung in env steps; rungs at grace_period x 2^k."""
    eval_interval: int
    """Env steps between validations; divides ``grace_period`` so every rung sees a fresh one."""
    perturbation_interval: int
    """PBT's env steps between perturbations: a multiple of ``eval_interval``, so each decision
    ranks fresh validations."""
    val_days: int | None
    batch_sizes: tuple[int, ...]
    num_epochs: tuple[int, ...]
    lr: tuple[float, float]
    minibatch_size: int
    hidden_sizes: tuple[int, ...]
    num_envs_per_env_runner: int
    n_startup_trials: int
    max_concurrent_trials: int = 2


FULL = BenchScale(
    num_samples=8,
    stop_env_steps=46_080,
    grace_period=11_520,
    eval_interval=3_840,
    perturbation_interval=7_680,
    val_days=None,
    batch_sizes=(960, 1920),
    num_epochs=(3, 10),
    lr=(3e-5, 3e-3),
    minibatch_size=128,
    hidden_sizes=(64, 64),
    num_envs_per_env_runner=32,
    n_startup_trials=3,
)
"""At most 48 iterations of 40 days per trial (rungs at 11,520, 23,040 and 46,080 env steps).
Single runs of lr 1e-3, batch 960, 10 epochs passed the rule-based level at about 40,000 env
steps on the validation days; runs with lr ~1e-4 or less stayed at $1,340/day or worse
after 15,360 (docs/search.md, Benchmark)."""


SMOKE = BenchScale(
    num_samples=2,
    stop_env_steps=960,
    grace_period=480,
    eval_interval=480,
    perturbation_interval=480,
    val_days=3,
    batch_sizes=(240, 480),
    num_epochs=(1,),
    lr=(1e-4, 1e-3),
    minibatch_size=48,
    hidden_sizes=(16, 16),
    num_envs_per_env_runner=4,
    n_startup_trials=1,
)
"""Checks the benchmark end to end; not a measurement."""


@dataclass
class BenchOptions:
    """Command-line options of ``tune-grid bench search``."""

    repetitions: int = 3
    num_samples: int | None = None
    """Trials per search (default the scale's)."""
    env_steps: int | None = None
    """Stop of every trial in env steps (default the scale's; ASHA's rungs scale with it)."""
    target: float | None = None
    """Target ``val_objective`` ($/day); default the rule-based baseline's on the same days."""
    storage: str | None = None
    smoke: bool = False
    num_cpus: int | None = None
    seed: int = 0
    """Search seed of the first repetition (repetition r uses seed + r)."""
    arms: tuple[str, ...] = tuple(ARMS)
    """The arms to run (each needs the reference arm beside it for its ratio)."""

    def __post_init__(self) -> None:
        from tune_grid.config import ConfigError

        unknown = [arm for arm in self.arms if arm not in ARMS]
        if unknown or not self.arms:
            raise ConfigError(
                f"--arms: unknown arm {', '.join(unknown) or '(none given)'}; "
                f"allowed: {', '.join(ARMS)}"
            )
        if self.repetitions < 1:
            raise ConfigError(f"--repetitions must be >= 1, got {self.repetitions}")
        if self.num_samples is not None and self.num_samples < 1:
            raise ConfigError(f"--num-samples must be >= 1, got {self.num_samples}")
        if self.env_steps is not None and self.env_steps < 1:
            raise ConfigError(f"--env-steps must be >= 1, got {self.env_steps}")

    def scale(self) -> BenchScale:
        """The scale with the command line's overrides. A new stop moves the rungs and the
        validation interval with it, rounded to whole iterations of the largest batch, so that
        every rung still sees a fresh validation."""
        scale = SMOKE if self.smoke else FULL
        if self.num_samples is not None:
            scale = replace(scale, num_samples=self.num_samples)
        if self.env_steps is None or self.env_steps == scale.stop_env_steps:
            return scale
        factor = self.env_steps / scale.stop_env_steps
        unit = max(scale.batch_sizes)
        interval = max(1, round(scale.eval_interval * factor / unit)) * unit
        grace = max(1, round(scale.grace_period * factor / interval)) * interval
        return replace(
            scale,
            stop_env_steps=self.env_steps,
            grace_period=min(grace, self.env_steps),
            eval_interval=interval,
            perturbation_interval=min(2 * interval, self.env_steps),
        )


def bench_space(arm: str, seed: int, scale: BenchScale) -> SpaceFile:
    """The search file of one arm with search seed ``seed``."""
    algorithm, scheduler = ARMS[arm]
    data: dict[str, Any] = {
        "experiment": f"bench_{arm}_{seed}",
        "fixed": {
            "minibatch_size": scale.minibatch_size,
            "hidden_sizes": list(scale.hidden_sizes),
            "num_env_runners": 0,
            "num_envs_per_env_runner": scale.num_envs_per_env_runner,
            "eval_interval": scale.eval_interval,
            "val_days": scale.val_days,
            "seed": 0,
        },
        "space": {
            "lr": {"type": "loguniform", "low": scale.lr[0], "high": scale.lr[1]},
            "train_batch_size": {"type": "choice", "values": list(scale.batch_sizes)},
        },
        "search": {
            "algorithm": algorithm,
            "seed": seed,
            **(
                {"n_startup_trials": scale.n_startup_trials}
                if "n_startup_trials" in SEARCHERS[algorithm].options
                else {}
            ),
        },
        "scheduler": {
            "type": scheduler,
            "time_attr": "env_steps",
            "max_t": scale.stop_env_steps,
            "grace_period": scale.grace_period,
            "reduction_factor": 2,
        },
        "num_samples": scale.num_samples,
        "max_concurrent_trials": scale.max_concurrent_trials,
        "resources_per_trial": {"cpu": 1.0},
        "seeds": 1,
        "metric": METRIC,
        "mode": MODE,
        "stop": {"env_steps": scale.stop_env_steps},
        "evaluation": {"enabled": False},
        "max_failures": 1,
    }
    if len(scale.num_epochs) > 1:
        data["space"]["num_epochs"] = {"type": "choice", "values": list(scale.num_epochs)}
    else:
        data["fixed"]["num_epochs"] = scale.num_epochs[0]
    if scheduler == "pbt":
        _as_population(data, scale)
    return parse_space(data, f"<bench {arm}>")


def _as_population(data: dict[str, Any], scale: BenchScale) -> None:
    """Turn a search file into the PBT arm's: the whole population at once on the CPUs the other
    arms' concurrent trials hold, the learning rate perturbed within the searched range."""
    data["scheduler"] = {
        "type": "pbt",
        "time_attr": "env_steps",
        "perturbation_interval": scale.perturbation_interval,
        "quantile_fraction": 0.25,
        "resample_probability": 0.25,
        "hyperparam_mutations": {"lr": dict(data["space"]["lr"])},
    }
    data["max_concurrent_trials"] = scale.num_samples
    held = data["resources_per_trial"]["cpu"] * scale.max_concurrent_trials
    data["resources_per_trial"] = {"cpu": held / scale.num_samples}
    data["checkpoint_num_to_keep"] = checkpoints_for(
        scale.perturbation_interval, min(scale.batch_sizes)
    )


@dataclass
class SearchTrace:
    """One search's best-so-far objective against elapsed seconds and cumulative env steps."""

    arm: str
    repetition: int
    times: list[float]
    env_steps: list[int]
    best: list[float]
    trials: int = 0
    stopped_early: int = 0
    wall_s: float = math.nan
    """Seconds of the whole search (start to the end of the last trial)."""

    def reach(self, target: float) -> tuple[float, float]:
        """(seconds, env steps) until the best-so-far first reaches ``target``; inf if never."""
        for t, steps, value in zip(self.times, self.env_steps, self.best, strict=True):
            if _better_or_equal(value, target):
                return t, float(steps)
        return math.inf, math.inf

    @property
    def final(self) -> float:
        return self.best[-1] if self.best else math.nan

    @property
    def total_env_steps(self) -> int:
        return self.env_steps[-1] if self.env_steps else 0


def _better_or_equal(value: float, target: float) -> bool:
    return value >= target if MODE == "max" else value <= target


def trace_rows(rows: list[dict[str, Any]]) -> tuple[list[float], list[int], list[float]]:
    """(report times, cumulative env steps of all trials, best-so-far ``METRIC``) over the
    iteration rows in the order they were reported."""
    rows = sorted(rows, key=lambda row: row.get("reported_at") or 0.0)
    times, steps, best = [], [], []
    total = 0
    current = -math.inf if MODE == "max" else math.inf
    for row in rows:
        total += int(row.get("env_steps_this_iter") or 0)
        value = row.get(METRIC)
        if value is not None and not math.isnan(value):
            current = max(current, value) if MODE == "max" else min(current, value)
        times.append(float(row.get("reported_at") or 0.0))
        steps.append(total)
        best.append(current)
    return times, steps, best


def trace_of(results_dir: Path, arm: str, repetition: int, start: float) -> SearchTrace:
    """The trace of one finished search's results folder (times relative to ``start``)."""
    rows = read_results(results_dir / ITERATIONS_FILE, "iterations").to_pylist()
    trials = read_results(results_dir / TRIALS_FILE, "trials").to_pylist()
    times, steps, best = trace_rows(rows)
    return SearchTrace(
        arm=arm,
        repetition=repetition,
        times=[t - start for t in times],
        env_steps=steps,
        best=best,
        trials=len(trials),
        stopped_early=sum(bool(t.get("stopped_early")) for t in trials),
    )


LADDER_BASELINE = "do_nothing"


@dataclass(frozen=True)
class Target:
    """The target ``val_objective`` and the reference levels on the same validation days."""

    value: float
    source: str
    days: int
    levels: dict[str, float] = field(default_factory=dict)
    """``do_nothing``, ``rule_based`` and ``oracle`` objectives ($/day) where computed."""

    def describe(self) -> str:
        parts = [f"{name} ${value:,.2f}" for name, value in self.levels.items()]
        oracle = self.levels.get("oracle")
        gap = ""
        if oracle:
            from tune_grid.economics import relative_gap

            gap = f", {relative_gap(self.value, oracle):+.1%} vs the oracle"
        refs = f" ({'; '.join(parts)})" if parts else ""
        return (
            f"target: {METRIC} <= ${self.value:,.2f}/day ({self.source}{gap}) on {self.days} "
            f"validation days{refs}"
        )

    def ladder(self) -> dict[str, float]:
        """Levels read from the same traces: doing nothing, half way from it to the
        rule, the rule (the figures at each show how the ratio depends on the level)."""
        if LADDER_BASELINE not in self.levels or TARGET_BASELINE not in self.levels:
            return {}
        low, rule = self.levels[LADDER_BASELINE], self.levels[TARGET_BASELINE]
        return {LADDER_BASELINE: low, "half_way": (low + rule) / 2, TARGET_BASELINE: rule}


def reference_levels(spec: SpaceFile) -> tuple[int, dict[str, float]]:
    """The do-nothing and rule-based baselines' and the oracle's mean objective on the search's
    validation days (the oracle is read from its disk cache, solved where missing)."""
    from tune_grid.config import RunConfig
    from tune_grid.env.evaluation import evaluate, summarize
    from tune_grid.training.validation import (
        oracle_objectives,
        validation_days,
        validation_env_config,
    )

    run = RunConfig.from_dict(spec.fixed_config())
    days = validation_days(run)
    config = validation_env_config(run)
    levels = {
        name: float(summarize(evaluate(name, "validation", days, config))["objective"])
        for name in (LADDER_BASELINE, TARGET_BASELINE)
    }
    oracle = oracle_objectives(run)
    if oracle:
        levels["oracle"] = float(statistics.fmean(oracle.values()))
    return len(days), levels


def choose_target(spec: SpaceFile, override: float | None) -> Target:
    """``override`` if given, else the rule-based baseline's objective (module doc)."""
    days, levels = reference_levels(spec)
    if override is not None:
        return Target(override, "--target", days, levels)
    return Target(levels[TARGET_BASELINE], "the rule-based baseline's objective", days, levels)


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``; NaN when it says nothing (0 or both infinite)."""
    if denominator == 0 or (math.isinf(numerator) and math.isinf(denominator)):
        return math.nan
    return numerator / denominator


def summarize(traces: list[SearchTrace], target: float) -> dict[str, dict[str, float]]:
    """Per arm that has traces: medians over repetitions of env steps and seconds to the target
    (inf: not reached), of total env steps, wall seconds and final best; and under
    ``ratio_<arm>`` the ratios random+FIFO / arm of those medians."""
    summary: dict[str, dict[str, float]] = {}
    for arm in ARMS:
        mine = [t for t in traces if t.arm == arm]
        if not mine:
            continue
        reached = [t.reach(target) for t in mine]
        summary[arm] = {
            "seconds": _median([r[0] for r in reached]),
            "env_steps": _median([r[1] for r in reached]),
            "total_env_steps": _median([float(t.total_env_steps) for t in mine]),
            "wall_s": _median([t.wall_s for t in mine]),
            "final_best": _median([t.final for t in mine]),
            "reached": float(sum(math.isfinite(r[1]) for r in reached)),
            "runs": float(len(mine)),
        }
    if REFERENCE_ARM not in summary:
        return summary
    reference = summary[REFERENCE_ARM]
    for arm in [a for a in ARMS if a != REFERENCE_ARM and a in summary]:
        summary[ratio_key(arm)] = {
            key: ratio(reference[key], summary[arm][key])
            for key in ("seconds", "env_steps", "total_env_steps")
        }
    return summary


def ratio_key(arm: str) -> str:
    """The :func:`summarize` entry of the ratios random+FIFO / ``arm``."""
    return f"ratio_{arm}"


def arms_in(summary: dict[str, dict[str, float]]) -> list[str]:
    """The arms a :func:`summarize` result holds, in :data:`ARMS` order."""
    return [arm for arm in ARMS if arm in summary]


def format_trace(trace: SearchTrace, target: float) -> str:
    """One line per search."""
    seconds, steps = trace.reach(target)
    to_target = (
        f"target at {steps:,.0f} env steps / {seconds:.0f} s"
        if math.isfinite(steps)
        else "target not reached"
    )
    return (
        f"{trace.arm} repetition {trace.repetition}: {trace.trials} trials "
        f"({trace.stopped_early} stopped early), {trace.total_env_steps:,} env steps in "
        f"{trace.wall_s:.0f} s, best {METRIC} ${trace.final:,.2f}; {to_target}"
    )


def format_summary(
    summary: dict[str, dict[str, float]],
    target: Target,
    scale: BenchScale,
    repetitions: int,
    ladder: dict[str, tuple[float, dict[str, dict[str, float]]]] | None = None,
) -> str:
    """The printed table; ``ladder``: level name -> (value, :func:`summarize` at it)."""
    arms = arms_in(summary)
    lines = [
        f"bench search: {scale.num_samples} trials x <= {scale.stop_env_steps:,} env steps "
        f"(ASHA rungs from {scale.grace_period:,}, x2; PBT perturbs every "
        f"{scale.perturbation_interval:,}), {repetitions} repetition(s), medians",
        target.describe(),
        f"{'arm':<12} {'env steps to target':>20} {'s to target':>12} {'total env steps':>16} "
        f"{'wall s':>8} {'final best $':>13} {'reached':>8}",
    ]
    for arm in arms:
        s = summary[arm]
        lines.append(
            f"{arm:<12} {s['env_steps']:20,.0f} {s['seconds']:12.0f} {s['total_env_steps']:16,.0f} "
            f"{s['wall_s']:8.0f} {s['final_best']:13,.2f} {int(s['reached'])}/{int(s['runs'])}"
        )
    for arm in arms:
        if ratio_key(arm) in summary:
            r = summary[ratio_key(arm)]
            lines.append(
                f"ratio {REFERENCE_ARM} / {arm} to target: env steps {r['env_steps']:.2f}x, "
                f"time {r['seconds']:.2f}x (total env steps {r['total_env_steps']:.2f}x)"
            )
    if ladder:
        lines.append(f"median env steps to each level (reached); ratio {REFERENCE_ARM} / arm:")
        for name, (value, level) in ladder.items():
            cells = []
            for arm in arms:
                a = level[arm]
                cell = f"{arm} {a['env_steps']:,.0f} ({int(a['reached'])}/{int(a['runs'])})"
                if ratio_key(arm) in level:
                    cell += f" {level[ratio_key(arm)]['env_steps']:.2f}x"
                cells.append(cell)
            lines.append(f"  {name:<11} <= ${value:,.2f}: " + ", ".join(cells))
    return "\n".join(lines)


def run_search_benchmark(
    options: BenchOptions | None = None, print_fn: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run the chosen arms ``repetitions`` times on one local Ray and print the comparison."""
    import ray

    from tune_grid.search.pipeline import run_search
    from tune_grid.search.run.tuner import SearchOptions, init_ray

    options = options or BenchOptions()
    repetitions = 1 if options.smoke else options.repetitions
    scale = options.scale()
    storage = options.storage or tempfile.mkdtemp(prefix="tune_grid_bench_")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = choose_target(bench_space(REFERENCE_ARM, options.seed, scale), options.target)
    print_fn(target.describe())
    started = init_ray(SearchOptions(num_cpus=options.num_cpus, verbose=0))
    traces: list[SearchTrace] = []
    arms = [arm for arm in ARMS if arm in options.arms]
    try:
        for repetition in range(repetitions):
            # Alternate the order so a drift in the machine's load favours no arm.
            order = arms if repetition % 2 == 0 else list(reversed(arms))
            for arm in order:
                spec = bench_space(arm, options.seed + repetition, scale)
                search = SearchOptions(
                    storage=storage, name=f"{spec.experiment}_{stamp}", evaluate=False, verbose=0
                )
                start = time.time()
                outcome = run_search(spec, search, print_fn=lambda _: None)
                if not outcome.finished:
                    raise BenchError(
                        f"bench search: the {arm} search of repetition {repetition} was "
                        f"interrupted ({outcome.paths.results_dir}); no figures"
                    )
                trace = trace_of(outcome.paths.results_dir, arm, repetition, start)
                trace.wall_s = time.time() - start
                traces.append(trace)
                print_fn(format_trace(trace, target.value))
    finally:
        if started:
            ray.shutdown()
    summary = summarize(traces, target.value)
    ladder = {name: (v, summarize(traces, v)) for name, v in target.ladder().items()}
    print_fn(format_summary(summary, target, scale, repetitions, ladder))
    return {
        "target": target,
        "summary": summary,
        "ladder": ladder,
        "traces": traces,
        "storage": storage,
        "scale": scale,
    }
