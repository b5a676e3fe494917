"""LinDistFlow: the linearized branch-flow model of a radial network, read from a pandapower net.

Per unit on ``net.sn_mva`` and each bus's ``vn_kv``. For every branch k (line or transformer),
oriented away from the slack, parent bus i and child bus j::

    P_k = sum of the active demand below k     (lossless: no r * l terms)
    Q_k = sum of the reactive demand below k
    w_j = alpha_k * w_i - 2 * (r_k * P_k + x_k * Q_k)          (w = |V|^2)

Transformers use their series impedance (``vk_percent``, ``vkr_percent`` on their rating, referred
to the LV side) and their fixed off-nominal ratio n (``tap_pos`` x ``tap_step_percent`` on the tap
side, and rated vs. bus voltages) as alpha = n^2 (V_lv = n * V_hv at no load, the ideal ratio
sitting on the HV side as in pandapower's branch model). Shunts are constant admittances, linear
in w: capacitors and line charging (half the line's susceptance at each end) inject b * w Mvar,
shunt conductance consumes g * w MW. Since w enters the flows through the shunts, the model is an
implicit linear system; :meth:`RadialNetwork.maps` solves it once and returns the affine maps

    w = w0 + Wp @ p + Wq @ q,   P = P0 + Fp @ p + Fq @ q,   Q = Q0 + Gp @ p + Gq @ q

from the nodal injections (p, q in MW / Mvar, generation positive). Line ratings are
``S_max = sqrt(3) * vn_kv * max_i_ka * df * parallel`` MVA (at 1 pu voltage). Switches, ``gen``,
out-of-service elements and magnetizing branches are not supported (the nets of this project have
none): :meth:`RadialNetwork.from_pandapower` raises ``ValueError`` on a meshed or disconnected net.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import deque
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LinearMaps:
    """Affine maps from nodal injections (MW, Mvar; per bus) to w (pu^2) and branch flows (MW)."""

    w0: np.ndarray
    Wp: np.ndarray
    Wq: np.ndarray
    P0: np.ndarray
    Fp: np.ndarray
    Fq: np.ndarray
    Q0: np.ndarray
    Gp: np.ndarray
    Gq: np.ndarray


@dataclass(frozen=True, eq=False)
class RadialNetwork:
    """A radial network for LinDistFlow. Arrays are per bus (``bus_*``) or per branch."""

    bus_names: tuple[str, ...]
    bus_zone: tuple[str, ...]
    slack: int
    slack_w: float
    parent: np.ndarray
    child: np.ndarray
    r: np.ndarray
    x: np.ndarray
    alpha: np.ndarray
    s_max_mva: np.ndarray
    branch_kind: tuple[str, ...]
    branch_name: tuple[str, ...]
    branch_zone: tuple[str, ...]
    shunt_g: np.ndarray
    shunt_b: np.ndarray
    base_mva: float = 1.0
    bus_index: tuple[int, ...] = field(default=())
    """pandapower index of each bus (row order of ``net.bus``), to map elements to positions."""

    # ------------------------------------------------------------------------ construction
    @classmethod
    def from_pandapower(cls, net: Any) -> RadialNetwork:
        """Extract the LinDistFlow model from a balanced pandapower net (see module docs)."""
        if len(getattr(net, "switch", ())) or len(getattr(net, "gen", ())):
            raise ValueError("LinDistFlow extraction supports nets without switch and gen")
        base = float(net.sn_mva)
        bus = net.bus
        index = bus.index.to_numpy()
        pos = {int(b): i for i, b in enumerate(index)}
        vn = bus["vn_kv"].to_numpy(float)
        n_bus = len(bus)
        zones = bus["zone"].astype(str).tolist() if "zone" in bus else [""] * n_bus

        ext = net.ext_grid[net.ext_grid["in_service"].astype(bool)]
        if len(ext) != 1:
            raise ValueError(f"expected exactly one in-service ext_grid, got {len(ext)}")
        slack = pos[int(ext["bus"].iat[0])]
        slack_w = float(ext["vm_pu"].iat[0]) ** 2

        # Undirected branches: (a, b, r_pu, x_pu, n = V_b / V_a at no load, s_max, kind, ...).
        raw: list[tuple[int, int, float, float, float, float, str, str, str]] = []
        g = np.zeros(n_bus)
        b = np.zeros(n_bus)
        for row in net.line.itertuples():
            if not row.in_service:
                continue
            fa, tb = pos[int(row.from_bus)], pos[int(row.to_bus)]
            z_base = vn[fa] ** 2 / base
            par = float(row.parallel)
            length = float(row.length_km)
            r_pu = row.r_ohm_per_km * length / par / z_base
            x_pu = row.x_ohm_per_km * length / par / z_base
            b_pu = 2 * math.pi * float(net.f_hz) * row.c_nf_per_km * 1e-9 * length * par * z_base
            g_pu = float(row.g_us_per_km) * 1e-6 * length * par * z_base
            for end in (fa, tb):
                b[end] += b_pu / 2
                g[end] += g_pu / 2
            s_max = math.sqrt(3) * vn[fa] * row.max_i_ka * row.df * par
            zone = str(getattr(row, "zone", ""))
            raw.append((fa, tb, r_pu, x_pu, 1.0, s_max, "line", str(row.name), zone))
        for row in net.trafo.itertuples():
            if not row.in_service:
                continue
            if float(row.pfe_kw) or float(row.i0_percent) or float(row.shift_degree):
                raise ValueError(f"trafo {row.name!r}: magnetizing branch or phase shift")
            hv, lv = pos[int(row.hv_bus)], pos[int(row.lv_bus)]
            step = float(np.nan_to_num(row.tap_step_percent)) / 100.0
            tap = float(np.nan_to_num(row.tap_pos) - np.nan_to_num(row.tap_neutral))
            vn_hv = float(row.vn_hv_kv) * (1 + tap * step if row.tap_side == "hv" else 1)
            vn_lv = float(row.vn_lv_kv) * (1 + tap * step if row.tap_side == "lv" else 1)
            n = (vn_lv / vn[lv]) / (vn_hv / vn[hv])
            par = float(row.parallel)
            z_scale = (float(row.vn_lv_kv) / vn[lv]) ** 2 * base / float(row.sn_mva) / par
            z = float(row.vk_percent) / 100 * z_scale
            r_pu = float(row.vkr_percent) / 100 * z_scale
            x_pu = math.sqrt(max(z * z - r_pu * r_pu, 0.0))
            zone = str(getattr(row, "zone", ""))
            raw.append((hv, lv, r_pu, x_pu, n, math.inf, "trafo", str(row.name), zone))
        for row in net.shunt.itertuples():
            if not row.in_service:
                continue
            i = pos[int(row.bus)]
            step = float(row.step) if "step" in net.shunt else 1.0
            b[i] -= float(row.q_mvar) * step / base
            g[i] += float(row.p_mw) * step / base

        if len(raw) != n_bus - 1:
            raise ValueError(f"net is not radial: {n_bus} buses but {len(raw)} branches")
        adjacency: list[list[int]] = [[] for _ in range(n_bus)]
        for k, (a, c, *_rest) in enumerate(raw):
            adjacency[a].append(k)
            adjacency[c].append(k)
        order: list[tuple[int, int, int]] = []  # (branch, parent, child) in BFS order
        seen = np.zeros(n_bus, dtype=bool)
        seen[slack] = True
        queue = deque([slack])
        while queue:
            i = queue.popleft()
            for k in adjacency[i]:
                a, c = raw[k][0], raw[k][1]
                j = c if a == i else a
                if not seen[j]:
                    seen[j] = True
                    order.append((k, i, j))
                    queue.append(j)
        if not seen.all():
            raise ValueError("net is not connected: some buses are not reached from the slack")

        parent, child, r, x, alpha, s_max, kind, name, bzone = [], [], [], [], [], [], [], [], []
        for k, i, j in order:
            a, _c, r_pu, x_pu, n, smax, knd, nm, zn = raw[k]
            if a == i:  # parent on the (ratio) "from" side: w_j = n^2 w_i - 2(rP + xQ)
                alpha.append(n * n)
                r.append(r_pu)
                x.append(x_pu)
            else:  # reversed transformer: w_hv = w_lv / n^2 - 2 (r P + x Q) / n^2
                alpha.append(1.0 / (n * n))
                r.append(r_pu / (n * n))
                x.append(x_pu / (n * n))
            parent.append(i)
            child.append(j)
            s_max.append(smax)
            kind.append(knd)
            name.append(nm)
            bzone.append(zn)
        return cls(
            bus_names=tuple(bus["name"].astype(str)),
            bus_zone=tuple(zones),
            slack=slack,
            slack_w=slack_w,
            parent=np.array(parent, dtype=int),
            child=np.array(child, dtype=int),
            r=np.array(r),
            x=np.array(x),
            alpha=np.array(alpha),
            s_max_mva=np.array(s_max),
            branch_kind=tuple(kind),
            branch_name=tuple(name),
            branch_zone=tuple(bzone),
            shunt_g=g,
            shunt_b=b,
            base_mva=base,
            bus_index=tuple(int(i) for i in index),
        )

    # --------------------------------------------------------------------------- queries
    @property
    def n_bus(self) -> int:
        return len(self.bus_names)

    @property
    def n_branch(self) -> int:
        return len(self.parent)

    def bus_position(self, pandapower_index: Any) -> np.ndarray:
        """Positions (rows) of pandapower bus indices."""
        lookup = {b: i for i, b in enumerate(self.bus_index)}
        return np.array([lookup[int(b)] for b in np.atleast_1d(pandapower_index)], dtype=int)

    def branch_position(self, kind: str, name: str) -> int:
        """Position of the branch of ``kind`` ("line"/"trafo") named ``name``."""
        for k, (knd, nm) in enumerate(zip(self.branch_kind, self.branch_name, strict=True)):
            if knd == kind and nm == name:
                return k
        raise KeyError(f"no {kind} named {name!r}")

    @cached_property
    def subtree(self) -> np.ndarray:
        """``D[k, i] = 1`` when bus i lies below branch k (its child side, child included)."""
        d = np.zeros((self.n_branch, self.n_bus))
        branch_of_child = {int(c): k for k, c in enumerate(self.child)}
        for i in range(self.n_bus):
            j = i
            while j != self.slack:
                k = branch_of_child[j]
                d[k, i] = 1.0
                j = int(self.parent[k])
        return d

    @cached_property
    def maps(self) -> LinearMaps:
        """Solve the implicit linear system once; see the module docs."""
        n, base = self.n_bus, self.base_mva
        d = self.subtree
        g, b = self.shunt_g, self.shunt_b
        lhs = np.zeros((n, n))
        rhs_p = np.zeros((n, n))
        rhs_q = np.zeros((n, n))
        rhs_0 = np.zeros(n)
        lhs[self.slack, self.slack] = 1.0
        rhs_0[self.slack] = self.slack_w
        for k in range(self.n_branch):
            i, j = int(self.parent[k]), int(self.child[k])
            lhs[j, j] += 1.0
            lhs[j, i] -= self.alpha[k]
            lhs[j] += 2 * self.r[k] * d[k] * g - 2 * self.x[k] * d[k] * b
            rhs_p[j] = 2 * self.r[k] * d[k] / base
            rhs_q[j] = 2 * self.x[k] * d[k] / base
        inv = np.linalg.inv(lhs)
        w0, wp, wq = inv @ rhs_0, inv @ rhs_p, inv @ rhs_q
        # P = -D p + D (g w), Q = -D q - D (b w)   (pu; returned in MW / Mvar)
        dg, db = d * g, d * b
        p0 = dg @ w0 * base
        fp = -d + dg @ wp * base
        fq = dg @ wq * base
        q0 = -db @ w0 * base
        gp = -db @ wp * base
        gq = -d - db @ wq * base
        return LinearMaps(w0, wp, wq, p0, fp, fq, q0, gp, gq)

    def solve(self, p_mw: np.ndarray, q_mvar: np.ndarray) -> dict[str, np.ndarray]:
        """LinDistFlow for injections of shape (n_bus,) or (n_bus, T): w, vm, P, Q, losses."""
        m = self.maps
        p, q = np.asarray(p_mw, float), np.asarray(q_mvar, float)
        col = (slice(None),) + (None,) * (p.ndim - 1)
        w = m.w0[col] + m.Wp @ p + m.Wq @ q
        flow_p = m.P0[col] + m.Fp @ p + m.Fq @ q
        flow_q = m.Q0[col] + m.Gp @ p + m.Gq @ q
        return {
            "w": w,
            "vm_pu": np.sqrt(np.maximum(w, 0.0)),
            "p_mw": flow_p,
            "q_mvar": flow_q,
            "loss_mw": self.branch_losses(flow_p, flow_q, w),
        }

    def branch_losses(self, p_mw: np.ndarray, q_mvar: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Series losses r (P^2 + Q^2) / w_parent per branch (MW), from flows and w."""
        base = self.base_mva
        col = (slice(None),) + (None,) * (np.ndim(p_mw) - 1)
        w_parent = np.maximum(w[self.parent], 1e-6)
        return self.r[col] * ((p_mw / base) ** 2 + (q_mvar / base) ** 2) / w_parent * base

    def fingerprint(self) -> str:
        """A short hash of every parameter the model depends on (changes when the net does)."""
        payload = {
            "bus": list(self.bus_names),
            "zone": list(self.bus_zone),
            "slack": [self.slack, round(self.slack_w, 12)],
            "parent": self.parent.tolist(),
            "child": self.child.tolist(),
            "branch": [list(self.branch_kind), list(self.branch_name)],
            "num": [
                np.round(a, 12).tolist()
                for a in (self.r, self.x, self.alpha, self.shunt_g, self.shunt_b)
            ],
            "s_max": [None if not np.isfinite(s) else round(float(s), 9) for s in self.s_max_mva],
            "base": self.base_mva,
        }
        text = json.dumps(payload, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
