"""Append-only part files of a running search, and their merge into the two documented files.

While a search runs, the driver does not rewrite ``trials.parquet`` and ``iterations.parquet``
(that costs time proportional to everything reported so far, after every result). Every flush
writes only what changed since the last one, as two small files in ``parts/``:

* ``parts/<seq>.iterations.parquet``: the iteration rows reported since the last flush;
* ``parts/<seq>.trials.parquet``: the full ``trials.parquet`` row of every trial that changed.

``<seq>`` is an 8-digit counter; the iterations part of a flush is written before its trials
part, each atomically (temporary file, then rename), so a reader never sees half a file.
Merging writes both base files (from the driver's records at a search's first flush and at
its end, and on ``tune-grid export``; columnar, by :func:`merge_parts`, periodically while it
runs) with the number of the last part they include in their key-value metadata
(:data:`PARTS_THROUGH_KEY`), then deletes the merged parts. A driver killed between the
two steps leaves parts that readers skip by that number.

:func:`read_merged` is the reader of a folder with parts: the base file plus every later part,
one row per trial (trials) or per trial x iteration (iterations), the latest written winning.
This module imports only pyarrow (analysis scripts may use it).
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq

from tune_grid.results.schema import (
    ITERATIONS_FILE,
    TRIALS_FILE,
    ResultsSchemaError,
    check_table,
    read_results,
    write_results,
)

PARTS_DIR = "parts"
PARTS_THROUGH_KEY = b"tune_grid.parts_through"
BASE_FILES = {"trials": TRIALS_FILE, "iterations": ITERATIONS_FILE}
KEYS = {"trials": ("trial_id",), "iterations": ("trial_id", "iteration")}
_PART_NAME = re.compile(r"^(?P<seq>\d{8})\.(?P<kind>trials|iterations)\.parquet$")

WriteMode = Literal["parts", "rewrite"]
"""How the search driver writes results: append-only part files, or v0's full rewrite."""
WRITE_MODES: tuple[WriteMode, ...] = typing.get_args(WriteMode)


def write_mode(value: str) -> WriteMode:
    """``value`` as a :data:`WriteMode`; ValueError naming the allowed ones if it is none."""
    for mode in WRITE_MODES:
        if value == mode:
            return mode
    raise ValueError(f"write mode must be one of {', '.join(WRITE_MODES)}, got {value!r}")


def part_path(results_dir: str | Path, seq: int, kind: str) -> Path:
    """``<results_dir>/parts/<seq>.<kind>.parquet``."""
    return Path(results_dir) / PARTS_DIR / f"{seq:08d}.{kind}.parquet"


def part_files(results_dir: str | Path, kind: str) -> list[tuple[int, Path]]:
    """The ``kind`` part files of a folder as (seq, path), oldest first."""
    directory = Path(results_dir) / PARTS_DIR
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _PART_NAME.match(path.name)
        if match and match["kind"] == kind:
            found.append((int(match["seq"]), path))
    return sorted(found)


def last_part_seq(results_dir: str | Path) -> int:
    """The highest part number in the folder, merged ones included (0 when there is none)."""
    seqs = [seq for kind in BASE_FILES for seq, _ in part_files(results_dir, kind)]
    through = [parts_through(results_dir, kind) for kind in BASE_FILES]
    return max([0, *seqs, *through])


def write_part(results_dir: str | Path, seq: int, table: pa.Table, kind: str) -> Path:
    """Write one part file atomically (schema checked as for the base files)."""
    path = part_path(results_dir, seq, kind)
    write_results(table, path, kind)
    return path


def parts_through(results_dir: str | Path, kind: str) -> int:
    """The last part number the base ``kind`` file includes (0: none, or no base file)."""
    path = Path(results_dir) / BASE_FILES[kind]
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return 0
    try:
        return int(metadata.get(PARTS_THROUGH_KEY, b"0"))
    except ValueError:
        return 0


def with_parts_through(table: pa.Table, seq: int) -> pa.Table:
    """``table`` with :data:`PARTS_THROUGH_KEY` set, for writing it as a base file."""
    metadata = dict(table.schema.metadata or {})
    metadata[PARTS_THROUGH_KEY] = str(int(seq)).encode()
    return table.replace_schema_metadata(metadata)


def _latest_per_key(table: pa.Table, kind: str) -> pa.Table:
    """One row per key, the last one in ``table`` order, sorted by key."""
    keys = list(KEYS[kind])
    if table.num_rows == 0:
        return table
    order = "_tune_grid_row"
    indexed = table.append_column(order, pa.array(range(table.num_rows), pa.int64()))
    last = indexed.group_by(keys, use_threads=False).aggregate([(order, "max")])
    picked = table.take(last.column(f"{order}_max"))
    return picked.sort_by([(k, "ascending") for k in keys])


def read_merged(results_dir: str | Path, kind: str) -> pa.Table:
    """The base ``kind`` file plus every part after it (the latest row per key wins).

    Raises :class:`ResultsSchemaError` when the folder has neither a base file nor parts, or a
    file is unreadable or of another schema version.
    """
    results_dir = Path(results_dir)
    base_path = results_dir / BASE_FILES[kind]
    through = 0
    tables: list[pa.Table] = []
    if base_path.exists():
        base = read_results(base_path, kind)
        through = int((base.schema.metadata or {}).get(PARTS_THROUGH_KEY, b"0"))
        tables.append(base)
    for seq, path in part_files(results_dir, kind):
        if seq <= through:
            continue
        try:
            tables.append(read_results(path, kind))
        except ResultsSchemaError:
            if path.exists():
                raise
            continue  # merged and deleted by another process since the listing
    if not tables:
        raise ResultsSchemaError(f"{base_path}: no such file (expected a tune-grid {kind} file)")
    if len(tables) == 1:
        return tables[0]
    metadata = tables[0].schema.metadata
    merged = pa.concat_tables(
        [t.replace_schema_metadata(None) for t in tables], promote_options="default"
    )
    merged = _latest_per_key(merged, kind).replace_schema_metadata(metadata)
    check_table(merged, kind, str(base_path))
    return merged


def merge_parts(results_dir: str | Path) -> int:
    """Fold every part into the base files (:func:`read_merged` of each kind); return how many
    part files (of both kinds) were merged and deleted.

    Columnar work only (read, concatenate, keep the latest row per key, write), so a running
    driver can merge tens of thousands of rows in a fraction of a second. The base files must
    exist: the first merge of a search builds them from its records.
    """
    merged_through = min(parts_through(results_dir, kind) for kind in BASE_FILES)
    through = max(
        (seq for kind in BASE_FILES for seq, _ in part_files(results_dir, kind)), default=0
    )
    if through <= merged_through:
        return 0
    tables = {kind: read_merged(results_dir, kind) for kind in ("iterations", "trials")}
    for kind, table in tables.items():  # iterations first, as a flush writes them
        write_results(
            with_parts_through(table, through), Path(results_dir) / BASE_FILES[kind], kind
        )
    return remove_parts_through(results_dir, through)


def remove_parts_through(results_dir: str | Path, seq: int) -> int:
    """Delete the part files numbered ``<= seq`` (already merged); return how many."""
    removed = 0
    for kind in BASE_FILES:
        for number, path in part_files(results_dir, kind):
            if number <= seq:
                path.unlink(missing_ok=True)
                removed += 1
    return removed


__all__ = [
    "PARTS_DIR",
    "PARTS_THROUGH_KEY",
    "last_part_seq",
    "merge_parts",
    "part_files",
    "parts_through",
    "read_merged",
    "remove_parts_through",
    "with_parts_through",
    "write_part",
]
