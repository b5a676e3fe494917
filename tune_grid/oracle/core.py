"""The perfect-foresight oracle: solve a day's dispatch, replay it in the env, cache the result.

Per day, the exogenous injections of every bus are built from the profiles exactly as the env
does (nominal loads x ``load_scale`` x zone profile, PV and wind ratings x capacity factors) on
the env's own network (``make_env(config).net``). The dispatch (:mod:`tune_grid.oracle.dispatch`)
is solved by successive linearization with a trust region:

1. anchor at the AC power flow (the env's solver) of the better, in the day's merit, of the
   do-nothing and the rule-based baseline's schedules, with first-order
   sensitivities of every bus voltage and every exchange from forward differences of the AC power
   flow (3 x 3 extra power flows per hour, ~20 ms a day; ``sensitivities="lindistflow"`` uses
   LinDistFlow's instead: measured 10-50 % off on this long 24.9 kV feeder, so its steps overshoot
   and it converges slower and worse, see the docs of :func:`plan_day`);
2. solve the convex model (LinDistFlow flows and second-order terms around the anchor);
3. evaluate the new schedule with the AC power flow: accept it if the day's merit (the env's
   money + ``violation_price`` x the env's safety) does not get worse, and re-anchor there; else
   halve the trust region on the set points' moves;
4. stop after ``iterations`` solves, or when an accepted step moves no set point by more than
   1e-3 or gains less than $0.01; finally re-solve once with the polish (see dispatch).

Every accepted schedule is thus no worse, in the env's own AC terms, than both baselines.
The final schedule is replayed through ``make_env(config)`` for its true cost and safety. With a
coordination protocol in the config, the model still optimizes the physical money (fuel and
exchange at the LMP) and the replayed cost includes the protocol's settlement.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tune_grid import economics
from tune_grid.config import OUTCOME_FREE_KEYS, EnvConfig, outcome_key, outcome_values
from tune_grid.grid.data import select_days, split_profiles
from tune_grid.grid.devices import (
    BATTERY,
    DIESEL,
    MICROGRIDS,
    PV_RATING_MW,
    VOLTAGE_MAX_PU,
    VOLTAGE_MIN_PU,
    WIND_RATING_MW,
)
from tune_grid.oracle import cache
from tune_grid.oracle.dispatch import (
    Anchor,
    DayInputs,
    DispatchOptions,
    DispatchResult,
    Site,
    fuel_cost,
    needs_polish,
    settlement,
    solve_dispatch,
    terminal_cost,
)
from tune_grid.oracle.lindistflow import RadialNetwork
from tune_grid.oracle.replay import replay, schedule_actions

ORACLE_VERSION = 3
"""Bump when the oracle's model or its starting schedules (the baselines) change, so cached
days are recomputed."""
DEFAULT_ITERATIONS = 6
"""Most dispatch solves per day (successive linearization with a trust region)."""
CONVERGED_MW = 1e-3
"""Successive linearization stops when an accepted step moved no set point more than this..."""
CONVERGED_USD = 0.01
"""... or improved the day's merit (money + violation price x safety) by less than this."""
DEFAULT_SOC = 0.5
"""Initial SoC used when the config draws it at random (``initial_soc: null``)."""
FD_STEP = 0.01
"""Forward-difference step (MW / Mvar) of the AC sensitivities."""
ZONES = ("DSO", *MICROGRIDS)
SCHEDULE_KEYS = ("battery_mw", "dg_p_mw", "dg_q_mvar")
"""Info keys of the set points the oracle schedules, in the order of its control stack."""


# ----------------------------------------------------------------------------- system
@dataclass(frozen=True, eq=False)
class _System:
    """The network, its LinDistFlow model and the element rows the oracle writes to."""

    net: Any
    radial: RadialNetwork
    sites: list[Site]
    load_bus: np.ndarray
    load_zone: np.ndarray
    load_p_nom: np.ndarray
    load_q_nom: np.ndarray
    dg_rows: np.ndarray
    pv_rows: np.ndarray
    wt_rows: np.ndarray
    ess_rows: np.ndarray
    pcc_rows: np.ndarray
    pv_bus: np.ndarray
    wt_bus: np.ndarray
    safety_buses: np.ndarray
    """Bus rows the env judges (every microgrid bus)."""
    safety_lines: np.ndarray
    """Line rows the env judges (every microgrid line)."""
    fingerprint: str
    solvers: dict[str, Any] = field(default_factory=dict)

    def solver(self, backend: str) -> Any:
        from tune_grid.grid.powerflow import make_solver

        if backend not in self.solvers:
            self.solvers[backend] = make_solver(self.net, backend)
        return self.solvers[backend]


def _net_fingerprint(net: Any) -> str:
    tables = ("bus", "line", "trafo", "shunt", "load", "sgen", "storage", "ext_grid")
    payload = {}
    for name in tables:
        df = net[name].drop(columns=[c for c in ("geo",) if c in net[name]])
        payload[name] = df.to_json(orient="split", double_precision=12, default_handler=str)
    payload["sn_mva"] = float(net.sn_mva)
    payload["f_hz"] = float(net.f_hz)
    return cache.digest(payload)


