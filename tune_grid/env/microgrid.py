"""Networked microgrids: a PettingZoo ParallelEnv over an AC power flow.

An IEEE 34-bus distribution feeder (the DSO) with three IEEE 13-bus microgrids attached at DSO buses
822, 848 and 856. Each microgrid agent operates its battery and diesel generator for one day of 24
hourly steps driven by real CAISO load, solar, wind and price data.

=========  =====================================================================================
Agents     ``MG1``, ``MG2``, ``MG3`` (simultaneous moves)
Action     Box(-1, 1, (3,)): battery power (a0 x 0.5 MW, > 0 charges); diesel commitment and
           output (a1 < 0: off, P = Q = 0; a1 >= 0: on at P_min + a1 (P_max - P_min)); diesel
           reactive power while on (a2 x sqrt(S^2 - P^2))
Obs        Box((features,)), float32: ``env.obs_features``, the table of
           :mod:`tune_grid.env.observation` (time, prices now and ``price_lookahead`` hours
           ahead, the day's terminal price, own load, PV, wind, SoC, DG output, own voltages,
           exchange, agent identity and diesel data) plus protocol features
Reward     ``economics.reward``: -cost / cost_scale - penalty * safety (own, or the mean with
           ``share_reward``)
Episode    24 steps (one day); terminates at midnight
=========  =====================================================================================

Money, per microgrid and hour (formulas: :mod:`tune_grid.economics`): DG fuel with its no-load
cost while the diesel runs, plus the power imported through its substation transformer
(measured by the power flow, so losses are included) times the LMP; export earns
``export_discount`` x LMP. On the day's last step the battery's energy is settled against the
day's starting SoC at the terminal price (``cost_terminal_soc``; ``terminal_soc: free`` turns
it off for comparisons). Safety: the sum over the microgrid's buses of the voltage outside
[0.95, 1.05] pu, plus the sum over its lines of the loading above 100 % (as a fraction).

A power flow that does not converge never crashes the episode: that hour every agent is charged
``nonconvergence_safety``, the exchange is settled on the lossless balance (load - generation +
battery), and voltages in the observation keep their last converged values.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from tune_grid import economics
from tune_grid.config import EnvConfig
from tune_grid.env import kernels
from tune_grid.env.kernels import (
    DISPATCH_COLUMNS,
    FINISH_COLUMNS,
    OUTCOME_COLUMNS,
    segment_starts,
)
from tune_grid.env.observation import ObservationLayout, observation_features, observe
from tune_grid.env.protocols import Protocols, obs_feature_names
from tune_grid.grid.data import HOURS_PER_DAY, split_profiles
from tune_grid.grid.devices import (
    BATTERY,
    DIESEL,
    HOUR,
    MICROGRIDS,
    PV_RATING_MW,
    VOLTAGE_MAX_PU,
    VOLTAGE_MIN_PU,
    WIND_RATING_MW,
)
from tune_grid.grid.network import build_network
from tune_grid.grid.powerflow import PowerFlowResult, make_solver
from tune_grid.grid.solver import PowerFlowSolver
from tune_grid.grid.zbus import ZBusPowerFlow

ENV_NAME = "networked_microgrids_v1"
"""Bumped whenever dynamics, money or observations change (v1: unit commitment, terminal
energy, one objective, agent identity, price lookahead); results files carry it."""
ZONES = ("DSO", *MICROGRIDS)
#: Numeric info fields per agent, in the column order of the step's info matrix.
INFO_FIELDS: tuple[str, ...] = (*OUTCOME_COLUMNS, *DISPATCH_COLUMNS, *FINISH_COLUMNS)
_FIELD_INDEX = {name: i for i, name in enumerate(INFO_FIELDS)}
DAY_TOTAL_KEYS: tuple[str, ...] = ("day_cost", "day_safety", "day_violation_hours")
"""Keys of the last step's info: the agent's totals over the day (cost $, safety, hours with
safety > 0), so per-episode metrics need no per-step bookkeeping outside the env."""


def agent_infos(
    fields: np.ndarray,
    hour: int,
    price: float,
    converged: bool,
    day_totals: np.ndarray | None,
) -> list[dict[str, Any]]:
    """Each agent's step info without protocol keys: its row of the step's info matrix as
    Python floats (``INFO_FIELDS``), the hour acted in, its LMP, whether the power flow
    converged and, on the day's last step (``day_totals`` given), its ``DAY_TOTAL_KEYS``."""
    totals = day_totals.tolist() if day_totals is not None else None
    infos = []
    for i, row in enumerate(fields.tolist()):
        info = dict(zip(INFO_FIELDS, row, strict=True))
        info["hour"] = hour
        info["price"] = price
        info["converged"] = converged
        if totals is not None:
            info.update(zip(DAY_TOTAL_KEYS, totals[i], strict=True))
        infos.append(info)
    return infos


