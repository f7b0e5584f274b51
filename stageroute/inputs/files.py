"""What every loader checks about a file before reading it: that it is a regular file, and that
its header (Parquet schema, CSV header line) can be read without surprises.

These checks only touch paths and headers, never data pages: they cost nothing on the success
path and keep the readers from hanging on a FIFO or aborting on a schema they cannot represent.
"""

from __future__ import annotations

import csv
import stat
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stageroute.errors import BadDataError, InputMissingError, shown

if TYPE_CHECKING:
    import polars as pl

MAX_DECIMAL_PRECISION = 38  # the widest decimal Polars reads


def quote(value: object, limit: int = 80) -> str:
    """``repr`` of a data value for a message: escaped (one line) and cut to about ``limit``;
    text goes through ``errors.shown``, the one quoting of user values."""
    if isinstance(value, str):
        return shown(value, limit)
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... (cut)"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def names(columns: Iterable[str], most: int = 12) -> str:
    """Column names for a message (at most ``most``); a name with hidden characters is quoted
    so that they show."""
    every = list(columns)
    listed = [c if c.isprintable() and c == c.strip() and c and len(c) <= 40 else quote(c, 40)
             for c in every[:most]]
    more = f" and {len(every) - most} more" if len(every) > most else ""
    return ", ".join(listed) + more if listed else "none"


def _kind_of(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def require_file(path: str | Path, kind: str, option: str, hint: str = "an existing file") -> Path:
    """``path`` if it is a regular file (symlinks followed), else the error that says what it is.

    Pipes, sockets and devices are refused before anything opens them: reading a FIFO would
    block until some other process writes to it.

    Raises:
        InputMissingError: nothing there, a directory, a dangling or looping link, or not a
            regular file.
    """
    p = Path(path)
    check_name(p, kind, option)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        if p.is_symlink():
            raise InputMissingError(
                f"{kind} {p} is a link to a file that does not exist, pass {hint} to {option}"
            ) from None
        raise InputMissingError(f"{kind} {p} does not exist, pass {hint} to {option}") from None
    except OSError as exc:  # a link loop, a name too long, a directory we may not enter
        raise InputMissingError(
            f"{kind} {p} cannot be opened ({exc.strerror}), pass {hint} to {option}"
        ) from None
    if stat.S_ISDIR(mode):
        raise InputMissingError(f"{kind} {p} is a directory, pass the {kind} file to {option}")
    if not stat.S_ISREG(mode):
        raise InputMissingError(
            f"{kind} {p} is {_kind_of(mode)}, not a regular file; stageroute reads files only, "
            f"write the {kind} to a file and pass that to {option}"
        )
    return p


def check_name(path: Path, kind: str, option: str) -> None:
    """Raise for a path that is not valid UTF-8 (Polars cannot open it; Python keeps the bytes
    as surrogates)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise InputMissingError(
            f"{kind} {quote(str(path), 1000)} has a name that is not valid UTF-8, which cannot be "
            f"opened; rename it (or the directory) and pass it to {option} again"
        ) from None


def is_regular(path: Path) -> bool:
    """A regular file (links followed); False for anything that cannot be inspected."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


@lru_cache(maxsize=64)
def zone_is_readable(zone: str) -> bool:
    """Whether Polars knows the time zone ``zone`` (it aborts on some it does not)."""
    import polars as pl

    try:
        pl.Series([0]).cast(pl.Datetime("us", zone))
    except pl.exceptions.PolarsError:
        return False
    return True


def _leaf_types(name: str, dtype: Any) -> Iterator[tuple[str, Any]]:
    """(column path, Arrow type) of ``dtype`` and of every type nested in it."""
    import pyarrow as pa

    yield name, dtype
    if pa.types.is_struct(dtype):
        for i in range(dtype.num_fields):
            yield from _leaf_types(f"{name}.{dtype.field(i).name}", dtype.field(i).type)
    elif pa.types.is_map(dtype):
        yield from _leaf_types(f"{name}.key", dtype.key_type)
        yield from _leaf_types(f"{name}.value", dtype.item_type)
    elif pa.types.is_dictionary(dtype):
        yield from _leaf_types(name, dtype.value_type)
    elif hasattr(dtype, "value_type"):  # list, large list, fixed-size list
        yield from _leaf_types(f"{name}[]", dtype.value_type)


def parquet_schema_problem(file: str | Path, kind: str) -> BadDataError | None:
    """The error for a Parquet schema Polars cannot take, read from the footer with PyArrow.

    Polars aborts the process (a Rust panic, not an exception) on a time zone it does not know,
    so zones are checked here first; duplicate names and over-wide decimals are named here too
    rather than in a generic read error. None when the schema is fine or unreadable (the reader
    then reports the file itself).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(file)
    except (pa.ArrowException, OSError, ValueError, TypeError):
        return None
    twice = [n for n, count in Counter(schema.names).items() if count > 1]
    if twice:
        return BadDataError(
            f"{kind} {file} has two columns named {quote(twice[0])}, which is ambiguous; "
            "write the file again with one column per name"
        )
    for field in schema:
        for column, dtype in _leaf_types(field.name, field.type):
            zone = getattr(dtype, "tz", None) if pa.types.is_timestamp(dtype) else None
            if zone is not None and not zone_is_readable(zone):
                return BadDataError(
                    f"{kind} {file}, column {quote(column)} has the time zone {quote(zone)}, "
                    "which Polars does not know; write timestamps in UTC or with a named zone "
                    "such as 'Europe/Paris'"
                )
            if pa.types.is_decimal(dtype) and dtype.precision > MAX_DECIMAL_PRECISION:
                return BadDataError(
                    f"{kind} {file}, column {quote(column)} has type {dtype}, wider than the "
                    f"{MAX_DECIMAL_PRECISION} digits Polars reads; write it as a float"
                )
    return None


def read_table(path: Path, kind: str, csv_as_text: bool = False) -> pl.DataFrame:
    """A CSV (by its suffix) or Parquet table as a Polars DataFrame, after the header checks
    (``csv_header_problem``, ``parquet_schema_problem``); ``csv_as_text`` reads every CSV column
    as text (ids such as 007 keep their zeros).

    Raises:
        BadDataError: the header check's error, or the file cannot be read.
    """
    import polars as pl

    csv = path.suffix.lower() == ".csv"
    problem = csv_header_problem(path, kind) if csv else parquet_schema_problem(path, kind)
    if problem is not None:
        raise problem
    try:
        if csv:
            return pl.read_csv(path, infer_schema=False) if csv_as_text else pl.read_csv(
                path, infer_schema_length=None)
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise BadDataError(f"{kind} {path} cannot be read ({first_line(exc)}), check the file"
                           ) from None


def csv_header_problem(path: Path, kind: str) -> BadDataError | None:
    """The error for a CSV header that is not UTF-8 text or names a column twice (the reader
    would rename one)."""
    try:
        with path.open("rb") as raw:
            first = raw.readline(65536)
        if b"\x00" in first:
            utf16 = first.startswith((b"\xff\xfe", b"\xfe\xff"))
            return BadDataError(
                f"{kind} {path} is not UTF-8 text ({'UTF-16' if utf16 else 'NUL bytes'} in its "
                "header line); save it as a UTF-8 CSV"
            )
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, csv.Error):
        return None  # the reader reports the file itself
    twice = [n for n, count in Counter(h.strip() for h in header).items() if count > 1 and n]
    if twice:
        return BadDataError(
            f"{kind} {path} names the column {quote(twice[0])} twice in its header, so which one "
            "is meant is ambiguous; keep one column per name"
        )
    return None