@functools.lru_cache(maxsize=4)
def _system(config: EnvConfig) -> _System:
    """Read from the env's own net (it depends on the config, e.g. load_scale scales shunts)."""
    net = _env(config).net
    radial = RadialNetwork.from_pandapower(net)
    pos = radial.bus_position
    sgen, storage = net.sgen, net.storage

    def sgen_rows(kind: str) -> np.ndarray:
        return np.array(
            [int(np.flatnonzero((sgen.zone == mg).to_numpy() & (sgen.kind == kind).to_numpy())[0])
             for mg in MICROGRIDS]
        )  # fmt: skip

    dg_rows, pv_rows, wt_rows = (sgen_rows(k) for k in ("DG", "PV", "WT"))
    ess_rows = np.array([int(np.flatnonzero(storage.zone == mg)[0]) for mg in MICROGRIDS])
    trafo_names = net.trafo["name"].tolist()
    pcc_rows = np.array([trafo_names.index(f"{mg}_pcc") for mg in MICROGRIDS])
    sites = []
    for i, mg in enumerate(MICROGRIDS):
        sites.append(
            Site(
                name=mg,
                battery=BATTERY,
                dg=DIESEL[mg],
                battery_bus=int(pos(storage.bus.iat[ess_rows[i]])[0]),
                dg_bus=int(pos(sgen.bus.iat[dg_rows[i]])[0]),
                pcc_branch=radial.branch_position("trafo", f"{mg}_pcc"),
                buses=tuple(int(b) for b in np.flatnonzero(np.array(radial.bus_zone) == mg)),
                lines=tuple(
                    k
                    for k in range(radial.n_branch)
                    if radial.branch_kind[k] == "line" and radial.branch_zone[k] == mg
                ),
            )
        )
    return _System(
        net=net,
        radial=radial,
        sites=sites,
        load_bus=pos(net.load.bus),
        load_zone=np.array([ZONES.index(z) for z in net.load["zone"]]),
        load_p_nom=net.load["p_nom_mw"].to_numpy(float),
        load_q_nom=net.load["q_nom_mvar"].to_numpy(float),
        dg_rows=dg_rows,
        pv_rows=pv_rows,
        wt_rows=wt_rows,
        ess_rows=ess_rows,
        pcc_rows=pcc_rows,
        pv_bus=pos(sgen.bus.to_numpy()[pv_rows]),
        wt_bus=pos(sgen.bus.to_numpy()[wt_rows]),
        safety_buses=np.flatnonzero(net.bus["zone"].isin(MICROGRIDS).to_numpy()),
        safety_lines=np.flatnonzero(net.line["zone"].isin(MICROGRIDS).to_numpy()),
        fingerprint=_net_fingerprint(net),
    )


def _profiles(split: str) -> Any:
    return split_profiles(split)


@functools.lru_cache(maxsize=4)
def _env(config: EnvConfig) -> Any:
    from tune_grid.env import make_env

    return make_env(config)


# ------------------------------------------------------------------------------ a day
@dataclass(frozen=True)
class _Exogenous:
    """One day's uncontrolled element values (element rows x 24) and bus injections."""

    price: np.ndarray
    load_p: np.ndarray
    load_q: np.ndarray
    pv: np.ndarray
    wind: np.ndarray
    p_ext: np.ndarray
    q_ext: np.ndarray


def _exogenous(system: _System, profiles: Any, day: int, load_scale: float) -> _Exogenous:
    return exogenous_from(
        system,
        {z: profiles.load[z][day] for z in ZONES},
        profiles.pv[day],
        profiles.wind[day],
        profiles.price[day],
        load_scale,
    )


def exogenous_from(
    system: _System,
    load: Mapping[str, np.ndarray],
    pv: np.ndarray,
    wind: np.ndarray,
    price: np.ndarray,
    load_scale: float,
) -> _Exogenous:
    """Element values and bus injections of hourly per-unit profiles (any number of hours):
    ``load`` per zone (DSO and the microgrids), ``pv`` and ``wind`` capacity factors, ``price``
    $/MWh. The env's own rules: nominal loads x ``load_scale`` x zone profile, ratings x factors."""
    zone_profile = np.vstack([np.asarray(load[z], float) for z in ZONES])  # (zones, T)
    factor = zone_profile[system.load_zone]
    load_p = system.load_p_nom[:, None] * load_scale * factor
    load_q = system.load_q_nom[:, None] * load_scale * factor
    pv_mw = np.repeat(PV_RATING_MW * np.asarray(pv, float)[None, :], len(MICROGRIDS), axis=0)
    wind_mw = np.repeat(WIND_RATING_MW * np.asarray(wind, float)[None, :], len(MICROGRIDS), axis=0)
    n_bus, hours = system.radial.n_bus, load_p.shape[1]
    p_ext = np.zeros((n_bus, hours))
    q_ext = np.zeros((n_bus, hours))
    np.add.at(p_ext, system.load_bus, -load_p)
    np.add.at(q_ext, system.load_bus, -load_q)
    np.add.at(p_ext, system.pv_bus, pv_mw)
    np.add.at(p_ext, system.wt_bus, wind_mw)
    return _Exogenous(np.asarray(price, float), load_p, load_q, pv_mw, wind_mw, p_ext, q_ext)