@functools.lru_cache(maxsize=4)
def _network_template(load_scale: float) -> Any:
    """The built network, once per process and load scale (building it costs ~0.3 s; an env
    runner with 32 envs would otherwise spend 10 s on it). Envs take a deep copy (~20 ms)."""
    return build_network(load_scale=load_scale)


@functools.lru_cache(maxsize=4)
def _zbus_template(load_scale: float) -> ZBusPowerFlow:
    """The Z-bus model of that network (one ``pandapower.runpp``, ~0.3 s); envs take clones."""
    return ZBusPowerFlow(_network_template(load_scale))


def _segments(zone: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the microgrid zones, concatenated in MICROGRIDS order, and each zone's start."""
    rows = [np.flatnonzero(zone == mg) for mg in MICROGRIDS]
    if any(len(r) == 0 for r in rows):
        raise ValueError("every microgrid zone needs at least one element")
    return segment_starts(rows)


class NetworkedMicrogridEnv(ParallelEnv):
    """The networked-microgrid ParallelEnv. Build it with :func:`tune_grid.make_env`."""

    metadata = {"name": ENV_NAME, "render_modes": [], "is_parallelizable": True}

    def __init__(self, config: EnvConfig | None = None) -> None:
        self.config = config or EnvConfig()
        self.possible_agents = list(MICROGRIDS)
        self.agents: list[str] = []
        self._net = copy.deepcopy(_network_template(self.config.load_scale))
        self._solver: PowerFlowSolver
        if self.config.powerflow == "fast":
            self._solver = _zbus_template(self.config.load_scale).clone()
        else:
            self._solver = make_solver(self._net, self.config.powerflow)
        self._profiles = split_profiles(self.config.split)
        self.protocols = Protocols(self.config, self._net)
        self._layout = ObservationLayout.of(observation_features(self.config))
        self.obs_features: tuple[str, ...] = obs_feature_names(self.config)
        self._index_network()
        n_obs = len(self.obs_features)
        low = np.concatenate([self._layout.low, self.protocols.obs_low]).astype(np.float32)
        high = np.concatenate([self._layout.high, self.protocols.obs_high]).astype(np.float32)
        self._observation_spaces = {
            a: spaces.Box(low, high, shape=(n_obs,), dtype=np.float32) for a in MICROGRIDS
        }
        self._action_spaces = {
            a: spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32) for a in MICROGRIDS
        }
        self._rng = np.random.default_rng()
        self._day = 0
        self._hour = 0

    # ----------------------------------------------------------------------------- setup
    @property
    def net(self):  # noqa: ANN201 - pandapowerNet
        """The pandapower network the env was built from (read-only: the solver has its copy)."""
        return self._net

    def _index_network(self) -> None:
        net = self._net
        load_zone = net.load["zone"].to_numpy()
        self._load_zone_idx = np.array([ZONES.index(z) for z in load_zone], dtype=np.int64)
        scale = self.config.load_scale
        self._load_p_nom = net.load["p_nom_mw"].to_numpy(float) * scale
        self._load_q_nom = net.load["q_nom_mvar"].to_numpy(float) * scale
        self._mg_load_rows, self._mg_load_starts = _segments(load_zone)
        sgen = net.sgen

        def sgen_rows(kind: str) -> np.ndarray:
            return np.array(
                [
                    sgen.index.get_loc(sgen.index[(sgen.zone == mg) & (sgen.kind == kind)][0])
                    for mg in MICROGRIDS
                ]
            )

        self._dg_rows, self._pv_rows, self._wt_rows = (
            sgen_rows(k).astype(np.int64) for k in ("DG", "PV", "WT")
        )
        storage_zone = net.storage["zone"].to_numpy()
        self._ess_rows = np.array(
            [np.flatnonzero(storage_zone == mg)[0] for mg in MICROGRIDS], dtype=np.int64
        )
        self._mg_bus_rows, self._mg_bus_starts = _segments(net.bus["zone"].to_numpy())
        self._mg_line_rows, self._mg_line_starts = _segments(net.line["zone"].to_numpy())
        trafo_names = net.trafo["name"].tolist()
        self._pcc_rows = np.array(
            [trafo_names.index(f"{mg}_pcc") for mg in MICROGRIDS], dtype=np.int64
        )
        self._dg_pmin = np.array([DIESEL[mg].min_p_mw for mg in MICROGRIDS])
        self._dg_pmax = np.array([DIESEL[mg].max_p_mw for mg in MICROGRIDS])
        self._dg_s = np.array([DIESEL[mg].s_mva for mg in MICROGRIDS])
        self._dg_abc = np.array([[DIESEL[mg].a, DIESEL[mg].b, DIESEL[mg].c] for mg in MICROGRIDS])
        self._dispatched = np.zeros((len(MICROGRIDS), len(DISPATCH_COLUMNS)))
        self._outcome = np.zeros((len(MICROGRIDS), len(OUTCOME_COLUMNS)))
        self._zeros = np.zeros(len(MICROGRIDS))
        cfg = self.config  # frozen: the step reads these scalars from plain attributes
        self._export_discount, self._nonconvergence_safety = (
            float(cfg.export_discount),
            float(cfg.nonconvergence_safety),
        )
        self._cost_scale, self._penalty = float(cfg.cost_scale), float(cfg.penalty)
        self._share_reward = bool(cfg.share_reward)
        self._settle_terminal = cfg.terminal_soc == "settle"
        self._terminal_price = economics.terminal_price(self._profiles.price)  # per day
        self._terminal_cost = np.zeros(len(MICROGRIDS))
        self._load_p = np.zeros(len(net.load))
        self._load_q = np.zeros(len(net.load))
        self._sgen_p = np.zeros(len(net.sgen))
        self._sgen_q = np.zeros(len(net.sgen))
        self._storage_p = np.zeros(len(net.storage))
        profiles = self._profiles
        self._zone_load = np.stack([profiles.load[z] for z in ZONES])  # (zone, day, hour)

    # ------------------------------------------------------------------------------ spaces
    def observation_space(self, agent: str) -> spaces.Box:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Box:
        return self._action_spaces[agent]

    @property
    def num_days(self) -> int:
        return self._profiles.num_days

    @property
    def date(self) -> str:
        """Date (UTC-8 local day) of the current episode."""
        return self._profiles.dates[self._day]

    @property
    def day_index(self) -> int:
        """Index of the current episode's day in the split."""
        return self._day

    @property
    def hour(self) -> int:
        """Hours of the day already stepped (0 right after ``reset``)."""
        return self._hour

    @property
    def soc(self) -> np.ndarray:
        """Measured SoC of each microgrid's battery now (a copy, ``MICROGRIDS`` order)."""
        return np.array(self._soc, dtype=float)

    @property
    def day_start_soc(self) -> np.ndarray:
        """SoC at the day's start, which the terminal settlement compares against (a copy)."""
        return np.array(self._soc_start, dtype=float)

    # --------------------------------------------------------------------------- episode
    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            for i, agent in enumerate(MICROGRIDS):
                self._action_spaces[agent].seed(seed + i)
                self._observation_spaces[agent].seed(seed + i)
        # Options: "day" (index in the split or "YYYY-MM-DD") and "soc"; other keys are ignored,
        # as PettingZoo's API test passes arbitrary options.
        options = options or {}
        self._day = self._resolve_day(options.get("day"))
        soc = options.get("soc", self.config.initial_soc)
        if soc is None:
            self._soc = self._rng.uniform(0.2, 0.8, size=len(MICROGRIDS))
        else:
            if not BATTERY.soc_min <= float(soc) <= BATTERY.soc_max:
                raise ValueError(
                    f"soc must be in [{BATTERY.soc_min}, {BATTERY.soc_max}], got {soc!r}"
                )
            self._soc = np.full(len(MICROGRIDS), float(soc))
        self._soc_start = self._soc.copy()
        self._hour = 0
        self._day_totals = np.zeros((len(MICROGRIDS), len(DAY_TOTAL_KEYS)))
        self.agents = list(self.possible_agents)
        self._dg_p = np.zeros(len(MICROGRIDS))
        self._dg_q = np.zeros(len(MICROGRIDS))
        self._set_exogenous(self._hour)
        self._storage_p[:] = 0.0
        self._sgen_p[self._dg_rows] = 0.0
        self._sgen_q[self._dg_rows] = 0.0
        # A cold start: an episode's numbers then depend on its seed, day and actions only, not
        # on the last bits of whatever the env solved before.
        self._solver.reset()
        result = self._solve()
        self._v_min = np.ones(len(MICROGRIDS))
        self._v_max = np.ones(len(MICROGRIDS))
        self._exchange = np.zeros(len(MICROGRIDS))
        if result.converged:
            self._record_voltages(result)
            self._exchange = result.trafo_p_hv_mw[self._pcc_rows].copy()
        self._outcome[:, 9] = self._v_min  # kept by a step whose power flow fails
        self._outcome[:, 10] = self._v_max
        self.protocols.reset(
            day=self._day,
            profiles=self._profiles,
            result=result if result.converged else None,
            exchange=self._exchange,
            soc=self._soc,
        )
        observations = self._observe(self._hour)
        infos = {a: {"day": self._day, "date": self.date} for a in self.agents}
        return observations, infos

    def _resolve_day(self, day: Any) -> int:
        if day is None:
            return int(self._rng.integers(self.num_days))
        if isinstance(day, str):
            try:
                return self._profiles.dates.index(day)
            except ValueError:
                raise ValueError(
                    f"day {day!r} is not in the {self.config.split} split "
                    f"({self._profiles.dates[0]} .. {self._profiles.dates[-1]})"
                ) from None
        if isinstance(day, int | np.integer) and 0 <= int(day) < self.num_days:
            return int(day)
        raise ValueError(
            f"day must be an index in [0, {self.num_days - 1}] or a date string, got {day!r}"
        )

    def _set_exogenous(self, hour: int) -> None:
        """Write the loads, PV and wind of ``hour`` into the solver input buffers."""
        kernels.exogenous(
            self._zone_load,
            self._day,
            hour,
            self._load_zone_idx,
            self._load_p_nom,
            self._load_q_nom,
            self._profiles.pv,
            self._profiles.wind,
            self._pv_rows,
            self._wt_rows,
            PV_RATING_MW,
            WIND_RATING_MW,
            self._load_p,
            self._load_q,
            self._sgen_p,
        )

    def _solve(self) -> PowerFlowResult:
        return self._solver.solve(
            self._load_p, self._load_q, self._sgen_p, self._sgen_q, self._storage_p
        )

    def _record_voltages(self, result: PowerFlowResult) -> None:
        v = result.vm_pu[self._mg_bus_rows]
        self._v_min = np.minimum.reduceat(v, self._mg_bus_starts)
        self._v_max = np.maximum.reduceat(v, self._mg_bus_starts)

    def _observe(self, hour: int) -> dict[str, np.ndarray]:
        d = self._day
        p = self._profiles
        layout = self._layout
        matrix = np.empty((len(MICROGRIDS), len(self.obs_features)), dtype=np.float32)
        observe(
            layout.sources,
            layout.args,
            layout.low,
            layout.high,
            layout.agent_constants,
            hour,
            p.price[d],
            self._terminal_price[d],
            self._zone_load[1:, d, hour],
            p.pv[d, hour],
            p.wind[d, hour],
            self._soc,
            self._dg_p,
            self._dg_q,
            self._dg_pmax,
            self._dg_s,
            self._v_min,
            self._v_max,
            self._exchange,
            matrix,
        )
        n_base = layout.sources.size
        if matrix.shape[1] > n_base:
            extra = np.asarray(self.protocols.observations(), dtype=np.float64)
            np.clip(extra, self.protocols.obs_low, self.protocols.obs_high, out=extra)
            matrix[:, n_base:] = extra
        return dict(zip(MICROGRIDS, matrix, strict=True))  # a fresh matrix: callers may keep rows

    # ------------------------------------------------------------------------------ step
    def _actions_matrix(self, actions: dict[str, Any]) -> np.ndarray:
        try:
            matrix = np.array([actions[a] for a in MICROGRIDS], dtype=np.float64)
        except (KeyError, ValueError, TypeError):
            matrix = None
        if (
            matrix is None
            or matrix.shape != (len(MICROGRIDS), 3)
            or len(actions) != len(MICROGRIDS)
        ):
            missing = [a for a in self.agents if a not in actions]
            extra = [a for a in actions if a not in self.agents]
            if missing or extra:
                raise ValueError(
                    f"actions must have exactly the live agents {self.agents}; "
                    f"missing {missing}, unexpected {extra}"
                )
            for agent in MICROGRIDS:
                shape = np.shape(actions[agent])
                if shape != (3,):
                    raise ValueError(f"action for {agent} must have shape (3,), got {shape}")
            raise ValueError("actions must be numeric arrays of shape (3,)")
        return matrix

    def step(self, actions: dict[str, Any]):  # noqa: ANN201 - PettingZoo's 5-tuple of dicts
        if not self.agents:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        a = self._actions_matrix(actions)
        hour, d = self._hour, self._day
        price = float(self._profiles.price[d, hour])

        # Battery clipped to the SoC bounds, DG within its P range and apparent-power circle.
        dispatched = self._dispatched
        battery_spec = BATTERY
        finite = kernels.dispatch(
            a,
            self._soc,
            self._dg_pmin,
            self._dg_pmax,
            self._dg_s,
            battery_spec.max_power_mw,
            battery_spec.capacity_mwh,
            battery_spec.soc_min,
            battery_spec.soc_max,
            battery_spec.charge_efficiency,
            battery_spec.discharge_efficiency,
            HOUR,
            self._ess_rows,
            self._dg_rows,
            self._storage_p,
            self._sgen_p,
            self._sgen_q,
            dispatched,
        )
        if not finite:
            bad = [MICROGRIDS[i] for i in np.flatnonzero(~np.isfinite(a).all(axis=1))]
            raise ValueError(f"actions for {bad} contain NaN or inf; actions must be finite")
        result = self._solve()

        # Exchange at the point of connection, safety, fuel and LMP settlement per microgrid.
        out = self._outcome  # columns v_min/v_max keep the last converged voltages
        converged = result.converged
        kernels.outcome(
            converged,
            result.vm_pu,
            result.line_loading_percent,
            result.trafo_p_hv_mw,
            self._mg_bus_rows,
            self._mg_bus_starts,
            self._mg_line_rows,
            self._mg_line_starts,
            self._pcc_rows,
            self._load_p,
            self._mg_load_rows,
            self._mg_load_starts,
            self._sgen_p,
            self._pv_rows,
            self._wt_rows,
            dispatched,
            self._dg_abc,
            price,
            self._export_discount,
            self._nonconvergence_safety,
            VOLTAGE_MIN_PU,
            VOLTAGE_MAX_PU,
            HOUR,
            out,
        )
        fields = np.empty((len(MICROGRIDS), len(INFO_FIELDS)))  # fresh: state views into it
        protocols = self.protocols
        if protocols.active:
            settlement = protocols.settle(
                price=price,
                exchange=out[:, 0].copy(),
                exchange_cost=out[:, 5].copy(),
                dg_p=dispatched[:, 2].copy(),
                result=result if converged else None,
                hour=hour,
            )
            exchange_cost, extra_cost = settlement.exchange_cost, settlement.extra_cost
        else:
            settlement = None
            exchange_cost, extra_cost = out[:, 5], self._zeros
        terminal_cost = self._zeros
        if self._settle_terminal and hour == HOURS_PER_DAY - 1:
            terminal_cost = self._terminal_cost
            kernels.terminal(
                dispatched[:, 4],
                self._soc_start,
                battery_spec.capacity_mwh,
                self._terminal_price[d],
                battery_spec.charge_efficiency,
                battery_spec.discharge_efficiency,
                terminal_cost,
            )
        kernels.finish(
            out,
            dispatched,
            exchange_cost,
            extra_cost,
            terminal_cost,
            self._cost_scale,
            self._penalty,
            fields,
            self._day_totals,
        )

        # Advance the state: views into this step's (never modified) info matrix.
        col = _FIELD_INDEX
        self._soc = fields[:, col["soc"]]
        self._dg_p, self._dg_q = fields[:, col["dg_p_mw"]], fields[:, col["dg_q_mvar"]]
        self._exchange = fields[:, col["exchange_mw"]]
        self._v_min, self._v_max = fields[:, col["v_min_pu"]], fields[:, col["v_max_pu"]]
        self._hour += 1
        done = self._hour >= HOURS_PER_DAY
        next_hour = min(self._hour, HOURS_PER_DAY - 1)
        if not done:
            self._set_exogenous(next_hour)
        if settlement is not None:
            protocol_info = protocols.after_step(
                next_hour=next_hour,
                day=d,
                profiles=self._profiles,
                result=result if converged else None,
                exchange=self._exchange,
                soc=self._soc,
            )
        observations = self._observe(next_hour)

        own = fields[:, -1].tolist()
        if self._share_reward:
            own = [sum(own) / len(own)] * len(own)
        rewards = dict(zip(MICROGRIDS, own, strict=True))
        per_agent = agent_infos(fields, hour, price, converged, self._day_totals if done else None)
        if settlement is not None:
            for i, info in enumerate(per_agent):
                info.update(settlement.info[i])
                info.update(protocol_info[i])
        infos = dict(zip(MICROGRIDS, per_agent, strict=True))
        terminations = dict.fromkeys(MICROGRIDS, done)
        truncations = dict.fromkeys(MICROGRIDS, False)
        if done:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def render(self) -> None:
        return None

    def close(self) -> None:
        return None
