"""The fast power flow: implicit Z-bus iteration, compiled with numba.

Every bus except the slack is a PQ bus here (no ``gen`` elements), and the network is a weakly
meshed distribution system, so the implicit Z-bus (Gauss) method fits it well: with the
admittance matrix split into the PQ block ``Y_LL`` and the slack columns ``Y_LS``,

    V_L <- Y_LL^-1 (conj(S_L / V_L) - Y_LS V_S)

converges in 6-15 iterations from the last hour's solution (the map contracts by about 0.1 per
iteration on this feeder; Anderson acceleration was tried and gained nothing). ``Y_LL`` never
changes, so it is LU-factorized once (SuperLU, fill-reducing ordering); an iteration is then two
sparse triangular solves of ~230 nonzeros. One numba call does the injections, the iterations
and the branch results, with no Python per iteration.

:func:`solve_batch` solves many envs' nets in lockstep (an env runner's 32 envs, say): the
innermost loops run over the envs, which are independent, so the triangular solves vectorize
and lose the dependency chain that bounds a single solve (~0.2 us per env and iteration instead
of ~0.85 us). An env stops iterating when it converges, exactly as it would alone, so a batch of
one (:meth:`ZBusPowerFlow.solve`) and a batch of many give bit-identical results.

``Ybus``, ``Yf`` and ``Yt`` are taken from pandapower's own model of the net (one
``pandapower.runpp`` at build time, with all injections at zero), so line charging, shunts,
ratio taps and the transformer model are exactly pandapower's; the tests compare voltages,
line loadings and transformer flows with ``pandapower.runpp`` on random operating points.
Constant-power loads only (the net's loads are constant PQ); storage reactive power stays at
the net's value; element ``scaling`` is ignored (inputs are absolute MW/Mvar).
"""

from __future__ import annotations

import copy
import math
import warnings

import numba
import numpy as np
import pandapower as pp
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from pandapower.auxiliary import pandapowerNet

from tune_grid.grid.network import initial_voltage_pu
from tune_grid.grid.solver import WARM_START_MIN_VM, PowerFlowResult

#: The iteration stops when no bus voltage moves by more than this (pu) in one iteration. The
#: map contracts by ~0.1 per iteration here, so the error left is ~1e-10 pu: about what
#: pandapower's 1e-8 MVA mismatch leaves, far inside the 1e-6 pu the tests ask.
TOL_V_PU = 1e-9
#: A fixed-point method needs more iterations than Newton: a normal solve takes ~10.
MAX_ITER = 100
_SQRT3 = math.sqrt(3.0)


