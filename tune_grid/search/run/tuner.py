"""Build, run and resume the Tune experiment of a search file.

Layout of ``<storage>/<experiment>/`` (Tune's experiment directory is the results folder itself):
``trials.parquet``, ``iterations.parquet``, ``optuna.db`` (algorithm optuna), ``search.yaml`` (the
file as given), ``search.json`` (validated), ``baselines.json`` and ``test_evaluation.json``
(held-out evaluation), Tune's state files, ``tune_state.snapshot`` (a consistent copy of Tune's
state for ``--resume``, see :mod:`tune_grid.search.run.resume_state`) and one ``trial_<id>/`` folder
per trial.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tune_grid.errors import TuneGridError
from tune_grid.results.export import (
    SearchMeta,
    write_search_meta,
)
from tune_grid.results.schema import ITERATIONS_FILE, TRIALS_FILE
from tune_grid.search.run.oracle_tasks import solve_on_ray
from tune_grid.search.run.resources import TrialResources, trial_resources_of
from tune_grid.search.run.resume_state import SNAPSHOT_FILE
from tune_grid.search.run.trainable import FAIL_ONCE_ENV, TrialSettings, train_trial
from tune_grid.search.spec.space_file import SpaceFile, SpaceFileError, parse_space
from tune_grid.search.spec.spaces import tune_param_space

OPTUNA_DB = "optuna.db"
SPACE_COPY = "search.yaml"
METRIC_COLUMNS = {
    "training_iteration": "iter",
    "objective": "objective",
    "episode_return_mean": "return",
    "daily_cost_mean": "cost/day",
    "safety_mean": "safety",
    "violation_hours_mean": "viol.h",
    "val_objective": "val obj $",
    "val_gap": "val gap",
    "env_steps": "env steps",
}


class SearchError(TuneGridError, RuntimeError):
    """A search cannot start or resume (existing results, nothing to resume, bad storage)."""


@dataclass
class SearchOptions:
    """Command-line options of ``tune-grid search`` (the search file holds everything else)."""

    address: str | None = None
    """None: start a local Ray; ``auto`` or ``ray://host:port``: join a running cluster."""
    storage: str | None = None
    """Folder (or ``file://`` URI) holding ``<name>/``; default the file's ``storage`` key."""
    name: str | None = None
    """Experiment name (default the file's ``experiment``)."""
    resume: bool = False
    wandb: bool = False
    evaluate: bool = True
    confirm: bool = True
    """Run the search file's ``confirm:`` stage (fresh-seed racing of the finalists)."""
    print_answer: bool = True
    """End the output with the confirmed answer (``quickstart`` prints it after its report)."""
    num_cpus: int | None = None
    """CPUs of a local Ray (default all)."""
    verbose: int = 1
    ray_init_kwargs: dict[str, Any] | None = None


@dataclass(frozen=True)
class SearchPaths:
    """Where a search's files go."""

    storage_root: Path
    results_dir: Path

    @property
    def optuna_db(self) -> Path:
        return self.results_dir / OPTUNA_DB

    @property
    def optuna_url(self) -> str:
        return f"sqlite:///{self.optuna_db}"


def resolve_paths(spec: SpaceFile, storage: str | None) -> SearchPaths:
    """``<storage>/<experiment>`` as absolute local paths (a ``file://`` URI is a local path)."""
    raw = storage or spec.storage
    if "://" in raw:
        scheme, _, rest = raw.partition("://")
        if scheme != "file":
            raise SearchError(
                f"storage {raw!r}: only local or shared-filesystem paths are supported "
                "(mount the bucket, or use an NFS path every node can reach)"
            )
        raw = rest
    root = Path(raw).expanduser().resolve()
    return SearchPaths(storage_root=root, results_dir=root / spec.experiment)


def search_meta(spec: SpaceFile) -> SearchMeta:
    """The exporter's view of a search file."""
    return SearchMeta(
        experiment=spec.experiment,
        seeds=spec.seeds,
        metric=spec.metric,
        mode=spec.resolved_mode,
        stop=dict(spec.stop.items()),
        param_names=tuple(sorted({*spec.fixed, *spec.initial_space})),
        early_stop=spec.scheduler.kind.stops.name,
    )


