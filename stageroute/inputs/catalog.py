"""The model catalog: which models exist, when they arrive and expire, their caps and prices."""

from __future__ import annotations

import datetime as dt
import json
import tomllib
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from stageroute.errors import BadDataError
from stageroute.inputs.checks import MAX_AMOUNT
from stageroute.inputs.files import (
    csv_header_problem,
    first_line,
    names,
    parquet_schema_problem,
    quote,
    require_file,
)

UTC = dt.UTC
# Control and format characters (newline, tab, NUL, zero-width space, ...) are invisible or break
# lines: no real id or name has them, a broken export does (a regex for Polars' str.contains).
HIDDEN_CATEGORIES = ("Cc", "Cf", "Zl", "Zp")
HIDDEN_CHARACTERS = "[" + "".join(rf"\p{{{c}}}" for c in HIDDEN_CATEGORIES) + "]"
MAX_ID_LENGTH = 1000  # longer ids come from broken quoting (a quote that swallows the file)
LAST_RELEASE = dt.datetime(9000, 1, 1, tzinfo=UTC)  # later "releases" are placeholders

CATALOG_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "released": pl.Datetime("us", "UTC"),
    "retired": pl.Datetime("us", "UTC"),
    "max_share": pl.Float64(),
    "usd_per_mtok_in": pl.Float64(),
    "usd_per_mtok_out": pl.Float64(),
    "provider": pl.String(),
    "litellm_model": pl.String(),  # the gateway's model string (export), e.g. openai/gpt-4o-mini
    "rpm": pl.Int64(),  # requests per minute the provider allows (export)
    "tpm": pl.Int64(),  # tokens per minute the provider allows (export)
}
_LIMITS = ("rpm", "tpm")
_REQUIRED = ("model", "released")
_FORMATS = {".csv": "CSV", ".parquet": "Parquet", ".pq": "Parquet", ".json": "JSON", ".toml": "TOML"}


def has_hidden(text: str) -> bool:
    """Whether ``text`` holds a character of ``HIDDEN_CATEGORIES`` (what ``HIDDEN_CHARACTERS``
    matches in a Polars column), or a lone surrogate, which a JSON string can carry and a Polars
    column cannot hold."""
    return any(unicodedata.category(ch) in (*HIDDEN_CATEGORIES, "Cs") for ch in text)


