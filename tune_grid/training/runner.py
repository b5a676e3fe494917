"""The ``tune-grid train`` loop: build or restore PPO, train, checkpoint, log, evaluate."""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tune_grid.config import ConfigError, RunConfig
from tune_grid.env import ENV_NAME
from tune_grid.results.schema import better_mode
from tune_grid.training.checkpoints import (
    BEST_DIR,
    FINAL_DIR,
    CheckpointMeta,
    checkpoint_name,
    read_meta,
    restore_algorithm,
    save_checkpoint,
)

DEFAULT_BEST_METRIC = "val_objective"
"""The best checkpoint is the validation with the lowest ``val_objective`` by default."""
BEST_METRICS = (
    "val_objective",
    "val_daily_cost",
    "val_safety",
    "val_violation_hours",
    "episode_return_mean",
    "daily_cost_mean",
    "safety_mean",
    "violation_hours_mean",
    "env_steps_per_s",
)
"""Iteration metrics that may pick ``best/`` (names of :func:`iteration_metrics`; no Ray import)."""


@dataclass
class TrainOptions:
    """Everything about a training run that is not the run config itself."""

    iterations: int = 50
    """Training iterations to run in this invocation (with --resume: this many more)."""
    env_steps: int | None = None
    """Also stop once the run has sampled this many env steps (lifetime), if sooner."""
    checkpoint_freq: int = 10
    """Save ``checkpoint_<iteration>`` every this many iterations (0: only best and final)."""
    checkpoint_dir: str | Path = "runs"
    """Folder of run folders; each run writes ``<checkpoint_dir>/<run_name>/``."""
    resume: str | Path | None = None
    """A checkpoint to continue from (its run config is used)."""
    experiment_name: str | None = None
    """Run-name part; default ``ppo_<policy_sharing>``."""
    wandb: bool = False
    wandb_project: str = "tune-grid"
    wandb_entity: str | None = None
    eval_days: int | None = None
    """Test days for the final evaluation: N evenly spaced, None for all, 0 to skip."""
    eval_split: str = "test"
    best_metric: str = DEFAULT_BEST_METRIC
    best_mode: Literal["max", "min"] | None = None
    """None: the metric's natural direction (max for return and throughput, min otherwise)."""
    num_cpus: int | None = None
    """CPUs for ``ray.init`` when this process starts Ray (default: all)."""

    def validate(self) -> None:
        """Raise ConfigError on a bad option (called before Ray starts)."""
        if self.iterations < 1:
            raise ConfigError(f"iterations must be >= 1, got {self.iterations}")
        if self.env_steps is not None and self.env_steps < 1:
            raise ConfigError(f"env_steps must be >= 1, got {self.env_steps}")
        if self.checkpoint_freq < 0:
            raise ConfigError(f"checkpoint_freq must be >= 0, got {self.checkpoint_freq}")
        if self.eval_days is not None and self.eval_days < 0:
            raise ConfigError(f"eval_days must be >= 0, got {self.eval_days}")
        if self.best_metric not in BEST_METRICS:
            raise ConfigError(
                f"best_metric must be one of {', '.join(BEST_METRICS)}, got {self.best_metric!r}"
            )
        if self.best_mode not in ("max", "min", None):
            raise ConfigError(f"best_mode must be 'max' or 'min', got {self.best_mode!r}")
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ConfigError(f"num_cpus must be >= 1, got {self.num_cpus}")
        if self.experiment_name is not None and (
            not self.experiment_name or "/" in self.experiment_name
        ):
            raise ConfigError(
                f"experiment_name must be non-empty without '/', got {self.experiment_name!r}"
            )


@dataclass
class TrainResult:
    """What a finished run produced."""

    run_name: str
    run_dir: Path
    final_checkpoint: Path
    best_checkpoint: Path | None
    history: list[dict[str, float]] = field(default_factory=list)
    evaluation: dict[str, Any] | None = None


def make_run_name(run: RunConfig, experiment_name: str | None = None) -> str:
    """``<env>__<experiment>__<seed>__<unix time>``."""
    experiment = experiment_name or f"ppo_{run.policy_sharing}"
    return f"{ENV_NAME}__{experiment}__{run.seed}__{int(time.time())}"