def trial_dirname(trial: Any) -> str:
    """Short, parseable trial folder names: ``trial_<trial_id>``."""
    return f"trial_{trial.trial_id}"


def trial_resources(config: dict[str, Any], resources: TrialResources, seeds: int) -> Any:
    """The trial's placement group: its process (all seeds' learners: CPUs, GPUs, memory), then
    one bundle per remote env runner (:class:`~tune_grid.search.run.resources.TrialResources`)."""
    from ray.tune import PlacementGroupFactory

    return PlacementGroupFactory(resources.bundles(config, seeds))


def _fail_once() -> tuple[str, int] | None:
    value = os.environ.get(FAIL_ONCE_ENV)
    if not value:
        return None
    marker, _, iteration = value.rpartition(":")
    return marker, int(iteration)


def validation_oracle(
    spec: SpaceFile, print_fn: Callable[[str], None] = print
) -> dict[str, dict[str, float]]:
    """The oracle's objective per validation day under the search's fixed env config, keyed by
    :func:`tune_grid.oracle.config_key` (``validation.oracle: false``: none, no ``val_gap``).

    Solved here, once, before any trial starts (read from the oracle's disk cache after the
    first search); trials whose searched keys change the oracle's problem report no gap.
    """
    if not spec.validation.oracle:
        return {}
    from tune_grid.config import RunConfig
    from tune_grid.oracle import config_key
    from tune_grid.training.validation import oracle_objectives, validation_days

    run = RunConfig.from_dict(spec.fixed_config())
    print_fn(
        f"oracle: {len(validation_days(run))} validation days, spread over the cluster's CPUs "
        "(seconds per day not yet in the oracle cache)"
    )
    try:
        table = oracle_objectives(run, solve=solve_on_ray)
    except Exception as exc:  # noqa: BLE001 - the gap is optional; the search is not
        print_fn(f"warning: oracle failed, no val_gap: {str(exc).splitlines()[0]}")
        return {}
    return {config_key(run.env_config()): table}


def make_trainable(spec: SpaceFile, oracle: dict[str, dict[str, float]] | None = None) -> Any:
    """``train_trial`` bound to the search's settings (and the validation days' oracle
    objectives, see :func:`validation_oracle`) and per-trial resources."""
    from ray import tune

    settings = TrialSettings(
        experiment=spec.experiment,
        seeds=spec.seeds,
        metric=spec.metric,
        mode=spec.resolved_mode,
        stop=dict(spec.stop.items()),
        fail_once=_fail_once(),
        every_iteration=spec.scheduler.kind.population,
        oracle=dict(oracle or {}),
    )
    resources = functools.partial(
        trial_resources, resources=trial_resources_of(spec), seeds=spec.seeds
    )
    return tune.with_resources(tune.with_parameters(train_trial, settings=settings), resources)


def make_searcher(spec: SpaceFile, paths: SearchPaths) -> Any:
    """The Tune searcher of the file's ``search.algorithm`` (its registry entry builds it;
    Optuna's study persists in ``optuna.db``)."""
    return spec.search.kind.build(spec, paths.optuna_url)


def make_scheduler(spec: SpaceFile) -> Any:
    """The Tune scheduler of the file's ``scheduler.type`` (its registry entry builds it)."""
    return spec.scheduler.kind.build(spec)


def param_space(spec: SpaceFile) -> dict[str, Any]:
    """Tune's ``param_space``: fixed keys, plus domains unless Optuna samples them."""
    space = tune_param_space(spec)
    if spec.search.kind.holds_space:
        return {k: v for k, v in space.items() if k not in spec.space}
    return space


def num_samples(spec: SpaceFile) -> int:
    """``num_samples``; for grid search it counts repeats of the grid (default once)."""
    if spec.search.kind.grid and "num_samples" not in spec.model_fields_set:
        return 1
    return spec.num_samples


def make_reporter(spec: SpaceFile) -> Any:
    """Tune's CLI reporter with the objective and key metrics."""
    from ray.tune import CLIReporter

    return CLIReporter(
        metric_columns=dict(METRIC_COLUMNS),
        parameter_columns=list(spec.initial_space),
        max_report_frequency=30,
        sort_by_metric=True,
    )


