"""Writing results for cron: atomic replace under an exclusive lock."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stageroute.errors import CannotWriteError, LockedError


def to_json(doc: dict[str, Any]) -> str:
    """Stable JSON text: same document, same bytes."""
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold ``<path>.lock`` exclusively; a second run on the same output fails at once."""
    check_writable(path)
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise CannotWriteError(f"cannot create the lock file {lock_path} ({exc.strerror}), "
                               "check the directory exists and is writable") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(
                f"another stageroute run is writing {path} (it holds {lock_path}), wait for it "
                "to finish; the lock goes with that process, the empty .lock file may stay"
            ) from None
        except OSError as exc:  # e.g. ENOLCK on a file system without flock
            raise CannotWriteError(f"cannot lock {lock_path} ({exc.strerror}), "
                                   "write the output to a local file system") from None
        yield
    finally:
        os.close(fd)


def write_atomic(path: str | Path, data: str | bytes, lock: bool = True) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync, then rename over it.

    Args:
        lock: take ``<path>.lock`` for the write; pass False when the caller already holds it
            (``locked`` around a whole run, so that two runs cannot even compute the same plan).

    Raises:
        CannotWriteError: the directory is missing or not writable.
        LockedError: another run is writing the same file.
    """
    path = Path(path)
    check_writable(path)
    with locked(path) if lock else contextlib.nullcontext():
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        except OSError as exc:
            raise CannotWriteError(f"cannot write {path} ({exc.strerror}), check permissions") from None
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise CannotWriteError(
                f"cannot write {path} ({exc.strerror}), check permissions and free space"
            ) from None
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def check_writable(path: Path) -> None:
    """Fail early (before any work) if ``path`` cannot be an output file."""
    if not path.parent.is_dir():
        raise CannotWriteError(
            f"cannot write {path}: directory {path.parent} does not exist, create it first"
        )
    if path.is_dir():
        raise CannotWriteError(f"cannot write {path}: it is a directory, give a file name such as "
                               f"{path / 'plan.json'}")


def json_number(x: float | None, digits: int = 12) -> float | None:
    """A float for JSON: rounded to ``digits`` significant digits (same inputs, same bytes);
    None for missing or non-finite values."""
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.{digits}g}")


def iso_utc(t: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, whole seconds unless there is a fraction (naive means UTC, as
    everywhere in stageroute, never the machine's zone)."""
    if t is None:
        return None
    utc = t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)
    return utc.isoformat().replace("+00:00", "Z")
