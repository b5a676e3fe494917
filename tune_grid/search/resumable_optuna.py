"""An OptunaSearch that survives a driver killed between Optuna's record and Tune's snapshot."""

from __future__ import annotations

from optuna.exceptions import UpdateFinishedTrialError
from ray.tune.search.optuna import OptunaSearch


class ResumableOptunaSearch(OptunaSearch):
    """OptunaSearch that tolerates results of trials Optuna already closed.

    The SQLite study is written at once, Tune's experiment state only every few seconds. If the
    driver dies in between, ``--resume`` restores a trial Optuna has already completed as
    unfinished, and it reports its last iteration again. Optuna's record stands, and the trial
    is treated as complete (OptunaSearch then ignores its further results).
    """

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        try:
            super().on_trial_result(trial_id, result)
        except UpdateFinishedTrialError:
            self._completed_trials.add(trial_id)
