"""Balanced positive-sequence pandapower model: IEEE 34-bus DSO feeder plus three IEEE 13-bus MGs.

Modeling choices
----------------
* Balanced positive sequence. Every segment is modeled as a three-phase pandapower line whose
  r, x (ohm/km) and c (nF/km, 60 Hz) are positive-sequence values derived from the IEEE phase
  matrices: z1 = mean(self) - mean(mutual) over the phases present (same rule for the shunt
  susceptance b1). Three-phase configs (300, 301, 601, 602, 606) use all three phases, two-phase
  configs (603, 604) use the two phases present, and single-phase laterals (302, 303, 304, 605,
  607) have no mutual terms, so z1 = the phase self impedance. Laterals are therefore treated as
  if they were three-phase lines of the same conductor: their load (summed over phases) flows
  through an impedance equal to the phase self impedance; this keeps the feeder topology and
  lengths but underestimates the voltage drop of a truly single-phase lateral.
* Line ``max_i_ka`` is the conductor ampacity (1/0 ACSR 230 A, #2 ACSR 180 A, #4 ACSR 140 A,
  556.5 ACSR 730 A, 4/0 ACSR 340 A, 250 kcmil AA 260 A, 1/0 AA 165 A).
* Loads: every spot load and every distributed load (split half to each end node of its
  segment) is summed over the phases and aggregated per node into one constant-PQ pandapower
  load (the Y/D and PQ/I/Z models of the documents are ignored). The nominal values are kept in
  the ``p_nom_mw`` / ``q_nom_mvar`` columns; ``p_mw`` / ``q_mvar`` start at nominal.
* Shunt capacitors are constant-impedance pandapower ``shunt`` elements (q_mvar < 0), sized
  like the loads they compensate: ``build_network(load_scale=s)`` multiplies both the load
  set-points and the capacitor banks by ``s`` (at 0.2 x load, full-size banks would push
  every microgrid above 1.09 pu).
* Voltage regulators are modeled at fixed taps: each is a near-ideal transformer (10 MVA,
  vk = 0.01 %, vkr = 0.001 %, no losses) from the regulator node to an extra bus named
  ``<node>r`` ("814r", "852r", "MG1_650r", ...), with ``tap_side="lv"``, a 0.625 % step and
  a fixed (fractional) ``tap_pos``, so the load side is raised by 0.00625 pu per step. The
  document's segment (814-850, 852-832, 650-632) then runs from the extra bus to its far node
  with its real length. This adds 2 DSO buses and 1 bus per MG (34 + 2 + 3 * 14 = 78 buses).
  Taps (``DEFAULT_TAP_POS``): every regulator at neutral. The published taps (REG1 12/5/5,
  REG2 13/11/12, the 13-bus 650-632 regulator 10/8/11) compensate the stand-alone feeders at
  full load; here the feeders run at ``load_scale`` (0.2) of it, so with the published taps the
  microgrid buses sit at 1.09-1.20 pu over a year of real load profiles (every hour outside
  [0.95, 1.05] pu under do-nothing). With neutral taps and the capacitors scaled (below), the
  median microgrid voltage under do-nothing is ~0.99 pu and about 11 % of microgrid-hours
  leave the band (evening peaks), which the agents can fix with their DG and battery.
  ``build_network(regulator_tap_pos=PUBLISHED_TAP_POS)`` gives the published averages.
  Because of these off-nominal ratios on near-zero impedances, a flat start diverges; the
  net's ``user_pf_options`` carry a tap-aware start profile (``initial_voltage_pu``).
* The 34-bus substation transformer is not modeled: the slack (``ext_grid``, vm = 1.05 pu) is
  at bus 800. The in-line XFM-1 (832-888, 24.9/4.16 kV, 500 kVA, R 1.9 %, X 4.08 %) is kept.
* Each microgrid (IEEE 13-bus, 4.16 kV) replaces its 115 kV substation transformer by a PCC
  transformer ``<mg>_pcc`` (24.9/4.16 kV, 5 MVA, R 1 %, X 8 %, zone of the MG) whose HV side
  is the DSO bus (MG1: 822, MG2: 848, MG3: 856) and LV side the MG bus 650. The 633-634
  transformer is 4.16/0.48 kV, 500 kVA, R 1.1 %, X 2 %. The closed switch 671-692 is a 1 ft
  line of config 601 (lightsim2grid does not support pandapower switches).
* Transformers have no magnetizing branch (pfe = i0 = 0) and no phase shift.
* MG devices (p = 0 initially): battery ``<mg>_ess`` (storage, bus 645, 2 MWh, +-0.5 MW,
  positive p = charging), diesel ``<mg>_dg`` (sgen, bus 675, 1 MVA, p max 0.66/0.60/0.50 MW,
  |q| <= 1 Mvar), PV ``<mg>_pv`` (sgen, bus 652, 0.1 MW) and wind ``<mg>_wt`` (sgen, bus
  645, 0.1 MW). ``net.sgen.kind`` is "DG", "PV" or "WT".
* Every bus, line, load, shunt, sgen, storage and trafo carries a ``zone`` column
  ("DSO", "MG1", "MG2", "MG3"). Element names: DSO buses "800".."890", MG buses "MG1_645".
"""

