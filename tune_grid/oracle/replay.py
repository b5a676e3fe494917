"""Replay a dispatch schedule through the real environment (AC power flow, the env's own money)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tune_grid.grid.devices import BATTERY, DIESEL, MICROGRIDS
from tune_grid.oracle.dispatch import ON_TOL_MW


def schedule_actions(
    battery_mw: np.ndarray, dg_p_mw: np.ndarray, dg_q_mvar: np.ndarray
) -> np.ndarray:
    """Invert the env's action mapping: (M, T) set points -> (T, M, 3) actions in [-1, 1].

    battery = a0 x P_max (> 0 charges); diesel off (a1 = -1) where ``dg_p <= ON_TOL_MW``, else on
    at P_min + a1 (P_max - P_min) (an output a hair below P_min runs at P_min); dg_q = a2 x
    sqrt(S^2 - p^2).
    """
    battery_mw, dg_p_mw, dg_q_mvar = (
        np.asarray(a, float) for a in (battery_mw, dg_p_mw, dg_q_mvar)
    )
    p_min = np.array([DIESEL[m].min_p_mw for m in MICROGRIDS])[:, None]
    p_max = np.array([DIESEL[m].max_p_mw for m in MICROGRIDS])[:, None]
    s = np.array([DIESEL[m].s_mva for m in MICROGRIDS])[:, None]
    a0 = battery_mw / BATTERY.max_power_mw
    on = dg_p_mw > ON_TOL_MW
    a1 = np.where(on, np.maximum((dg_p_mw - p_min) / (p_max - p_min), 0.0), -1.0)
    q_room = np.sqrt(np.maximum(s**2 - dg_p_mw**2, 0.0))
    a2 = np.divide(dg_q_mvar, q_room, out=np.zeros_like(dg_q_mvar), where=on & (q_room > 1e-12))
    actions = np.stack([a0, a1, a2], axis=-1)  # (M, T, 3)
    return np.clip(actions, -1.0, 1.0).transpose(1, 0, 2)


def executable(controls: np.ndarray) -> np.ndarray:
    """Set points (3, M, T) as the env runs them: their actions (:func:`schedule_actions`)
    through the env's own device rule (``env.kernels.dispatch``): a diesel asked for less than
    P_min runs at P_min, and its Q is held within the rating. The battery is not clipped here
    (its SoC clipping depends on the state; a plan within the SoC bounds is never clipped)."""
    from tune_grid.env.kernels import dispatch

    battery, dg_p, dg_q = (np.asarray(c, float) for c in controls)
    actions = schedule_actions(battery, dg_p, dg_q)  # (T, M, 3)
    m = len(MICROGRIDS)
    p_min = np.array([DIESEL[g].min_p_mw for g in MICROGRIDS])
    p_max = np.array([DIESEL[g].max_p_mw for g in MICROGRIDS])
    s_mva = np.array([DIESEL[g].s_mva for g in MICROGRIDS])
    rows = np.arange(m)
    out = np.zeros((m, 5))
    scratch = (np.zeros(m), np.zeros(m), np.zeros(m))
    result = np.zeros((3, m, len(actions)))
    for t, hour in enumerate(actions):
        dispatch(
            np.ascontiguousarray(hour, dtype=float), np.full(m, 0.5), p_min, p_max, s_mva,
            BATTERY.max_power_mw, np.inf, 0.0, 1.0, BATTERY.charge_efficiency,
            BATTERY.discharge_efficiency, 1.0, rows, rows, *scratch, out,
        )  # fmt: skip
        result[:, :, t] = out[:, [0, 2, 3]].T  # battery, diesel P, diesel Q
    return result


def replay(env: Any, day: int | str, actions: np.ndarray, soc: float | None) -> dict[str, Any]:
    """Run one day of ``actions`` (T, M, 3) in ``env``; totals as ``evaluation.run_day`` plus
    per-hour arrays (M, T): cost, safety, exchange, battery, dg_p, dg_q, soc, v_min, v_max."""
    options: dict[str, Any] = {"day": day}
    if soc is not None:
        options["soc"] = soc
    _, infos = env.reset(options=options)
    first = infos[MICROGRIDS[0]]
    keys = (
        "cost", "safety", "exchange_mw", "battery_mw", "dg_p_mw", "dg_q_mvar", "soc", "v_min_pu",
        "v_max_pu", "battery_clipped_mw",
    )  # fmt: skip
    hours = len(actions)
    series = {k: np.zeros((len(MICROGRIDS), hours)) for k in keys}
    converged = True
    for t in range(hours):
        step = {agent: actions[t, i] for i, agent in enumerate(MICROGRIDS)}
        _, _, _, _, infos = env.step(step)
        for i, agent in enumerate(MICROGRIDS):
            info = infos[agent]
            for k in keys:
                series[k][i, t] = info[k]
            converged &= bool(info["converged"])
        if not env.agents:
            break
    return {
        "day": int(first["day"]),
        "date": str(first["date"]),
        "cost": float(series["cost"].sum()),
        "safety": float(series["safety"].sum()),
        "violation_hours": int((series["safety"] > 0.0).sum()),
        "clipped_mwh": float(np.abs(series["battery_clipped_mw"]).sum()),
        "converged": converged,
        "series": series,
    }
