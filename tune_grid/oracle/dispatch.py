"""Multi-period optimal dispatch of the microgrids over a LinDistFlow network (a convex QP/SOCP).

Decision variables per microgrid m and hour t: battery charge ``c`` and discharge ``d`` (MW at the
grid side, both >= 0, net battery power ``c - d``, > 0 charges), stored energy ``e`` (MWh), diesel
active power ``p`` and reactive power ``q``. The exchange with the DSO ``x`` (import > 0) is the
flow into the microgrid's point-of-connection branch.

Model (all linear or convex):

* Battery: ``e[t+1] = e[t] + eta_c c[t] - d[t] / eta_d``, ``soc_min E <= e <= soc_max E``,
  ``0 <= c, d <= P_max``, ``e[0] = initial_soc E``. The final energy is settled as the env does
  (``economics.terminal_soc_cost``, with ``DayInputs.terminal_price``; None: free, the v0
  rule): a deficit ``e[0] - e[T]`` costs ``price / eta_c`` per MWh, a surplus earns
  ``price eta_d``, written ``price eta_d (e[0] - e[T]) + price (1 / eta_c - eta_d)
  pos(e[0] - e[T])`` (convex, as the terminal price is >= 0). Simultaneous charge and
  discharge is allowed in the relaxed solve (it only
  wastes energy, which is attractive at negative prices); every hour where both are positive is
  then fixed to the direction of the net power and the problem is re-solved (*polish*), so the
  returned schedule is one the environment can execute.
* Diesel (unit commitment, as the env): off (``p = q = 0``, no cost) or on with
  ``P_min <= p <= P_max``, ``p^2 + q^2 <= S^2`` (second-order cone; with a solver without
  cones, an inscribed polygon, i.e. an inner approximation), fuel ``a p^2 + b p + c``. That set
  is not convex; the relaxed solve uses its convex hull: ``0 <= p <= P_max`` with the fuel's
  convex envelope (linear from 0 up to ``p* = clip(sqrt(c / a), P_min, P_max)``, the quadratic
  above), and reactive power ``|q| <= p sqrt(S^2 - p*^2) / p*`` (none without output), a valid
  relaxation that is exact at ``p = 0`` and ``p >= p*``. Hours that end strictly inside
  ``(0, p*)`` are rounded to off or ``>= p*`` in the polish solve, so the polished schedule is one
  the env can run, and its money is the exact fuel cost, no-load term included.
* Settlement: ``price x`` for import, ``discount price x`` for export, written
  ``price x + (1 - discount) max(price, 0) max(-x, 0)`` (convex for ``discount <= 1``). With a
  negative price the true settlement is concave (importing earns more than exporting costs); the
  model then uses the import branch ``price x`` alone, exact whenever the microgrid imports and an
  over-estimate if it exported (counted in ``negative_price_export_hours``; exporting at a
  negative price is never optimal unless forced).
* Network: LinDistFlow (:mod:`tune_grid.oracle.lindistflow`): lossless branch flows, linear in
  the injections, for the line limits ``|S| <= S_max`` (polygon or cone) and the losses.
  Without an :class:`Anchor` it is the textbook model (lossless exchange, ``w`` from
  LinDistFlow), which the hand-checkable tests use. With an anchor (an AC operating point
  ``u0``): ``w = w_ac(u0) + J_w (u - u0) - curv l2`` and
  ``x = x_ac(u0) + J_x (u - u0) + sum_site r l2``, i.e. exact AC values at ``u0``, first-order
  sensitivities ``J`` (the AC power flow's, by finite differences, when the anchor carries them,
  else LinDistFlow's plus the loss gradient) and the DistFlow second-order terms: a branch
  whose flow changes by (dP, dQ) carries an extra squared current ``l2 = (dP^2 + dQ^2) / w``
  whose losses add to the site's exchange and lower the voltages below it. The curvature is
  convex where it costs (exchange at prices >= 0, lower voltage limit) and left out of the upper
  voltage limit (conservative: it only lowers voltages). Voltage limits ``v_min..v_max`` on the
  sites' buses and the line limits are elastic: a violation costs ``violation_price`` $ per pu
  (voltage, per bus) or per unit of overload (line) and hour, i.e. they are hard whenever they
  can be met at a marginal cost below that price. DSO buses get soft limits at
  ``dso_voltage_price`` (0 by default, as the environment does not judge them).

Branches in series between controlled buses carry the same flow change, so the second-order
terms use one squared flow change per group of them. Solved with Clarabel; fallback: HiGHS,
then OSQP, on a QP variant (inscribed polygons instead of cones, no second-order terms)."""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from tune_grid import economics
from tune_grid.grid.devices import Battery, DieselGenerator
from tune_grid.oracle.lindistflow import RadialNetwork

