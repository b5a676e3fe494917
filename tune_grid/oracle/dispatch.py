"""Multi-period optimal dispatch of the microgrids over a LinDistFlow network (a convex QP/SOCP).

Decision variables per microgrid m and hour t: battery charge ``c`` and discharge ``d`` (MW at the
grid side, both >= 0, net battery power ``c - d``, > 0 charges), stored energy ``e`` (MWh), diesel
active power ``p`` and reactive power ``q``. The exchange with the DSO ``x`` (import > 0) is the
flow into the microgrid's point-of-connection branch.

Model (all linear or convex):

* Battery: ``e[t+1] = e[t] + eta_c c[t] - d[t] / eta_d``, ``soc_min E <= e <= soc_max E``,
  ``0 <= c, d <= P_max``, ``e[0] = initial_soc E``; the final energy is free (the episode has no
  terminal value). Simultaneous charge and discharge is allowed in the relaxed solve (it only
  wastes energy, which is attractive at negative prices); every hour where both are positive is
  then fixed to the direction of the net power and the problem is re-solved (*polish*), so the
  returned schedule is one the environment can execute.
* Diesel: ``0 <= p <= P_max``, ``p^2 + q^2 <= S^2`` (second-order cone; with a solver without
  cones, an inscribed polygon, i.e. an inner approximation). The fuel ``a p^2 + b p + c`` with
  ``c`` charged only when ``p > 0`` is not convex; the relaxed solve uses its convex envelope on
  ``[0, P_max]`` (linear up to the tangent point ``p* = sqrt(c / a)``, the quadratic above), a
  valid lower bound that is exact at ``p = 0`` and ``p >= p*``. Hours that end strictly inside
  ``(0, p*)`` are rounded to off or ``>= p*`` in the polish solve, so the polished objective is the
  exact fuel cost of the schedule, no-load term included.
* Settlement: ``price x`` for import, ``discount price x`` for export, written
  ``price x + (1 - discount) max(price, 0) max(-x, 0)`` (convex for ``discount <= 1``). With a
  negative price the true settlement is concave (importing earns more than exporting costs); the
  model then uses the import branch ``price x`` alone, exact whenever the microgrid imports and an
  over-estimate if it exported (counted in ``negative_price_export_hours``; exporting at a
  negative price is never optimal unless forced).
* Network: LinDistFlow (:mod:`tune_grid.oracle.lindistflow`). Optionally *anchored* at an AC
  operating point ``u0`` (see :class:`Anchor`): voltages ``w = w_ac(u0) + dw/du (u - u0)`` and the
  exchange ``x = x_ac(u0) + (dx/du + dloss/du) (u - u0)``, i.e. the LinDistFlow sensitivities
  corrected to the exact AC values (losses included) at ``u0``. Voltage limits
  ``v_min^2 <= w <= v_max^2`` on the sites' buses and line limits ``|S| <= S_max`` on the sites'
  lines are elastic: a violation costs ``violation_price`` $ per pu (voltage) or per unit of
  overload (line) and hour, i.e. they are hard whenever they can be met at a marginal cost below
  that price. DSO buses get soft limits at ``dso_voltage_price`` (0 by default, as the environment
  does not judge them).

Solved with Clarabel (fallback: the polygon model with HiGHS, then OSQP).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np

from tune_grid.grid.devices import Battery, DieselGenerator
from tune_grid.oracle.lindistflow import RadialNetwork

CONIC_SOLVERS = ("CLARABEL",)
FALLBACK_SOLVERS = ("HIGHS", "OSQP")
ON_TOL_MW = 1e-5
"""Diesel output below this is reported as off (0 MW) and charged no no-load cost."""
SIMULTANEOUS_TOL_MW = 1e-6


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
    initial_soc: float = 0.5
    export_discount: float = 0.9
    hours: float = 1.0
    """Length of one period (h)."""


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
    violation_price: float = 1e4
    """$ per pu of voltage violation (per bus) or unit of line overload (per line), per hour."""
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
    cost: float
    """Exact money ($) of the schedule under the model (no-load cost included)."""
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
    """(p*, slope below p*, extra linear slope above p*) of the convex envelope of the fuel."""
    a, b, c, p_max = dg.a, dg.b, dg.c, dg.max_p_mw
    if c <= 0.0:
        return 0.0, b, 0.0
    p_star = min(math.sqrt(c / a), p_max) if a > 0 else p_max
    slope = (a * p_star**2 + b * p_star + c) / p_star
    return p_star, slope, 2 * a * p_star + b - slope


def fuel_cost(dg: DieselGenerator, p_mw: np.ndarray, hours: float = 1.0) -> np.ndarray:
    """True fuel cost ($) per period: ``a p^2 + b p + c`` when ``p > ON_TOL_MW``, else 0."""
    p = np.asarray(p_mw, float)
    return np.where(p > ON_TOL_MW, dg.a * p * p + dg.b * p + dg.c, 0.0) * hours


def settlement(price: np.ndarray, exchange_mw: np.ndarray, discount: float, hours: float = 1.0):
    """Exchange cost ($) as the environment settles it: import x LMP, export x discount x LMP."""
    x = np.asarray(exchange_mw, float)
    return x * hours * np.where(x > 0.0, price, price * discount)


class _Model:
    """The cvxpy problem of one day; rebuilt for the polish solve with extra fixings."""

    def __init__(
        self,
        net: RadialNetwork,
        sites: list[Site],
        day: DayInputs,
        anchor: Anchor | None,
        options: DispatchOptions,
        trust_region: float | None = None,
    ) -> None:
        self.net, self.sites, self.day, self.options = net, sites, day, options
        self.anchor, self.trust_region, self.polygon = anchor, trust_region, False
        m_count, hours = len(sites), len(day.price)
        self.M, self.T = m_count, hours
        maps = net.maps
        # Control -> injection matrices, controls stacked [battery (M); dg p (M); dg q (M)].
        bp = np.zeros((net.n_bus, 3 * m_count))
        bq = np.zeros((net.n_bus, 3 * m_count))
        for i, s in enumerate(sites):
            bp[s.battery_bus, i] -= 1.0
            bp[s.dg_bus, m_count + i] += 1.0
            bq[s.dg_bus, 2 * m_count + i] += 1.0
        self.bp, self.bq = bp, bq
        self.dw = maps.Wp @ bp + maps.Wq @ bq
        self.dP = maps.Fp @ bp + maps.Fq @ bq
        self.dQ = maps.Gp @ bp + maps.Gq @ bq
        # Branches inside each site (PCC included): their losses are part of its exchange.
        d = net.subtree
        self.site_branches = [np.flatnonzero(d[s.pcc_branch][net.child] > 0) for s in sites]
        self.fixed_direction: dict[tuple[int, int], str] = {}
        self.fixed_dg: dict[tuple[int, int], str] = {}
        self._compute_base()

    def _compute_base(self) -> None:
        """The base point u0 and the network quantities there (LinDistFlow, AC where anchored)."""
        net, day = self.net, self.day
        if self.anchor is None:
            self.u0 = np.zeros((3 * self.M, self.T))
        else:
            self.u0 = self.anchor.controls.reshape(3 * self.M, self.T)
        lin = net.solve(day.p_ext_mw + self.bp @ self.u0, day.q_ext_mvar + self.bq @ self.u0)
        self.flow_p0, self.flow_q0 = lin["p_mw"], lin["q_mvar"]
        pcc = [s.pcc_branch for s in self.sites]
        if self.anchor is None:
            self.w0, self.x0 = lin["w"], self.flow_p0[pcc]
            self.loss_coef = None
            return
        self.w0, self.x0 = self.anchor.w, self.anchor.exchange_mw
        # Site losses sum_k r_k (P_k^2 + Q_k^2) / w_parent with w frozen at the anchor.
        self.loss_coef = [
            net.r[b][:, None] / (net.base_mva * np.maximum(self.w0[net.parent[b]], 1e-6))
            for b in self.site_branches
        ]

    # ------------------------------------------------------------------ pieces
    def _circle(self, a: cp.Expression, b: cp.Expression, radius: Any) -> list:
        """``a^2 + b^2 <= radius^2`` element-wise (SOC, or an inscribed polygon)."""
        if not self.polygon:
            return [cp.SOC(cp.vec(radius, order="F"), cp.vstack([cp.vec(a, "F"), cp.vec(b, "F")]))]
        k = self.options.polygon_sides
        cons = []
        for j in range(k):
            th = 2 * math.pi * j / k
            cons.append(math.cos(th) * a + math.sin(th) * b <= radius * math.cos(math.pi / k))
        return cons

    def _per_hour(self, jac: np.ndarray, du: cp.Expression) -> cp.Expression:
        """sum_j jac[:, j, t] du[j, t] for hour-dependent sensitivities ``jac`` (rows, 3M, T)."""
        ones = np.ones((jac.shape[0], 1))
        terms = [cp.multiply(jac[:, j, :], ones @ du[j : j + 1, :]) for j in range(jac.shape[1])]
        return cp.sum(terms) if len(terms) > 1 else terms[0]

    def voltage(self, idx: np.ndarray, du: cp.Expression | np.ndarray) -> Any:
        """Model w of buses ``idx`` for the control change ``du``."""
        jac = None if self.anchor is None else self.anchor.w_jacobian
        if jac is None:
            return self.w0[idx] + self.dw[idx] @ du
        if isinstance(du, np.ndarray):
            return self.w0[idx] + np.einsum("bjt,jt->bt", jac[idx], du)
        return self.w0[idx] + self._per_hour(jac[idx], du)

    def _exchange(self, du: cp.Expression) -> tuple[list, list]:
        """Per site (T,) exchange expressions: (convex model, first-order model).

        First order: LinDistFlow's lossless flow plus the gradient of the site's losses, or the
        AC Jacobian when the anchor has one. The convex model adds the losses' curvature
        ``L(u) - L(u0) - grad L(u0) du >= 0`` (LinDistFlow flows, w frozen at the anchor)."""
        x_quad, x_lin = [], []
        jac = None if self.anchor is None else self.anchor.exchange_jacobian
        for i, s in enumerate(self.sites):
            lossless = self.x0[i] + self.dP[s.pcc_branch] @ du
            if self.loss_coef is None:
                x_quad.append(lossless)
                x_lin.append(lossless)
                continue
            b, coef = self.site_branches[i], self.loss_coef[i]
            p0, q0 = self.flow_p0[b], self.flow_q0[b]
            dfp, dfq = self.dP[b] @ du, self.dQ[b] @ du
            # L(u) - L(u0) - grad L(u0) du = sum_k coef_k (dP_k^2 + dQ_k^2)
            curvature = cp.sum(cp.multiply(coef, cp.square(dfp) + cp.square(dfq)), axis=0)
            if jac is None:
                grad = cp.sum(
                    cp.multiply(2 * coef * p0, dfp) + cp.multiply(2 * coef * q0, dfq), axis=0
                )
                first = lossless + grad
            else:
                first = self.x0[i] + cp.reshape(self._per_hour(jac[i : i + 1], du), (self.T,), order="F")
            x_lin.append(first)
            x_quad.append(first + curvature)
        return x_quad, x_lin

    # -------------------------------------------------------------------------- build
    def build(self) -> tuple[cp.Problem, dict[str, Any]]:
        sites, day, opt = self.sites, self.day, self.options
        M, T, h = self.M, self.T, day.hours
        c = cp.Variable((M, T), nonneg=True, name="charge")
        d = cp.Variable((M, T), nonneg=True, name="discharge")
        p = cp.Variable((M, T), nonneg=True, name="dg_p")
        q = cp.Variable((M, T), name="dg_q")
        e = cp.Variable((M, T + 1), name="energy")
        bat = [s.battery for s in sites]
        cap = np.array([b.capacity_mwh for b in bat])[:, None]
        pmax_b = np.array([b.max_power_mw for b in bat])[:, None]
        eta_c = np.array([b.charge_efficiency for b in bat])[:, None]
        eta_d = np.array([b.discharge_efficiency for b in bat])[:, None]
        cons = [
            c <= pmax_b,
            d <= pmax_b,
            e[:, 0] == day.initial_soc * cap[:, 0],
            e[:, 1:] == e[:, :-1] + cp.multiply(eta_c * h, c) - cp.multiply(h / eta_d, d),
            e >= np.array([b.soc_min for b in bat])[:, None] * cap,
            e <= np.array([b.soc_max for b in bat])[:, None] * cap,
            p <= np.array([s.dg.max_p_mw for s in sites])[:, None],
        ]
        s_rating = np.repeat(np.array([s.dg.s_mva for s in sites])[:, None], T, axis=1)
        cons += self._circle(p, q, s_rating)
        for (i, t), direction in self.fixed_direction.items():
            cons.append((d if direction == "charge" else c)[i, t] == 0)

        # Fuel: convex envelope a * pos(p - p*)^2 + slope p + extra * pos(p - p*).
        env = [_fuel_envelope(s.dg) for s in sites]
        p_star = np.array([x[0] for x in env])[:, None]
        slope = np.array([x[1] for x in env])[:, None]
        extra = np.array([x[2] for x in env])[:, None]
        a2 = np.array([s.dg.a for s in sites])[:, None]
        z = cp.Variable((M, T), nonneg=True, name="dg_above")
        cons.append(z >= p - p_star)
        for (i, t), state in self.fixed_dg.items():
            cons.append(p[i, t] == 0 if state == "off" else p[i, t] >= p_star[i, 0])
        fuel = (cp.sum(cp.multiply(slope, p)) + cp.sum(cp.multiply(extra, z))) * h
        fuel += cp.sum(cp.multiply(a2, cp.square(z))) * h

        # Network: controls u (3M, T) relative to the base point u0.
        u = cp.vstack([c - d, p, q])
        du = u - self.u0
        if self.trust_region is not None:
            cons.append(cp.abs(du) <= self.trust_region)
        x_quad, x_lin = self._exchange(du)
        price = np.asarray(day.price, float)
        pos_price, neg_price = np.maximum(price, 0.0), np.minimum(price, 0.0)
        premium = (1 - day.export_discount) * pos_price
        y = cp.Variable((M, T), nonneg=True, name="export")
        money = fuel
        for i in range(M):
            cons.append(y[i] >= -x_lin[i])
            money += (x_quad[i] @ pos_price + x_lin[i] @ neg_price + y[i] @ premium) * h

        penalty: Any = 0.0
        violation: Any = 0.0
        site_buses = sorted({b for s in sites for b in s.buses})
        other = sorted(set(range(self.net.n_bus)) - set(site_buses))
        v_lo2, v_hi2 = opt.v_min**2, opt.v_max**2
        for judged, buses, price_v in (
            (True, site_buses, opt.violation_price),
            (False, other, opt.dso_voltage_price),
        ):
            if not buses or price_v <= 0.0:
                continue
            idx = np.array(buses)
            w_expr = self.voltage(idx, du)
            s_hi = cp.Variable((len(idx), T), nonneg=True)
            s_lo = cp.Variable((len(idx), T), nonneg=True)
            cons += [w_expr <= v_hi2 + 2 * opt.v_max * s_hi, w_expr >= v_lo2 - 2 * opt.v_min * s_lo]
            penalty = penalty + price_v * h * (cp.sum(s_hi) + cp.sum(s_lo))
            if judged:
                violation = violation + (cp.sum(s_hi) + cp.sum(s_lo)) * h
        lines = self._screened_lines() if opt.line_limits else []
        if lines:
            idx = np.array(lines)
            s_max = self.net.s_max_mva[idx][:, None] * np.ones((1, T))
            fp = self.flow_p0[idx] + self.dP[idx] @ du
            fq = self.flow_q0[idx] + self.dQ[idx] @ du
            s_ln = cp.Variable((len(idx), T), nonneg=True)
            cons += self._circle(fp, fq, s_max + cp.multiply(s_max, s_ln))
            penalty = penalty + opt.violation_price * h * cp.sum(s_ln)
            violation = violation + cp.sum(s_ln) * h
        problem = cp.Problem(cp.Minimize(money + penalty), cons)
        parts = {
            "c": c, "d": d, "p": p, "q": q, "e": e, "x": cp.vstack(x_quad), "money": money,
            "violation": violation,
        }  # fmt: skip
        return problem, parts

    def _screened_lines(self) -> list[int]:
        """Site lines whose flow could exceed ``line_screen`` x rating for some feasible control."""
        span = np.array(
            [s.battery.max_power_mw for s in self.sites]
            + [s.dg.max_p_mw for s in self.sites]
            + [s.dg.s_mva for s in self.sites]
        )
        # Worst case |change| of each flow: |sensitivity| x (distance to the farthest bound).
        reach = np.abs(self.u0).max(axis=1) + span
        dp = np.abs(self.dP) @ reach
        dq = np.abs(self.dQ) @ reach
        keep = []
        for s in self.sites:
            for k in s.lines:
                rating = self.net.s_max_mva[k]
                if not np.isfinite(rating):
                    continue
                fp0, fq0 = np.abs(self.flow_p0[k]) + dp[k], np.abs(self.flow_q0[k]) + dq[k]
                if np.hypot(fp0, fq0).max() > self.options.line_screen * rating:
                    keep.append(k)
        return keep


def _solve(problem: cp.Problem, solver: str) -> None:
    kwargs: dict = {}
    if solver == "OSQP":
        kwargs = {"eps_abs": 1e-7, "eps_rel": 1e-7, "max_iter": 200_000, "polish": True}
    problem.solve(solver=solver, **kwargs)


def _attempt(model: _Model) -> tuple[cp.Problem, dict, str]:
    """Build and solve, trying the solver chain; raises RuntimeError when every solver fails."""
    opt = model.options
    if opt.solver is not None:
        chain = [(opt.solver, opt.solver not in CONIC_SOLVERS and opt.solver != "SCS")]
    else:
        chain = [(s, False) for s in CONIC_SOLVERS] + [(s, True) for s in FALLBACK_SOLVERS]
    errors = []
    for solver, polygon in chain:
        model.polygon = polygon
        problem, parts = model.build()
        try:
            _solve(problem, solver)
        except cp.SolverError as exc:
            errors.append(f"{solver}: {exc}")
            continue
        if problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            return problem, parts, solver
        errors.append(f"{solver}: {problem.status}")
    raise RuntimeError("dispatch could not be solved: " + "; ".join(errors))


def solve_dispatch(
    net: RadialNetwork,
    sites: list[Site],
    day: DayInputs,
    anchor: Anchor | None = None,
    options: DispatchOptions | None = None,
    trust_region: float | None = None,
) -> DispatchResult:
    """Solve the day's dispatch (see module docs); returns the polished schedule.

    ``trust_region``: bound on every set point's move (MW / Mvar) from the anchor's controls.
    """
    options = options or DispatchOptions()
    start = time.perf_counter()
    model = _Model(net, sites, day, anchor, options, trust_region)
    problem, parts, solver = _attempt(model)
    bound = float(parts["money"].value)
    polished = 0
    if options.polish:
        c, d, p = parts["c"].value, parts["d"].value, parts["p"].value
        for i, s in enumerate(sites):
            p_star = _fuel_envelope(s.dg)[0]
            for t in range(model.T):
                if min(c[i, t], d[i, t]) > SIMULTANEOUS_TOL_MW:
                    model.fixed_direction[(i, t)] = "charge" if c[i, t] >= d[i, t] else "discharge"
                if ON_TOL_MW < p[i, t] < p_star - ON_TOL_MW:
                    model.fixed_dg[(i, t)] = "on" if p[i, t] >= p_star / 2 else "off"
        polished = len(model.fixed_direction) + len(model.fixed_dg)
        if polished:
            problem, parts, solver = _attempt(model)
    elapsed = time.perf_counter() - start
    return _result(model, problem, parts, solver, bound, elapsed, polished)


def _result(
    model: _Model,
    problem: cp.Problem,
    parts: dict,
    solver: str,
    bound: float,
    elapsed: float,
    polished: int,
) -> DispatchResult:
    sites, day = model.sites, model.day
    charge = np.maximum(parts["c"].value, 0.0)
    discharge = np.maximum(parts["d"].value, 0.0)
    battery = charge - discharge
    dg_p = np.clip(parts["p"].value, 0.0, None)
    dg_p[dg_p < ON_TOL_MW] = 0.0
    dg_q = parts["q"].value
    cap = np.array([s.battery.capacity_mwh for s in sites])[:, None]
    soc = parts["e"].value / cap
    exchange = np.asarray(parts["x"].value, float)
    fuel = np.vstack([fuel_cost(s.dg, dg_p[i], day.hours) for i, s in enumerate(sites)])
    exch_cost = settlement(day.price[None, :], exchange, day.export_discount, day.hours)
    u = np.vstack([battery, dg_p, dg_q])
    w = model.voltage(np.arange(model.net.n_bus), u - model.u0)
    viol = parts["violation"]
    violation = float(viol.value) if isinstance(viol, cp.Expression) else float(viol)
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
        cost=float(fuel.sum() + exch_cost.sum()),
        bound=bound,
        violation=max(violation, 0.0),
        status=str(problem.status),
        solver=solver,
        solve_time_s=elapsed,
        polished_hours=polished,
        negative_price_export_hours=neg_export,
        info={"objective": float(problem.value)},
    )
