"""A consistent copy of Tune's experiment state, so ``--resume`` survives a driver killed anywhere.

Tune (Ray 2.60) writes its experiment state (``experiment_state-<session>.json``, the search
algorithm's ``search_gen_state-*`` / ``searcher-state-*`` / ``basic-variant-state-*`` and
``callback-states-*``) to a driver staging folder under ``/tmp/ray/session_*``, then copies that
folder into the experiment folder in a background thread (``pyarrow.fs.copy_files``). The copy is
not atomic: each destination file is truncated, then written, while the next controller step may
already be rewriting the staging files. A driver killed during a copy leaves an empty or half
written newest state file; a driver killed while a copy is skipped or pending leaves a state older
than what ``trials.parquet`` shows. Tune's restore then fails, logs "Failed to restore the run
state", and silently starts a fresh experiment (one sample, new trial ids); the final export then
replaces ``trials.parquet`` with that one trial.

So, at the end of every controller step (after Tune saved the state to the staging folder in that
step, before the Parquet mirror is written), :func:`snapshot_tune_state` copies the newest
session's state files from the staging folder into one file, ``tune_state.snapshot`` in the
results folder, written atomically (temporary file, then rename); the final save of a run is
copied too (``on_experiment_end``). Before ``Tuner.restore``, :func:`repair_tune_state` writes
the snapshot's files back into the experiment folder, and moves state files of later sessions to
``.tune_state_discarded/`` so Tune does not pick them. The snapshot wins even over a copy that
claims a later controller step: such a copy can only come from Tune's background thread copying
the staging files while the next step rewrote them, so its files may belong to two saves (a trial
list of one step with the search algorithm's counter of the step before). Without a snapshot
(a search started before it existed, or a snapshot that could not be written, which is then
removed) the newest complete session in the experiment folder is used.

The snapshot file is neither ``.json`` nor ``.pkl``: Tune downloads those from the experiment
folder on restore and uploads them again, which would overwrite the snapshot with an old copy.
"""

from __future__ import annotations

import json
import os
import pickle
import pickletools
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tune_grid.errors import TuneGridError

SNAPSHOT_FILE = "tune_state.snapshot"
DISCARDED_DIR = ".tune_state_discarded"
_VERSION = 1
_EXPERIMENT_STATE = "experiment_state-"
# File name prefixes of Tune's experiment state (TuneController, SearchGenerator, Searcher,
# BasicVariantGenerator, CallbackList), each followed by ``<session>.json`` or ``<session>.pkl``.
STATE_PREFIXES = (
    _EXPERIMENT_STATE,
    "search_gen_state-",
    "searcher-state-",
    "basic-variant-state-",
    "callback-states-",
)
_STATE_NAME = re.compile(
    r"^(?P<kind>"
    + "|".join(re.escape(p) for p in STATE_PREFIXES)
    + r")(?P<session>.+)\.(json|pkl)$"
)


def state_file_kind(name: str) -> tuple[str, str] | None:
    """(kind prefix, session) of a Tune state file name, else None (temporary files included)."""
    match = _STATE_NAME.match(name)
    if match is None:
        return None
    return match["kind"], match["session"]


def _state_files(directory: Path) -> dict[str, dict[str, Path]]:
    """Tune state files of a folder (top level only), by session, then by kind."""
    sessions: dict[str, dict[str, Path]] = {}
    if not directory.is_dir():
        return sessions
    for path in directory.iterdir():
        parsed = state_file_kind(path.name)
        if parsed is None or not path.is_file():
            continue
        kind, session = parsed
        sessions.setdefault(session, {})[kind] = path
    return sessions


# --- snapshot (called by the Parquet export callback at the end of every controller step) ------


def staging_dir_of(trials: list[Any]) -> Path | None:
    """Tune's driver staging folder of the running experiment (None without trials)."""
    for trial in trials[:1]:
        storage = getattr(trial, "storage", None)
        path = getattr(storage, "experiment_driver_staging_path", None) if storage else None
        if path:
            return Path(path)
    return None


