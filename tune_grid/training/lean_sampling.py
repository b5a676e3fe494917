"""The lean sampling path: RLlib's sampling loop over the batched microgrid env, in arrays.

RLlib's ``MultiAgentEnvRunner._sample`` spends about 30x the env step and the policy's forward
pass on bookkeeping: per agent and step it appends to episode objects, runs the env-to-module
and module-to-env connector pipelines (dicts keyed by episode and agent), calls the episode
callbacks and logs a handful of metrics. :class:`LeanEnvRunner` keeps RLlib's loop and
semantics and replaces that bookkeeping with arrays:

* each vector step stacks the acting envs' observations per module, runs the module's
  forward pass and samples from its exploration distribution, exactly as RLlib's default
  connectors do (the same rows in the same order, so a seeded run draws the same action noise:
  tested); RLlib's default MLP modules run as their
  :class:`~tune_grid.training.mlp_plan.PolicyPlan` and draw with :func:`gaussian_sample`
  (the same operations without module calls and distribution objects), others through
  ``forward_exploration`` and their distribution class;
* the env batch steps in one call (:meth:`MicrogridBatch.step_arrays`), with RLlib's
  next-step autoreset (an env that finished is reset on the following vector step, which does
  not count as an env step);
* at the end of a sample call the recorded arrays become RLlib episodes in bulk
  (:func:`episode_chunk`), cut where RLlib cuts them, so the learner and its connectors (GAE,
  value normalization, the centralized critic's global state) see what RLlib's loop produces;
* episode metrics (RLlib's return and length statistics, tune-grid's day totals) are logged
  for the days that ended, once per key and call (:class:`BufferedLog`), env-step counters
  once per call.

Anything this path does not cover (another env, custom connectors or callbacks, stateful
modules, sampling whole episodes, inference or random actions) runs RLlib's own ``_sample``.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.env.utils.infinite_lookback_buffer import InfiniteLookbackBuffer
from ray.rllib.utils.metrics import (
    EPISODE_AGENT_RETURN_MEAN,
    EPISODE_AGENT_STEPS,
    EPISODE_DURATION_SEC_MEAN,
    EPISODE_LEN_MAX,
    EPISODE_LEN_MEAN,
    EPISODE_LEN_MIN,
    EPISODE_MODULE_RETURN_MEAN,
    EPISODE_RETURN_MAX,
    EPISODE_RETURN_MEAN,
    EPISODE_RETURN_MIN,
    NUM_AGENT_STEPS_SAMPLED,
    NUM_AGENT_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_SAMPLED,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_EPISODES,
    NUM_EPISODES_LIFETIME,
    NUM_MODULE_STEPS_SAMPLED,
    NUM_MODULE_STEPS_SAMPLED_LIFETIME,
    WEIGHTS_SEQ_NO,
)
from ray.rllib.utils.spaces.space_utils import get_base_struct_from_space

from tune_grid.training.callbacks import MicrogridMetricsCallback, log_day_totals
from tune_grid.training.mlp_plan import PolicyPlan, cached_plan, policy_plan
from tune_grid.training.vector_env import BatchedEnvRunner, BatchedVectorEnv

DEFAULT_ENV_TO_MODULE = {
    "AddObservationsFromEpisodesToBatch",
    "AddTimeDimToBatchAndZeroPad",
    "AddStatesFromEpisodesToBatch",
    "AgentToModuleMapping",
    "BatchIndividualItems",
    "NumpyToTensor",
}
"""RLlib's default env-to-module pieces: what the lean path reproduces (stateless modules)."""
DEFAULT_MODULE_TO_ENV = {
    "GetActions",
    "TensorToNumpy",
    "UnBatchToIndividualItems",
    "ModuleToAgentUnmapping",
    "RemoveSingleTsTimeRankFromBatch",
    "NormalizeAndClipActions",
    "ListifyDataForVectorEnv",
}


