"""What ``plan`` needs, from per-window statistics: the store (``plan --stats``) or the logs
grouped by window (``plan --logs`` with ``--window``/``--half-life``).

The windows before ``--as-of`` merge per model (Chan, in window order), weighted when a drift
option asks (``Drift``); the rest of ``LogSummary`` (rows, span, recency, unknown models, cost
scale, token means) comes from the same rows, the way ``inputs.logs`` computes it from the logs,
so that ``plan --stats`` and ``plan --logs`` give the same plan on the same rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from stageroute.errors import BadDataError, InsufficientDataError, UsageError
from stageroute.estimate.stats import window_weights
from stageroute.inputs.files import quote
from stageroute.inputs.logs import (
    LogSummary,
    TokenMeans,
    lost_segments,
    model_figures,
    open_logs,
    require_segment_column,
    stamp,
    token_means,
)
from stageroute.options import format_duration as duration
from stageroute.plan_segments_store import require_store_segments, window_cells
from stageroute.store.aggregate import combine
from stageroute.store.build import StoreOptions, validated, window_frame
from stageroute.store.engines import Job
from stageroute.store.layout import load_store, load_totals, open_store

DAY = dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Drift:
    """Which windows count: only those that ended within ``window`` of as-of, and/or each
    weighted by 2^(-age / half_life), age = as-of - the window's end (None: stationary)."""

    window: dt.timedelta | None = None
    half_life: dt.timedelta | None = None

    def __post_init__(self) -> None:
        for name, value in (("--window", self.window), ("--half-life", self.half_life)):
            if value is not None and value <= dt.timedelta(0):
                raise UsageError(f"{name} must be a positive duration, got {duration(value)}; give e.g. "
                                 f"{name} 28d")

    @property
    def stationary(self) -> bool:
        return self.window is None and self.half_life is None

    def describe(self) -> str:
        parts = [f"only windows that ended in the last {duration(self.window)}" if self.window else "",
                 f"windows weighted with a half-life of {duration(self.half_life)}"
                 if self.half_life else ""]
        return "drift: " + ", ".join(p for p in parts if p)


STATIONARY = Drift()


@dataclass(frozen=True, slots=True)
class StoreInput:
    """``plan --stats DIR``: plan from the statistics store in ``path`` instead of the logs."""

    path: str | Path

    def __str__(self) -> str:
        return str(self.path)


def _before(parts: pl.DataFrame, as_of: dt.datetime, length: dt.timedelta, label: str,
            ) -> pl.DataFrame:
    """The windows before ``as_of``; a window that straddles it must hold no row after it."""
    end = pl.col("window_start") + length
    straddle = parts.filter((pl.col("window_start") < as_of) & (end > as_of)
                            & (pl.col("last_seen") >= as_of))
    if straddle.height:
        start = straddle["window_start"][0]
        raise UsageError(
            f"--as-of {stamp(as_of)} UTC falls inside the window of {label} that starts at "
            f"{stamp(start)} and it holds rows after --as-of, which a store cannot split; pass an "
            f"--as-of at a window boundary (windows of {duration(length)} from the store's anchor), build "
            "the store with an --anchor at your stage boundaries, or plan from --logs"
        )
    return parts.filter(pl.col("window_start") < as_of)


def _check_drift(drift: Drift, length: dt.timedelta, label: str) -> None:
    if drift.window is not None and drift.window < length:
        raise UsageError(
            f"--window {duration(drift.window)} is shorter than the windows of {label} "
            f"({duration(length)}), which count whole; give a --window of at least "
            f"{duration(length)}, or build the store with a shorter --window-length"
        )