ON_TOL_MW = 1e-5
"""Diesel output below this is reported as off (0 MW) and charged no no-load cost."""
CONIC_SOLVERS = ("CLARABEL",)
FALLBACK_SOLVERS = ("HIGHS", "OSQP")
SIMULTANEOUS_TOL_MW = 1e-6
"""Charge and discharge both above this in one hour: the polish fixes the hour's direction."""
POLISH_ROUNDS = 5


@dataclass(frozen=True)
class Site:
    """One microgrid: its devices, where they sit, and the elements it is judged on."""

    name: str
    battery: Battery
    dg: DieselGenerator
    battery_bus: int
    dg_bus: int
    pcc_branch: int
    """Branch whose flow (parent side) is the exchange with the DSO, import > 0."""
    buses: tuple[int, ...]
    """Bus positions whose voltage is limited (the environment's safety)."""
    lines: tuple[int, ...] = ()
    """Branch positions with thermal limits (the environment's safety)."""


@dataclass(frozen=True)
class DayInputs:
    """Exogenous data of one day: prices and the uncontrolled injections of every bus."""

    price: np.ndarray
    """(T,) $/MWh."""
    p_ext_mw: np.ndarray
    """(n_bus, T) uncontrolled active injection (generation - load)."""
    q_ext_mvar: np.ndarray
    """(n_bus, T) uncontrolled reactive injection."""
    initial_soc: float | np.ndarray = 0.5
    """SoC at the first period's start: one for every site, or (M,) one per site."""
    export_discount: float = 0.9
    hours: float = 1.0
    """Length of one period (h)."""
    terminal_price: float | None = None
    """$/MWh at which the battery's final energy is settled against its start
    (``economics.terminal_price``); None leaves it free."""
    reference_soc: float | np.ndarray | None = None
    """SoC the final energy is settled against (scalar or (M,)); None: ``initial_soc``. A
    receding-horizon plan that starts mid-day settles against the day's start, as the env does."""

    def start_soc(self, sites: int) -> np.ndarray:
        """(M,) SoC at the first period's start."""
        return np.broadcast_to(np.asarray(self.initial_soc, float), (sites,)).copy()

    def settlement_soc(self, sites: int) -> np.ndarray:
        """(M,) SoC the final energy is settled against."""
        ref = self.initial_soc if self.reference_soc is None else self.reference_soc
        return np.broadcast_to(np.asarray(ref, float), (sites,)).copy()


@dataclass(frozen=True)
class Anchor:
    """An AC operating point: the controls and the measured |V|^2 and exchanges under them."""

    controls: np.ndarray
    """(3, M, T): battery MW (> 0 charges), diesel MW, diesel Mvar."""
    w: np.ndarray
    """(n_bus, T) squared voltage magnitudes of the AC power flow."""
    exchange_mw: np.ndarray
    """(M, T) AC exchange at each site's point of connection."""
    w_jacobian: np.ndarray | None = None
    """(n_bus, 3M, T) dw/du of the AC power flow at the anchor; None: LinDistFlow's."""
    exchange_jacobian: np.ndarray | None = None
    """(M, 3M, T) dx/du of the AC power flow at the anchor; None: LinDistFlow's (+ losses)."""


@dataclass(frozen=True)
class DispatchOptions:
    """Modeling and solver options of :func:`solve_dispatch`."""

    v_min: float = 0.95
    v_max: float = 1.05
    voltage_margin: float = 0.002
    """Model limits are [v_min + margin, v_max - margin]: room for the linearization's error."""
    violation_price: float = 100.0
    """$ per pu of voltage violation (per bus) or unit of line overload (per line), per hour.
    The oracle sets it to the reward's own price of safety (``economics.safety_price``)."""
    dso_voltage_price: float = 0.0
    """Same for buses outside every site (the DSO); 0 leaves them unconstrained."""
    line_limits: bool = True
    line_screen: float = 0.8
    """Skip lines whose worst-case flow stays below this fraction of their rating."""
    polygon_sides: int = 24
    solver: str | None = None
    """Force a cvxpy solver; None tries Clarabel, then HiGHS and OSQP on the polygon model."""
    polish: bool = True