def lean_blockers(runner: Any) -> list[str]:
    """Why ``runner`` cannot sample on the lean path (empty: it can)."""
    reasons = []
    env = runner.env
    if not isinstance(env, BatchedVectorEnv) or not hasattr(env._batch, "step_arrays"):
        reasons.append("the env is not a microgrid batch")
    config = runner.config
    if config.normalize_actions or config.clip_actions:
        reasons.append("RLlib normalizes or clips actions")
    if config.callbacks_class not in (MicrogridMetricsCallback, [MicrogridMetricsCallback]):
        reasons.append(f"callbacks {config.callbacks_class} are not tune-grid's")
    if any(getattr(config, f"callbacks_on_episode_{w}") for w in ("start", "step", "end")):
        reasons.append("episode callback functions are set")
    for pipeline, allowed in (
        (runner._env_to_module, DEFAULT_ENV_TO_MODULE),
        (runner._module_to_env, DEFAULT_MODULE_TO_ENV),
    ):
        extra = {type(p).__name__ for p in pipeline.connectors} - allowed
        if extra:
            reasons.append(f"custom connectors {sorted(extra)}")
    if runner.module is None or any(m.is_stateful() for m in runner.module.values()):
        reasons.append("no module, or a stateful one")
    return reasons


@dataclass
class _OngoingDay:
    """An env's current episode across sample calls."""

    id_: str = field(default_factory=lambda: uuid.uuid4().hex)
    env_t: int = 0
    started: float = field(default_factory=time.perf_counter)
    returns: np.ndarray | None = None


