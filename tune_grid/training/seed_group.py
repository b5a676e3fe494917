"""K seeds of one run config, trained in lockstep, each with a random state of its own.

RLlib seeds Python's, numpy's and torch's *global* generators when it builds an algorithm, and
sampling (action noise) and SGD (minibatch order) draw from them. K algorithms built and trained
in one process would therefore share one stream, and seed k of a K-seed trial would differ from
seed k trained alone. :class:`SeedGroup` gives each seed its own stream: it captures the global
state right after building seed k and swaps it in around each of seed k's calls, so seed k of
a group trains exactly as seed k alone does (tested). The states travel with the checkpoint.
"""

from __future__ import annotations

import contextlib
import math
import pickle
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tune_grid.config import RunConfig
from tune_grid.errors import TuneGridError
from tune_grid.training.validation import VALIDATION_METRICS, Validator

RNG_FILE = "rng_state.pkl"
MUST_BE_FINITE = tuple(m for m in VALIDATION_METRICS if m != "val_gap")


class SeedFailure(TuneGridError, RuntimeError):
    """One seed of a trial failed (its training raised, or its policy gives non-finite results);
    the message names the seed."""


@dataclass
class RngState:
    """The global random state of Python, numpy and torch (CPU)."""

    python: Any
    numpy: Any
    torch: torch.Tensor

    @classmethod
    def capture(cls) -> RngState:
        return cls(random.getstate(), np.random.get_state(), torch.get_rng_state())

    def restore(self) -> None:
        random.setstate(self.python)
        np.random.set_state(self.numpy)
        torch.set_rng_state(self.torch)


class SeedGroup:
    """The K algorithms of one trial (``runs`` differ only in ``seed``) and their validator."""

    def __init__(self, runs: list[RunConfig], oracle: Mapping[str, float] | None = None) -> None:
        from tune_grid.training.algorithms import check_run
        from tune_grid.training.rllib_env import register_rllib_env

        if not runs:
            raise ValueError("a seed group needs at least one run config")
        register_rllib_env()
        self.runs = list(runs)
        self.algos: list[Any] = []
        self._rng: list[RngState] = []
        try:
            for run in self.runs:
                self.algos.append(check_run(run).build_config(run).build_algo())
                self._rng.append(RngState.capture())
        except BaseException:
            self.stop()
            raise
        self.validator = Validator.for_run(self.runs[0], oracle)

    @contextlib.contextmanager
    def _own_stream(self, k: int) -> Iterator[None]:
        self._rng[k].restore()
        try:
            yield
        finally:
            self._rng[k] = RngState.capture()

    def train(self) -> list[dict[str, float]]:
        """One training iteration of every seed; each seed's iteration metrics."""
        from tune_grid.training.metrics import iteration_metrics

        out = []
        for k, (algo, run) in enumerate(zip(self.algos, self.runs, strict=True)):
            with self._own_stream(k):
                try:
                    result = algo.train()
                except Exception as exc:
                    raise SeedFailure(
                        f"seed {run.seed}: training failed: {_first_line(exc)}"
                    ) from exc
            out.append(iteration_metrics(result))
        return out

    def validate(self) -> list[dict[str, float]]:
        """Every seed's greedy policy on the validation days (``VALIDATION_METRICS``).

        Raises :class:`SeedFailure` when a seed's results are not finite, so a diverged seed
        fails its trial instead of silently leaving the mean.
        """
        from tune_grid.training.policy import TrainedPolicy

        out = []
        for algo, run in zip(self.algos, self.runs, strict=True):
            policy = TrainedPolicy.from_algorithm(algo, run.policy_sharing)
            try:
                metrics = self.validator(policy.act_batch)
            except Exception as exc:
                raise SeedFailure(
                    f"seed {run.seed}: validation failed: {_first_line(exc)}"
                ) from exc
            bad = [m for m in MUST_BE_FINITE if not math.isfinite(metrics[m])]
            if bad:
                raise SeedFailure(
                    f"seed {run.seed}: {', '.join(bad)} not finite (the policy diverged); "
                    "lower lr, or set grad_clip"
                )
            out.append(metrics)
        return out

    def save_rng(self, directory: Path, k: int) -> None:
        """Write seed ``k``'s random state into its checkpoint folder."""
        (directory / RNG_FILE).write_bytes(pickle.dumps(self._rng[k]))

    def restore(self, directories: list[Path]) -> None:
        """Restore every seed from its checkpoint folder (weights, optimizer, random state)."""
        for k, (algo, directory) in enumerate(zip(self.algos, directories, strict=True)):
            algo.restore_from_path(str(directory.resolve()))
            rng_file = directory / RNG_FILE
            if rng_file.exists():
                self._rng[k] = pickle.loads(rng_file.read_bytes())

    def stop(self) -> None:
        for algo in self.algos:
            with contextlib.suppress(Exception):  # best-effort cleanup
                algo.stop()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