Signature = tuple[tuple[str, int, int], ...]


def snapshot_tune_state(
    staging_dir: Path, results_dir: Path, previous: Signature | None = None
) -> Signature | None:
    """Copy the newest session's state files from ``staging_dir`` into ``results_dir``.

    Tune writes the staging files synchronously in the controller's thread, so between two
    controller steps they are complete and belong to one save. Returns the files' signature
    (names, mtimes, sizes); nothing is written when it equals ``previous``.

    Every save rewrites ``experiment_state-<session>.json`` first, so while that file's mtime
    and size are those in ``previous``, Tune did not save: one ``stat``, no folder listing.
    """
    if previous is not None and _unchanged_since(staging_dir, previous):
        return previous
    sessions = {
        s: kinds for s, kinds in _state_files(staging_dir).items() if _EXPERIMENT_STATE in kinds
    }
    if not sessions:
        return previous
    session = max(sessions)
    files = sessions[session]
    stats = {kind: path.stat() for kind, path in files.items()}
    signature: Signature = tuple(
        sorted((files[k].name, st.st_mtime_ns, st.st_size) for k, st in stats.items())
    )
    if signature == previous:
        return previous
    payload = {
        "version": _VERSION,
        "session": session,
        "files": {path.name: path.read_bytes() for path in files.values()},
    }
    _atomic_write(results_dir / SNAPSHOT_FILE, pickle.dumps(payload, protocol=4))
    return signature


def _unchanged_since(staging_dir: Path, signature: Signature) -> bool:
    """Whether the experiment state file of ``signature`` still has its mtime and size."""
    for name, mtime_ns, size in signature:
        if name.startswith(_EXPERIMENT_STATE):
            try:
                st = (staging_dir / name).stat()
            except OSError:
                return False
            return (st.st_mtime_ns, st.st_size) == (mtime_ns, size)
    return False


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --- repair (called before Tuner.restore) -------------------------------------------------------


@dataclass
class StateSet:
    """One session's state files, complete and readable, and the controller step they saved."""

    session: str
    files: dict[str, bytes] = field(default_factory=dict)
    """File name -> content."""
    iteration: int = -1
    trial_ids: tuple[str, ...] = ()
    from_snapshot: bool = False


def _pickle_complete(data: bytes) -> bool:
    """True when ``data`` is a whole pickle (read to its STOP opcode, nothing is unpickled)."""
    if not data:
        return False
    try:
        for opcode, _, _ in pickletools.genops(data):
            if opcode.name == "STOP":
                return True
    except Exception:  # noqa: BLE001 - truncated or garbage
        return False
    return False


def _experiment_state_info(data: bytes) -> tuple[int, tuple[str, ...]] | None:
    """(controller step, trial ids) of an ``experiment_state-*.json``, None when unreadable."""
    try:
        state = json.loads(data)
        trial_ids = []
        for trial_json, _ in state["trial_data"]:
            trial = json.loads(trial_json) if isinstance(trial_json, str) else trial_json
            trial_ids.append(str(trial["trial_id"]))
        iteration = state["runner_data"].get("_iteration", -1)
        return int(iteration if iteration is not None else -1), tuple(trial_ids)
    except Exception:  # noqa: BLE001 - truncated, empty, or not Tune's format
        return None


def check_state_set(
    session: str, files: dict[str, bytes], required_kinds: set[str], from_snapshot: bool = False
) -> StateSet | None:
    """The session's :class:`StateSet`, or None when a file is unreadable or a kind is missing."""
    kinds: dict[str, bytes] = {}
    for name, data in files.items():
        parsed = state_file_kind(name)
        if parsed is None or parsed[1] != session:
            continue
        kinds[parsed[0]] = data
    if _EXPERIMENT_STATE not in kinds or not required_kinds <= set(kinds):
        return None
    info = _experiment_state_info(kinds[_EXPERIMENT_STATE])
    if info is None:
        return None
    for kind, data in kinds.items():
        if kind != _EXPERIMENT_STATE and not _pickle_complete(data):
            return None
    return StateSet(
        session=session,
        files=dict(files),
        iteration=info[0],
        trial_ids=info[1],
        from_snapshot=from_snapshot,
    )


