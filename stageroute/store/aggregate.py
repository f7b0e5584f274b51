"""The one aggregation behind every statistic a plan uses, and how partial results merge.

Each engine (Polars here; DuckDB and Spark in ``engines``) computes the same *fine* table: one
row per group (the model, plus the segment and the store window when the store is built) and cost
bin, with the row count, the count, mean and population variance (as M2 = n * var) of reward and
cost, token sums and counts, and the first and last time seen. ``fold`` then merges the bins of a
group with Chan's formula (``estimate.stats.fold``) and keeps the bins' counts as the group's cost
histogram, from which ``cost_quantile`` reads the cost scale (p99.9) exactly however the rows were
split: counts add.

Cost bins are 1/32 of an octave wide (``BINS_PER_OCTAVE``): a quantile read from them is within
1.1% of the exact one. Costs that are not above 0 share ``ZERO_BIN``.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
from numpy.typing import NDArray

from stageroute.estimate.stats import fold as chan_fold
from stageroute.estimate.stats import stats_aggs
from stageroute.inputs.checks import MAX_AMOUNT
from stageroute.inputs.files import quote

BINS_PER_OCTAVE = 32
ZERO_BIN = -(2**31) + 1  # costs of 0 (and of nothing: a null cost)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# The most rows one (window, model, segment) of a store may count: a trillion requests. Every
# other count is at most its rows (``store_problem``), so sums over fewer than 9 million store
# rows stay within int64 (a store that large would hold a million windows of 9 models).
MAX_WINDOW_ROWS = 10**12

# The fine table's value columns (its keys are the group's keys and "bin").
FINE_SCHEMA: dict[str, pl.DataType] = {
    "bin": pl.Int32(),
    "rows": pl.Int64(),
    "n_reward": pl.Int64(),
    "mean_reward": pl.Float64(),
    "m2_reward": pl.Float64(),
    "n_cost": pl.Int64(),
    "mean_cost": pl.Float64(),
    "m2_cost": pl.Float64(),
    "input_tokens": pl.Float64(),
    "n_input_tokens": pl.Int64(),
    "output_tokens": pl.Float64(),
    "n_output_tokens": pl.Int64(),
    "first_seen": pl.Datetime("us", "UTC"),
    "last_seen": pl.Datetime("us", "UTC"),
}
SUMMED = ("rows", "input_tokens", "n_input_tokens", "output_tokens", "n_output_tokens")

# The same aggregations in SQL, which the DuckDB and Spark engines both run (``store.sql``), over
# prepared rows whose time is ``ts_us`` (microseconds since the epoch, UTC); ``fine_aggs`` is the
# Polars form. Sums of nothing are 0, as Polars' are; every other column is as its FINE_SCHEMA.
FINE_SQL: dict[str, str] = {
    "rows": "count(*)",
    **{name: sql for kind in ("reward", "cost") for name, sql in (
        (f"n_{kind}", f"count({kind})"),
        (f"mean_{kind}", f"avg({kind})"),
        (f"m2_{kind}", f"var_pop({kind}) * count({kind})"))},
    **{name: sql for tok in ("input_tokens", "output_tokens") for name, sql in (
        (tok, f"coalesce(sum({tok}), CAST(0 AS DOUBLE))"),
        (f"n_{tok}", f"count({tok})"))},
    "first_seen": "min(ts_us)",
    "last_seen": "max(ts_us)",
}


def segment_column(schema: pl.Schema | dict[str, pl.DataType]) -> pl.Expr:
    """A row's segment in the store: the logs' ``segment`` with null read as "" (as ``plan
    --segments`` reads logs), or null for every row when the logs have no such column (a store
    without segments). ``segment_sql`` is the same rule in SQL."""
    if "segment" not in schema:
        return pl.lit(None, pl.String).alias("segment")
    return pl.col("segment").cast(pl.String).fill_null("")


def segment_sql(schema: pl.Schema | dict[str, pl.DataType], quote: str) -> str:
    """``segment_column`` in SQL (``quote``: the dialect's identifier quote)."""
    if "segment" not in schema:
        return "CAST(NULL AS STRING) AS segment"
    return f"COALESCE(CAST({quote}segment{quote} AS STRING), '') AS segment"


def cost_bin_sql(cost: str) -> str:
    """``cost_bin`` in SQL: log2 as ln(cost) / ln(2), as Polars computes it, so that the bins are
    the same; null for a cost that is not finite (NaN compares above every number in SQL)."""
    return (f"CASE WHEN {cost} IS NULL OR NOT ({cost} > 0) THEN {ZERO_BIN} "
            f"WHEN {cost} - {cost} = 0 THEN CAST(floor(ln({cost}) / ln(2) * {BINS_PER_OCTAVE}) "
            "AS INT) END")


def cost_bin(cost: pl.Expr) -> pl.Expr:
    """The cost's bin: floor(log2(cost) * BINS_PER_OCTAVE), ``ZERO_BIN`` for costs not above 0
    (null where the cost is not finite: the checks reject those rows)."""
    binned = (cost.log(2) * BINS_PER_OCTAVE).floor().cast(pl.Int32, strict=False)
    return pl.when(cost > 0).then(binned).otherwise(pl.lit(ZERO_BIN, pl.Int32)).alias("bin")


def bin_value(bins: NDArray[np.int64]) -> NDArray[np.float64]:
    """A bin's representative cost: its geometric middle (0 for ``ZERO_BIN``)."""
    b = np.asarray(bins, dtype=np.float64)
    return np.where(b == ZERO_BIN, 0.0, np.exp2((b + 0.5) / BINS_PER_OCTAVE))


def _micros(anchor: dt.datetime, length: dt.timedelta) -> tuple[int, int]:
    """The anchor (since the epoch) and the window length in microseconds."""
    return (anchor - EPOCH) // dt.timedelta(microseconds=1), length // dt.timedelta(microseconds=1)


def window_index(ts: pl.Expr, anchor: dt.datetime, length: dt.timedelta) -> pl.Expr:
    """The store window of a time: floor((ts - anchor) / length), windows of ``length`` from
    ``anchor`` (either way in time)."""
    anchor_us, length_us = _micros(anchor, length)
    return ((ts.dt.epoch("us") - anchor_us) // length_us).cast(pl.Int64).alias("window")


def window_sql(ts_us: str, anchor: dt.datetime, length: dt.timedelta, div: str) -> str:
    """``window_index`` in SQL over a time in microseconds (BIGINT): a floor division built from
    the truncating ``%`` and integer division ``div`` (DuckDB ``//``, Spark ``div``), exact."""
    anchor_us, length_us = _micros(anchor, length)
    d = f"({ts_us} - {anchor_us})"
    return f"(({d} - ((({d} % {length_us}) + {length_us}) % {length_us})) {div} {length_us})"


def window_start(index: int, anchor: dt.datetime, length: dt.timedelta) -> dt.datetime:
    """The start of window ``index`` (the inverse of ``window_index``)."""
    return anchor + index * length


def window_start_expr(window: pl.Expr, anchor: dt.datetime, length: dt.timedelta) -> pl.Expr:
    """``window_start`` over a column of window indices (UTC datetimes)."""
    anchor_us, length_us = _micros(anchor, length)
    return ((window * length_us + anchor_us).cast(pl.Datetime("us"))
            .dt.replace_time_zone("UTC").alias("window_start"))


def fine_aggs(columns: set[str] | dict[str, pl.DataType], timed: bool = True,
              tokens: bool = True) -> list[pl.Expr]:
    """The aggregations of the fine table (for a ``group_by(keys + [bin])``) over prepared rows
    (``tokens`` False: token sums left empty, their columns not read)."""
    out = [pl.len().cast(pl.Int64).alias("rows"), *stats_aggs(pl.col("reward"), pl.col("cost"))]
    for tok in ("input_tokens", "output_tokens"):
        t = pl.col(tok) if tok in columns and tokens else pl.lit(None, pl.Float64)
        out += [t.cast(pl.Float64).sum().alias(tok), t.count().cast(pl.Int64).alias(f"n_{tok}")]
    if timed:
        ts = pl.col("timestamp")
        out += [ts.min().alias("first_seen"), ts.max().alias("last_seen")]
    return out


def fine_polars(data: pl.LazyFrame, keys: list[str], extra: list[pl.Expr] = (),  # type: ignore[assignment]
                timed: bool = True, tokens: bool = True) -> pl.LazyFrame:
    """The fine table by Polars' streaming engine: ``data`` grouped by ``keys`` and cost bin."""
    schema = data.collect_schema()
    return data.with_columns(cost_bin(pl.col("cost"))).group_by(*keys, "bin").agg(
        *fine_aggs(schema, timed, tokens), *extra)


def fold(fine: pl.DataFrame, keys: list[str], sums: tuple[str, ...] = (),
         order: list[str] = ()) -> pl.DataFrame:  # type: ignore[assignment]
    """One row per group of ``keys`` from the fine table: the bins merged (Chan, in bin order,
    then in ``order``: further keys of the fine table that the group merges) and their counts
    kept as the cost histogram (``cost_bins``, ``cost_counts``).

    ``sums`` are further columns to add up (the checks' violation counts).
    """
    parts = fine.with_columns(pl.concat_list(pl.col("bin")).alias("cost_bins"),
                              pl.concat_list(pl.col("n_cost")).alias("cost_counts"))
    return combine(parts, keys, order=["bin", *order], sums=sums)


def combine(parts: pl.DataFrame, keys: list[str], order: list[str] = (),  # type: ignore[assignment]
            weight: str | None = None, sums: tuple[str, ...] = ()) -> pl.DataFrame:
    """Merge partial summaries (rows of ``STORE_COLUMNS``) into one row per group of ``keys``.

    Within a group the partials merge in ``order`` (Chan, left to right); sums add, first/last
    seen take the min/max, histograms add bin by bin. With ``weight`` (a column), each partial's
    reward and cost state counts ``weight`` times (n and M2 scaled, the mean kept): counts become
    effective counts. Rows, tokens and histograms are never weighted.
    """
    parts = parts.sort([*keys, *order], nulls_last=True)
    groups = parts.select(keys).unique(maintain_order=True).with_row_index("__group__")
    parts = parts.join(groups, on=keys, how="left", nulls_equal=True, maintain_order="left")
    gid = parts["__group__"].to_numpy().astype(np.int64)
    timed = "first_seen" in parts.columns
    out = parts.group_by(keys, maintain_order=True).agg(
        *[pl.col(c).sum() for c in (*SUMMED, *sums)],
        *([pl.col("first_seen").min(), pl.col("last_seen").max()] if timed else []),
    )
    hist = (parts.select(*keys, "cost_bins", "cost_counts").explode("cost_bins", "cost_counts")
            .filter(pl.col("cost_counts") > 0)
            .group_by(*keys, "cost_bins").agg(pl.col("cost_counts").sum())
            .sort([*keys, "cost_bins"], nulls_last=True)
            .group_by(keys, maintain_order=True).agg("cost_bins", "cost_counts"))
    out = out.join(hist, on=keys, how="left", nulls_equal=True, maintain_order="left").with_columns(
        pl.col("cost_bins").fill_null(pl.lit([], pl.List(pl.Int32))),
        pl.col("cost_counts").fill_null(pl.lit([], pl.List(pl.Int64))))
    w = parts[weight].to_numpy().astype(np.float64) if weight is not None else 1.0
    for kind in ("reward", "cost"):
        def col(name: str) -> NDArray[np.float64]:
            return parts[name].cast(pl.Float64).fill_null(0.0).to_numpy()

        n, mean, m2 = chan_fold(gid, col(f"n_{kind}") * w, col(f"mean_{kind}"),
                                col(f"m2_{kind}") * w, groups.height)
        out = out.with_columns(pl.Series(f"n_{kind}", n if weight is not None else n.astype(np.int64)),
                               pl.Series(f"mean_{kind}", mean), pl.Series(f"m2_{kind}", m2))
    # An empty side is null (no sample); a NaN from the data stays NaN for the checks to see.
    return out.with_columns(
        pl.when(pl.col(f"n_{k}") > 0).then(pl.col(f"mean_{k}")).alias(f"mean_{k}")
        for k in ("reward", "cost"))


def cost_quantile(bins: pl.Series, counts: pl.Series, q: float = 0.999) -> float | None:
    """The ``q`` quantile of the costs counted in histogram lists (nearest rank, as Polars'
    ``quantile(q, "nearest")``), at the bin's middle; None without a cost."""
    hist = (pl.DataFrame({"bin": bins, "n": counts}).explode("bin", "n").drop_nulls()
            .group_by("bin").agg(pl.col("n").sum()).sort("bin"))
    total = int(hist["n"].sum()) if hist.height else 0
    if total == 0:
        return None
    rank = int(math.floor(q * (total - 1) + 0.5))
    cumulative = np.cumsum(hist["n"].to_numpy())
    at = int(np.searchsorted(cumulative, rank, side="right"))
    return float(bin_value(np.array([hist["bin"][at]]))[0])


def store_problem(frame: pl.DataFrame) -> str | None:
    """What makes store rows (``layout.STORE_SCHEMA``) unusable, naming the first such row's
    window and model, or None. A plan reads the store's counts and moments as they are, so
    they are checked as the logs' values are: present, finite, in range, one row per
    (window, model, segment)."""
    counts = ["rows", "n_reward", "n_cost", "n_input_tokens", "n_output_tokens"]
    required = ["window_start", "window", *counts, "input_tokens", "output_tokens",
                "first_seen", "last_seen", "cost_bins", "cost_counts"]
    rules: list[tuple[pl.Expr, str]] = [(pl.col(c).is_null(), f"column '{c}' is empty")
                                        for c in required]
    rules += [(pl.col(c) < 0, f"column '{c}' is negative") for c in counts]
    rules += [(pl.col("rows") > MAX_WINDOW_ROWS, f"column 'rows' is above {MAX_WINDOW_ROWS:.0e}, "
               "more requests than one window of one model holds (sums of such counts overflow)")]
    rules += [(pl.any_horizontal(pl.col(c) > pl.col("rows") for c in counts[1:]),
               "counts more rewards, costs or token values than rows")]
    for n, mean, m2, lo, hi in (("n_reward", "mean_reward", "m2_reward", 0.0, 1.0),
                                ("n_cost", "mean_cost", "m2_cost", 0.0, MAX_AMOUNT)):
        seen = pl.col(n) > 0
        rules += [(seen & ~pl.col(c).is_finite().fill_null(False), f"column '{c}' is not a finite "
                   "number") for c in (mean, m2)]
        rules += [(seen & ((pl.col(mean) < lo - 1e-9) | (pl.col(mean) > hi + 1e-9)),
                   f"column '{mean}' is outside [{lo:g}, {hi:g}]"),
                  (seen & (pl.col(m2) < -1e-9 * pl.col(n)), f"column '{m2}' is negative")]
    rules += [(~pl.col(c).is_finite() | (pl.col(c) < 0), f"column '{c}' is not a finite number "
               ">= 0") for c in ("input_tokens", "output_tokens")]
    top = math.ceil(math.log2(MAX_AMOUNT) * BINS_PER_OCTAVE) + 1  # the bin of the dearest cost
    low = -1075 * BINS_PER_OCTAVE  # below the bin of the smallest subnormal
    bins = pl.col("cost_bins")
    rules += [(bins.list.eval((pl.element() != ZERO_BIN)
                              & ((pl.element() < low) | (pl.element() > top))).list.any(),
               "column 'cost_bins' holds a bin that no cost in [0, 1e100] falls in"),
              (pl.col("cost_counts").list.eval(pl.element() < 0).list.any(),
               "column 'cost_counts' holds a negative count"),
              ((pl.col("cost_counts").list.sum() < pl.col("n_cost"))
               | (pl.col("cost_counts").list.sum() > pl.col("rows")),
               "column 'cost_counts' does not count each cost once"),
              (bins.list.len() != pl.col("cost_counts").list.len(),
               "columns 'cost_bins' and 'cost_counts' differ in length"),
              (pl.struct("window", "model", "segment").is_duplicated(),
               "repeats a (window, model, segment) row")]
    flags = frame.select([rule.any().alias(str(i)) for i, (rule, _) in enumerate(rules)]).row(0)
    for (rule, what), broken in zip(rules, flags, strict=True):
        if broken:
            row = frame.filter(rule.fill_null(True)).row(0, named=True)
            return f"{what} (window {row['window']}, model {quote(row['model'])})"
    return None