import math
from collections import deque
from collections.abc import Mapping, Sequence

import numpy as np
import pandapower as pp
from pandapower.auxiliary import pandapowerNet

from tune_grid.grid import feeder_data as fd

MILE_KM = 1.609344
FT_KM = 0.0003048
F_HZ = 60.0
DSO_ZONE = "DSO"
#: (name, DSO bus of the PCC, diesel generator max p in MW)
MG_ATTACHMENTS: tuple[tuple[str, str, float], ...] = (
    ("MG1", "822", 0.66),
    ("MG2", "848", 0.60),
    ("MG3", "856", 0.50),
)
EXT_GRID_VM_PU = 1.05
REG_SN_MVA = 10.0
REG_VK_PERCENT = 0.01
REG_VKR_PERCENT = 0.001
REG_TAP_LIMIT = 16
#: Average of the published final phase taps of every regulator, by trafo name.
PUBLISHED_TAP_POS: dict[str, float] = {
    **{f"REG{i + 1}": sum(r.final_taps) / 3 for i, r in enumerate(fd.IEEE34_REGULATORS)},
    **{
        f"{mg}_REG{i + 1}": sum(r.final_taps) / 3
        for mg, _, _ in MG_ATTACHMENTS
        for i, r in enumerate(fd.IEEE13_REGULATORS)
    },
}
#: Fixed taps used by default: REG1 (814-850) at its published average, the others neutral.
DEFAULT_TAP_POS: dict[str, float] = dict.fromkeys(PUBLISHED_TAP_POS, 0.0)
PCC = fd.Transformer("DSO", "650", 5000.0, 24.9, 4.16, 1.0, 8.0)
SWITCH_LENGTH_FT = 1.0
SWITCH_CONFIG = 601
ESS_MAX_E_MWH = 2.0
ESS_MAX_P_MW = 0.5
DG_SN_MVA = 1.0
DG_MAX_Q_MVAR = DG_SN_MVA  # rating bound; the P-dependent capability is the env's job
RES_MAX_P_MW = 0.1


def positive_sequence(config: fd.LineConfig) -> tuple[float, float, float]:
    """Return positive-sequence (r ohm/km, x ohm/km, c nF/km) of a line configuration."""

    def seq(tri: Sequence[Sequence[complex]]) -> complex:
        selfs = [row[0] for row in tri]
        mutuals = [v for row in tri for v in row[1:]]
        z1 = sum(selfs) / len(selfs)
        if mutuals:
            z1 -= sum(mutuals) / len(mutuals)
        return complex(z1)

    z1 = seq(config.z_ohm_per_mile) / MILE_KM
    b1_us_per_km = seq(config.b_us_per_mile).real / MILE_KM
    c_nf_per_km = b1_us_per_km / (2.0 * math.pi * F_HZ) * 1e3
    return z1.real, z1.imag, c_nf_per_km


def _trafo_vk(t: fd.Transformer) -> tuple[float, float]:
    """Return (vk_percent, vkr_percent) of a transformer given R and X in percent."""
    return math.hypot(t.r_percent, t.x_percent), t.r_percent


