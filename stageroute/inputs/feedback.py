"""Separate feedback: (request_id, reward) Parquet files, checked by file before the logs join them."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from stageroute.errors import BadDataError
from stageroute.inputs.checks import FEEDBACK_REWARD, check_types
from stageroute.inputs.files import names, quote
from stageroute.inputs.sources import LogSource, find_logs, fresh, unreadable


def _first_problem(src: LogSource, fb: pl.LazyFrame, file_col: str,
                   ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(a duplicated request id, the first row with an empty id or a bad reward); both head(1)."""
    r = pl.col("reward")
    problem = (pl.when(pl.col("request_id").is_null()).then(pl.lit("id"))
               .when(r.is_nan()).then(pl.lit("nan"))
               .when((r < 0) | (r > 1)).then(pl.lit("range")))
    tag = fresh("__problem__", {"request_id", "reward", file_col})
    try:
        dup, bad = pl.collect_all([
            fb.group_by("request_id").len().filter(pl.col("len") > 1).head(1),
            fb.with_columns(problem.alias(tag)).filter(pl.col(tag).is_not_null()).head(1),
        ])
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise unreadable(src, exc) from None
    return dup, bad.rename({tag: "problem", file_col: "file"})


def load_feedback(path: str | Path) -> tuple[pl.LazyFrame, LogSource]:
    """Check a (request_id, reward) feedback source; its rewards are validated here, by file.

    Returns:
        A lazy frame of (request_id, ``FEEDBACK_REWARD``) and the source (for its notes).

    Raises:
        InputMissingError: no feedback file.
        BadDataError: unreadable file, missing or mistyped column, empty id, reward outside
            [0, 1] or NaN, a request id given twice.
    """
    src = find_logs(path, kind="feedback", needed=("request_id", "reward"))
    file_col = src.file_column
    lf = src.scan(with_file=True)
    try:
        schema = dict(lf.collect_schema())
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise unreadable(src, exc) from None
    for column in ("request_id", "reward"):
        if column not in schema:
            raise BadDataError(
                f"feedback {src.label} has no column '{column}' (it has: {names(src.schema)}), "
                "feedback needs request_id and reward"
            )
    check_types(src, schema, ("request_id", "reward"))
    fb = lf.select(pl.col("request_id").cast(pl.String), pl.col("reward").cast(pl.Float64),
                   file_col)
    dup, bad = _first_problem(src, fb, file_col)
    if bad.height:
        row = bad.row(0, named=True)
        where, rid = f"feedback {row['file']}", f"request_id {quote(row['request_id'])}"
        raise BadDataError({
            "id": f"{where}, column 'request_id' is empty (reward {quote(row['reward'])}), "
                  "give every reward its request id",
            "nan": f"{where}, column 'reward' is NaN ({rid}), drop the row or use null, never NaN",
            "range": f"{where}, column 'reward' is outside [0, 1]: {quote(row['reward'])} "
                     f"({rid}), rescale rewards to [0, 1]",
        }[row["problem"]])
    if dup.height:
        raise BadDataError(
            f"feedback {src.label}, column 'request_id' has {quote(dup['request_id'][0])} "
            f"{dup['len'][0]} times, keep one reward per request"
        )
    return fb.drop(file_col).rename({"reward": FEEDBACK_REWARD}), src
