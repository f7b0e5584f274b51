"""Where the logs are: a file, a glob or a directory resolved to real Parquet files, and their
schemas checked (one type per column, readable time zones, a consistent hive layout) from the
footers before any data page is read.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from stageroute.errors import BadDataError, InputMissingError
from stageroute.inputs.files import (
    check_name,
    first_line,
    is_regular,
    names,
    parquet_schema_problem,
    quote,
    require_file,
)

# Columns stageroute adds to a scan; renamed when a user column already has the name.
FILE_COLUMN = "__file__"
ROW_COLUMN = "__row__"


def fresh(base: str, taken: set[str] | dict[str, pl.DataType]) -> str:
    """``base``, or ``base`` with more leading underscores, that is not in ``taken``."""
    name = base
    while name in taken:
        name = "_" + name
    return name


def file_schema(file: str) -> dict[str, pl.DataType]:
    """The columns of one Parquet file, from its footer (the name taken literally, not a glob)."""
    return dict(pl.scan_parquet(file, glob=False).collect_schema())


@dataclass(frozen=True, slots=True)
class LogSource:
    """Parquet files to scan as one table, with their merged schema (checked consistent)."""

    label: str
    files: tuple[str, ...]
    hive: bool
    kind: str = "logs"  # "logs" or "feedback": the word messages start with
    schema: dict[str, pl.DataType] = field(default_factory=dict)  # file columns, all files
    notes: tuple[str, ...] = ()
    origin: dict[str, str] = field(default_factory=dict)  # column -> the first file that has it

    def where(self, column: str) -> str:
        """The file to name in a message about ``column`` (the source when it is one file)."""
        return self.origin.get(column, self.label) if len(self.files) > 1 else self.label

    @property
    def file_column(self) -> str:
        return fresh(FILE_COLUMN, self.schema)

    @property
    def row_column(self) -> str:
        return fresh(ROW_COLUMN, self.schema)

    def scan(self, with_file: bool = False, with_row: bool = False) -> pl.LazyFrame:
        try:
            return pl.scan_parquet(
                list(self.files),
                glob=False,  # already expanded; a literal '[' in a file name must stay literal
                hive_partitioning=self.hive,
                schema=self.schema or None,  # every file's columns, not only the first's
                include_file_paths=self.file_column if with_file else None,
                row_index_name=self.row_column if with_row else None,
                missing_columns="insert",
                extra_columns="ignore",
            )
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise unreadable(self, exc) from None


def unreadable(source: LogSource, exc: BaseException) -> BadDataError:
    """The error for a read that failed; with several files, name the one to blame."""
    if len(source.files) > 1:
        for file in source.files:  # the error path only: decode each file on its own
            try:
                pl.scan_parquet(file, glob=False).select(pl.all().null_count()).collect()
            except (pl.exceptions.PolarsError, OSError) as own:
                return BadDataError(
                    f"{source.kind} {file} cannot be read as Parquet ({first_line(own)}), check "
                    f"that the file is complete and really Parquet, or remove it from {source.label}"
                )
    return BadDataError(
        f"{source.kind} {source.label} cannot be read as Parquet ({first_line(exc)}), check that "
        "the file is complete and really Parquet"
    )


def segments_match(parts: tuple[str, ...], segments: tuple[str, ...]) -> bool:
    """Whether path ``parts`` match glob ``segments`` ('**' spans any number of directories)."""
    if not segments:
        return not parts
    head = segments[0]
    if head == "**":
        return any(segments_match(parts[i:], segments[1:]) for i in range(len(parts) + 1)
                   if not any(p.startswith(".") for p in parts[:i]))
    if not parts or (parts[0].startswith(".") and not head.startswith(".")):
        return False
    return fnmatch.fnmatchcase(parts[0], head) and segments_match(parts[1:], segments[1:])


def _walk(root: Path) -> list[Path]:
    """Every file under ``root``, following directory links but entering each real directory
    once (a link loop would otherwise repeat the same files without end)."""
    seen: set[str] = set()
    found: list[Path] = []
    for directory, subdirs, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(directory)
        if real in seen:
            subdirs[:] = []
            continue
        seen.add(real)
        subdirs.sort()
        found += [Path(directory) / name for name in sorted(filenames)]
    return found


def _glob(pattern: str) -> list[Path]:
    """The paths that match ``pattern``; recursive '**' walks without following loops."""
    if "**" not in pattern:
        return [Path(p) for p in sorted(glob.glob(pattern))]
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate(parts) if any(ch in part for ch in "*?["))
    root = Path(*parts[:fixed]) if fixed else Path(".")
    segments = tuple(parts[fixed:])
    return [p for p in _walk(root) if segments_match(p.relative_to(root).parts, segments)]


def _real_files(candidates: list[Path], label: str, kind: str) -> tuple[list[str], list[str]]:
    """Regular files among ``candidates``, each real file once; notes on what was left out."""
    files: list[str] = []
    seen: set[str] = set()
    odd: list[Path] = []
    repeats = 0
    for path in candidates:
        check_name(path, kind, f"--{kind}")
        if not is_regular(path):
            odd.append(path)
            continue
        real = os.path.realpath(path)
        if real in seen:
            repeats += 1
            continue
        seen.add(real)
        files.append(str(path))
    notes = []
    if repeats:
        notes.append(f"{kind} {label}: {repeats} path(s) lead to a file already read (links); "
                     "each file is read once")
    if odd and files:
        notes.append(f"{kind} {label}: skipped {len(odd)} entr(ies) that are not regular files "
                     f"(e.g. {quote(str(odd[0]), 1000)})")
    return files, notes


def _hive_keys(root: Path, files: list[str], kind: str) -> tuple[str, ...]:
    """The partition keys (``key=value`` directories) shared by every file, checked consistent.

    Polars reads a key from every directory of a file's path, above ``root`` too, so all count.
    """
    layouts: dict[tuple[str, ...], str] = {}
    for file in files:
        keys = tuple(part.split("=", 1)[0] for part in Path(file).parts[:-1] if "=" in part)
        if len(set(keys)) != len(keys):
            twice = next(k for k in keys if keys.count(k) > 1)
            raise BadDataError(
                f"{kind} {file} is under the partition key {quote(twice)} twice, keep one "
                f"key=value directory per key in {root}"
            )
        layouts.setdefault(keys, file)
    if len(layouts) > 1:
        (a, file_a), (b, file_b) = list(layouts.items())[:2]
        raise BadDataError(
            f"{kind} {root} mixes partition layouts: {file_a} is under ({names(a) or 'none'}) but "
            f"{file_b} under ({names(b) or 'none'}); keep one key=value layout for every file"
        )
    return next(iter(layouts), ())


def fingerprint(file: str) -> bytes | None:
    """A digest of a file's raw footer (row groups, sizes, offsets, statistics), to spot copies."""
    try:
        with open(file, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(size - 8, 0))
            tail = handle.read(8)
            length = int.from_bytes(tail[:4], "little")
            if len(tail) < 8 or tail[4:] != b"PAR1" or not 0 < length <= size - 8:
                return None
            handle.seek(size - 8 - length)
            return hashlib.sha256(handle.read(length)).digest()
    except OSError:
        return None


