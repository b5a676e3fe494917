"""Which groups of a factor do their IQM intervals separate? A table and the same in words.

Two groups count as *separated* when their IQM confidence intervals (the factor table's
stratified bootstrap percentile intervals) do not overlap; touching intervals overlap. This is a
conservative reading: non-overlapping 95 % intervals imply a difference at a stricter level than
5 %, and overlapping ones do not show that there is none, only that these seeds cannot tell.

A group with fewer than :data:`MIN_VALUES` values is never read: the bootstrap interval of one
value is that value (zero width), and of two it spans at most their range, so "separated" would
say more than the data can.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from analysis.tables import format_value

MIN_VALUES = 3
"""Fewest values (seeds over trials) a group needs before its interval takes part in a claim."""

SEPARATION_COLUMNS = [
    "experiment",
    "factor",
    "metric",
    "better",
    "group_x",
    "group_y",
    "n_x",
    "n_y",
    "iqm_x",
    "iqm_x_ci_low",
    "iqm_x_ci_high",
    "iqm_y",
    "iqm_y_ci_low",
    "iqm_y_ci_high",
    "enough_values",
    "separated",
    "better_group",
]


def interval_separation(factors: pd.DataFrame) -> pd.DataFrame:
    """One row per pair of groups of each (experiment, factor, metric) of the factor table.

    ``better_group`` names the group with the better IQM (by the metric's direction) where the
    pair is separated, else it is empty. A pair where either group has fewer than
    :data:`MIN_VALUES` values has ``enough_values`` false and is never separated.
    """
    rows: list[dict[str, Any]] = []
    keys = ["experiment", "factor", "metric"]
    for (experiment, factor, metric), part in factors.groupby(keys, sort=False):
        records = [r for r in part.to_dict("records") if _finite_interval(r)]
        for i, x in enumerate(records):
            for y in records[i + 1 :]:
                enough = min(int(x["n_values"]), int(y["n_values"])) >= MIN_VALUES
                apart = x["iqm_ci_high"] < y["iqm_ci_low"] or y["iqm_ci_high"] < x["iqm_ci_low"]
                separated = enough and apart
                rows.append(
                    {
                        "experiment": experiment,
                        "factor": factor,
                        "metric": metric,
                        "better": x["better"],
                        "group_x": x["group"],
                        "group_y": y["group"],
                        "n_x": int(x["n_values"]),
                        "n_y": int(y["n_values"]),
                        "iqm_x": x["iqm"],
                        "iqm_x_ci_low": x["iqm_ci_low"],
                        "iqm_x_ci_high": x["iqm_ci_high"],
                        "iqm_y": y["iqm"],
                        "iqm_y_ci_low": y["iqm_ci_low"],
                        "iqm_y_ci_high": y["iqm_ci_high"],
                        "enough_values": bool(enough),
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
    the pairs the intervals do not separate, then those with too few values to read."""
    level = f"{confidence:.0%}"
    sentences = []
    keys = ["experiment", "factor", "metric"]
    for (experiment, factor, metric), part in separation.groupby(keys, sort=False):
        better = part["better"].iloc[0]
        head = f"{experiment}, {factor}, {metric} ({better} is better):"
        records = part.to_dict("records")
        apart = [_ordered_pair(r) for r in records if r["separated"]]
        together = [_pair(r) for r in records if r["enough_values"] and not r["separated"]]
        too_few = [_pair(r) for r in records if not r["enough_values"]]
        if apart:
            text = f"{head} separated by their {level} IQM intervals: {'; '.join(apart)}."
            if together:
                text += f" Not separated: {'; '.join(together)}."
        elif together:
            text = (
                f"{head} no pair of groups is separated by its {level} IQM intervals "
                f"({'; '.join(together)}): these seeds do not tell the groups apart."
            )
        else:
            text = f"{head} no pair has {MIN_VALUES} or more values in both groups."
        if too_few:
            text += f" Too few values to compare (< {MIN_VALUES}): {'; '.join(too_few)}."
        sentences.append(text)
    return sentences


def _pair(record: dict[str, Any]) -> str:
    return f"{record['group_x']} vs {record['group_y']}"


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
