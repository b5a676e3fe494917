"""Tests of the power-flow solvers: the compiled ones (Z-bus, lightsim2grid) against pandapower."""

import numpy as np
import pandapower as pp
import pytest

from tune_grid.grid.lightsim import LightSim2GridPowerFlow
from tune_grid.grid.network import build_network
from tune_grid.grid.powerflow import (
    PandapowerPowerFlow,
    PowerFlowResult,
    PowerFlowSolver,
    make_solver,
)
from tune_grid.grid.zbus import ZBusPowerFlow

Inputs = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
N_POINTS = 60
COMPILED = [ZBusPowerFlow, LightSim2GridPowerFlow]
compiled_solvers = pytest.mark.parametrize("solver_class", COMPILED, ids=["zbus", "lightsim2grid"])


@pytest.fixture(scope="module")
def net() -> pp.pandapowerNet:
    return build_network()


def random_point(net: pp.pandapowerNet, rng: np.random.Generator) -> Inputs:
    """Loads 0-1.2 x 0.2 x nominal, DG p in [0, max] and q in +-0.3, PV/WT 0-0.1, ESS +-0.5."""
    factor = rng.uniform(0.0, 1.2, len(net.load)) * 0.2
    kind = net.sgen.kind.to_numpy()
    sgen_p = rng.uniform(0.0, 1.0, len(kind)) * net.sgen.max_p_mw.to_numpy()
    sgen_q = np.where(kind == "DG", rng.uniform(-0.3, 0.3, len(kind)), 0.0)
    return (
        net.load.p_nom_mw.to_numpy() * factor,
        net.load.q_nom_mvar.to_numpy() * factor,
        sgen_p,
        sgen_q,
        rng.uniform(-0.5, 0.5, len(net.storage)),
    )


@pytest.fixture(scope="module")
def points(net: pp.pandapowerNet) -> list[Inputs]:
    rng = np.random.default_rng(12345)
    return [random_point(net, rng) for _ in range(N_POINTS)]


@pytest.fixture(scope="module")
def reference(net: pp.pandapowerNet, points: list[Inputs]) -> list[PowerFlowResult]:
    solver = PandapowerPowerFlow(net)
    return [solver.solve(*p) for p in points]


def absurd_point(net: pp.pandapowerNet, base: Inputs) -> Inputs:
    load_p = base[0].copy()
    load_p[net.load.index.get_loc(net.load.index[net.load.name == "MG1_load_671"][0])] = 500.0
    return (load_p, *base[1:])


def assert_same(a: PowerFlowResult, b: PowerFlowResult) -> None:
    assert a.converged and b.converged
    np.testing.assert_allclose(a.vm_pu, b.vm_pu, rtol=0, atol=1e-6)
    np.testing.assert_allclose(a.line_loading_percent, b.line_loading_percent, rtol=0, atol=1e-4)
    np.testing.assert_allclose(a.trafo_p_hv_mw, b.trafo_p_hv_mw, rtol=0, atol=1e-6)
    np.testing.assert_allclose(a.trafo_q_hv_mvar, b.trafo_q_hv_mvar, rtol=0, atol=1e-6)
    assert a.ext_grid_p_mw == pytest.approx(b.ext_grid_p_mw, abs=1e-6)


def test_result_shapes(net: pp.pandapowerNet, reference: list[PowerFlowResult]) -> None:
    res = reference[0]
    assert res.vm_pu.shape == (len(net.bus),)
    assert res.line_loading_percent.shape == (len(net.line),)
    assert res.trafo_p_hv_mw.shape == res.trafo_q_hv_mvar.shape == (len(net.trafo),)
    assert isinstance(res.ext_grid_p_mw, float)
    assert all(r.converged for r in reference)


@compiled_solvers
def test_compiled_solver_matches_pandapower(
    net: pp.pandapowerNet,
    points: list[Inputs],
    reference: list[PowerFlowResult],
    solver_class: type[PowerFlowSolver],
) -> None:
    fast = solver_class(net)
    for point, ref in zip(points, reference, strict=True):
        assert_same(fast.solve(*point), ref)