def _add_feeder(
    net: pandapowerNet,
    zone: str,
    prefix: str,
    nodes: Sequence[str],
    kv: float,
    node_kv: dict[str, float],
    configs: dict[int, fd.LineConfig],
    segments: Sequence[fd.Segment],
    switches: Sequence[tuple[str, str]],
    regulators: Sequence[fd.Regulator],
    xfm: fd.Transformer,
    spot_loads: Sequence[fd.SpotLoad],
    dist_loads: Sequence[fd.DistributedLoad],
    capacitors: dict[str, fd.PerPhase],
    tap_pos: Mapping[str, float],
) -> dict[str, int]:
    """Add one feeder's buses, lines, transformers, loads and shunts; return node -> bus index."""
    reg_nodes = [r.node_a + "r" for r in regulators]
    all_nodes = list(nodes) + reg_nodes
    vn = [node_kv.get(n, kv) for n in all_nodes]
    idx = pp.create_buses(net, len(all_nodes), vn, name=[prefix + n for n in all_nodes], zone=zone)
    bus = {n: int(i) for n, i in zip(all_nodes, idx, strict=True)}

    # Lines: the regulated segments start at the regulator's output bus.
    reg_start = {(r.node_a, r.node_b): r.node_a + "r" for r in regulators}
    rows: list[tuple[str, str, float, int]] = []
    for s in segments:
        start = reg_start.get((s.node_a, s.node_b), s.node_a)
        rows.append((start, s.node_b, s.length_ft, s.config))
    rows += [(a, b, SWITCH_LENGTH_FT, SWITCH_CONFIG) for a, b in switches]
    params = [positive_sequence(configs[c]) for _, _, _, c in rows]
    pp.create_lines_from_parameters(
        net,
        [bus[a] for a, _, _, _ in rows],
        [bus[b] for _, b, _, _ in rows],
        [ft * FT_KM for _, _, ft, _ in rows],
        [p[0] for p in params],
        [p[1] for p in params],
        [p[2] for p in params],
        [configs[c].ampacity_a / 1e3 for _, _, _, c in rows],
        name=[f"{prefix}{s.node_a}-{s.node_b}" for s in segments]
        + [f"{prefix}{a}-{b}" for a, b in switches],
        zone=zone,
    )

    # Transformers: regulators (fixed fractional taps) and the in-line transformer.
    vk, vkr = _trafo_vk(xfm)
    n_reg = len(regulators)
    reg_names = [f"{prefix}REG{i + 1}" for i in range(n_reg)]
    pp.create_transformers_from_parameters(
        net,
        [bus[r.node_a] for r in regulators] + [bus[xfm.node_hv]],
        [bus[r.node_a + "r"] for r in regulators] + [bus[xfm.node_lv]],
        sn_mva=[REG_SN_MVA] * n_reg + [xfm.kva / 1e3],
        vn_hv_kv=[kv] * n_reg + [xfm.kv_hv],
        vn_lv_kv=[kv] * n_reg + [xfm.kv_lv],
        vkr_percent=[REG_VKR_PERCENT] * n_reg + [vkr],
        vk_percent=[REG_VK_PERCENT] * n_reg + [vk],
        pfe_kw=0.0,
        i0_percent=0.0,
        shift_degree=0.0,
        tap_side=["lv"] * n_reg + ["hv"],
        tap_neutral=0.0,
        tap_step_degree=0.0,
        tap_min=[-REG_TAP_LIMIT] * n_reg + [0],
        tap_max=[REG_TAP_LIMIT] * n_reg + [0],
        tap_step_percent=[fd.REGULATOR_STEP_PU * 100] * n_reg + [0.0],
        tap_pos=[float(tap_pos[n]) for n in reg_names] + [0.0],
        tap_changer_type="Ratio",
        name=reg_names + [f"{prefix}XFM-1"],
        zone=zone,
    )

    # Loads aggregated per node: spot loads plus half of each adjacent distributed load.
    p_kw = dict.fromkeys(all_nodes, 0.0)
    q_kvar = dict.fromkeys(all_nodes, 0.0)
    for sl in spot_loads:
        p_kw[sl.node] += sum(sl.kw)
        q_kvar[sl.node] += sum(sl.kvar)
    for dl in dist_loads:
        for n in (dl.node_a, dl.node_b):
            p_kw[n] += sum(dl.kw) / 2
            q_kvar[n] += sum(dl.kvar) / 2
    loaded = [n for n in all_nodes if p_kw[n] != 0.0 or q_kvar[n] != 0.0]
    p_mw = [p_kw[n] / 1e3 for n in loaded]
    q_mvar = [q_kvar[n] / 1e3 for n in loaded]
    pp.create_loads(
        net,
        [bus[n] for n in loaded],
        p_mw,
        q_mvar,
        name=[f"{prefix}load_{n}" for n in loaded],
        zone=zone,
        p_nom_mw=p_mw,
        q_nom_mvar=q_mvar,
    )

    caps = list(capacitors)
    pp.create_shunts(
        net,
        [bus[n] for n in caps],
        q_mvar=[-sum(capacitors[n]) / 1e3 for n in caps],
        vn_kv=[node_kv.get(n, kv) for n in caps],
        name=[f"{prefix}cap_{n}" for n in caps],
        zone=zone,
    )
    return bus


