"""The footer reader: what Parquet footers say about rows, time span, nulls and value ranges.

``plan`` trusts these figures in place of reading data pages, so each one is checked against the
data it summarises, including the cases where the footer must say "unknown".
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import small_logs

from stageroute.inputs.footers import read_footers

UTC = dt.UTC
COLUMNS = ("request_id", "timestamp", "reward", "cost")


def test_one_file_rows_span_nulls_ranges(tmp_path: Path) -> None:
    frame = small_logs()
    frame.write_parquet(tmp_path / "a.parquet")
    footers = read_footers((str(tmp_path / "a.parquet"),), COLUMNS)
    assert footers is not None
    assert footers.rows == 30
    assert footers.ts_min == dt.datetime(2026, 2, 27, tzinfo=UTC)
    assert footers.ts_max == dt.datetime(2026, 2, 28, 5, tzinfo=UTC)
    assert footers.nulls == {"request_id": 0, "timestamp": 0, "reward": frame["reward"].null_count(),
                             "cost": 0}
    assert footers.ranges["reward"] == (frame["reward"].min(), frame["reward"].max())
    assert footers.ranges["cost"] == pytest.approx((0.001, 0.003))
    assert footers.groups == ((str(tmp_path / "a.parquet"), 0, 30),)


def test_row_groups_and_files_are_merged_in_order(tmp_path: Path) -> None:
    frame = small_logs()
    pq.write_table(frame.head(20).to_arrow(), tmp_path / "a.parquet", row_group_size=8)
    pq.write_table(frame.tail(10).with_columns(cost=pl.col("cost") * 100).to_arrow(),
                   tmp_path / "b.parquet")
    files = (str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet"))
    footers = read_footers(files, COLUMNS)
    assert footers is not None
    assert footers.rows == 30
    assert footers.groups == ((files[0], 0, 8), (files[0], 1, 8), (files[0], 2, 4), (files[1], 0, 10))
    assert footers.ranges["cost"] == pytest.approx((0.001, 0.3))
    assert footers.ts_max == dt.datetime(2026, 2, 28, 5, tzinfo=UTC)


def test_naive_timestamps_are_utc(tmp_path: Path) -> None:
    small_logs().with_columns(pl.col("timestamp").dt.replace_time_zone(None)).write_parquet(
        tmp_path / "a.parquet")
    footers = read_footers((str(tmp_path / "a.parquet"),), COLUMNS)
    assert footers is not None and footers.ts_min == dt.datetime(2026, 2, 27, tzinfo=UTC)


def test_zoned_timestamps_are_converted_to_utc(tmp_path: Path) -> None:
    small_logs().with_columns(pl.col("timestamp").dt.convert_time_zone("Asia/Tokyo")).write_parquet(
        tmp_path / "a.parquet")
    footers = read_footers((str(tmp_path / "a.parquet"),), COLUMNS)
    assert footers is not None and footers.ts_max == dt.datetime(2026, 2, 28, 5, tzinfo=UTC)


def test_without_statistics_everything_is_unknown(tmp_path: Path) -> None:
    small_logs().write_parquet(tmp_path / "a.parquet", statistics=False)
    footers = read_footers((str(tmp_path / "a.parquet"),), COLUMNS)
    assert footers is not None
    assert footers.rows == 30  # row counts are always in the footer
    assert footers.ts_min is None and footers.ts_max is None
    assert footers.ranges == {"request_id": None, "reward": None, "cost": None}
    assert all(footers.nulls[c] is None for c in COLUMNS)


def test_a_column_missing_from_one_file_is_unknown(tmp_path: Path) -> None:
    small_logs().head(15).write_parquet(tmp_path / "a.parquet")
    small_logs().tail(15).with_columns(propensity=pl.lit(0.5)).write_parquet(tmp_path / "b.parquet")
    files = (str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet"))
    footers = read_footers(files, (*COLUMNS, "propensity"))
    assert footers is not None
    assert footers.ranges["propensity"] is None
    assert footers.nulls["propensity"] is None
    assert footers.ranges["cost"] == pytest.approx((0.001, 0.003))


def test_an_all_null_group_does_not_hide_the_range_of_the_others(tmp_path: Path) -> None:
    frame = small_logs().with_columns(
        pl.when(pl.int_range(pl.len()) < 10).then(None).otherwise(pl.col("reward")).alias("reward"))
    pq.write_table(frame.to_arrow(), tmp_path / "a.parquet", row_group_size=10)
    footers = read_footers((str(tmp_path / "a.parquet"),), COLUMNS)
    assert footers is not None
    assert footers.ranges["reward"] == (frame["reward"].min(), frame["reward"].max())
    assert footers.nulls["reward"] == frame["reward"].null_count()


def test_nan_never_enters_a_range(tmp_path: Path) -> None:
    frame = small_logs().with_columns(reward=pl.Series([float("nan")] + [0.5] * 29))
    frame.write_parquet(tmp_path / "a.parquet")
    footers = read_footers((str(tmp_path / "a.parquet"),), COLUMNS)
    assert footers is not None
    span = footers.ranges["reward"]
    assert span is None or all(math.isfinite(x) for x in span)


def test_empty_groups_are_skipped(tmp_path: Path) -> None:
    pq.write_table(small_logs().head(0).to_arrow(), tmp_path / "empty.parquet")
    small_logs().write_parquet(tmp_path / "a.parquet")
    files = (str(tmp_path / "empty.parquet"), str(tmp_path / "a.parquet"))
    footers = read_footers(files, COLUMNS)
    assert footers is not None
    assert footers.rows == 30
    assert footers.ts_min == dt.datetime(2026, 2, 27, tzinfo=UTC)
    assert footers.ranges["reward"] is not None


@pytest.mark.parametrize("content", [b"", b"PAR1 not really parquet", b"\x00" * 100])
def test_an_unreadable_file_gives_none(tmp_path: Path, content: bytes) -> None:
    """The scan, not the footer reader, reports unreadable files (with the file named)."""
    (tmp_path / "bad.parquet").write_bytes(content)
    small_logs().write_parquet(tmp_path / "a.parquet")
    assert read_footers((str(tmp_path / "a.parquet"), str(tmp_path / "bad.parquet")), COLUMNS) is None


def test_string_statistics_do_not_make_a_numeric_range(tmp_path: Path) -> None:
    table = pa.table({"request_id": ["a", "b"], "cost": ["1", "2"]})
    pq.write_table(table, tmp_path / "a.parquet")
    footers = read_footers((str(tmp_path / "a.parquet"),), ("request_id", "cost"))
    assert footers is not None
    assert footers.ranges["cost"] is None
