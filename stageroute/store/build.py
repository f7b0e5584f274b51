"""``stageroute stats``: build or extend the statistics store (SPEC 9).

The store is a directory: one Parquet file per window (``STORE_SCHEMA`` rows, one per model and
segment), and ``manifest.json``, which lists the input files summarised (path, size, mtime, the
windows each touched) and the current file of every window. A run reads only files the manifest
does not list; a window that new rows reach and that already holds rows is merged (Chan), the
other windows are left alone. A summarised file that changed or disappeared is detected: the
windows it touched are rebuilt from the files that touch them (those files' rows in those windows
only). A change of the separate feedback or of the catalog prices that priced tokens rebuilds the
whole store. Window files are written atomically under a new generation name and the manifest
last, so that a run stopped half-way leaves the store as it was; the store's lock keeps a second
run out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from stageroute.errors import BadDataError, CannotWriteError, UsageError
from stageroute.inputs.checks import check_unique, report_violations, rules
from stageroute.inputs.logs import open_logs
from stageroute.inputs.sources import find_logs, fingerprint, resolve_files, segments_match
from stageroute.options import format_duration as duration
from stageroute.render.output import locked, write_atomic
from stageroute.store.aggregate import (
    EPOCH,
    combine,
    fold,
    window_start,
    window_start_expr,
)
from stageroute.store.engines import ENGINES, KEYS, LOCAL_SPARK, MEMORY_AMOUNT, Job, run
from stageroute.store.layout import (
    FORMAT,
    MANIFEST,
    STORE_SCHEMA,
    VERSION,
    WINDOWS_DIR,
    load_store,
    load_totals,
    read_manifest,
    store_frames,
)


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """How to build: window length and anchor (windows start at anchor + k * length), engine."""

    length: dt.timedelta = dt.timedelta(days=1)
    anchor: dt.datetime = EPOCH
    engine: str = "polars"
    memory_limit: str | None = None
    spark_master: str = LOCAL_SPARK
    rebuild: bool = False

    def __post_init__(self) -> None:
        if self.length <= dt.timedelta(0) or self.length % dt.timedelta(seconds=1):
            raise UsageError(f"--window-length must be a positive whole number of seconds, got "
                             f"{self.length}; give e.g. --window-length 1d")
        if self.engine not in ENGINES:
            raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, got "
                             f"{self.engine!r}; give e.g. --engine duckdb")
        if self.memory_limit is not None and not MEMORY_AMOUNT.fullmatch(
                self.memory_limit.strip()):
            raise UsageError(f"--memory-limit must be an amount of memory such as 2GB or 512MB, "
                             f"got {self.memory_limit!r}")
        if self.memory_limit is not None and self.engine != "duckdb":
            raise UsageError(f"--memory-limit caps DuckDB's memory and the engine is "
                             f"{self.engine}; add --engine duckdb or drop --memory-limit")
        if self.spark_master != LOCAL_SPARK and self.engine != "spark":
            raise UsageError(f"--spark-master names Spark's master and the engine is "
                             f"{self.engine}; add --engine spark or drop --spark-master")


@dataclass(frozen=True, slots=True)
class StoreReport:
    """What a ``stats`` run did."""

    out: Path
    files_read: tuple[str, ...]  # read whole (new or changed)
    files_partly_read: tuple[str, ...]  # read for the windows being rebuilt
    files_known: int  # listed in the manifest and unchanged
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    windows_written: tuple[dt.datetime, ...]  # new windows
    windows_merged: tuple[dt.datetime, ...]  # existing windows that new rows reached
    windows_rebuilt: tuple[dt.datetime, ...]
    windows_total: int
    rows: int  # rows summarised by this run
    full_rebuild: str | None  # why the whole store was rebuilt (None: it was not)
    engine: str
    notes: tuple[str, ...] = ()
    windows_removed: tuple[dt.datetime, ...] = ()  # windows only removed files had rows in

    @property
    def up_to_date(self) -> bool:
        return not (self.files_read or self.changed or self.removed or self.full_rebuild)


def _stamp(t: dt.datetime) -> str:
    t = t.astimezone(dt.UTC)  # %Y does not pad years before 1000 to four digits everywhere
    return f"{t.year:04d}" + t.strftime("%m%dT%H%M%SZ")


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def file_state(file: str) -> dict[str, int]:
    st = os.stat(file)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _layout(options: StoreOptions) -> dict[str, Any]:
    return {"window_seconds": int(options.length.total_seconds()), "anchor": _iso(options.anchor)}


def _check_layout(out: Path, manifest: dict[str, Any], options: StoreOptions) -> None:
    have = {k: manifest.get(k) for k in ("window_seconds", "anchor")}
    if have != _layout(options):
        raise UsageError(
            f"statistics store {out} has windows of "
            f"{duration(dt.timedelta(seconds=have['window_seconds'] or 0))} from {have['anchor']}, "
            f"not {duration(options.length)} from {_layout(options)['anchor']}; pass the store's "
            "--window-length and --anchor, or --rebuild to rebuild it with the new windows"
        )


def window_frame(frame: pl.DataFrame, options: StoreOptions) -> pl.DataFrame:
    """Store rows (``STORE_SCHEMA``) from combined rows keyed by ``KEYS``."""
    start = window_start_expr(pl.col("window"), options.anchor, options.length)
    return frame.with_columns(start).select(
        pl.col(c).cast(t) for c, t in STORE_SCHEMA.items()).sort("model", "segment", nulls_last=True)


def _parquet_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer, statistics=True)
    return buffer.getvalue()


@dataclass(frozen=True, slots=True)
class _Delta:
    """What changed since the manifest."""

    whole: tuple[str, ...]
    partial: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    dropped: frozenset[int]  # windows to rebuild
    full_rebuild: str | None


def _delta(manifest: dict[str, Any] | None, files: dict[str, dict[str, int]],
           inputs: dict[str, Any]) -> _Delta:
    known: dict[str, Any] = manifest["files"] if manifest is not None else {}
    why = None
    if manifest is not None:
        if manifest.get("feedback") != inputs["feedback"]:
            why = "the feedback files changed since the store was built"
        if manifest.get("prices") is not None and inputs["prices"] != manifest["prices"]:
            why = "the catalog prices that price tokens changed since the store was built"
    if manifest is not None and why is not None:
        known = {}
    changed = tuple(f for f in files if f in known and
                    {k: known[f][k] for k in ("size", "mtime_ns")} != files[f])
    removed = tuple(f for f in known if f not in files)
    dropped = frozenset(w for f in (*changed, *removed) for w in known[f]["windows"])
    whole = tuple(f for f in files if f not in known or f in changed)
    partial = tuple(f for f in files if f in known and f not in changed
                    and dropped.intersection(known[f]["windows"]))
    return _Delta(whole, partial, changed, removed, dropped, why)


def validated(job: Job, engine: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The engine's tables after the contract's checks: (store rows by KEYS, file windows)."""
    tables = run(engine, job)
    scan = dataclasses.replace(job.scan, source=dataclasses.replace(
        job.scan.source, files=job.whole + job.partial))
    sums = tuple(c for c in tables.fine.columns if c.startswith(("bad_", "sum_")))
    per_model = fold(tables.fine, ["model"], sums).rename({"rows": "rows_before"})
    report_violations(scan, per_model, rules(scan))
    data = scan.prepare(scan.source.scan())
    check_unique(scan, data, tables.ids)
    return fold(tables.fine.drop(sums), KEYS), tables.file_windows


