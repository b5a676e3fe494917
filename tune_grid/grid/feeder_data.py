"""IEEE 34-node and 13-node test feeder data, transcribed from the IEEE PES test feeder documents.

Units follow the documents: impedances in ohm/mile, susceptances in micro-siemens/mile, lengths
in feet, loads in kW/kvar per phase, capacitors in kvar per phase, transformer impedances in
percent on the transformer rating. Phase matrices are stored as upper-triangular rows over the
phases that are present (e.g. config 603 has phases "BC": rows ((Zbb, Zbc), (Zcc,))).
"""

from typing import NamedTuple

Triangle = tuple[tuple[complex, ...], ...]
RealTriangle = tuple[tuple[float, ...], ...]
PerPhase = tuple[float, float, float]


class LineConfig(NamedTuple):
    """Overhead/underground line configuration (phase impedance and susceptance matrices)."""

    phases: str
    z_ohm_per_mile: Triangle
    b_us_per_mile: RealTriangle
    conductor: str
    ampacity_a: float


class Segment(NamedTuple):
    """Line segment between two nodes."""

    node_a: str
    node_b: str
    length_ft: float
    config: int


class SpotLoad(NamedTuple):
    """Spot load at a node (per-phase kW and kvar; model is informational)."""

    node: str
    model: str
    kw: PerPhase
    kvar: PerPhase


class DistributedLoad(NamedTuple):
    """Load distributed uniformly along a segment (per-phase kW and kvar)."""

    node_a: str
    node_b: str
    model: str
    kw: PerPhase
    kvar: PerPhase


class Regulator(NamedTuple):
    """Step voltage regulator at ``node_a`` feeding segment ``node_a``-``node_b``."""

    node_a: str
    node_b: str
    final_taps: tuple[int, int, int]


class Transformer(NamedTuple):
    """Two-winding transformer data."""

    node_hv: str
    node_lv: str
    kva: float
    kv_hv: float
    kv_lv: float
    r_percent: float
    x_percent: float


REGULATOR_STEP_PU = 0.00625  # 5/8 % per step, 32 steps, +/-10 %

# ---------------------------------------------------------------------------------------------
# IEEE 34-node test feeder (24.9 kV)
# ---------------------------------------------------------------------------------------------
IEEE34_KV = 24.9

IEEE34_NODES: tuple[str, ...] = (
    "800", "802", "806", "808", "810", "812", "814", "816", "818", "820", "822", "824",
    "826", "828", "830", "832", "834", "836", "838", "840", "842", "844", "846", "848",
    "850", "852", "854", "856", "858", "860", "862", "864", "888", "890",
)  # fmt: skip

# Nodes whose nominal voltage differs from the feeder voltage (LV side of the in-line XFM-1).
IEEE34_NODE_KV: dict[str, float] = {"888": 4.16, "890": 4.16}

IEEE34_CONFIGS: dict[int, LineConfig] = {
    300: LineConfig(
        "ABC",
        (
            (1.3368 + 1.3343j, 0.2101 + 0.5779j, 0.2130 + 0.5015j),
            (1.3238 + 1.3569j, 0.2066 + 0.4591j),
            (1.3294 + 1.3471j,),
        ),
        ((5.3350, -1.5313, -0.9943), (5.0979, -0.6212), (4.8880,)),
        "1/0 ACSR",
        230.0,
    ),
    301: LineConfig(
        "ABC",
        (
            (1.9300 + 1.4115j, 0.2327 + 0.6442j, 0.2359 + 0.5691j),
            (1.9157 + 1.4281j, 0.2288 + 0.5238j),
            (1.9219 + 1.4209j,),
        ),
        ((5.1207, -1.4364, -0.9402), (4.9055, -0.5951), (4.7154,)),
        "#2 6/1 ACSR",
        180.0,
    ),
    302: LineConfig("A", ((2.7995 + 1.4855j,),), ((4.2251,),), "#4 6/1 ACSR", 140.0),
    303: LineConfig("B", ((2.7995 + 1.4855j,),), ((4.2251,),), "#4 6/1 ACSR", 140.0),
    304: LineConfig("B", ((1.9217 + 1.4212j,),), ((4.3637,),), "#2 6/1 ACSR", 180.0),
}