def id_problem(name: str) -> str | None:
    """What keeps ``name`` from being a model id or a gateway name (a control or invisible
    character, more than ``MAX_ID_LENGTH`` characters, surrounding whitespace), as the end of a
    sentence "... which <problem>"; None: nothing. The catalog's own column check is the
    vectorised form of the first two (it strips whitespace with a note)."""
    if has_hidden(name):
        return "contains a control or invisible character (newline, tab, zero-width space, ...)"
    if len(name) > MAX_ID_LENGTH:
        return f"is {len(name):,} characters long (at most {MAX_ID_LENGTH:,})"
    return "has surrounding whitespace" if name != name.strip() else None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (JSON readers silently keep the last one)."""
    keys = [k for k, _ in pairs]
    twice = [k for k in keys if keys.count(k) > 1]
    if twice:
        raise ValueError(f"the key {quote(twice[0])} appears twice in one object")
    return dict(pairs)


def _read_records(path: Path) -> list[dict[str, Any]]:
    """Read JSON or TOML into a list of row dicts (``[...]``, ``{"models": [...]}``, ``[[models]]``)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
        doc: Any = (json.loads(text, object_pairs_hook=_unique_keys)
                    if path.suffix.lower() == ".json" else tomllib.loads(text))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # decode errors included
        reason = "nested too deeply" if isinstance(exc, RecursionError) else first_line(exc)
        raise BadDataError(
            f"catalog {path} is not valid {_FORMATS[path.suffix.lower()]} ({reason}), "
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
    for i, row in enumerate(doc):
        for key, value in row.items():
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
                raise BadDataError(
                    f"catalog {path}, model {i + 1} has in {quote(key)} an integer too large to "
                    f"represent ({value.bit_length()} bits); write a plain number such as 0.5"
                )
    # Dates become ISO strings so that every format goes through the same parser below.
    return [
        {k: v.isoformat() if isinstance(v, dt.date | dt.datetime | dt.time) else v
         for k, v in row.items()}
        for row in doc
    ]


def _read_frame(path: Path) -> pl.DataFrame:
    suffix = path.suffix.lower()
    if suffix not in _FORMATS:
        raise BadDataError(
            f"catalog {path} has an unknown format '{suffix}', use .csv, .parquet, .json or .toml"
        )
    problem = (csv_header_problem(path, "catalog") if suffix == ".csv"
               else parquet_schema_problem(path, "catalog") if _FORMATS[suffix] == "Parquet"
               else None)
    if problem is not None:
        raise problem
    try:
        if suffix == ".csv":
            frame = pl.read_csv(path, infer_schema=False)
            # 'model, released' is a common hand-written header: names are read without the spaces.
            stripped = [c.strip() for c in frame.columns]
            return frame.rename(dict(zip(frame.columns, stripped, strict=True)))
        if suffix in (".parquet", ".pq"):
            return pl.read_parquet(path)
        records = _read_records(path)
        columns = sorted({key for row in records for key in row})
        return pl.DataFrame(
            {c: [row.get(c) for row in records] for c in columns}, strict=False
        )
    except (pl.exceptions.PolarsError, OSError, TypeError, ValueError, OverflowError) as exc:
        first = first_line(exc)
        raise BadDataError(
            f"catalog {path} cannot be read as {_FORMATS[suffix]} ({first}), "
            "fix the file or export it again"
        ) from None


def _to_utc(col: pl.Series, path: Path) -> pl.Series:
    """Coerce a date, datetime or ISO-string column to UTC datetimes, naming a bad value."""
    name = col.name
    if col.dtype == pl.Null:
        return pl.Series(name, [None] * len(col), dtype=CATALOG_SCHEMA["released"])
    if col.dtype == pl.Date or isinstance(col.dtype, pl.Datetime):
        return _native_to_utc(col, path)
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
                f"catalog {path}, column '{name}' has {quote(value)}, which is not a date; "
                "use ISO 8601 such as 2024-03-01 or 2024-03-01T12:00:00Z"
            ) from None
        try:
            parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        except OverflowError:
            raise _off_calendar(path, name, value) from None
        out.append(parsed)
    return pl.Series(name, out, dtype=pl.Datetime("us", "UTC"))


def _off_calendar(path: Path, column: str, value: object) -> BadDataError:
    return BadDataError(
        f"catalog {path}, column '{column}' has {quote(value)}, which falls outside the calendar "
        "(years 1 to 9999) once converted to UTC; write a real date such as 2024-03-01"
    )


def _native_to_utc(col: pl.Series, path: Path) -> pl.Series:
    """A Date or Datetime column in UTC; values that leave years 1..9999 on the way are named."""
    zone = getattr(col.dtype, "time_zone", None)
    try:
        out = col.cast(pl.Datetime("us", zone))
        out = out.dt.replace_time_zone("UTC") if zone is None else out.dt.convert_time_zone("UTC")
        years = out.dt.year()
    except pl.exceptions.PolarsError:
        raise _off_calendar(path, col.name, "a value") from None
    edge = (years < 1) | (years > 9999)
    if edge.any():
        raise _off_calendar(path, col.name, str(col.filter(edge)[0]))
    return out


def _to_float(col: pl.Series, path: Path) -> pl.Series:
    name = col.name
    if col.dtype == pl.String:
        stripped = col.str.strip_chars().replace("", None)
        cast = stripped.cast(pl.Float64, strict=False)
        bad = stripped.filter(cast.is_null() & stripped.is_not_null())
        if len(bad):
            raise BadDataError(
                f"catalog {path}, column '{name}' has {quote(bad[0])}, which is not a number; "
                "write a plain number such as 0.5 (or leave it empty)"
            )
        return cast
    if col.dtype == pl.Null or col.dtype.is_numeric():
        return col.cast(pl.Float64)
    raise BadDataError(
        f"catalog {path}, column '{name}' has type {col.dtype}, expected a number; "
        "write a plain number such as 0.5 (or leave it empty)"
    )


