"""Tune callbacks of a search: incremental Parquet export and optional W&B logging.

Both run in the driver and never stop the search: a failure becomes one warning.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from pathlib import Path
from typing import Any

from ray.tune import Callback

from tune_grid.results.export import (
    SearchMeta,
    TrialRecord,
    records_from_parquet,
    write_tables,
)

_RUN_KEYS: set[str] | None = None


def _run_keys() -> set[str]:
    global _RUN_KEYS
    if _RUN_KEYS is None:
        from tune_grid.config import RUN_KEYS

        _RUN_KEYS = set(RUN_KEYS)
    return _RUN_KEYS


def run_config_of(trial: Any) -> dict[str, Any]:
    """The trial's run-config keys (Tune adds its own entries to ``trial.config``)."""
    return {k: v for k, v in dict(trial.config).items() if k in _run_keys()}


class ParquetExportCallback(Callback):
    """Rewrite ``trials.parquet`` and ``iterations.parquet`` after every result and status change.

    Events only update the records; the files are written at the end of Tune's controller step,
    after Tune saved its experiment state to its staging folder in that step (``run_tune`` sets
    the snapshot period to every step) and after this callback copied that state atomically into
    ``tune_state.snapshot`` (see :mod:`tune_grid.search.resume_state`; Tune's own copy into the
    experiment folder runs in the background and may be stale or half written when the driver is
    killed). So every trial the files show is one ``--resume`` knows about.
    On a resumed search it starts from the Parquet files already in ``results_dir``.
    """

    def __init__(self, results_dir: str | Path, meta: SearchMeta) -> None:
        self.results_dir = str(Path(results_dir).resolve())
        self.meta = meta
        self._records: dict[str, TrialRecord] = {}
        self._warned = False
        self._snapshot_warned = False
        self._snapshot_signature: Any = None
        self._dirty = False

    def setup(self, **info: Any) -> None:
        self._records = records_from_parquet(self.results_dir)

    def _record(self, trial: Any) -> TrialRecord:
        record = self._records.get(trial.trial_id)
        if record is None:
            record = TrialRecord(trial_id=trial.trial_id)
            self._records[trial.trial_id] = record
        record.config = run_config_of(trial) or record.config
        record.path = getattr(trial, "path", None) or record.path
        return record

    def _write(self) -> None:
        self._dirty = True

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._snapshot(trials)
        if self._dirty:
            self._flush()

    def _snapshot(self, trials: list) -> None:
        """Copy the Tune state saved in this step into ``tune_state.snapshot`` (atomically)."""
        from tune_grid.search.resume_state import (
            SNAPSHOT_FILE,
            snapshot_tune_state,
            staging_dir_of,
        )

        try:
            staging = staging_dir_of(trials)
            if staging is not None:
                self._snapshot_signature = snapshot_tune_state(
                    staging, Path(self.results_dir), self._snapshot_signature
                )
        except Exception as exc:  # noqa: BLE001 - the search goes on; Tune's own copy remains
            # An outdated snapshot must not win over Tune's copy on --resume: remove it.
            self._snapshot_signature = None
            with contextlib.suppress(OSError):
                (Path(self.results_dir) / SNAPSHOT_FILE).unlink(missing_ok=True)
            if not self._snapshot_warned:
                warnings.warn(f"experiment state snapshot failed: {exc}", stacklevel=2)
                self._snapshot_warned = True

    def _flush(self) -> None:
        self._dirty = False
        try:
            write_tables(self.results_dir, self._records.values(), self.meta)
        except Exception as exc:  # noqa: BLE001 - the search goes on; the final export retries
            if not self._warned:
                warnings.warn(f"incremental Parquet export failed: {exc}", stacklevel=2)
                self._warned = True

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._record(trial).status = "RUNNING"
        self._write()

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        record = self._record(trial)
        record.status = "RUNNING"
        record.add_result(result)
        self._write()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._record(trial).status = "TERMINATED"
        self._write()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._record(trial).status = "ERROR"
        self._write()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._snapshot(trials)  # Tune's final save, made just before
        for trial in trials:
            self._record(trial).status = str(trial.status)
        self._flush()


class WandbTrialCallback(Callback):
    """One W&B run per trial, grouped by experiment, with the flat run config as its config.

    Runs offline without an API key or network (``WANDB_MODE=offline``); any W&B error turns
    logging off with one warning.
    """

    def __init__(self, project: str, group: str, directory: str | Path, entity: str | None = None):
        self.project = project
        self.group = group
        self.entity = entity
        self.directory = str(Path(directory).resolve())
        self._runs: dict[str, Any] = {}
        self._disabled = False

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_runs"] = {}
        return state

    def _fail(self, what: str, exc: BaseException) -> None:
        warnings.warn(f"W&B {what} failed, logging disabled: {exc}".splitlines()[0], stacklevel=2)
        self._disabled = True

    def setup(self, **info: Any) -> None:
        try:
            from tune_grid.training.wandb_logging import decide_mode

            mode = decide_mode()
            if mode == "offline":
                os.environ["WANDB_MODE"] = "offline"
            self._mode = mode
            Path(self.directory).mkdir(parents=True, exist_ok=True)
        except Exception as exc:  # noqa: BLE001
            self._fail("setup", exc)

    def _run(self, trial: Any) -> Any:
        if self._disabled:
            return None
        run = self._runs.get(trial.trial_id)
        if run is not None:
            return run
        try:
            import wandb

            run = wandb.init(
                project=self.project,
                entity=self.entity,
                group=self.group,
                name=f"{self.group}_{trial.trial_id}",
                id=f"{self.group}_{trial.trial_id}",
                config=run_config_of(trial),
                dir=self.directory,
                mode=getattr(self, "_mode", os.environ.get("WANDB_MODE", "offline")),
                reinit="create_new",
                resume="allow",
                settings=wandb.Settings(init_timeout=30, console="off", silent=True),
            )
        except Exception as exc:  # noqa: BLE001 - W&B must never stop the search
            self._fail("init", exc)
            return None
        self._runs[trial.trial_id] = run
        return run

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        run = self._run(trial)
        if run is None:
            return
        metrics = {
            k: v
            for k, v in result.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        }
        try:
            run.log(metrics, step=int(result.get("iteration", result.get("training_iteration", 0))))
        except Exception as exc:  # noqa: BLE001
            self._fail("log", exc)

    def _finish(self, trial: Any) -> None:
        run = self._runs.pop(trial.trial_id, None)
        if run is None:
            return
        try:
            run.finish()
        except Exception as exc:  # noqa: BLE001
            self._fail("finish", exc)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        for trial in trials:
            self._finish(trial)
        if getattr(self, "_mode", "") == "offline" and not self._disabled:
            print(
                f"W&B: offline runs in {self.directory}/wandb; upload them later with: "
                f"wandb sync {self.directory}/wandb/offline-run-*"
            )