def _soc_path(battery_mw: np.ndarray, day: DayInputs) -> np.ndarray:
    """(M, T + 1) SoC of battery schedules (M, T) from the day's initial SoC (no clipping)."""
    b = BATTERY
    stored = np.where(
        battery_mw > 0, battery_mw * b.charge_efficiency, battery_mw / b.discharge_efficiency
    )
    steps = np.cumsum(stored * day.hours / b.capacity_mwh, axis=1)
    start = day.start_soc(len(stored))[:, None]
    return start + np.concatenate([np.zeros((len(stored), 1)), steps], axis=1)


class _AcEvaluator:
    """AC power flows of a day's schedules with the env's solver, and their env-style merit."""

    def __init__(
        self, system: _System, exo: _Exogenous, cfg: EnvConfig, price_v: float, day: DayInputs
    ) -> None:
        self.system, self.exo, self.cfg, self.price_v, self.day = system, exo, cfg, price_v, day
        self.solver = system.solver(cfg.powerflow)
        net = system.net
        self.sgen_p = np.zeros(len(net.sgen))
        self.sgen_q = np.zeros(len(net.sgen))
        self.storage_p = np.zeros(len(net.storage))

    def _flow(self, t: int, battery: np.ndarray, dg_p: np.ndarray, dg_q: np.ndarray) -> Any:
        s, exo = self.system, self.exo
        self.sgen_p[s.pv_rows] = exo.pv[:, t]
        self.sgen_p[s.wt_rows] = exo.wind[:, t]
        self.sgen_p[s.dg_rows] = dg_p
        self.sgen_q[s.dg_rows] = dg_q
        self.storage_p[s.ess_rows] = battery
        return self.solver.solve(
            exo.load_p[:, t], exo.load_q[:, t], self.sgen_p, self.sgen_q, self.storage_p
        )

    def evaluate(self, controls: np.ndarray, jacobian: bool = False) -> tuple[Anchor, float, float]:
        """(anchor at ``controls`` (3, M, T), money $, merit = money + price_v x env safety).

        Money is the fuel and exchange as the env settles them; safety the env's (voltage and
        line overload on the microgrids; ``nonconvergence_safety`` per microgrid in an hour that
        diverges, anchored at LinDistFlow). ``jacobian``: add forward-difference sensitivities
        of w and of the exchanges (step ``FD_STEP``, 3M extra power flows per hour)."""
        system, exo, cfg = self.system, self.exo, self.cfg
        n_mg, hours = controls.shape[1], controls.shape[2]
        w = np.zeros((system.radial.n_bus, hours))
        exchange = np.zeros((n_mg, hours))
        w_jac = np.zeros((system.radial.n_bus, 3 * n_mg, hours)) if jacobian else None
        x_jac = np.zeros((n_mg, 3 * n_mg, hours)) if jacobian else None
        safety = 0.0
        for t in range(hours):
            u = controls[:, :, t].copy()
            res = self._flow(t, *u)
            if res.converged:
                w[:, t] = res.vm_pu**2
                exchange[:, t] = res.trafo_p_hv_mw[system.pcc_rows]
                vm = res.vm_pu[system.safety_buses]
                safety += float(
                    np.maximum(vm - VOLTAGE_MAX_PU, 0.0).sum()
                    + np.maximum(VOLTAGE_MIN_PU - vm, 0.0).sum()
                )
                loading = res.line_loading_percent[system.safety_lines]
                safety += float(np.maximum(loading - 100.0, 0.0).sum() / 100.0)
            else:
                safety += cfg.nonconvergence_safety * n_mg
                w[:, t], exchange[:, t] = self._lindistflow(t, u)
            if w_jac is not None and x_jac is not None and res.converged:
                for j in range(3 * n_mg):
                    v = u.copy()
                    v.flat[j] += FD_STEP
                    r = self._flow(t, *v)
                    if r.converged:
                        w_jac[:, j, t] = (r.vm_pu**2 - w[:, t]) / FD_STEP
                        x_jac[:, j, t] = (
                            r.trafo_p_hv_mw[system.pcc_rows] - exchange[:, t]
                        ) / FD_STEP
                self._flow(t, *u)  # leave the warm start at the base point
        if w_jac is not None and x_jac is not None:  # hours that diverged: LinDistFlow
            bad = ~np.any(w_jac, axis=(0, 1))
            if bad.any():
                lin_w, lin_x = self._lin_jacobian()
                w_jac[:, :, bad] = lin_w[:, :, None]
                x_jac[:, :, bad] = lin_x[:, :, None]
        fuel = sum(float(fuel_cost(s.dg, controls[1, i]).sum()) for i, s in enumerate(system.sites))
        money = fuel + float(settlement(exo.price[None, :], exchange, cfg.export_discount).sum())
        batteries = [s.battery for s in system.sites]
        money += float(terminal_cost(_soc_path(controls[0], self.day), self.day, batteries).sum())
        anchor = Anchor(controls, w, exchange, w_jac, x_jac)
        return anchor, money, money + self.price_v * safety

    def _lindistflow(self, t: int, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        system = self.system
        p_inj = self.exo.p_ext[:, t].copy()
        q_inj = self.exo.q_ext[:, t].copy()
        for i, s in enumerate(system.sites):
            p_inj[s.battery_bus] -= u[0, i]
            p_inj[s.dg_bus] += u[1, i]
            q_inj[s.dg_bus] += u[2, i]
        lin = system.radial.solve(p_inj, q_inj)
        return lin["w"], lin["p_mw"][[s.pcc_branch for s in system.sites]]

    def _lin_jacobian(self) -> tuple[np.ndarray, np.ndarray]:
        """LinDistFlow's dw/du (n_bus, 3M) and dx/du (M, 3M)."""
        maps, sites = self.system.radial.maps, self.system.sites
        pcc = [s.pcc_branch for s in sites]
        w_cols = [-maps.Wp[:, s.battery_bus] for s in sites]
        w_cols += [maps.Wp[:, s.dg_bus] for s in sites]
        w_cols += [maps.Wq[:, s.dg_bus] for s in sites]
        x_cols = [-maps.Fp[pcc, s.battery_bus] for s in sites]
        x_cols += [maps.Fp[pcc, s.dg_bus] for s in sites]
        x_cols += [maps.Fq[pcc, s.dg_bus] for s in sites]
        return np.stack(w_cols, axis=1), np.stack(x_cols, axis=1)


@dataclass(frozen=True)
class OracleDay:
    """The oracle's result for one day (money in $ for all three microgrids together).

    ``model_*``: the convex dispatch model's values at its optimum (``model_bound``: the money
    of the relaxed solve before polishing; ``model_objective``: the polished schedule's money plus
    ``safety_price`` x its model violations). None is a strict bound on the AC problem (see the
    package docs). ``replay_*``: the schedule replayed in the real environment (AC power flow,
    the env's own cost and safety; ``replay_objective`` = cost + ``safety_price`` x safety, the
    reward's objective in $), the numbers to compare policies with: an achievable schedule, not a
    proven lower bound. ``schedule``: per
    microgrid (MG1, MG2, MG3) lists of 24 hourly values: ``battery_mw``, ``dg_p_mw``,
    ``dg_q_mvar``, ``exchange_mw`` (model), ``soc`` (25 values), ``replay_exchange_mw``,
    ``replay_soc`` (after each hour), ``replay_v_min_pu``, ``replay_v_max_pu``.
    """

    split: str
    day: int
    date: str
    model_cost: float
    model_bound: float
    model_violation: float
    model_objective: float
    safety_price: float
    replay_cost: float
    replay_safety: float
    replay_objective: float
    replay_violation_hours: int
    replay_clipped_mwh: float
    solve_time_s: float
    iterations: int
    max_voltage_error_pu: float
    """Max |model - AC| voltage on the microgrid buses at the final schedule."""
    solver: str
    initial_soc: float
    schedule: dict[str, list[list[float]]]
    cached: bool = False

    def actions(self) -> np.ndarray:
        """The schedule as env actions, shape (24, 3 agents, 3)."""
        s = self.schedule
        return schedule_actions(
            np.array(s["battery_mw"]), np.array(s["dg_p_mw"]), np.array(s["dg_q_mvar"])
        )

    def to_row(self, config: Mapping[str, Any] | EnvConfig | None = None) -> dict[str, Any]:
        """A row like ``evaluation.run_day``'s (cost = replayed cost) plus the model's numbers."""
        cfg = _config(config)
        ret = float(
            economics.reward(self.replay_cost, self.replay_safety, cfg.cost_scale, cfg.penalty)
        )
        return {
            "day": self.day,
            "date": self.date,
            "cost": self.replay_cost,
            "safety": self.replay_safety,
            "objective": self.replay_objective,
            "violation_hours": self.replay_violation_hours,
            "return": ret,
            "clipped_mwh": self.replay_clipped_mwh,
            "model_cost": self.model_cost,
            "model_bound": self.model_bound,
            "model_objective": self.model_objective,
            "solve_time_s": self.solve_time_s,
            "cached": self.cached,
        }

    def to_json(self) -> dict[str, Any]:
        return cache.to_record(self)

    @classmethod
    def from_json(cls, record: Mapping[str, Any], cached: bool = True) -> OracleDay:
        return cache.from_record(cls, record, cached)


def _config(config: Mapping[str, Any] | EnvConfig | None, split: str | None = None) -> EnvConfig:
    values = config.to_dict() if isinstance(config, EnvConfig) else dict(config or {})
    if split is not None:
        values["split"] = split
    return EnvConfig.from_dict(values)


def _physics(config: EnvConfig) -> EnvConfig:
    """``config`` with the outcome-free keys (``config.OUTCOME_FREE_KEYS``) but the split at
    their defaults (one env and cache entry for all)."""
    defaults = EnvConfig()
    keys = [k for k in OUTCOME_FREE_KEYS if k != "split"]
    return config.replace(**{k: getattr(defaults, k) for k in keys})


def config_key(config: Mapping[str, Any] | EnvConfig) -> str:
    """Key of the part of an env config the oracle's days depend on
    (``config.outcome_key``): configs with one key share oracle results."""
    return outcome_key(config)


def cache_key(
    config: EnvConfig,
    day: int,
    date: str,
    options: DispatchOptions,
    iterations: int,
    sensitivities: str = "ac",
) -> str:
    """Hash of everything an oracle day depends on: version, config (money and physics keys),
    dispatch options, network fingerprint, device data and the day's profiles."""
    profiles = _profiles(config.split)
    day_data = [profiles.load[z][day].tolist() for z in ZONES]
    day_data += [profiles.pv[day].tolist(), profiles.wind[day].tolist()]
    day_data += [profiles.price[day].tolist()]
    payload = {
        "version": ORACLE_VERSION,
        "split": config.split,
        "day": day,
        "date": date,
        "config": outcome_values(config),
        "options": dataclasses.asdict(options),
        "iterations": iterations,
        "sensitivities": sensitivities,
        "network": _system(config).fingerprint,
        "devices": [repr(BATTERY), [repr(DIESEL[m]) for m in MICROGRIDS]],
        "ratings": [PV_RATING_MW, WIND_RATING_MW],
        "profiles": cache.digest(day_data),
    }
    return cache.digest(payload)


def _resolve_day(profiles: Any, split: str, day: int | str) -> int:
    if isinstance(day, str):
        if day not in profiles.dates:
            raise ValueError(f"day {day!r} is not in the {split} split")
        return profiles.dates.index(day)
    if isinstance(day, int | np.integer) and 0 <= int(day) < profiles.num_days:
        return int(day)
    raise ValueError(f"day must be an index in [0, {profiles.num_days - 1}] or a date, got {day!r}")


def _rule_based_controls(config: EnvConfig, day: int, soc: float) -> np.ndarray:
    """(3, M, T) set points (battery, diesel P and Q) the rule-based baseline runs on ``day``."""
    from tune_grid.baselines import rule_based

    env = _env(config)
    policy = rule_based(env)
    observations, _ = env.reset(options={"day": day, "soc": soc})
    hours = []
    while env.agents:
        observations, _, _, _, infos = env.step(policy(observations))
        hours.append([[infos[a][k] for a in MICROGRIDS] for k in SCHEDULE_KEYS])
    return np.array(hours).transpose(1, 2, 0)


def default_options(config: EnvConfig) -> DispatchOptions:
    """The dispatch options of ``config``: safety priced as the reward prices it."""
    return DispatchOptions(
        violation_price=economics.safety_price(config.cost_scale, config.penalty)
    )


def plan_day(
    split: str,
    day: int | str,
    config: Mapping[str, Any] | EnvConfig | None = None,
    options: DispatchOptions | None = None,
    iterations: int = DEFAULT_ITERATIONS,
    sensitivities: str = "ac",
) -> tuple[DispatchResult, Anchor, float, int]:
    """Solve one day without replay: (final dispatch, AC anchor at it, total solve s, solves).

    ``sensitivities``: "ac" (forward differences of the AC power flow at each anchor, default)
    or "lindistflow" (the LinDistFlow model's own sensitivities plus its loss gradient). On test
    days 2024-01-01 and 2024-05-02 the latter ends at $667 and $13 a day after 6 solves with
    rejected steps, the former at $652 and -$96 after 3-5 accepted ones (replayed costs)."""
    if sensitivities not in ("ac", "lindistflow"):
        raise ValueError(f"sensitivities must be 'ac' or 'lindistflow', got {sensitivities!r}")
    cfg = _physics(_config(config, split))
    options = options or default_options(cfg)
    system = _system(cfg)
    profiles = _profiles(cfg.split)
    d = _resolve_day(profiles, cfg.split, day)
    exo = _exogenous(system, profiles, d, cfg.load_scale)
    soc0 = DEFAULT_SOC if cfg.initial_soc is None else cfg.initial_soc
    settle = cfg.terminal_soc == "settle"
    inputs = DayInputs(
        price=exo.price,
        p_ext_mw=exo.p_ext,
        q_ext_mvar=exo.q_ext,
        initial_soc=soc0,
        export_discount=cfg.export_discount,
        terminal_price=float(economics.terminal_price(exo.price)) if settle else None,
    )
    hours = exo.price.shape[0]
    start = time.perf_counter()
    # Start from the better (in AC merit) of doing nothing and the rule-based baseline's
    # schedule: every accepted step keeps the merit, so the oracle never ends worse than either.
    starts = [np.zeros((3, len(MICROGRIDS), hours)), _rule_based_controls(cfg, d, soc0)]
    final, final_anchor, solves = linearized_plan(
        system, exo, inputs, cfg, options, starts, iterations, sensitivities == "ac"
    )
    return final, final_anchor, time.perf_counter() - start, solves


def ac_merit(
    system: _System,
    exo: _Exogenous,
    inputs: DayInputs,
    cfg: EnvConfig,
    options: DispatchOptions,
    controls: np.ndarray,
) -> float:
    """The env's money + ``violation_price`` x the env's safety of set points (3, M, T) over the
    hours of ``exo`` (AC power flows; what :func:`linearized_plan` accepts steps by)."""
    return _AcEvaluator(system, exo, cfg, options.violation_price, inputs).evaluate(controls)[2]


def linearized_plan(
    system: _System,
    exo: _Exogenous,
    inputs: DayInputs,
    cfg: EnvConfig,
    options: DispatchOptions,
    starts: Sequence[np.ndarray],
    iterations: int,
    jacobian: bool = True,
) -> tuple[DispatchResult, Anchor, int]:
    """Successive linearization with a trust region over the hours of ``exo`` and ``inputs``
    (see the module doc), from the best of ``starts`` (each (3, M, T) set points) in AC merit.
    Returns (final dispatch, AC anchor at it, solves). ``jacobian``: AC sensitivities at each
    anchor (else LinDistFlow's). The oracle runs it over a whole day; the MPC
    (:mod:`tune_grid.oracle.mpc`) every hour over the rest of the day, on forecasts."""
    ac = _AcEvaluator(system, exo, cfg, options.violation_price, inputs)
    controls = min(starts, key=lambda u: ac.evaluate(u)[2])
    anchor, _, merit = ac.evaluate(controls, jacobian)
    # Successive linearization with a trust region: a step is accepted when the AC merit (the
    # env's money + violation_price x the env's safety) does not get worse. Intermediate solves
    # skip the polish; the accepted point is polished once at the end.
    fast = dataclasses.replace(options, polish=False)
    best: tuple[DispatchResult, Anchor, float | None] | None = None
    last: tuple[DispatchResult, Anchor, float | None] | None = None
    radius: float | None = None
    solves = 0
    while solves < max(int(iterations), 1):
        solves += 1
        try:
            result = solve_dispatch(system.radial, system.sites, inputs, anchor, fast, radius)
        except RuntimeError:  # numerical trouble (every solver failed): retry in a smaller region
            radius = 0.25 if radius is None else 0.5 * radius
            continue
        new = np.stack([result.battery_mw, result.dg_p_mw, result.dg_q_mvar])
        step = float(np.abs(new - controls).max())
        _, _, new_merit = ac.evaluate(new)
        last = (result, anchor, radius)
        if new_merit <= merit + 1e-6 * max(1.0, abs(merit)):  # accept the step
            gain = merit - new_merit
            best, controls, merit = last, new, new_merit
            if step < CONVERGED_MW or gain < CONVERGED_USD:
                break
            anchor = ac.evaluate(new, jacobian)[0]
        else:  # reject: the linearization was too optimistic, shrink the trust region
            radius = 0.5 * step if radius is None else 0.5 * min(radius, step)
            if radius < CONVERGED_MW:
                break
    chosen = best if best is not None else last
    if chosen is None:
        raise RuntimeError("the dispatch failed in every solve")
    final, used_anchor, used_radius = chosen
    if options.polish and needs_polish(final, system.sites):
        try:
            final = solve_dispatch(
                system.radial, system.sites, inputs, used_anchor, options, used_radius
            )
        except RuntimeError:  # the fixings do not fit the trust region: drop it
            final = solve_dispatch(system.radial, system.sites, inputs, used_anchor, options)
        solves += 1
    final_anchor = ac.evaluate(np.stack([final.battery_mw, final.dg_p_mw, final.dg_q_mvar]))[0]
    return final, final_anchor, solves


def oracle_cost(
    split: str,
    day: int | str,
    config: Mapping[str, Any] | EnvConfig | None = None,
    *,
    options: DispatchOptions | None = None,
    iterations: int = DEFAULT_ITERATIONS,
    sensitivities: str = "ac",
    use_cache: bool = True,
    refresh: bool = False,
    cache_dir: str | Path | None = None,
    keep: dict[str, OracleDay] | None = None,
) -> OracleDay:
    """The perfect-foresight optimum of one day (index or date) of ``split`` under ``config``.

    Looked up in the on-disk cache first, then in the table shipped with the package (see
    :mod:`tune_grid.oracle.cache`); computed, replayed in the environment and stored otherwise.
    ``keep``: a dict that receives the day under its cache key (to ship a table).
    ``config.initial_soc = None`` uses 0.5. Reward-only keys (penalty, cost_scale,
    share_reward) do not matter: the result is shared across them.
    ``refresh``: recompute and overwrite the cached entry; ``use_cache=False``: neither read nor
    write the cache.
    """
    cfg = _physics(_config(config, split))
    options = options or default_options(cfg)
    profiles = _profiles(cfg.split)
    d = _resolve_day(profiles, cfg.split, day)
    date = profiles.dates[d]
    path = None
    key = cache_key(cfg, d, date, options, iterations, sensitivities)
    if use_cache:
        path = cache.entry_path(cache.cache_dir(cache_dir), cfg.split, date, key)
        shipped = cache.shipped_records(SHIPPED_TABLE)
        record = None if refresh else (cache.load(path) or shipped.get(key))
        if record is not None:
            loaded = OracleDay.from_json(record)
            if keep is not None:
                keep[key] = loaded
            return loaded
    result, anchor, solve_s, solves = plan_day(
        cfg.split, d, cfg, options, iterations, sensitivities
    )
    system = _system(cfg)
    buses = np.array(sorted({b for s in system.sites for b in s.buses}))
    dv = np.abs(result.vm_pu[buses] - np.sqrt(anchor.w[buses]))
    soc0 = DEFAULT_SOC if cfg.initial_soc is None else cfg.initial_soc
    actions = schedule_actions(result.battery_mw, result.dg_p_mw, result.dg_q_mvar)
    rep = replay(_env(cfg), d, actions, soc0)
    series = rep["series"]

    def rows(a: np.ndarray) -> list[list[float]]:
        return [[round(float(v), 9) for v in r] for r in np.asarray(a)]

    oracle = OracleDay(
        split=cfg.split,
        day=d,
        date=date,
        model_cost=result.cost,
        model_bound=result.bound,
        model_violation=result.violation,
        model_objective=result.cost + options.violation_price * result.violation,
        safety_price=options.violation_price,
        replay_cost=rep["cost"],
        replay_safety=rep["safety"],
        replay_objective=rep["cost"] + options.violation_price * rep["safety"],
        replay_violation_hours=rep["violation_hours"],
        replay_clipped_mwh=rep["clipped_mwh"],
        solve_time_s=solve_s,
        iterations=solves,
        max_voltage_error_pu=float(dv.max()) if dv.size else 0.0,
        solver=result.solver,
        initial_soc=float(soc0),
        schedule={
            "battery_mw": rows(result.battery_mw),
            "dg_p_mw": rows(result.dg_p_mw),
            "dg_q_mvar": rows(result.dg_q_mvar),
            "exchange_mw": rows(result.exchange_mw),
            "soc": rows(result.soc),
            "replay_exchange_mw": rows(series["exchange_mw"]),
            "replay_soc": rows(series["soc"]),
            "replay_v_min_pu": rows(series["v_min_pu"]),
            "replay_v_max_pu": rows(series["v_max_pu"]),
        },
    )
    if path is not None:
        cache.store(path, oracle.to_json())
    if keep is not None:
        keep[key] = oracle
    return oracle


SHIPPED_TABLE = "oracle_days.parquet"
SHIPPED_TEST_DAYS = (61, 14)
"""The evenly spaced test-day sets shipped (the confirmation's and evaluation's 61, 14)."""
SHIPPED_VAL_DAYS = (23, None)
"""The validation-day sets shipped (the quickstart's ``val_days: 23``, and every day)."""


def shipped_days() -> dict[str, list[int]]:
    """Split -> the day indices the shipped oracle table holds under the default env config."""
    from tune_grid.grid.data import split_profiles

    test = {int(d) for n in SHIPPED_TEST_DAYS for d in day_list("test", n)}
    val_total = split_profiles("validation").num_days
    val = {int(d) for n in SHIPPED_VAL_DAYS for d in select_days(val_total, n)}
    return {"test": sorted(test), "validation": sorted(val)}


def build_shipped_table(print_fn: Any = print) -> Path:
    """Solve (or read from the disk cache) every shipped day under the default env config and
    write the table into the package (``python -m tune_grid.oracle.core``)."""
    keep: dict[str, OracleDay] = {}
    for split, days in shipped_days().items():
        start = time.perf_counter()
        for i, day in enumerate(days, 1):
            oracle_cost(split, day, keep=keep)
            if i % 10 == 0 or i == len(days):
                print_fn(
                    f"  oracle ({split}): {i}/{len(days)} days, {time.perf_counter() - start:.0f} s"
                )
    path = cache.write_shipped_table(
        SHIPPED_TABLE,
        {key: day.to_json() for key, day in keep.items()},
        {"split": [day.split for day in keep.values()]},
    )
    print_fn(f"wrote {len(keep)} oracle days to {path}")
    return path


def day_list(split: str, days: int | Sequence[int | str] | None) -> list[int | str]:
    """The days ``evaluate`` would use: None all, N evenly spaced, or the given indices/dates."""
    return select_days(_profiles(split).num_days, days)


def oracle_days(
    split: str = "test",
    days: int | Sequence[int | str] | None = None,
    config: Mapping[str, Any] | EnvConfig | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """Per-day oracle rows for ``days`` (None: all, N: N evenly spaced, or indices/dates), in the
    format of ``evaluation.evaluate`` (``cost`` is the replayed cost) plus ``model_cost``,
    ``model_bound``, ``solve_time_s`` and ``cached``; ``summarize`` works on it. kwargs: see
    oracle_cost."""
    cfg = _config(config, split)
    rows = [oracle_cost(cfg.split, d, cfg, **kwargs).to_row(cfg) for d in day_list(split, days)]
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class OptimalityGaps:
    """Per-day gaps ``(policy - oracle) / |oracle|`` of cost and of objective, and aggregates.

    ``gap`` (the headline cost gap) pools the days: (mean policy cost - mean oracle cost) /
    |mean oracle cost|, robust to days whose oracle cost is near zero; ``mean`` and ``median``
    are over days. ``objective_gap`` pools the objective (cost + penalty x cost_scale x safety,
    the reward's weights) the same way: a policy that trades violations for money shows it there.
    """

    per_day: pd.DataFrame
    gap: float
    mean: float
    median: float
    days: int
    objective_gap: float = math.nan

    def to_dict(self) -> dict[str, float]:
        return {
            "gap": self.gap,
            "objective_gap": self.objective_gap,
            "mean": self.mean,
            "median": self.median,
            "days": self.days,
        }


def _relative(policy: np.ndarray, oracle: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-day and pooled (policy - oracle) / |oracle|."""
    denom = np.abs(oracle)
    per_day = np.divide(policy - oracle, denom, out=np.full(len(denom), np.nan), where=denom > 0)
    pooled = (
        economics.relative_gap(float(policy.mean()), float(oracle.mean()))
        if len(oracle)
        else math.nan
    )
    return per_day, pooled


def optimality_gaps(
    per_day: pd.DataFrame, oracle: pd.DataFrame, oracle_column: str = "cost"
) -> OptimalityGaps:
    """Match ``per_day`` (from ``evaluate``) with ``oracle`` (from ``oracle_days``) by date.

    ``oracle_column``: "cost" (replayed in the env, the default: measured like the policy) or
    "model_cost" (the model's optimum) for the cost gap; the objective gap always compares
    replayed objectives (NaN when ``per_day`` has no ``objective`` column). Raises
    ``ValueError`` if a policy day has no oracle row.
    """
    key = "date" if "date" in per_day and "date" in oracle else "day"
    ref = oracle.set_index(key)
    missing = [v for v in per_day[key] if v not in ref.index]
    if missing:
        raise ValueError(
            f"no oracle result for {key} {missing[:5]} (compute them with oracle_days)"
        )
    matched = ref.loc[per_day[key]]
    policy_cost = per_day["cost"].to_numpy(float)
    oracle_cost_ = matched[oracle_column].to_numpy(float)
    gap, pooled = _relative(policy_cost, oracle_cost_)
    nan = np.full(len(per_day), np.nan)
    has_objective = "objective" in per_day and "objective" in matched
    policy_objective = per_day["objective"].to_numpy(float) if has_objective else nan
    oracle_objective = matched["objective"].to_numpy(float) if has_objective else nan
    objective_gap, objective_pooled = _relative(policy_objective, oracle_objective)
    table = pd.DataFrame(
        {
            "day": per_day["day"].to_numpy() if "day" in per_day else np.nan,
            "date": per_day["date"].to_numpy() if "date" in per_day else None,
            "policy_cost": policy_cost,
            "oracle_cost": oracle_cost_,
            "gap": gap,
            "policy_objective": policy_objective,
            "oracle_objective": oracle_objective,
            "objective_gap": objective_gap,
        }
    )
    return OptimalityGaps(
        per_day=table,
        gap=pooled,
        mean=float(np.nanmean(gap)) if len(gap) and np.isfinite(gap).any() else math.nan,
        median=float(np.nanmedian(gap)) if len(gap) and np.isfinite(gap).any() else math.nan,
        days=len(table),
        objective_gap=objective_pooled if has_objective else math.nan,
    )


def evaluate_with_oracle(
    policy: Any,
    split: str = "test",
    days: int | Sequence[int | str] | None = None,
    config: Mapping[str, Any] | EnvConfig | None = None,
) -> pd.DataFrame:
    """``evaluation.evaluate`` plus, per day, the oracle's replayed cost and objective and the
    policy's gaps to them (``oracle_cost``, ``optimality_gap``, ``oracle_objective``,
    ``objective_gap``). Aggregate with :func:`optimality_gaps`."""
    from tune_grid.env.evaluation import evaluate

    per_day = evaluate(policy, split, days, config)
    values = config.to_dict() if isinstance(config, EnvConfig) else dict(config or {})
    values["split"] = split
    oracle = oracle_days(split, list(per_day["date"]), values)
    gaps = optimality_gaps(per_day, oracle).per_day
    return per_day.assign(
        oracle_cost=gaps["oracle_cost"].to_numpy(),
        optimality_gap=gaps["gap"].to_numpy(),
        oracle_objective=gaps["oracle_objective"].to_numpy(),
        objective_gap=gaps["objective_gap"].to_numpy(),
    )


if __name__ == "__main__":
    build_shipped_table()
