"""The model catalog: which models exist, when they arrive and expire, their caps and prices."""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from stageroute.errors import BadDataError, InputMissingError

UTC = dt.UTC

CATALOG_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "released": pl.Datetime("us", "UTC"),
    "retired": pl.Datetime("us", "UTC"),
    "max_share": pl.Float64(),
    "usd_per_mtok_in": pl.Float64(),
    "usd_per_mtok_out": pl.Float64(),
    "provider": pl.String(),
}
_REQUIRED = ("model", "released")
_FORMATS = {".csv": "CSV", ".parquet": "Parquet", ".pq": "Parquet", ".json": "JSON", ".toml": "TOML"}


def _read_records(path: Path) -> list[dict[str, Any]]:
    """Read JSON or TOML into a list of row dicts (``[...]``, ``{"models": [...]}``, ``[[models]]``)."""
    try:
        text = path.read_text(encoding="utf-8")
        doc: Any = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadDataError(
            f"catalog {path} is not valid {_FORMATS[path.suffix.lower()]} ({exc}), "
            "fix the file or export it again"
        ) from None
    if isinstance(doc, dict):
        for key in ("models", "model"):
            if isinstance(doc.get(key), list):
                doc = doc[key]
                break
    if not isinstance(doc, list) or not all(isinstance(row, dict) for row in doc):
        raise BadDataError(
            f"catalog {path} must hold a list of models (a JSON array, {{\"models\": [...]}} "
            "or TOML [[models]] tables), one object per model"
        )
    # Dates become ISO strings so that every format goes through the same parser below.
    return [
        {k: v.isoformat() if isinstance(v, dt.date | dt.datetime) else v for k, v in row.items()}
        for row in doc
    ]


def _read_frame(path: Path) -> pl.DataFrame:
    suffix = path.suffix.lower()
    if suffix not in _FORMATS:
        raise BadDataError(
            f"catalog {path} has an unknown format '{suffix}', use .csv, .parquet, .json or .toml"
        )
    try:
        if suffix == ".csv":
            return pl.read_csv(path, infer_schema=False)
        if suffix in (".parquet", ".pq"):
            return pl.read_parquet(path)
        records = _read_records(path)
        columns = sorted({key for row in records for key in row})
        return pl.DataFrame(
            {c: [row.get(c) for row in records] for c in columns}, strict=False
        )
    except (pl.exceptions.ComputeError, pl.exceptions.PolarsError, OSError) as exc:
        raise BadDataError(
            f"catalog {path} cannot be read as {_FORMATS[suffix]} ({str(exc).splitlines()[0]}), "
            "fix the file or export it again"
        ) from None


def _to_utc(col: pl.Series, path: Path) -> pl.Series:
    """Coerce a date, datetime or ISO-string column to UTC datetimes, naming a bad value."""
    name = col.name
    if col.dtype == pl.Null:
        return pl.Series(name, [None] * len(col), dtype=CATALOG_SCHEMA["released"])
    if col.dtype == pl.Date:
        return col.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if isinstance(col.dtype, pl.Datetime):
        if col.dtype.time_zone is None:
            return col.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        return col.cast(pl.Datetime("us", col.dtype.time_zone)).dt.convert_time_zone("UTC")
    if col.dtype != pl.String:
        raise BadDataError(
            f"catalog {path}, column '{name}' has type {col.dtype}, "
            "expected a date or datetime (e.g. 2024-03-01)"
        )
    text = col.str.strip_chars()
    text = pl.Series(name, [None if v in ("", None) else v for v in text.to_list()], dtype=pl.String)
    out: list[dt.datetime | None] = []
    for value in text.to_list():
        if value is None:
            out.append(None)
            continue
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise BadDataError(
                f"catalog {path}, column '{name}' has '{value}', which is not a date; "
                "use ISO 8601 such as 2024-03-01 or 2024-03-01T12:00:00Z"
            ) from None
        parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        out.append(parsed)
    return pl.Series(name, out, dtype=pl.Datetime("us", "UTC"))


def _to_float(col: pl.Series, path: Path) -> pl.Series:
    name = col.name
    if col.dtype == pl.String:
        stripped = col.str.strip_chars().replace("", None)
        cast = stripped.cast(pl.Float64, strict=False)
        bad = stripped.filter(cast.is_null() & stripped.is_not_null())
        if len(bad):
            raise BadDataError(
                f"catalog {path}, column '{name}' has '{bad[0]}', which is not a number; "
                "write a plain number such as 0.5 (or leave it empty)"
            )
        return cast
    if col.dtype == pl.Null or col.dtype.is_numeric():
        return col.cast(pl.Float64)
    raise BadDataError(
        f"catalog {path}, column '{name}' has type {col.dtype}, expected a number; "
        "write a plain number such as 0.5 (or leave it empty)"
    )


