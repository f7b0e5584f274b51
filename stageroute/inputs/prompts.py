"""Prompt texts (``sample_id``, ``prompt``): what ``--segments auto`` clusters into segments."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl

from stageroute.errors import BadDataError
from stageroute.inputs.files import names, quote, read_table, require_file

PROMPTS_SCHEMA: dict[str, pl.DataType] = {
    "sample_id": pl.String(),
    "prompt": pl.String(),
}


def _text(t: pl.DataType) -> bool:
    return t in (pl.String, pl.Categorical, pl.Null) or isinstance(t, pl.Enum)


_TYPES: dict[str, tuple[str, Callable[[pl.DataType], bool]]] = {
    "sample_id": ("text or an integer", lambda t: _text(t) or t.is_integer()),
    "prompt": ("text (string)", _text),
}


def load_prompts(path: str | Path) -> pl.DataFrame:
    """Load and validate a prompts table (Parquet or CSV): one row per ``sample_id`` with its
    ``prompt`` text; other columns are dropped.

    Returns:
        A frame of ``PROMPTS_SCHEMA`` (sample_id, prompt), in the file's order.

    Raises:
        InputMissingError: no such file, or not a regular file.
        BadDataError: no rows, a missing or mistyped column, an empty id or prompt, an id twice.
    """
    path = require_file(path, "prompts", "--prompts")
    frame = read_table(path, "prompts", csv_as_text=True)
    if frame.height == 0:
        raise BadDataError(f"prompts {path} have no rows, add one row per sample_id with its prompt")
    for name, (expected, ok) in _TYPES.items():
        if name not in frame.columns:
            raise BadDataError(
                f"prompts {path} have no column '{name}' (they have: {names(frame.columns)}), "
                "a prompts table needs sample_id and prompt"
            )
        if not ok(frame.schema[name]):
            raise BadDataError(
                f"prompts {path}, column '{name}' has type {frame.schema[name]}, expected "
                f"{expected}; fix the writer of the table"
            )
    frame = frame.select(pl.col(name).cast(dtype) for name, dtype in PROMPTS_SCHEMA.items())
    indexed = frame.with_row_index("row")
    for name, fix in (("sample_id", "give every prompt its id"),
                      ("prompt", "give every sample_id its prompt text, or drop the row")):
        empty = indexed.filter(pl.col(name).is_null())
        if empty.height:
            row = empty.row(0, named=True)
            raise BadDataError(
                f"prompts {path}, column '{name}' is empty (0-based row {row['row']}, sample_id "
                f"{quote(row['sample_id'])}), {fix}"
            )
    dup = indexed.filter(pl.col("sample_id").is_duplicated())
    if dup.height:
        row = dup.row(0, named=True)
        raise BadDataError(
            f"prompts {path} list sample_id {quote(row['sample_id'])} twice (0-based row "
            f"{row['row']}), keep one row per sample_id"
        )
    if (frame["prompt"].str.strip_chars() == "").all():
        raise BadDataError(f"prompts {path}: every prompt is empty or whitespace, so there is no "
                           "text to cluster or to find neighbours in; give each sample_id its "
                           "prompt text")
    return frame
