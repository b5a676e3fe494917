"""What every power-flow backend shares: the result type, the solver interface and the limits.

The backends (:mod:`tune_grid.grid.zbus`, :mod:`tune_grid.grid.lightsim` and
:class:`tune_grid.grid.powerflow.PandapowerPowerFlow`) import this module; ``powerflow`` picks one
(``make_solver``), so the imports point one way.
"""

from typing import NamedTuple, Protocol

import numpy as np

#: Newton-Raphson limits of the lightsim2grid and pandapower backends (mismatch in MVA).
MAX_ITER = 20
TOL_MVA = 1e-8
#: A converged solution with a bus below this voltage (pu) is not reused as a warm start.
WARM_START_MIN_VM = 0.5


class PowerFlowResult(NamedTuple):
    """Result of one power flow; arrays follow the row order of the net's tables.

    A named tuple rather than a dataclass: one is made per env step, and this is cheaper.
    """

    converged: bool
    vm_pu: np.ndarray
    line_loading_percent: np.ndarray
    trafo_p_hv_mw: np.ndarray
    trafo_q_hv_mvar: np.ndarray
    ext_grid_p_mw: float

    @classmethod
    def failed(cls, n_bus: int, n_line: int, n_trafo: int) -> "PowerFlowResult":
        """Result of a non-converged power flow (all values NaN)."""
        return cls(
            converged=False,
            vm_pu=np.full(n_bus, np.nan),
            line_loading_percent=np.full(n_line, np.nan),
            trafo_p_hv_mw=np.full(n_trafo, np.nan),
            trafo_q_hv_mvar=np.full(n_trafo, np.nan),
            ext_grid_p_mw=float("nan"),
        )


class PowerFlowSolver(Protocol):
    """Solves the net for given injections (float arrays in net.load/sgen/storage row order)."""

    def solve(
        self,
        load_p_mw: np.ndarray,
        load_q_mvar: np.ndarray,
        sgen_p_mw: np.ndarray,
        sgen_q_mvar: np.ndarray,
        storage_p_mw: np.ndarray,
    ) -> PowerFlowResult: ...

    def reset(self) -> None:
        """Forget the warm start: the next solve starts from the initial profile."""