class ZBusPowerFlow:
    """Implicit Z-bus power flow of a pandapower net (PQ buses and ext_grid slacks only)."""

    def __init__(self, net: pandapowerNet, max_iter: int = MAX_ITER, tol: float = TOL_V_PU) -> None:
        if len(net.gen) or len(net.switch):
            raise ValueError("ZBusPowerFlow supports nets without gen and switch elements")
        self._max_iter = int(max_iter)
        self._tol = float(tol)
        self._n = (len(net.bus), len(net.line), len(net.trafo))
        model = _pandapower_model(net)
        ppci, lookup = model["ppci"], model["bus_lookup"]
        internal = ppci["internal"]
        base_mva = float(ppci["baseMVA"])
        n_bus = ppci["bus"].shape[0]
        slack = np.flatnonzero(ppci["bus"][:, 1].real == 3)
        pq = np.flatnonzero(ppci["bus"][:, 1].real != 3)
        if len(slack) == 0 or len(pq) + len(slack) != n_bus:
            raise ValueError("ZBusPowerFlow needs at least one ext_grid and PQ buses only")

        ybus = sp.csr_matrix(internal["Ybus"])
        y_ll = ybus[pq][:, pq].tocsc()
        y_ls = ybus[pq][:, slack]
        v_slack = ppci["bus"][slack, 7] * np.exp(1j * np.deg2rad(ppci["bus"][slack, 8]))
        lu = spla.splu(y_ll, permc_spec="MMD_AT_PLUS_A")
        self._lu = _TriangularFactors(lu)
        self._slack_current = -(y_ls @ v_slack)  # constant part of the PQ-bus currents
        self._pq = pq.astype(np.int64)
        self._slack = slack.astype(np.int64)
        self._v_slack = v_slack.astype(np.complex128)
        self._ybus_slack = _csr_rows(ybus[slack])

        def element_bus(table: str) -> np.ndarray:
            return lookup[net[table]["bus"].to_numpy()].astype(np.int64)

        self._load_bus = element_bus("load")
        self._sgen_bus = element_bus("sgen")
        self._storage_bus = element_bus("storage")
        self._storage_q = net.storage["q_mvar"].to_numpy(dtype=float).copy()
        self._base_mva = base_mva
        self._bus_rows = lookup[net.bus.index.to_numpy()].astype(np.int64)

        branch = ppci["branch"]
        line_start, line_end = model["branch_lookup"]["line"]
        trafo_start, trafo_end = model["branch_lookup"]["trafo"]
        self._branch_from = branch[:, 0].real.astype(np.int64)
        self._branch_to = branch[:, 1].real.astype(np.int64)
        self._yf = _csr_rows(sp.csr_matrix(internal["Yf"]))
        self._yt = _csr_rows(sp.csr_matrix(internal["Yt"]))
        base_kv = ppci["bus"][:, 9].real
        kilo_amps_per_pu = base_mva / (_SQRT3 * base_kv)  # base current of each bus, kA
        rating = (net.line["max_i_ka"] * net.line["df"] * net.line["parallel"]).to_numpy(float)
        self._line_rows = np.arange(line_start, line_end, dtype=np.int64)
        self._line_scale_from = 100.0 * kilo_amps_per_pu[self._branch_from[self._line_rows]]
        self._line_scale_to = 100.0 * kilo_amps_per_pu[self._branch_to[self._line_rows]]
        self._line_scale_from /= rating
        self._line_scale_to /= rating
        self._trafo_rows = np.arange(trafo_start, trafo_end, dtype=np.int64)

        v_init = np.ones(n_bus, dtype=np.complex128)
        v_init[self._bus_rows] = initial_voltage_pu(net)
        v_init[slack] = v_slack
        self._v_init = v_init
        self._v = v_init.copy()
        self._warm = False
        self._scalars = np.zeros((1, 2))  # slack P (MW) and lowest |V| (pu), last solve
        self._flags = np.array([True, False, False])  # active, warm, converged
        self._model = (
            self._storage_q,
            self._load_bus,
            self._sgen_bus,
            self._storage_bus,
            self._base_mva,
            self._pq,
            self._slack_current,
            self._lu.arrays,
            self._max_iter,
            self._tol,
            self._slack,
            self._ybus_slack,
            self._yf,
            self._yt,
            self._branch_from,
            self._line_rows,
            self._line_scale_from,
            self._line_scale_to,
            self._trafo_rows,
            self._bus_rows,
        )

    def reset(self) -> None:
        """Forget the warm start: the next solve starts from the initial profile."""
        self._warm = False

    def clone(self) -> ZBusPowerFlow:
        """A solver of the same net with its own state, sharing the read-only model arrays.

        Building one costs a ``pandapower.runpp`` (~0.3 s); a clone costs microseconds, which
        matters when an env runner creates dozens of envs.
        """
        twin = copy.copy(self)
        twin._v = self._v_init.copy()
        twin._warm = False
        twin._scalars = np.zeros_like(self._scalars)
        twin._flags = self._flags.copy()
        return twin

    @property
    def model(self) -> tuple:
        """The net's constant arrays in the order :func:`solve_batch` takes them."""
        return self._model

    @property
    def initial_voltages(self) -> np.ndarray:
        """The flat start of a cold solve (complex pu, internal bus order; read-only)."""
        return self._v_init

    @property
    def warm_state(self) -> tuple[np.ndarray, bool]:
        """The voltages the next solve starts from (live array) and whether they are used."""
        return self._v, self._warm

    def solve(
        self,
        load_p_mw: np.ndarray,
        load_q_mvar: np.ndarray,
        sgen_p_mw: np.ndarray,
        sgen_q_mvar: np.ndarray,
        storage_p_mw: np.ndarray,
    ) -> PowerFlowResult:
        """Run one AC power flow; never raises on divergence (returns converged=False)."""
        n_bus, n_line, n_trafo = self._n
        vm = np.empty((1, n_bus))
        loading = np.empty((1, n_line))
        trafo_p = np.empty((1, n_trafo))
        trafo_q = np.empty((1, n_trafo))
        flags = self._flags  # active, warm, converged
        flags[1] = self._warm
        solve_batch(
            _row(load_p_mw),
            _row(load_q_mvar),
            _row(sgen_p_mw),
            _row(sgen_q_mvar),
            _row(storage_p_mw),
            flags[0:1],
            self._model,
            self._v_init,
            self._v[np.newaxis],
            flags[1:2],
            flags[2:3],
            vm,
            loading,
            trafo_p,
            trafo_q,
            self._scalars,
        )
        self._warm = bool(flags[1])
        if not flags[2]:
            return PowerFlowResult.failed(*self._n)
        return PowerFlowResult(
            True, vm[0], loading[0], trafo_p[0], trafo_q[0], float(self._scalars[0, 0])
        )