def test_reference_matches_plain_runpp(net: pp.pandapowerNet, points: list[Inputs]) -> None:
    """The reference solver reports exactly what pandapower's result tables say."""
    load_p, load_q, sgen_p, sgen_q, sto_p = points[3]
    ref = PandapowerPowerFlow(net).solve(*points[3])
    plain = build_network()
    plain.load["p_mw"], plain.load["q_mvar"] = load_p, load_q
    plain.sgen["p_mw"], plain.sgen["q_mvar"] = sgen_p, sgen_q
    plain.storage["p_mw"] = sto_p
    pp.runpp(plain, numba=False, tolerance_mva=1e-8)
    np.testing.assert_allclose(ref.vm_pu, plain.res_bus.vm_pu, atol=1e-8)
    np.testing.assert_allclose(ref.line_loading_percent, plain.res_line.loading_percent, atol=1e-6)
    np.testing.assert_allclose(ref.trafo_p_hv_mw, plain.res_trafo.p_hv_mw, atol=1e-8)
    assert ref.ext_grid_p_mw == pytest.approx(plain.res_ext_grid.p_mw.sum(), abs=1e-8)


@compiled_solvers
def test_sign_conventions(
    net: pp.pandapowerNet, points: list[Inputs], solver_class: type[PowerFlowSolver]
) -> None:
    fast = solver_class(net)
    load_p, load_q, sgen_p, sgen_q, sto_p = points[0]
    base = fast.solve(load_p, load_q, sgen_p, sgen_q, sto_p)
    charging = sto_p.copy()
    charging[0] += 0.2  # positive storage p = charging = more import
    more = fast.solve(load_p, load_q, sgen_p, sgen_q, charging)
    assert 0.19 < more.ext_grid_p_mw - base.ext_grid_p_mw < 0.25
    gen = sgen_p.copy()
    gen[0] += 0.2  # positive sgen p = generation = less import
    less = fast.solve(load_p, load_q, gen, sgen_q, sto_p)
    assert 0.15 < base.ext_grid_p_mw - less.ext_grid_p_mw < 0.3
    mg1_pcc = int(np.flatnonzero(net.trafo.name == "MG1_pcc")[0])
    assert more.trafo_p_hv_mw[mg1_pcc] > base.trafo_p_hv_mw[mg1_pcc]  # HV side, into the MG


@compiled_solvers
def test_warm_start_equals_cold(
    net: pp.pandapowerNet, points: list[Inputs], solver_class: type[PowerFlowSolver]
) -> None:
    warm = solver_class(net)
    for point in points[:10]:
        warm.solve(*point)
    for point in points[10:20]:
        cold = solver_class(net).solve(*point)
        hot = warm.solve(*point)
        np.testing.assert_allclose(hot.vm_pu, cold.vm_pu, rtol=0, atol=1e-8)
        np.testing.assert_allclose(
            hot.line_loading_percent, cold.line_loading_percent, rtol=0, atol=1e-5
        )
        np.testing.assert_allclose(hot.trafo_p_hv_mw, cold.trafo_p_hv_mw, rtol=0, atol=1e-7)


@compiled_solvers
def test_results_are_not_overwritten(
    net: pp.pandapowerNet, points: list[Inputs], solver_class: type[PowerFlowSolver]
) -> None:
    fast = solver_class(net)
    first = fast.solve(*points[0])
    saved = [first.vm_pu.copy(), first.line_loading_percent.copy(), first.trafo_p_hv_mw.copy()]
    inputs = [a.copy() for a in points[1]]
    fast.solve(*points[1])
    for before, after in zip(
        saved, [first.vm_pu, first.line_loading_percent, first.trafo_p_hv_mw], strict=True
    ):
        np.testing.assert_array_equal(before, after)
    for before, after in zip(inputs, points[1], strict=True):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("backend", ["fast", "lightsim2grid", "pandapower"])
def test_divergence_is_reported_and_recovered(
    net: pp.pandapowerNet,
    points: list[Inputs],
    reference: list[PowerFlowResult],
    backend: str,
) -> None:
    solver = make_solver(net, backend)
    assert_same(solver.solve(*points[0]), reference[0])
    bad = solver.solve(*absurd_point(net, points[1]))
    assert not bad.converged
    assert bad.vm_pu.shape == (len(net.bus),) and np.isnan(bad.vm_pu).all()
    assert np.isnan(bad.line_loading_percent).all() and np.isnan(bad.trafo_p_hv_mw).all()
    assert np.isnan(bad.ext_grid_p_mw)
    assert_same(solver.solve(*points[2]), reference[2])


