"""What Parquet footers say about a set of files, read without touching any data page.

``plan`` trusts these statistics where they vouch for a rule of the data contract (null counts,
value ranges, the time span), so that its one pass over the logs reads only what it needs.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Footers:
    """What the Parquet footers say about the logs, without reading any data page."""

    rows: int
    ts_min: dt.datetime | None  # None: some row group has no statistics
    ts_max: dt.datetime | None
    nulls: dict[str, int | None]  # per column; None: unknown
    ranges: dict[str, tuple[float, float] | None]  # numeric min/max (NaN excluded); None: unknown
    # (every column asked for except the timestamp)
    groups: tuple[tuple[str, int, int], ...]  # (file, row group, rows) in file order


def read_footers(files: tuple[str, ...], columns: tuple[str, ...]) -> Footers | None:
    """Read every file's footer (cheap); None if a file cannot be inspected."""
    import pyarrow.parquet as pq

    rows = 0
    groups: list[tuple[str, int, int]] = []
    ts: list[tuple[object, object]] = []
    ts_known = True
    nulls: dict[str, int | None] = dict.fromkeys(columns, 0)
    # The time span has its own fields (ts_min, ts_max); ranges are for numeric columns.
    ranges: dict[str, list[float] | None] = {c: [math.inf, -math.inf] for c in columns
                                             if c != "timestamp"}
    try:
        for file in files:
            meta = pq.ParquetFile(file).metadata
            rows += meta.num_rows
            for g in range(meta.num_row_groups):
                group = meta.row_group(g)
                groups.append((file, g, group.num_rows))
                index = {group.column(i).path_in_schema: i for i in range(group.num_columns)}
                if group.num_rows == 0:
                    continue
                for column in columns:
                    stats: Any = group.column(index[column]).statistics if column in index else None
                    count = nulls[column]
                    has_nulls = stats is not None and stats.has_null_count
                    nulls[column] = count + stats.null_count if has_nulls and count is not None else None
                    has_range = stats is not None and stats.has_min_max
                    if column == "timestamp":
                        if has_range:
                            ts.append((stats.min, stats.max))
                        elif group.num_rows > (stats.null_count if has_nulls else 0):
                            ts_known = False
                        continue
                    span = ranges[column]
                    if span is not None and has_range and isinstance(stats.min, int | float):
                        span[0], span[1] = min(span[0], stats.min), max(span[1], stats.max)
                    elif span is not None and not (has_nulls and stats.null_count == group.num_rows):
                        ranges[column] = None
    except (OSError, ValueError, KeyError, TypeError):  # let the scan report unreadable files
        return None

    def utc(value: object) -> dt.datetime | None:
        if not isinstance(value, dt.datetime):
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)

    lows = [utc(lo) for lo, _ in ts]
    highs = [utc(hi) for _, hi in ts]
    known = ts_known and all(x is not None for x in lows + highs)
    return Footers(
        rows=rows,
        ts_min=min(lows) if known and lows else None,  # type: ignore[type-var]
        ts_max=max(highs) if known and highs else None,  # type: ignore[type-var]
        nulls=nulls,
        ranges={c: (r[0], r[1]) if r is not None else None for c, r in ranges.items()},
        groups=tuple(groups),
    )
