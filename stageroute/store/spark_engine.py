"""The Spark engine: the store's aggregation (``store.sql``) by Spark SQL over the same Parquet
files, for logs on a cluster (``--spark-master URL``; ``local[*]`` runs Spark in this process's
machine). One session per process, reused by later runs with the same master.

The files' paths must be readable by every executor (a shared file system or an object store);
the separate feedback is written to a temporary Parquet file on this machine, so with a cluster
master it needs a temporary directory they share (``TMPDIR``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote, urlparse

import polars as pl

from stageroute.errors import EngineUnavailableError, UsageError
from stageroute.inputs.sources import unreadable
from stageroute.store.engines import Job, Tables
from stageroute.store.sql import (
    CATALOG,
    FEEDBACK,
    FILE,
    LOGS,
    SPARK,
    WHOLE,
    catalog_frame,
    fine_frame,
    queries,
    write_feedback,
)

INSTALL = "pip install 'stageroute[spark]'"
JAVA_INSTALL = "apt-get install -y openjdk-17-jre-headless"
MASTERS = re.compile(r"local(\[(\d+|\*)(,\d+)?\])?|local-cluster\[[\d, ]+\]|yarn|(spark|k8s|mesos)://\S+")
_session: tuple[str, Any] | None = None


def load_pyspark() -> ModuleType:
    """The pyspark.sql module once Java is found, or the error that says what to install."""
    try:
        import pyspark.sql
    except ImportError:
        raise EngineUnavailableError(
            f"--engine spark needs the pyspark package, which is not installed; install it with: "
            f"{INSTALL}") from None
    home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (home and Path(home, "bin", "java").is_file()):
        raise EngineUnavailableError(
            f"--engine spark needs Java 17 or newer, and no java is on the PATH (nor in "
            f"JAVA_HOME); install it, e.g. with: {JAVA_INSTALL}")
    return pyspark.sql


def session(master: str) -> Any:
    """The process's Spark session for ``master`` (UTC times), started once. The JVM's own
    output (banners, warnings) is discarded: stageroute does not print, and Spark's errors reach
    it as exceptions."""
    global _session
    if not MASTERS.fullmatch(master):
        raise UsageError(f"--spark-master must be a Spark master URL (local[*], local[4], "
                         f"spark://host:7077, yarn, k8s://...), got {master!r}")
    load_pyspark()
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway
    from pyspark.sql import SparkSession

    if _session is not None and _session[0] == master:
        return _session[1]
    if _session is not None:
        _session[1].stop()
        _session = None
    conf = (SparkConf().setMaster(master).setAppName("stageroute stats")
            .set("spark.sql.session.timeZone", "UTC").set("spark.ui.enabled", "false")
            .set("spark.ui.showConsoleProgress", "false"))
    try:
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        gateway = launch_gateway(conf, popen_kwargs=quiet)  # type: ignore[no-untyped-call]
        context = SparkContext(conf=conf, gateway=gateway)
    except Exception as exc:  # pyspark raises plain runtime errors when the JVM cannot start
        raise EngineUnavailableError(
            f"--engine spark could not start Spark with master {master!r} ({exc}); check the "
            f"master URL and that Java 17 or newer is installed (e.g. {JAVA_INSTALL})") from None
    context.setLogLevel("ERROR")
    _session = (master, SparkSession(context))
    return _session[1]


def _read(spark: Any, job: Job, files: tuple[str, ...], whole: bool) -> Any:
    from pyspark.sql import functions as f

    reader = spark.read.option("mergeSchema", "true")
    if job.scan.source.hive:
        reader = reader.option("basePath", job.scan.source.label)
    return (reader.parquet(*files).withColumn(FILE, f.col("_metadata.file_path"))
            .withColumn(WHOLE, f.lit(whole)))


def _local_path(uri: str) -> str:
    """A path as Spark names it (``file:///a%20b``) as a local path."""
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme in ("", "file") else uri


def _rows(spark: Any, query: str) -> pl.DataFrame:
    result = spark.sql(query)
    return pl.DataFrame([tuple(r) for r in result.collect()], schema=result.columns,
                        orient="row", infer_schema_length=None)


def spark_tables(job: Job) -> Tables:
    """The tables by Spark (same columns and types as ``engines.polars_tables``)."""
    spark = session(job.spark_master)
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    scan = job.scan
    with tempfile.TemporaryDirectory(prefix="stageroute-spark-") as tmp:
        try:
            catalog = catalog_frame(scan)
            spark.createDataFrame(
                catalog.rows(), "model STRING, usd_per_mtok_in DOUBLE, usd_per_mtok_out DOUBLE",
            ).createOrReplaceTempView(CATALOG)
            fb_path = str(Path(tmp) / "feedback.parquet")
            feedback = write_feedback(scan, fb_path)
            if feedback:
                spark.read.parquet(fb_path).createOrReplaceTempView(FEEDBACK)
            parts = [_read(spark, job, job.whole, True)] if job.whole else []
            parts += [_read(spark, job, job.partial, False)] if job.partial else []
            logs = parts[0]
            for part in parts[1:]:
                logs = logs.unionByName(part, allowMissingColumns=True)
            logs.createOrReplaceTempView(LOGS)
            sql = queries(scan, SPARK, job.windows if job.partial else None, job.anchor,
                          job.length, feedback)
            fine, files, ids = (_rows(spark, q) for q in (sql.fine, sql.file_windows, sql.ids))
        except (PySparkException, Py4JError) as exc:
            raise unreadable(scan.source, exc) from None
    named = {os.path.abspath(f): f for f in (*job.whole, *job.partial)}
    files = files.with_columns(pl.col("file").map_elements(
        lambda uri: named.get(os.path.abspath(_local_path(uri)), _local_path(uri)),
        return_dtype=pl.String))
    return Tables(fine_frame(fine), files.select("file", pl.col("win").cast(pl.Int64).alias("window"),
                                                 pl.col("rows").cast(pl.Int64)),
                  ids.select(pl.col("unique").cast(pl.Int64), pl.col("rows").cast(pl.Int64)))
