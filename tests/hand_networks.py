"""Hand-made networks for dispatch tests whose optima can be checked by hand."""

from __future__ import annotations

import numpy as np

from tune_grid.grid.devices import BATTERY, Battery, DieselGenerator
from tune_grid.oracle.dispatch import Site
from tune_grid.oracle.lindistflow import RadialNetwork


def two_bus(r: float = 1e-4, x: float = 1e-4, slack_w: float = 1.0) -> RadialNetwork:
    """Slack bus 0 -- branch (r, x pu on 1 MVA) -- microgrid bus 1."""
    return RadialNetwork(
        bus_names=("grid", "mg"),
        bus_zone=("DSO", "MG"),
        slack=0,
        slack_w=slack_w,
        parent=np.array([0]),
        child=np.array([1]),
        r=np.array([r]),
        x=np.array([x]),
        alpha=np.array([1.0]),
        s_max_mva=np.array([np.inf]),
        branch_kind=("trafo",),
        branch_name=("pcc",),
        branch_zone=("MG",),
        shunt_g=np.zeros(2),
        shunt_b=np.zeros(2),
    )


def one_site(battery: Battery = BATTERY, dg: DieselGenerator | None = None) -> Site:
    dg = dg or DieselGenerator(max_p_mw=1.0, a=100.0, b=50.0, c=0.0, min_stable_fraction=0.0)
    return Site("MG", battery, dg, battery_bus=1, dg_bus=1, pcc_branch=0, buses=(1,))