def make_callbacks(spec: SpaceFile, paths: SearchPaths, wandb: bool) -> list[Any]:
    """Incremental Parquet export, plus W&B logging with ``--wandb``."""
    from ray.tune.logger import JsonLoggerCallback

    from tune_grid.search.run.callbacks import ParquetExportCallback, WandbTrialCallback

    callbacks: list[Any] = [
        JsonLoggerCallback(),  # each trial's result.json (Tune's other loggers are off)
        ParquetExportCallback(
            paths.results_dir,
            search_meta(spec),
            flush_interval_s=spec.export.callback_flush_interval_s,
            merge_time_share=spec.export.merge_time_share,
        ),
    ]
    if wandb:
        callbacks.append(
            WandbTrialCallback(
                project=spec.wandb.project,
                group=spec.experiment,
                directory=paths.results_dir,
                entity=spec.wandb.entity,
            )
        )
    return callbacks


def make_tuner(
    spec: SpaceFile,
    paths: SearchPaths,
    *,
    wandb: bool = False,
    verbose: int = 1,
    oracle: dict[str, dict[str, float]] | None = None,
) -> Any:
    """A fresh Tuner for the search file (``tune.Tuner``; never a registered string)."""
    from ray import tune

    mode = spec.resolved_mode
    # A population scheduler clones recent checkpoints of top trials: keep the newest ones.
    score = None if spec.scheduler.kind.population else "objective"
    run_config = tune.RunConfig(
        name=spec.experiment,
        storage_path=str(paths.storage_root),
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=spec.checkpoint_num_to_keep,
            checkpoint_score_attribute=score,
            checkpoint_score_order=mode,
        ),
        callbacks=make_callbacks(spec, paths, wandb),
        progress_reporter=make_reporter(spec),
        verbose=verbose,
    )
    tune_config = tune.TuneConfig(
        metric="objective",
        mode=mode,
        search_alg=make_searcher(spec, paths),
        scheduler=make_scheduler(spec),
        num_samples=num_samples(spec),
        trial_dirname_creator=trial_dirname,
        trial_name_creator=trial_dirname,
    )
    return tune.Tuner(
        make_trainable(spec, oracle),
        param_space=param_space(spec),
        tune_config=tune_config,
        run_config=run_config,
    )


def has_experiment(results_dir: Path) -> bool:
    """True when the folder already holds a search (Tune state or Parquet files)."""
    if not results_dir.exists():
        return False
    markers = [TRIALS_FILE, ITERATIONS_FILE, "tuner.pkl"]
    return any((results_dir / m).exists() for m in markers) or any(
        results_dir.glob("experiment_state-*.json")
    )


def load_saved_spec(results_dir: Path) -> SpaceFile | None:
    """The validated search file saved at the start of the search (for ``--resume``)."""
    import json

    path = results_dir / "search.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text()).get("spec")
    return parse_space(data, path) if data else None


def prepare(
    spec: SpaceFile, options: SearchOptions, space_path: str | Path | None
) -> tuple[SpaceFile, SearchPaths]:
    """Check the results folder for a fresh start or a resume; write search.yaml/json."""
    from ray import tune

    spec = spec.with_name(options.name)
    paths = resolve_paths(spec, options.storage)
    if options.resume:
        if not tune.Tuner.can_restore(str(paths.results_dir)):
            raise SearchError(f"{paths.results_dir}: no Tune experiment to resume")
        saved = load_saved_spec(paths.results_dir)
        if saved is not None:
            spec = saved
        return spec, paths
    if has_experiment(paths.results_dir):
        raise SearchError(
            f"{paths.results_dir} already holds a search: continue it with --resume, "
            "or pick another --name/--storage"
        )
    try:
        paths.results_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SearchError(
            f"storage: cannot create {paths.results_dir} ({exc.strerror or exc}); "
            "give --storage a folder you can write to"
        ) from None
    # A study without Tune state is left over from a search that failed before its first trial.
    paths.optuna_db.unlink(missing_ok=True)
    (paths.results_dir / SNAPSHOT_FILE).unlink(missing_ok=True)
    if space_path is not None:
        shutil.copyfile(space_path, paths.results_dir / SPACE_COPY)
    write_search_meta(paths.results_dir, search_meta(spec), spec)
    return spec, paths