@dataclass
class DispatchResult:
    """Optimal schedule and its model values. Arrays are (M, T) unless noted."""

    battery_mw: np.ndarray
    charge_mw: np.ndarray
    discharge_mw: np.ndarray
    dg_p_mw: np.ndarray
    dg_q_mvar: np.ndarray
    soc: np.ndarray
    """(M, T + 1) state of charge, from the initial one."""
    exchange_mw: np.ndarray
    vm_pu: np.ndarray
    """(n_bus, T) model voltages."""
    fuel_cost: np.ndarray
    exchange_cost: np.ndarray
    terminal_cost: np.ndarray
    """(M,) day-end battery settlement ($; zeros when the final energy is free)."""
    cost: float
    """Exact money ($) of the schedule under the model (no-load and terminal cost included)."""
    bound: float
    """Money part of the relaxed optimum (envelope fuel, simultaneous charge allowed)."""
    violation: float
    """Model voltage violations (pu x hours, sites' buses) plus line overloads (x hours)."""
    status: str
    solver: str
    solve_time_s: float
    polished_hours: int = 0
    negative_price_export_hours: int = 0
    info: dict[str, float] = field(default_factory=dict)


def _fuel_envelope(dg: DieselGenerator) -> tuple[float, float, float]:
    """(p*, slope below p*, extra linear slope above p*) of the convex envelope of the fuel on
    the commitment set {0} u [P_min, P_max] (see the module doc)."""
    a, b, c, p_max = dg.a, dg.b, dg.c, dg.max_p_mw
    tangent = math.sqrt(c / a) if a > 0 and c > 0 else 0.0
    p_star = min(max(tangent, dg.min_p_mw), p_max)
    if p_star <= 0.0:
        return 0.0, b, 0.0
    slope = (a * p_star**2 + b * p_star + c) / p_star
    if p_star >= p_max:  # the chord to (P_max, f(P_max)) is the whole envelope
        return p_star, slope, 0.0
    return p_star, slope, 2 * a * p_star + b - slope


def fuel_cost(dg: DieselGenerator, p_mw: np.ndarray, hours: float = 1.0) -> np.ndarray:
    """Fuel ($) per period of a schedule (``economics.fuel_cost``; outputs below
    ``ON_TOL_MW`` are off)."""
    p = np.asarray(p_mw, float)
    return economics.fuel_cost(np.where(p > ON_TOL_MW, p, 0.0), dg.a, dg.b, dg.c, hours)


def settlement(
    price: np.ndarray, exchange_mw: np.ndarray, discount: float, hours: float = 1.0
) -> np.ndarray:
    """Exchange cost ($) as the environment settles it (``economics.exchange_cost``)."""
    return economics.exchange_cost(np.asarray(exchange_mw, float), price, discount, hours)


def terminal_cost(soc: np.ndarray, day: DayInputs, batteries: Sequence[Battery]) -> np.ndarray:
    """(M,) day-end settlement ($) of SoC trajectories (M, T + 1), as the env settles it
    (against ``day.reference_soc`` when given, else against the trajectories' start)."""
    if day.terminal_price is None:
        return np.zeros(len(batteries))
    start = soc[:, 0] if day.reference_soc is None else day.settlement_soc(len(batteries))
    return np.array(
        [
            economics.terminal_soc_cost(
                float(soc[i, -1]),
                float(start[i]),
                b.capacity_mwh,
                day.terminal_price,
                b.charge_efficiency,
                b.discharge_efficiency,
            )
            for i, b in enumerate(batteries)
        ]
    )


