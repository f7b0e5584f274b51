"""The statistics store (issue 10): plan --stats equals plan --logs, incremental runs read only
new files and rewrite only the window that straddles, changed and deleted files are detected and
their windows rebuilt, drift windows, a run stopped half-way leaves the store as it was."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from stageroute.errors import (
    BadDataError,
    ExitCode,
    InputMissingError,
    InsufficientDataError,
    LockedError,
    UsageError,
)
from stageroute.inputs.catalog import read_catalog
from stageroute.plan import PlanConfig, make_plan, plan_document
from stageroute.render.output import locked
from stageroute.store import build as store_build
from stageroute.store.aggregate import cost_quantile
from stageroute.store.build import StoreOptions, build_store
from stageroute.store.layout import load_store, load_totals
from stageroute.store.read import Drift, StoreInput
from stageroute_cli.main import app

END = dt.datetime(2026, 11, 16, 2, tzinfo=dt.UTC)  # after every row of the sample
MID = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)  # a day boundary inside the sample
CUT = dt.datetime(2026, 10, 1, 12, tzinfo=dt.UTC)  # mid-day: the window of Oct 1 straddles it


@pytest.fixture(scope="module")
def sample(repo_root: Path) -> pl.DataFrame:
    return pl.read_parquet(repo_root / "sample_logs" / "logs.parquet")


def plan_doc(source: Any, catalog: Path, as_of: dt.datetime, feedback: Path | None = None,
             **options: Any) -> dict[str, Any]:
    """The plan document, without the one key that says where the statistics came from."""
    config = PlanConfig(budget=0.002, max_deployed=3, as_of=as_of, **options)
    doc = plan_document(make_plan(source, catalog, config, feedback=feedback))
    doc["logs"].pop("source")
    return doc


def split_feedback(frame: pl.DataFrame, directory: Path) -> tuple[pl.DataFrame, Path]:
    """The log without its reward column, and the rewards as a separate feedback file."""
    feedback = directory / "feedback.parquet"
    frame.filter(pl.col("reward").is_not_null()).select("request_id", "reward").write_parquet(feedback)
    return frame.drop("reward"), feedback


@pytest.mark.parametrize("segments", [True, False], ids=["segments", "no-segments"])
@pytest.mark.parametrize("feedback", [False, True], ids=["reward-column", "feedback-joined"])
@pytest.mark.parametrize("as_of", [END, MID], ids=["after-the-log", "inside-the-log"])
def test_plan_from_the_store_is_the_plan_from_the_logs(tmp_path: Path, sample: pl.DataFrame,
                                                        sample_catalog: Path, segments: bool,
                                                        feedback: bool, as_of: dt.datetime) -> None:
    frame = sample if segments else sample.drop("segment")
    fb = None
    if feedback:
        frame, fb = split_feedback(frame, tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    for i, part in enumerate(frame.sort("timestamp").iter_slices(25_000)):  # three files
        part.write_parquet(logs / f"part-{i}.parquet")
    build_store(logs, tmp_path / "stats", feedback=fb)
    from_logs = plan_doc(logs, sample_catalog, as_of, feedback=fb)
    from_store = plan_doc(StoreInput(tmp_path / "stats"), sample_catalog, as_of)
    assert from_store == from_logs  # every key but logs.source, the run id included
    assert from_store["logs"]["rows_used"] > 0 and from_store["routing"]


def test_store_rows_are_the_logs_statistics_per_window(tmp_path: Path, sample: pl.DataFrame,
                                                       sample_logs: Path) -> None:
    """An independent computation: per (model, segment, day) count, mean, population variance
    and token sums by Polars on the raw rows."""
    build_store(sample_logs, tmp_path / "stats")
    _, store = load_store(tmp_path / "stats")
    day = pl.col("timestamp").dt.truncate("1d").alias("window_start")
    r, c = pl.col("reward"), pl.col("cost")
    expected = sample.group_by("model", "segment", day).agg(
        pl.len().alias("rows"), r.count().alias("n_reward"), r.mean().alias("mean_reward"),
        (r.var(ddof=0) * r.count()).fill_null(0.0).alias("m2_reward"),
        c.count().alias("n_cost"), c.mean().alias("mean_cost"),
        (c.var(ddof=0) * c.count()).alias("m2_cost"),
        pl.col("input_tokens").sum().cast(pl.Float64), pl.col("timestamp").min().alias("first_seen"),
        pl.col("timestamp").max().alias("last_seen"),
    )
    got = store.select(expected.columns)
    keys = ["model", "segment", "window_start"]
    assert_frame_equal(got.sort(keys), expected.sort(keys), check_dtypes=False, rel_tol=1e-9,
                       abs_tol=1e-12, check_column_order=False)
    # The histogram counts every cost, and its p99.9 is within a bin (2^(1/32)) of the exact one.
    assert int(store["cost_counts"].list.sum().sum()) == sample.height
    exact = sample["cost"].quantile(0.999, "nearest")
    approx = cost_quantile(store["cost_bins"], store["cost_counts"])
    assert approx is not None and abs(np.log2(approx / exact)) <= 1 / 32


def assert_same_store(a: Path, b: Path, totals: bool = False) -> None:
    """Two stores hold the same windows (and totals) to rounding, whatever the order of rows."""
    keys = ["window_start", "model", "segment"]
    (ma, wa), (mb, wb) = load_store(a), load_store(b)
    assert_frame_equal(wa.sort(keys), wb.sort(keys), rel_tol=1e-12)
    if totals:
        ta, tb = load_totals(a, ma), load_totals(b, mb)
        assert ta is not None and tb is not None
        assert_frame_equal(ta.sort(keys), tb.sort(keys), rel_tol=1e-12)


def store_before_cut(sample: pl.DataFrame, tmp_path: Path) -> tuple[Path, Path, Path]:
    """``logs/`` with the sample cut at CUT into two files, and ``stats/`` built while only the
    first was there: (logs, old file, new file)."""
    logs = tmp_path / "logs"
    old, new = write_parts(sample, logs, [CUT])
    new.rename(tmp_path / "later.parquet")
    build_store(logs, tmp_path / "stats")
    (tmp_path / "later.parquet").rename(new)
    return logs, old, new


def assert_unchanged(store: Path, before: tuple[dict[str, Any], pl.DataFrame]) -> None:
    """The store's manifest and windows are what ``load_store`` gave ``before``."""
    after = load_store(store)
    assert after[0] == before[0]
    assert_frame_equal(after[1], before[1])


