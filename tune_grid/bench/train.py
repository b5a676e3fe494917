"""`tune-grid bench train`: env steps/s of PPO iterations, RLlib's defaults vs tune-grid's.

Three variants train in one process on one local Ray, with the same PPO hyperparameters (the
reference setup by default: batch 4000, minibatch 128, 10 epochs, 256x256, shared policy):

(a) RLlib's defaults: 1 env per env runner, sampling in the algorithm's process (0 remote
    runners), ``rollout_fragment_length="auto"``, torch's default thread count, RLlib's default
    learner and action connectors (:func:`tune_grid.training.ppo.rllib_default_ppo_config`);
(b) tune-grid's defaults (:func:`tune_grid.training.ppo.build_ppo_config` of ``RunConfig``);
(c) (b) on a no-op env with the same agents, spaces and 24-step episodes, so ``1 - c/b`` of the
    sampling time is the environment's own share.

Iterations are interleaved (a, b, c, a, b, c, ...) so that load from other processes hits every
variant alike; after ``warmup`` untimed rounds, the median of ``iterations`` rounds is reported:
RLlib's sampling and learner-update timers, the whole iteration, env steps/s, and the learner's
minibatch updates (count and mean time inside ``Learner._update``).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tune_grid.config import EnvConfig, RunConfig

NOOP_ENV_NAME = "networked_microgrids_noop_v0"
"""Registered name of the no-op env of variant (c)."""
EPISODE_STEPS = 24
QUICK_RUN = {
    "train_batch_size": 480,
    "minibatch_size": 128,
    "num_epochs": 2,
    "hidden_sizes": (64, 64),
    "num_envs_per_env_runner": 4,
}
"""``--quick``: a tiny budget that checks the benchmark end to end (not a measurement)."""
VARIANT_LABELS = {
    "a": "(a) RLlib defaults",
    "b": "(b) tune-grid defaults",
    "c": "(c) tune-grid, no-op env",
}


# --------------------------------------------------------------------------------- no-op env
def _noop_env_classes() -> tuple[type, type]:
    """The no-op PettingZoo env and its RLlib wrapper (built lazily: RLlib imports are heavy)."""
    from gymnasium import spaces
    from pettingzoo import ParallelEnv
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

    from tune_grid.env import make_env
    from tune_grid.training.rllib_env import MicrogridRLlibEnv

    class NoopMicrogridEnv(ParallelEnv):
        """The microgrid env's agents, spaces and 24-step days, with constant observations."""

        metadata = {"name": NOOP_ENV_NAME, "render_modes": [], "is_parallelizable": True}

        def __init__(self, config: EnvConfig) -> None:
            real = make_env(config.to_dict())
            self.possible_agents = list(real.possible_agents)
            self.agents: list[str] = []
            self._obs_spaces = {a: real.observation_space(a) for a in self.possible_agents}
            self._act_spaces = {a: real.action_space(a) for a in self.possible_agents}
            self._obs = {
                a: np.clip(np.zeros(s.shape, s.dtype), s.low, s.high).astype(s.dtype)
                for a, s in self._obs_spaces.items()
            }
            self._hour = 0

        def observation_space(self, agent: str) -> spaces.Box:
            return self._obs_spaces[agent]

        def action_space(self, agent: str) -> spaces.Box:
            return self._act_spaces[agent]

        def reset(
            self, seed: int | None = None, options: dict | None = None
        ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
            self._hour = 0
            self.agents = list(self.possible_agents)
            return {a: self._obs[a].copy() for a in self.agents}, {a: {} for a in self.agents}

        def step(self, actions: dict[str, Any]):  # noqa: ANN202 - PettingZoo's 5-tuple
            self._hour += 1
            done = self._hour >= EPISODE_STEPS
            agents = self.agents
            observations = {a: self._obs[a].copy() for a in agents}
            rewards = dict.fromkeys(agents, 0.0)
            terminations = dict.fromkeys(agents, done)
            truncations = dict.fromkeys(agents, False)
            infos = {a: {"cost": 0.0, "safety": 0.0} for a in agents}
            if done:
                self.agents = []
            return observations, rewards, terminations, truncations, infos

    class NoopRLlibEnv(MicrogridRLlibEnv):
        """:class:`MicrogridRLlibEnv`'s wrapping (agent order, live agents) of the no-op env."""

        def __init__(self, env_config: Mapping[str, Any] | None = None) -> None:
            par_env = NoopMicrogridEnv(EnvConfig.from_dict(dict(env_config or {})))
            ParallelPettingZooEnv.__init__(self, par_env)
            order = list(par_env.possible_agents)
            self.possible_agents = order
            self.agents = list(order)
            self._agent_ids = set(order)
            self.observation_spaces = {a: par_env.observation_space(a) for a in order}
            self.action_spaces = {a: par_env.action_space(a) for a in order}
            self.observation_space = spaces.Dict(self.observation_spaces)
            self.action_space = spaces.Dict(self.action_spaces)

    return NoopMicrogridEnv, NoopRLlibEnv


def register_noop_env() -> str:
    """Register the no-op env under :data:`NOOP_ENV_NAME` (idempotent) and return the name."""
    from ray.tune.registry import register_env

    _, rllib_cls = _noop_env_classes()
    register_env(NOOP_ENV_NAME, rllib_cls)
    return NOOP_ENV_NAME


# ------------------------------------------------------------------------------- measuring
@dataclass
class VariantTiming:
    """Per-iteration measurements of one variant (timed rounds only)."""

    key: str
    label: str
    envs: int
    fragment: int | str
    torch_threads: int
    build_s: float
    sample_s: list[float] = field(default_factory=list)
    learn_s: list[float] = field(default_factory=list)
    iteration_s: list[float] = field(default_factory=list)
    env_steps: list[int] = field(default_factory=list)
    updates: list[int] = field(default_factory=list)
    update_s: list[float] = field(default_factory=list)

    def median(self, name: str) -> float:
        values = [v for v in getattr(self, name) if v is not None and math.isfinite(v)]
        return float(statistics.median(values)) if values else math.nan

    @property
    def steps_per_s(self) -> float:
        return self.median("env_steps") / self.median("iteration_s")

    @property
    def ms_per_update(self) -> float:
        updates = self.median("updates")
        return 1e3 * self.median("update_s") / updates if updates else math.nan


class _UpdateCounter:
    """Counts and times a local learner's minibatch updates (``Learner._update``)."""

    def __init__(self, algo: Any) -> None:
        self.count = 0
        self.seconds = 0.0
        learner = getattr(algo.learner_group, "_learner", None)
        self.active = learner is not None
        if self.active:
            inner: Callable[..., Any] = learner._update

            def timed(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return inner(*args, **kwargs)
                finally:
                    self.seconds += time.perf_counter() - start
                    self.count += 1

            learner._update = timed

    def reset(self) -> None:
        self.count, self.seconds = 0, 0.0


def _variant_configs(run: RunConfig) -> dict[str, tuple[Any, int]]:
    """``{key: (PPOConfig, torch threads)}`` for variants a, b and c."""
    import torch

    from tune_grid.training.ppo import build_ppo_config, rllib_default_ppo_config

    noop = build_ppo_config(run)
    noop.environment(env=NOOP_ENV_NAME)
    return {
        "a": (rllib_default_ppo_config(run), torch.get_num_threads()),
        "b": (build_ppo_config(run), run.torch_threads),
        "c": (noop, run.torch_threads),
    }


def _describe(config: Any) -> tuple[int, int | str]:
    fragment = config.rollout_fragment_length
    return config.num_envs_per_env_runner, fragment


def measure(
    run: RunConfig,
    *,
    iterations: int,
    warmup: int,
    print_fn: Callable[[str], None] = print,
) -> dict[str, VariantTiming]:
    """Build the three variants and train them in interleaved rounds; returns their timings."""
    import torch

    from tune_grid.training.metrics import iteration_metrics

    configs = _variant_configs(run)  # before any variant changes torch's thread count
    algos: dict[str, Any] = {}
    counters: dict[str, _UpdateCounter] = {}
    timings: dict[str, VariantTiming] = {}
    try:
        for key, (config, threads) in configs.items():
            torch.set_num_threads(threads)
            start = time.perf_counter()
            algos[key] = config.build_algo()
            build_s = time.perf_counter() - start
            counters[key] = _UpdateCounter(algos[key])
            envs, fragment = _describe(config)
            timings[key] = VariantTiming(
                key, VARIANT_LABELS[key], envs, fragment, threads, build_s=build_s
            )
            print_fn(f"built {VARIANT_LABELS[key]} in {build_s:.1f} s")
        for round_ in range(warmup + iterations):
            timed = round_ >= warmup
            for key, algo in algos.items():
                torch.set_num_threads(timings[key].torch_threads)
                counters[key].reset()
                metrics = iteration_metrics(algo.train())
                t = timings[key]
                tag = "timed" if timed else "warm-up"
                print_fn(
                    f"round {round_ + 1} ({tag}) {t.label}: sample {metrics['timers/sample_s']:.2f}"
                    f" s, learn {metrics['timers/learn_s']:.2f} s, "
                    f"iteration {metrics['time_this_iter_s']:.2f} s"
                )
                if not timed:
                    continue
                t.sample_s.append(metrics["timers/sample_s"])
                t.learn_s.append(metrics["timers/learn_s"])
                t.iteration_s.append(metrics["time_this_iter_s"])
                t.env_steps.append(int(metrics["env_steps_this_iter"]))
                if counters[key].active:
                    t.updates.append(counters[key].count)
                    t.update_s.append(counters[key].seconds)
    finally:
        for algo in algos.values():
            algo.stop()
    return timings


def _ratio(numerator: float, denominator: float) -> float:
    if not denominator or not math.isfinite(denominator) or not math.isfinite(numerator):
        return math.nan
    return numerator / denominator


def summarize(timings: Mapping[str, VariantTiming]) -> dict[str, float]:
    """The headline ratios: (a) over (b) for sampling, learning and the whole iteration, and
    the environment's share of (b)'s sampling time, ``1 - sample(c) / sample(b)``."""
    a, b, c = timings["a"], timings["b"], timings["c"]
    return {
        "sample_speedup": _ratio(a.median("sample_s"), b.median("sample_s")),
        "learn_speedup": _ratio(a.median("learn_s"), b.median("learn_s")),
        "iteration_speedup": _ratio(a.median("iteration_s"), b.median("iteration_s")),
        "steps_per_s_speedup": _ratio(b.steps_per_s, a.steps_per_s),
        "env_share_of_sampling": 1.0 - _ratio(c.median("sample_s"), b.median("sample_s")),
    }


def format_table(timings: Mapping[str, VariantTiming], run: RunConfig) -> str:
    """The result table, the ratios and the learner's per-update cost."""
    lines = [
        f"PPO iterations: batch {run.train_batch_size}, minibatch {run.minibatch_size}, "
        f"{run.num_epochs} epochs, {'x'.join(map(str, run.hidden_sizes))}, "
        f"{run.policy_sharing} policy; medians of {len(timings['b'].iteration_s)} iterations",
        f"{'variant':<26}{'envs':>5}{'frag':>6}{'thr':>4}{'build s':>9}{'sample s':>10}"
        f"{'learn s':>9}{'iter s':>8}{'steps/s':>9}{'updates':>8}{'ms/upd':>8}",
    ]
    for t in timings.values():
        lines.append(
            f"{t.label:<26}{t.envs:>5}{t.fragment!s:>6}{t.torch_threads:>4}{t.build_s:>9.1f}"
            f"{t.median('sample_s'):>10.2f}{t.median('learn_s'):>9.2f}"
            f"{t.median('iteration_s'):>8.2f}{t.steps_per_s:>9.0f}"
            f"{t.median('updates'):>8.0f}{t.ms_per_update:>8.2f}"
        )
    s = summarize(timings)
    lines += [
        f"speed-up (a)/(b): sampling {s['sample_speedup']:.2f}x, learning "
        f"{s['learn_speedup']:.2f}x, whole iteration {s['iteration_speedup']:.2f}x "
        f"(env steps/s {s['steps_per_s_speedup']:.2f}x)",
        f"env share of (b)'s sampling time, 1 - sample(c)/sample(b): "
        f"{100 * s['env_share_of_sampling']:.1f}%",
    ]
    return "\n".join(lines)


def run_train_benchmark(
    *,
    iterations: int = 3,
    warmup: int = 1,
    quick: bool = False,
    overrides: Mapping[str, Any] | None = None,
    num_cpus: int | None = 2,
    print_fn: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measure variants (a), (b), (c) in one run, print the table; returns timings and ratios.

    ``overrides`` are RunConfig keys on top of the defaults (e.g. another batch size); layout
    keys such as ``num_envs_per_env_runner`` only change (b) and (c). ``quick`` shrinks the
    budget to a smoke test.
    """
    import ray

    from tune_grid.training.rllib_env import register_rllib_env
    from tune_grid.training.runner import ray_init_kwargs

    if iterations < 1 or warmup < 0:
        raise ValueError(f"need iterations >= 1 and warmup >= 0, got {iterations}, {warmup}")
    values: dict[str, Any] = dict(QUICK_RUN) if quick else {}
    values.update(overrides or {})
    run = RunConfig.from_dict(values)
    started = not ray.is_initialized()
    if started:
        ray.init(**ray_init_kwargs(num_cpus))
    try:
        register_rllib_env()
        register_noop_env()
        timings = measure(run, iterations=iterations, warmup=warmup, print_fn=print_fn)
    finally:
        if started:
            ray.shutdown()
    print_fn(format_table(timings, run))
    return {"timings": timings, **summarize(timings)}
