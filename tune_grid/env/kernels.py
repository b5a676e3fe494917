"""The environment's per-hour arithmetic, compiled with numba.

For three agents, the device dispatch, the settlement and the safety terms are a few dozen
operations on 3-element arrays. As numpy calls they cost about 1 us each, more than the power flow
itself; here each stage is one compiled call. The formulas are those documented in
:mod:`tune_grid.env.microgrid` (and tested there on hand-computed cases); the kernels only fix
the order in which they run.

Column layouts of the output matrices (one row per microgrid) are named by ``DISPATCH_COLUMNS``
and ``OUTCOME_COLUMNS``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from tune_grid import economics

DISPATCH_COLUMNS: tuple[str, ...] = (
    "battery_mw",
    "battery_clipped_mw",
    "dg_p_mw",
    "dg_q_mvar",
    "soc",
)
OUTCOME_COLUMNS: tuple[str, ...] = (
    "exchange_mw",
    "safety_voltage",
    "safety_line",
    "safety",
    "cost_fuel",
    "cost_exchange_lmp",
    "load_mw",
    "pv_mw",
    "wind_mw",
    "v_min_pu",
    "v_max_pu",
)
FINISH_COLUMNS: tuple[str, ...] = (
    "cost",
    "cost_exchange",
    "cost_protocol",
    "cost_terminal_soc",
    "own_reward",
)
"""Columns :func:`finish` appends after the outcome and dispatch columns (reward last)."""


@numba.njit(cache=True)
def dispatch(  # noqa: ANN001, ANN201, PLR0913 - numba kernel
    actions,
    soc,
    dg_pmin,
    dg_pmax,
    dg_s,
    battery_max_mw,
    capacity_mwh,
    soc_min,
    soc_max,
    charge_efficiency,
    discharge_efficiency,
    hours,
    ess_rows,
    dg_rows,
    storage_p_mw,
    sgen_p_mw,
    sgen_q_mvar,
    out,
):
    """Device set-points from actions in [-1, 1] (clipped); returns False on NaN/inf actions.

    Battery: ``a0 * max power`` (> 0 charges), clipped to what keeps the SoC in
    [soc_min, soc_max] over the step; the clipped amount is reported. Diesel (unit commitment):
    ``a1 < 0`` is off (P = 0, Q = 0); ``a1 >= 0`` is on at P = P_min + a1 (P_max - P_min), with
    Q = a2 sqrt(S^2 - P^2). Column ``soc`` is the state of charge after the step: charging
    stores ``eta_c * P``, discharging draws ``P / eta_d`` from the battery. The set-points are
    also written into the power-flow inputs (``storage_p_mw[ess_rows]``, ``sgen_*[dg_rows]``).
    """
    for i in range(actions.shape[0]):
        for j in range(actions.shape[1]):
            if not math.isfinite(actions[i, j]):
                return False
    for i in range(actions.shape[0]):
        a0 = min(max(actions[i, 0], -1.0), 1.0)
        a1 = min(max(actions[i, 1], -1.0), 1.0)
        a2 = min(max(actions[i, 2], -1.0), 1.0)
        requested = a0 * battery_max_mw
        max_charge = (soc_max - soc[i]) * capacity_mwh / (charge_efficiency * hours)
        max_discharge = max((soc[i] - soc_min) * capacity_mwh * discharge_efficiency / hours, 0.0)
        battery = min(max(requested, -max_discharge), max_charge)
        dg_p, dg_q = 0.0, 0.0
        if a1 >= 0.0:
            dg_p = dg_pmin[i] + a1 * (dg_pmax[i] - dg_pmin[i])
            dg_q = a2 * math.sqrt(max(dg_s[i] * dg_s[i] - dg_p * dg_p, 0.0))
        out[i, 0] = battery
        out[i, 1] = requested - battery
        out[i, 2] = dg_p
        out[i, 3] = dg_q
        stored = battery * charge_efficiency if battery > 0.0 else battery / discharge_efficiency
        out[i, 4] = min(max(soc[i] + stored * hours / capacity_mwh, soc_min), soc_max)
        storage_p_mw[ess_rows[i]] = battery
        sgen_p_mw[dg_rows[i]] = dg_p
        sgen_q_mvar[dg_rows[i]] = dg_q
    return True


@numba.njit(cache=True)
def outcome(  # noqa: ANN001, ANN201, PLR0913 - numba kernel
    converged,
    vm_pu,
    line_loading_percent,
    trafo_p_hv_mw,
    bus_rows,
    bus_starts,
    line_rows,
    line_starts,
    pcc_rows,
    load_p_mw,
    load_rows,
    load_starts,
    sgen_p_mw,
    pv_rows,
    wind_rows,
    dispatched,
    dg_abc,
    price,
    export_discount,
    nonconvergence_safety,
    v_low,
    v_high,
    hours,
    out,
):
    """Exchange, safety, fuel and exchange cost of one hour per microgrid (``OUTCOME_COLUMNS``).

    Zones are segments of the row arrays: microgrid i owns ``rows[starts[i]:starts[i + 1]]``.
    Not converged: the exchange is the lossless balance, safety is ``nonconvergence_safety``
    (split as 0 voltage, 0 line) and the voltages (columns v_min/v_max) are left untouched.
    """
    n = out.shape[0]
    for i in range(n):
        load = 0.0
        end = load_starts[i + 1] if i + 1 < n else load_rows.size
        for r in range(load_starts[i], end):
            load += load_p_mw[load_rows[r]]
        pv = sgen_p_mw[pv_rows[i]]
        wind = sgen_p_mw[wind_rows[i]]
        battery, dg_p = dispatched[i, 0], dispatched[i, 2]
        if converged:
            exchange = trafo_p_hv_mw[pcc_rows[i]]
            safety_v = 0.0
            v_min, v_max = math.inf, -math.inf
            end = bus_starts[i + 1] if i + 1 < n else bus_rows.size
            for r in range(bus_starts[i], end):
                v = vm_pu[bus_rows[r]]
                safety_v += max(v - v_high, 0.0) + max(v_low - v, 0.0)
                v_min = min(v_min, v)
                v_max = max(v_max, v)
            safety_line = 0.0
            end = line_starts[i + 1] if i + 1 < n else line_rows.size
            for r in range(line_starts[i], end):
                safety_line += max(line_loading_percent[line_rows[r]] - 100.0, 0.0)
            safety_line /= 100.0
            safety = safety_v + safety_line
            out[i, 9] = v_min
            out[i, 10] = v_max
        else:
            exchange = load + battery - dg_p - pv - wind
            safety_v = 0.0
            safety_line = 0.0
            safety = nonconvergence_safety
        out[i, 0] = exchange
        out[i, 1] = safety_v
        out[i, 2] = safety_line
        out[i, 3] = safety
        out[i, 4] = economics.fuel_cost(dg_p, dg_abc[i, 0], dg_abc[i, 1], dg_abc[i, 2], hours)
        out[i, 5] = economics.exchange_cost(exchange, price, export_discount, hours)
        out[i, 6] = load
        out[i, 7] = pv
        out[i, 8] = wind


@numba.njit(cache=True)
def exogenous(  # noqa: ANN001, ANN201, PLR0913 - numba kernel
    zone_load,
    day,
    hour,
    load_zone,
    load_p_nom,
    load_q_nom,
    pv,
    wind,
    pv_rows,
    wind_rows,
    pv_rating,
    wind_rating,
    load_p,
    load_q,
    sgen_p,
):
    """Write the loads (nominal x their zone's profile), PV and wind of one hour into the
    power-flow inputs."""
    for i in range(load_zone.size):
        factor = zone_load[load_zone[i], day, hour]
        load_p[i] = load_p_nom[i] * factor
        load_q[i] = load_q_nom[i] * factor
    for i in range(pv_rows.size):
        sgen_p[pv_rows[i]] = pv_rating * pv[day, hour]
    for i in range(wind_rows.size):
        sgen_p[wind_rows[i]] = wind_rating * wind[day, hour]


@numba.njit(cache=True)
def terminal(  # noqa: ANN001, ANN201 - numba kernel
    soc_end, soc_start, capacity_mwh, price, charge_efficiency, discharge_efficiency, out
):
    """Each agent's day-end battery settlement into ``out`` (``economics.terminal_soc_cost``)."""
    for i in range(out.size):
        out[i] = economics.terminal_soc_cost(
            soc_end[i], soc_start[i], capacity_mwh, price, charge_efficiency, discharge_efficiency
        )


@numba.njit(cache=True)
def finish(  # noqa: ANN001, ANN201, PLR0913 - numba kernel
    outcome,
    dispatched,
    exchange_cost,
    extra_cost,
    terminal_cost,
    cost_scale,
    penalty,
    fields,
    day_totals,
):
    """The step's per-agent info matrix (columns: ``OUTCOME_COLUMNS``, ``DISPATCH_COLUMNS``,
    ``FINISH_COLUMNS``) from the outcome, the dispatch and the settlement: cost = fuel +
    exchange + protocol + terminal, own_reward = ``economics.reward(cost, safety)``.
    Adds the hour to ``day_totals`` (per agent: cost, safety, 1 if safety > 0).
    """
    n_out, n_disp = outcome.shape[1], dispatched.shape[1]
    for i in range(fields.shape[0]):
        for j in range(n_out):
            fields[i, j] = outcome[i, j]
        for j in range(n_disp):
            fields[i, n_out + j] = dispatched[i, j]
        cost = outcome[i, 4] + exchange_cost[i] + extra_cost[i] + terminal_cost[i]
        k = n_out + n_disp
        fields[i, k] = cost
        fields[i, k + 1] = exchange_cost[i]
        fields[i, k + 2] = extra_cost[i]
        fields[i, k + 3] = terminal_cost[i]
        fields[i, k + 4] = economics.reward(cost, outcome[i, 3], cost_scale, penalty)
        day_totals[i, 0] += cost
        day_totals[i, 1] += outcome[i, 3]
        day_totals[i, 2] += 1.0 if outcome[i, 3] > 0.0 else 0.0


def segment_starts(rows_per_zone: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated rows of the zones and each zone's start (the kernels' segment layout)."""
    rows = np.concatenate(rows_per_zone).astype(np.int64)
    starts = np.cumsum([0] + [len(r) for r in rows_per_zone[:-1]]).astype(np.int64)
    return rows, starts
