"""Data sanity: logs that pass the contract but cannot support a plan.

A cron job must not plan from nothing: no row of a catalog model, mostly unknown models (often
ids that differ from the catalog's in case or whitespace), no reward at all, or logs that stopped
well before ``--as-of``. Each is an ``InsufficientDataError`` (exit 67), never a plan. The checks
read only the summary: they cost no pass over the data.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable

import polars as pl

from stageroute.errors import InsufficientDataError
from stageroute.inputs.files import quote
from stageroute.inputs.logs import LogSummary, stamp


def duration(span: dt.timedelta) -> str:
    """A duration as ``--max-staleness`` takes it: '3d4h', '12h', '90s'."""
    seconds = int(span.total_seconds())
    parts = [(seconds // 86400, "d"), (seconds % 86400 // 3600, "h"), (seconds % 3600 // 60, "m")]
    text = "".join(f"{n}{unit}" for n, unit in parts if n)
    return text or f"{max(seconds, 0)}s"


def listing(unknown: pl.DataFrame, most: int = 3) -> str:
    top = unknown.sort(["rows", "model"], descending=[True, False], nulls_last=True).head(most)
    shown = ", ".join(f"{quote(m, 40)} ({n:,} rows)" for m, n in top.iter_rows())
    more = unknown.height - top.height
    return shown + (f" and {more} more" if more else "")


def lookalikes(unknown: Iterable[str | None], catalog: Iterable[str]) -> str:
    """A hint when unknown ids match catalog ids up to case or surrounding whitespace."""
    index = {m.strip().casefold(): m for m in catalog}
    pairs = [(u, index[u.strip().casefold()]) for u in unknown
             if u is not None and u.strip().casefold() in index]
    if not pairs:
        return ""
    model, match = pairs[0]
    how = "only in case" if model.strip() == model else "by surrounding whitespace"
    more = f" (and {len(pairs) - 1} more like it)" if len(pairs) > 1 else ""
    return (f"; {quote(model, 40)} differs from the catalog's {quote(match, 40)} {how}{more}, "
            "and ids must match exactly")


def check_sufficient(summary: LogSummary, catalog: Iterable[str], as_of: dt.datetime,
                     max_staleness: dt.timedelta, max_unknown_share: float,
                     feedback: bool = False) -> None:
    """Raise when the logs cannot support a plan for the stage starting at ``as_of``.

    Args:
        catalog: the catalog's model ids (to recognise ids that differ only in case).
        max_staleness: the newest row of a catalog model must be at most this old at ``as_of``.
        max_unknown_share: the largest share of rows before ``as_of`` that may belong to models
            missing from the catalog (those rows are ignored).
        feedback: rewards came from a separate feedback source (for the message).

    Raises:
        InsufficientDataError: with what is missing and what to do.
    """
    label = f"{'statistics store' if summary.source == 'stats' else 'logs'} {summary.label}"
    used = summary.rows_used
    strangers = int(summary.unknown["rows"].sum()) if summary.unknown.height else 0
    before = used + strangers
    hint = lookalikes(summary.unknown["model"].to_list(), catalog)
    if used == 0:
        raise InsufficientDataError(
            f"{label}: none of the {before:,} rows before --as-of {stamp(as_of)} UTC belongs "
            f"to a model of the catalog (they name {listing(summary.unknown)}){hint}; fix the "
            "model ids of the logs or of the catalog, nothing can be planned from these rows"
        )
    share = strangers / before
    if share > max_unknown_share:
        raise InsufficientDataError(
            f"{label}: {share:.1%} of the rows before --as-of ({strangers:,} of {before:,}) "
            f"belong to models missing from the catalog ({listing(summary.unknown)}){hint}; "
            f"that is more than --max-unknown-share {max_unknown_share:g}: add those models to "
            "the catalog, fix their ids, or raise --max-unknown-share"
        )
    if int(summary.stats["n_reward"].sum()) == 0:
        why = ("their 'reward' is empty and --feedback gives none of them a reward" if feedback
               else "every 'reward' is empty")
        raise InsufficientDataError(
            f"{label}: none of the {used:,} rows of catalog models before --as-of has a "
            f"reward ({why}), so no model's quality can be estimated; check that feedback "
            "reaches the logs (or pass --feedback with the rewards)"
        )
    last = summary.last_seen
    if last is not None and as_of - last > max_staleness:
        age = as_of - last
        raise InsufficientDataError(
            f"{label}: the newest row of a catalog model ({stamp(last)} UTC) is "
            f"{duration(age)} older than --as-of {stamp(as_of)} UTC, more than --max-staleness "
            f"{duration(max_staleness)}; check that the logs are still being written, or pass "
            f"--max-staleness {math.ceil(age / dt.timedelta(days=1))}d to plan from them anyway"
        )
