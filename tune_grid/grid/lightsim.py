"""lightsim2grid's Newton-Raphson (KLU) as a power-flow backend (``"lightsim2grid"``).

An ``LSGrid`` is built once from the net with lightsim2grid's pandapower converter, which
reproduces ``runpp``'s line pi model, shunts, ratio taps and transformer model (the net's
transformers have no magnetizing branch and no phase shift, so the "t" and pi models agree).
Each solve is warm-started from the last converged voltages. Injections are written with the
vectorized setters, which take float32: inputs are rounded to ~7 significant digits (about
3e-8 MW here), which moves voltages by far less than 1e-6 pu.
"""

import warnings

import numpy as np
from lightsim2grid.network import init_from_pandapower
from pandapower.auxiliary import pandapowerNet

from tune_grid.grid.network import initial_voltage_pu
from tune_grid.grid.solver import MAX_ITER, TOL_MVA, WARM_START_MIN_VM, PowerFlowResult


class LightSim2GridPowerFlow:
    """lightsim2grid Newton-Raphson solver built once from a pandapower net (no ``gen``)."""

    def __init__(self, net: pandapowerNet, max_iter: int = MAX_ITER, tol: float = TOL_MVA) -> None:
        if len(net.gen) or len(net.switch):
            raise ValueError("LightSim2GridPowerFlow supports nets without gen and switch elements")
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
        self._sgen_q = (net.sgen["q_mvar"] * net.sgen["scaling"]).to_numpy(dtype=float, copy=True)
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
