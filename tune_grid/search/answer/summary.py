"""The answer a confirmed search ends with, as text: the console's last lines and the report's
first block. It reads ``answer.json`` (written by :mod:`tune_grid.search.answer.confirmation`) and
imports nothing heavy, so the analysis can use it without Ray or torch."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

ANSWER_FILE = "answer.json"


def value_label(value: Any) -> str:
    """A configuration value as text (floats to 3 significant digits)."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _money(value: float) -> str:
    return f"${value:,.1f}"


def _signed(d: Mapping[str, float]) -> str:
    """``-26.3 $/day [-40.1, -12.5]`` against a baseline, and whether the interval separates."""
    separated = d["high"] < 0 or d["low"] > 0
    word = "" if separated else " (not separated)"
    return f"{d['difference']:+.1f} $/day [{d['low']:+.1f}, {d['high']:+.1f}]{word}"


def format_answer(answer: Mapping[str, Any]) -> str:
    """The answer block the search's console output ends with."""
    cost = answer["test_cost"]
    confidence = f"{answer['confidence']:.0%}"
    rec = answer["recommended"]
    seeds = answer["seeds"]
    lines = [
        f"ANSWER ({answer['experiment']}): confirmed on {len(seeds)} fresh seeds x "
        f"{answer['days']} {answer['split']} days, {confidence} intervals over seeds and days",
        "  recommended: "
        + ", ".join(f"{k}={value_label(v)}" for k, v in rec["params"].items())
        + f"  [{rec['name']}: {rec['origin']}]",
        f"  test cost: IQM {_money(cost['value'])}/day [{_money(cost['low'])}, "
        f"{_money(cost['high'])}]",
    ]
    if math.isfinite(cost["gap"]):
        lines.append(
            f"  gap to the oracle: {cost['gap']:+.1%} [{cost['gap_low']:+.1%}, "
            f"{cost['gap_high']:+.1%}]"
        )
    mpc = answer.get("mpc_gap")
    if mpc and math.isfinite(mpc["gap"]):
        lines.append(
            f"  gap to the MPC: {mpc['gap']:+.1%} [{mpc['gap_low']:+.1%}, {mpc['gap_high']:+.1%}]"
        )
    baselines = answer["baselines"]
    lines.append(
        "  same days: "
        + ", ".join(
            f"{name} {_money(b['daily_cost'])} [{_money(b['low'])}, {_money(b['high'])}]"
            for name, b in baselines.items()
        )
    )
    versus = [
        f"{name} {_signed(b['recommended_minus'])}"
        for name, b in baselines.items()
        if name != "random" and "recommended_minus" in b
    ]
    if versus:
        lines.append("  it costs, paired by day: " + ", ".join(versus))
    for other in answer["alternatives"]:
        if other["verdict"] == "failed":
            lines.append(f"  {other['name']} ({other['origin']}): failed to train")
            continue
        lines.append(
            f"  {other['name']} ({other['origin']}) costs {other['difference']:+.1f} $/day "
            f"[{other['low']:+.1f}, {other['high']:+.1f}] against it over {other['seeds']} "
            f"seeds: {other['verdict']}"
        )
    for factor in answer["factors"]:
        if factor["verdict"] == "failed":
            continue
        lines.append(
            f"  factor {factor['factor']}: {value_label(factor['value'])} instead of "
            f"{value_label(factor['base_value'])} costs {factor['difference']:+.1f} $/day "
            f"[{factor['low']:+.1f}, {factor['high']:+.1f}] ({factor['verdict']})"
        )
    curse = answer["winners_curse"]
    if math.isfinite(curse["search_value"]):
        lines.append(
            f"  winner's curse: the search saw {answer['metric']} {curse['search_value']:.1f}; "
            f"fresh seeds give IQM {curse['confirmed_iqm']:.1f}"
        )
    lines.append(f"  race: {answer['rounds']} round(s), stopped: {answer['stop_reason']}")
    lines.append(f"  train it: {answer['command']}")
    if answer["checkpoints"]:
        lines.append(f"  its checkpoints: {answer['checkpoints'][0]} (and the other seeds')")
    return "\n".join(lines)