# Line segment table (the document's XFM-1 row 832-888 is given in IEEE34_XFM below).
IEEE34_SEGMENTS: tuple[Segment, ...] = (
    Segment("800", "802", 2580, 300),
    Segment("802", "806", 1730, 300),
    Segment("806", "808", 32230, 300),
    Segment("808", "810", 5804, 303),
    Segment("808", "812", 37500, 300),
    Segment("812", "814", 29730, 300),
    Segment("814", "850", 10, 301),
    Segment("816", "818", 1710, 302),
    Segment("816", "824", 10210, 301),
    Segment("818", "820", 48150, 302),
    Segment("820", "822", 13740, 302),
    Segment("824", "826", 3030, 303),
    Segment("824", "828", 840, 301),
    Segment("828", "830", 20440, 301),
    Segment("830", "854", 520, 301),
    Segment("832", "858", 4900, 301),
    Segment("834", "860", 2020, 301),
    Segment("834", "842", 280, 301),
    Segment("836", "840", 860, 301),
    Segment("836", "862", 280, 301),
    Segment("842", "844", 1350, 301),
    Segment("844", "846", 3640, 301),
    Segment("846", "848", 530, 301),
    Segment("850", "816", 310, 301),
    Segment("852", "832", 10, 301),
    Segment("854", "856", 23330, 303),
    Segment("854", "852", 36830, 301),
    Segment("858", "864", 1620, 302),
    Segment("858", "834", 5830, 301),
    Segment("860", "836", 2680, 301),
    Segment("862", "838", 4860, 304),
    Segment("888", "890", 10560, 300),
)

IEEE34_XFM = Transformer("832", "888", 500.0, 24.9, 4.16, 1.9, 4.08)

IEEE34_REGULATORS: tuple[Regulator, ...] = (
    Regulator("814", "850", (12, 5, 5)),
    Regulator("852", "832", (13, 11, 12)),
)

IEEE34_SPOT_LOADS: tuple[SpotLoad, ...] = (
    SpotLoad("860", "Y-PQ", (20, 20, 20), (16, 16, 16)),
    SpotLoad("840", "Y-I", (9, 9, 9), (7, 7, 7)),
    SpotLoad("844", "Y-Z", (135, 135, 135), (105, 105, 105)),
    SpotLoad("848", "D-PQ", (20, 20, 20), (16, 16, 16)),
    SpotLoad("890", "D-I", (150, 150, 150), (75, 75, 75)),
    SpotLoad("830", "D-Z", (10, 10, 25), (5, 5, 10)),
)

IEEE34_DISTRIBUTED_LOADS: tuple[DistributedLoad, ...] = (
    DistributedLoad("802", "806", "Y-PQ", (0, 30, 25), (0, 15, 14)),
    DistributedLoad("808", "810", "Y-I", (0, 16, 0), (0, 8, 0)),
    DistributedLoad("818", "820", "Y-Z", (34, 0, 0), (17, 0, 0)),
    DistributedLoad("820", "822", "Y-PQ", (135, 0, 0), (70, 0, 0)),
    DistributedLoad("816", "824", "D-I", (0, 5, 0), (0, 2, 0)),
    DistributedLoad("824", "826", "Y-I", (0, 40, 0), (0, 20, 0)),
    DistributedLoad("824", "828", "Y-PQ", (0, 0, 4), (0, 0, 2)),
    DistributedLoad("828", "830", "Y-PQ", (7, 0, 0), (3, 0, 0)),
    DistributedLoad("854", "856", "Y-PQ", (0, 4, 0), (0, 2, 0)),
    DistributedLoad("832", "858", "D-Z", (7, 2, 6), (3, 1, 3)),
    DistributedLoad("858", "864", "Y-PQ", (2, 0, 0), (1, 0, 0)),
    DistributedLoad("858", "834", "D-PQ", (4, 15, 13), (2, 8, 7)),
    DistributedLoad("834", "860", "D-Z", (16, 20, 110), (8, 10, 55)),
    DistributedLoad("860", "836", "D-PQ", (30, 10, 42), (15, 6, 22)),
    DistributedLoad("836", "840", "D-I", (18, 22, 0), (9, 11, 0)),
    DistributedLoad("862", "838", "Y-PQ", (0, 28, 0), (0, 14, 0)),
    DistributedLoad("842", "844", "Y-PQ", (9, 0, 0), (5, 0, 0)),
    DistributedLoad("844", "846", "Y-PQ", (0, 25, 20), (0, 12, 11)),
    DistributedLoad("846", "848", "Y-PQ", (0, 23, 0), (0, 11, 0)),
)

IEEE34_CAPACITORS_KVAR: dict[str, PerPhase] = {
    "844": (100, 100, 100),
    "848": (150, 150, 150),
}

# ---------------------------------------------------------------------------------------------
# IEEE 13-node test feeder (4.16 kV)
# ---------------------------------------------------------------------------------------------
IEEE13_KV = 4.16

IEEE13_NODES: tuple[str, ...] = (
    "611", "632", "633", "634", "645", "646", "650", "652", "671", "675", "680", "684", "692",
)  # fmt: skip