class _Structure:
    """What depends only on the network and the sites: control maps and branch groups."""

    def __init__(self, net: RadialNetwork, sites: tuple[Site, ...]) -> None:
        self.net, self.sites, self.M = net, sites, len(sites)
        maps, m = net.maps, len(sites)
        # Control -> injection matrices, controls stacked [battery (M); dg p (M); dg q (M)].
        bp = np.zeros((net.n_bus, 3 * m))
        bq = np.zeros((net.n_bus, 3 * m))
        for i, s in enumerate(sites):
            bp[s.battery_bus, i] -= 1.0
            bp[s.dg_bus, m + i] += 1.0
            bq[s.dg_bus, 2 * m + i] += 1.0
        self.bp, self.bq = bp, bq
        self.dw = maps.Wp @ bp + maps.Wq @ bq
        self.dP = maps.Fp @ bp + maps.Fq @ bq
        self.dQ = maps.Gp @ bp + maps.Gq @ bq
        d = net.subtree
        self.pcc = np.array([s.pcc_branch for s in sites])
        # Branches inside each site (PCC included): their losses are part of its exchange.
        self.site_branches = [np.flatnonzero(d[s.pcc_branch][net.child] > 0) for s in sites]
        self.site_of = np.full(net.n_branch, -1)
        for i, branches in enumerate(self.site_branches):
            self.site_of[branches] = i
        # Moving branches (on a path from the slack to a controlled bus; elsewhere only the
        # shunts' w-dependence moves flows, a negligible second-order effect), grouped by the set
        # of controlled buses below them: a group's branches carry the same flow change.
        controlled = [s.battery_bus for s in sites] + [s.dg_bus for s in sites] * 2
        below = d[:, controlled] > 0
        moving = np.flatnonzero(below.any(axis=1) & (net.r > 0))
        keys = {tuple(below[k]) for k in moving}
        self.groups = [moving[[tuple(below[k]) == key for k in moving]] for key in sorted(keys)]
        self.branches = moving
        self.group_dP = np.array([self.dP[g].mean(axis=0) for g in self.groups])
        self.group_dQ = np.array([self.dQ[g].mean(axis=0) for g in self.groups])
        # Second order (DistFlow): a branch m whose flow changes by (dP, dQ) MW carries the
        # extra squared current l2 = (dP^2 + dQ^2) / (base^2 w_parent) pu, i.e. losses
        # base r_m l2 MW (in the exchange of the site that contains m) that lower every w_j by
        # curv[j, m] l2, curv[j, m] = base (Wp[j, par] r_m + Wq[j, par] x_m)
        # + [j below m] (r_m^2 + x_m^2).
        base, par = net.base_mva, net.parent[moving]
        curv = base * (maps.Wp[:, par] * net.r[moving] + maps.Wq[:, par] * net.x[moving])
        self.curv = np.maximum(curv + d[moving].T * (net.r[moving] ** 2 + net.x[moving] ** 2), 0.0)
        self.site_rows = np.array(sorted({j for s in sites for j in s.buses}), dtype=int)
        self.other_rows = np.setdiff1d(np.arange(net.n_bus), self.site_rows)

    def limited_rows(self, options: DispatchOptions) -> np.ndarray:
        """Voltage-limited bus rows: the sites', plus the DSO's when they have a price."""
        if options.dso_voltage_price > 0.0:
            return np.concatenate([self.site_rows, self.other_rows])
        return self.site_rows


@functools.lru_cache(maxsize=8)
def _structure(net: RadialNetwork, sites: tuple[Site, ...]) -> _Structure:
    return _Structure(net, sites)


@dataclass
class _Template:
    """One built problem and the variables/expressions read back after solving."""

    problem: cp.Problem
    vars: dict[str, Any]
    conic: bool


def _circle(a: Any, b: Any, radius: Any, conic: bool, sides: int) -> list:
    """``a^2 + b^2 <= radius^2`` element-wise: a cone, or an inscribed polygon (inner approx.)."""
    if conic:
        return [cp.SOC(cp.vec(radius, order="F"), cp.vstack([cp.vec(a, "F"), cp.vec(b, "F")]))]
    cons = []
    for j in range(sides):
        th = 2 * math.pi * j / sides
        cons.append(math.cos(th) * a + math.sin(th) * b <= radius * math.cos(math.pi / sides))
    return cons


def _per_hour(jac: np.ndarray, u: cp.Expression) -> cp.Expression:
    """``out[r, t] = sum_j jac[r, j, t] u[j, t]`` as one sparse block-diagonal product."""
    rows, cols, hours = jac.shape
    block = sp.block_diag([sp.csr_matrix(jac[:, :, t]) for t in range(hours)], format="csr")
    return cp.reshape(block @ cp.vec(u, order="F"), (rows, hours), order="F")


