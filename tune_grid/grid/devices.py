"""Device parameters of the three microgrids (one battery, one diesel generator, PV and wind each).

Pure data shared by the environment, the baselines and the optimal-dispatch oracle.
"""

from __future__ import annotations

from dataclasses import dataclass

MICROGRIDS: tuple[str, ...] = ("MG1", "MG2", "MG3")
POC_DSO_BUS = {"MG1": "822", "MG2": "848", "MG3": "856"}
"""DSO bus at each microgrid's point of connection (HV side of its substation transformer)."""


@dataclass(frozen=True)
class Battery:
    """Battery energy storage at bus 645. Power > 0 charges."""

    max_power_mw: float = 0.5
    capacity_mwh: float = 2.0
    soc_min: float = 0.1
    soc_max: float = 1.0
    charge_efficiency: float = 0.98
    discharge_efficiency: float = 0.98


@dataclass(frozen=True)
class DieselGenerator:
    """Diesel generator at bus 675 with fuel cost a*P^2 + b*P + c ($/h, P in MW).

    Unit commitment: the generator is either off (P = 0, Q = 0, no cost) or on, producing
    between its minimum stable load ``min_p_mw`` and ``max_p_mw`` and paying the no-load term
    ``c`` on top of ``a P^2 + b P`` (:func:`tune_grid.economics.fuel_cost`). Only a running
    generator supplies reactive power, within its apparent-power rating: |Q| <= sqrt(S^2 - P^2).
    """

    max_p_mw: float
    a: float
    b: float
    c: float
    s_mva: float = 1.0
    min_stable_fraction: float = 0.3
    """Minimum stable load as a fraction of P_max (diesel makers advise >= 30 %: below it a
    diesel runs cold and cokes up, "wet stacking")."""

    @property
    def min_p_mw(self) -> float:
        return self.min_stable_fraction * self.max_p_mw

    def marginal_cost(self, p_mw: float) -> float:
        return 2.0 * self.a * p_mw + self.b


DIESEL = {
    "MG1": DieselGenerator(max_p_mw=0.66, a=100.0, b=72.4, c=0.5011),
    "MG2": DieselGenerator(max_p_mw=0.60, a=100.0, b=51.6, c=0.4615),
    "MG3": DieselGenerator(max_p_mw=0.50, a=100.0, b=51.6, c=0.4615),
}
BATTERY = Battery()
PV_RATING_MW = 0.1
WIND_RATING_MW = 0.1
HOUR = 1.0  # time step in hours
VOLTAGE_MIN_PU = 0.95
VOLTAGE_MAX_PU = 1.05
