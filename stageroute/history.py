"""The plan history: one file per planned window and inputs, so that a rerun is a no-op.

``DIR/plan-<run_id>.json``, where the run id is ``<window start %Y%m%dT%H%M>-<input digest>``
(``plan.Plan.run_id``): a run whose window and inputs were already planned finds its file and
solves nothing. ``DIR/history.lock`` is held for the whole run, so two runs never plan into the
same history at once.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from stageroute.errors import CannotWriteError
from stageroute.render.output import lock_path, locked, write_atomic

LOCK = "history"  # the history's lock is DIR/history.lock (``render.output.lock_path``)


class AlreadyPlanned(Exception):  # noqa: N818 (an outcome, not an error)
    """The run's window and inputs are planned already: ``path`` holds the plan, ``text``."""

    def __init__(self, path: Path, text: str) -> None:
        super().__init__(f"this window and these inputs are planned already: {path}")
        self.path = path
        self.text = text


def history_file(directory: str | Path, run_id: str) -> Path:
    """Where the plan of ``run_id`` is kept."""
    return Path(directory) / f"plan-{run_id}.json"


def own_files(directory: str | Path) -> tuple[Path, Path]:
    """The history's own files: its lock, and a plan (run id ``*``, a pattern of every plan)."""
    return lock_path(Path(directory) / LOCK), history_file(directory, "*")


def is_history_file(directory: str | Path, path: str | Path) -> bool:
    """Whether ``path`` is (or would be) one of the history's own files: a plan or its lock."""
    path = Path(path)
    return (os.path.realpath(path.parent) == os.path.realpath(directory)
            and any(fnmatch.fnmatchcase(path.name, own.name) for own in own_files(directory)))


def check_not_planned(directory: str | Path | None, run_id: str) -> tuple[str, ...]:
    """Raise ``AlreadyPlanned`` when ``directory`` holds the plan of ``run_id``: a readable plan
    document whose ``run_id`` is this one. A file of that name that is not (cut short, edited,
    overwritten by hand) is planned again and replaced: the returned warning says so."""
    if directory is None or not history_file(directory, run_id).is_file():
        return ()
    path = history_file(directory, run_id)
    try:
        text = path.read_text(encoding="utf-8")
        doc = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        doc = None
    if isinstance(doc, dict) and doc.get("run_id") == run_id and isinstance(
            doc.get("routing"), list) and isinstance(doc.get("deployment"), list):
        raise AlreadyPlanned(path, text)
    return (f"the history's {path} is not the plan of run {run_id} (damaged or edited), so "
            "this window was planned again and the file replaced",)


@contextlib.contextmanager
def history_locked(directory: str | Path) -> Iterator[None]:
    """Create ``directory`` if needed and hold its lock (``DIR/history.lock``) for the block.

    Raises:
        LockedError: another run holds it (the message names its pid, host and start time).
        CannotWriteError: the directory cannot be created or written.
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CannotWriteError(f"cannot create the history directory {directory} "
                               f"({exc.strerror or exc}), check the path and its permissions") from None
    with locked(directory / LOCK, doing=f"planning into the history {directory}"):
        yield


def record(directory: str | Path, run_id: str, text: str,
           guard: AbstractContextManager[Any] | None = None) -> Path:
    """Write the plan document ``text`` of ``run_id`` atomically (the caller holds the lock)."""
    path = history_file(directory, run_id)
    write_atomic(path, text, lock=False, guard=guard)
    return path


def latest(directory: str | Path, count: int = 2) -> list[Path]:
    """The ``count`` most recent plans in the history (by window start, then file time)."""
    plans = sorted(Path(directory).glob("plan-*.json"),
                   key=lambda p: (p.name.split("-")[1], p.stat().st_mtime_ns))
    return plans[-count:]