def _add_microgrid(
    net: pandapowerNet, mg: str, dso_bus: int, dg_max_p_mw: float, tap_pos: Mapping[str, float]
) -> None:
    """Add one IEEE 13-bus microgrid, its PCC transformer and its devices."""
    bus = _add_feeder(
        net,
        zone=mg,
        prefix=f"{mg}_",
        nodes=fd.IEEE13_NODES,
        kv=fd.IEEE13_KV,
        node_kv=fd.IEEE13_NODE_KV,
        configs=fd.IEEE13_CONFIGS,
        segments=fd.IEEE13_SEGMENTS,
        switches=fd.IEEE13_SWITCHES,
        regulators=fd.IEEE13_REGULATORS,
        xfm=fd.IEEE13_XFM,
        spot_loads=fd.IEEE13_SPOT_LOADS,
        dist_loads=fd.IEEE13_DISTRIBUTED_LOADS,
        capacitors=fd.IEEE13_CAPACITORS_KVAR,
        tap_pos=tap_pos,
    )
    vk, vkr = _trafo_vk(PCC)
    pp.create_transformer_from_parameters(
        net,
        dso_bus,
        bus[PCC.node_lv],
        sn_mva=PCC.kva / 1e3,
        vn_hv_kv=PCC.kv_hv,
        vn_lv_kv=PCC.kv_lv,
        vkr_percent=vkr,
        vk_percent=vk,
        pfe_kw=0.0,
        i0_percent=0.0,
        shift_degree=0.0,
        tap_side="hv",
        tap_neutral=0.0,
        tap_step_degree=0.0,
        tap_min=0,
        tap_max=0,
        tap_step_percent=0.0,
        tap_pos=0.0,
        tap_changer_type="Ratio",
        name=f"{mg}_pcc",
        zone=mg,
    )
    pp.create_storage(
        net,
        bus["645"],
        p_mw=0.0,
        max_e_mwh=ESS_MAX_E_MWH,
        sn_mva=ESS_MAX_P_MW,
        soc_percent=50.0,
        min_e_mwh=0.0,
        name=f"{mg}_ess",
        max_p_mw=ESS_MAX_P_MW,
        min_p_mw=-ESS_MAX_P_MW,
        max_q_mvar=0.0,
        min_q_mvar=0.0,
        controllable=True,
        zone=mg,
    )
    pp.create_sgens(
        net,
        [bus["675"], bus["652"], bus["645"]],
        p_mw=0.0,
        q_mvar=0.0,
        sn_mva=[DG_SN_MVA, RES_MAX_P_MW, RES_MAX_P_MW],
        name=[f"{mg}_dg", f"{mg}_pv", f"{mg}_wt"],
        max_p_mw=[dg_max_p_mw, RES_MAX_P_MW, RES_MAX_P_MW],
        min_p_mw=0.0,
        max_q_mvar=[DG_MAX_Q_MVAR, 0.0, 0.0],
        min_q_mvar=[-DG_MAX_Q_MVAR, 0.0, 0.0],
        controllable=True,
        zone=mg,
        kind=["DG", "PV", "WT"],
    )