class _Data:
    """The numbers of one solve: base point, sensitivities, second-order coefficients, fixings."""

    def __init__(
        self,
        st: _Structure,
        day: DayInputs,
        anchor: Anchor | None,
        options: DispatchOptions,
        trust_region: float | None,
    ) -> None:
        net, m_count = st.net, st.M
        hours = len(day.price)
        self.st, self.day, self.options, self.T = st, day, options, hours
        if anchor is None:
            u0 = np.zeros((3 * m_count, hours))
        else:
            u0 = anchor.controls.reshape(-1, hours)
        self.u0 = u0
        lin = net.solve(day.p_ext_mw + st.bp @ u0, day.q_ext_mvar + st.bq @ u0)
        self.flow_p0, self.flow_q0 = lin["p_mw"], lin["q_mvar"]
        base = net.base_mva
        self.second_order = anchor is not None
        if anchor is None:  # textbook LinDistFlow: lossless, no second-order terms
            w0, x0 = lin["w"], self.flow_p0[st.pcc]
            jw = np.repeat(st.dw[:, :, None], hours, axis=2)
            jx = np.repeat(st.dP[st.pcc][:, :, None], hours, axis=2)
        else:
            w0, x0 = anchor.w, anchor.exchange_mw
            if anchor.w_jacobian is not None:
                jw = anchor.w_jacobian
            else:
                jw = np.repeat(st.dw[:, :, None], hours, axis=2)
            if anchor.exchange_jacobian is not None:
                jx = anchor.exchange_jacobian
            else:  # lossless flow plus the gradient of the site's losses
                jx = np.repeat(st.dP[st.pcc][:, :, None], hours, axis=2)
                for i, b in enumerate(st.site_branches):
                    coef = net.r[b][:, None] / (base * np.maximum(w0[net.parent[b]], 1e-6))
                    gp, gq = 2 * coef * self.flow_p0[b], 2 * coef * self.flow_q0[b]
                    jx[i] += np.einsum("kt,kj->jt", gp, st.dP[b])
                    jx[i] += np.einsum("kt,kj->jt", gq, st.dQ[b])
        self.w0, self.x0, self.jw, self.jx = w0, x0, jw, jx
        # Second-order coefficients per group and hour (w of the parents frozen at the anchor).
        n_g = len(st.groups)
        self.group_curv = np.zeros((net.n_bus, n_g, hours))
        self.group_loss = np.zeros((m_count, n_g, hours))
        if self.second_order:
            col = {int(k): c for c, k in enumerate(st.branches)}
            for g, members in enumerate(st.groups):
                for k in members:
                    inv = 1.0 / (base**2 * np.maximum(w0[net.parent[k]], 1e-6))  # (T,)
                    self.group_curv[:, g, :] += st.curv[:, col[int(k)], None] * inv[None, :]
                    if st.site_of[k] >= 0:
                        self.group_loss[st.site_of[k], g, :] += base * net.r[k] * inv
        self.rows = st.limited_rows(options)
        self.radius = trust_region
        self.lines = self._screened_lines() if options.line_limits else ()
        self.fixed_direction: dict[tuple[int, int], str] = {}
        self.fixed_dg: dict[tuple[int, int], str] = {}

    def _screened_lines(self) -> tuple[int, ...]:
        """Site lines whose flow could exceed ``line_screen`` x rating for some feasible control."""
        st = self.st
        span = np.array(
            [s.battery.max_power_mw for s in st.sites]
            + [s.dg.max_p_mw for s in st.sites]
            + [s.dg.s_mva for s in st.sites]
        )
        # Worst case |change| of each flow: |sensitivity| x (distance to the farthest bound).
        reach = np.abs(self.u0).max(axis=1) + span
        dp, dq = np.abs(st.dP) @ reach, np.abs(st.dQ) @ reach
        keep = []
        for s in st.sites:
            for k in s.lines:
                rating = st.net.s_max_mva[k]
                if not np.isfinite(rating):
                    continue
                worst = np.hypot(np.abs(self.flow_p0[k]) + dp[k], np.abs(self.flow_q0[k]) + dq[k])
                if worst.max() > self.options.line_screen * rating:
                    keep.append(int(k))
        return tuple(keep)

    def squares(self, u: np.ndarray) -> np.ndarray:
        """Per group and hour: dP^2 + dQ^2 (MW^2) of the flow change at controls ``u``."""
        du = u - self.u0
        return (self.st.group_dP @ du) ** 2 + (self.st.group_dQ @ du) ** 2

    def exchange(self, u: np.ndarray) -> np.ndarray:
        """Model exchange (M, T) at controls ``u``, second-order losses included."""
        x = self.x0 + np.einsum("mjt,jt->mt", self.jx, u - self.u0)
        return x + np.einsum("mgt,gt->mt", self.group_loss, self.squares(u))

    def voltage_w(self, u: np.ndarray) -> np.ndarray:
        """Model w (n_bus, T) at controls ``u`` (first order minus the curvature)."""
        w = self.w0 + np.einsum("bjt,jt->bt", self.jw, u - self.u0)
        return w - np.einsum("bgt,gt->bt", self.group_curv, self.squares(u))


