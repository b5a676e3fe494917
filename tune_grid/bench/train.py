"""`tune-grid bench train`: env steps/s of PPO iterations, RLlib's defaults vs tune-grid's.

The variants train in one process on one local Ray, with the same PPO hyperparameters (the
reference setup by default: batch 4000, minibatch 128, 10 epochs, 256x256, shared policy):

(a) RLlib's defaults: 1 env per env runner, sampling in the algorithm's process (0 remote
    runners), ``rollout_fragment_length="auto"``, torch's default thread count, RLlib's default
    learner and action connectors (:func:`tune_grid.training.ppo.rllib_default_ppo_config`);
    where that thread count is above 1, (a1) is (a) with 1 thread;
(b) tune-grid's defaults (:func:`tune_grid.training.ppo.build_ppo_config` of ``RunConfig``),
    which sample and learn on the lean loops (``training_loop: lean``);
(r) (b) with RLlib's own sampling and learner loops (``training_loop: rllib``), the path before
    the lean loops: (r)/(b) is what they buy;
(b1) (b) with RLlib's own vector env, which steps the envs one by one, instead of the batched
    one (:class:`~tune_grid.training.vector_env.BatchedEnvRunner`): the batch's gain;
(c) (b) on a no-op env with the same agents, spaces and 24-step episodes, stepped through the
    same batched vector env with the same Python outputs (rewards, infos with the env's keys)
    but no physics, so ``1 - c/b`` of the sampling time is the environment's own share;
(d) where torch sees a CUDA GPU: (b) with the learner on the GPU (``num_gpus=1``, i.e.
    ``num_gpus_per_learner=1``); sampling stays on the CPU;
(e) (b) with MAPPO's centralized critic and value normalization (``critic=centralized``,
    ``value_norm=true``): the global-state learner connector, a separate critic network on the
    three agents' observations and the normalizer's update, i.e. what centralizing costs.

Iterations are interleaved (a, b, c, a, b, c, ...) so that load from other processes hits every
variant alike; after ``warmup`` untimed rounds, the median of ``iterations`` rounds is reported:
RLlib's sampling and learner-update timers, the whole iteration, env steps/s, and the learner's
minibatch updates (count and mean time inside ``Learner._update``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import statistics
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tune_grid.config import ConfigError, EnvConfig, RunConfig

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
    "a1": "(a1) RLlib, 1 torch thread",
    "b": "(b) tune-grid defaults",
    "r": "(r) (b), RLlib's loops",
    "b1": "(b1) tune-grid, env by env",
    "c": "(c) tune-grid, no-op env",
    "d": "(d) tune-grid, GPU learner",
    "e": "(e) centralized critic",
}


# --------------------------------------------------------------------------------- no-op env
@functools.lru_cache(maxsize=8)
def _real_spaces(config: EnvConfig) -> tuple[tuple[str, ...], dict[str, Any], dict[str, Any]]:
    """Agents and spaces of the real env for ``config`` (built once per process)."""
    from tune_grid.env import make_env

    real = make_env(config.to_dict())
    agents = tuple(real.possible_agents)
    return (
        agents,
        {a: real.observation_space(a) for a in agents},
        {a: real.action_space(a) for a in agents},
    )


def _noop_env_classes() -> tuple[type, type]:
    """The no-op PettingZoo env and its RLlib wrapper (built lazily: RLlib imports are heavy)."""
    from gymnasium import spaces
    from pettingzoo import ParallelEnv

    from tune_grid.env.batch import BatchStep, step_outputs
    from tune_grid.env.microgrid import DAY_TOTAL_KEYS, INFO_FIELDS
    from tune_grid.grid.devices import MICROGRIDS
    from tune_grid.training.rllib_env import MicrogridRLlibEnv

    class NoopMicrogridEnv(ParallelEnv):
        """The microgrid env's agents, spaces and 24-step days, with constant observations."""

        metadata = {"name": NOOP_ENV_NAME, "render_modes": [], "is_parallelizable": True}

        def __init__(self, config: EnvConfig) -> None:
            agents, obs_spaces, act_spaces = _real_spaces(config)
            self.possible_agents = list(agents)
            self.agents: list[str] = []
            self._obs_spaces = dict(obs_spaces)
            self._act_spaces = dict(act_spaces)
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

    class NoopBatch:
        """:class:`~tune_grid.env.batch.MicrogridBatch`'s interface and Python outputs (the
        same :func:`~tune_grid.env.batch.step_outputs`, on all-zero info fields) without its
        physics, so (b) and (c) differ by the env's compiled step alone."""

        agents = tuple(MICROGRIDS)

        def __init__(self, envs: Sequence[NoopMicrogridEnv]) -> None:
            self.envs = list(envs)
            self.num_envs = n = len(envs)
            first = envs[0]
            self._obs = np.stack([first._obs[a] for a in self.agents])
            self._hour = np.zeros(n, dtype=np.int64)
            self._fields = np.zeros((n, len(self.agents), len(INFO_FIELDS)))
            self._zeros = np.zeros(n)
            self._converged = np.ones(n, dtype=np.bool_)
            self._day_totals = np.zeros((n, len(self.agents), len(DAY_TOTAL_KEYS)))

        def reset(
            self, index: int, seed: int | None = None, options: dict | None = None
        ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
            self._hour[index] = 0
            return self.envs[index].reset(seed=seed, options=options)

        def step(self, actions: np.ndarray, stepping: np.ndarray) -> BatchStep:
            hours = self._hour.copy()
            self._hour += stepping
            observations = np.empty((self.num_envs, *self._obs.shape), dtype=np.float32)
            observations[:] = self._obs
            done = stepping & (self._hour >= EPISODE_STEPS)
            return step_outputs(
                observations,
                self._fields,
                stepping,
                done,
                hours,
                self._zeros,
                self._converged,
                self._day_totals,
                False,
            )

    class NoopRLlibEnv(MicrogridRLlibEnv):
        """:class:`MicrogridRLlibEnv`'s wrapping (agent order, live agents) of the no-op env."""

        def __init__(self, env_config: Mapping[str, Any] | None = None) -> None:
            self._wrap(NoopMicrogridEnv(EnvConfig.from_dict(dict(env_config or {}))))

        @staticmethod
        def make_batch(envs: Sequence[MicrogridRLlibEnv]) -> NoopBatch:
            return NoopBatch([env.par_env for env in envs])

    return NoopMicrogridEnv, NoopRLlibEnv


def register_noop_env() -> str:
    """Register the no-op env under :data:`NOOP_ENV_NAME` (idempotent) and return the name."""
    from ray.tune.registry import register_env

    _, rllib_cls = _noop_env_classes()
    register_env(NOOP_ENV_NAME, rllib_cls)
    return NOOP_ENV_NAME


# ------------------------------------------------------------------------------- measuring
@dataclass(frozen=True)
class Variant:
    """One benchmarked configuration: a PPOConfig and the torch thread count it runs with."""

    key: str
    label: str
    config: Any
    torch_threads: int


@dataclass
class VariantTiming:
    """Per-iteration measurements of one variant (timed rounds only).

    ``*_s`` are wall seconds of each iteration (:class:`_PhaseClock`); ``*_cpu_s`` are this
    process's CPU seconds in the same phases, which load from other processes disturbs far less
    (local sampling only).
    """

    key: str
    label: str
    envs: int
    fragment: int
    torch_threads: int
    build_s: float
    sample_s: list[float] = field(default_factory=list)
    learn_s: list[float] = field(default_factory=list)
    iteration_s: list[float] = field(default_factory=list)
    sample_cpu_s: list[float] = field(default_factory=list)
    learn_cpu_s: list[float] = field(default_factory=list)
    iteration_cpu_s: list[float] = field(default_factory=list)
    env_steps: list[int] = field(default_factory=list)
    updates: list[int] = field(default_factory=list)
    update_cpu_s: list[float] = field(default_factory=list)

    def median(self, name: str) -> float:
        values = [v for v in getattr(self, name) if v is not None and math.isfinite(v)]
        return float(statistics.median(values)) if values else math.nan

    @property
    def steps_per_s(self) -> float:
        return self.median("env_steps") / self.median("iteration_s")

    @property
    def ms_per_update(self) -> float:
        """CPU milliseconds per minibatch update (``Learner._update``)."""
        updates = self.median("updates")
        return 1e3 * self.median("update_cpu_s") / updates if updates else math.nan


class _PhaseClock:
    """Wall and process CPU seconds spent in local sampling, the learner update and its
    minibatches.

    Wraps the local EnvRunner's ``sample``, the LearnerGroup's ``update`` and the local
    Learner's minibatch update (``_update``, or the lean loop's ``_lean_step``) on the
    instances; absent parts (remote runners) read NaN. Wall and CPU seconds then cover exactly
    the same calls (RLlib's sampling timer also holds the runner's metrics reduction).
    """

    def __init__(self, algo: Any) -> None:
        self.sample = self.learn = self.updates_cpu = 0.0
        self.sample_wall = self.learn_wall = 0.0
        self.updates = 0
        runner = getattr(algo, "env_runner", None)
        self.local_sampling = runner is not None and algo.config.num_env_runners == 0
        if runner is not None and self.local_sampling:
            runner.sample = self._wrap(runner.sample, "sample")
        algo.learner_group.update = self._wrap(algo.learner_group.update, "learn")
        learner = getattr(algo.learner_group, "_learner", None)
        self.local_learner = learner is not None
        if learner is not None:
            # A minibatch update: RLlib's ``_update``, or the lean loop's ``_lean_step``.
            step = "_lean_step" if hasattr(learner, "_lean_step") else "_update"
            setattr(learner, step, self._wrap(getattr(learner, step), "updates_cpu", count=True))

    def _wrap(self, inner: Callable[..., Any], name: str, count: bool = False) -> Callable:
        wall = f"{name}_wall"

        def timed(*args: Any, **kwargs: Any) -> Any:
            start, wall_start = time.process_time(), time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                setattr(self, name, getattr(self, name) + time.process_time() - start)
                if hasattr(self, wall):
                    setattr(self, wall, getattr(self, wall) + time.perf_counter() - wall_start)
                if count:
                    self.updates += 1

        return timed

    def reset(self) -> None:
        self.sample = self.learn = self.updates_cpu = 0.0
        self.sample_wall = self.learn_wall = 0.0
        self.updates = 0


def standard_variants(run: RunConfig, keys: Collection[str] | None = None) -> list[Variant]:
    """Variants (a) RLlib's defaults, (b) tune-grid's defaults, (b1) (b) stepping its envs one
    by one, (c) (b) on the no-op env, (e) (b) with the centralized critic.

    Where torch's default thread count here is above 1, (a1) repeats (a) with 1 thread: it
    separates the gain of tune-grid's settings from that of its thread count. Where torch sees a
    CUDA GPU, (d) is (b) with the learner on it. ``keys`` keeps only those variants.
    """
    import torch

    from tune_grid.training.ppo import build_ppo_config, rllib_default_ppo_config

    noop = build_ppo_config(run)
    noop.environment(env=NOOP_ENV_NAME)
    env_by_env = build_ppo_config(run)
    env_by_env.env_runners(env_runner_cls=None)  # RLlib's MultiAgentEnvRunner
    default_threads = torch.get_num_threads()
    variants = [Variant("a", VARIANT_LABELS["a"], rllib_default_ppo_config(run), default_threads)]
    if default_threads > 1:
        variants.append(Variant("a1", VARIANT_LABELS["a1"], rllib_default_ppo_config(run), 1))
    variants += [
        Variant("b", VARIANT_LABELS["b"], build_ppo_config(run), run.torch_threads),
        Variant(
            "r",
            VARIANT_LABELS["r"],
            build_ppo_config(run.replace(training_loop="rllib")),
            run.torch_threads,
        ),
        Variant("b1", VARIANT_LABELS["b1"], env_by_env, run.torch_threads),
        Variant("c", VARIANT_LABELS["c"], noop, run.torch_threads),
    ]
    if torch.cuda.is_available():
        gpu_run = dataclasses.replace(run, num_gpus=1.0)
        variants.append(Variant("d", VARIANT_LABELS["d"], build_ppo_config(gpu_run), 1))
    central = run.replace(critic="centralized", value_norm=True)
    variants.append(Variant("e", VARIANT_LABELS["e"], build_ppo_config(central), run.torch_threads))
    if keys is not None:
        check_variant_keys(keys)
        variants = [v for v in variants if v.key in keys]
    return variants


def check_variant_keys(keys: Collection[str]) -> None:
    """Raise a ConfigError naming unknown variant keys and the allowed ones."""
    unknown = sorted(set(keys) - set(VARIANT_LABELS))
    if unknown or not keys:
        raise ConfigError(
            f"unknown variants {unknown or '(none given)'}; allowed: {', '.join(VARIANT_LABELS)}"
        )


def measure(
    variants: list[Variant],
    *,
    iterations: int,
    warmup: int,
    print_fn: Callable[[str], None] = print,
) -> dict[str, VariantTiming]:
    """Build the variants and train them in interleaved rounds; returns their timings."""
    import torch

    from tune_grid.training.metrics import iteration_metrics

    algos: dict[str, Any] = {}
    clocks: dict[str, _PhaseClock] = {}
    timings: dict[str, VariantTiming] = {}
    try:
        for v in variants:
            torch.set_num_threads(v.torch_threads)
            start = time.perf_counter()
            algos[v.key] = v.config.build_algo()
            build_s = time.perf_counter() - start
            clocks[v.key] = _PhaseClock(algos[v.key])
            timings[v.key] = VariantTiming(
                v.key,
                v.label,
                v.config.num_envs_per_env_runner,
                v.config.get_rollout_fragment_length(),
                v.torch_threads,
                build_s=build_s,
            )
            print_fn(f"built {v.label} in {build_s:.1f} s")
        for round_ in range(warmup + iterations):
            timed = round_ >= warmup
            for key, algo in algos.items():
                t, clock = timings[key], clocks[key]
                torch.set_num_threads(t.torch_threads)
                clock.reset()
                cpu_start = time.process_time()
                metrics = iteration_metrics(algo.train())
                cpu = time.process_time() - cpu_start
                # Wall seconds of the calls the CPU clock covers (remote sampling: RLlib's
                # timer, per iteration through MicrogridMetricsCallback).
                sample_s = clock.sample_wall if clock.local_sampling else metrics["timers/sample_s"]
                print_fn(
                    f"round {round_ + 1} ({'timed' if timed else 'warm-up'}) {t.label}: "
                    f"sample {sample_s:.3f} s, learn {clock.learn_wall:.3f} s, iteration "
                    f"{metrics['time_this_iter_s']:.3f} s ({cpu:.3f} CPU s)"
                )
                if not timed:
                    continue
                t.sample_s.append(sample_s)
                t.learn_s.append(clock.learn_wall)
                t.iteration_s.append(metrics["time_this_iter_s"])
                t.env_steps.append(int(metrics["env_steps_this_iter"]))
                t.iteration_cpu_s.append(cpu)
                t.learn_cpu_s.append(clock.learn)
                t.sample_cpu_s.append(clock.sample if clock.local_sampling else math.nan)
                if clock.local_learner:
                    t.updates.append(clock.updates)
                    t.update_cpu_s.append(clock.updates_cpu)
    finally:
        for algo in algos.values():
            algo.stop()
    return timings


def _ratio(numerator: float, denominator: float) -> float:
    if not denominator or not math.isfinite(denominator) or not math.isfinite(numerator):
        return math.nan
    return numerator / denominator


def _speedups(base: VariantTiming, b: VariantTiming, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for phase in ("sample", "learn", "iteration"):
        out[f"{prefix}{phase}_speedup"] = _ratio(base.median(f"{phase}_s"), b.median(f"{phase}_s"))
        out[f"{prefix}{phase}_cpu_speedup"] = _ratio(
            base.median(f"{phase}_cpu_s"), b.median(f"{phase}_cpu_s")
        )
    out[f"{prefix}steps_per_s_speedup"] = _ratio(b.steps_per_s, base.steps_per_s)
    return out


def summarize(timings: Mapping[str, VariantTiming]) -> dict[str, float]:
    """Headline ratios of medians: (a) over (b) in wall and CPU seconds (``a1_*``: (a1) over
    (b)), the batched env's sampling gain (b1)/(b), the env's share of (b)'s sampling time,
    ``1 - sample(c) / sample(b)``, and the centralized critic's cost (e)/(b)."""
    out: dict[str, float] = {}
    b = timings.get("b")
    if b is None:
        return out
    if "a" in timings:
        out.update(_speedups(timings["a"], b))
    if "a1" in timings:
        out.update(_speedups(timings["a1"], b, prefix="a1_"))
    if "r" in timings:
        out.update(_speedups(timings["r"], b, prefix="lean_"))
    if "b1" in timings:
        b1 = timings["b1"]
        out["batch_sample_speedup"] = _ratio(b1.median("sample_s"), b.median("sample_s"))
        out["batch_sample_cpu_speedup"] = _ratio(
            b1.median("sample_cpu_s"), b.median("sample_cpu_s")
        )
    if "c" in timings:
        c = timings["c"]
        out["env_share_of_sampling"] = 1.0 - _ratio(c.median("sample_s"), b.median("sample_s"))
        out["env_share_of_sampling_cpu"] = 1.0 - _ratio(
            c.median("sample_cpu_s"), b.median("sample_cpu_s")
        )
    if "d" in timings:
        d = timings["d"]
        out["gpu_learn_speedup"] = _ratio(b.median("learn_s"), d.median("learn_s"))
        out["gpu_iteration_speedup"] = _ratio(b.median("iteration_s"), d.median("iteration_s"))
    if "e" in timings:
        e = timings["e"]
        out["central_critic_learn_cost"] = _ratio(e.median("learn_s"), b.median("learn_s"))
        out["central_critic_iteration_cost"] = _ratio(
            e.median("iteration_s"), b.median("iteration_s")
        )
    return out


def format_table(timings: Mapping[str, VariantTiming], run: RunConfig) -> str:
    """The result table (wall and CPU seconds per iteration) and the ratios."""
    rounds = len(next(iter(timings.values())).iteration_s)
    lines = [
        f"PPO iterations: batch {run.train_batch_size}, minibatch {run.minibatch_size}, "
        f"{run.num_epochs} epochs, {'x'.join(map(str, run.hidden_sizes))}, "
        f"{run.policy_sharing} policy; medians of {rounds} timed iterations",
        f"{'':<26}{'':>5}{'':>6}{'':>4}{'':>8}{'--- wall s / iteration ---':>27}"
        f"{'---- CPU s / iteration ----':>28}",
        f"{'variant':<26}{'envs':>5}{'frag':>6}{'thr':>4}{'build s':>8}{'sample':>9}"
        f"{'learn':>9}{'whole':>9}{'sample':>9}{'learn':>9}{'whole':>9}{'steps/s':>9}"
        f"{'updates':>8}{'ms/upd':>8}",
    ]
    for t in timings.values():
        lines.append(
            f"{t.label:<26}{t.envs:>5}{t.fragment!s:>6}{t.torch_threads:>4}{t.build_s:>8.1f}"
            f"{t.median('sample_s'):>9.3f}{t.median('learn_s'):>9.3f}"
            f"{t.median('iteration_s'):>9.3f}{t.median('sample_cpu_s'):>9.3f}"
            f"{t.median('learn_cpu_s'):>9.3f}{t.median('iteration_cpu_s'):>9.3f}"
            f"{t.steps_per_s:>9.0f}{t.median('updates'):>8.0f}{t.ms_per_update:>8.2f}"
        )
    s = summarize(timings)
    if {"a", "b"} <= set(timings):
        for key in ("a", "a1"):
            if key not in timings:
                continue
            p = "" if key == "a" else "a1_"
            lines += [
                f"speed-up ({key})/(b), wall: sampling {s[p + 'sample_speedup']:.2f}x, "
                f"learning {s[p + 'learn_speedup']:.2f}x, whole iteration "
                f"{s[p + 'iteration_speedup']:.2f}x "
                f"(env steps/s {s[p + 'steps_per_s_speedup']:.2f}x)",
                f"speed-up ({key})/(b), CPU:  sampling {s[p + 'sample_cpu_speedup']:.2f}x, "
                f"learning {s[p + 'learn_cpu_speedup']:.2f}x, whole iteration "
                f"{s[p + 'iteration_cpu_speedup']:.2f}x",
            ]
    if "r" in timings:
        lines += [
            f"lean loops (r)/(b), wall: sampling {s['lean_sample_speedup']:.2f}x, "
            f"learning {s['lean_learn_speedup']:.2f}x, whole iteration "
            f"{s['lean_iteration_speedup']:.2f}x "
            f"(env steps/s {s['lean_steps_per_s_speedup']:.2f}x)",
            f"lean loops (r)/(b), CPU:  sampling {s['lean_sample_cpu_speedup']:.2f}x, "
            f"learning {s['lean_learn_cpu_speedup']:.2f}x, whole iteration "
            f"{s['lean_iteration_cpu_speedup']:.2f}x",
        ]
    if "batch_sample_speedup" in s:
        lines.append(
            f"batched env stepping (b1)/(b): sampling {s['batch_sample_speedup']:.2f}x wall, "
            f"{s['batch_sample_cpu_speedup']:.2f}x CPU"
        )
    if "env_share_of_sampling" in s:
        lines.append(
            f"env share of (b)'s sampling, 1 - sample(c)/sample(b): "
            f"{100 * s['env_share_of_sampling']:.1f}% wall, "
            f"{100 * s['env_share_of_sampling_cpu']:.1f}% CPU"
        )
    if "gpu_learn_speedup" in s:
        lines.append(
            f"GPU learner (b)/(d), wall: learning {s['gpu_learn_speedup']:.2f}x, "
            f"whole iteration {s['gpu_iteration_speedup']:.2f}x"
        )
    if "central_critic_learn_cost" in s:
        lines.append(
            f"centralized critic (e)/(b), wall: learning {s['central_critic_learn_cost']:.2f}x, "
            f"whole iteration {s['central_critic_iteration_cost']:.2f}x"
        )
    return "\n".join(lines)


def run_train_benchmark(
    *,
    iterations: int = 3,
    warmup: int = 1,
    quick: bool = False,
    overrides: Mapping[str, Any] | None = None,
    num_cpus: int | None = 2,
    variants: Collection[str] | None = None,
    print_fn: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measure the variants (all by default) in one run, print the table; returns timings and
    ratios.

    ``overrides`` are RunConfig keys on top of the defaults (e.g. another batch size); layout
    keys such as ``num_envs_per_env_runner`` only change (b) and (c). ``quick`` shrinks the
    budget to a smoke test.
    """
    import ray

    from tune_grid.training.rllib_env import register_rllib_env
    from tune_grid.training.runner import ray_init_kwargs

    if iterations < 1 or warmup < 0:
        raise ConfigError(f"need iterations >= 1 and warmup >= 0, got {iterations}, {warmup}")
    if variants is not None:
        check_variant_keys(variants)
    values: dict[str, Any] = dict(QUICK_RUN) if quick else {}
    values.update(overrides or {})
    run = RunConfig.from_dict(values)
    started = not ray.is_initialized()
    if started:
        ray.init(**ray_init_kwargs(num_cpus))
    try:
        register_rllib_env()
        register_noop_env()
        chosen = standard_variants(run, variants)
        timings = measure(chosen, iterations=iterations, warmup=warmup, print_fn=print_fn)
    finally:
        if started:
            ray.shutdown()
    print_fn(format_table(timings, run))
    return {"timings": timings, **summarize(timings)}