def _check(frame: pl.DataFrame, path: Path) -> None:
    models = frame["model"]
    if models.null_count() or (models.str.strip_chars() == "").any():
        raise BadDataError(f"catalog {path}, column 'model' has an empty model id, give every row one")
    dup = models.filter(models.is_duplicated())
    if len(dup):
        raise BadDataError(
            f"catalog {path}, column 'model' lists '{dup[0]}' twice, keep one row per model"
        )
    no_release = frame.filter(pl.col("released").is_null())
    if len(no_release):
        raise BadDataError(
            f"catalog {path}, column 'released' is empty for '{no_release['model'][0]}', "
            "give its release date"
        )
    backwards = frame.filter(pl.col("retired") < pl.col("released"))
    if len(backwards):
        row = backwards.row(0, named=True)
        raise BadDataError(
            f"catalog {path}, model '{row['model']}' is retired ({row['retired']:%Y-%m-%d}) before it "
            f"is released ({row['released']:%Y-%m-%d}), fix 'retired' or 'released'"
        )
    share = frame["max_share"]
    bad_share = frame.filter(share.is_nan() | (share <= 0) | (share > 1))
    if len(bad_share):
        row = bad_share.row(0, named=True)
        raise BadDataError(
            f"catalog {path}, column 'max_share' is {row['max_share']} for '{row['model']}', "
            "it must be in (0, 1]"
        )
    for price in ("usd_per_mtok_in", "usd_per_mtok_out"):
        bad = frame.filter(~pl.col(price).is_finite() | (pl.col(price) < 0))
        if len(bad):
            row = bad.row(0, named=True)
            raise BadDataError(
                f"catalog {path}, column '{price}' is {row[price]} for '{row['model']}', "
                "prices must be finite and >= 0 (or empty when unknown)"
            )


def load_catalog(path: str | Path) -> pl.DataFrame:
    """Load and validate a catalog (CSV, Parquet, JSON or TOML) into ``CATALOG_SCHEMA``.

    Raises:
        InputMissingError: the file does not exist.
        BadDataError: a column is missing, a value is invalid, or a model is listed twice.
    """
    path = Path(path)
    if path.is_dir():
        raise InputMissingError(f"catalog {path} is a directory, pass the catalog file to --catalog")
    if not path.is_file():
        raise InputMissingError(f"catalog {path} does not exist, pass an existing file to --catalog")
    raw = _read_frame(path)
    if raw.height == 0:
        raise BadDataError(f"catalog {path} has no models, add one row per model")
    for column in _REQUIRED:
        if column not in raw.columns:
            raise BadDataError(
                f"catalog {path} has no column '{column}' (it has: {', '.join(raw.columns)}), "
                "add it: the catalog needs model and released"
            )
    columns = {}
    for name, dtype in CATALOG_SCHEMA.items():
        col = raw[name] if name in raw.columns else pl.Series(name, [None] * raw.height)
        if name in ("released", "retired"):
            columns[name] = _to_utc(col, path)
        elif dtype == pl.Float64:
            columns[name] = _to_float(col, path)
        else:
            columns[name] = col.cast(pl.String, strict=False)
    frame = pl.DataFrame(columns).with_columns(pl.col("max_share").fill_null(1.0))
    _check(frame, path)
    return frame.sort("model")


@dataclass(frozen=True, slots=True)
class Window:
    """A stage: [start, end) in UTC."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        if self.end <= self.start:
            raise ValueError(f"window end {self.end} must be after its start {self.start}")


def split_pool(catalog: pl.DataFrame, window: Window) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split the catalog into the stage's pool and the excluded models with the reason.

    A model is in the pool if it is released by the window start and not retired before its end.
    """
    released = pl.col("released") <= window.start
    lasts = pl.col("retired").is_null() | (pl.col("retired") >= window.end)
    pool = catalog.filter(released & lasts)
    reason = (
        pl.when(~released)
        .then(pl.format("not released until {}", pl.col("released").dt.strftime("%Y-%m-%d")))
        .when(pl.col("retired") <= window.start)
        .then(pl.format("retired on {}", pl.col("retired").dt.strftime("%Y-%m-%d")))
        .otherwise(pl.format("retires mid-stage on {}", pl.col("retired").dt.strftime("%Y-%m-%d")))
    )
    excluded = catalog.filter(~(released & lasts)).select("model", reason.alias("reason"))
    return pool, excluded
