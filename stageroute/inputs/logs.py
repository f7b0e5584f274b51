"""Request/feedback logs summarised per model in one streaming pass: statistics, sampling, recency.

The contract (types, value rules, messages) lives in ``checks.py``; finding and inspecting the
files in ``sources.py``. This module reads the data: one pass for the per-model statistics (with
the rule counts the footers cannot vouch for), a sample for the cost scale and token counts, and
the log's last stage for who served traffic lately.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from stageroute.errors import BadDataError, InsufficientDataError
from stageroute.estimate.stats import STATS_SCHEMA, normalise_stats, settle, settle_m2
from stageroute.inputs.checks import (
    LOG_SCHEMA,
    LogScan,
    check_columns,
    check_unique,
    pass_checks,
    report_violations,
    rules,
)
from stageroute.inputs.feedback import load_feedback
from stageroute.inputs.files import names, quote
from stageroute.inputs.footers import read_footers
from stageroute.inputs.sources import LogSource, find_logs, unreadable
from stageroute.store.aggregate import cost_quantile, fine_polars, fold


class TokenMeans:
    """The mean token counts of the requests a plan uses, computed on first use: the logs' pass
    leaves the token columns unread (a fifth of its time), and only a pool with an untried model
    needs them (to price it from its list prices)."""

    def __init__(self, compute: Callable[[], tuple[float | None, float | None]]) -> None:
        self._compute = compute
        self._value: tuple[float | None, float | None] | None = None

    @property
    def value(self) -> tuple[float | None, float | None]:
        if self._value is None:
            self._value = self._compute()
        return self._value


def token_means(known: pl.DataFrame) -> tuple[float | None, float | None]:
    """Mean input and output tokens from per-model token sums and counts (settled; None without)."""
    means = []
    for tok in ("input_tokens", "output_tokens"):
        count = int(known[f"n_{tok}"].sum()) if known.height else 0
        means.append(float(settle(np.array([known[tok].sum() / count]))[0]) if count else None)
    return means[0], means[1]


@dataclass(frozen=True, slots=True)
class LogSummary:
    """What ``plan`` needs from the logs, computed in one pass."""

    stats: pl.DataFrame  # STATS_SCHEMA + last_seen, for catalog models with rows before as_of
    rows: int  # rows read (all times)
    rows_used: int  # rows before as_of of catalog models
    first_seen: dt.datetime | None
    last_seen: dt.datetime | None  # the newest row of a catalog model before as_of
    unknown: pl.DataFrame  # model, rows: models not in the catalog (ignored), before as_of
    cost_p999: float | None  # 99.9th percentile of per-request cost (max over models)
    tokens: TokenMeans  # mean input and output tokens per request, read when first asked for
    cost_source: str  # "column" or "tokens"
    label: str
    notes: tuple[str, ...] = ()  # how the inputs were read (links, partition keys), for the plan
    source: str = "logs"  # "logs" (read now) or "stats" (a statistics store)
    # plan --segments: "segment" (null read as "") + STATS_SCHEMA + rows, per (segment, model)
    # of catalog models with rows before as_of; None when not asked for
    cells: pl.DataFrame | None = None


def stamp(moment: dt.datetime) -> str:
    """A UTC time for messages, e.g. '2026-03-01 00:00' (four-digit years at the calendar's edges)."""
    return moment.replace(tzinfo=None).isoformat(" ", "minutes")


def open_logs(path: str | Path, catalog: pl.DataFrame, feedback: str | Path | None,
              keep: Callable[[str], bool] | None = None) -> tuple[LogScan, tuple[str, ...]]:
    """Find and check the files (those ``keep`` selects), their columns and the feedback; read
    the footers."""
    source = find_logs(path, keep=keep)
    try:
        schema = dict(source.scan().collect_schema())
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise unreadable(source, exc) from None
    fb, fb_source = load_feedback(feedback) if feedback is not None else (None, None)
    cost_from_tokens = "cost" not in schema
    check_columns(source, schema, need_reward=fb is None, cost_from_tokens=cost_from_tokens)
    optional = tuple(c for c in ("input_tokens", "output_tokens", "propensity") if c in schema)
    footers = None if source.hive else read_footers(
        source.files, ("request_id", "model", "timestamp", "reward", "cost", *optional))
    notes = source.notes + (fb_source.notes if fb_source is not None else ())
    return LogScan(source, schema, catalog, fb, cost_from_tokens, footers), notes


def require_segment_column(scan: LogScan) -> None:
    """``--segments`` plans by the logs' ``segment`` column: raise BadDataError without one."""
    if "segment" not in scan.schema:
        raise BadDataError(
            f"logs {scan.source.label} have no column 'segment' (they have: "
            f"{names(scan.schema)}), which --segments plans by; add a segment column (the query "
            "class of each request) or drop --segments")


def _aggregate(scan: LogScan, data: pl.LazyFrame, used: pl.LazyFrame, timed: bool,
               full_check: bool, segments: bool = False,
               ) -> tuple[pl.DataFrame, pl.DataFrame | None, pl.DataFrame | None]:
    """The one streaming pass: per-model statistics, cost histogram and rule counts (and hashed
    id counts); the aggregation is the statistics store's (``store.aggregate``). With
    ``segments`` the pass groups by (segment, model): the per-model rows are the segments
    merged, and the per-(segment, model) ones come third (else None)."""
    checks = pass_checks(scan, rules(scan), full_check)
    keys = ["segment", "model"] if segments else ["model"]
    if segments:
        used = used.with_columns(pl.col("segment").fill_null(""))
    fine = fine_polars(used, keys, checks, timed=timed, tokens=False)
    queries = [fine]
    if full_check or scan.feedback is not None:
        # 64-bit hashes count the ids at a fraction of the cost of the strings; a hash collision
        # can only raise a false alarm, which the exact check then clears.
        queries.append(data.select(pl.col("request_id").hash(seed=0).n_unique().alias("unique"),
                                   pl.len().alias("rows")))
    if scan.feedback is not None:  # log rows that the feedback names (0: the wrong file?)
        queries.append(data.select("request_id").join(
            scan.feedback.select("request_id"), on="request_id", how="semi",
        ).select(pl.len().alias("matched")))
    results = pl.collect_all(queries, engine="streaming")
    sums = tuple(c for c in results[0].columns if c.startswith(("bad_", "sum_")))
    # the segments of a bin merge in segment order: the same figures whatever the pass's order
    per_model = fold(results[0], ["model"], sums, order=keys[:-1]).rename({"rows": "rows_before"})
    cells = fold(results[0], keys) if segments else None
    counts = pl.concat(results[1:], how="horizontal") if len(results) > 1 else None
    return per_model, counts, cells


def _rows(scan: LogScan, data: pl.LazyFrame, agg: pl.DataFrame, as_of: dt.datetime) -> int | None:
    """Rows in the logs (None: not counted); raise when there is none, or none before ``as_of``."""
    source = scan.source
    total = scan.footers.rows if scan.footers is not None else None
    if agg.height == 0 and total is None:
        total = int(source.scan().select(pl.len()).collect().item())
    if total == 0:
        raise BadDataError(f"logs {source.label} have no rows, point --logs at the request logs")
    if agg.height == 0:
        ts = pl.col("timestamp")
        first, last = data.select(ts.min().alias("first"), ts.max().alias("last")).collect().row(0)
        span = (f" (they run from {stamp(first)} to {stamp(last)})"
                if isinstance(first, dt.datetime) and isinstance(last, dt.datetime) else "")
        raise InsufficientDataError(
            f"logs {source.label} have no row before --as-of {stamp(as_of)} UTC{span}, "
            "pass a later --as-of"
        )
    return total


def _recency(scan: LogScan, used: pl.LazyFrame, known: pl.DataFrame, timed: bool,
             recent: dt.timedelta) -> tuple[pl.DataFrame, dt.datetime | None, dt.datetime | None]:
    """(model, last_seen) of the catalog models that served in the log's last ``recent``, and
    the first and newest row of a catalog model."""
    if known.height == 0:
        return known.select("model", pl.lit(None, LOG_SCHEMA["timestamp"]).alias("last_seen")), \
            None, None
    if timed:
        return known.select("model", "last_seen"), known["first_seen"].min(), known["last_seen"].max()  # type: ignore[return-value]
    footers = scan.footers
    assert footers is not None and footers.ts_max is not None
    ts = pl.col("timestamp")
    is_known = pl.col("model").is_in(scan.catalog["model"].implode())
    last_seen = (used.filter((ts > footers.ts_max - recent) & is_known).group_by("model")
                 .agg(ts.max().alias("last_seen")).collect())
    if last_seen.height:
        newest = last_seen["last_seen"].max()
    else:  # no catalog model served lately: find when one last did (a rare extra query)
        newest = used.filter(is_known).select(ts.max()).collect().item()
    return last_seen, footers.ts_min, newest  # type: ignore[return-value]


def summarise_logs(path: str | Path, catalog: pl.DataFrame, as_of: dt.datetime,
                   feedback: str | Path | None = None, strict: bool = False,
                   recent: dt.timedelta = dt.timedelta(days=7), full_check: bool = False,
                   segments: bool = False) -> LogSummary:
    """Validate the logs and compute per-model statistics of the rows before ``as_of``.

    One streaming pass reads only what the plan needs (model, reward, cost; timestamps only when
    ``as_of`` falls inside the logs; tokens only to price requests) and checks those values row by
    row. Footer statistics check the rest (null request ids and timestamps, propensity and token
    ranges) and tell whether every row precedes ``as_of``. Small extra queries read a sample for
    the cost scale and typical token counts, and the last ``recent`` of the log for who served
    traffic lately. ``full_check`` adds what the plan does not use: request-id uniqueness
    (always checked with a feedback join) and NaN propensities. ``segments`` (plan --segments)
    also keeps the statistics per (segment, model) from the same pass (``LogSummary.cells``).

    Raises:
        InputMissingError: no log file, or a path that is not a regular file.
        BadDataError: unreadable file, missing/mistyped column, bad value, unknown model with
            ``strict``, unpriced model, duplicate request_id; no ``segment`` column with
            ``segments``.
        InsufficientDataError: no row before ``as_of``.
    """
    scan, notes = open_logs(path, catalog, feedback)
    if segments:
        require_segment_column(scan)
    try:
        summary = _summarise(scan, as_of, strict, recent, full_check, segments)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise unreadable(scan.source, exc) from None
    return dataclasses.replace(summary, notes=(*notes, *summary.notes))


def _summarise(scan: LogScan, as_of: dt.datetime, strict: bool, recent: dt.timedelta,
               full_check: bool, segments: bool = False) -> LogSummary:
    footers = scan.footers
    data = scan.prepare(scan.source.scan())
    all_before = footers is not None and footers.ts_max is not None and footers.ts_max < as_of
    ts = pl.col("timestamp")
    # Null timestamps stay in so that their check can see them.
    used = data if all_before else data.filter((ts < as_of) | ts.is_null())
    agg, counts, cells = _aggregate(scan, data, used, not all_before, full_check, segments)
    total = _rows(scan, data, agg, as_of)
    report_violations(scan, agg, rules(scan))
    check_unique(scan, data, counts)
    agg = agg.with_columns(pl.col("rows_before").alias("rows"))
    unmatched = _unmatched_feedback(scan, counts)
    is_known = pl.col("model").is_in(scan.catalog["model"].implode())
    known = agg.filter(is_known)
    unknown = agg.filter(~is_known).select("model", "rows").sort("model")
    if strict:
        refuse_unknown(unknown, scan.source.label)
    last_seen, first, last = _recency(scan, used, known, not all_before, recent)
    stats, scale = model_figures(known)
    return LogSummary(
        stats=stats.join(last_seen, on="model", how="left"),
        rows=total if total is not None else int(agg["rows"].sum()),
        rows_used=int(known["rows"].sum()),
        first_seen=first,
        last_seen=last,
        unknown=unknown,
        cost_p999=scale,
        tokens=TokenMeans(lambda: _token_pass(scan, as_of, all_before)),
        cost_source="tokens" if scan.cost_from_tokens else "column",
        label=scan.source.label,
        notes=unmatched + lost_segments(cells, is_known, f"the logs {scan.source.label}"),
        cells=None if cells is None else cell_figures(cells.filter(is_known)),
    )


def _unmatched_feedback(scan: LogScan, counts: pl.DataFrame | None) -> tuple[str, ...]:
    """A warning when ``--feedback`` names no log row (its rewards then reach no request)."""
    if scan.feedback is None or counts is None or counts["matched"][0] > 0:
        return ()
    return (f"--feedback names no request of the logs {scan.source.label} (none of its "
            "request_ids is a log row's), so it adds no reward; check that it is the feedback of "
            "these logs and that both write the same request ids",)


def lost_segments(cells: pl.DataFrame | None, is_known: pl.Expr, where: str) -> tuple[str, ...]:
    """A warning naming the segments whose rows are all of models not in the catalog: the
    plan has no table (and the gateway no group) for them. ``where``: "the logs PATH" or the
    store's phrase. (A null segment is read as the segment "" before this.)"""
    if cells is None:
        return ()
    kept = cells.filter(is_known)["segment"].unique()
    lost = (cells.filter(~pl.col("segment").is_in(kept.implode()))
            .group_by("segment").agg(pl.col("rows").sum()).sort("segment"))
    if lost.height == 0:
        return ()
    names = lost["segment"].to_list()
    rows = int(lost["rows"].sum())
    which = (f"the segment {quote(names[0])} appears" if len(names) == 1 else
             f"the segments {quote(names[0])} and {len(names) - 1} more appear")
    return (f"{where}: {which} only in rows of models not in the catalog ({rows:,} rows): the "
            "plan has no routing table for them, and their requests match no gateway group; add "
            "those models to the catalog",)


def refuse_unknown(unknown: pl.DataFrame, label: str) -> None:
    """``--strict``: raise for the first model of ``unknown`` (model, rows) that has rows."""
    if unknown.height:
        row = unknown.row(0, named=True)
        raise BadDataError(
            f"logs {label}, column 'model' has {quote(row['model'])} ({row['rows']} row(s)), "
            "which is not in the catalog; add it to the catalog or drop --strict to ignore it"
        )


def _token_pass(scan: LogScan, as_of: dt.datetime, all_before: bool,
                ) -> tuple[float | None, float | None]:
    """Token sums and counts of the catalog models' rows before ``as_of`` (a pass over the token
    columns only), as the store keeps them."""
    if "input_tokens" not in scan.schema or "output_tokens" not in scan.schema:
        return None, None
    plain = dataclasses.replace(scan, feedback=None, cost_from_tokens=False)
    data = plain.prepare(scan.source.scan())
    ts = pl.col("timestamp")
    used = data if all_before else data.filter(ts < as_of)
    used = used.filter(pl.col("model").is_in(scan.catalog["model"].implode()))
    aggs = [e for tok in ("input_tokens", "output_tokens")
            for e in (pl.col(tok).sum().alias(tok), pl.col(tok).count().alias(f"n_{tok}"))]
    try:
        return token_means(used.select(aggs).collect(engine="streaming"))
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise unreadable(scan.source, exc) from None


def model_figures(known: pl.DataFrame) -> tuple[pl.DataFrame, float | None]:
    """From per-model aggregates (``store.aggregate.fold`` of catalog models' rows before as_of):
    the settled statistics (``estimate.stats.settle``) and the cost scale (p99.9 of the costs,
    from the histogram)."""
    stats = normalise_stats(known)
    if not stats.height:
        return stats, None
    n_r = stats["n_reward"].to_numpy().astype(np.float64)
    n_c = stats["n_cost"].to_numpy().astype(np.float64)
    mean_r, mean_c = (settle(stats[f"mean_{k}"].to_numpy().astype(np.float64)) for k in ("reward", "cost"))
    stats = stats.with_columns(
        pl.when(pl.col("n_reward") > 0).then(pl.Series("mean_reward", mean_r)).alias("mean_reward"),
        pl.Series("m2_reward", settle_m2(stats["m2_reward"].to_numpy(), n_r, mean_r)),
        pl.when(pl.col("n_cost") > 0).then(pl.Series("mean_cost", mean_c)).alias("mean_cost"),
        pl.Series("m2_cost", settle_m2(stats["m2_cost"].to_numpy(), n_c, mean_c)),
    )
    scale = cost_quantile(known["cost_bins"], known["cost_counts"]) if known.height else None
    return stats, scale


def cell_figures(cells: pl.DataFrame) -> pl.DataFrame:
    """Per-(segment, model) statistics (``model_figures`` of each segment's rows) with the
    rows each cell holds, sorted by segment and model."""
    parts = []
    for (segment,), part in cells.partition_by("segment", as_dict=True, maintain_order=True).items():
        stats, _ = model_figures(part)
        rows = part.select("model", pl.col("rows").cast(pl.Int64))
        parts.append(stats.join(rows, on="model", how="left")
                     .select(pl.lit(segment, pl.String).alias("segment"), pl.all()))
    if not parts:
        return pl.DataFrame(schema={"segment": pl.String, **STATS_SCHEMA, "rows": pl.Int64})
    return pl.concat(parts).sort("segment", "model")


__all__ = ["LOG_SCHEMA", "STATS_SCHEMA", "LogSource", "LogSummary", "find_logs", "summarise_logs"]
