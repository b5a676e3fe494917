"""Checkpoints: RLlib's algorithm state plus a small ``tune_grid.json`` with the run's history.

A run folder holds ``checkpoint_<iteration>/`` every N iterations, ``best/`` (the best iteration by
the declared metric) and ``final/``. Each is a complete RLlib checkpoint
(``Algorithm.from_checkpoint`` restores it) with ``tune_grid.json`` beside RLlib's files: the run
config, iteration and env-step counters, the best-metric record and the per-iteration history, so
``--resume`` continues all of them. The metadata is read without Ray or torch.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tune_grid.config import ConfigError, RunConfig
from tune_grid.env.microgrid import ENV_NAME
from tune_grid.env.protocols import obs_feature_names
from tune_grid.errors import TuneGridError

META_FILE = "tune_grid.json"
META_FORMAT = "tune_grid.checkpoint"
META_VERSION = 1
RLLIB_MARKER = "rllib_checkpoint.json"
CHECKPOINT_PREFIX = "checkpoint_"
BEST_DIR = "best"
FINAL_DIR = "final"
SEED_DIR = "seed_{k}"
"""A trial checkpoint holds one RLlib checkpoint per seed of its group, ``seed_<k>/``."""


class CheckpointError(TuneGridError, ValueError):
    """A checkpoint path is missing, not a tune-grid checkpoint, or unreadable."""


@dataclass
class CheckpointMeta:
    """What tune-grid stores beside RLlib's state in every checkpoint."""

    run_name: str
    run_config: RunConfig
    iteration: int = 0
    env_steps: int = 0
    time_total_s: float = 0.0
    best_metric: str = "val_objective"
    best_mode: str = "min"
    best_value: float | None = None
    best_iteration: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: list[str] = field(default_factory=list)
    env_name: str = ENV_NAME
    """The env version the policy was trained on."""
    obs_features: tuple[str, ...] | None = None
    """The observation columns it was trained on (None: those of ``run_config``'s env)."""

    def __post_init__(self) -> None:
        if self.obs_features is None:
            self.obs_features = obs_feature_names(self.run_config.env_config())

    def check_env(self, source: str) -> None:
        """Raise ``CheckpointError`` unless this code builds the env the policy was trained on
        (same version and observation columns): a policy never sees shifted features."""
        expected = obs_feature_names(self.run_config.env_config())
        if self.env_name != ENV_NAME or tuple(self.obs_features or ()) != expected:
            raise CheckpointError(
                f"{source}: trained on {self.env_name} with {len(self.obs_features or ())} "
                f"observation features ({', '.join(self.obs_features or ())}); this tune-grid "
                f"builds {ENV_NAME} with {len(expected)} ({', '.join(expected)}): retrain it"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": META_FORMAT,
            "version": META_VERSION,
            "env_name": self.env_name,
            "obs_features": list(self.obs_features or ()),
            "run_name": self.run_name,
            "run_config": self.run_config.to_dict(),
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "time_total_s": self.time_total_s,
            "best_metric": self.best_metric,
            "best_mode": self.best_mode,
            "best_value": self.best_value,
            "best_iteration": self.best_iteration,
            "history": self.history,
            "resumed_from": self.resumed_from,
            "saved_at": time.time(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str) -> CheckpointMeta:
        if data.get("format") != META_FORMAT or data.get("version") != META_VERSION:
            raise CheckpointError(
                f"{source}: not a tune-grid checkpoint file (format {data.get('format')!r}, "
                f"version {data.get('version')!r})"
            )
        try:
            run_config = RunConfig.from_dict(data["run_config"])
            history = [
                {k: (math.nan if v is None else v) for k, v in row.items()}
                for row in data.get("history", [])
            ]
            return cls(
                run_name=str(data["run_name"]),
                run_config=run_config,
                iteration=int(data["iteration"]),
                env_steps=int(data["env_steps"]),
                time_total_s=float(data.get("time_total_s", 0.0)),
                best_metric=str(data.get("best_metric", "episode_return_mean")),
                best_mode=str(data.get("best_mode", "max")),
                best_value=data.get("best_value"),
                best_iteration=data.get("best_iteration"),
                history=history,
                resumed_from=list(data.get("resumed_from", [])),
                env_name=str(data.get("env_name", "an env before networked_microgrids_v1")),
                obs_features=tuple(data.get("obs_features", ())),
            )
        except (KeyError, TypeError, ValueError, AttributeError, ConfigError) as exc:
            raise CheckpointError(
                f"{source}: corrupt tune-grid checkpoint metadata ({exc})"
            ) from None


def _json_safe(value: Any) -> Any:
    """NaN/inf -> null, recursively, so the files are standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _json_safe(value.item())
    return value


def write_json(path: str | Path, data: Any) -> None:
    """Write standard JSON (NaN as null) atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_json_safe(data), indent=2) + "\n")
    tmp.replace(path)


