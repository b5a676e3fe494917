"""Tests of the DSO + microgrids pandapower model."""

import math
import time

import numpy as np
import pandapower as pp
import pandas as pd
import pytest

from tune_grid.grid import feeder_data as fd
from tune_grid.grid.network import (
    DEFAULT_TAP_POS,
    PUBLISHED_TAP_POS,
    build_network,
    initial_voltage_pu,
    positive_sequence,
)

MGS = ("MG1", "MG2", "MG3")
TABLES = ("bus", "line", "load", "shunt", "sgen", "storage", "trafo")


@pytest.fixture(scope="module")
def net() -> pp.pandapowerNet:
    return build_network()


def _bus_name(net: pp.pandapowerNet, idx: int) -> str:
    return str(net.bus.at[idx, "name"])


def test_element_counts(net: pp.pandapowerNet) -> None:
    # 34 DSO nodes + 2 regulator output buses, 13 MG nodes + 1 regulator bus per MG.
    assert len(net.bus) == 34 + 2 + 3 * 14
    dso_names = set(net.bus.loc[net.bus.zone == "DSO", "name"])
    assert dso_names == set(fd.IEEE34_NODES) | {"814r", "852r"}
    for mg in MGS:
        names = set(net.bus.loc[net.bus.zone == mg, "name"])
        assert names == {f"{mg}_{n}" for n in fd.IEEE13_NODES} | {f"{mg}_650r"}
    # 32 DSO segments; 10 segments + the 671-692 switch per MG.
    assert (net.line.zone == "DSO").sum() == 32
    for mg in MGS:
        assert (net.line.zone == mg).sum() == 11
        assert (net.trafo.zone == mg).sum() == 3  # regulator, XFM-1, PCC
    assert (net.trafo.zone == "DSO").sum() == 3  # two regulators, XFM-1
    assert len(net.shunt) == 2 + 3 * 2
    assert len(net.ext_grid) == 1
    assert _bus_name(net, int(net.ext_grid.bus.iat[0])) == "800"
    assert net.ext_grid.vm_pu.iat[0] == pytest.approx(1.05)
    assert net.bus.index.tolist() == list(range(len(net.bus)))


def test_nominal_voltages(net: pp.pandapowerNet) -> None:
    vn = dict(zip(net.bus.name, net.bus.vn_kv, strict=True))
    assert vn["800"] == 24.9 and vn["852r"] == 24.9
    assert vn["888"] == vn["890"] == 4.16
    assert vn["MG2_650"] == 4.16 and vn["MG2_634"] == 0.48


def test_load_totals(net: pp.pandapowerNet) -> None:
    by_zone = net.load.groupby("zone")[["p_nom_mw", "q_nom_mvar"]].sum()
    assert by_zone.loc["DSO", "p_nom_mw"] == pytest.approx(1.769, abs=1e-9)
    assert by_zone.loc["DSO", "q_nom_mvar"] == pytest.approx(1.044, abs=1e-9)
    for mg in MGS:
        assert by_zone.loc[mg, "p_nom_mw"] == pytest.approx(3.466, abs=1e-9)
        assert by_zone.loc[mg, "q_nom_mvar"] == pytest.approx(2.102, abs=1e-9)
    np.testing.assert_array_equal(net.load.p_mw, net.load.p_nom_mw)
    np.testing.assert_array_equal(net.load.q_mvar, net.load.q_nom_mvar)
    # One aggregated load per node: 860 has its spot load plus halves of 834-860 and 860-836.
    load_860 = net.load.loc[net.load.name == "load_860"].iloc[0]
    assert load_860.p_nom_mw == pytest.approx((60 + (16 + 20 + 110) / 2 + (30 + 10 + 42) / 2) / 1e3)
    assert net.load.bus.is_unique
    assert (net.load.const_z_p_percent == 0).all() and (net.load.const_i_p_percent == 0).all()


def test_capacitors(net: pp.pandapowerNet) -> None:
    caps = dict(zip(net.shunt.name, net.shunt.q_mvar, strict=True))
    assert caps["cap_844"] == pytest.approx(-0.3)
    assert caps["cap_848"] == pytest.approx(-0.45)
    for mg in MGS:
        assert caps[f"{mg}_cap_675"] == pytest.approx(-0.6)
        assert caps[f"{mg}_cap_611"] == pytest.approx(-0.1)