def _has_rows(file: str) -> bool:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return bool(pq.read_metadata(file).num_rows > 0)
    except (pa.ArrowException, OSError, ValueError, TypeError):
        return False


def _check_copies(files: list[str], kind: str) -> None:
    """Raise when two files have the same footer: a copy, whose rows would count twice (empty
    files with the same schema also share a footer, and count nothing)."""
    if len(files) < 2:
        return
    seen: dict[bytes, str] = {}
    for file in files:
        digest = fingerprint(file)
        if digest is None:
            continue
        first = seen.setdefault(digest, file)
        if first != file and _has_rows(file):
            raise BadDataError(
                f"{kind} {file} has the same footer (rows, sizes, statistics) as {first}: it is a "
                "copy, and its rows would count twice; remove one of them"
            )


# Nullable columns of the logs that a file may lack while others have them: its rows read them
# as empty, which the plan says (a file written before feedback was logged, say).
PATCHY = ("reward", "segment", "propensity")


def _merged_schema(files: list[str], label: str, kind: str,
                   ) -> tuple[dict[str, tuple[pl.DataType, str]], tuple[str, ...]]:
    """Every file's columns with their one type and the first file that has them (any file whose
    footer Polars cannot take is named), and a note per ``PATCHY`` column that some files lack."""
    seen: dict[str, tuple[pl.DataType, str]] = {}
    lacking: dict[str, list[str]] = {}
    for file in files:
        problem = parquet_schema_problem(file, kind)
        if problem is not None:
            raise problem
        try:
            schema = file_schema(file)
        except (pl.exceptions.PolarsError, OSError) as exc:
            where = f", or remove it from {label}" if len(files) > 1 else ""
            raise BadDataError(
                f"{kind} {file} cannot be read as Parquet ({first_line(exc)}), check that the "
                f"file is complete and really Parquet{where}"
            ) from None
        for column, dtype in schema.items():
            first = seen.setdefault(column, (dtype, file))
            if first[0] != dtype:
                raise BadDataError(
                    f"{kind} {file}, column {quote(column)} has type {dtype} but {first[1]} has "
                    f"{first[0]}, write every file of {label} with the same column types"
                )
        for column in PATCHY:
            if column not in schema:
                lacking.setdefault(column, []).append(file)
    notes = tuple(
        f"{kind} {label}: {len(without)} of {len(files)} files "
        f"{'has' if len(without) == 1 else 'have'} no column {quote(column)} "
        f"(e.g. {without[0]}; {seen[column][1]} has it), so their rows read it as empty"
        for column, without in lacking.items() if column in seen and kind == "logs")
    return seen, notes