def _check_decay(n_reward: np.ndarray, weight: np.ndarray, age: np.ndarray, drift: Drift,
                 as_of: dt.datetime, label: str) -> None:
    """A half-life so short against the rows' age that all the rewards before ``as_of`` weigh
    less than one sample (2^(-age / half-life) underflows) leaves nothing to plan from: say so
    (rather than "no row" or "no reward"). ``n_reward``, ``weight``, ``age``: per window before
    ``as_of``; windows outside a --window, and no reward at all, are left to the other checks."""
    counted = n_reward > 0
    if drift.window is not None:
        counted &= age < drift.window.total_seconds()
    if drift.half_life is None or not counted.any():
        return
    effective = float(np.dot(weight[counted], n_reward[counted]))
    if effective >= 1.0:
        return
    newest = dt.timedelta(seconds=float(age[counted].min()))
    enough = dt.timedelta(days=max(math.ceil(newest / dt.timedelta(days=1)), 1))
    raise InsufficientDataError(
        f"{label}: with --half-life {duration(drift.half_life)} the rewards before --as-of "
        f"{stamp(as_of)} UTC weigh {effective:.3g} sample(s) in all (the newest ended "
        f"{duration(newest)} before --as-of), too little to estimate any model; give a "
        f"--half-life of at least {duration(enough)}, or an --as-of "
        "closer to the logs")


def _check_prices(manifest: dict[str, object], catalog: pl.DataFrame, store: str | Path) -> None:
    """A store priced from tokens used its catalog's prices: the plan's catalog must agree."""
    prices = manifest.get("prices")
    if not isinstance(prices, dict):
        return
    for row in catalog.select("model", "usd_per_mtok_in", "usd_per_mtok_out").iter_rows():
        held = prices.get(row[0])
        if held is not None and [held[0], held[1]] != [row[1], row[2]]:
            raise UsageError(
                f"statistics store {store} priced the tokens of model {quote(row[0])} at "
                f"{held[0]}/{held[1]} USD per Mtok (in/out) but the catalog says {row[1]}/{row[2]}; "
                "rerun stats with this --catalog (it rebuilds the store), or plan with the "
                "catalog the store was built with"
            )


def windows_summary(parts: pl.DataFrame, catalog: pl.DataFrame, as_of: dt.datetime,
                    length: dt.timedelta, label: str, drift: Drift = STATIONARY,
                    recent: dt.timedelta = dt.timedelta(days=7), cost_source: str = "column",
                    notes: tuple[str, ...] = (), footers: bool = True,
                    segments: bool = False, kind: str = "logs") -> LogSummary:
    """A ``LogSummary`` from store rows (``store.layout.STORE_SCHEMA``) for a plan at ``as_of``
    (with ``segments``, also the per-(segment, model) cells of the same windows and weights);
    ``kind`` and ``label`` name the source in messages ("logs", "statistics store").

    Raises:
        UsageError: ``as_of`` inside a window that has rows after it.
        InsufficientDataError: no row before ``as_of`` (in the drift window).
        BadDataError: a catalog model with requests but no cost.
    """
    have = "have" if kind == "logs" else "has"
    total = int(parts["rows"].sum())
    if total == 0:
        raise BadDataError(f"{kind} {label} {have} no rows, build the store from the request logs")
    before = _before(parts, as_of, length, f"{kind} {label}")
    end = before["window_start"] + length
    age = np.maximum((as_of - end).dt.total_microseconds().to_numpy() / 1e6, 0.0)
    weight = window_weights(age, drift.window.total_seconds() if drift.window else None,
                            drift.half_life.total_seconds() if drift.half_life else None)
    _check_decay(before["n_reward"].fill_null(0).to_numpy(), weight, age, drift, as_of,
                 f"{kind} {label}")
    kept = before.with_columns(pl.Series("__weight__", weight)).filter(pl.col("__weight__") > 0)
    if kept.height == 0 or int(kept["rows"].sum()) == 0:
        first, last = parts["first_seen"].min(), parts["last_seen"].max()
        where = " in the --window" if drift.window and before.height else ""
        raise InsufficientDataError(
            f"{kind} {label} {have} no row before --as-of {stamp(as_of)} UTC{where} (the rows run from "
            f"{stamp(first)} to {stamp(last)}), "  # type: ignore[arg-type]
            + ("pass an --as-of closer to them or a longer --window" if where
               else "pass a later --as-of")
        )
    is_known = pl.col("model").is_in(catalog["model"].implode())
    weighted = "__weight__" if drift.half_life is not None else None
    per_model = combine(kept, ["model"], order=["window_start", "segment"], weight=weighted)
    known = per_model.filter(is_known)
    unpriced = (kept.filter(is_known).group_by("model").agg(pl.col("rows", "n_cost").sum())
                .filter(pl.col("n_cost") < pl.col("rows")).sort("model"))
    if unpriced.height:
        row = unpriced.row(0, named=True)
        raise BadDataError(
            f"{kind} {label}, column 'cost' is empty in {row['rows'] - row['n_cost']} row(s) of "
            f"model {quote(row['model'])}, every request has a cost (or give tokens and catalog "
            "prices); rebuild the store from logs with costs"
        )
    unknown = per_model.filter(~is_known).select("model", "rows").sort("model")
    # Without Parquet footers (hive layouts) the logs' pass knows neither the total nor whether
    # every row precedes as-of: it counts the rows before as-of, and keeps every last_seen.
    all_before = (footers and drift.stationary
                  and parts["last_seen"].max() < as_of)  # type: ignore[operator]
    if not footers:
        total = int(before["rows"].sum())
    # Like the logs' pass when every row precedes as-of (footers): the span starts at the first
    # row of any model, and only models seen in the log's last `recent` carry last_seen.
    first = (parts["first_seen"].min() if all_before else known["first_seen"].min())
    last = known["last_seen"].max() if known.height else None
    last_seen = known.select("model", "last_seen")
    if all_before:
        newest = parts["last_seen"].max()
        last_seen = last_seen.with_columns(
            pl.when(pl.col("last_seen") > newest - recent).then(pl.col("last_seen"))  # type: ignore[operator]
            .alias("last_seen")).filter(pl.col("last_seen").is_not_null())
    stats, scale = model_figures(known)
    means = token_means(known)
    return LogSummary(
        stats=stats.join(last_seen, on="model", how="left"),
        rows=total,
        rows_used=int(known["rows"].sum()),
        first_seen=first if known.height else None,  # type: ignore[arg-type]
        last_seen=last,  # type: ignore[arg-type]
        unknown=unknown,
        cost_p999=scale,
        tokens=TokenMeans(lambda: means),
        cost_source=cost_source,
        label=label,
        notes=notes + (lost_segments(kept, is_known, f"statistics store {label}") if segments else ()),
        cells=window_cells(kept.filter(is_known), weighted) if segments else None,
    )


