"""A plan's name in a history: ``<window start>-<input digest>``, the digest of what the plan was
computed from (options, window, catalog, log statistics), so that a rerun on the same inputs is
recognised and a changed input is not."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

import polars as pl

from stageroute.inputs.catalog import Window
from stageroute.inputs.logs import LogSummary

if TYPE_CHECKING:
    from stageroute.plan import PlanConfig


def run_id(config: PlanConfig, catalog: pl.DataFrame, summary: LogSummary,
            kept: tuple[str, ...] = ()) -> str:
    """``<window start %Y%m%dT%H%M>-<input digest>``: the plan's name in a history."""
    start = config.window.start
    return f"{start:%Y%m%dT%H%M}-{input_digest(config, config.window, catalog, summary, kept)}"


_RESOLVED = frozenset({"anchor", "grace"})  # folded into as_of: a window is the same however given


def input_digest(config: PlanConfig, window: Window, catalog: pl.DataFrame,
                  summary: LogSummary, kept: tuple[str, ...] = ()) -> str:
    """A digest of what the plan was computed from: options, window, catalog, log statistics.

    The statistics are a fingerprint of every log row used; hashing the files themselves would
    cost a second pass over the logs. Floats enter with 9 significant digits: a parallel sum's
    last bits depend on the number of threads, and the run id must not.
    """
    h = hashlib.sha256()
    options = {f: str(getattr(config, f)) for f in config.__dataclass_fields__
               if f not in _RESOLVED and (f != "segments" or config.segments)}
    h.update(json.dumps({"options": options, "window": [str(window.start), str(window.end)]},
                        sort_keys=True).encode())
    cells = () if summary.cells is None else (summary.cells,)
    for frame in (catalog, summary.stats, summary.unknown, *cells):
        h.update(frame.with_columns(pl.col(pl.Float64).round_sig_figs(9)).write_csv().encode())
    # Token means are left out: they are read only when an untried model is priced (after the
    # run id is known), and follow from the rows that the statistics already fingerprint.
    figures = (summary.cost_p999,)
    h.update(repr((summary.rows, *(None if x is None else f"{x:.9g}" for x in figures))).encode())
    if kept:  # a routing refresh: the deployment it keeps (read from a file: not in the options)
        h.update(json.dumps(kept).encode())
    return h.hexdigest()[:12]