def write_parts(frame: pl.DataFrame, directory: Path, cuts: list[dt.datetime]) -> list[Path]:
    """``frame`` cut in time at ``cuts``: one Parquet file per piece, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    bounds = [None, *cuts, None]
    paths = []
    for i, (lo, hi) in enumerate(zip(bounds, bounds[1:], strict=False)):
        ts = pl.col("timestamp")
        part = frame.filter((ts >= lo if lo else pl.lit(True)) & (ts < hi if hi else pl.lit(True)))
        path = directory / f"part-{i}.parquet"
        part.write_parquet(path)
        paths.append(path)
    return paths


def test_a_new_partition_is_read_alone_and_only_the_straddled_window_is_rewritten(
        tmp_path: Path, sample: pl.DataFrame, sample_catalog: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    logs, old, new = store_before_cut(sample, tmp_path)
    manifest = json.loads((tmp_path / "stats" / "manifest.json").read_text())
    assert list(manifest["files"]) == [str(old.resolve())]
    files_before = {e["file"] for e in manifest["windows"].values()}
    mtimes = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "stats" / "windows").iterdir()}
    opened: list[str] = []  # every file any Parquet reader opens during the second run
    real_scan, real_file = pl.scan_parquet, store_build.find_logs.__globals__["_merged_schema"]
    monkeypatch.setattr(pl, "scan_parquet", lambda source, *a, **k: (
        opened.extend([str(s) for s in (source if isinstance(source, list) else [source])]),
        real_scan(source, *a, **k))[1])
    monkeypatch.setitem(store_build.find_logs.__globals__, "_merged_schema",
                        lambda files, *a: (opened.extend(files), real_file(files, *a))[1])
    second = build_store(logs, tmp_path / "stats")
    assert str(old.resolve()) not in opened and str(old) not in opened
    assert any(str(new.resolve()) == f for f in opened)
    assert second.files_read == (str(new.resolve()),) and second.files_known == 1
    assert second.files_partly_read == () and second.windows_rebuilt == ()
    assert second.windows_merged == (dt.datetime(2026, 10, 1, tzinfo=dt.UTC),)
    assert all(w > dt.datetime(2026, 10, 1, tzinfo=dt.UTC) for w in second.windows_written)
    # Every window file from before is untouched except the straddled one's (a new generation).
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "stats" / "windows").iterdir()}
    kept = {name for name in files_before if name in after and after[name] == mtimes[name]}
    assert files_before - kept == {"w-20261001T000000Z-g1.parquet"}
    monkeypatch.undo()
    # And the store equals one built in one run over both files (to rounding).
    build_store(logs, tmp_path / "fresh")
    assert_same_store(tmp_path / "stats", tmp_path / "fresh")
    assert plan_doc(StoreInput(tmp_path / "stats"), sample_catalog, END) == \
        plan_doc(logs, sample_catalog, END)


def test_a_rerun_with_nothing_new_reads_nothing_and_writes_nothing(tmp_path: Path,
                                                                    sample_logs: Path) -> None:
    build_store(sample_logs, tmp_path / "stats")
    def state() -> dict[Path, int]:  # the lock file's holder line changes with every run
        return {p: p.stat().st_mtime_ns for p in (tmp_path / "stats").rglob("*.parquet")} | {
            tmp_path / "stats" / "manifest.json":
                (tmp_path / "stats" / "manifest.json").stat().st_mtime_ns}

    before = state()
    again = build_store(sample_logs, tmp_path / "stats")
    assert again.up_to_date and again.rows == 0
    assert state() == before


@pytest.mark.parametrize("change", ["changed", "removed"])
def test_a_changed_or_deleted_file_rebuilds_the_windows_it_touched(
        tmp_path: Path, sample: pl.DataFrame, change: str) -> None:
    logs = tmp_path / "logs"
    parts = write_parts(sample, logs, [MID, CUT])
    build_store(logs, tmp_path / "stats")
    if change == "changed":
        frame = pl.read_parquet(parts[1])
        frame.head(frame.height - 100).write_parquet(parts[1])
    else:
        parts[1].unlink()
    report = build_store(logs, tmp_path / "stats")
    assert getattr(report, change) == (str(parts[1].resolve()),)
    touched = report.windows_rebuilt + report.windows_removed
    assert min(touched) == MID and dt.datetime(2026, 10, 1, tzinfo=dt.UTC) in report.windows_rebuilt
    assert (change == "removed") == bool(report.windows_removed)
    # The file that shares the straddled day of CUT is read for that day only.
    assert report.files_partly_read == (str(parts[2].resolve()),)
    build_store(logs, tmp_path / "fresh")
    assert_same_store(tmp_path / "stats", tmp_path / "fresh", totals=True)


def test_a_copied_partition_is_refused(tmp_path: Path, sample: pl.DataFrame) -> None:
    logs = tmp_path / "logs"
    parts = write_parts(sample, logs, [CUT])
    build_store(logs, tmp_path / "stats")
    (logs / "copy.parquet").write_bytes(parts[0].read_bytes())
    with pytest.raises(BadDataError, match="copy, and its rows would count twice"):
        build_store(logs, tmp_path / "stats")


def test_a_run_stopped_before_the_manifest_leaves_the_store_as_it_was(
        tmp_path: Path, sample: pl.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    logs, _, _ = store_before_cut(sample, tmp_path)
    before = load_store(tmp_path / "stats")

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(store_build, "_write_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        build_store(logs, tmp_path / "stats")
    monkeypatch.undo()
    assert_unchanged(tmp_path / "stats", before)
    build_store(logs, tmp_path / "stats")  # the next run counts the new rows once
    build_store(logs, tmp_path / "fresh")
    assert_same_store(tmp_path / "stats", tmp_path / "fresh")


def test_store_errors(tmp_path: Path, sample_logs: Path, sample_catalog: Path) -> None:
    with pytest.raises(InputMissingError, match="does not exist"):
        plan_doc(StoreInput(tmp_path / "none"), sample_catalog, END)
    build_store(sample_logs, tmp_path / "stats")
    with pytest.raises(UsageError, match="windows of 1d from"):
        build_store(sample_logs, tmp_path / "stats", StoreOptions(length=dt.timedelta(hours=6)))
    with locked(tmp_path / "stats" / "store"), pytest.raises(LockedError):
        build_store(sample_logs, tmp_path / "stats", StoreOptions(rebuild=True))
    with pytest.raises(UsageError, match="falls inside the window"):  # rows after 12:00 that day
        plan_doc(StoreInput(tmp_path / "stats"), sample_catalog, CUT)
    with pytest.raises(InsufficientDataError, match="no row before --as-of"):
        plan_doc(StoreInput(tmp_path / "stats"), sample_catalog, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    (tmp_path / "stats" / "manifest.json").write_text("{not json")
    with pytest.raises(BadDataError, match="cannot be read"):
        plan_doc(StoreInput(tmp_path / "stats"), sample_catalog, END)


def test_tokens_priced_logs_need_the_catalog(tmp_path: Path, write_logs: Any) -> None:
    logs, catalog = write_logs(lambda f: f.drop("cost"))
    with pytest.raises(UsageError, match="pass --catalog"):
        build_store(logs, tmp_path / "stats")
    build_store(logs, tmp_path / "stats", catalog=read_catalog(catalog)[0])
    as_of = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    assert plan_doc(StoreInput(tmp_path / "stats"), catalog, as_of) == plan_doc(logs, catalog, as_of)


@pytest.mark.parametrize("drift", [Drift(window=dt.timedelta(days=28)),
                                   Drift(half_life=dt.timedelta(days=14)),
                                   Drift(window=dt.timedelta(days=56), half_life=dt.timedelta(days=7))],
                         ids=["window", "half-life", "both"])
def test_drift_windows_from_the_store_equal_drift_windows_from_the_logs(
        tmp_path: Path, sample_logs: Path, sample_catalog: Path, drift: Drift) -> None:
    build_store(sample_logs, tmp_path / "stats")
    as_of = dt.datetime(2026, 11, 16, tzinfo=dt.UTC)  # midnight: the logs' days are the store's
    stationary = plan_doc(sample_logs, sample_catalog, as_of)
    from_logs = plan_doc(sample_logs, sample_catalog, as_of, drift=drift)
    from_store = plan_doc(StoreInput(tmp_path / "stats"), sample_catalog, as_of, drift=drift)
    assert from_store == from_logs
    n = {c["model"]: c["n"] for c in from_store["candidates"]}
    n0 = {c["model"]: c["n"] for c in stationary["candidates"]}
    assert sum(n.values()) < sum(n0.values())  # older windows count less, or not at all
    if drift.window is not None:
        assert from_store["logs"]["rows_used"] < stationary["logs"]["rows_used"]


def test_half_life_weights_are_exact(tmp_path: Path, write_logs: Any) -> None:
    """Two days of rows: the merged state is the weighted one computed by hand."""
    as_of = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    logs, catalog = write_logs()  # 30 hourly rows from Feb 27 00:00: days 27 (24 rows) and 28
    build_store(logs, tmp_path / "stats")
    from stageroute.store.read import store_summary

    day = dt.timedelta(days=1)
    summary = store_summary(tmp_path / "stats", read_catalog(catalog)[0], as_of, Drift(half_life=day))
    frame = pl.read_parquet(logs).filter(pl.col("reward").is_not_null())
    # age from each window's end to as-of: Feb 28 -> 0 (weight 1), Feb 27 -> 1 day (weight 1/2)
    weight = np.where(frame["timestamp"].dt.day().to_numpy() == 27, 0.5, 1.0)
    for model in ("alpha", "beta", "gamma"):
        sel = frame["model"].to_numpy() == model
        w, x = weight[sel], frame["reward"].to_numpy()[sel]
        mean = np.sum(w * x) / np.sum(w)
        row = summary.stats.filter(pl.col("model") == model).row(0, named=True)
        assert row["n_reward"] == pytest.approx(np.sum(w))
        assert row["mean_reward"] == pytest.approx(mean, rel=1e-9)
        assert row["m2_reward"] == pytest.approx(np.sum(w * (x - mean) ** 2), rel=1e-9, abs=1e-12)


def test_stats_command(tmp_path: Path, sample_logs: Path, sample_catalog: Path,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    first = runner.invoke(app, ["stats", "--logs", str(sample_logs), "--out", "stats", "--json"])
    assert first.exit_code == 0, first.output
    doc = json.loads(first.stdout)
    assert doc["up_to_date"] is False and doc["rows"] == 60_000 and len(doc["windows_written"]) == 196
    again = runner.invoke(app, ["stats", "--logs", str(sample_logs), "--out", "stats"])
    assert again.exit_code == 0 and "up to date" in again.stdout
    plan = runner.invoke(app, ["plan", "--stats", "stats", "--catalog", str(sample_catalog),
                               "--budget", "0.002", "--max-deployed", "3", "--as-of",
                               "2026-11-16T02:00:00Z", "--json"])
    assert plan.exit_code == 0, plan.output
    both = runner.invoke(app, ["plan", "--stats", "stats", "--logs", str(sample_logs), "--catalog",
                               str(sample_catalog), "--budget", "0.002", "--max-deployed", "3"])
    assert both.exit_code == ExitCode.USAGE and "one of the two" in both.stderr
    fb = runner.invoke(app, ["plan", "--stats", "stats", "--feedback", str(sample_logs),
                             "--catalog", str(sample_catalog), "--budget", "0.002",
                             "--max-deployed", "3"])
    assert fb.exit_code == ExitCode.USAGE and "pass it to stageroute stats" in fb.stderr
    for option in ("--output", "--history"):  # nothing but stats writes inside the store
        inside = runner.invoke(app, ["plan", "--stats", "stats", "--catalog", str(sample_catalog),
                                     "--budget", "0.002", "--max-deployed", "3", "--as-of",
                                     "2026-11-16T02:00:00Z", option, "stats/manifest.json"])
        assert inside.exit_code == ExitCode.USAGE, inside.output
        assert "inside that statistics store" in inside.stderr
    assert json.loads((tmp_path / "stats" / "manifest.json").read_text())["windows"]


def test_stats_and_plan_take_their_options_from_the_config_file(
        tmp_path: Path, sample_logs: Path, sample_catalog: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "stageroute.toml").write_text(
        f'catalog = "{sample_catalog}"\n\n[stats]\nlogs = "{sample_logs}"\nout = "store"\n'
        'anchor = 2026-01-05T02:00:00Z\n\n[plan]\nstats = "store"\nbudget = 0.002\n'
        'max-deployed = 3\nas-of = 2026-11-16T02:00:00Z\n')
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    built = runner.invoke(app, ["stats", "-q"])
    assert built.exit_code == 0, built.output
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert manifest["anchor"] == "2026-01-05T02:00:00Z"
    planned = runner.invoke(app, ["plan", "--json"])
    assert planned.exit_code == 0, planned.output
    expected = plan_doc(sample_logs, sample_catalog, END)
    got = json.loads(planned.stdout)
    assert got["logs"].pop("source") == "stats" and got == expected


@pytest.mark.parametrize("damage", [
    lambda m: {**m, "files": []},
    lambda m: {**m, "windows": {"0": {"file": "../../etc/passwd"}}},
    lambda m: {**m, "window_seconds": "1d"},
    lambda m: {**m, "anchor": "yesterday"},
    lambda m: {**m, "totals": "/tmp/x.parquet"},
    lambda m: {**m, "files": {"a": {"size": 1}}},
], ids=["files-list", "window-path", "window-seconds", "anchor", "totals-path", "file-entry"])
def test_a_damaged_manifest_is_refused_with_the_fix(tmp_path: Path, sample_logs: Path,
                                                   sample_catalog: Path, damage: Any) -> None:
    build_store(sample_logs, tmp_path / "stats")
    path = tmp_path / "stats" / "manifest.json"
    path.write_text(json.dumps(damage(json.loads(path.read_text()))))
    for attempt in (lambda: build_store(sample_logs, tmp_path / "stats"),
                    lambda: plan_doc(StoreInput(tmp_path / "stats"), sample_catalog, END)):
        with pytest.raises(BadDataError, match="is damaged .*stats --rebuild"):
            attempt()
    build_store(sample_logs, tmp_path / "stats", StoreOptions(rebuild=True))  # the fix works
    assert plan_doc(StoreInput(tmp_path / "stats"), sample_catalog, END) == \
        plan_doc(sample_logs, sample_catalog, END)


def test_a_damaged_window_file_is_refused(tmp_path: Path, sample_logs: Path,
                                          sample_catalog: Path) -> None:
    build_store(sample_logs, tmp_path / "stats")
    window = sorted((tmp_path / "stats" / "windows").iterdir())[-1]
    pl.DataFrame({"x": [1]}).write_parquet(window)
    with pytest.raises(BadDataError, match="cannot be read as the store's"):
        plan_doc(StoreInput(tmp_path / "stats"), sample_catalog, MID.replace(month=11, day=15))
    window.write_bytes(b"not parquet")
    with pytest.raises(BadDataError, match="cannot be read"):
        plan_doc(StoreInput(tmp_path / "stats"), sample_catalog, MID.replace(month=11, day=15))


def test_the_store_never_lives_with_the_logs_or_in_a_foreign_directory(
        tmp_path: Path, sample_logs: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.parquet").write_bytes(sample_logs.read_bytes())
    for out in (logs, logs / "stats"):
        with pytest.raises(UsageError, match="own Parquet files and read them as logs"):
            build_store(logs, out)
    with pytest.raises(UsageError, match="own Parquet files"):
        build_store(str(tmp_path / "**" / "*.parquet"), tmp_path / "stats")
    build_store(str(logs / "*.parquet"), logs / "stats")  # the glob never reaches the store's files
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="holds other files and no statistics store"):
        build_store(logs, tmp_path / "mine")
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    from stageroute.errors import CannotWriteError

    with pytest.raises(CannotWriteError):
        build_store(logs, tmp_path / "file")


def test_a_rebuild_stopped_half_way_leaves_the_store_as_it_was(
        tmp_path: Path, sample: pl.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    logs, _, _ = store_before_cut(sample, tmp_path)
    build_store(logs, tmp_path / "stats")  # generation 2; most windows are still g1 files
    before = load_store(tmp_path / "stats")
    calls = {"n": 0}
    real = store_build.write_atomic

    def failing(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real(*args, **kwargs)

    monkeypatch.setattr(store_build, "write_atomic", failing)
    with pytest.raises(KeyboardInterrupt):
        build_store(logs, tmp_path / "stats", StoreOptions(rebuild=True))
    monkeypatch.undo()
    assert_unchanged(tmp_path / "stats", before)


def test_a_renamed_file_is_no_copy(tmp_path: Path, sample: pl.DataFrame) -> None:
    logs = tmp_path / "logs"
    parts = write_parts(sample, logs, [CUT])
    build_store(logs, tmp_path / "stats")
    parts[0].rename(logs / "renamed.parquet")
    report = build_store(logs, tmp_path / "stats")
    assert report.removed == (str(parts[0].resolve()),)
    build_store(logs, tmp_path / "fresh")
    assert_same_store(tmp_path / "stats", tmp_path / "fresh")


def test_token_prices_of_the_store_must_be_the_catalog_s(tmp_path: Path, write_logs: Any) -> None:
    logs, catalog = write_logs(lambda f: f.drop("cost"))
    build_store(logs, tmp_path / "stats", catalog=read_catalog(catalog)[0])
    cheaper = tmp_path / "cheaper.csv"
    text = catalog.read_text().splitlines()
    lines = [text[0], *(line.replace(",3.0,6.0", ",0.3,0.6") for line in text[1:])]
    cheaper.write_text("\n".join(lines) + "\n")
    assert cheaper.read_text() != catalog.read_text()
    with pytest.raises(UsageError, match="priced the tokens of model 'gamma'"):
        plan_doc(StoreInput(tmp_path / "stats"), cheaper, dt.datetime(2026, 3, 1, tzinfo=dt.UTC))


def test_rows_without_a_cost_are_refused_with_a_half_life_too(tmp_path: Path, write_logs: Any) -> None:
    logs, catalog = write_logs(lambda f: f.with_columns(
        pl.when(pl.col("request_id") == "r0005").then(None).otherwise(pl.col("cost")).alias("cost")))
    build_store(logs, tmp_path / "stats")  # no catalog: every model may lack a cost here
    as_of = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    for drift in (Drift(), Drift(half_life=dt.timedelta(days=2))):
        with pytest.raises(BadDataError, match="column 'cost' is empty in 1 row"):
            plan_doc(StoreInput(tmp_path / "stats"), catalog, as_of, drift=drift)


def test_a_drift_window_shorter_than_the_store_s_windows_is_refused(tmp_path: Path,
                                                                    sample_logs: Path,
                                                                    sample_catalog: Path) -> None:
    build_store(sample_logs, tmp_path / "stats", StoreOptions(length=dt.timedelta(days=7)))
    with pytest.raises(UsageError, match="shorter than the windows"):
        plan_doc(StoreInput(tmp_path / "stats"), sample_catalog, END,
                 drift=Drift(window=dt.timedelta(days=1)))


@pytest.mark.parametrize("half_life", [dt.timedelta(seconds=1), dt.timedelta(hours=1),
                                       dt.timedelta(days=1)], ids=["1s", "1h", "1d"])
@pytest.mark.parametrize("from_store", [False, True], ids=["logs-by-day", "store"])
def test_a_half_life_that_leaves_less_than_one_reward_is_refused_as_such(
        tmp_path: Path, sample_logs: Path, sample_catalog: Path, half_life: dt.timedelta,
        from_store: bool) -> None:
    """Two weeks after the sample's newest row, a half-life of a day or less weighs all its
    rewards at less than one sample (a second underflows to 0): the error says so and how long a
    half-life would do, where it said "no row before --as-of" or "every 'reward' is empty"."""
    source: Any = sample_logs
    if from_store:
        build_store(sample_logs, tmp_path / "stats")
        source = StoreInput(tmp_path / "stats")
    as_of = END + dt.timedelta(days=14)
    with pytest.raises(InsufficientDataError,
                       match=r"with --half-life .* the rewards before --as-of .* weigh .* "
                             r"sample\(s\) in all .*give a --half-life of at least 1[45]d"):
        plan_doc(source, sample_catalog, as_of, drift=Drift(half_life=half_life),
                 max_staleness=dt.timedelta(days=30))
    doc = plan_doc(source, sample_catalog, as_of, drift=Drift(half_life=dt.timedelta(days=14)),
                   max_staleness=dt.timedelta(days=30))
    assert doc["deployment"]


def test_a_window_that_holds_no_row_is_said_so_with_a_half_life_too(
        tmp_path: Path, sample_logs: Path, sample_catalog: Path) -> None:
    as_of = END + dt.timedelta(days=14)
    for drift in (Drift(window=dt.timedelta(days=7)),
                  Drift(window=dt.timedelta(days=7), half_life=dt.timedelta(seconds=1))):
        with pytest.raises(InsufficientDataError, match=r"no row before --as-of .* in the "
                           r"--window .*an --as-of closer to them or a longer --window"):
            plan_doc(sample_logs, sample_catalog, as_of, drift=drift,
                     max_staleness=dt.timedelta(days=30))


@pytest.mark.parametrize("as_of", [END, MID], ids=["after-the-log", "inside-the-log"])
def test_hive_partitioned_logs_plan_the_same_from_the_store(tmp_path: Path, sample: pl.DataFrame,
                                                            sample_catalog: Path,
                                                            as_of: dt.datetime) -> None:
    logs = tmp_path / "logs"
    month = pl.col("timestamp").dt.strftime("%Y-%m")
    for (key,), part in sample.with_columns(month.alias("m")).partition_by("m", as_dict=True).items():
        (logs / f"month={key}").mkdir(parents=True)
        part.drop("m").write_parquet(logs / f"month={key}" / "part.parquet")
    build_store(logs, tmp_path / "stats")
    assert plan_doc(StoreInput(tmp_path / "stats"), sample_catalog, as_of) == \
        plan_doc(logs, sample_catalog, as_of)