def test_make_solver(net: pp.pandapowerNet) -> None:
    assert isinstance(make_solver(net, "fast"), ZBusPowerFlow)
    assert isinstance(make_solver(net, "lightsim2grid"), LightSim2GridPowerFlow)
    assert isinstance(make_solver(net, "pandapower"), PandapowerPowerFlow)
    with pytest.raises(ValueError, match="'fast', 'lightsim2grid', 'pandapower'"):
        make_solver(net, "newton")


def test_reference_does_not_touch_the_net(net: pp.pandapowerNet, points: list[Inputs]) -> None:
    before = net.load.p_mw.copy()
    PandapowerPowerFlow(net).solve(*points[0])
    np.testing.assert_array_equal(net.load.p_mw, before)
    assert "res_bus" not in net or net.res_bus.empty


def test_zbus_matches_pandapower_on_a_whole_day_of_env_steps() -> None:
    """Z-bus and pandapower envs driven by the same actions see the same grid all day."""
    from tune_grid import make_env

    fast_env = make_env(powerflow="fast", split="test")
    ref_env = make_env(powerflow="pandapower", split="test")
    rng = np.random.default_rng(7)
    fast_env.reset(options={"day": 200, "soc": 0.5})
    ref_env.reset(options={"day": 200, "soc": 0.5})
    for _ in range(24):
        actions = {a: rng.uniform(-1, 1, 3).astype(np.float32) for a in fast_env.possible_agents}
        obs_f, rew_f, _, _, info_f = fast_env.step(actions)
        obs_r, rew_r, _, _, info_r = ref_env.step(actions)
        for agent in fast_env.possible_agents:
            np.testing.assert_allclose(obs_f[agent], obs_r[agent], atol=1e-5)
            assert rew_f[agent] == pytest.approx(rew_r[agent], abs=1e-6)
            assert info_f[agent]["exchange_mw"] == pytest.approx(
                info_r[agent]["exchange_mw"], abs=1e-6
            )


def test_zbus_lu_solve_on_a_nonsymmetric_matrix() -> None:
    """The numba triangular solves apply SuperLU's row and column permutations the right way
    round (the admittance matrix is symmetric, so a mix-up would not show against pandapower),
    for several right-hand sides at once (the batched envs' layout: one column per env)."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    from tune_grid.grid.zbus import _TriangularFactors, lu_solve_batch

    n = 30
    real = sp.random(n, n, density=0.1, random_state=1, format="csc") + 4 * sp.eye(n)
    matrix = (real + 1j * sp.random(n, n, density=0.1, random_state=2)).tocsc()
    assert abs(matrix - matrix.T).max() > 0.1
    f = _TriangularFactors(spla.splu(matrix, permc_spec="MMD_AT_PLUS_A"))
    assert not np.array_equal(f.perm_r, np.arange(n)) and not np.array_equal(f.perm_c, np.arange(n))
    rng = np.random.default_rng(0)
    b = rng.normal(size=(n, 4)) + 1j * rng.normal(size=(n, 4))
    work = np.empty_like(b)
    work[f.perm_r] = b  # scattered by perm_r on entry
    x_re, x_im = work.real.copy(), work.imag.copy()
    lu_solve_batch(f.arrays, x_re, x_im)
    x = (x_re + 1j * x_im)[f.perm_c]  # gathered by perm_c on exit
    np.testing.assert_allclose(x, spla.spsolve(matrix, b), atol=1e-10)


def test_zbus_clones_share_the_model_but_not_the_state(
    net: pp.pandapowerNet, points: list[Inputs], reference: list[PowerFlowResult]
) -> None:
    original = ZBusPowerFlow(net)
    twin = original.clone()
    for i in range(6):  # interleaved solves of different points must not leak into each other
        assert_same(original.solve(*points[i]), reference[i])
        assert_same(twin.solve(*points[-1 - i]), reference[-1 - i])
    bad = twin.solve(*absurd_point(net, points[1]))
    assert not bad.converged
    assert_same(original.solve(*points[7]), reference[7])