def test_positive_sequence_parameters() -> None:
    mile = 1.609344
    r, x, c = positive_sequence(fd.IEEE13_CONFIGS[601])
    z_self = (0.3465 + 0.3375 + 0.3414) / 3 + 1j * (1.0179 + 1.0478 + 1.0348) / 3
    z_mut = (0.1560 + 0.1580 + 0.1535) / 3 + 1j * (0.5017 + 0.4236 + 0.3849) / 3
    assert complex(r, x) == pytest.approx((z_self - z_mut) / mile, rel=1e-12)
    b1 = (6.2998 + 5.9597 + 5.6386) / 3 - (-1.9958 - 1.2595 - 0.7417) / 3
    assert c == pytest.approx(b1 / mile / (2 * math.pi * 60) * 1e3, rel=1e-12)
    # Single-phase lateral: the phase self impedance.
    r, x, _ = positive_sequence(fd.IEEE34_CONFIGS[302])
    assert (r, x) == pytest.approx((2.7995 / mile, 1.4855 / mile))
    # Two-phase: mean self minus the single mutual.
    r, x, _ = positive_sequence(fd.IEEE13_CONFIGS[603])
    assert r == pytest.approx(((1.3294 + 1.3238) / 2 - 0.2066) / mile)
    assert x == pytest.approx(((1.3471 + 1.3569) / 2 - 0.4591) / mile)


def test_lines(net: pp.pandapowerNet) -> None:
    line = net.line.set_index("name")
    assert line.at["806-808", "length_km"] == pytest.approx(32230 * 0.0003048)
    assert line.at["806-808", "max_i_ka"] == pytest.approx(0.230)
    assert line.at["820-822", "max_i_ka"] == pytest.approx(0.140)
    assert line.at["816-824", "max_i_ka"] == pytest.approx(0.180)
    assert line.at["MG1_650-632", "max_i_ka"] == pytest.approx(0.730)
    assert line.at["MG2_632-633", "max_i_ka"] == pytest.approx(0.340)
    assert line.at["MG3_692-675", "max_i_ka"] == pytest.approx(0.260)
    assert line.at["MG3_684-652", "max_i_ka"] == pytest.approx(0.165)
    assert line.at["MG1_671-692", "length_km"] == pytest.approx(0.0003048)
    # Regulated segments start at the regulator output bus.
    assert _bus_name(net, line.at["814-850", "from_bus"]) == "814r"
    assert _bus_name(net, line.at["MG2_650-632", "from_bus"]) == "MG2_650r"
    assert (net.line.c_nf_per_km > 0).all() and (net.line.r_ohm_per_km > 0).all()


def test_transformers(net: pp.pandapowerNet) -> None:
    tr = net.trafo.set_index("name")
    xfm = tr.loc["XFM-1"]
    assert (xfm.sn_mva, xfm.vn_hv_kv, xfm.vn_lv_kv) == (0.5, 24.9, 4.16)
    assert xfm.vk_percent == pytest.approx(math.hypot(1.9, 4.08))
    assert xfm.vkr_percent == pytest.approx(1.9)
    for mg, node in zip(MGS, ("822", "848", "856"), strict=True):
        pcc = tr.loc[f"{mg}_pcc"]
        assert pcc.zone == mg
        assert _bus_name(net, pcc.hv_bus) == node
        assert _bus_name(net, pcc.lv_bus) == f"{mg}_650"
        assert (pcc.sn_mva, pcc.vn_hv_kv, pcc.vn_lv_kv) == (5.0, 24.9, 4.16)
        assert pcc.vk_percent == pytest.approx(math.hypot(1, 8))
        mg_xfm = tr.loc[f"{mg}_XFM-1"]
        assert mg_xfm.vk_percent == pytest.approx(math.hypot(1.1, 2.0))
        assert tr.loc[f"{mg}_REG1", "tap_pos"] == 0.0
        assert PUBLISHED_TAP_POS[f"{mg}_REG1"] == pytest.approx((10 + 8 + 11) / 3)
    assert tr.loc["REG1", "tap_pos"] == 0.0
    assert PUBLISHED_TAP_POS["REG1"] == pytest.approx((12 + 5 + 5) / 3)
    assert tr.loc["REG2", "tap_pos"] == 0.0
    assert tr.loc["REG1", "tap_step_percent"] == pytest.approx(0.625)
    assert (tr.loc[tr.index.str.contains("REG"), "tap_side"] == "lv").all()
    assert (net.trafo.pfe_kw == 0).all() and (net.trafo.i0_percent == 0).all()


def test_regulator_tap_override() -> None:
    assert DEFAULT_TAP_POS["REG2"] == 0.0 and PUBLISHED_TAP_POS["REG2"] == 12.0
    net = build_network(PUBLISHED_TAP_POS)
    tr = net.trafo.set_index("name")
    assert tr.at["REG2", "tap_pos"] == 12.0
    assert tr.at["MG3_REG1", "tap_pos"] == pytest.approx(29 / 3)
    with pytest.raises(ValueError, match="REG9"):
        build_network({"REG9": 1.0})
    # The published taps still solve (from the stored tap-aware start profile).
    net.load["p_mw"] = net.load.p_nom_mw * 0.2
    net.load["q_mvar"] = net.load.q_nom_mvar * 0.2
    pp.runpp(net, numba=False)
    assert net.converged