def build_store(logs: str | Path, out: str | Path, options: StoreOptions = StoreOptions(),
                catalog: pl.DataFrame | None = None, feedback: str | Path | None = None,
                say: Callable[[str], None] = lambda _: None) -> StoreReport:
    """Build the store in ``out`` from ``logs``, or extend it with what it has not summarised.

    Files the manifest lists, unchanged, are not opened (not even their footers), unless a
    window they touched is rebuilt. ``catalog`` prices requests from their tokens when the logs
    have no cost column (it is needed then, and not used otherwise).

    Raises:
        UsageError: the store's windows differ from ``options``; no catalog for token pricing.
        InputMissingError, BadDataError: as ``plan`` reads logs (bad files, columns, values,
            duplicate request ids); a damaged store.
        LockedError: another run is updating the store.
        CannotWriteError: ``out`` cannot be created or written.
    """
    out = Path(out)
    listed, _, _, _ = resolve_files(logs)
    files = {os.path.abspath(f): file_state(f) for f in listed}
    _check_out(out, files, logs)
    fb_files = find_logs(feedback, kind="feedback").files if feedback is not None else ()
    prices = None if catalog is None else {
        row["model"]: [row["usd_per_mtok_in"], row["usd_per_mtok_out"]]
        for row in catalog.iter_rows(named=True)}
    inputs = {"prices": prices,
              "feedback": {os.path.abspath(f): file_state(f) for f in fb_files} or None}
    created = not out.exists()
    try:
        (out / WINDOWS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CannotWriteError(f"cannot create the statistics store {out} ({exc.strerror}), "
                               "check the path and permissions") from None
    try:
        return _locked_build(logs, out, files, inputs, options, catalog, feedback, say)
    except BaseException:
        if created:  # a first run that failed leaves no half-made store (nor its lock) behind
            shutil.rmtree(out, ignore_errors=True)
        raise


def _locked_build(logs: str | Path, out: Path, files: dict[str, Any], inputs: dict[str, Any],
                  options: StoreOptions, catalog: pl.DataFrame | None,
                  feedback: str | Path | None, say: Callable[[str], None]) -> StoreReport:
    """``build_store`` under the store's lock, once ``out`` exists."""
    with locked(out / "store", doing=f"updating the statistics store {out}"):
        manifest = None if options.rebuild else read_manifest(out)
        if manifest is not None:
            _check_layout(out, manifest, options)
        delta = _delta(manifest, files, inputs)
        if delta.full_rebuild is not None:
            manifest = None
        if manifest is not None and not (delta.whole or delta.removed):
            return StoreReport(out, (), (), len(files), (), (), (), (), (),
                               len(manifest["windows"]), 0, None, options.engine)
        return _build(logs, out, manifest, files, delta, inputs, options, catalog, feedback, say)


def _footer(file: str) -> str | None:
    digest = fingerprint(file)
    return digest.hex() if digest is not None else None


def _shown(file: str) -> str:
    """A summarised file as messages name it: relative to the working directory when under it."""
    relative = os.path.relpath(file)
    return file if relative.startswith("..") else relative


def _refuse_copies(manifest: dict[str, Any] | None, delta: _Delta) -> None:
    """A new file with the footer of a file already summarised is a copy: its rows would count
    twice (``find_logs`` catches copies among the files it reads; this, against the store)."""
    if manifest is None:
        return
    known = {entry.get("footer"): file for file, entry in manifest["files"].items()
             if file not in delta.changed and file not in delta.removed and entry.get("rows")}
    for file in delta.whole:
        first = known.get(_footer(file))
        if first is not None and first != file:
            raise BadDataError(
                f"logs {_shown(file)} has the same footer (rows, sizes, statistics) as "
                f"{_shown(first)}, which the "
                "statistics store has summarised: it is a copy, and its rows would count twice; "
                "remove one of them"
            )


def _would_read(logs: str | Path, out: Path) -> bool:
    """Whether a later ``resolve_files(logs)`` would take the store's own files for logs."""
    text = str(logs)
    mine = [os.path.abspath(out / WINDOWS_DIR / "w-x.parquet"), os.path.abspath(out / "totals-g1.parquet")]
    if any(ch in text for ch in "*?[") and not Path(text).exists():
        parts = Path(os.path.abspath(text)).parts
        fixed = next(i for i, part in enumerate(parts) if any(ch in part for ch in "*?["))
        root = Path(*parts[:fixed])
        return any(Path(f).is_relative_to(root)
                   and segments_match(Path(f).relative_to(root).parts, tuple(parts[fixed:]))
                   for f in mine)
    if Path(text).is_dir():
        return any(Path(f).is_relative_to(os.path.abspath(text)) for f in mine)
    return False


def _next_generation(out: Path) -> int:
    """A generation no file of the store uses yet: a rebuild must never overwrite a file that the
    current manifest still lists (a run stopped half-way leaves the store as it was)."""
    used = [int(m.group(1)) for p in (*out.glob("totals-g*.parquet"),
                                      *(out / WINDOWS_DIR).glob("w-*.parquet"))
            if (m := re.search(r"-g(\d+)\.parquet$", p.name))]
    try:
        listed = read_manifest(out)
    except BadDataError:
        listed = None
    if listed is not None:
        used.append(int(listed["generation"]))
    return max(used, default=0) + 1


def _check_out(out: Path, files: dict[str, Any], logs: str | Path) -> None:
    """``out`` is a store, or new, or empty; never where the logs are read from."""
    home = os.path.abspath(out) + os.sep
    if _would_read(logs, out):
        raise UsageError(f"--out {out} is where --logs {logs} would find the store's own Parquet "
                         "files and read them as logs; put the store elsewhere")
    inside = next((f for f in files if f.startswith(home)), None)
    if inside is not None:
        raise UsageError(f"--out {out} holds the logs it would summarise ({_shown(inside)}): its "
                         "window files would be read as logs next time; put the store elsewhere")
    if out.is_dir() and not (out / MANIFEST).exists() and any(
            p.name != "store.lock" and p.name != WINDOWS_DIR for p in out.iterdir()):
        raise UsageError(f"--out {out} is a directory that holds other files and no statistics "
                         "store; pass a new or empty directory (or the store's own)")


def _build(logs: str | Path, out: Path, manifest: dict[str, Any] | None,
           files: dict[str, dict[str, int]], delta: _Delta, inputs: dict[str, Any],
           options: StoreOptions, catalog: pl.DataFrame | None, feedback: str | Path | None,
           say: Callable[[str], None]) -> StoreReport:
    rows = file_windows = None
    notes: tuple[str, ...] = ()
    priced = manifest.get("prices") is not None if manifest is not None else False
    if delta.whole or delta.partial:
        _refuse_copies(manifest, delta)
        wanted = set(delta.whole) | set(delta.partial)
        empty = pl.DataFrame(schema={"model": pl.String, "usd_per_mtok_in": pl.Float64,
                                     "usd_per_mtok_out": pl.Float64})
        scan, notes = open_logs(logs, catalog if catalog is not None else empty, feedback,
                                keep=lambda f: os.path.abspath(f) in wanted)
        if scan.cost_from_tokens and catalog is None:
            raise UsageError(f"logs {scan.source.label} have no cost column: pass --catalog so "
                             "that stats prices each request from its tokens")
        priced = scan.cost_from_tokens
        scan = dataclasses.replace(scan, source=dataclasses.replace(
            scan.source, files=tuple(os.path.abspath(f) for f in scan.source.files)))
        say(f"summarising {len(delta.whole)} file(s) with {options.engine}"
            + (f", and {len(delta.partial)} for {len(delta.dropped)} window(s) to rebuild"
               if delta.partial else ""))
        job = Job(scan, delta.whole, delta.partial, tuple(sorted(delta.dropped)), options.anchor,
                  options.length, options.memory_limit, options.spark_master)
        rows, file_windows = validated(job, options.engine)
    hive = manifest.get("hive", False) if manifest is not None else False
    if delta.whole or delta.partial:
        hive = scan.source.hive
    inputs = {**inputs, "prices": inputs["prices"] if priced else None, "hive": hive}
    generation = _next_generation(out)
    old_windows: dict[str, Any] = manifest["windows"] if manifest is not None else {}
    written, merged, rebuilt, windows = _write_windows(out, rows, old_windows, delta.dropped,
                                                       options, generation)
    totals = _totals(out, manifest, rows, delta, windows, options)
    name = f"totals-g{generation}.parquet"
    newest = totals["last_seen"].max() if totals.height else None
    write_atomic(out / name, _parquet_bytes(totals), lock=False)
    extra = {"totals": name,
             "last_seen": _iso(newest) if isinstance(newest, dt.datetime) else None}
    _write_manifest(out, manifest, files, file_windows, delta, {**inputs, **extra}, windows,
                    generation, options)
    _sweep(out, windows, name)
    total = int(rows["rows"].sum()) if rows is not None else 0
    gone = tuple(window_start(w, options.anchor, options.length) for w in sorted(delta.dropped)
                 if str(w) not in windows)
    return StoreReport(out, delta.whole, delta.partial, len(files) - len(delta.whole),
                       delta.changed, delta.removed, written, merged, rebuilt, len(windows),
                       total, delta.full_rebuild, options.engine, notes, gone)


def _write_windows(out: Path, rows: pl.DataFrame | None, old: dict[str, Any],
                   dropped: frozenset[int], options: StoreOptions, generation: int,
                   ) -> tuple[tuple[dt.datetime, ...], tuple[dt.datetime, ...],
                              tuple[dt.datetime, ...], dict[str, Any]]:
    """Write every window that new rows reach (merged with what it held unless rebuilt)."""
    windows = {w: entry for w, entry in old.items() if int(w) not in dropped}
    written: list[dt.datetime] = []
    merged: list[dt.datetime] = []
    rebuilt: list[dt.datetime] = []
    parts = rows.partition_by("window", as_dict=True) if rows is not None and rows.height else {}
    for (w,), frame in sorted(parts.items(), key=lambda item: int(item[0][0])):
        w = int(w)
        start = window_start(w, options.anchor, options.length)
        if str(w) in windows:
            held = store_frames(out, [out / WINDOWS_DIR / windows[str(w)]["file"]]).drop("window_start")
            both = pl.concat([held.with_columns(pl.lit(0).alias("__part__")),
                              frame.select(held.columns).with_columns(pl.lit(1).alias("__part__"))],
                             how="vertical_relaxed")
            frame = combine(both, KEYS, order=["__part__"])
            merged.append(start)
        else:
            (rebuilt if w in dropped else written).append(start)
        store_rows = window_frame(frame, options)
        name = f"w-{_stamp(start)}-g{generation}.parquet"
        write_atomic(out / WINDOWS_DIR / name, _parquet_bytes(store_rows), lock=False)
        windows[str(w)] = {"file": name, "start": _iso(start), "rows": int(store_rows["rows"].sum())}
    return tuple(written), tuple(merged), tuple(rebuilt), windows


def _write_manifest(out: Path, manifest: dict[str, Any] | None, files: dict[str, dict[str, int]],
                    file_windows: pl.DataFrame | None, delta: _Delta, inputs: dict[str, Any],
                    windows: dict[str, Any], generation: int, options: StoreOptions) -> None:
    entries: dict[str, Any] = {}
    known = manifest["files"] if manifest is not None else {}
    read: dict[str, dict[str, Any]] = {}
    if file_windows is not None:
        for row in file_windows.sort("file", "window").iter_rows(named=True):
            entry = read.setdefault(row["file"], {"rows": 0, "windows": []})
            entry["rows"] += row["rows"]
            entry["windows"].append(int(row["window"]))
    for file, state in files.items():
        if file in delta.whole:
            got = read.get(file, {"rows": 0, "windows": []})
            entries[file] = {**state, "rows": got["rows"], "windows": got["windows"],
                             "footer": _footer(file)}
        else:
            entries[file] = known[file]
    doc = {"format": FORMAT, "version": VERSION, **_layout(options), "generation": generation,
           **inputs, "files": entries,
           "windows": dict(sorted(windows.items(), key=lambda item: int(item[0])))}
    write_atomic(out / MANIFEST, json.dumps(doc, indent=1, sort_keys=False) + "\n", lock=False)


def _sweep(out: Path, windows: dict[str, Any], totals: str) -> None:
    """Remove the files the manifest no longer lists (older generations)."""
    current = {entry["file"] for entry in windows.values()}
    for path in (out / WINDOWS_DIR).glob("w-*.parquet"):
        if path.name not in current:
            path.unlink(missing_ok=True)
    for path in out.glob("totals-g*.parquet"):
        if path.name != totals:
            path.unlink(missing_ok=True)


def _totals(out: Path, manifest: dict[str, Any] | None, rows: pl.DataFrame | None,
            delta: _Delta, windows: dict[str, Any], options: StoreOptions) -> pl.DataFrame:
    """Every window merged per (model, segment): the running total that ``plan --stats`` reads
    when no drift option asks for windows. A run adds its new rows to it (constant work per
    run); a rebuild of windows recomputes it from them all."""
    held = load_totals(out, manifest) if manifest is not None and not delta.dropped else None
    if held is not None and rows is not None:
        both = pl.concat([held.drop("window_start").with_columns(pl.lit(0).alias("__part__")),
                          rows.select(held.drop("window_start").columns)
                          .with_columns(pl.lit(1).alias("__part__"))], how="vertical_relaxed")
        totals = combine(both, ["model", "segment"], order=["__part__", "window"])
    else:
        _, parts = load_store(out, {"windows": windows})
        totals = combine(parts, ["model", "segment"], order=["window"])
    first = min((int(w) for w in windows), default=0)
    return window_frame(totals.with_columns(pl.lit(first, pl.Int64).alias("window")), options)


def store_document(report: StoreReport) -> dict[str, Any]:
    """The JSON document of a ``stats`` run."""
    def times(values: tuple[dt.datetime, ...]) -> list[str]:
        return [_iso(v) for v in values]

    return {
        "store": str(report.out),
        "engine": report.engine,
        "up_to_date": report.up_to_date,
        "files_read": list(report.files_read),
        "files_partly_read": list(report.files_partly_read),
        "files_known": report.files_known,
        "changed": list(report.changed),
        "removed": list(report.removed),
        "windows_written": times(report.windows_written),
        "windows_merged": times(report.windows_merged),
        "windows_rebuilt": times(report.windows_rebuilt),
        "windows_removed": times(report.windows_removed),
        "windows_total": report.windows_total,
        "rows": report.rows,
        "full_rebuild": report.full_rebuild,
        "notes": list(report.notes),
    }