def build_network(
    regulator_tap_pos: Mapping[str, float] | None = None, load_scale: float = 1.0
) -> pandapowerNet:
    """Build the DSO (IEEE 34-bus) + three microgrids (IEEE 13-bus) pandapower network.

    ``load_scale`` multiplies the load set-points and the shunt capacitor banks (the nominal
    loads stay in ``p_nom_mw`` / ``q_nom_mvar``).

    ``regulator_tap_pos`` overrides fixed regulator taps by trafo name (e.g. ``{"REG2": 12.0}``
    or ``PUBLISHED_TAP_POS``); the others keep ``DEFAULT_TAP_POS``.
    """
    tap_pos = {**DEFAULT_TAP_POS, **(regulator_tap_pos or {})}
    unknown = sorted(set(tap_pos) - set(DEFAULT_TAP_POS))
    if unknown:
        raise ValueError(f"unknown regulator(s) {unknown}; known: {sorted(DEFAULT_TAP_POS)}")
    net = pp.create_empty_network(name="IEEE34 DSO with three IEEE13 microgrids", f_hz=F_HZ)
    dso = _add_feeder(
        net,
        zone=DSO_ZONE,
        prefix="",
        nodes=fd.IEEE34_NODES,
        kv=fd.IEEE34_KV,
        node_kv=fd.IEEE34_NODE_KV,
        configs=fd.IEEE34_CONFIGS,
        segments=fd.IEEE34_SEGMENTS,
        switches=(),
        regulators=fd.IEEE34_REGULATORS,
        xfm=fd.IEEE34_XFM,
        spot_loads=fd.IEEE34_SPOT_LOADS,
        dist_loads=fd.IEEE34_DISTRIBUTED_LOADS,
        capacitors=fd.IEEE34_CAPACITORS_KVAR,
        tap_pos=tap_pos,
    )
    pp.create_ext_grid(net, dso["800"], vm_pu=EXT_GRID_VM_PU, name="DSO_slack", zone=DSO_ZONE)
    for mg, pcc_node, dg_max in MG_ATTACHMENTS:
        _add_microgrid(net, mg, dso[pcc_node], dg_max, tap_pos)
    for table in ("load", "sgen", "storage"):
        for col in ("p_mw", "q_mvar"):
            net[table][col] = net[table][col].astype(np.float64)
    if not load_scale > 0:
        raise ValueError(f"load_scale must be > 0, got {load_scale}")
    net.load["p_mw"] = net.load["p_nom_mw"] * load_scale
    net.load["q_mvar"] = net.load["q_nom_mvar"] * load_scale
    net.shunt["q_mvar"] = net.shunt["q_mvar"] * load_scale
    # Plain pp.runpp(net) must not start from a flat profile (see initial_voltage_pu).
    pp.set_user_pf_options(
        net, init_vm_pu=initial_voltage_pu(net), init_va_degree=np.zeros(len(net.bus))
    )
    return net


def initial_voltage_pu(net: pandapowerNet) -> np.ndarray:
    """Return a tap-aware start profile |V| per bus (net.bus row order).

    Each bus gets the slack voltage times the off-nominal ratios of the transformers on its
    path from the slack (lines keep the voltage). A flat 1.0 pu start does not converge with
    the near-zero-impedance regulators at off-nominal taps, this one does in a few iterations.
    Buses not reached from a slack get 1.0.
    """
    pos = {int(b): i for i, b in enumerate(net.bus.index)}
    vn = net.bus["vn_kv"].to_numpy(dtype=float)
    adj: list[list[tuple[int, float]]] = [[] for _ in pos]
    for f, t, ok in zip(
        net.line["from_bus"], net.line["to_bus"], net.line["in_service"], strict=True
    ):
        if ok:
            adj[pos[f]].append((pos[t], 1.0))
            adj[pos[t]].append((pos[f], 1.0))
    tr = net.trafo
    for i in range(len(tr)):
        if not tr["in_service"].iat[i]:
            continue
        hv, lv = pos[int(tr["hv_bus"].iat[i])], pos[int(tr["lv_bus"].iat[i])]
        step = float(np.nan_to_num(tr["tap_step_percent"].iat[i])) / 100.0
        tap = float(np.nan_to_num(tr["tap_pos"].iat[i]) - np.nan_to_num(tr["tap_neutral"].iat[i]))
        vn_hv = float(tr["vn_hv_kv"].iat[i]) * (
            1 + tap * step if tr["tap_side"].iat[i] == "hv" else 1
        )
        vn_lv = float(tr["vn_lv_kv"].iat[i]) * (
            1 + tap * step if tr["tap_side"].iat[i] == "lv" else 1
        )
        ratio = (vn_lv / vn[lv]) / (vn_hv / vn[hv])  # V_lv / V_hv in per unit
        adj[hv].append((lv, ratio))
        adj[lv].append((hv, 1.0 / ratio))
    vm = np.full(len(pos), np.nan)
    queue: deque[int] = deque()
    for b, v, ok in zip(
        net.ext_grid["bus"], net.ext_grid["vm_pu"], net.ext_grid["in_service"], strict=True
    ):
        if ok:
            vm[pos[int(b)]] = float(v)
            queue.append(pos[int(b)])
    while queue:
        b = queue.popleft()
        for n, ratio in adj[b]:
            if np.isnan(vm[n]):
                vm[n] = vm[b] * ratio
                queue.append(n)
    return np.nan_to_num(vm, nan=1.0)
