"""Replay's timeline: K stages of nearly equal query counts spread over a time span, and each
stage's pool (the catalog's models available through the stage)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from numpy.typing import NDArray

from stageroute.errors import UsageError
from stageroute.inputs.catalog import Window
from stageroute.inputs.outcomes import OutcomeMatrix, available_mask
from stageroute.options import iso_date

if TYPE_CHECKING:
    from stageroute.simulate.replay import ReplayConfig


def default_stages(horizon: int) -> int:
    """K ~ T^(1/3), the stage count of the regret analysis."""
    return max(1, int(round(horizon ** (1 / 3))))


@dataclass(frozen=True, slots=True)
class Schedule:
    """The stream's timeline: stage boundaries (query indices), times, and each stage's pool."""

    bounds: NDArray[np.int64]  # K+1 query indices; stage k is [bounds[k], bounds[k+1])
    windows: tuple[Window, ...]
    pools: NDArray[np.bool_]  # [K, N]


def stage_bounds(horizon: int, stages: int) -> NDArray[np.int64]:
    """Query indices where stages start (plus the horizon): K nearly equal stages."""
    return np.round(np.linspace(0, horizon, stages + 1)).astype(np.int64)


def default_span(catalog: pl.DataFrame, models: Sequence[str], horizon: int, stages: int
                 ) -> tuple[dt.datetime, dt.datetime]:
    """From the first release to one stage past the last release (of the replayed models).

    The span is stretched so that the last stage starts exactly at (not a rounding error before)
    the last release, which therefore takes part in the last stage.
    """
    released = catalog.filter(pl.col("model").is_in(list(models)))["released"]
    first, last = released.min(), released.max()
    assert isinstance(first, dt.datetime) and isinstance(last, dt.datetime)
    if first == last or stages < 2:
        return first, first + dt.timedelta(days=7 * stages)
    last_start = int(stage_bounds(horizon, stages)[-2])
    gap = (last - first) // dt.timedelta(microseconds=1)
    span = -(-gap * horizon // last_start)  # ceil: query times floor back onto the release
    return first, first + dt.timedelta(microseconds=span)


def make_schedule(catalog: pl.DataFrame, outcomes: OutcomeMatrix, config: ReplayConfig) -> Schedule:
    start, end = config.start, config.end
    if start is None or end is None:
        try:
            d_start, d_end = default_span(catalog, outcomes.models, config.horizon, config.n_stages)
        except OverflowError:  # e.g. --stages 10**6 weeks after the only release
            raise UsageError(
                f"the default replay span ({config.n_stages:,} stages from the first release in "
                "the catalog) ends after the year 9999; give --start and --end, or fewer --stages"
            ) from None
        if start is not None and start >= d_end:
            raise UsageError(
                f"--start {iso_date(start)} is not before the default end of the replay "
                f"({iso_date(d_end)}, one stage past the last release in the catalog); give an "
                "earlier --start, or an --end after it"
            )
        if end is not None and end <= d_start:
            raise UsageError(
                f"--end {iso_date(end)} is not after the default start of the replay "
                f"({iso_date(d_start)}, the first release in the catalog); give a later --end, or "
                "a --start before it"
            )
        start, end = start or d_start, end or d_end
    k, t = config.n_stages, config.horizon
    bounds = stage_bounds(t, k)
    span = end - start
    span_us = span // dt.timedelta(microseconds=1)
    times = [start + dt.timedelta(microseconds=span_us * int(i) // t) for i in bounds]
    windows = tuple(Window(times[i], times[i + 1]) for i in range(k))
    starts = np.array([np.datetime64(w.start.replace(tzinfo=None), "us") for w in windows])
    ends = np.array([np.datetime64(w.end.replace(tzinfo=None), "us") for w in windows])
    at_start = available_mask(catalog, outcomes.models, starts)
    # in the pool: available at the stage start and not retired before its end
    last_moment = (ends - np.timedelta64(1, "us")).astype("datetime64[us]")
    pools = at_start & available_mask(catalog, outcomes.models, last_moment)
    empty = np.flatnonzero(~pools.any(axis=1))
    if empty.size:
        w = windows[empty[0]]
        raise UsageError(
            f"no model of the catalog is available in stage {empty[0] + 1} "
            f"({iso_date(w.start)} to {iso_date(w.end)}); move --start/--end into the catalog's dates"
        )
    return Schedule(bounds, windows, pools)