def init_ray(options: SearchOptions) -> bool:
    """Start a local Ray (or connect to ``--address``); True when this call started it. Trial
    and confirmation workers get a fixed string-hash seed, so a seed repeats a trial across
    searches (:func:`~tune_grid.training.runner.reproducible_runtime_env`)."""
    import ray

    from tune_grid.training.runner import reproducible_runtime_env

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = dict(options.ray_init_kwargs or {})
    kwargs["runtime_env"] = reproducible_runtime_env(kwargs.get("runtime_env"))
    kwargs.setdefault("log_to_driver", options.verbose >= 2)
    kwargs.setdefault("logging_level", logging.WARNING)
    if options.address is None:  # a local Ray of this command only
        _export_pythonpath()
        kwargs.setdefault("include_dashboard", False)
        if options.num_cpus:
            kwargs.setdefault("num_cpus", options.num_cpus)
    ray.init(address=options.address, **kwargs)
    return True


def _export_pythonpath() -> None:
    """Let a local Ray's workers import tune_grid even when it is not pip-installed."""
    root = str(Path(__file__).resolve().parents[2])
    current = os.environ.get("PYTHONPATH", "")
    if root not in current.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, current) if p)


def configure_tune_env(state_period: str = "2") -> None:
    """Tune settings of every tune-grid search driver (environment variables, if unset).

    :param state_period: how often Tune saves its experiment state, in seconds or ``auto``
        (besides the saves it forces when a trial wrote ``num_to_keep`` checkpoints since the
        last one); the Parquet export flushes in steps with a save (``export.flush_interval_s``
        of the search file, :attr:`ExportSettings.tune_state_period`).
    """
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's CLIReporter table
    # Every iteration checkpoints, so Tune snapshots its state often: wanted for --resume.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Save the experiment state at this period (not Tune's adaptive >= 10 s); the Parquet
    # callback copies each save into tune_state.snapshot and writes the Parquet mirror only in a
    # step with a save: a driver killed at any moment then leaves no trial or row in the
    # Parquet files that --resume does not know. (`tune-grid bench driver` measures the cost.)
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", state_period)
    # Tune's automatic CSV and TensorBoard loggers cost the driver milliseconds per result and
    # nothing reads them; result.json (read by `tune-grid export`) comes from the JSON logger
    # that make_callbacks adds.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")


def run_tune(
    spec: SpaceFile,
    paths: SearchPaths,
    options: SearchOptions,
    print_fn: Callable[[str], None] = print,
    oracle: dict[str, dict[str, float]] | None = None,
) -> Any:
    """Fit a fresh Tuner or restore and continue an interrupted one; return the ResultGrid.
    ``oracle``: the validation days' oracle (:func:`validation_oracle`; None: solve it here)."""
    from ray import tune

    configure_tune_env(spec.export.tune_state_period)
    if oracle is None:
        oracle = validation_oracle(spec, print_fn)
    if options.resume:
        _repair_state(paths, print_fn)
        tuner = tune.Tuner.restore(
            str(paths.results_dir),
            trainable=make_trainable(spec, oracle),
            resume_unfinished=True,
            resume_errored=True,
            restart_errored=False,
            param_space=param_space(spec),
        )
    else:
        tuner = make_tuner(spec, paths, wandb=options.wandb, verbose=options.verbose, oracle=oracle)
    return tuner.fit()


def _repair_state(paths: SearchPaths, print_fn: Callable[[str], None]) -> None:
    """Put back the newest complete Tune state before Tune restores (see ``resume_state``).

    Without it a state file left empty or stale by a killed driver makes Tune log "Failed to
    restore the run state" and start a new experiment, losing every trial.
    """
    from tune_grid.search.run.resume_state import ResumeStateError, repair_tune_state

    try:
        report = repair_tune_state(paths.results_dir)
    except ResumeStateError as exc:
        raise SearchError(str(exc)) from exc
    if report.changed:
        source = "the last step's snapshot" if report.from_snapshot else "an earlier session"
        print_fn(
            "resume: Tune's saved experiment state was incomplete or out of date (driver killed "
            f"while Tune copied it); restored {len(report.trial_ids)} trials from {source}"
        )


__all__ = [
    "SearchError",
    "SearchOptions",
    "SearchPaths",
    "SpaceFileError",
    "make_tuner",
    "resolve_paths",
]
