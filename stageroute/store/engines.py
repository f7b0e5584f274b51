"""The engines that compute the store's fine table (``store.aggregate``) from the logs.

Every engine runs the same aggregation over the same prepared rows: the logs' columns typed as
the contract says, the separate feedback joined by request id (its reward wins), costs priced
from tokens when the logs have no cost column, and each row's store window. It returns three
tables: the fine table (keys, bin, ``FINE_SCHEMA`` columns, and one violation count per rule of
the contract the footers do not vouch for), which windows each file touched with how many rows,
and (request ids, distinct hashed ids) for the uniqueness check.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from stageroute.inputs.checks import LogScan, pass_checks, rules
from stageroute.store.aggregate import fine_polars, segment_column, window_index

KEYS = ["model", "segment", "window"]
MEMORY_AMOUNT = re.compile(r"\d+(\.\d+)?\s*[KMGT]?i?B", re.IGNORECASE)  # --memory-limit
LOCAL_SPARK = "local[*]"  # --spark-master's default: Spark in this process, on every core


@dataclass(frozen=True, slots=True)
class Job:
    """What to read: every row of ``whole`` files, and the rows of ``partial`` files that fall in
    the ``windows`` being rebuilt; windows of ``length`` from ``anchor``."""

    scan: LogScan
    whole: tuple[str, ...]
    partial: tuple[str, ...]
    windows: tuple[int, ...]
    anchor: dt.datetime
    length: dt.timedelta
    memory_limit: str | None = None
    spark_master: str = LOCAL_SPARK


@dataclass(frozen=True, slots=True)
class Tables:
    fine: pl.DataFrame  # KEYS + FINE_SCHEMA + bad_*/sum_* counts
    file_windows: pl.DataFrame  # file, window, rows
    ids: pl.DataFrame  # unique, rows (hashed request ids over the rows read)


def polars_tables(job: Job) -> Tables:
    """The tables by Polars' streaming engine."""
    scan = dataclasses.replace(
        job.scan, source=dataclasses.replace(job.scan.source, files=job.whole + job.partial))
    file_col = scan.source.file_column
    data = scan.prepare(scan.source.scan(with_file=True), extras=(file_col,))
    data = data.with_columns(window_index(pl.col("timestamp"), job.anchor, job.length))
    if job.partial:
        data = data.filter(pl.col(file_col).is_in(list(job.whole))
                           | pl.col("window").is_in(list(job.windows)))
    data = data.with_columns(segment_column(data.collect_schema()))
    fine = fine_polars(data, KEYS, pass_checks(scan, rules(scan), full_check=True))
    per_file = data.group_by(pl.col(file_col).alias("file"), "window").agg(
        pl.len().cast(pl.Int64).alias("rows"))
    ids = data.select(pl.col("request_id").hash(seed=0).n_unique().alias("unique"),
                      pl.len().alias("rows"))
    fine_df, per_file_df, ids_df = pl.collect_all([fine, per_file, ids], engine="streaming")
    return Tables(fine_df, per_file_df, ids_df)


def _duckdb(job: Job) -> Tables:
    from stageroute.store.duckdb_engine import duckdb_tables

    return duckdb_tables(job)


def _spark(job: Job) -> Tables:
    from stageroute.store.spark_engine import spark_tables

    return spark_tables(job)


RUNNERS: dict[str, Callable[[Job], Tables]] = {"polars": polars_tables, "duckdb": _duckdb,
                                                "spark": _spark}
ENGINES = tuple(RUNNERS)


def run(engine: str, job: Job) -> Tables:
    """The tables by ``engine``, one of ``ENGINES`` (``StoreOptions`` checks the user's choice)."""
    return RUNNERS[engine](job)