class LeanEnvRunner(BatchedEnvRunner):
    """:class:`BatchedEnvRunner` that samples on the lean path where it can (module doc)."""

    def make_env(self) -> None:
        super().make_env()
        self._lean_state: dict[str, Any] | None = None

    def _sample(
        self,
        *,
        num_timesteps: int | None = None,
        num_episodes: int | None = None,
        explore: bool,
        random_actions: bool = False,
        force_reset: bool = False,
    ) -> list[MultiAgentEpisode]:
        lean = num_timesteps is not None and explore and not random_actions
        if lean and not hasattr(self, "_lean_ok"):
            self._lean_ok = not lean_blockers(self)
        if not (lean and self._lean_ok):
            if self._lean_state is not None:  # the lean path's episodes are not RLlib's
                self._lean_state, force_reset = None, True
            return super()._sample(
                num_timesteps=num_timesteps,
                num_episodes=num_episodes,
                explore=explore,
                random_actions=random_actions,
                force_reset=force_reset,
            )
        assert num_timesteps is not None
        if force_reset or self._needs_initial_reset or self._lean_state is None:
            self._lean_reset()
        return self._lean_sample(num_timesteps)

    # ------------------------------------------------------------------------------ state
    def _lean_reset(self) -> None:
        """Reset every env (seeded on the first reset, as RLlib does) and start new days."""
        env: BatchedVectorEnv = self.env  # type: ignore[assignment]
        batch = env._batch
        agents = tuple(batch.agents)
        seed = self._seed if self._needs_initial_reset else None
        self._needs_initial_reset = False
        self._ongoing_episodes_for_metrics.clear()
        n = batch.num_envs
        obs = []
        for i in range(n):
            env_seed = None if seed is None else int(seed) + i
            observations, _ = batch.reset(i, seed=env_seed)
            obs.append(np.stack([observations[a] for a in agents]))
        first = env.envs[0].unwrapped
        mapping: Any = self.config.policy_mapping_fn
        module_of = {a: mapping(a, None) for a in agents}
        # RLlib's connectors visit an episode's agents in the order of a set built from its
        # observation dict (hash order), and group rows by module in that order.
        visit = [agents.index(a) for a in set(dict.fromkeys(agents))]
        modules: dict[str, list[int]] = {}
        for k in visit:
            modules.setdefault(module_of[agents[k]], []).append(k)
        self._lean_state = {
            "agents": agents,
            "module_of": module_of,
            "modules": modules,
            "one_module_in_order": list(modules.values()) == [list(range(len(agents)))],
            "obs": np.stack(obs),
            "pending_reset": np.zeros(n, dtype=np.bool_),
            "days": [_OngoingDay() for _ in range(n)],
            "obs_space": {a: first.get_observation_space(a) for a in agents},
            "act_space": {a: first.get_action_space(a) for a in agents},
        }

    # ----------------------------------------------------------------------------- sampling
    def _act(self, obs: np.ndarray, acting: np.ndarray, env_ts: int) -> tuple[np.ndarray, ...]:
        """Actions, distribution inputs and log-probabilities (envs, agents, ...) for the
        acting envs, module by module in RLlib's row order."""
        state = self._lean_state
        assert state is not None
        n, n_agents = obs.shape[:2]
        every_env = bool(acting.all())  # most steps: no env waits for its reset
        envs = np.arange(n) if every_env else np.flatnonzero(acting)
        runners = self.config.num_env_runners or 1
        t = (self.num_env_steps_sampled_lifetime // runners + env_ts) * runners
        modules: dict[str, list[int]] = state["modules"]
        if every_env and state["one_module_in_order"]:
            # One module for all agents, in their order: its rows are the observations as they
            # are, and its outputs the arrays to return.
            ((module_id, _),) = modules.items()
            dist_inputs, sampled, logp = self._explore(module_id, obs.reshape(n * n_agents, -1), t)
            return (
                np.asarray(sampled).reshape(n, n_agents, -1),
                np.asarray(dist_inputs).reshape(n, n_agents, -1),
                np.asarray(logp).reshape(n, n_agents),
            )
        actions: np.ndarray | None = None
        inputs: np.ndarray | None = None
        logp_out: np.ndarray | None = None
        for module_id, agent_rows in modules.items():
            index = np.ix_(envs, np.asarray(agent_rows))
            rows = obs[index].reshape(len(envs) * len(agent_rows), -1)
            dist_inputs, sampled, module_logp = self._explore(module_id, rows, t)
            a = np.asarray(sampled).reshape(len(envs), len(agent_rows), -1)
            if actions is None or inputs is None or logp_out is None:
                actions = np.zeros((n, n_agents, a.shape[-1]), dtype=a.dtype)
                inputs = np.zeros((n, n_agents, dist_inputs.shape[-1]), dtype=np.float32)
                logp_out = np.zeros((n, n_agents), dtype=np.float32)
            actions[index] = a
            inputs[index] = np.asarray(dist_inputs).reshape(len(envs), len(agent_rows), -1)
            logp_out[index] = np.asarray(module_logp).reshape(len(envs), len(agent_rows))
        assert actions is not None and inputs is not None and logp_out is not None
        return actions, inputs, logp_out

    def _explore(
        self, module_id: str, rows: np.ndarray, t: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The module's distribution inputs for ``rows``, an action drawn from its
        exploration distribution and its log-probability: through the module's
        :class:`~tune_grid.training.mlp_plan.PolicyPlan` and :func:`gaussian_sample` where it
        has one (the same operations as RLlib's calls, so the same numbers and draws), else
        through RLlib's ``forward_exploration`` and distribution class."""
        module: Any = self.module[module_id]  # type: ignore[index]
        plan = self._policy_plan(module_id, module)
        obs = torch.from_numpy(rows)
        if plan is not None:
            with torch.inference_mode():  # cheaper per op than no_grad; outputs go to numpy
                dist_inputs = plan.dist_inputs(obs)
                sampled, logp = gaussian_sample(dist_inputs)
                return dist_inputs, sampled, torch.from_numpy(logp)
        with torch.no_grad():
            # forward_exploration without its eval()/train() switch per call (the sample call
            # holds the modules in eval mode, see _lean_sample).
            out = module._forward_exploration({Columns.OBS: obs}, t=t)
            dist_inputs = out[Columns.ACTION_DIST_INPUTS]
            dist = module.get_exploration_action_dist_cls().from_logits(dist_inputs)
            sampled = dist.sample()
            return dist_inputs, sampled, dist.logp(sampled)

    def _policy_plan(self, module_id: str, module: Any) -> PolicyPlan | None:
        """The module's :class:`~tune_grid.training.mlp_plan.PolicyPlan`, cached while the
        module stays (None: it acts through RLlib's calls)."""
        plans = self.__dict__.setdefault("_policy_plans", {})
        return cached_plan(plans, module_id, module, policy_plan)

    def _lean_sample(self, num_timesteps: int) -> list[MultiAgentEpisode]:
        state = self._lean_state
        assert state is not None
        steps: list[dict[str, np.ndarray]] = []
        env_ts = 0
        finished: list[tuple[int, int, np.ndarray]] = []  # (env, step index, day totals)
        multi_module: Any = self.module
        # Modules acting through RLlib's calls sample in eval mode, as in RLlib; a policy plan's
        # dense layers do not depend on the mode, so those modules are left as they are.
        modules = [
            multi_module[mid]
            for mid in state["modules"]
            if self._policy_plan(mid, multi_module[mid]) is None
        ]
        training = [m.training for m in modules]
        for module in modules:
            module.eval()
        try:
            env_ts = self._lean_steps(num_timesteps, steps, finished)
        finally:
            for module, mode in zip(modules, training, strict=True):
                module.train(mode)
        days_log = BufferedLog()
        episodes = self._episodes_from(steps, days_log)
        self._log_counts(env_ts, len(finished))
        for _, _, totals in finished:
            log_day_totals(days_log, totals, self)
        days_log.flush(self.metrics)
        return episodes

    def _lean_steps(
        self,
        num_timesteps: int,
        steps: list[dict[str, Any]],
        finished: list[tuple[int, int, np.ndarray]],
    ) -> int:
        """Step the batch until ``num_timesteps`` env steps are recorded; returns the count."""
        state = self._lean_state
        assert state is not None
        batch = self.env._batch  # type: ignore[union-attr]
        agents = state["agents"]
        n = batch.num_envs
        env_ts = 0
        while env_ts < num_timesteps:
            obs, pending = state["obs"], state["pending_reset"]
            acting = ~pending
            record: dict[str, Any] = {"obs": obs, "acting": acting, "time": time.perf_counter()}
            if acting.any():
                actions, inputs, logp = self._act(obs, acting, env_ts)
                result = batch.step_arrays(actions.astype(np.float64), acting)
                record.update(
                    actions=actions,
                    inputs=inputs,
                    logp=logp,
                    rewards=result.rewards,
                    done=result.done.copy(),
                    next_obs=result.observations,
                )
                next_obs = result.observations.copy()
                for i in np.flatnonzero(result.done).tolist():
                    finished.append((i, len(steps), result.day_totals[i]))
                env_ts += int(acting.sum())
                new_pending = result.done.copy()
            else:
                next_obs = obs.copy()
                new_pending = np.zeros(n, dtype=np.bool_)
            for i in np.flatnonzero(pending).tolist():  # next-step autoreset
                observations, _ = batch.reset(i)
                next_obs[i] = np.stack([observations[a] for a in agents])
            record["reset"] = pending
            steps.append(record)
            state["obs"], state["pending_reset"] = next_obs, new_pending
        return env_ts

    def _episodes_from(
        self, steps: list[dict[str, Any]], days_log: BufferedLog
    ) -> list[MultiAgentEpisode]:
        """The call's episode chunks, RLlib's order: finished days first (in the order they
        ended), then every env's ongoing day cut at the call's end."""
        state = self._lean_state
        assert state is not None
        days: list[_OngoingDay] = state["days"]
        n = len(days)
        acted = [s for s, record in enumerate(steps) if "done" in record]
        position = {s: k for k, s in enumerate(acted)}
        stacked = (
            {
                name: np.stack([steps[s][name] for s in acted])
                for name in ("obs", "next_obs", "actions", "inputs", "logp", "rewards")
            }
            if acted
            else {}
        )
        done_chunks: list[tuple[int, MultiAgentEpisode]] = []
        rows: list[list[int]] = [[] for _ in range(n)]  # step indices of each env's chunk
        for s, record in enumerate(steps):
            for i in np.flatnonzero(record["reset"]).tolist():
                days[i] = _OngoingDay(started=record["time"])
                rows[i] = []
            if "done" not in record:
                continue
            acting = record["acting"]
            for i in np.flatnonzero(acting).tolist():
                rows[i].append(position[s])
            for i in np.flatnonzero(record["done"]).tolist():
                episode = self._chunk(i, rows[i], stacked, terminated=True)
                done_chunks.append((s * n + i, episode))
                self._finish_day(days[i], days_log)
                rows[i] = []
        ongoing = []
        for i in range(n):
            if rows[i]:
                episode = self._chunk(i, rows[i], stacked, terminated=False)
                ongoing.append(episode)
        done_chunks.sort(key=lambda item: item[0])
        return [e for _, e in done_chunks] + ongoing

    def _chunk(
        self, env: int, rows: list[int], stacked: dict[str, np.ndarray], *, terminated: bool
    ) -> MultiAgentEpisode:
        """Env ``env``'s chunk over the acting steps ``rows`` (indices into ``stacked``)."""
        state = self._lean_state
        assert state is not None
        day: _OngoingDay = state["days"][env]
        # An env acts at every step of its day, so its rows are a range: views, not copies.
        first, last = rows[0], rows[-1]
        index: Any = slice(first, last + 1) if last - first + 1 == len(rows) else rows
        obs = np.concatenate(
            [stacked["obs"][index, env], stacked["next_obs"][last : last + 1, env]]
        )
        columns = {
            name: stacked[name][index, env] for name in ("actions", "inputs", "logp", "rewards")
        }
        length = len(rows)
        episode = episode_chunk(
            day.id_,
            agents=state["agents"],
            module_of=state["module_of"],
            observations=obs,
            actions=columns["actions"],
            rewards=columns["rewards"],
            action_dist_inputs=columns["inputs"],
            action_logp=columns["logp"],
            weights_seq_no=self._weights_seq_no,
            env_t_started=day.env_t,
            terminated=terminated,
            observation_space=state["obs_space"],
            action_space=state["act_space"],
        )
        day.env_t += length
        rewards = columns["rewards"].sum(axis=0)
        day.returns = rewards if day.returns is None else day.returns + rewards
        return episode

    def _finish_day(self, day: _OngoingDay, days_log: BufferedLog) -> None:
        """RLlib's episode metrics of a finished day (all its chunks)."""
        state = self._lean_state
        assert state is not None and day.returns is not None
        agents = state["agents"]
        per_agent = {a: float(r) for a, r in zip(agents, day.returns, strict=True)}
        per_module: dict[str, float] = defaultdict(float)
        for a, r in per_agent.items():
            per_module[state["module_of"][a]] += r
        log_episode(
            days_log,
            window=self._metrics_window(),
            length=day.env_t,
            episode_return=float(sum(per_agent.values())),
            duration_s=time.perf_counter() - day.started,
            agent_returns=per_agent,
            module_returns=dict(per_module),
        )

    def _metrics_window(self) -> int:
        """RLlib's episode-metrics window for this runner (``_log_episode_metrics``)."""
        runners = self.config.num_env_runners or 1
        return max(1, math.ceil(self.config.metrics_num_episodes_for_smoothing / runners))

    def _log_counts(self, env_steps: int, episodes: int) -> None:
        """The step and episode counters RLlib logs per env step, once per call."""
        state = self._lean_state
        assert state is not None
        metrics = self.metrics
        metrics.log_value(NUM_ENV_STEPS_SAMPLED, env_steps, reduce="sum")
        metrics.log_value(
            NUM_ENV_STEPS_SAMPLED_LIFETIME, env_steps, reduce="lifetime_sum", with_throughput=True
        )
        if episodes:
            metrics.log_value(NUM_EPISODES, episodes, reduce="sum")
            metrics.log_value(NUM_EPISODES_LIFETIME, episodes, reduce="lifetime_sum")
        for agent, module_id in state["module_of"].items():
            metrics.log_value((NUM_AGENT_STEPS_SAMPLED, agent), env_steps, reduce="sum")
            metrics.log_value(
                (NUM_AGENT_STEPS_SAMPLED_LIFETIME, agent), env_steps, reduce="lifetime_sum"
            )
            metrics.log_value((NUM_MODULE_STEPS_SAMPLED, module_id), env_steps, reduce="sum")
            metrics.log_value(
                (NUM_MODULE_STEPS_SAMPLED_LIFETIME, module_id), env_steps, reduce="lifetime_sum"
            )
        if env_steps:
            self._log_env_steps(metric=self._metrics_num_env_steps_sampled, num_steps=env_steps)


def episode_chunk(
    episode_id: str,
    *,
    agents: tuple[str, ...],
    module_of: dict[str, str],
    observations: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    action_dist_inputs: np.ndarray,
    action_logp: np.ndarray,
    weights_seq_no: int,
    env_t_started: int,
    terminated: bool,
    observation_space: dict[str, Any],
    action_space: dict[str, Any],
) -> MultiAgentEpisode:
    """A ``MultiAgentEpisode`` chunk of ``L`` env steps in which every agent acted at every
    step, built from arrays (observations (L+1, agents, F), the rest (L, agents, ...)) without
    per-step calls. Its data equals what RLlib's ``add_env_reset``/``add_env_step`` and
    ``cut`` produce for the same steps, in numpy form."""
    length = len(actions)
    spaces: Any = (observation_space, action_space, dict(module_of))
    episode = MultiAgentEpisode(
        id_=episode_id,
        observation_space=spaces[0],
        action_space=spaces[1],
        agent_module_ids=spaces[2],
        env_t_started=env_t_started,
        len_lookback_buffer=0,
    )
    seq_no = np.full(length, weights_seq_no, dtype=np.int64)
    rewards = rewards.astype(np.float32)
    for k, agent in enumerate(agents):
        episode.agent_episodes[agent] = _agent_chunk(
            agent,
            module_of[agent],
            episode_id,
            observations=_buffer(observations[:, k]),
            infos=_buffer([{} for _ in range(length + 1)]),
            actions=_buffer(actions[:, k]),
            rewards=_buffer(rewards[:, k]),
            extra_model_outputs={
                Columns.ACTION_DIST_INPUTS: _buffer(action_dist_inputs[:, k]),
                Columns.ACTION_LOGP: _buffer(action_logp[:, k]),
                WEIGHTS_SEQ_NO: _buffer(seq_no),
            },
            terminated=terminated,
            t_started=env_t_started,
        )
        episode.agent_t_started[agent] = env_t_started
        episode.env_t_to_agent_t[agent] = _buffer(np.arange(length + 1))
    episode.env_t = env_t_started + length
    episode.is_terminated = terminated
    return episode


class BufferedLog:
    """Collects ``log_value`` calls (each key's values in order) and passes them to a
    ``MetricsLogger`` with one ``log_value`` per key, pushing the key's other values into the
    ``Stats`` object that call created or found: what a ``log_value`` per value leaves, without
    its key lookups and checks per value (a tenth of a sample call otherwise)."""

    def __init__(self) -> None:
        self.values: dict[Any, tuple[list[Any], dict[str, Any]]] = {}

    def log_value(self, key: Any, value: Any, **kwargs: Any) -> None:
        entry = self.values.get(key)
        if entry is None:
            self.values[key] = ([value], kwargs)
        else:
            entry[0].append(value)

    def flush(self, metrics: Any) -> None:
        for key, (values, kwargs) in self.values.items():
            metrics.log_value(key, values[0], **kwargs)
            if len(values) > 1:
                stats = metrics._get_key(key)
                for value in values[1:]:
                    stats.push(value)
        self.values.clear()


_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))


def gaussian_sample(dist_inputs: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    """An action drawn from the diagonal Gaussian with inputs ``[mean, log_std]`` and its
    log-probability, in the operations of RLlib's ``TorchDiagGaussian.from_logits``,
    ``sample`` and ``logp`` (torch's ``Normal``), without building the distribution objects:
    the same random draw and the same numbers.

    The log-probability's elementwise arithmetic runs in numpy on the same float32 values
    (each operation is exactly rounded in both libraries, and the sum over the 3 action
    dimensions runs in the same order); the transcendental ``exp`` and ``log`` stay in torch.
    A test compares the result with RLlib's bit for bit."""
    mean, log_std = dist_inputs.chunk(2, dim=-1)
    scale = log_std.exp()
    sampled = torch.normal(mean, scale)
    log_scale = scale.log().numpy()
    x, mu, sigma = sampled.numpy(), mean.numpy(), scale.numpy()
    logp = -((x - mu) ** 2) / (2 * sigma**2) - log_scale - _LOG_SQRT_2PI
    return sampled, logp.sum(-1)


def log_episode(
    metrics: Any,
    *,
    window: int,
    length: int,
    episode_return: float,
    duration_s: float,
    agent_returns: dict[str, float],
    module_returns: dict[str, float],
) -> None:
    """What RLlib's ``MultiAgentEnvRunner._log_episode_metrics`` logs for one episode (the same
    keys, reductions and window), one ``log_value`` per key instead of three tree-mapped
    ``log_dict`` calls."""
    log = metrics.log_value
    for key, value in (
        (EPISODE_LEN_MEAN, length),
        (EPISODE_RETURN_MEAN, episode_return),
        (EPISODE_DURATION_SEC_MEAN, duration_s),
    ):
        log(key, value, window=window)
    for agent, value in agent_returns.items():
        log((EPISODE_AGENT_RETURN_MEAN, agent), value, window=window)
        log((EPISODE_AGENT_STEPS, agent), length, window=window)
    for module_id, value in module_returns.items():
        log((EPISODE_MODULE_RETURN_MEAN, module_id), value, window=window)
    log(EPISODE_LEN_MIN, length, reduce="min", window=window)
    log(EPISODE_RETURN_MIN, episode_return, reduce="min", window=window)
    log(EPISODE_LEN_MAX, length, reduce="max", window=window)
    log(EPISODE_RETURN_MAX, episode_return, reduce="max", window=window)


_NO_SPACE_STRUCT = get_base_struct_from_space(None)


def _agent_chunk(
    agent: str,
    module_id: str,
    episode_id: str,
    *,
    observations: InfiniteLookbackBuffer,
    infos: InfiniteLookbackBuffer,
    actions: InfiniteLookbackBuffer,
    rewards: InfiniteLookbackBuffer,
    extra_model_outputs: dict[str, InfiniteLookbackBuffer],
    terminated: bool,
    t_started: int,
) -> SingleAgentEpisode:
    """``SingleAgentEpisode(...)`` from ready buffers, setting what its constructor sets (RLlib
    2.60) without the per-buffer space handling and validation: a third of a sample call's
    bookkeeping otherwise. The learner-batch equality test checks the result."""
    episode: Any = SingleAgentEpisode.__new__(SingleAgentEpisode)
    episode.id_ = f"{episode_id}-{agent}"  # unique, and kept across a day's chunks as in RLlib
    episode.agent_id = agent
    episode.module_id = module_id
    episode.multi_agent_episode_id = episode_id
    episode.observations = observations
    episode._observation_space = None
    episode.infos = infos
    episode.actions = actions
    episode._action_space = None
    episode.rewards = rewards
    episode.is_terminated = terminated
    episode.is_truncated = False
    episode.extra_model_outputs = extra_model_outputs
    episode.t_started = t_started
    episode.t = len(rewards) + t_started
    episode._custom_data = {}
    episode._start_time = None
    episode._last_step_time = None
    episode._last_added_observation = None
    episode._last_added_infos = None
    return episode


def _buffer(data: np.ndarray | list) -> InfiniteLookbackBuffer:
    """``InfiniteLookbackBuffer(data)`` (no lookback, no space) without its constructor's
    space handling, which costs more than the rest of an episode chunk together."""
    buffer = InfiniteLookbackBuffer.__new__(InfiniteLookbackBuffer)
    buffer.data = data
    buffer.lookback = 0
    buffer.finalized = not isinstance(data, list)
    buffer._space = None
    buffer._space_struct = _NO_SPACE_STRUCT
    return buffer
