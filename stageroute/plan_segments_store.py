"""``plan --segments`` from per-window statistics: the statistics store (``plan --stats``) and
the logs grouped by day (``plan --logs`` with ``--window`` or ``--half-life``).

The store keys its rows by (model, segment, window). The cells of a plan are those rows merged
per (segment, model) exactly as ``store.read.windows_summary`` merges them per model: only the
windows that count (before ``--as-of``, within ``--window``), in window order by Chan's formula
(``store.aggregate.combine``), each weighted by its half-life weight (effective counts); then
settled as the logs' one pass settles its cells (``inputs.logs.cell_figures``). A null segment is
the segment ``""``, as in the logs' pass.
"""

from __future__ import annotations

import polars as pl

from stageroute.errors import BadDataError
from stageroute.inputs.logs import cell_figures
from stageroute.store.aggregate import combine


def window_cells(kept: pl.DataFrame, weight: str | None) -> pl.DataFrame:
    """Per-(segment, model) statistics with the rows each cell holds (``cell_figures``) of the
    store rows ``kept`` (catalog models, the windows that count), merged per cell in window
    order; ``weight`` names the column of each window's weight (None: every window counts once).
    """
    rows = kept.with_columns(pl.col("segment").fill_null(""))
    return cell_figures(combine(rows, ["segment", "model"], order=["window_start"], weight=weight))


def require_store_segments(parts: pl.DataFrame, store: str) -> None:
    """``--segments`` plans by segment: a store built from logs without a ``segment`` column
    holds none (every row's segment is null), and is refused as such logs are.

    Raises:
        BadDataError: no row of the store has a segment.
    """
    if parts.height and parts["segment"].null_count() == parts.height:
        raise BadDataError(
            f"statistics store {store} has no segments (it was built from logs without a column "
            "'segment'), which --segments plans by; rebuild it from logs with a segment column "
            "(stageroute stats --rebuild) or drop --segments")