def _build(data: _Data, dt: float, conic: bool) -> _Template:
    """Build the day problem (see module docs). ``conic=False``: a QP (polygons instead of cones,
    no second-order terms) for QP solvers."""
    st, options, day = data.st, data.options, data.day
    sites, net, m_count, T = st.sites, st.net, st.M, data.T
    rows, u0 = data.rows, data.u0
    c = cp.Variable((m_count, T), nonneg=True, name="charge")
    d = cp.Variable((m_count, T), nonneg=True, name="discharge")
    p = cp.Variable((m_count, T), nonneg=True, name="dg_p")
    q = cp.Variable((m_count, T), name="dg_q")
    e = cp.Variable((m_count, T + 1), name="energy")
    bat = [s.battery for s in sites]
    cap = np.array([b.capacity_mwh for b in bat])[:, None]
    eta_c = np.array([b.charge_efficiency for b in bat])[:, None]
    eta_d = np.array([b.discharge_efficiency for b in bat])[:, None]
    c_ub = np.repeat(np.array([b.max_power_mw for b in bat])[:, None], T, axis=1)
    d_ub = c_ub.copy()
    p_ub = np.repeat(np.array([s.dg.max_p_mw for s in sites])[:, None], T, axis=1)
    p_lb = np.zeros((m_count, T))
    env = [_fuel_envelope(s.dg) for s in sites]
    for (i, t), direction in data.fixed_direction.items():
        (d_ub if direction == "charge" else c_ub)[i, t] = 0.0
    for (i, t), state in data.fixed_dg.items():
        if state == "off":
            p_ub[i, t] = 0.0
        else:
            p_lb[i, t] = min(env[i][0], p_ub[i, t])
    cons = [
        c <= c_ub,
        d <= d_ub,
        p <= p_ub,
        p >= p_lb,
        e[:, 0] == day.start_soc(m_count) * cap[:, 0],
        e[:, 1:] == e[:, :-1] + cp.multiply(eta_c * dt, c) - cp.multiply(dt / eta_d, d),
        e >= np.array([b.soc_min for b in bat])[:, None] * cap,
        e <= np.array([b.soc_max for b in bat])[:, None] * cap,
    ]
    s_rating = np.repeat(np.array([s.dg.s_mva for s in sites])[:, None], T, axis=1)
    cons += _circle(p, q, s_rating, conic, options.polygon_sides)
    # Reactive power only from a running diesel: the hull of {0} u {p >= p*, circle}.
    q_slope = np.array(
        [math.sqrt(max(s.dg.s_mva**2 - x[0] ** 2, 0.0)) / x[0] if x[0] > 0 else 0.0
         for s, x in zip(sites, env, strict=True)]
    )[:, None]  # fmt: skip
    cons += [q <= cp.multiply(q_slope, p), -q <= cp.multiply(q_slope, p)]

    # Fuel: convex envelope slope p + extra pos(p - p*) + a pos(p - p*)^2 (z = pos(p - p*)).
    p_star = np.array([x[0] for x in env])[:, None]
    z = cp.Variable((m_count, T), nonneg=True, name="dg_above")
    cons.append(z >= p - p_star)
    fuel = cp.sum(cp.multiply(np.array([x[1] for x in env])[:, None], p))
    fuel += cp.sum(cp.multiply(np.array([x[2] for x in env])[:, None], z))
    fuel += cp.sum(cp.multiply(np.array([s.dg.a for s in sites])[:, None], cp.square(z)))
    fuel *= dt

    # Controls, their trust region and the second-order flow changes of the branch groups.
    u = cp.vstack([c - d, p, q])
    if data.radius is not None:
        lo, hi = u0 - data.radius, u0 + data.radius
        # Hours fixed by the polish may have to leave the region (e.g. a diesel forced on).
        for i, t in data.fixed_direction:
            lo[i, t], hi[i, t] = -np.inf, np.inf
        for i, t in data.fixed_dg:
            for row in (m_count + i, 2 * m_count + i):
                lo[row, t], hi[row, t] = -np.inf, np.inf
        finite = np.isfinite(lo)
        cons += [u[finite] >= lo[finite], u[finite] <= hi[finite]]
    sq = None
    if conic and data.second_order and len(st.groups):
        sq = cp.Variable((len(st.groups), T), nonneg=True, name="flow_change_sq")
        dfp = st.group_dP @ u - st.group_dP @ u0
        dfq = st.group_dQ @ u - st.group_dQ @ u0
        cons.append(sq >= cp.square(dfp) + cp.square(dfq))

    # Exchange: first order, plus the losses' curvature where it is convex (price >= 0).
    x = cp.Variable((m_count, T), name="exchange")
    cons.append(x == data.x0 - np.einsum("mjt,jt->mt", data.jx, u0) + _per_hour(data.jx, u))
    y = cp.Variable((m_count, T), nonneg=True, name="export")
    cons.append(y >= -x)
    price = np.asarray(day.price, float)
    pos_price, neg_price = np.maximum(price, 0.0), np.minimum(price, 0.0)
    money = fuel + dt * (
        cp.sum(x @ pos_price)
        + cp.sum(x @ neg_price)
        + cp.sum(y @ ((1.0 - day.export_discount) * pos_price))
    )
    if day.terminal_price is not None:  # day-end settlement of the stored energy (module doc)
        start = e[:, 0] if day.reference_soc is None else day.settlement_soc(m_count) * cap[:, 0]
        deficit = start - e[:, T]
        tp = max(float(day.terminal_price), 0.0)
        money += cp.sum(cp.multiply(tp * eta_d[:, 0], deficit))
        money += cp.sum(cp.multiply(tp * (1.0 / eta_c[:, 0] - eta_d[:, 0]), cp.pos(deficit)))
    if sq is not None:
        loss = data.group_loss * pos_price[None, None, :]  # (M, G, T)
        money += dt * cp.sum(cp.multiply(loss.sum(axis=0), sq))

    # Voltages: w = w0 + J (u - u0); the lower limit also subtracts the curvature.
    jw = data.jw[rows]
    w = cp.Variable((len(rows), T), name="w")
    cons.append(w == data.w0[rows] - np.einsum("bjt,jt->bt", jw, u0) + _per_hour(jw, u))
    w_low: Any = w
    if sq is not None:
        w_low = w - _per_hour(data.group_curv[rows], sq)
    s_hi = cp.Variable((len(rows), T), nonneg=True)
    s_lo = cp.Variable((len(rows), T), nonneg=True)
    v_hi, v_lo = options.v_max - options.voltage_margin, options.v_min + options.voltage_margin
    cons += [w <= v_hi**2 + 2 * v_hi * s_hi, w_low >= v_lo**2 - 2 * v_lo * s_lo]
    n_site = len(st.site_rows)
    violation = cp.sum(s_hi[:n_site] + s_lo[:n_site]) * dt
    penalty = options.violation_price * violation
    if len(rows) > n_site:
        penalty += options.dso_voltage_price * dt * cp.sum(s_hi[n_site:] + s_lo[n_site:])

    # Thermal limits of the screened lines: |(P, Q)| <= S_max (1 + overload).
    if data.lines:
        idx = np.array(data.lines)
        s_max = net.s_max_mva[idx][:, None] * np.ones((1, T))
        lp = data.flow_p0[idx] - st.dP[idx] @ u0 + st.dP[idx] @ u
        lq = data.flow_q0[idx] - st.dQ[idx] @ u0 + st.dQ[idx] @ u
        s_ln = cp.Variable((len(idx), T), nonneg=True)
        cons += _circle(lp, lq, s_max + cp.multiply(s_max, s_ln), conic, options.polygon_sides)
        violation += cp.sum(s_ln) * dt
        penalty += options.violation_price * dt * cp.sum(s_ln)

    problem = cp.Problem(cp.Minimize(money + penalty), cons)
    variables = {"c": c, "d": d, "p": p, "q": q, "e": e, "money": money, "violation": violation}
    return _Template(problem, variables, conic)