IEEE13_NODE_KV: dict[str, float] = {"634": 0.48}

IEEE13_CONFIGS: dict[int, LineConfig] = {
    601: LineConfig(
        "ABC",
        (
            (0.3465 + 1.0179j, 0.1560 + 0.5017j, 0.1580 + 0.4236j),
            (0.3375 + 1.0478j, 0.1535 + 0.3849j),
            (0.3414 + 1.0348j,),
        ),
        ((6.2998, -1.9958, -1.2595), (5.9597, -0.7417), (5.6386,)),
        "556,500 26/7 ACSR",
        730.0,
    ),
    602: LineConfig(
        "ABC",
        (
            (0.7526 + 1.1814j, 0.1580 + 0.4236j, 0.1560 + 0.5017j),
            (0.7475 + 1.1983j, 0.1535 + 0.3849j),
            (0.7436 + 1.2112j,),
        ),
        ((5.6990, -1.0817, -1.6905), (5.1795, -0.6588), (5.4246,)),
        "4/0 6/1 ACSR",
        340.0,
    ),
    603: LineConfig(
        "BC",
        ((1.3294 + 1.3471j, 0.2066 + 0.4591j), (1.3238 + 1.3569j,)),
        ((4.7097, -0.8999), (4.6658,)),
        "1/0 ACSR",
        230.0,
    ),
    604: LineConfig(
        "AC",
        ((1.3238 + 1.3569j, 0.2066 + 0.4591j), (1.3294 + 1.3471j,)),
        ((4.6658, -0.8999), (4.7097,)),
        "1/0 ACSR",
        230.0,
    ),
    605: LineConfig("C", ((1.3292 + 1.3475j,),), ((4.5193,),), "1/0 ACSR", 230.0),
    606: LineConfig(
        "ABC",
        (
            (0.7982 + 0.4463j, 0.3192 + 0.0328j, 0.2849 - 0.0143j),
            (0.7891 + 0.4041j, 0.3192 + 0.0328j),
            (0.7982 + 0.4463j,),
        ),
        ((96.8897, 0.0, 0.0), (96.8897, 0.0), (96.8897,)),
        "250,000 AA concentric neutral",
        260.0,
    ),
    607: LineConfig("A", ((1.3425 + 0.5124j,),), ((88.9912,),), "1/0 AA tape shield", 165.0),
}

# Line segment table without the XFM-1 (633-634) and switch (671-692) rows.
IEEE13_SEGMENTS: tuple[Segment, ...] = (
    Segment("632", "645", 500, 603),
    Segment("632", "633", 500, 602),
    Segment("645", "646", 300, 603),
    Segment("650", "632", 2000, 601),
    Segment("684", "652", 800, 607),
    Segment("632", "671", 2000, 601),
    Segment("671", "684", 300, 604),
    Segment("671", "680", 1000, 601),
    Segment("684", "611", 300, 605),
    Segment("692", "675", 500, 606),
)

IEEE13_SWITCHES: tuple[tuple[str, str], ...] = (("671", "692"),)

IEEE13_SUBSTATION = Transformer("SOURCE", "650", 5000.0, 115.0, 4.16, 1.0, 8.0)
IEEE13_XFM = Transformer("633", "634", 500.0, 4.16, 0.48, 1.1, 2.0)

IEEE13_REGULATORS: tuple[Regulator, ...] = (Regulator("650", "632", (10, 8, 11)),)

IEEE13_SPOT_LOADS: tuple[SpotLoad, ...] = (
    SpotLoad("634", "Y-PQ", (160, 120, 120), (110, 90, 90)),
    SpotLoad("645", "Y-PQ", (0, 170, 0), (0, 125, 0)),
    SpotLoad("646", "D-Z", (0, 230, 0), (0, 132, 0)),
    SpotLoad("652", "Y-Z", (128, 0, 0), (86, 0, 0)),
    SpotLoad("671", "D-PQ", (385, 385, 385), (220, 220, 220)),
    SpotLoad("675", "Y-PQ", (485, 68, 290), (190, 60, 212)),
    SpotLoad("692", "D-I", (0, 0, 170), (0, 0, 151)),
    SpotLoad("611", "Y-I", (0, 0, 170), (0, 0, 80)),
)

IEEE13_DISTRIBUTED_LOADS: tuple[DistributedLoad, ...] = (
    DistributedLoad("632", "671", "Y-PQ", (17, 66, 117), (10, 38, 68)),
)

IEEE13_CAPACITORS_KVAR: dict[str, PerPhase] = {
    "675": (200, 200, 200),
    "611": (0, 0, 100),
}