def read_meta(path: str | Path) -> CheckpointMeta:
    """Validate a checkpoint folder and read its tune-grid metadata (no Ray needed).

    Raises :class:`CheckpointError` with a one-line message when the path is missing, is not a
    folder, lacks RLlib's or tune-grid's files, or holds unreadable JSON.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path}: no such file or directory")
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path}: not a directory (expected a checkpoint folder)")
    meta_path = path / META_FILE
    if not (path / RLLIB_MARKER).is_file() or not meta_path.is_file():
        raise CheckpointError(
            f"checkpoint {path}: not a tune-grid checkpoint (missing {RLLIB_MARKER} or {META_FILE})"
        )
    try:
        json.loads((path / RLLIB_MARKER).read_text())
        data = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path}: unreadable metadata ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"checkpoint {path}: corrupt {META_FILE}")
    meta = CheckpointMeta.from_json(data, f"checkpoint {path}")
    meta.check_env(f"checkpoint {path}")
    return meta


def save_checkpoint(algo: Any, path: str | Path, meta: CheckpointMeta) -> Path:
    """Save ``algo`` and ``meta`` to ``path``; an old folder there is replaced once both exist."""
    path = Path(path).resolve()
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    algo.save_to_path(str(tmp))
    write_json(tmp / META_FILE, meta.to_json())
    if path.exists():
        shutil.rmtree(path)
    tmp.replace(path)
    return path


def restore_algorithm(path: str | Path) -> Any:
    """Rebuild the Algorithm from a checkpoint (needs Ray); errors become CheckpointError."""
    from ray.rllib.algorithms.algorithm import Algorithm

    from tune_grid.training.rllib_env import register_rllib_env

    read_meta(path)
    register_rllib_env()
    try:
        return Algorithm.from_checkpoint(str(Path(path).resolve()))
    except Exception as exc:  # noqa: BLE001 - any unpickling/state error means a bad checkpoint
        raise CheckpointError(f"checkpoint {path}: cannot restore ({first_line(exc)})") from exc


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type name)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def checkpoint_name(iteration: int) -> str:
    """Folder name of the periodic checkpoint after ``iteration``."""
    return f"{CHECKPOINT_PREFIX}{iteration:06d}"


def seed_dirs(checkpoint: str | Path) -> list[Path]:
    """The ``seed_<k>/`` folders of a trial checkpoint in seed order (seed_2 before seed_10);
    empty when there are none."""
    found = []
    for path in Path(checkpoint).glob("seed_*"):
        suffix = path.name.removeprefix("seed_")
        if path.is_dir() and suffix.isdigit():
            found.append((int(suffix), path))
    return [path for _, path in sorted(found)]


def policy_checkpoints(path: str | Path) -> list[Path]:
    """The tune-grid checkpoints a path holds: itself, or each ``seed_<k>/`` of a search trial's
    (multi-seed) checkpoint, in seed order. Raises :class:`CheckpointError` naming what a
    checkpoint path may be when it is neither."""
    path = Path(path)
    seeds = seed_dirs(path) if path.is_dir() and not (path / META_FILE).exists() else []
    if not seeds:
        read_meta(path)
        return [path]
    for seed_dir in seeds:
        read_meta(seed_dir)
    return seeds