def _solve(problem: cp.Problem, solver: str) -> None:
    kwargs: dict = {}
    if solver == "OSQP":
        kwargs = {"eps_abs": 1e-7, "eps_rel": 1e-7, "max_iter": 200_000, "polish": True}
    with warnings.catch_warnings():  # "optimal_inaccurate" is reported in the result's status
        warnings.simplefilter("ignore", UserWarning)
        problem.solve(solver=solver, **kwargs)


def _attempt(data: _Data, dt: float) -> tuple[_Template, str]:
    """Fill and solve, trying the solver chain; raises RuntimeError when every solver fails."""
    opt = data.options
    if opt.solver is not None:
        chain = [(opt.solver, opt.solver in ("CLARABEL", "SCS", "ECOS"))]
    else:
        chain = [(s, True) for s in CONIC_SOLVERS] + [(s, False) for s in FALLBACK_SOLVERS]
    errors = []
    for solver, conic in chain:
        tpl = _build(data, dt, conic)
        try:
            _solve(tpl.problem, solver)
        except cp.SolverError as exc:
            errors.append(f"{solver}: {exc}")
            continue
        if tpl.problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            return tpl, solver
        errors.append(f"{solver}: {tpl.problem.status}")
    raise RuntimeError("dispatch could not be solved: " + "; ".join(errors))