def _to_limit(col: pl.Series, path: Path) -> pl.Series:
    """A rate-limit column (``rpm``, ``tpm``): positive whole numbers, or empty."""
    values = _to_float(col, path)
    bad = values.filter(values.is_not_null() & (~values.is_finite() | (values < 1)
                                                | (values != values.floor()) | (values >= 2**53)))
    if len(bad):
        raise BadDataError(
            f"catalog {path}, column '{col.name}' has {bad[0]:g}, which is not a positive whole "
            "number; write a limit such as 500 (or leave it empty when there is none)"
        )
    return values.cast(pl.Int64)


def _text(col: pl.Series, path: Path) -> pl.Series:
    """A model id or provider column as text: strings and integers only."""
    dtype = col.dtype
    if dtype in (pl.String, pl.Null, pl.Categorical) or isinstance(dtype, pl.Enum) \
            or dtype.is_integer():
        return col.cast(pl.String)
    raise BadDataError(
        f"catalog {path}, column '{col.name}' has type {dtype}, expected text such as "
        "'gpt-4o'; write one plain id per row"
    )


def _normalise_ids(frame: pl.DataFrame, path: Path) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """Refuse ids that cannot be right; strip surrounding whitespace, with a note saying so.

    Ids that differ only in case are refused: ids are compared exactly, and which spelling the
    logs use cannot be guessed.
    """
    models = frame["model"]
    odd = models.filter(models.str.contains(HIDDEN_CHARACTERS)
                        | (models.str.len_chars() > MAX_ID_LENGTH))
    if len(odd):
        value = odd[0]
        what = ("contains a control or invisible character (newline, tab, zero-width space, ...)"
                if len(value) <= MAX_ID_LENGTH
                else f"is {len(value):,} characters long (at most {MAX_ID_LENGTH:,})")
        raise BadDataError(
            f"catalog {path}, column 'model' has {quote(value)}, which {what}; check the file's "
            "quoting and write one plain id per row"
        )
    stripped = models.str.strip_chars()
    changed = frame.filter(models != stripped)["model"]
    notes: tuple[str, ...] = ()
    if len(changed):
        notes = (f"catalog {path}: {len(changed)} model id(s) had surrounding whitespace, which "
                 f"was removed (e.g. {quote(changed[0], 40)} is read as "
                 f"{quote(changed[0].strip(), 40)})",)
    frame = frame.with_columns(stripped.alias("model"))
    spellings = frame.group_by(pl.col("model").str.to_lowercase().alias("folded")).agg(
        pl.col("model").unique().sort()).filter(pl.col("model").list.len() > 1)
    if spellings.height:
        first, second = spellings["model"][0].to_list()[:2]
        raise BadDataError(
            f"catalog {path}, column 'model' lists {quote(first)} and {quote(second)}, which "
            "differ only in case; ids are matched exactly, keep the one spelling the logs use"
        )
    return frame, notes


def _check_dates(frame: pl.DataFrame, path: Path) -> None:
    no_release = frame.filter(pl.col("released").is_null())
    if len(no_release):
        raise BadDataError(
            f"catalog {path}, column 'released' is empty for {quote(no_release['model'][0])}, "
            "give its release date"
        )
    late = frame.filter(pl.col("released") >= LAST_RELEASE)
    if len(late):
        row = late.row(0, named=True)
        raise BadDataError(
            f"catalog {path}, model {quote(row['model'])} is released on "
            f"{row['released'].date().isoformat()}, a placeholder rather than a date; leave the "
            "model out of the catalog until it has a release date"
        )
    backwards = frame.filter(pl.col("retired") < pl.col("released"))
    if len(backwards):
        row = backwards.row(0, named=True)
        raise BadDataError(
            f"catalog {path}, model {quote(row['model'])} is retired "
            f"({row['retired'].date().isoformat()}) before it is released "
            f"({row['released'].date().isoformat()}), fix 'retired' or 'released'"
        )


