"""Which groups of a factor do their IQM intervals separate? A table and the same in words.

Two groups count as *separated* when their IQM confidence intervals (the factor table's
stratified bootstrap percentile intervals) do not overlap; touching intervals overlap. This is a
conservative reading: non-overlapping 95 % intervals imply a difference at a stricter level than
5 %, and overlapping ones do not show that there is none, only that these seeds cannot tell.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from analysis.tables import format_value

SEPARATION_COLUMNS = [
    "experiment",
    "factor",
    "metric",
    "better",
    "group_x",
    "group_y",
    "iqm_x",
    "iqm_x_ci_low",
    "iqm_x_ci_high",
    "iqm_y",
    "iqm_y_ci_low",
    "iqm_y_ci_high",
    "separated",
    "better_group",
]


def interval_separation(factors: pd.DataFrame) -> pd.DataFrame:
    """One row per pair of groups of each (experiment, factor, metric) of the factor table.

    ``better_group`` names the group with the better IQM (by the metric's direction) where the
    pair is separated, else it is empty.
    """
    rows: list[dict[str, Any]] = []
    keys = ["experiment", "factor", "metric"]
    for (experiment, factor, metric), part in factors.groupby(keys, sort=False):
        records = [r for r in part.to_dict("records") if _finite_interval(r)]
        for i, x in enumerate(records):
            for y in records[i + 1 :]:
                separated = x["iqm_ci_high"] < y["iqm_ci_low"] or y["iqm_ci_high"] < x["iqm_ci_low"]
                rows.append(
                    {
                        "experiment": experiment,
                        "factor": factor,
                        "metric": metric,
                        "better": x["better"],
                        "group_x": x["group"],
                        "group_y": y["group"],
                        "iqm_x": x["iqm"],
                        "iqm_x_ci_low": x["iqm_ci_low"],
                        "iqm_x_ci_high": x["iqm_ci_high"],
                        "iqm_y": y["iqm"],
                        "iqm_y_ci_low": y["iqm_ci_low"],
                        "iqm_y_ci_high": y["iqm_ci_high"],
                        "separated": bool(separated),
                        "better_group": _better_group(x, y, x["better"]) if separated else "",
                    }
                )
    return pd.DataFrame(rows, columns=SEPARATION_COLUMNS)


def _finite_interval(record: dict[str, Any]) -> bool:
    return all(math.isfinite(float(record[k])) for k in ("iqm", "iqm_ci_low", "iqm_ci_high"))


def _better_group(x: dict[str, Any], y: dict[str, Any], better: str) -> str:
    x_wins = x["iqm"] > y["iqm"] if better == "higher" else x["iqm"] < y["iqm"]
    return str(x["group"] if x_wins else y["group"])


def separation_statements(separation: pd.DataFrame, confidence: float) -> list[str]:
    """One sentence per (experiment, factor, metric): the separated pairs (better one first),
    then the pairs the intervals do not separate."""
    level = f"{confidence:.0%}"
    sentences = []
    keys = ["experiment", "factor", "metric"]
    for (experiment, factor, metric), part in separation.groupby(keys, sort=False):
        better = part["better"].iloc[0]
        head = f"{experiment}, {factor}, {metric} ({better} is better):"
        apart = [_ordered_pair(r) for r in part.to_dict("records") if r["separated"]]
        together = [
            f"{r['group_x']} vs {r['group_y']}"
            for r in part.to_dict("records")
            if not r["separated"]
        ]
        if not apart:
            sentences.append(
                f"{head} no pair of groups is separated by its {level} IQM intervals "
                f"({'; '.join(together)}): these seeds do not tell the groups apart."
            )
            continue
        text = f"{head} separated by their {level} IQM intervals: {'; '.join(apart)}."
        if together:
            text += f" Not separated: {'; '.join(together)}."
        sentences.append(text)
    return sentences


def _ordered_pair(record: dict[str, Any]) -> str:
    """``A (iqm [lo, hi]) better than B (iqm [lo, hi])``."""
    first_is_x = record["better_group"] == record["group_x"]
    order = ("x", "y") if first_is_x else ("y", "x")
    parts = [
        f"{record[f'group_{k}']} ({format_value(record[f'iqm_{k}'])} "
        f"[{format_value(record[f'iqm_{k}_ci_low'])}, {format_value(record[f'iqm_{k}_ci_high'])}])"
        for k in order
    ]
    return f"{parts[0]} better than {parts[1]}"