def needs_polish(result: DispatchResult, sites: Sequence[Site]) -> bool:
    """Whether ``result`` charges and discharges in the same hour or runs a diesel strictly
    inside ``(0, p*)`` (the hours the polish solve fixes)."""
    both = np.minimum(result.charge_mw, result.discharge_mw) > SIMULTANEOUS_TOL_MW
    p_star = np.array([_fuel_envelope(s.dg)[0] for s in sites])[:, None]
    inside = (result.dg_p_mw > ON_TOL_MW) & (result.dg_p_mw < p_star - ON_TOL_MW)
    return bool(both.any() or inside.any())


def solve_dispatch(
    net: RadialNetwork,
    sites: list[Site] | tuple[Site, ...],
    day: DayInputs,
    anchor: Anchor | None = None,
    options: DispatchOptions | None = None,
    trust_region: float | None = None,
) -> DispatchResult:
    """Solve the day's dispatch (see module docs); returns the polished schedule.

    ``anchor``: the AC operating point to linearize at (None: textbook lossless LinDistFlow
    from zero controls). ``trust_region``: bound on every set point's move (MW / Mvar) from the
    anchor's controls.
    """
    options = options or DispatchOptions()
    start = time.perf_counter()
    st = _structure(net, tuple(sites))
    data = _Data(st, day, anchor, options, trust_region)
    tpl, solver = _attempt(data, day.hours)
    bound = float(tpl.vars["money"].value)
    for _ in range(POLISH_ROUNDS if options.polish else 0):
        # Fix the hours that charge and discharge at once, or run a diesel inside (0, p*), and
        # re-solve; a re-solve can move the issue to other hours, hence a few rounds.
        v = tpl.vars
        c, d, p = v["c"].value, v["d"].value, v["p"].value
        before = len(data.fixed_direction) + len(data.fixed_dg)
        for i, s in enumerate(st.sites):
            p_star = _fuel_envelope(s.dg)[0]
            for t in range(data.T):
                if min(c[i, t], d[i, t]) > SIMULTANEOUS_TOL_MW:
                    data.fixed_direction[(i, t)] = "charge" if c[i, t] >= d[i, t] else "discharge"
                if ON_TOL_MW < p[i, t] < p_star - ON_TOL_MW:
                    data.fixed_dg[(i, t)] = "on" if p[i, t] >= p_star / 2 else "off"
        if len(data.fixed_direction) + len(data.fixed_dg) == before:
            break
        tpl, solver = _attempt(data, day.hours)
    polished = len(data.fixed_direction) + len(data.fixed_dg)
    elapsed = time.perf_counter() - start
    return _result(data, tpl, solver, bound, elapsed, polished)


def _result(
    data: _Data, tpl: _Template, solver: str, bound: float, elapsed: float, polished: int
) -> DispatchResult:
    st, day, v = data.st, data.day, tpl.vars
    charge = np.maximum(v["c"].value, 0.0)
    discharge = np.maximum(v["d"].value, 0.0)
    battery = charge - discharge
    dg_p = np.clip(v["p"].value, 0.0, None)
    dg_p[dg_p < ON_TOL_MW] = 0.0
    dg_q = np.where(dg_p > 0.0, np.asarray(v["q"].value, float), 0.0)
    cap = np.array([s.battery.capacity_mwh for s in st.sites])[:, None]
    soc = v["e"].value / cap
    u = np.vstack([battery, dg_p, dg_q])
    # Model exchange and voltages at the returned set points, second-order terms included.
    exchange = data.exchange(u)
    w = data.voltage_w(u)
    fuel = np.vstack([fuel_cost(s.dg, dg_p[i], day.hours) for i, s in enumerate(st.sites)])
    exch_cost = settlement(day.price[None, :], exchange, day.export_discount, day.hours)
    terminal = terminal_cost(soc, day, [s.battery for s in st.sites])
    neg_export = int(((day.price[None, :] < 0) & (exchange < -1e-6)).sum())
    return DispatchResult(
        battery_mw=battery,
        charge_mw=charge,
        discharge_mw=discharge,
        dg_p_mw=dg_p,
        dg_q_mvar=dg_q,
        soc=soc,
        exchange_mw=exchange,
        vm_pu=np.sqrt(np.maximum(w, 0.0)),
        fuel_cost=fuel,
        exchange_cost=exch_cost,
        terminal_cost=terminal,
        cost=float(fuel.sum() + exch_cost.sum() + terminal.sum()),
        bound=bound,
        violation=max(float(v["violation"].value), 0.0),
        status=str(tpl.problem.status),
        solver=solver,
        solve_time_s=elapsed,
        polished_hours=polished,
        negative_price_export_hours=neg_export,
        info={"objective": float(tpl.problem.value)},
    )
