"""`tune-grid bench env`: env-step time of the fast and the pandapower power-flow backends.

Both backends run the same seeded random actions on the same days in one process. Each timed step
is one full ``env.step`` (three agents, AC power flow, costs, rewards, observations). Reported:
median step time, steps/s, and the pandapower/fast ratio of medians.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from tune_grid.env import make_env


@dataclass(frozen=True)
class StepTiming:
    backend: str
    steps: int
    median_s: float
    p90_s: float

    @property
    def steps_per_s(self) -> float:
        return 1.0 / self.median_s


def time_env_steps(backend: str, steps: int, seed: int = 0, warmup: int = 48) -> StepTiming:
    """Time ``steps`` env steps with random actions, after ``warmup`` untimed steps."""
    env = make_env(powerflow=backend, split="train")
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    durations = []
    for i in range(warmup + steps):
        if not env.agents:
            env.reset()
        actions = {a: rng.uniform(-1, 1, 3).astype(np.float32) for a in env.agents}
        start = time.perf_counter()
        env.step(actions)
        elapsed = time.perf_counter() - start
        if i >= warmup:
            durations.append(elapsed)
    arr = np.asarray(durations)
    return StepTiming(backend, steps, float(np.median(arr)), float(np.percentile(arr, 90)))


def run_env_benchmark(fast_steps: int = 5000, pandapower_steps: int = 100) -> dict[str, float]:
    """Measure both backends in one run and print the table; returns the figures."""
    fast = time_env_steps("fast", fast_steps)
    reference = time_env_steps("pandapower", pandapower_steps)
    ratio = reference.median_s / fast.median_s
    print(f"{'backend':<12}{'steps':>8}{'median ms':>12}{'p90 ms':>10}{'steps/s':>12}")
    for t in (fast, reference):
        print(
            f"{t.backend:<12}{t.steps:>8}{t.median_s * 1e3:>12.4f}{t.p90_s * 1e3:>10.4f}"
            f"{t.steps_per_s:>12.0f}"
        )
    print(f"speed-up of fast over pandapower (ratio of medians): {ratio:.0f}x")
    return {
        "fast_median_ms": fast.median_s * 1e3,
        "pandapower_median_ms": reference.median_s * 1e3,
        "fast_steps_per_s": fast.steps_per_s,
        "pandapower_steps_per_s": reference.steps_per_s,
        "ratio": ratio,
    }
