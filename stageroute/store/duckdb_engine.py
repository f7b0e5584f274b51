"""The DuckDB engine: the store's aggregation (``store.sql``) over ``read_parquet``, for logs
larger than the memory of one machine: ``--memory-limit`` caps DuckDB's memory, beyond which its
operators spill to a temporary directory (removed at the end)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import polars as pl

from stageroute.errors import EngineUnavailableError, UsageError
from stageroute.inputs.sources import unreadable
from stageroute.store.engines import MEMORY_AMOUNT, Job, Tables
from stageroute.store.sql import (
    CATALOG,
    DUCKDB,
    FEEDBACK,
    FILE,
    LOGS,
    WHOLE,
    catalog_frame,
    fine_frame,
    queries,
    write_feedback,
)

INSTALL = "pip install 'stageroute[duckdb]'"


def load_duckdb() -> ModuleType:
    """The duckdb module, or the error that says how to install it."""
    try:
        import duckdb
    except ImportError:
        raise EngineUnavailableError(
            f"--engine duckdb needs the duckdb package, which is not installed; install it with: "
            f"{INSTALL}") from None
    return duckdb


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _read(files: tuple[str, ...], hive: bool, whole: bool) -> str:
    listed = ", ".join(_literal(f) for f in files)
    return (f"SELECT *, {str(whole).lower()} AS {WHOLE} FROM read_parquet([{listed}], "
            f"union_by_name = true, hive_partitioning = {str(hive).lower()}, "
            f"filename = '{FILE}')")


def _connect(duckdb: ModuleType, job: Job, tmp: str) -> Any:
    limit = job.memory_limit
    if limit is not None and not MEMORY_AMOUNT.fullmatch(limit.strip()):
        raise UsageError(f"--memory-limit must be an amount of memory such as 2GB or 512MB, got "
                         f"{limit!r}")
    con = duckdb.connect(":memory:")
    con.execute(f"SET temp_directory = {_literal(tmp)}")
    con.execute("SET preserve_insertion_order = false")
    if limit is not None:
        try:
            con.execute(f"SET memory_limit = {_literal(limit.strip())}")
        except duckdb.Error as exc:
            con.close()
            raise UsageError(f"--memory-limit {limit!r} is not a memory amount DuckDB takes "
                             f"({str(exc).splitlines()[0]}); give e.g. 2GB") from None
    return con


def duckdb_tables(job: Job) -> Tables:
    """The tables by DuckDB (same columns and types as ``engines.polars_tables``)."""
    duckdb = load_duckdb()
    scan = job.scan
    with tempfile.TemporaryDirectory(prefix="stageroute-duckdb-") as tmp:
        con = _connect(duckdb, job, tmp)
        try:
            con.register(CATALOG, catalog_frame(scan).to_arrow())
            fb_path = str(Path(tmp) / "feedback.parquet")
            feedback = write_feedback(scan, fb_path)
            if feedback:
                con.execute(f"CREATE VIEW {FEEDBACK} AS SELECT * FROM read_parquet("
                            f"{_literal(fb_path)})")
            parts = [_read(job.whole, scan.source.hive, True)] if job.whole else []
            parts += [_read(job.partial, scan.source.hive, False)] if job.partial else []
            con.execute(f"CREATE VIEW {LOGS} AS {' UNION ALL BY NAME '.join(parts)}")
            sql = queries(scan, DUCKDB, job.windows if job.partial else None, job.anchor,
                          job.length, feedback)
            fine = con.sql(sql.fine).pl()
            files = con.sql(sql.file_windows).pl()
            ids = con.sql(sql.ids).pl()
        except duckdb.Error as exc:
            raise unreadable(scan.source, exc) from None
        finally:
            con.close()
    return Tables(fine_frame(fine), files.select(pl.col("file").cast(pl.String),
                                                 pl.col("win").cast(pl.Int64).alias("window"),
                                                 pl.col("rows").cast(pl.Int64)),
                  ids.select(pl.col("unique").cast(pl.Int64), pl.col("rows").cast(pl.Int64)))