def test_microgrid_devices(net: pp.pandapowerNet) -> None:
    sgen = net.sgen.set_index("name")
    sto = net.storage.set_index("name")
    for mg, dg_max in zip(MGS, (0.66, 0.60, 0.50), strict=True):
        ess = sto.loc[f"{mg}_ess"]
        assert _bus_name(net, ess.bus) == f"{mg}_645"
        assert (ess.max_e_mwh, ess.max_p_mw, ess.min_p_mw, ess.p_mw) == (2.0, 0.5, -0.5, 0.0)
        assert ess.zone == mg
        dg = sgen.loc[f"{mg}_dg"]
        assert _bus_name(net, dg.bus) == f"{mg}_675"
        assert (dg.kind, dg.sn_mva, dg.max_p_mw, dg.p_mw) == ("DG", 1.0, dg_max, 0.0)
        pv, wt = sgen.loc[f"{mg}_pv"], sgen.loc[f"{mg}_wt"]
        assert _bus_name(net, pv.bus) == f"{mg}_652" and pv.kind == "PV"
        assert _bus_name(net, wt.bus) == f"{mg}_645" and wt.kind == "WT"
        assert pv.max_p_mw == wt.max_p_mw == 0.1
        assert (sgen.loc[[f"{mg}_dg", f"{mg}_pv", f"{mg}_wt"], "zone"] == mg).all()
    assert len(net.sgen) == 9 and len(net.storage) == 3


def test_zones(net: pp.pandapowerNet) -> None:
    for table in TABLES:
        zones = set(net[table]["zone"])
        assert zones <= {"DSO", *MGS}, table
    for table in ("bus", "line", "load", "shunt", "trafo"):
        assert set(net[table]["zone"]) == {"DSO", *MGS}, table
    # An element's zone is the zone of its bus (the PCC trafo: of its LV bus).
    bus_zone = net.bus.zone
    for table in ("load", "shunt", "sgen", "storage"):
        np.testing.assert_array_equal(net[table].zone, bus_zone.loc[net[table].bus])
    np.testing.assert_array_equal(net.line.zone, bus_zone.loc[net.line.from_bus])
    np.testing.assert_array_equal(net.trafo.zone, bus_zone.loc[net.trafo.lv_bus])


def test_deterministic_and_fast() -> None:
    times, nets = [], []
    for _ in range(2):
        t0 = time.perf_counter()
        nets.append(build_network())
        times.append(time.perf_counter() - t0)
    assert min(times) < 1.0
    for table in (*TABLES, "ext_grid"):
        pd.testing.assert_frame_equal(nets[0][table], nets[1][table])


def test_initial_voltage_profile(net: pp.pandapowerNet) -> None:
    vm = initial_voltage_pu(net)
    name = list(net.bus.name)
    assert vm[name.index("800")] == pytest.approx(1.05)
    assert vm[name.index("850")] == pytest.approx(1.05)  # neutral taps by default
    vm_published = initial_voltage_pu(build_network(PUBLISHED_TAP_POS))
    assert vm_published[name.index("850")] == pytest.approx(1.05 * (1 + 0.00625 * 22 / 3))
    assert vm[name.index("MG1_632")] == pytest.approx(vm[name.index("822")])
    vm = initial_voltage_pu(build_network(PUBLISHED_TAP_POS))
    assert vm[name.index("MG1_632")] == pytest.approx(
        vm[name.index("822")] * (1 + 0.00625 * 29 / 3)
    )


def test_runpp_at_fifth_of_nominal_load() -> None:
    net = build_network(load_scale=0.2)
    assert net.load.p_mw.sum() == pytest.approx(0.2 * (1.769 + 3 * 3.466))
    assert net.shunt.q_mvar.sum() == pytest.approx(-0.2 * (0.75 + 3 * 0.7))
    pp.runpp(net, numba=False)  # uses the start profile stored in net.user_pf_options
    assert net.converged
    vm = net.res_bus.vm_pu
    assert vm.between(0.8, 1.06).all(), vm.describe()
    assert net.res_ext_grid.p_mw.iat[0] > 0.2 * (1.769 + 3 * 3.466)  # loads plus losses
    mg_buses = (net.bus.zone != "DSO").to_numpy()
    # At the 2023 peak (profile 1.0) with every device idle the microgrids sag below 0.95 pu:
    # the undervoltage the agents must prevent with their DG and batteries.
    assert vm[mg_buses].max() < 0.95
    # At a typical hour (profile 0.45) the same idle network sits inside [0.95, 1.05] pu.
    net.load["p_mw"] *= 0.45
    net.load["q_mvar"] *= 0.45
    pp.runpp(net, numba=False)
    assert vm.index.equals(net.res_bus.index)
    assert net.res_bus.vm_pu[mg_buses].between(0.95, 1.05).all()
