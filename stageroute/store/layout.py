"""The statistics store on disk (SPEC 9): its layout, its manifest and its rows, read and
checked; ``store.build`` writes it, ``store.read`` plans from it."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import polars as pl

from stageroute.errors import BadDataError, InputMissingError
from stageroute.inputs.files import first_line
from stageroute.store.aggregate import FINE_SCHEMA, store_problem, window_start_expr

FORMAT = "stageroute-stats"
VERSION = 1
MANIFEST = "manifest.json"
MAX_WINDOW_SECONDS = 36500 * 86400
WINDOWS_DIR = "windows"

STORE_SCHEMA: dict[str, pl.DataType] = {
    "window_start": pl.Datetime("us", "UTC"),
    "window": pl.Int64(),
    "model": pl.String(),
    "segment": pl.String(),
    **{name: dtype for name, dtype in FINE_SCHEMA.items() if name != "bin"},
    "cost_bins": pl.List(pl.Int32()),
    "cost_counts": pl.List(pl.Int64()),
}


def read_manifest(out: Path) -> dict[str, Any] | None:
    """The store's manifest (None: no store there yet).

    Raises:
        BadDataError: a manifest that is not a stageroute statistics store's.
    """
    path = out / MANIFEST
    if not path.exists():
        return None
    if not path.is_file():  # a FIFO would block the read for ever
        raise BadDataError(f"statistics store {out}: {MANIFEST} is not a regular file; rebuild "
                           "the store with stats --rebuild")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise BadDataError(f"statistics store {out}: {MANIFEST} cannot be read ({reason}); "
                           "rebuild the store with stats --rebuild") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BadDataError(f"statistics store {out}: {MANIFEST} is not a stageroute statistics "
                           "manifest; point --out at a store directory (or an empty one)")
    if manifest.get("version") != VERSION:
        raise BadDataError(f"statistics store {out} has format version {manifest.get('version')}, "
                           f"this stageroute reads {VERSION}; rebuild it with stats --rebuild")
    problem = _manifest_problem(manifest)
    if problem is not None:
        raise BadDataError(f"statistics store {out}: {MANIFEST} is damaged ({problem}); rebuild "
                           "the store with stats --rebuild")
    return manifest


def _manifest_problem(manifest: dict[str, Any]) -> str | None:
    """What is wrong with a manifest's structure (None: nothing); names only this code writes."""
    def whole(x: object) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and x >= 0

    if not (whole(manifest.get("window_seconds"))
            and 0 < manifest["window_seconds"] <= MAX_WINDOW_SECONDS):
        return "window_seconds is not a positive integer of at most 100 years"
    try:
        times = [manifest.get("anchor")] + ([manifest["last_seen"]]
                                            if manifest.get("last_seen") is not None else [])
        if any(dt.datetime.fromisoformat(str(t)).tzinfo is None for t in times):
            return "anchor or last_seen has no time zone"
    except ValueError:
        return "anchor or last_seen is not a time"
    if not whole(manifest.get("generation")):
        return "generation is not an integer"
    files, windows = manifest.get("files"), manifest.get("windows")
    if not isinstance(files, dict) or not all(
            isinstance(e, dict) and all(whole(e.get(k)) for k in ("size", "mtime_ns", "rows"))
            and isinstance(e.get("windows"), list) and all(whole(w) or isinstance(w, int)
                                                           for w in e["windows"])
            for e in files.values()):
        return "the files it lists are not (size, mtime_ns, rows, windows) entries"
    if not isinstance(windows, dict) or not all(
            isinstance(e, dict) and re.fullmatch(r"w-\d{8}T\d{6}Z-g\d+\.parquet", str(e.get("file")))
            and re.fullmatch(r"-?\d+", w) for w, e in windows.items()):
        return "the windows it lists are not window files of the store"
    totals = manifest.get("totals")
    if totals is not None and not re.fullmatch(r"totals-g\d+\.parquet", str(totals)):
        return "totals is not a totals file of the store"
    return None


SOURCE = "__file__"  # the column of each window row's file name while it is checked


