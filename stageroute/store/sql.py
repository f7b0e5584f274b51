"""The store's aggregation as SQL, which the DuckDB and Spark engines both run (SPEC 9).

The queries read a relation of the logs' columns plus the file of each row and whether that file
is read whole (``LOGS``), the feedback (``FEEDBACK``: request_id, reward) and the catalog
(``CATALOG``: model and its token prices). They prepare the rows as ``LogScan.prepare`` does
(types, times in UTC, the feedback's reward first, costs priced from tokens), put each in its
store window (``aggregate.window_sql``) and cost bin (``aggregate.cost_bin_sql``), and aggregate
with ``aggregate.FINE_SQL``. The violation counts (``bad_*``) are the contract's rules
(``checks.rules``) in SQL: each is above 0 exactly when some row breaks that rule, and the
Polars error path (``checks.report_violations``) then names the row.

Only the few spellings that differ between the two SQL dialects live in ``Dialect``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from stageroute.inputs.checks import FEEDBACK_REWARD, MAX_AMOUNT, LogScan
from stageroute.store.aggregate import (
    FINE_SCHEMA,
    FINE_SQL,
    cost_bin_sql,
    segment_sql,
    window_sql,
)

LOGS, FEEDBACK, CATALOG = "stageroute_logs", "stageroute_feedback", "stageroute_catalog"
FILE, WHOLE = "stageroute_file", "stageroute_whole"  # columns the engines add to LOGS
NUMBERS = ("reward", "cost", "propensity", "input_tokens", "output_tokens")
GROUP = ("model", "segment", "win", "cb")  # the fine table's keys as the queries name them


@dataclass(frozen=True, slots=True)
class Dialect:
    quote: str  # identifier quote
    epoch_us: str  # microseconds since the epoch of a timestamp ({ts})
    epoch_us_of_ns: str  # the same of a nanosecond timestamp, floored as Polars does
    div: str  # integer division operator
    hash64: str  # a 64-bit hash function

    def micros(self, ts: str, dtype: pl.DataType | None) -> str:
        """Microseconds since the epoch of the column ``ts`` of Polars type ``dtype``."""
        nanos = isinstance(dtype, pl.Datetime) and dtype.time_unit == "ns"
        return (self.epoch_us_of_ns if nanos else self.epoch_us).format(ts=ts)


# DuckDB has no epoch_us of TIMESTAMPTZ_NS (tz-aware nanoseconds); epoch_ns of it is exact and
# in range (a nanosecond column ends in 2262)
DUCKDB = Dialect('"', "epoch_us({ts})",
                 "(epoch_ns({ts}) - ((epoch_ns({ts}) % 1000 + 1000) % 1000)) // 1000", "//", "hash")
SPARK = Dialect("`", "unix_micros(CAST({ts} AS TIMESTAMP))",
                "unix_micros(CAST({ts} AS TIMESTAMP))", "div", "xxhash64")


@dataclass(frozen=True, slots=True)
class Queries:
    fine: str  # model, segment, win, cb, FINE_SQL columns, bad_* counts
    file_windows: str  # file, win, rows
    ids: str  # unique, rows


def _rules(scan: LogScan) -> dict[str, str]:
    """Each rule of ``checks.rules`` as a SQL condition over the prepared rows (NaN is above
    every number and equal to itself in both dialects; ``x - x = 0`` is false for NaN and the
    infinities, null for null)."""
    big = repr(MAX_AMOUNT)
    out = {f"{tok}": f"{tok} < 0 OR NOT ({tok} - {tok} = 0) OR {tok} > {big}"
           for tok in ("input_tokens", "output_tokens") if tok in scan.schema}
    out |= {
        "request_id": "request_id IS NULL",
        "timestamp": "ts_us IS NULL",
        "model": "model IS NULL",
        "reward": "isnan(reward) OR reward < 0 OR reward > 1",
        "cost_empty": "cost IS NULL AND known",
        "cost": f"NOT (cost - cost = 0) OR cost < 0 OR cost > {big}",
    }
    if "propensity" in scan.schema:
        out["propensity"] = "isnan(propensity) OR propensity <= 0 OR propensity > 1"
    return out


def _prepared(scan: LogScan, d: Dialect, windows: tuple[int, ...] | None,
              anchor: dt.datetime, length: dt.timedelta, feedback: bool) -> str:
    """The CTEs ``selected`` (typed rows of the job, with file and window) and ``binned``
    (prepared as ``LogScan.prepare`` does, with the cost bin)."""
    q = d.quote
    schema = scan.schema

    def col(name: str, sql_type: str) -> str:
        source = f"{q}{name}{q}" if name in schema else "NULL"
        return f"CAST({source} AS {sql_type}) AS {name}"

    base = ", ".join([
        col("request_id", "STRING"),
        d.micros(f"{q}timestamp{q}", schema.get("timestamp")) + " AS ts_us",
        col("model", "STRING"), segment_sql(schema, q),
        *(col(c, "DOUBLE") for c in NUMBERS), f"{FILE} AS file_", f"{WHOLE} AS whole_"])
    win = window_sql("ts_us", anchor, length, d.div)
    keep = "" if windows is None else (
        f" WHERE whole_ OR win IN ({', '.join(str(w) for w in windows) or 'NULL'})")
    reward = "coalesce(f.reward, r.reward)" if feedback else "r.reward"
    cost = ("(r.input_tokens * c.usd_per_mtok_in + r.output_tokens * c.usd_per_mtok_out) / 1e6"
            if scan.cost_from_tokens else "r.cost")
    join_fb = f" LEFT JOIN {FEEDBACK} f ON r.request_id = f.request_id" if feedback else ""
    return (
        f"WITH based AS (SELECT {base} FROM {LOGS}), "
        f"selected AS (SELECT * FROM (SELECT *, {win} AS win FROM based) w{keep}), "
        "prepared AS (SELECT r.request_id, r.ts_us, r.model, r.segment, r.win, r.propensity, "
        f"r.input_tokens, r.output_tokens, {reward} AS reward, {cost} AS cost, "
        f"c.model IS NOT NULL AS known FROM selected r{join_fb} "
        f"LEFT JOIN {CATALOG} c ON r.model = c.model), "
        f"binned AS (SELECT *, {cost_bin_sql('cost')} AS cb FROM prepared) "
    )


def queries(scan: LogScan, d: Dialect, partial_windows: tuple[int, ...] | None,
            anchor: dt.datetime, length: dt.timedelta, feedback: bool) -> Queries:
    """The three queries of a job; ``partial_windows``: the windows that rows of files not read
    whole must fall in (None: every file is read whole)."""
    q = d.quote
    head = _prepared(scan, d, partial_windows, anchor, length, feedback)
    aggs = [f"{sql} AS {q}{name}{q}" for name, sql in FINE_SQL.items()]
    bad = [f"sum(CASE WHEN {cond} THEN 1 ELSE 0 END) AS {q}bad_{name}{q}"
           for name, cond in _rules(scan).items()]
    keys = ", ".join(GROUP)
    fine = f"{head}SELECT {keys}, {', '.join(aggs + bad)} FROM binned GROUP BY {keys}"
    files = (f"{head}SELECT file_ AS {q}file{q}, win, count(*) AS {q}rows{q} FROM selected "
             "GROUP BY file_, win")
    ids = (f"{head}SELECT count(*) AS {q}unique{q}, coalesce(sum(n), 0) AS {q}rows{q} FROM "
           f"(SELECT {d.hash64}(request_id) AS h, count(*) AS n FROM selected "
           f"GROUP BY {d.hash64}(request_id)) t")
    return Queries(fine, files, ids)


def fine_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """The engine's fine table with the Polars engine's names and types."""
    micros = [pl.col(c).cast(pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
              for c in ("first_seen", "last_seen")]
    frame = frame.rename({"win": "window", "cb": "bin"}).with_columns(micros)
    bad = [pl.col(c).cast(pl.Int64) for c in frame.columns if c.startswith("bad_")]
    return frame.select(pl.col("model").cast(pl.String), pl.col("segment").cast(pl.String),
                        pl.col("window").cast(pl.Int64),
                        *(pl.col(c).cast(t) for c, t in FINE_SCHEMA.items()), *bad)


def catalog_frame(scan: LogScan) -> pl.DataFrame:
    """The catalog's models and token prices, one row per model (the prices may be absent)."""
    cat = scan.catalog
    return cat.select(
        pl.col("model").cast(pl.String),
        *(pl.col(c).cast(pl.Float64) if c in cat.columns else pl.lit(None, pl.Float64).alias(c)
          for c in ("usd_per_mtok_in", "usd_per_mtok_out"))).unique("model", keep="first")


def write_feedback(scan: LogScan, path: str) -> bool:
    """Write the checked feedback (request_id, reward) to Parquet for the engine to join, by
    Polars' streaming sink; False when there is no separate feedback."""
    if scan.feedback is None:
        return False
    scan.feedback.rename({FEEDBACK_REWARD: "reward"}).sink_parquet(path)
    return True
