"""Writing results for cron: atomic replace under an exclusive lock."""

from __future__ import annotations

import contextlib
import fcntl
import json
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
                f"another stageroute run holds {lock_path}, wait for it to finish "
                "(or remove a stale lock only if no run is active)"
            ) from None
        yield
    finally:
        os.close(fd)


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, fsync, then rename over it.

    Raises:
        CannotWriteError: the directory is missing or not writable.
        LockedError: another run is writing the same file.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise CannotWriteError(f"cannot write {path}: directory {path.parent} does not exist, create it first")
    with locked(path):
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        except OSError as exc:
            raise CannotWriteError(f"cannot write {path} ({exc.strerror}), check permissions") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise CannotWriteError(f"cannot write {path} ({exc.strerror}), check permissions and space") from None
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
