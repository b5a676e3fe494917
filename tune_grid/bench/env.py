"""`tune-grid bench env`: env-step time of the power-flow backends, measured side by side.

Every backend (the compiled Z-bus solver ``fast``, lightsim2grid's Newton-Raphson and the
``pandapower`` reference) runs the same seeded random actions on the same days in one process.
The backends take turns in several rounds, so a burst of load on a noisy machine hits all of them.
Each timed step is one full ``env.step`` (three agents, AC power flow, costs, rewards,
observations, infos); the power flow inside it is timed too. Reported: median step time, p90,
steps/s, the median power-flow share, and the ratio of medians of each backend to ``fast``.

A further row, ``fast, batch of N``, steps N envs of the fast backend as one
:class:`~tune_grid.env.batch.MicrogridBatch` (what an RLlib env runner does) and reports the time
of one batch step divided by N: the cost of an env step inside training.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from tune_grid.config import ConfigError
from tune_grid.env import make_env
from tune_grid.env.batch import MicrogridBatch
from tune_grid.grid.devices import MICROGRIDS
from tune_grid.grid.powerflow import BACKENDS
from tune_grid.grid.solver import PowerFlowResult, PowerFlowSolver

BATCH_ENVS = 32
"""Envs of the batched row: tune-grid's default envs per env runner."""


@dataclass
class StepTiming:
    backend: str
    step_s: list[float] = field(default_factory=list)
    solve_s: list[float] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.step_s)

    @property
    def median_s(self) -> float:
        return float(np.median(self.step_s))

    @property
    def p90_s(self) -> float:
        return float(np.percentile(self.step_s, 90))

    @property
    def solve_median_s(self) -> float:
        return float(np.median(self.solve_s)) if self.solve_s else float("nan")

    @property
    def steps_per_s(self) -> float:
        return 1.0 / self.median_s


class _TimedSolver:
    """Wraps an env's power-flow solver and keeps the time of its last solve."""

    def __init__(self, solver: PowerFlowSolver) -> None:
        self._solver = solver
        self.last_solve_s = 0.0

    def solve(
        self,
        load_p_mw: np.ndarray,
        load_q_mvar: np.ndarray,
        sgen_p_mw: np.ndarray,
        sgen_q_mvar: np.ndarray,
        storage_p_mw: np.ndarray,
    ) -> PowerFlowResult:
        start = time.perf_counter()
        result = self._solver.solve(load_p_mw, load_q_mvar, sgen_p_mw, sgen_q_mvar, storage_p_mw)
        self.last_solve_s = time.perf_counter() - start
        return result

    def reset(self) -> None:
        self._solver.reset()


class _TimedEnv:
    """An env of one backend whose steps (and the power flows inside them) are timed."""

    def __init__(self, backend: str, seed: int) -> None:
        self.env = make_env(powerflow=backend, split="train")
        self.rng = np.random.default_rng(seed)
        self.env.reset(seed=seed)
        self.timing = StepTiming(backend)
        self._solver = _TimedSolver(self.env._solver)
        self.env._solver = self._solver

    def run(self, steps: int, record: bool = True) -> None:
        env, timing = self.env, self.timing
        for _ in range(steps):
            if not env.agents:
                env.reset()
            actions = {a: self.rng.uniform(-1, 1, 3).astype(np.float32) for a in env.agents}
            start = time.perf_counter()
            env.step(actions)
            elapsed = time.perf_counter() - start
            if record:
                timing.step_s.append(elapsed)
                timing.solve_s.append(self._solver.last_solve_s)


class _TimedBatch:
    """``num_envs`` fast envs stepped as one batch; records each batch step's time per env."""

    def __init__(self, num_envs: int, seed: int) -> None:
        self.batch = MicrogridBatch([make_env(split="train") for _ in range(num_envs)])
        self.num_envs = num_envs
        self.rng = np.random.default_rng(seed)
        self.timing = StepTiming(f"fast, batch of {num_envs}")
        self._stepping = np.ones(num_envs, dtype=np.bool_)
        self._done = True
        self._seed = seed

    def run(self, env_steps: int, record: bool = True) -> None:
        for _ in range(max(1, env_steps // self.num_envs)):
            if self._done:
                for i in range(self.num_envs):
                    self.batch.reset(i, seed=self._seed)
                    self._seed += 1
            actions = self.rng.uniform(-1, 1, (self.num_envs, len(MICROGRIDS), 3))
            start = time.perf_counter()
            result = self.batch.step(actions, self._stepping)
            elapsed = time.perf_counter() - start
            self._done = bool(result.done.all())
            if record:
                self.timing.step_s.append(elapsed / self.num_envs)


def _ms(seconds: float) -> str:
    return "-" if np.isnan(seconds) else f"{seconds * 1e3:.4f}"


def run_env_benchmark(
    fast_steps: int = 5000,
    pandapower_steps: int = 100,
    rounds: int = 5,
    warmup: int = 48,
    seed: int = 0,
) -> dict[str, float]:
    """Measure all backends in one run, in alternating rounds; print the table, return figures.

    ``fast`` and ``lightsim2grid`` run ``fast_steps`` timed steps each, ``pandapower``
    ``pandapower_steps``.
    """
    for name, value in (("steps", fast_steps), ("pandapower steps", pandapower_steps)):
        if value < rounds:
            raise ConfigError(
                f"{name} must be at least the number of rounds ({rounds}), got {value}"
            )
    if rounds < 1 or warmup < 0:
        raise ConfigError(f"need rounds >= 1 and warmup >= 0, got {rounds} and {warmup}")
    envs: dict[str, _TimedEnv | _TimedBatch] = {
        backend: _TimedEnv(backend, seed) for backend in BACKENDS
    }
    envs["fast_batch"] = _TimedBatch(BATCH_ENVS, seed)
    budget = {b: fast_steps for b in envs} | {"pandapower": pandapower_steps}
    for backend, timed in envs.items():
        timed.run(warmup if backend != "pandapower" else 4, record=False)
    for r in range(rounds):
        for backend, timed in envs.items():
            share = budget[backend] * (r + 1) // rounds - budget[backend] * r // rounds
            timed.run(share)
    fast = envs["fast"].timing
    print(
        f"{'backend':<19}{'steps':>7}{'median ms':>11}{'p90 ms':>9}{'steps/s':>9}"
        f"{'power flow ms':>15}{'x fast':>8}"
    )
    figures: dict[str, float] = {}
    for backend, timed in envs.items():
        t = timed.timing
        ratio = t.median_s / fast.median_s
        steps = t.steps * (timed.num_envs if isinstance(timed, _TimedBatch) else 1)
        print(
            f"{t.backend:<19}{steps:>7}{t.median_s * 1e3:>11.4f}{t.p90_s * 1e3:>9.4f}"
            f"{t.steps_per_s:>9.0f}{_ms(t.solve_median_s):>15}{ratio:>8.1f}"
        )
        figures[f"{backend}_median_ms"] = t.median_s * 1e3
        figures[f"{backend}_steps_per_s"] = t.steps_per_s
        figures[f"{backend}_powerflow_median_ms"] = t.solve_median_s * 1e3
        figures[f"{backend}_ratio"] = ratio
    figures["ratio"] = figures["pandapower_ratio"]
    print(
        f"speed-up of fast over pandapower (ratio of median steps): {figures['ratio']:.0f}x; "
        f"over lightsim2grid: {figures['lightsim2grid_ratio']:.1f}x; a batch of {BATCH_ENVS} "
        f"steps each env {1 / figures['fast_batch_ratio']:.1f}x faster than fast alone"
    )
    return figures
