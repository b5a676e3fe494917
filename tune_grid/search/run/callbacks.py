"""Tune callbacks of a search: incremental Parquet export and optional W&B logging.

Both run in the driver and never stop the search: a failure becomes one warning.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray.tune import Callback

from tune_grid.results.export import (
    SearchMeta,
    TrialRecord,
    iterations_table,
    records_from_parquet,
    trials_table,
    write_tables,
)
from tune_grid.results.parts import (
    WRITE_MODES,
    WriteMode,
    last_part_seq,
    merge_parts,
    write_part,
)

if TYPE_CHECKING:
    from ray.tune.stopper import Stopper

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
    """Mirror the search into Parquet in the driver at a cost per result that does not grow.

    Events only update the in-memory records and note what changed. At the end of every
    controller step in which Tune saved its experiment state (at the search file's
    ``export.flush_interval_s``, which ``run_tune`` passes to Tune, and whenever a trial wrote
    ``num_to_keep`` checkpoints since the last save), the callback copies that state atomically
    into ``tune_state.snapshot`` (see :mod:`tune_grid.search.run.resume_state`: Tune's own copy
    into the experiment folder runs in the background and may be stale or half written when the
    driver is killed). In such a step, at most every ``flush_interval_s`` seconds (0 with
    ``auto``: Tune spaces its saves), it then writes the iteration rows and trial rows
    that changed as one pair of part files (:mod:`tune_grid.results.parts`). So every trial and
    row the files show is one ``--resume`` knows about, and a flush costs what changed, not
    what the search holds.

    The parts are merged into ``trials.parquet`` and ``iterations.parquet`` at the first flush
    and at the end (both files rebuilt from the records, which also drops rows a restored trial
    abandoned), and in between whenever the time since the last merge exceeds the last merge's
    duration divided by ``merge_time_share`` (columnar, :func:`~tune_grid.results.parts.
    merge_parts`, about 0.2 s at 60,000 rows, or a rebuild, whichever was cheaper when each last
    ran: a rebuild of a small search takes a few ms, a fold some 25 ms): merging then takes at
    most that share of the driver's time however large the search grows, and the two files lag
    the parts by a bounded time (a second for a small search, about 10 s at 60,000 rows).

    ``write_mode="rewrite"`` is the previous behaviour, kept for ``tune-grid bench driver``:
    snapshot every step and rewrite both files whenever something changed.
    On a resumed search it starts from the Parquet files (and parts) already in ``results_dir``.
    """

    def __init__(
        self,
        results_dir: str | Path,
        meta: SearchMeta,
        *,
        flush_interval_s: float = 2.0,
        merge_time_share: float = 0.02,
        write_mode: WriteMode = "parts",
    ) -> None:
        if write_mode not in WRITE_MODES:
            raise ValueError(f"write_mode must be one of {WRITE_MODES}, got {write_mode!r}")
        if flush_interval_s < 0:
            raise ValueError(f"flush_interval_s must be >= 0, got {flush_interval_s}")
        if not 0 < merge_time_share <= 1:
            raise ValueError(f"merge_time_share must be in (0, 1], got {merge_time_share}")
        self.results_dir = str(Path(results_dir).resolve())
        self.meta = meta
        self.flush_interval_s = flush_interval_s
        self.merge_time_share = merge_time_share
        self.write_mode = write_mode
        self._records: dict[str, TrialRecord] = {}
        self._warned = False
        self._snapshot_warned = False
        self._snapshot_signature: Any = None
        self._staging_dir: Path | None = None
        self._changed_trials: set[str] = set()
        self._changed_rows: dict[str, set[int]] = {}
        self._seq = 0
        self._last_flush = -math.inf
        self._last_merge = -math.inf
        self._merge_s = 0.0
        self._rebuild_s = 0.0
        self._fold_s: float | None = None
        self._merged_once = False

    def setup(
        self,
        stop: Stopper | None = None,
        num_samples: int | None = None,
        total_num_samples: int | None = None,
        **info: Any,
    ) -> None:
        self._records = records_from_parquet(self.results_dir)
        self._seq = last_part_seq(self.results_dir)
        self._staging_dir = None
        self._snapshot_signature = None

    def _record(self, trial: Any) -> TrialRecord:
        record = self._records.get(trial.trial_id)
        if record is None:
            record = TrialRecord(trial_id=trial.trial_id)
            self._records[trial.trial_id] = record
        record.config = run_config_of(trial) or record.config
        record.path = getattr(trial, "path", None) or record.path
        self._changed_trials.add(record.trial_id)
        return record

    @property
    def pending(self) -> bool:
        """True when something changed since the last flush."""
        return bool(self._changed_trials)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        saved = self._snapshot(trials)
        if self.write_mode == "rewrite":
            if self.pending:
                self._flush(trials, merge=True)
            return
        # Only in a step where Tune saved its state (so the snapshot holds every trial and
        # checkpoint the rows show), at most every flush_interval_s.
        if saved and self.pending and time.monotonic() - self._last_flush >= self.flush_interval_s:
            self._flush(trials, merge=self._merge_due())

    def _merge_due(self) -> bool:
        if not self._merged_once:
            return True
        return time.monotonic() - self._last_merge >= self._merge_s / self.merge_time_share

    def _snapshot(self, trials: list) -> bool:
        """Copy the Tune state saved in this step into ``tune_state.snapshot`` (atomically).

        Called every step; costs one ``stat`` when Tune did not save in this step.
        Returns False exactly when Tune's staging state is unchanged since the last call.
        """
        from tune_grid.search.run.resume_state import (
            SNAPSHOT_FILE,
            snapshot_tune_state,
            staging_dir_of,
        )

        try:
            # One staging folder per Tune run (found again after each setup).
            staging = self._staging_dir = self._staging_dir or staging_dir_of(trials)
            if staging is None:
                return True
            previous = self._snapshot_signature
            self._snapshot_signature = snapshot_tune_state(
                staging, Path(self.results_dir), previous
            )
            return self._snapshot_signature != previous
        except Exception as exc:  # noqa: BLE001 - the search goes on; Tune's own copy remains
            # An outdated snapshot must not win over Tune's copy on --resume: remove it.
            self._snapshot_signature = None
            with contextlib.suppress(OSError):
                (Path(self.results_dir) / SNAPSHOT_FILE).unlink(missing_ok=True)
            if not self._snapshot_warned:
                warnings.warn(f"experiment state snapshot failed: {exc}", stacklevel=2)
                self._snapshot_warned = True
            return True

    def _flush(self, trials: list, merge: bool, rebuild: bool = False) -> None:
        """Write what changed as part files; with ``merge``, fold them into the two files.

        The first merge of a run, one after a failed write, the last one (``rebuild``), every
        merge in ``rewrite`` mode and one where rebuilding was the cheaper way rebuild both files
        from the records instead.
        """
        changed = {t: self._records[t] for t in self._changed_trials if t in self._records}
        rows = {t: self._changed_rows.get(t, set()) for t in changed}
        self._changed_trials = set()
        self._changed_rows = {}
        self._last_flush = time.monotonic()
        try:
            # Folding the parts in is cheaper for a large search, rebuilding for a small one (a
            # few ms): take the way that was cheaper when each last ran (fold once to learn).
            folds_cheaper = self._fold_s is None or self._fold_s < self._rebuild_s
            rebuild = rebuild or self.write_mode == "rewrite" or not self._merged_once
            if merge and (rebuild or not folds_cheaper):
                start = time.perf_counter()
                write_tables(self.results_dir, self._records.values(), self.meta, None, self._seq)
                self._rebuild_s = self._merged(start)
                return
            if changed:
                self._seq += 1
                write_part(
                    self.results_dir,
                    self._seq,
                    iterations_table(changed.values(), self.meta, only=rows),
                    "iterations",
                )
                write_part(
                    self.results_dir, self._seq, trials_table(changed.values(), self.meta), "trials"
                )
            if merge:
                start = time.perf_counter()
                merge_parts(self.results_dir)
                self._fold_s = self._merged(start)
        except Exception as exc:  # noqa: BLE001 - the search goes on; the final export retries
            # Try again at the next flush (with a full rewrite, which includes what failed).
            self._changed_trials |= set(changed)
            self._merged_once = False
            if not self._warned:
                warnings.warn(f"incremental Parquet export failed: {exc}", stacklevel=2)
                self._warned = True

    def _merged(self, start: float) -> float:
        """Note a merge that began at ``start``; return its duration."""
        self._merge_s = time.perf_counter() - start
        self._last_merge = time.monotonic()
        self._merged_once = True
        return self._merge_s

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._record(trial).status = "RUNNING"

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        record = self._record(trial)
        record.status = "RUNNING"
        added = record.add_result(result)
        if added is not None:
            self._changed_rows.setdefault(record.trial_id, set()).add(added)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._record(trial).status = "TERMINATED"

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._record(trial).status = "ERROR"

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._snapshot(trials)  # Tune's final save, made just before
        for trial in trials:
            self._record(trial).status = str(trial.status)
        self._flush(trials, merge=True, rebuild=True)


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

    def setup(
        self,
        stop: Stopper | None = None,
        num_samples: int | None = None,
        total_num_samples: int | None = None,
        **info: Any,
    ) -> None:
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

            from tune_grid.training.wandb_logging import wandb_mode

            run = wandb.init(
                project=self.project,
                entity=self.entity,
                group=self.group,
                name=f"{self.group}_{trial.trial_id}",
                id=f"{self.group}_{trial.trial_id}",
                config=run_config_of(trial),
                dir=self.directory,
                mode=getattr(self, "_mode", wandb_mode(os.environ.get("WANDB_MODE", "offline"))),
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