def read_snapshot(results_dir: Path) -> tuple[str, dict[str, bytes]] | None:
    """(session, files) of ``tune_state.snapshot``, None when absent or unreadable."""
    path = results_dir / SNAPSHOT_FILE
    if not path.exists():
        return None
    try:
        payload = pickle.loads(path.read_bytes())
        return str(payload["session"]), dict(payload["files"])
    except Exception:  # noqa: BLE001 - written atomically, so only a foreign file gets here
        return None


class ResumeStateError(TuneGridError, RuntimeError):
    """No complete Tune experiment state: ``--resume`` would silently start a new experiment."""


@dataclass
class RepairReport:
    """What :func:`repair_tune_state` chose and changed."""

    session: str
    from_snapshot: bool
    trial_ids: tuple[str, ...]
    restored: list[str] = field(default_factory=list)
    """State files written back from the snapshot."""
    discarded: list[str] = field(default_factory=list)
    """State files of later sessions moved to ``.tune_state_discarded/``."""

    @property
    def changed(self) -> bool:
        return bool(self.restored or self.discarded)


def repair_tune_state(results_dir: str | Path) -> RepairReport:
    """Make the newest state Tune will restore from a complete one; raise when there is none.

    The snapshot when it is readable (one save by construction, at least as new as every save
    Tune's background thread copied completely); else the complete session in ``results_dir``
    with the highest controller step.
    """
    results_dir = Path(results_dir)
    stored = _state_files(results_dir)
    snapshot = read_snapshot(results_dir)
    kinds_seen = {kind for files in stored.values() for kind in files}
    if snapshot is not None:
        kinds_seen |= {p[0] for p in map(state_file_kind, snapshot[1]) if p is not None}
    # Every session of one experiment saves the same kinds; callback state is optional.
    required = kinds_seen - {"callback-states-"}

    candidates: list[StateSet] = []
    if snapshot is not None:
        checked = check_state_set(snapshot[0], snapshot[1], required, from_snapshot=True)
        if checked is not None:
            candidates.append(checked)
    for session, files in stored.items():
        if candidates:
            break  # the snapshot wins
        contents: dict[str, bytes] = {}
        for path in files.values():
            try:
                contents[path.name] = path.read_bytes()
            except OSError:
                continue
        checked = check_state_set(session, contents, required)
        if checked is not None:
            candidates.append(checked)
    if not candidates:
        raise ResumeStateError(
            f"{results_dir}: no complete Tune experiment state (experiment_state-*.json and the "
            "search algorithm's state) to resume from; a search stopped before its first trial "
            "was saved has nothing to resume: remove the folder and start it again"
        )
    best = max(candidates, key=lambda c: (c.from_snapshot, c.iteration, c.session))
    report = RepairReport(best.session, best.from_snapshot, best.trial_ids)

    if best.from_snapshot:
        for name, data in best.files.items():
            target = results_dir / name
            if target.exists() and target.read_bytes() == data:
                continue
            _atomic_write(target, data)
            report.restored.append(name)
    # Tune restores the newest session by file name: later sessions must not shadow the choice.
    for session, files in stored.items():
        if session <= best.session:
            continue
        discarded = results_dir / DISCARDED_DIR
        discarded.mkdir(exist_ok=True)
        for path in files.values():
            shutil.move(str(path), discarded / path.name)
            report.discarded.append(path.name)
    return report


__all__ = [
    "DISCARDED_DIR",
    "SNAPSHOT_FILE",
    "RepairReport",
    "ResumeStateError",
    "repair_tune_state",
    "snapshot_tune_state",
    "staging_dir_of",
]