def _hive_use(keys: tuple[str, ...], schema: dict[str, pl.DataType], label: str, kind: str,
              needed: tuple[str, ...]) -> tuple[bool, tuple[str, ...]]:
    """Whether to read the partition keys as columns, and a note when some are left out.

    A key that is also a column of the files would overwrite that column (every row of
    ``model=x/`` credited to x): the files' own column wins, and the note says so.
    """
    shadowing = [k for k in keys if k in schema]
    if not shadowing:
        return bool(keys), ()
    missing = [k for k in keys if k not in schema and k in needed]
    if missing:
        raise BadDataError(
            f"{kind} {label}: the partition key {quote(shadowing[0])} is also a column of the "
            f"files, while {quote(missing[0])} exists only as a partition key; rename the key "
            f"directories (e.g. {shadowing[0]}_part=...) or drop the column from the files"
        )
    return False, (f"{kind} {label}: the partition directories' key(s) {names(shadowing)} are "
                   "ignored, the files' own column(s) of that name are used",)


def resolve_files(path: str | Path, kind: str = "logs") -> tuple[list[str], tuple[str, ...], str,
                                                                  Path | None]:
    """The regular files a file, glob or directory names: (files, notes, label, directory root).

    Raises:
        InputMissingError: nothing exists there, no Parquet file matches, or not a regular file.
    """
    option = f"--{kind}"
    text = str(path)
    p = Path(text)
    root: Path | None = None
    label = str(p)
    if any(ch in text for ch in "*?[") and not p.exists():
        label = text
        files, notes = _real_files(_glob(text), text, kind)
        if not files:
            raise InputMissingError(
                f"{kind} glob {quote(text, 1000)} matches no file, check the pattern given to {option} "
                "(quote it so that the shell does not expand it)"
            )
    elif p.is_dir():
        files, notes = _real_files([f for f in _walk(p) if f.name.endswith(".parquet")], text, kind)
        if not files:
            raise InputMissingError(
                f"{kind} directory {p} holds no .parquet file, point {option} at the directory, "
                "file or glob of the Parquet files"
            )
        root = p
    else:
        require_file(p, kind, option, hint="a file, a glob or a directory")
        files, notes = [str(p)], []
    return files, tuple(notes), label, root


def find_logs(path: str | Path, kind: str = "logs",
              needed: tuple[str, ...] = ("request_id", "timestamp", "model", "reward", "cost"),
              keep: Callable[[str], bool] | None = None) -> LogSource:
    """Resolve a file, a glob or a directory (hive-partitioned or not) to checked Parquet files.

    ``kind`` ("logs" or "feedback") names the input and its option in messages; ``needed`` are
    the columns a partition key may supply; ``keep`` selects the files to check and read (the
    statistics store's new files: the others are not opened at all).

    Raises:
        InputMissingError: nothing exists there, no Parquet file matches, or not a regular file.
        BadDataError: a footer that cannot be read, a column typed differently in two files, a
            time zone Polars does not know, a mixed or shadowing partition layout.
    """
    files, notes, label, root = resolve_files(path, kind)
    if keep is not None:
        files = [f for f in files if keep(f)]
    seen, patchy = _merged_schema(files, label, kind)
    _check_copies(files, kind)
    schema = {column: dtype for column, (dtype, _) in seen.items()}
    hive, hive_notes = False, tuple[str, ...]()
    if root is not None and files:
        keys = _hive_keys(root, files, kind)
        hive, hive_notes = _hive_use(keys, schema, label, kind, needed)
    return LogSource(label, tuple(files), hive=hive, kind=kind, schema=schema,
                     notes=(*notes, *hive_notes, *patchy),
                     origin={column: file for column, (_, file) in seen.items()})
