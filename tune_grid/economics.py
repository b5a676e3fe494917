"""The money and the objective of the networked-microgrid task, each formula written once.

The environment's compiled kernels, the coordination protocols, the oracle and the evaluation all
call these functions. They are numba ufuncs: called with scalars inside a numba kernel, with
arrays from numpy code, with the same arithmetic either way. (The oracle's optimization model
restates them as convex expressions; what it reports as a schedule's money is computed here.)

Per microgrid and hour (``hours`` = the step length, 1 h):

* **Fuel** of the diesel generator: ``(a P^2 + b P + c) hours`` while it runs (``P > DG_OFF_MW``),
  else 0. A running diesel produces between its minimum stable load and ``P_max``
  (:class:`~tune_grid.grid.devices.DieselGenerator`), so ``c`` is a real no-load cost.
* **Exchange** at the point of connection (import ``x > 0``): import pays ``x LMP``; export
  earns ``export_discount x |x| LMP``. At a negative LMP the same rule makes an importer earn
  ``|x| |LMP|`` while an exporter pays only ``export_discount |x| |LMP|``: the discount is a
  retail spread on the magnitude, in the microgrid's favour at negative prices (a documented
  asymmetry: no policy gains energy from it, it only pays less to get rid of it).
* **Terminal energy** (``terminal_soc: settle``), on the day's last step: the battery's stored
  energy below the day's starting SoC is bought back at ``terminal price / eta_c`` per MWh
  stored (the grid energy needed to put it back), energy above it is credited at
  ``terminal price x eta_d`` (what it delivers when discharged). The terminal price is the day's
  mean LMP, floored at 0 (``terminal_price``; the LMP is day-ahead, so it is known at midnight).
  Since ``1 / eta_c > eta_d``, a round trip (drain, buy back; or fill, be credited) always
  loses money at that price: draining the battery is never a way to make money.
* **Reward** of an agent: ``-cost / cost_scale - penalty x safety``; the **objective** (what the
  oracle minimises and the optimality gaps compare) is the same quantity in dollars,
  ``cost + penalty x cost_scale x safety``, so one dollar and one unit of safety weigh alike in
  training, in the oracle and in every reported gap.
"""

from __future__ import annotations

import numba
import numpy as np

DG_OFF_MW = 1e-9
"""A diesel output at or below this (MW) is "off": no fuel, not even the no-load term."""

_F8 = numba.float64


@numba.vectorize([_F8(_F8, _F8, _F8, _F8, _F8)], cache=True)
def fuel_cost(p_mw: float, a: float, b: float, c: float, hours: float) -> float:
    """Fuel ($) of a diesel at ``p_mw`` for ``hours``: 0 when off (see the module doc)."""
    if p_mw <= DG_OFF_MW:
        return 0.0
    return (a * p_mw * p_mw + b * p_mw + c) * hours


@numba.vectorize([_F8(_F8, _F8, _F8, _F8)], cache=True)
def exchange_cost(exchange_mw: float, price: float, export_discount: float, hours: float) -> float:
    """Settlement ($) of an exchange (import > 0) at the LMP (see the module doc)."""
    energy_price = price if exchange_mw > 0.0 else price * export_discount
    return exchange_mw * hours * energy_price


@numba.vectorize([_F8(_F8, _F8, _F8, _F8, _F8, _F8)], cache=True)
def terminal_soc_cost(
    soc_end: float,
    soc_start: float,
    capacity_mwh: float,
    price: float,
    charge_efficiency: float,
    discharge_efficiency: float,
) -> float:
    """Day-end settlement ($) of the battery's energy against its start (module doc)."""
    deficit_mwh = (soc_start - soc_end) * capacity_mwh
    if deficit_mwh > 0.0:
        return deficit_mwh * price / charge_efficiency
    return deficit_mwh * price * discharge_efficiency


@numba.vectorize([_F8(_F8, _F8, _F8, _F8)], cache=True)
def reward(cost: float, safety: float, cost_scale: float, penalty: float) -> float:
    """An agent's reward from its cost ($) and safety."""
    return -cost / cost_scale - penalty * safety


@numba.vectorize([_F8(_F8, _F8, _F8, _F8)], cache=True)
def objective(cost: float, safety: float, cost_scale: float, penalty: float) -> float:
    """The objective in dollars: ``cost + penalty cost_scale safety`` (= -reward x scale)."""
    return cost + penalty * cost_scale * safety


def safety_price(cost_scale: float, penalty: float) -> float:
    """Dollars per unit of safety (pu-hour of voltage violation, or of line overload) in the
    objective: what the oracle pays for a violation, at the reward's own weights."""
    return float(penalty) * float(cost_scale)


def terminal_price(day_prices: np.ndarray) -> np.ndarray:
    """The terminal price ($/MWh) of each day (rows of ``day_prices``): mean LMP, floored at 0."""
    return np.maximum(np.asarray(day_prices, float).mean(axis=-1), 0.0)


def relative_gap(policy: float, reference: float) -> float:
    """``(policy - reference) / |reference|``: a policy's gap to the oracle (0 = as good, 0.2 =
    20 % worse); NaN when the reference is 0 or not finite. Pool days first (means), then gap."""
    if not np.isfinite(reference) or reference == 0.0:
        return float("nan")
    return (float(policy) - float(reference)) / abs(float(reference))