def _row(values: np.ndarray) -> np.ndarray:
    """``values`` as float64, shaped as a batch of one (a view where possible)."""
    return np.asarray(values, dtype=np.float64)[np.newaxis]


class _TriangularFactors:
    """SuperLU factors of a sparse matrix as plain arrays for the numba triangular solves.

    SuperLU gives ``Pr A Pc = L U`` (L unit lower); ``A x = b`` is solved as
    ``y[perm_r] = b``, ``L U z = y``, ``x = z[perm_c]``. The strictly triangular parts are
    stored by rows (CSR), so each solve accumulates a row in a register instead of scattering
    into memory, and U's diagonal is stored inverted.
    """

    def __init__(self, lu: spla.SuperLU) -> None:
        lower = sp.tril(lu.L, k=-1, format="csr")
        upper = sp.triu(lu.U, k=1, format="csr")
        self.perm_r = lu.perm_r.astype(np.int64)
        self.perm_c = lu.perm_c.astype(np.int64)
        self.l_ptr, self.l_idx = lower.indptr.astype(np.int64), lower.indices.astype(np.int64)
        self.l_val = lower.data.astype(np.complex128)
        self.u_ptr, self.u_idx = upper.indptr.astype(np.int64), upper.indices.astype(np.int64)
        self.u_val = upper.data.astype(np.complex128)
        self.u_inv_diag = (1.0 / lu.U.diagonal()).astype(np.complex128)
        if not np.allclose(lu.L.diagonal(), 1.0):
            raise ValueError("expected a unit lower-triangular factor from SuperLU")
        self.arrays = (
            self.perm_r,
            self.perm_c,
            self.l_ptr,
            self.l_idx,
            self.l_val.real.copy(),
            self.l_val.imag.copy(),
            self.u_ptr,
            self.u_idx,
            self.u_val.real.copy(),
            self.u_val.imag.copy(),
            self.u_inv_diag.real.copy(),
            self.u_inv_diag.imag.copy(),
        )
        """The factors as one tuple, complex values split in real and imaginary parts: the
        form :func:`lu_solve_batch` takes."""


