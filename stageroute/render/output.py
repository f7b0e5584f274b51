"""Writing results for cron: checked before any work, atomic replace, under an exclusive lock."""

from __future__ import annotations

import contextlib
import datetime as dt
import fnmatch
import glob
import json
import math
import os
import socket
import stat
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from stageroute.errors import CannotWriteError, LockedError, UsageError, cut, one_line


def to_json(doc: dict[str, Any], ascii_only: bool = False) -> str:
    """Stable JSON text: same document, same bytes (``ascii_only``: non-ASCII as \\u escapes)."""
    return json.dumps(doc, indent=2, ensure_ascii=ascii_only, allow_nan=False) + "\n"


def _p(path: str | Path, limit: int = 200) -> str:
    """A path for a message, on one line (and cut if absurdly long)."""
    return one_line(cut(str(path), limit))


def output_target(path: str | Path) -> Path:
    """The file that writing ``path`` replaces: a symlink is followed, so the link stays."""
    path = Path(path)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def lock_path(path: str | Path) -> Path:
    """``<output>.lock`` beside the file that is written."""
    target = output_target(path)
    if not target.name:  # '.', '..' or '/': a directory named by its path alone
        target = Path(os.path.abspath(target))
    return target.with_name(target.name + ".lock") if target.name else target / ".lock"


