"""On-disk cache of oracle days: one small JSON file per (split, date, key).

Location: ``$TUNE_GRID_CACHE/oracle`` when the environment variable ``TUNE_GRID_CACHE`` is set
(the root of every tune-grid cache), else ``~/.cache/tune_grid/oracle``. The key hashes everything
that changes an oracle day's numbers (see :func:`tune_grid.oracle.core.cache_key`), so a stale
entry is never read: a changed network, config or data simply misses. Delete the folder to clear.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

ENV_VAR = "TUNE_GRID_CACHE"


def cache_dir(override: str | Path | None = None) -> Path:
    """The oracle cache folder (``override`` first, then ``$TUNE_GRID_CACHE/oracle``, then home)."""
    if override is not None:
        return Path(override)
    root = os.environ.get(ENV_VAR)
    base = Path(root) if root else Path.home() / ".cache" / "tune_grid"
    return base / "oracle"


def digest(payload: Any) -> str:
    """SHA-256 (hex, 20 chars) of a JSON-serializable payload with sorted keys."""
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def to_record(day: Any) -> dict[str, Any]:
    """A cached day dataclass (``OracleDay``, ``MpcDay``) as its stored record: every field but
    ``cached``, which says where a loaded one came from."""
    record = dataclasses.asdict(day)
    record.pop("cached")
    return record


def from_record(cls: type[T], record: Mapping[str, Any], cached: bool = True) -> T:
    """The day dataclass ``cls`` of a stored record (:func:`to_record`)."""
    names = {f.name for f in dataclasses.fields(cls)} - {"cached"}  # type: ignore[arg-type]
    values: dict[str, Any] = {k: record[k] for k in names}
    values["cached"] = cached
    return cls(**values)


def entry_path(directory: Path, split: str, date: str, key: str) -> Path:
    return directory / f"{split}_{date}_{key}.json"


def load(path: Path) -> dict[str, Any] | None:
    """The stored record, or None when missing or unreadable."""
    try:
        with path.open() as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def store(path: Path, record: dict[str, Any]) -> None:
    """Write atomically (temp file + rename), so concurrent searches never read half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp_", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- shipped tables: read-only cache entries that come with the package --------------------


def shipped_table_path(filename: str) -> Path:
    """``tune_grid/data/<filename>``: a table of days solved once for the default env config, so
    a first search on a fresh machine solves none of them."""
    return Path(str(resources.files("tune_grid") / "data" / filename))


@functools.lru_cache(maxsize=8)
def shipped_records(filename: str) -> dict[str, dict[str, Any]]:
    """A shipped table's records by cache key (empty when the package has no such table)."""
    import pandas as pd

    path = shipped_table_path(filename)
    if not path.exists():
        return {}
    table = pd.read_parquet(path)
    return {str(k): json.loads(r) for k, r in zip(table["key"], table["record"], strict=True)}


def write_shipped_table(
    filename: str,
    records: Mapping[str, Mapping[str, Any]],
    columns: Mapping[str, list[Any]] | None = None,
    path: Path | None = None,
) -> Path:
    """Write ``records`` (cache key -> stored record with a ``date``) as a shipped table, with
    any further ``columns`` (one value per record) for a reader of the file."""
    import pandas as pd

    path = path or shipped_table_path(filename)
    table = pd.DataFrame(
        {
            "key": list(records),
            "date": [r["date"] for r in records.values()],
            **dict(columns or {}),
            "record": [json.dumps(r, separators=(",", ":")) for r in records.values()],
        }
    )
    table.to_parquet(path, index=False)
    shipped_records.cache_clear()
    return path
