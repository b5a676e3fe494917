"""An OptunaSearch that survives a driver killed between Optuna's record and Tune's snapshot."""

from __future__ import annotations

import logging

from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

logger = logging.getLogger(__name__)


class ResumableOptunaSearch(OptunaSearch):
    """OptunaSearch that tolerates the Optuna study being ahead of Tune's restored state.

    The SQLite study is written at once; Tune's experiment state is saved once per controller
    step (and restored from ``tune_state.snapshot``, see :mod:`tune_grid.search.run.resume_state`).
    If the driver dies in between, ``--resume`` restores:

    * a trial Optuna has already completed as unfinished, and it reports its last iteration
      again. Optuna's record stands, and the trial is treated as complete (OptunaSearch then
      ignores its further results);
    * no trial for an Optuna trial asked after the saved state (Tune asks again for a new one).
      Such a study trial would stay RUNNING forever; it is closed as FAIL on restore.
    """

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        try:
            super().on_trial_result(trial_id, result)
        except UpdateFinishedTrialError:
            self._completed_trials.add(trial_id)

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        self._fail_orphans()

    def _fail_orphans(self) -> None:
        """Close study trials left RUNNING that the restored searcher does not know."""
        study = self._ot_study
        if study is None:
            return
        known = {getattr(t, "_trial_id", None) for t in self._ot_trials.values()}
        try:
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        except Exception as exc:  # noqa: BLE001 - never block a resume on this bookkeeping
            logger.warning("could not list running Optuna trials: %s", exc)
            return
        for frozen in running:
            if frozen._trial_id in known:
                continue
            try:
                study.tell(frozen.number, state=TrialState.FAIL)
            except Exception as exc:  # noqa: BLE001
                logger.warning("could not close orphaned Optuna trial %s: %s", frozen.number, exc)
