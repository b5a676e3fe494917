"""Optional Weights & Biases logging that never blocks or crashes a training run.

Without an API key (``WANDB_API_KEY`` or a ``~/.netrc`` entry for api.wandb.ai) or without a
network route to W&B, runs are logged offline (``WANDB_MODE=offline``, decided before
``wandb.init``) and the command to upload them later (``wandb sync <dir>``) is printed. An explicit
``WANDB_MODE`` in the environment is respected. Any W&B error is turned into one warning and
logging is switched off for the rest of the run.
"""

from __future__ import annotations

import netrc
import os
import socket
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from tune_grid.config import ConfigError

WandbMode = Literal["online", "offline", "disabled", "shared"]
WANDB_MODES: tuple[WandbMode, ...] = ("online", "offline", "disabled", "shared")
"""The modes ``wandb.init`` takes (also the values allowed for ``WANDB_MODE``)."""
WANDB_HOST = "api.wandb.ai"
INIT_TIMEOUT_S = 30.0
NETWORK_PROBE_TIMEOUT_S = 2.0


def _has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(WANDB_HOST) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def _network_reachable(host: str = WANDB_HOST, timeout: float = NETWORK_PROBE_TIMEOUT_S) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def wandb_mode(value: str) -> WandbMode:
    """``value`` as a ``wandb.init`` mode; a :class:`ConfigError` naming the allowed ones if not."""
    for mode in WANDB_MODES:
        if value == mode:
            return mode
    raise ConfigError(f"WANDB_MODE {value!r} is not one of {', '.join(WANDB_MODES)}")


def decide_mode() -> WandbMode:
    """'online', 'offline' or 'disabled': the env's WANDB_MODE, else offline without key/network."""
    explicit = os.environ.get("WANDB_MODE")
    if explicit:
        return wandb_mode(explicit)
    if not _has_api_key() or not _network_reachable():
        return "offline"
    return "online"


class WandbLogger:
    """Log a run's config and per-iteration metrics to W&B; a no-op when disabled or broken."""

    def __init__(
        self,
        *,
        enabled: bool,
        run_name: str,
        config: Mapping[str, Any],
        project: str = "tune-grid",
        entity: str | None = None,
        directory: str | Path | None = None,
        print_fn: Callable[[str], None] = print,
    ) -> None:
        self._run: Any = None
        self._offline_dir: Path | None = None
        self._print = print_fn
        if not enabled:
            return
        try:
            mode = decide_mode()
            if mode == "offline":
                os.environ["WANDB_MODE"] = "offline"
            import wandb

            if directory is not None:
                Path(directory).mkdir(parents=True, exist_ok=True)
            self._run = wandb.init(
                project=project,
                entity=entity,
                name=run_name,
                config=dict(config),
                dir=str(directory) if directory is not None else None,
                mode=mode,
                reinit="finish_previous",
                settings=wandb.Settings(init_timeout=INIT_TIMEOUT_S, console="off", silent=True),
            )
            if mode == "offline" and self._run is not None:
                self._offline_dir = Path(self._run.dir).parent
                self._print(f"W&B: offline (no API key or no network); run in {self._offline_dir}")
        except Exception as exc:  # noqa: BLE001 - W&B must never stop training
            self._warn("init", exc)

    @property
    def active(self) -> bool:
        return self._run is not None

    def _warn(self, what: str, exc: BaseException) -> None:
        warnings.warn(f"W&B {what} failed, logging disabled: {exc}".splitlines()[0], stacklevel=3)
        self._run = None

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if self._run is None:
            return
        try:
            self._run.log(dict(metrics), step=step)
        except Exception as exc:  # noqa: BLE001
            self._warn("log", exc)

    def summary(self, values: Mapping[str, Any]) -> None:
        if self._run is None:
            return
        try:
            self._run.summary.update(dict(values))
        except Exception as exc:  # noqa: BLE001
            self._warn("summary", exc)

    def finish(self) -> None:
        if self._run is None:
            return
        try:
            self._run.finish()
        except Exception as exc:  # noqa: BLE001
            self._warn("finish", exc)
        self._run = None
        if self._offline_dir is not None:
            self._print(f"W&B: upload this offline run later with: wandb sync {self._offline_dir}")