def store_frames(out: Path, paths: list[Path], source: str | None = None) -> pl.DataFrame:
    """Store rows from ``paths`` (``STORE_SCHEMA``), every file checked present and readable;
    ``source``: also a column of that name holding each row's path (as ``str`` of its entry)."""
    if not paths:
        return pl.DataFrame(schema=STORE_SCHEMA)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        what = ("is not a regular file (a directory, FIFO or device)" if missing[0].exists()
                else "is missing")
        raise BadDataError(f"statistics store {out}: {missing[0].name} listed in {MANIFEST} "
                           f"{what}; rebuild the store with stats --rebuild")
    try:
        frame = pl.read_parquet([str(p) for p in paths], include_file_paths=source)
        frame = frame.select(*(pl.col(c).cast(t) for c, t in STORE_SCHEMA.items()),
                             *([source] if source else []))
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise BadDataError(f"statistics store {out}: a window file cannot be read as the store's "
                           f"({first_line(exc)}); rebuild the store with stats --rebuild") from None
    problem = store_problem(frame)
    if problem is not None:
        raise BadDataError(f"statistics store {out}: {problem}; rebuild the store with stats "
                           "--rebuild")
    return frame


def open_store(out: str | Path) -> dict[str, Any]:
    """The store's manifest.

    Raises:
        InputMissingError: no store there.
        BadDataError: a damaged store.
    """
    out = Path(out)
    manifest = read_manifest(out) if out.is_dir() else None
    if manifest is None:
        raise InputMissingError(f"statistics store {out} does not exist (no {MANIFEST} there); "
                                f"build it with: stageroute stats --logs PATH --out {out}")
    return manifest


def load_store(out: str | Path, manifest: dict[str, Any] | None = None,
               ) -> tuple[dict[str, Any], pl.DataFrame]:
    """The manifest and every window's rows (``STORE_SCHEMA``), in window order."""
    out = Path(out)
    manifest = manifest if manifest is not None else open_store(out)
    windows = {str(out / WINDOWS_DIR / entry["file"]): int(w) for w, entry in
               sorted(manifest["windows"].items(), key=lambda item: int(item[0]))}
    paths = [Path(p) for p in windows]
    # The build's own partial manifests (its windows only) carry no geometry to check against.
    if "window_seconds" not in manifest:
        return manifest, store_frames(out, paths)
    frame = store_frames(out, paths, source=SOURCE)
    problem = _window_problem(frame, manifest, windows)
    if problem is not None:
        raise BadDataError(f"statistics store {out}: {problem}; rebuild the store with stats "
                           "--rebuild")
    return manifest, frame.drop(SOURCE)


def _window_problem(frame: pl.DataFrame, manifest: dict[str, Any], windows: dict[str, int],
                    ) -> str | None:
    """What places a window file's rows (``frame``, with their file's path in ``SOURCE``)
    outside their window: a window other than the one the manifest lists the file for
    (``windows``: path -> window), a window_start not where the manifest's anchor and
    window_seconds put that window, or a first or last request outside it."""
    length = dt.timedelta(seconds=manifest["window_seconds"])
    anchor = dt.datetime.fromisoformat(str(manifest["anchor"]))
    start = window_start_expr(pl.col("window"), anchor, length)
    own = pl.col(SOURCE).replace_strict(windows, return_dtype=pl.Int64)  # every file is listed
    rules = [(pl.col("window") != own, "is not the window its manifest lists the file for"),
             (pl.col("window_start") != start, "does not start where the manifest's anchor and "
              "window_seconds put it"),
             ((pl.col("first_seen") < pl.col("window_start"))
              | (pl.col("last_seen") >= pl.col("window_start") + length),
              "has a request outside the window")]
    for rule, what in rules:
        bad = frame.filter(rule)
        if bad.height:
            row = bad.row(0, named=True)
            return f"window {row['window']} (starting {row['window_start']}) {what}"
    return None


def load_totals(out: str | Path, manifest: dict[str, Any]) -> pl.DataFrame | None:
    """The store's totals (one row per model and segment over every window; None: none kept);
    their last request is at most the manifest's ``last_seen``."""
    name = manifest.get("totals")
    if not name:
        return None
    frame = store_frames(Path(out), [Path(out) / name])
    newest = manifest.get("last_seen")
    if newest is not None and frame.height:
        last: dt.datetime | None = frame["last_seen"].max()  # type: ignore[assignment]
        if last is not None and last > dt.datetime.fromisoformat(str(newest)):
            raise BadDataError(f"statistics store {out}: {name} has a request at {last}, after "
                               f"the manifest's last_seen {newest}; rebuild the store with "
                               "stats --rebuild")
    return frame
