"""Many networked-microgrid envs stepped in one compiled call.

An RLlib env runner steps its envs one at a time from Python, and inside that loop an env step
costs about twice what it costs alone (docs/throughput.md): a dozen compiled calls, each with
its argument checks, and the Python around them, for a few microseconds of arithmetic each.
:class:`MicrogridBatch` keeps the state of N envs of one config in stacked arrays and advances
all of them with one numba call, :func:`step_batch`. That call runs the env's own kernels
(:mod:`tune_grid.env.kernels`) in the env's order and solves all the envs' power flows in
lockstep (:func:`~tune_grid.grid.zbus.solve_batch`, which vectorizes across envs), so a batched
step gives bit-identical observations, rewards and infos to :meth:`NetworkedMicrogridEnv.step`
(tested) at a quarter of its cost per env.

Only what has no Python per step batches (:func:`can_batch`): the ``fast`` power flow and no
protocols. Protocols run Python hooks every hour; such configs step env by env as before.
Resets (one per 24 steps) go through each env's own ``reset``; the batch then copies the
env's state into its row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numba
import numpy as np

from tune_grid.env import kernels
from tune_grid.env.microgrid import (
    DAY_TOTAL_KEYS,
    INFO_FIELDS,
    NetworkedMicrogridEnv,
    agent_infos,
)
from tune_grid.env.observation import observe
from tune_grid.grid.data import HOURS_PER_DAY
from tune_grid.grid.devices import (
    BATTERY,
    HOUR,
    MICROGRIDS,
    PV_RATING_MW,
    VOLTAGE_MAX_PU,
    VOLTAGE_MIN_PU,
    WIND_RATING_MW,
)
from tune_grid.grid.zbus import ZBusPowerFlow, solve_batch

_FIELD = {name: i for i, name in enumerate(INFO_FIELDS)}
#: Info-matrix columns that become the next step's state, in ``_STATE`` order.
_STATE_COLUMNS = np.array(
    [_FIELD[c] for c in ("soc", "dg_p_mw", "dg_q_mvar", "exchange_mw", "v_min_pu", "v_max_pu")],
    dtype=np.int64,
)
_STATE = ("_soc", "_dg_p", "_dg_q", "_exchange", "_v_min", "_v_max")
"""The env attributes of the per-agent state, in the order of the batch's ``state`` axis."""


class BatchStep(NamedTuple):
    """One step of every env in a batch (rows of envs that did not step are undefined)."""

    observations: np.ndarray
    """(envs, agents, features) float32; a fresh array each step, so rows may be kept."""
    rewards: list[list[float] | None]
    """Per env, each agent's reward (None where the env did not step)."""
    infos: list[list[dict[str, Any]] | None]
    """Per env, each agent's info, with the keys of the env's own infos (None likewise)."""
    done: np.ndarray
    """(envs,) bool: the env finished its day with this step."""


class ArrayStep(NamedTuple):
    """One step of every env in a batch as arrays (:meth:`MicrogridBatch.step_arrays`)."""

    observations: np.ndarray
    """(envs, agents, features) float32, a fresh array each step."""
    rewards: np.ndarray
    """(envs, agents) float64."""
    done: np.ndarray
    """(envs,) bool: the env finished its day with this step."""
    day_totals: np.ndarray
    """(envs, agents, ``DAY_TOTAL_KEYS``): the day's totals so far (final where ``done``)."""


def can_batch(env: Any) -> bool:
    """Whether ``env`` is a networked-microgrid env whose step runs without Python hooks."""
    return (
        isinstance(env, NetworkedMicrogridEnv)
        and env.config.powerflow == "fast"
        and not env.protocols.active
    )