REPRODUCIBLE_ENV_VARS = {"PYTHONHASHSEED": "0"}
"""Environment for Ray workers. RLlib orders agents through Python sets of agent-id strings, whose
iteration order follows the process's string-hash seed; with it fixed, a seed repeats a run."""


def reproducible_runtime_env(runtime_env: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Ray ``runtime_env`` with :data:`REPRODUCIBLE_ENV_VARS` added to its ``env_vars`` (a
    variable the caller set keeps the caller's value)."""
    out = dict(runtime_env or {})
    out["env_vars"] = {**REPRODUCIBLE_ENV_VARS, **(out.get("env_vars") or {})}
    return out


def ray_init_kwargs(num_cpus: int | None = None) -> dict[str, Any]:
    """``ray.init`` arguments for training: local, no dashboard, hash seed fixed in workers."""
    return {
        "num_cpus": num_cpus or os.cpu_count() or 1,
        "include_dashboard": False,
        "log_to_driver": True,
        "logging_level": logging.WARNING,
        "runtime_env": reproducible_runtime_env(),
    }


def ensure_ray(num_cpus: int | None = None) -> None:
    """Start a local Ray (see :func:`ray_init_kwargs`) unless this process already has one."""
    import ray

    if not ray.is_initialized():
        ray.init(**ray_init_kwargs(num_cpus))


def improved(value: float | None, best: float | None, mode: str) -> bool:
    """Whether a finite ``value`` beats ``best`` (None: nothing yet) in ``mode``."""
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value > best if mode == "max" else value < best


def _carry_best(resume: str | Path | None, meta: CheckpointMeta, run_dir: Path) -> Path | None:
    """Copy the resumed run's ``best/`` into the new run folder when it matches ``meta``.

    Otherwise (e.g. resuming from an older periodic checkpoint) best tracking restarts.
    """
    if resume is None or meta.best_value is None:
        return None
    source = Path(resume).resolve().parent / BEST_DIR
    try:
        matches = read_meta(source).best_iteration == meta.best_iteration
    except ValueError:
        matches = False
    if not matches:
        meta.best_value = meta.best_iteration = None
        return None
    target = run_dir / BEST_DIR
    if source.resolve() != target.resolve():
        shutil.copytree(source, target, dirs_exist_ok=True)
    return target


def train(
    run: RunConfig | None,
    options: TrainOptions,
    *,
    print_fn: Callable[[str], None] = print,
) -> TrainResult:
    """Train PPO for ``options.iterations`` iterations; checkpoint, evaluate and return.

    ``run`` is the run config, or None with ``options.resume`` (the checkpoint's config, best
    metric and history are used; a given ``run`` must equal that config). A resumed run writes a
    new run folder; its iteration and env-step counters and history continue the checkpoint's.
    Starts Ray if needed; does not shut it down.
    """
    from tune_grid.training.algorithms import check_run
    from tune_grid.training.metrics import format_progress, iteration_metrics
    from tune_grid.training.policy import TrainedPolicy
    from tune_grid.training.rllib_env import register_rllib_env
    from tune_grid.training.validation import Validator, due
    from tune_grid.training.wandb_logging import WandbLogger

    options.validate()
    previous: CheckpointMeta | None = None
    if options.resume is not None:
        previous = read_meta(options.resume)
        if run is not None and run != previous.run_config:
            raise ValueError(
                "--resume continues the checkpoint's own run config; drop the run-config options"
            )
        run = previous.run_config
    if run is None:
        raise ValueError("a run config is required unless resuming")

    ensure_ray(options.num_cpus)
    register_rllib_env()
    if options.resume is not None:
        algo = restore_algorithm(options.resume)
    else:
        algo = check_run(run).build_config(run).build_algo()
    run_name = make_run_name(run, options.experiment_name)
    run_dir = Path(options.checkpoint_dir) / run_name
    suffix = 1
    while run_dir.exists():  # two runs started within one second
        run_dir = Path(options.checkpoint_dir) / f"{run_name}_{suffix}"
        suffix += 1
    run_name = run_dir.name
    run_dir.mkdir(parents=True)

    if previous is not None and options.resume is not None:
        meta = previous
        meta.resumed_from = [*previous.resumed_from, str(Path(options.resume).resolve())]
        meta.run_name = run_name
        print_fn(
            f"resumed {options.resume} at iteration {meta.iteration} "
            f"({meta.env_steps:,} env steps); run folder {run_dir}"
        )
    else:
        meta = CheckpointMeta(
            run_name=run_name,
            run_config=run,
            best_metric=options.best_metric,
            best_mode=options.best_mode or better_mode(options.best_metric),
        )
        print_fn(f"run {run_name}: folder {run_dir}")

    logger = WandbLogger(
        enabled=options.wandb,
        run_name=run_name,
        config={**run.to_dict(), "iterations": options.iterations},
        project=options.wandb_project,
        entity=options.wandb_entity,
        directory=run_dir,
        print_fn=print_fn,
    )
    best_path = _carry_best(options.resume, meta, run_dir) if previous is not None else None
    validator = Validator.for_run(run)
    validation: dict[str, float] = {}
    validated_at: int | None = None
    start = time.perf_counter()
    base_time = meta.time_total_s
    try:
        for i in range(options.iterations):
            metrics = iteration_metrics(algo.train())
            reached = options.env_steps is not None and metrics["env_steps"] >= options.env_steps
            last = reached or i == options.iterations - 1
            if last or due(int(metrics["env_steps"]), validated_at, run.eval_interval):
                policy = TrainedPolicy.from_algorithm(algo, run.policy_sharing)
                validation = validator(policy.act_batch)
                validated_at = int(metrics["env_steps"])
            metrics.update(validation)
            metrics["time_total_s"] = base_time + time.perf_counter() - start
            meta.history.append(metrics)
            meta.iteration = int(metrics["iteration"])
            meta.env_steps = int(metrics["env_steps"])
            meta.time_total_s = metrics["time_total_s"]
            print_fn(format_progress(metrics))
            logger.log(metrics, step=meta.iteration)
            value = metrics.get(meta.best_metric, math.nan)
            if improved(value, meta.best_value, meta.best_mode):
                meta.best_value, meta.best_iteration = float(value), meta.iteration
                best_path = save_checkpoint(algo, run_dir / BEST_DIR, meta)
            if options.checkpoint_freq and meta.iteration % options.checkpoint_freq == 0:
                save_checkpoint(algo, run_dir / checkpoint_name(meta.iteration), meta)
            if reached:
                break
        final_path = save_checkpoint(algo, run_dir / FINAL_DIR, meta)
    except KeyboardInterrupt:
        path = save_checkpoint(algo, run_dir / FINAL_DIR, meta)
        print_fn(f"interrupted: saved {path} (iteration {meta.iteration}); continue with --resume")
        logger.finish()
        algo.stop()
        raise
    except BaseException:
        logger.finish()
        algo.stop()
        raise
    algo.stop()
    print_fn(
        f"final checkpoint {final_path} (iteration {meta.iteration}, {meta.env_steps:,} env steps)"
    )
    if best_path is not None:
        print_fn(
            f"best checkpoint {best_path} ({meta.best_metric} {meta.best_mode} = "
            f"{meta.best_value:.4f} at iteration {meta.best_iteration})"
        )
    if best_path is not None and not best_path.exists():
        best_path = None

    evaluation = None
    if options.eval_days != 0:
        from tune_grid.evaluation.checkpoints import evaluate_checkpoint, format_table

        try:
            evaluation = evaluate_checkpoint(
                final_path, split=options.eval_split, days=options.eval_days
            )
        except ValueError as exc:  # e.g. more days than the split has: keep the trained run
            print_fn(f"evaluation skipped: {exc}")
            logger.finish()
            return TrainResult(run_name, run_dir, final_path, best_path, list(meta.history))
        print_fn(format_table(evaluation))
        print_fn(f"evaluation written to {final_path / 'evaluation.json'}")
        logger.summary(
            {
                f"{options.eval_split}/{name}/{key}": value
                for name, summary in evaluation["policies"].items()
                for key, value in summary.items()
            }
        )
    logger.finish()
    return TrainResult(
        run_name=run_name,
        run_dir=run_dir,
        final_checkpoint=final_path,
        best_checkpoint=best_path,
        history=list(meta.history),
        evaluation=evaluation,
    )
