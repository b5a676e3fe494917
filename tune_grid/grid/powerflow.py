"""AC power-flow solvers for the network of :mod:`tune_grid.grid.network`.

Three interchangeable backends implement :class:`PowerFlowSolver` (``make_solver``):

* ``"fast"``: :class:`~tune_grid.grid.zbus.ZBusPowerFlow`, an implicit Z-bus iteration compiled
  with numba on pandapower's own admittance matrices (~10-25 us per solve). The env's default.
* ``"lightsim2grid"``: :class:`~tune_grid.grid.lightsim.LightSim2GridPowerFlow`, lightsim2grid's
  Newton-Raphson with KLU (~45-60 us per solve), kept as a second compiled solver to compare with.
* ``"pandapower"``: :class:`PandapowerPowerFlow`, the reference, ``pandapower.runpp`` on a
  private deep copy of the net, warm-started with ``init="results"`` (~15 ms per solve).

The result type, the solver interface and the shared limits live in :mod:`tune_grid.grid.solver`
(the backends import that, and this module imports the backends). All use the same model
(pandapower's line pi model with charging, shunts as constant
impedance, ratio taps, transformer model with ``trafo_model="t"``) and the same sign conventions
(pandapower's: load and storage p positive = consumption, sgen p positive = generation). Inputs are
absolute MW/Mvar (element ``scaling`` is ignored); storage reactive power stays at the net's
value. After a divergence (or at first use) every solver starts from
:func:`~tune_grid.grid.network.initial_voltage_pu` (a flat start diverges on this net).
"""

import copy
import importlib.util
from typing import Any

import numpy as np
import pandapower as pp
from pandapower.auxiliary import LoadflowNotConverged, pandapowerNet

from tune_grid.grid.network import initial_voltage_pu
from tune_grid.grid.solver import (
    MAX_ITER,
    TOL_MVA,
    WARM_START_MIN_VM,
    PowerFlowResult,
    PowerFlowSolver,
)

__all__ = [
    "BACKENDS",
    "MAX_ITER",
    "TOL_MVA",
    "WARM_START_MIN_VM",
    "PandapowerPowerFlow",
    "PowerFlowResult",
    "PowerFlowSolver",
    "make_solver",
]

BACKENDS: tuple[str, ...] = ("fast", "lightsim2grid", "pandapower")


class PandapowerPowerFlow:
    """Reference solver: ``pandapower.runpp`` on a private deep copy of the net."""

    def __init__(self, net: pandapowerNet, max_iter: int = MAX_ITER, tol: float = TOL_MVA) -> None:
        self._net = copy.deepcopy(net)
        self._net["user_pf_options"] = {}
        for table in ("load", "sgen", "storage"):
            self._net[table]["scaling"] = 1.0
        self._v_init = initial_voltage_pu(net)
        self._warm = False
        self._n = (len(net.bus), len(net.line), len(net.trafo))
        self._options = {
            "algorithm": "nr",
            "max_iteration": int(max_iter),
            "tolerance_mva": float(tol),
            "trafo_model": "t",
            "calculate_voltage_angles": True,
            "numba": importlib.util.find_spec("numba") is not None,
        }

    def reset(self) -> None:
        """Forget the warm start: the next solve starts from the initial profile."""
        self._warm = False

    def solve(
        self,
        load_p_mw: np.ndarray,
        load_q_mvar: np.ndarray,
        sgen_p_mw: np.ndarray,
        sgen_q_mvar: np.ndarray,
        storage_p_mw: np.ndarray,
    ) -> PowerFlowResult:
        """Run ``pandapower.runpp``; returns converged=False if it does not converge."""
        net = self._net
        net.load["p_mw"] = np.asarray(load_p_mw, dtype=float)
        net.load["q_mvar"] = np.asarray(load_q_mvar, dtype=float)
        net.sgen["p_mw"] = np.asarray(sgen_p_mw, dtype=float)
        net.sgen["q_mvar"] = np.asarray(sgen_q_mvar, dtype=float)
        net.storage["p_mw"] = np.asarray(storage_p_mw, dtype=float)
        init: dict[str, Any]
        if self._warm:
            init = {"init": "results"}
        else:
            init = {"init_vm_pu": self._v_init, "init_va_degree": np.zeros(len(self._v_init))}
        try:
            pp.runpp(net, **self._options, **init)
        except (LoadflowNotConverged, np.linalg.LinAlgError):
            self._warm = False
            return PowerFlowResult.failed(*self._n)
        vm = net.res_bus["vm_pu"].to_numpy(dtype=float, copy=True)
        self._warm = bool(vm.min() > WARM_START_MIN_VM)
        return PowerFlowResult(
            converged=True,
            vm_pu=vm,
            line_loading_percent=net.res_line["loading_percent"].to_numpy(dtype=float, copy=True),
            trafo_p_hv_mw=net.res_trafo["p_hv_mw"].to_numpy(dtype=float, copy=True),
            trafo_q_hv_mvar=net.res_trafo["q_hv_mvar"].to_numpy(dtype=float, copy=True),
            ext_grid_p_mw=float(net.res_ext_grid["p_mw"].sum()),
        )


def make_solver(net: pandapowerNet, backend: str) -> PowerFlowSolver:
    """Return the power-flow solver for ``backend`` (one of :data:`BACKENDS`)."""
    if backend == "fast":
        from tune_grid.grid.zbus import ZBusPowerFlow  # compiles numba kernels: on first use

        return ZBusPowerFlow(net)
    if backend == "lightsim2grid":
        from tune_grid.grid.lightsim import LightSim2GridPowerFlow  # optional dependency

        return LightSim2GridPowerFlow(net)
    if backend == "pandapower":
        return PandapowerPowerFlow(net)
    allowed = ", ".join(repr(b) for b in BACKENDS)
    raise ValueError(f"unknown power-flow backend {backend!r}; allowed: {allowed}")