@contextlib.contextmanager
def locked(path: Path, doing: str | None = None) -> Iterator[None]:
    """Hold ``<path>.lock`` exclusively; a second run on the same output fails at once.

    The lock is ``filelock``'s (flock on POSIX, msvcrt on Windows): it goes with the process, and
    the file stays. The holder writes its pid, host and start time into it, so that the loser can
    name it. ``doing`` says what the holder does in the loser's message (default: writing ``path``).

    Raises:
        LockedError: another process holds the lock.
        CannotWriteError: the lock file cannot be created or locked.
    """
    from filelock import FileLock, Timeout

    check_writable(path)
    lock_file = lock_path(path)
    lock = FileLock(str(lock_file), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        holder = _holder(lock_file)
        raise LockedError(
            f"another stageroute run{f' ({holder})' if holder else ''} is "
            f"{doing or 'writing ' + _p(path)} (it "
            f"holds {_p(lock_file)}), wait for it to finish; the lock goes with that process, the "
            ".lock file stays"
        ) from None
    except OSError as exc:  # e.g. ENOLCK on a file system without locks, or a read-only one
        raise CannotWriteError(f"cannot lock {_p(lock_file)} ({exc.strerror or exc}), write the "
                               "output to a local, writable file system") from None
    try:
        since = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        _set_holder(lock_file, f"pid {os.getpid()} on {socket.gethostname()} since {since}")
        yield
    finally:
        _set_holder(lock_file, "")
        lock.release()


def _set_holder(lock_file: Path, text: str) -> None:
    # Best effort: on Windows the locked byte cannot be written through another handle.
    with contextlib.suppress(OSError), open(lock_file, "w", encoding="utf-8") as fh:
        fh.write(text + "\n" if text else "")


def _holder(lock_file: Path) -> str:
    try:
        with open(lock_file, encoding="utf-8", errors="replace") as fh:
            return one_line(fh.read(200).strip())
    except OSError:
        return ""


def write_atomic(path: str | Path, data: str | bytes, lock: bool = True,
                 guard: AbstractContextManager[Any] | None = None) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync, then rename over it.

    Anything that stops the write (an error, SIGINT, SIGTERM) removes the temporary file and
    leaves ``path`` as it was.

    Args:
        lock: take ``<path>.lock`` for the write; pass False when the caller already holds it
            (``locked`` around a whole run, so that two runs cannot even compute the same plan).
        guard: a context entered around the final rename only (the CLI defers signals there, so
            that it knows whether the file was replaced).

    Raises:
        CannotWriteError: the directory is missing or not writable.
        LockedError: another run is writing the same file.
    """
    path = Path(path)
    target = output_target(path)
    check_writable(path)
    with locked(path) if lock else contextlib.nullcontext():
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        except OSError as exc:
            raise CannotWriteError(f"cannot write {_p(path)} ({exc.strerror}), check permissions") from None
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            with guard or contextlib.nullcontext():
                os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise CannotWriteError(
                f"cannot write {_p(path)} ({exc.strerror}), check permissions and free space"
            ) from None
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def check_writable(path: Path) -> None:
    """Fail early (before any work) if ``path`` cannot be an output file.

    Refused: a directory, a FIFO, a device or a socket (the atomic rename would replace it with a
    file), a read-only file, a path in a missing directory, a directory where no file can be
    created, and a symlink loop.

    Raises:
        CannotWriteError: with the reason and what to do.
    """
    try:
        info: os.stat_result | None = os.stat(path)
    except FileNotFoundError:  # a new file, or a dangling symlink (its target is created)
        info = None
    except OSError as exc:  # a symlink loop, a path through a file, a name too long
        raise CannotWriteError(f"cannot write {_p(path)} ({exc.strerror}), give another path") from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise CannotWriteError(f"cannot write {_p(path)}: it is a directory, give the path of a file "
                               f"in it, such as {_p(Path(path) / 'plan.json')}")
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise CannotWriteError(f"cannot write {_p(path)}: it is not a regular file (a FIFO, device "
                               "or socket), give the path of a regular file such as plan.json")
    if info is not None and not info.st_mode & 0o222:
        raise CannotWriteError(f"cannot write {_p(path)}: the file is read-only, make it writable "
                               "(chmod u+w) or give another path")
    parent = output_target(path).parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise CannotWriteError(f"cannot write {_p(path)}: directory {_p(parent)} {what}, create it first")
    try:  # the only portable test of "can create files here" (os.access ignores read-only mounts)
        fd, probe = tempfile.mkstemp(prefix=".stageroute-probe-", suffix=".tmp", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CannotWriteError(f"cannot write {_p(path)}: no file can be created in {_p(parent)} "
                               f"({exc.strerror}), check its permissions or give another directory") from None


# Inputs given as a file, a glob or a directory of Parquet files (``inputs.logs.find_logs``).
SCANNED = frozenset({"--logs", "--feedback"})
# Inputs that are directories a stageroute command owns (a statistics store): nothing else may
# be written anywhere inside them.
OWNED = frozenset({"--stats"})


def check_not_input(option: str, output: Path, inputs: Mapping[str, str | Path | None],
                    outputs: Mapping[str, Path | None] | None = None) -> None:
    """Refuse an output that is an input (or that a ``SCANNED`` input's directory or glob would
    read back), or that is another output of the same run.

    Spellings, symlinks and hard links of the same file count as the same file.

    Raises:
        UsageError: naming both options and paths.
    """
    for name, other in (outputs or {}).items():
        if other is not None and _same_file(output, other):
            raise UsageError(f"{option} {_p(output)} and {name} {_p(other)} are the same file, "
                             "give them different paths")
    for written in (output, lock_path(output)):
        for name, spec in inputs.items():
            why = None if spec is None else (_owns(spec, written) if name in OWNED
                                             else _reads(spec, written, name in SCANNED))
            if spec is None or why is None:
                continue
            what = f"its lock file {_p(written)}" if written != output else "it"
            raise UsageError(
                f"{option} {_p(output)} would overwrite the input {name} {_p(spec)} ({what} {why}), "
                f"give {option} another path"
            )


def _owns(spec: str | Path, target: Path) -> str | None:
    """Why writing ``target`` would damage the directory ``spec`` that a command owns."""
    if Path(os.path.realpath(target)).is_relative_to(os.path.realpath(spec)):  # or is it
        return "is inside that statistics store, which only stageroute stats writes"
    return None


def _reads(spec: str | Path, target: Path, scanned: bool) -> str | None:
    """Why loading ``spec`` (a file; if ``scanned``, also a directory of Parquet files or a glob)
    reads ``target``."""
    text = str(spec)
    if not scanned:
        return "is the same file" if _same_file(text, target) else None
    if any(c in text for c in "*?["):
        pattern = os.path.abspath(text)
        if any(fnmatch.fnmatchcase(p, pattern) for p in (os.path.abspath(target),
                                                         os.path.realpath(target))):
            return "matches the glob, so the next run would read it"
        candidates = glob.glob(text, recursive=True)
    elif Path(text).is_dir():
        inside = Path(os.path.realpath(target)).is_relative_to(os.path.realpath(text))
        if inside and target.name.endswith(".parquet"):
            return "is a .parquet file in that directory, so the next run would read it"
        return None
    else:
        candidates = [text]
    return "is the same file" if any(_same_file(c, target) for c in candidates) else None


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)  # hard links too
    except OSError:  # one of them does not exist (yet)
        return os.path.realpath(a) == os.path.realpath(b)


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
