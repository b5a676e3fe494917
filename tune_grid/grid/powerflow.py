"""AC power-flow solvers for the network of :mod:`tune_grid.grid.network`.

Two interchangeable backends implement :class:`PowerFlowSolver`:

* :class:`FastPowerFlow` (``"fast"``): a lightsim2grid ``LSGrid`` built once from the net,
  Newton-Raphson with KLU, warm-started from the last converged voltages. Injections are written
  with lightsim2grid's vectorized setters, which take float32: inputs are rounded to ~7
  significant digits (about 3e-8 MW here), which moves voltages by far less than 1e-6 pu.
* :class:`PandapowerPowerFlow` (``"pandapower"``): the reference, ``pandapower.runpp`` on a
  private deep copy of the net, warm-started with ``init="results"``.

Both use the same model: lightsim2grid's pandapower converter reproduces ``runpp``'s line pi
model (with charging), shunts (constant impedance), ratio taps and the transformer model; the
net's transformers have no magnetizing branch and no phase shift, so pandapower's default
``trafo_model="t"`` and a pi model are identical (the reference passes ``"t"`` explicitly, and
the converter is told the net comes from pandapower 3). Both solvers stop at a mismatch of
``TOL_MVA`` (pu on ``net.sn_mva`` = 1 MVA) after at most ``MAX_ITER`` iterations. After a
divergence (or at first use) both start from :func:`~tune_grid.grid.network.initial_voltage_pu`
(a flat start diverges on this net, see there). Inputs are absolute MW/Mvar (element
``scaling`` is ignored); storage reactive power stays at the net's value. Sign conventions are
pandapower's: load and storage p positive = consumption, sgen p positive = generation.
"""

import copy
import importlib.util
import warnings
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandapower as pp
from lightsim2grid.network import init_from_pandapower
from pandapower.auxiliary import LoadflowNotConverged, pandapowerNet

from tune_grid.grid.network import initial_voltage_pu

BACKENDS: tuple[str, ...] = ("fast", "pandapower")
MAX_ITER = 20
TOL_MVA = 1e-8
#: A converged solution with a bus below this voltage (pu) is not reused as a warm start.
WARM_START_MIN_VM = 0.5


@dataclass(frozen=True)
class PowerFlowResult:
    """Result of one power flow; arrays follow the row order of the net's tables."""

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


class FastPowerFlow:
    """lightsim2grid Newton-Raphson solver built once from a pandapower net (no ``gen``)."""

    def __init__(self, net: pandapowerNet, max_iter: int = MAX_ITER, tol: float = TOL_MVA) -> None:
        if len(net.gen) or len(net.switch):
            raise ValueError("FastPowerFlow supports nets without gen and switch elements")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NaN defaults and "no slack gen" notices
            grid = init_from_pandapower(net, pp_orig_file="pandapower_v3")
        if "NR_KLU" in grid.available_algorithm_names():
            grid.change_algorithm("NR_KLU")
        self._grid = grid
        self._max_iter = int(max_iter)
        self._tol = float(tol)
        self._n = (len(net.bus), len(net.line), len(net.trafo))

        # lightsim2grid numbers buses by sorted pandapower index.
        index = net.bus.index.to_numpy()
        pos = np.searchsorted(np.sort(index), index)
        self._bus_pos = None if np.array_equal(pos, np.arange(len(pos))) else pos
        v_init = np.empty(len(index), dtype=complex)
        v_init[pos] = initial_voltage_pu(net)
        self._v_init = v_init
        self._v_last: np.ndarray | None = None

        n_load, n_sgen, n_sto = len(net.load), len(net.sgen), len(net.storage)
        self._all_load = np.ones(n_load, dtype=bool)
        self._all_sgen = np.ones(n_sgen, dtype=bool)
        self._all_sto = np.ones(n_sto, dtype=bool)
        self._load_p = np.zeros(n_load, dtype=np.float32)
        self._load_q = np.zeros(n_load, dtype=np.float32)
        self._sgen_p = np.zeros(n_sgen, dtype=np.float32)
        self._sto_p = np.zeros(n_sto, dtype=np.float32)
        self._sgen_q = (net.sgen["q_mvar"] * net.sgen["scaling"]).to_numpy(dtype=float)
        line = net.line
        rating = line["max_i_ka"] * line["df"] * line["parallel"]
        self._line_scale = 100.0 / rating.to_numpy(dtype=float)
        self._n_slack = len(net.ext_grid)  # ext_grids become the first generators

    def reset(self) -> None:
        """Forget the warm start: the next solve starts from the initial profile."""
        self._v_last = None

    def solve(
        self,
        load_p_mw: np.ndarray,
        load_q_mvar: np.ndarray,
        sgen_p_mw: np.ndarray,
        sgen_q_mvar: np.ndarray,
        storage_p_mw: np.ndarray,
    ) -> PowerFlowResult:
        """Run one AC power flow; never raises on divergence (returns converged=False)."""
        grid = self._grid
        try:
            np.copyto(self._load_p, load_p_mw)
            np.copyto(self._load_q, load_q_mvar)
            np.copyto(self._sgen_p, sgen_p_mw)
            np.copyto(self._sto_p, storage_p_mw)
            grid.update_loads_p(self._all_load, self._load_p)
            grid.update_loads_q(self._all_load, self._load_q)
            grid.update_sgens_p(self._all_sgen, self._sgen_p)
            grid.update_storages_p(self._all_sto, self._sto_p)
            last_q = self._sgen_q
            q = np.asarray(sgen_q_mvar, dtype=float)
            for i in np.flatnonzero(q != last_q).tolist():  # no vectorized setter for sgen q
                value = float(q[i])
                grid.change_q_sgen(i, value)
                last_q[i] = value
            v0 = self._v_init if self._v_last is None else self._v_last
            v = grid.ac_pf(v0.copy(), self._max_iter, self._tol)
        except (RuntimeError, ValueError, TypeError):
            v = np.empty(0, dtype=complex)
        if v.size == 0:
            self._v_last = None
            return PowerFlowResult.failed(*self._n)
        vm = np.abs(v)
        vmin = vm.min()
        if vmin != vmin:  # NaN
            self._v_last = None
            return PowerFlowResult.failed(*self._n)
        self._v_last = v if vmin > WARM_START_MIN_VM else None
        loading = np.maximum(grid.get_line_res1()[3], grid.get_line_res2()[3])
        loading *= self._line_scale
        # lightsim2grid getters return read-only views that the next solve overwrites: copy.
        trafo_p, trafo_q, _, _ = grid.get_trafo_res1()
        gen_p = grid.get_gen_res()[0]
        ext_p = float(gen_p[0]) if self._n_slack == 1 else float(gen_p[: self._n_slack].sum())
        trafo_p = trafo_p.copy()
        trafo_q = trafo_q.copy()
        if self._bus_pos is not None:
            vm = vm[self._bus_pos]
        return PowerFlowResult(True, vm, loading, trafo_p, trafo_q, ext_p)


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
    """Return the power-flow solver for ``backend`` ("fast" or "pandapower")."""
    if backend == "fast":
        return FastPowerFlow(net)
    if backend == "pandapower":
        return PandapowerPowerFlow(net)
    allowed = ", ".join(repr(b) for b in BACKENDS)
    raise ValueError(f"unknown power-flow backend {backend!r}; allowed: {allowed}")