def _csr_rows(matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    matrix = sp.csr_matrix(matrix)
    return (
        matrix.indptr.astype(np.int64),
        matrix.indices.astype(np.int64),
        matrix.data.astype(np.complex128),
    )


def _pandapower_model(net: pandapowerNet) -> dict:
    """pandapower's internal model (ppci with Ybus, Yf, Yt) of ``net``, built by one runpp.

    All injections are zeroed in a private copy, so the build-time power flow converges.
    """
    work = copy.deepcopy(net)
    for table in ("load", "sgen", "storage"):
        work[table]["p_mw"] = 0.0
        work[table]["q_mvar"] = 0.0
    v0 = initial_voltage_pu(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(
            work,
            algorithm="nr",
            trafo_model="t",
            calculate_voltage_angles=True,
            init_vm_pu=v0,
            init_va_degree=np.zeros(len(v0)),
            numba=False,
        )
    lookups = work._pd2ppc_lookups
    return {
        "ppci": work._ppc,
        "bus_lookup": np.asarray(lookups["bus"]),
        "branch_lookup": lookups["branch"],
    }


@numba.njit(cache=True, inline="always")
def _abs2(z):  # noqa: ANN001, ANN202 - numba kernel; |z|^2 without hypot's cost
    return z.real * z.real + z.imag * z.imag


@numba.njit(cache=True, inline="always")
def _sparse_row_dot(ptr, idx, val, row, v):  # noqa: ANN001, ANN202 - numba kernel
    total = 0.0j
    for p in range(ptr[row], ptr[row + 1]):
        total += val[p] * v[idx[p]]
    return total


@numba.njit(cache=True, inline="always")
def _sub_product(x_re, x_im, a_re, a_im, b_re, b_im):  # noqa: ANN001, ANN202
    """``x -= a * b`` elementwise on split complex rows (one loop LLVM vectorizes)."""
    for e in range(x_re.size):
        br, bi = b_re[e], b_im[e]
        x_re[e] -= a_re * br - a_im * bi
        x_im[e] -= a_re * bi + a_im * br


@numba.njit(cache=True, error_model="numpy")
def lu_solve_batch(factors, x_re, x_im):  # noqa: ANN001, ANN201 - numba kernel
    """Solve ``A x = b`` in place for every column of ``x`` (split complex, shape (n, k)),
    from ``_TriangularFactors(A).arrays``.

    On entry column e of ``x`` holds ``Pr b`` (b scattered by ``perm_r``); on exit it holds
    ``z`` with ``A^-1 b = z[perm_c]``. The innermost loops run along rows, over the columns,
    which are independent: k right-hand sides cost far less than k solves (no dependency chain
    between them, and the loops vectorize).
    """
    _, _, l_ptr, l_idx, l_re, l_im, u_ptr, u_idx, u_re, u_im, d_re, d_im = factors
    n = x_re.shape[0]
    if x_re.shape[1] == 1:  # one env: the same operations, accumulated in registers
        _lu_solve_one(l_ptr, l_idx, l_re, l_im, u_ptr, u_idx, u_re, u_im, d_re, d_im, x_re, x_im)
        return
    for i in range(n):  # L y = Pr b, unit diagonal, by rows
        row_re, row_im = x_re[i], x_im[i]
        for p in range(l_ptr[i], l_ptr[i + 1]):
            _sub_product(row_re, row_im, l_re[p], l_im[p], x_re[l_idx[p]], x_im[l_idx[p]])
    for i in range(n - 1, -1, -1):  # U z = y, by rows from the bottom
        row_re, row_im = x_re[i], x_im[i]
        for p in range(u_ptr[i], u_ptr[i + 1]):
            _sub_product(row_re, row_im, u_re[p], u_im[p], x_re[u_idx[p]], x_im[u_idx[p]])
        for e in range(row_re.size):
            zr, zi = row_re[e], row_im[e]
            row_re[e] = zr * d_re[i] - zi * d_im[i]
            row_im[e] = zr * d_im[i] + zi * d_re[i]


@numba.njit(cache=True, error_model="numpy")
def _lu_solve_one(  # noqa: ANN001, ANN202, PLR0913 - numba kernel
    l_ptr, l_idx, l_re, l_im, u_ptr, u_idx, u_re, u_im, d_re, d_im, x_re, x_im
):
    """:func:`lu_solve_batch` for a single column, operation for operation (bit-identical),
    without the per-row loop setup that only pays off across many columns."""
    n = x_re.shape[0]
    for i in range(n):
        acc_re, acc_im = x_re[i, 0], x_im[i, 0]
        for p in range(l_ptr[i], l_ptr[i + 1]):
            br, bi = x_re[l_idx[p], 0], x_im[l_idx[p], 0]
            acc_re -= l_re[p] * br - l_im[p] * bi
            acc_im -= l_re[p] * bi + l_im[p] * br
        x_re[i, 0], x_im[i, 0] = acc_re, acc_im
    for i in range(n - 1, -1, -1):
        acc_re, acc_im = x_re[i, 0], x_im[i, 0]
        for p in range(u_ptr[i], u_ptr[i + 1]):
            br, bi = x_re[u_idx[p], 0], x_im[u_idx[p], 0]
            acc_re -= u_re[p] * br - u_im[p] * bi
            acc_im -= u_re[p] * bi + u_im[p] * br
        x_re[i, 0] = acc_re * d_re[i] - acc_im * d_im[i]
        x_im[i, 0] = acc_re * d_im[i] + acc_im * d_re[i]


@numba.njit(cache=True, error_model="numpy")
def solve_batch(  # noqa: ANN001, ANN201, PLR0912, PLR0913, PLR0915 - numba kernel
    load_p,
    load_q,
    sgen_p,
    sgen_q,
    storage_p,
    active,
    model,
    v_init,
    voltages,
    warm,
    converged_out,
    vm_out,
    loading_out,
    trafo_p_out,
    trafo_q_out,
    scalars_out,
):
    """Solve the net once per env ``e`` with ``active[e]``, all envs in lockstep.

    Row ``e`` of every array belongs to env ``e``: its injections (MW, Mvar), its voltages
    (complex pu, solved in place: the warm start where ``warm[e]``, else ``v_init``) and its
    outputs. Each env's iteration is exactly the one it would run alone (the envs only share
    the loops), and stops when its voltages move less than ``tol`` or diverge. Sets
    ``converged_out[e]`` and ``warm[e]`` (converged and lowest voltage above
    ``WARM_START_MIN_VM``: a collapsed solution is no start point); ``scalars_out[e]`` receives
    the slack's active power (MW) and the lowest bus voltage (pu).
    """
    (
        storage_q,
        load_bus,
        sgen_bus,
        storage_bus,
        base_mva,
        pq,
        slack_current,
        factors,
        max_iter,
        tol,
        slack,
        (ys_ptr, ys_idx, ys_val),
        (yf_ptr, yf_idx, yf_val),
        (yt_ptr, yt_idx, yt_val),
        branch_from,
        line_rows,
        line_scale_from,
        line_scale_to,
        trafo_rows,
        bus_rows,
    ) = model
    perm_r, perm_c = factors[0], factors[1]
    inv_base_mva = 1.0 / base_mva
    n, n_env, n_bus = pq.size, active.size, v_init.size
    # Per PQ bus and env (env innermost): conj(S), V, and the work vector of the solve.
    s_re, s_im = np.zeros((n, n_env)), np.zeros((n, n_env))
    v_re, v_im = np.ones((n, n_env)), np.zeros((n, n_env))
    x_re, x_im = np.empty((n, n_env)), np.empty((n, n_env))
    bus_s = np.empty(n_bus, dtype=np.complex128)
    slack_own = np.zeros((n_env, slack.size))  # P injected at the slack buses themselves
    live = np.zeros(n_env, dtype=np.bool_)
    step2, total2 = np.zeros(n_env), np.zeros(n_env)
    for e in range(n_env):
        converged_out[e] = False
        if not active[e]:
            continue
        live[e] = True
        if not warm[e]:
            voltages[e, :] = v_init
        bus_s[:] = 0.0  # net injections per bus, pu (generation positive)
        for i in range(load_bus.size):
            bus_s[load_bus[i]] -= complex(load_p[e, i], load_q[e, i]) * inv_base_mva
        for i in range(sgen_bus.size):
            bus_s[sgen_bus[i]] += complex(sgen_p[e, i], sgen_q[e, i]) * inv_base_mva
        for i in range(storage_bus.size):
            bus_s[storage_bus[i]] -= complex(storage_p[e, i], storage_q[i]) * inv_base_mva
        for k in range(slack.size):
            slack_own[e, k] = bus_s[slack[k]].real
        for k in range(n):
            s_re[k, e], s_im[k, e] = bus_s[pq[k]].real, -bus_s[pq[k]].imag
            v_re[k, e], v_im[k, e] = voltages[e, pq[k]].real, voltages[e, pq[k]].imag

    for _ in range(max_iter):
        if not live.any():
            break
        for k in range(n):  # currents conj(S / V) plus the slack's part, scattered by perm_r
            row, c_re, c_im = perm_r[k], slack_current[k].real, slack_current[k].imag
            for e in range(n_env):
                vr, vi, sr, si = v_re[k, e], v_im[k, e], s_re[k, e], s_im[k, e]
                inv_abs2 = 1.0 / (vr * vr + vi * vi)
                x_re[row, e] = (sr * vr - si * vi) * inv_abs2 + c_re
                x_im[row, e] = (sr * vi + si * vr) * inv_abs2 + c_im
        lu_solve_batch(factors, x_re, x_im)
        step2[:] = 0.0  # largest squared voltage change per env
        total2[:] = 0.0  # their sum: NaN or huge once an env diverges
        for k in range(n):  # take the new voltages of the live envs (selects, no branches)
            src = perm_c[k]
            for e in range(n_env):
                new_re, new_im = x_re[src, e], x_im[src, e]
                d_re, d_im = new_re - v_re[k, e], new_im - v_im[k, e]
                change2 = d_re * d_re + d_im * d_im
                step2[e] = change2 if change2 > step2[e] else step2[e]
                total2[e] += change2
                v_re[k, e] = new_re if live[e] else v_re[k, e]
                v_im[k, e] = new_im if live[e] else v_im[k, e]
        for e in range(n_env):
            if live[e]:
                if not total2[e] < 1e30:
                    live[e] = False  # diverged
                elif step2[e] < tol * tol:
                    live[e] = False
                    converged_out[e] = True

    for e in range(n_env):
        if not active[e]:
            continue
        v = voltages[e]
        for k in range(n):
            v[pq[k]] = complex(v_re[k, e], v_im[k, e])
        warm[e] = False
        if not converged_out[e]:
            continue
        vm_min = _branch_results(
            v,
            slack_own[e],
            model,
            vm_out[e],
            loading_out[e],
            trafo_p_out[e],
            trafo_q_out[e],
            scalars_out[e],
        )
        warm[e] = vm_min > WARM_START_MIN_VM


@numba.njit(cache=True)
def _branch_results(  # noqa: ANN001, ANN202, PLR0913 - numba kernel
    v, slack_own, model, vm_out, loading_out, trafo_p_out, trafo_q_out, scalars_out
):
    """Bus voltages (pu), line loadings (%), trafo flows (MW, Mvar) and the slack's P of a
    solved net (``model``: :attr:`ZBusPowerFlow.model`); returns the lowest bus voltage."""
    base_mva, slack = model[4], model[10]
    (ys_ptr, ys_idx, ys_val), (yf_ptr, yf_idx, yf_val), (yt_ptr, yt_idx, yt_val) = model[11:14]
    branch_from, line_rows, line_scale_from, line_scale_to, trafo_rows, bus_rows = model[14:20]
    vm_min = math.inf
    for r in range(bus_rows.size):
        vm_out[r] = math.sqrt(_abs2(v[bus_rows[r]]))
        vm_min = min(vm_min, vm_out[r])
    for k in range(line_rows.size):
        row = line_rows[k]
        i_from2 = _abs2(_sparse_row_dot(yf_ptr, yf_idx, yf_val, row, v))
        i_to2 = _abs2(_sparse_row_dot(yt_ptr, yt_idx, yt_val, row, v))
        scale_from2, scale_to2 = line_scale_from[k] ** 2, line_scale_to[k] ** 2
        loading_out[k] = math.sqrt(max(i_from2 * scale_from2, i_to2 * scale_to2))
    for k in range(trafo_rows.size):
        row = trafo_rows[k]
        current = _sparse_row_dot(yf_ptr, yf_idx, yf_val, row, v)
        flow = v[branch_from[row]] * current.conjugate() * base_mva
        trafo_p_out[k] = flow.real
        trafo_q_out[k] = flow.imag
    slack_p = 0.0
    for k in range(slack.size):  # the slack's injection minus what its own bus injects
        bus = slack[k]
        injection = v[bus] * _sparse_row_dot(ys_ptr, ys_idx, ys_val, k, v).conjugate()
        slack_p += injection.real - slack_own[k]
    scalars_out[0] = slack_p * base_mva
    scalars_out[1] = vm_min
    return vm_min