class MicrogridBatch:
    """N :class:`NetworkedMicrogridEnv` of one config, stepped together (see module doc).

    ``reset(i)`` resets env ``i`` (its own ``reset``); ``step`` advances the envs flagged in
    ``stepping``. Between resets the envs' own state is stale: the batch owns it.
    """

    agents: tuple[str, ...] = MICROGRIDS

    def __init__(self, envs: Sequence[NetworkedMicrogridEnv]) -> None:
        if not envs:
            raise ValueError("a batch needs at least one env")
        bad = [i for i, env in enumerate(envs) if not can_batch(env)]
        if bad:
            raise ValueError(
                f"envs {bad} cannot be batched: batching needs powerflow 'fast' and no "
                "protocols (vertical_protocol and horizontal_protocol 'none')"
            )
        first = envs[0]
        if any(env.config != first.config for env in envs[1:]):
            raise ValueError("all envs of a batch must share one EnvConfig")
        self.envs = list(envs)
        self.num_envs = n = len(envs)
        self._share_reward = first.config.share_reward
        solver = first._solver
        assert isinstance(solver, ZBusPowerFlow)  # can_batch admits powerflow "fast" only
        self._solver_model = solver.model
        self._v_init = solver.initial_voltages
        n_agents, n_obs = len(MICROGRIDS), len(first.obs_features)
        if n_obs != first._layout.sources.size:
            raise ValueError("batched envs observe the base features only (no protocols)")
        self._n_obs = n_obs
        self._hour = np.full(n, HOURS_PER_DAY, dtype=np.int64)  # as if finished: reset first
        self._day = np.zeros(n, dtype=np.int64)
        self._state = np.zeros((len(_STATE), n, n_agents))
        self._soc_start = np.zeros((n, n_agents))
        self._outcome = np.zeros((n, *first._outcome.shape))
        self._day_totals = np.zeros((n, n_agents, len(DAY_TOTAL_KEYS)))
        self._load_p = np.zeros((n, first._load_p.size))
        self._load_q = np.zeros((n, first._load_q.size))
        self._sgen_p = np.zeros((n, first._sgen_p.size))
        self._sgen_q = np.zeros((n, first._sgen_q.size))
        self._storage_p = np.zeros((n, first._storage_p.size))
        self._voltages = np.tile(self._v_init, (n, 1))
        self._warm = np.zeros(n, dtype=np.bool_)
        self._converged = np.zeros(n, dtype=np.bool_)
        self._prices = np.zeros(n)
        self._constants = _step_constants(first)

    def reset(
        self, index: int, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        """Reset env ``index`` (its own ``reset``) and take its state into the batch."""
        env = self.envs[index]
        observations, infos = env.reset(seed=seed, options=options)
        self._hour[index] = env._hour
        self._day[index] = env._day
        for k, name in enumerate(_STATE):
            self._state[k, index] = getattr(env, name)
        self._soc_start[index] = env._soc_start
        self._outcome[index] = env._outcome
        self._day_totals[index] = env._day_totals
        self._load_p[index] = env._load_p
        self._load_q[index] = env._load_q
        self._sgen_p[index] = env._sgen_p
        self._sgen_q[index] = env._sgen_q
        self._storage_p[index] = env._storage_p
        solver = env._solver
        assert isinstance(solver, ZBusPowerFlow)
        voltages, warm = solver.warm_state
        self._voltages[index] = voltages
        self._warm[index] = warm
        return observations, infos

    def step(self, actions: np.ndarray, stepping: np.ndarray) -> BatchStep:
        """Advance the envs where ``stepping`` with ``actions`` (envs, agents, 3) in [-1, 1]."""
        hours = self._hour.copy()
        observations, fields, done = self._advance(actions, stepping)
        return step_outputs(
            observations,
            fields,
            stepping,
            done,
            hours,
            self._prices,
            self._converged,
            self._day_totals,
            self._share_reward,
        )

    def step_arrays(self, actions: np.ndarray, stepping: np.ndarray) -> ArrayStep:
        """:meth:`step` without Python objects per env: observations, rewards, done flags and
        the finished envs' day totals as arrays (rows of envs that did not step: undefined)."""
        observations, fields, done = self._advance(actions, stepping)
        return ArrayStep(
            observations, step_rewards(fields, self._share_reward), done, self._day_totals.copy()
        )

    def _advance(
        self, actions: np.ndarray, stepping: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The compiled step: (observations, info fields, done), all per env."""
        stepping = np.asarray(stepping, dtype=np.bool_)
        actions = np.asarray(actions, dtype=np.float64)
        _check_actions(actions, stepping, self.num_envs)
        finished = stepping & (self._hour >= HOURS_PER_DAY)
        if finished.any():
            raise RuntimeError(
                f"envs {np.flatnonzero(finished).tolist()} finished their day (or were never "
                "reset); reset them first"
            )
        observations = np.empty((self.num_envs, len(MICROGRIDS), self._n_obs), dtype=np.float32)
        fields = np.empty((self.num_envs, len(MICROGRIDS), len(INFO_FIELDS)))
        step_batch(
            actions,
            stepping,
            self._hour,
            self._day,
            self._state,
            self._soc_start,
            self._outcome,
            self._day_totals,
            self._load_p,
            self._load_q,
            self._sgen_p,
            self._sgen_q,
            self._storage_p,
            self._voltages,
            self._warm,
            self._converged,
            self._prices,
            fields,
            observations,
            self._solver_model,
            self._v_init,
            self._constants,
        )
        return observations, fields, stepping & (self._hour >= HOURS_PER_DAY)


def step_rewards(fields: np.ndarray, share_reward: bool) -> np.ndarray:
    """(envs, agents) rewards from the info fields: each agent's own, or with ``share_reward``
    the mean over the agents (the same float as the env's own ``sum / len``)."""
    own = fields[..., -1]
    if not share_reward:
        return own.copy()
    shared = own.sum(axis=-1, keepdims=True) / own.shape[-1]
    return np.broadcast_to(shared, own.shape).copy()


def step_outputs(  # noqa: PLR0913 - the parts of a batch step
    observations: np.ndarray,
    fields: np.ndarray,
    stepping: np.ndarray,
    done: np.ndarray,
    hours: np.ndarray,
    prices: np.ndarray,
    converged: np.ndarray,
    day_totals: np.ndarray,
    share_reward: bool,
) -> BatchStep:
    """Rewards and infos (Python floats, the env's keys) of the envs that stepped.

    ``fields`` (envs, agents, ``INFO_FIELDS``) is each env's info matrix of this step; ``hours``
    and ``prices`` the hour each env acted in and its LMP; ``day_totals`` go into the infos of
    envs that are ``done``.
    """
    n = len(stepping)
    rewards: list[list[float] | None] = [None] * n
    infos: list[list[dict[str, Any]] | None] = [None] * n
    prices_, converged_, hours_ = prices.tolist(), converged.tolist(), hours.tolist()
    all_rewards = step_rewards(fields, share_reward)
    for i in np.flatnonzero(stepping).tolist():
        rewards[i] = all_rewards[i].tolist()
        totals = day_totals[i] if done[i] else None
        infos[i] = agent_infos(fields[i], hours_[i], prices_[i], converged_[i], totals)
    return BatchStep(observations, rewards, infos, done)


def _check_actions(actions: np.ndarray, stepping: np.ndarray, num_envs: int) -> None:
    expected = (num_envs, len(MICROGRIDS), 3)
    if actions.shape != expected or stepping.shape != (num_envs,):
        raise ValueError(
            f"actions must have shape {expected} and stepping ({num_envs},), got "
            f"{actions.shape} and {stepping.shape}"
        )
    if np.isfinite(actions).all():  # the usual case, in one reduction
        return
    finite = np.isfinite(actions).all(axis=2)
    bad = np.argwhere(stepping[:, None] & ~finite)
    if len(bad):
        where = ", ".join(f"env {i} {MICROGRIDS[a]}" for i, a in bad.tolist())
        raise ValueError(f"actions for {where} contain NaN or inf; actions must be finite")


def _step_constants(env: NetworkedMicrogridEnv) -> tuple:
    """The read-only inputs of :func:`step_batch` from one env of the batch's config."""
    p = env._profiles
    battery = BATTERY
    layout = env._layout
    return (
        (
            battery.max_power_mw,
            battery.capacity_mwh,
            battery.soc_min,
            battery.soc_max,
            battery.charge_efficiency,
            battery.discharge_efficiency,
        ),
        (env._ess_rows, env._dg_rows, env._pv_rows, env._wt_rows),
        (env._dg_pmin, env._dg_pmax, env._dg_s, env._dg_abc),
        (env._load_zone_idx, env._load_p_nom, env._load_q_nom),
        (env._mg_bus_rows, env._mg_bus_starts, env._mg_line_rows, env._mg_line_starts),
        (env._pcc_rows, env._mg_load_rows, env._mg_load_starts),
        (env._zone_load, p.pv, p.wind, p.price, env._terminal_price),
        (
            env._export_discount,
            env._nonconvergence_safety,
            env._cost_scale,
            env._penalty,
            env._settle_terminal,
        ),
        (layout.sources, layout.args, layout.low, layout.high, layout.agent_constants),
        _STATE_COLUMNS,
        np.zeros(len(MICROGRIDS)),
    )


@numba.njit(cache=True)
def step_batch(  # noqa: ANN001, ANN201, PLR0913, PLR0915 - numba kernel
    actions,
    stepping,
    hour,
    day,
    state,
    soc_start,
    outcome,
    day_totals,
    load_p,
    load_q,
    sgen_p,
    sgen_q,
    storage_p,
    voltages,
    warm,
    converged_out,
    price_out,
    fields,
    observations,
    solver_model,
    v_init,
    constants,
):
    """One :meth:`NetworkedMicrogridEnv.step` of every env ``i`` with ``stepping[i]``.

    In the env's order: dispatch of every env, then all their power flows in one lockstep
    :func:`~tune_grid.grid.zbus.solve_batch` (each warm-started from its env's last solution),
    then per env the outcome, the day-end battery settlement (last hour), info matrix
    (``fields[i]``) and day totals, state update, next hour's exogenous inputs and observations
    (``observations[i]``). ``converged_out`` and ``price_out`` receive each env's convergence
    flag and the LMP of the hour it acted in.
    """
    (
        (battery_mw, capacity_mwh, soc_min, soc_max, eta_c, eta_d),
        (ess_rows, dg_rows, pv_rows, wt_rows),
        (dg_pmin, dg_pmax, dg_s, dg_abc),
        (load_zone, load_p_nom, load_q_nom),
        (bus_rows, bus_starts, line_rows, line_starts),
        (pcc_rows, mg_load_rows, mg_load_starts),
        (zone_load, pv, wind, price, terminal_price),
        (export_discount, nonconvergence_safety, cost_scale, penalty, settle_terminal),
        (obs_sources, obs_args, obs_low, obs_high, agent_constants),
        state_columns,
        zeros,
    ) = constants
    n_env, n_agents = actions.shape[0], actions.shape[1]
    dispatched = np.empty((n_env, n_agents, len(kernels.DISPATCH_COLUMNS)))
    for i in range(n_env):  # device set-points into each env's power-flow inputs
        if stepping[i]:
            price_out[i] = price[day[i], hour[i]]
            kernels.dispatch(
                actions[i],
                state[0, i],
                dg_pmin,
                dg_pmax,
                dg_s,
                battery_mw,
                capacity_mwh,
                soc_min,
                soc_max,
                eta_c,
                eta_d,
                HOUR,
                ess_rows,
                dg_rows,
                storage_p[i],
                sgen_p[i],
                sgen_q[i],
                dispatched[i],
            )
    n_bus, n_line, n_trafo = solver_model[19].size, solver_model[15].size, solver_model[18].size
    vm = np.empty((n_env, n_bus))
    loading = np.empty((n_env, n_line))
    trafo_p = np.empty((n_env, n_trafo))
    trafo_q = np.empty((n_env, n_trafo))
    solve_batch(
        load_p,
        load_q,
        sgen_p,
        sgen_q,
        storage_p,
        stepping,
        solver_model,
        v_init,
        voltages,
        warm,
        converged_out,
        vm,
        loading,
        trafo_p,
        trafo_q,
        np.zeros((n_env, 2)),
    )
    terminal_cost = np.zeros(n_agents)
    for i in range(n_env):
        if not stepping[i]:
            continue
        h, d = hour[i], day[i]
        out = outcome[i]
        kernels.outcome(
            converged_out[i],
            vm[i],
            loading[i],
            trafo_p[i],
            bus_rows,
            bus_starts,
            line_rows,
            line_starts,
            pcc_rows,
            load_p[i],
            mg_load_rows,
            mg_load_starts,
            sgen_p[i],
            pv_rows,
            wt_rows,
            dispatched[i],
            dg_abc,
            price_out[i],
            export_discount,
            nonconvergence_safety,
            VOLTAGE_MIN_PU,
            VOLTAGE_MAX_PU,
            HOUR,
            out,
        )
        terminal_cost[:] = 0.0
        if settle_terminal and h == HOURS_PER_DAY - 1:
            kernels.terminal(
                dispatched[i, :, 4],
                soc_start[i],
                capacity_mwh,
                terminal_price[d],
                eta_c,
                eta_d,
                terminal_cost,
            )
        kernels.finish(
            out,
            dispatched[i],
            out[:, 5],
            zeros,
            terminal_cost,
            cost_scale,
            penalty,
            fields[i],
            day_totals[i],
        )
        for k in range(state_columns.size):
            for a in range(state.shape[2]):
                state[k, i, a] = fields[i, a, state_columns[k]]
        hour[i] = h + 1
        next_hour = min(h + 1, HOURS_PER_DAY - 1)
        if h + 1 < HOURS_PER_DAY:
            kernels.exogenous(
                zone_load,
                d,
                next_hour,
                load_zone,
                load_p_nom,
                load_q_nom,
                pv,
                wind,
                pv_rows,
                wt_rows,
                PV_RATING_MW,
                WIND_RATING_MW,
                load_p[i],
                load_q[i],
                sgen_p[i],
            )
        observe(
            obs_sources,
            obs_args,
            obs_low,
            obs_high,
            agent_constants,
            next_hour,
            price[d],
            terminal_price[d],
            zone_load[1:, d, next_hour],
            pv[d, next_hour],
            wind[d, next_hour],
            state[0, i],
            state[1, i],
            state[2, i],
            dg_pmax,
            dg_s,
            state[4, i],
            state[5, i],
            state[3, i],
            observations[i],
        )