def store_summary(store: str | Path, catalog: pl.DataFrame, as_of: dt.datetime,
                  drift: Drift = STATIONARY, recent: dt.timedelta = dt.timedelta(days=7),
                  segments: bool = False) -> LogSummary:
    """``windows_summary`` of the store in ``store`` (``plan --stats``)."""
    manifest = open_store(store)
    length = dt.timedelta(seconds=manifest["window_seconds"])
    _check_drift(drift, length, f"statistics store {store}")
    _check_prices(manifest, catalog, store)
    newest = manifest.get("last_seen")
    totals = None
    if drift.stationary and newest is not None and dt.datetime.fromisoformat(newest) < as_of:
        totals = load_totals(store, manifest)  # every row precedes as-of: no window to choose
    parts = totals if totals is not None else load_store(store, manifest)[1]
    if segments:
        require_store_segments(parts, str(store))
    source = "tokens" if manifest.get("prices") is not None else "column"
    summary = windows_summary(parts, catalog, as_of, length, str(store), drift, recent, source,
                              footers=not manifest.get("hive", False), segments=segments,
                              kind="statistics store")
    return dataclasses.replace(summary, source="stats")


def logs_by_window(logs: str | Path, catalog: pl.DataFrame, as_of: dt.datetime,
                   feedback: str | Path | None, drift: Drift,
                   recent: dt.timedelta = dt.timedelta(days=7), segments: bool = False,
                   ) -> LogSummary:
    """``windows_summary`` of the logs grouped by day, the days ending at ``as_of`` (a drift
    option on ``plan --logs``): the store's aggregation, in memory."""
    _check_drift(drift, DAY, f"logs {logs} (grouped by day)")
    scan, notes = open_logs(logs, catalog, feedback)
    if segments:
        require_segment_column(scan)
    options = StoreOptions(length=DAY, anchor=as_of)
    job = Job(scan, scan.source.files, (), (), as_of, DAY)
    rows, _ = validated(job, "polars")
    parts = window_frame(rows, options)
    source = "tokens" if scan.cost_from_tokens else "column"
    return windows_summary(parts, catalog, as_of, DAY, scan.source.label, drift, recent, source,
                           notes, footers=not scan.source.hive, segments=segments)