def _gateway_names(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    """``provider`` and ``litellm_model`` go into gateway configs as they are (``export``):
    surrounding whitespace is removed (a blank value is empty, i.e. not given) and a control or
    invisible character is refused, as it would be a broken route."""
    for column in ("provider", "litellm_model"):
        bad = frame.filter(pl.col(column).str.contains(HIDDEN_CHARACTERS))
        if len(bad):
            row = bad.row(0, named=True)
            raise BadDataError(
                f"catalog {path}, column '{column}' is {quote(row[column], 40)} for "
                f"{quote(row['model'])}, which holds a control or invisible character; write the "
                "gateway's name as plain text (or leave it empty)"
            )
    return frame.with_columns(pl.col("provider", "litellm_model").str.strip_chars()
                              .replace("", None))


def _check(frame: pl.DataFrame, path: Path) -> None:
    models = frame["model"]
    if models.null_count() or (models == "").any():
        raise BadDataError(f"catalog {path}, column 'model' has an empty model id, give every row one")
    dup = models.filter(models.is_duplicated())
    if len(dup):
        raise BadDataError(
            f"catalog {path}, column 'model' lists {quote(dup[0])} twice, keep one row per model"
        )
    _check_dates(frame, path)
    share = frame["max_share"]
    bad_share = frame.filter(share.is_nan() | (share <= 0) | (share > 1))
    if len(bad_share):
        row = bad_share.row(0, named=True)
        raise BadDataError(
            f"catalog {path}, column 'max_share' is {row['max_share']} for {quote(row['model'])}, "
            "it must be in (0, 1]"
        )
    for price in ("usd_per_mtok_in", "usd_per_mtok_out"):
        p = pl.col(price)
        bad = frame.filter(~p.is_finite() | (p < 0) | (p > MAX_AMOUNT))
        if len(bad):
            row = bad.row(0, named=True)
            raise BadDataError(
                f"catalog {path}, column '{price}' is {row[price]} for {quote(row['model'])}, "
                f"prices must be finite, >= 0 and at most {MAX_AMOUNT:g} (or empty when unknown)"
            )


def read_catalog(path: str | Path) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """Load and validate a catalog (CSV, Parquet, JSON or TOML) into ``CATALOG_SCHEMA``.

    Returns:
        The catalog sorted by model, and notes on what was normalised (ids stripped of
        surrounding whitespace) for the user to see.

    Raises:
        InputMissingError: the file does not exist or is not a regular file.
        BadDataError: a column is missing, a value is invalid, a model is listed twice (or
            twice up to case).
    """
    path = require_file(path, "catalog", "--catalog")
    raw = _read_frame(path)
    if raw.height == 0:
        raise BadDataError(f"catalog {path} has no models, add one row per model")
    for column in _REQUIRED:
        if column not in raw.columns:
            raise BadDataError(
                f"catalog {path} has no column '{column}' (it has: {names(raw.columns)}), "
                "add it: the catalog needs model and released"
            )
    columns = {}
    for name, dtype in CATALOG_SCHEMA.items():
        col = raw[name] if name in raw.columns else pl.Series(name, [None] * raw.height)
        if name in ("released", "retired"):
            columns[name] = _to_utc(col, path)
        elif dtype == pl.Float64:
            columns[name] = _to_float(col, path)
        elif name in _LIMITS:
            columns[name] = _to_limit(col, path)
        else:
            columns[name] = _text(col, path)
    frame = pl.DataFrame(columns).with_columns(pl.col("max_share").fill_null(1.0))
    if frame["model"].null_count() == 0:
        frame, notes = _normalise_ids(frame, path)
    else:
        notes = ()
    _check(frame, path)
    return _gateway_names(frame, path).sort("model"), notes


def load_catalog(path: str | Path) -> pl.DataFrame:
    """The catalog of ``read_catalog`` without its notes."""
    return read_catalog(path)[0]


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
