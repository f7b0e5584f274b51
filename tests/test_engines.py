"""The three engines of ``stageroute stats`` (Polars, DuckDB, Spark in local mode) build the same
store on the same logs, report bad values with the same error, and say how to install what is
missing (SPEC 9)."""

from __future__ import annotations

import builtins
import datetime as dt
import os
import re
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from stageroute.errors import BadDataError, EngineUnavailableError, ExitCode, UsageError
from stageroute.inputs.catalog import read_catalog
from stageroute.plan import PlanConfig, make_plan, plan_document
from stageroute.store.build import StoreOptions, build_store
from stageroute.store.layout import load_store
from stageroute.store.read import StoreInput

ENGINES = ("polars", "duckdb", "spark")
SPARK_MASTER = "local[2]"  # every Spark build of this module shares one session
AS_OF = dt.datetime(2026, 11, 16, 2, tzinfo=dt.UTC)


def options(engine: str, **kw: Any) -> StoreOptions:
    master = SPARK_MASTER if engine == "spark" else "local[*]"  # the others refuse one
    return StoreOptions(engine=engine, spark_master=master, **kw)


@pytest.fixture(scope="module")
def sample(repo_root: Path) -> pl.DataFrame:
    logs = pl.read_parquet(repo_root / "sample_logs" / "logs.parquet")
    # Some requests without a segment (a null group), a few zero costs (the zero bin).
    return logs.with_columns(
        pl.when(pl.int_range(pl.len()) % 11 == 0).then(None).otherwise(pl.col("segment"))
        .alias("segment"),
        pl.when(pl.int_range(pl.len()) % 97 == 0).then(0.0).otherwise(pl.col("cost")).alias("cost"))


def split(frame: pl.DataFrame, directory: Path, parts: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    size = -(-frame.height // parts)
    paths = []
    for i in range(parts):
        path = directory / f"part-{i}.parquet"
        frame.slice(i * size, size).write_parquet(path)
        paths.append(path)
    return paths


def assert_same_store(a: Path, b: Path) -> None:
    """Equal stores: manifests' files and windows, every window's rows (integer columns, times
    and histograms exactly, means and M2 to 1e-9)."""
    (ma, fa), (mb, fb) = load_store(a), load_store(b)
    assert ma["files"] == mb["files"]
    assert {w: e["rows"] for w, e in ma["windows"].items()} == {
        w: e["rows"] for w, e in mb["windows"].items()}
    assert fa.height > 0
    assert_frame_equal(fa, fb, check_exact=False, rel_tol=1e-9, abs_tol=1e-15)


def build_all(logs: Path, tmp: Path, tag: str, **kw: Any) -> dict[str, Path]:
    outs = {}
    for engine in ENGINES:
        out = tmp / f"store-{tag}-{engine}"
        report = build_store(logs, out, options(engine, **kw.get("opts", {})),
                             kw.get("catalog"), kw.get("feedback"))
        assert report.engine == engine
        outs[engine] = out
    return outs


def test_engines_build_equal_stores_with_segments_feedback_and_incremental_runs(
        sample: pl.DataFrame, tmp_path: Path, sample_catalog: Path) -> None:
    # Feedback in its own files: the logs keep the rewards of the first half only.
    cut = sample.height // 2
    sample.slice(cut).select("request_id", "reward").drop_nulls().write_parquet(
        tmp_path / "feedback.parquet")
    logs = sample.with_columns(pl.when(pl.int_range(pl.len()) < cut).then(pl.col("reward"))
                               .alias("reward"))
    first, last = logs.slice(0, 50_000), logs.slice(50_000)
    logs_dir = tmp_path / "logs"
    split(first, logs_dir, 3)
    fb = tmp_path / "feedback.parquet"
    six_hours = {"length": dt.timedelta(hours=6)}
    stores = build_all(logs_dir, tmp_path, "a", feedback=fb, opts=six_hours)
    for engine in ENGINES[1:]:
        assert_same_store(stores["polars"], stores[engine])
    # A new file: each engine reads only it and merges the windows it reaches.
    last.write_parquet(logs_dir / "part-3.parquet")
    for engine, out in stores.items():
        report = build_store(logs_dir, out, options(engine, **six_hours), None, fb)
        assert report.files_read == (os.path.abspath(logs_dir / "part-3.parquet"),)
        assert report.rows == last.height
    for engine in ENGINES[1:]:
        assert_same_store(stores["polars"], stores[engine])
    # A changed file: the windows it touched are rebuilt from the parts of the other files.
    changed = logs_dir / "part-1.parquet"
    pl.read_parquet(changed).head(5000).write_parquet(changed)
    for engine, out in stores.items():
        report = build_store(logs_dir, out, options(engine, **six_hours), None, fb)
        assert report.files_partly_read and report.windows_rebuilt
    for engine in ENGINES[1:]:
        assert_same_store(stores["polars"], stores[engine])
    # The same plan from each store.
    config = PlanConfig(budget=0.002, max_deployed=3, as_of=AS_OF)
    plans = {engine: plan_document(make_plan(StoreInput(out), sample_catalog, config))
             for engine, out in stores.items()}
    for engine in ENGINES[1:]:
        assert strip_store(plans[engine], stores[engine]) == strip_store(
            plans["polars"], stores["polars"])


def strip_store(doc: Any, store: Path) -> Any:
    """The plan document with the store's path taken out (each engine has its own store)."""
    if isinstance(doc, dict):
        return {k: strip_store(v, store) for k, v in doc.items() if k not in ("run_id",)}
    if isinstance(doc, list):
        return [strip_store(v, store) for v in doc]
    return doc.replace(str(store), "STORE") if isinstance(doc, str) else doc


def test_engines_price_requests_from_tokens_alike(sample: pl.DataFrame, tmp_path: Path,
                                                  sample_catalog: Path) -> None:
    logs = tmp_path / "logs"
    split(sample.drop("cost"), logs, 2)
    catalog = read_catalog(sample_catalog)[0]
    stores = build_all(logs, tmp_path, "tokens", catalog=catalog)
    frame = load_store(stores["polars"])[1]
    # An independent check of the pricing: the mean cost of one model by hand.
    model = "cirrus-mini"
    price = catalog.filter(pl.col("model") == model).row(0, named=True)
    rows = sample.filter(pl.col("model") == model)
    by_hand = ((rows["input_tokens"] * price["usd_per_mtok_in"]
                + rows["output_tokens"] * price["usd_per_mtok_out"]) / 1e6).mean()
    got = frame.filter(pl.col("model") == model)
    assert (got["n_cost"] * got["mean_cost"]).sum() / got["n_cost"].sum() == pytest.approx(
        by_hand, rel=1e-12)
    for engine in ENGINES[1:]:
        assert_same_store(stores["polars"], stores[engine])



def hive_by_model(logs: pl.DataFrame, root: Path) -> None:
    """Files under model=<id>/ without a model column, times in Europe/Paris."""
    for (model,), part in logs.partition_by("model", as_dict=True).items():
        (root / f"model={model}").mkdir(parents=True)
        part.drop("model").with_columns(pl.col("timestamp").dt.convert_time_zone("Europe/Paris")
                                        ).write_parquet(root / f"model={model}" / "part.parquet")


def mixed_files(logs: pl.DataFrame, root: Path) -> None:
    """Naive millisecond times (read as UTC), integer request ids, columns some files lack."""
    root.mkdir()
    logs = logs.with_columns(pl.col("timestamp").dt.replace_time_zone(None).dt.cast_time_unit("ms"),
                             pl.int_range(pl.len()).alias("request_id"))
    third = logs.height // 3
    logs.slice(0, third).write_parquet(root / "a.parquet")
    logs.slice(third, third).drop("segment", "propensity").write_parquet(root / "b.parquet")
    logs.slice(2 * third).drop("reward").write_parquet(root / "c.parquet")


@pytest.mark.parametrize("layout", [hive_by_model, mixed_files])
def test_engines_read_the_layouts_polars_reads_alike(layout: Any, sample: pl.DataFrame,
                                                     tmp_path: Path) -> None:
    layout(sample.head(20_000), tmp_path / "logs")
    stores = build_all(tmp_path / "logs", tmp_path, "layout",
                       opts={"length": dt.timedelta(hours=3)})
    frame = load_store(stores["polars"])[1]
    assert frame["rows"].sum() == 20_000
    assert frame["model"].n_unique() == sample.head(20_000)["model"].n_unique()
    for engine in ENGINES[1:]:
        assert_same_store(stores["polars"], stores[engine])


BAD = {
    "reward above 1": (lambda f: f.with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(1.5).otherwise(pl.col("reward")).alias("reward"))),
    "cost NaN": (lambda f: f.with_columns(
        pl.when(pl.int_range(pl.len()) == 9).then(float("nan")).otherwise(pl.col("cost"))
        .alias("cost"))),
    "empty model": (lambda f: f.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(None).otherwise(pl.col("model")).alias("model"))),
}
MORE_BAD = {
    "negative cost": (lambda f: f.with_columns(
        pl.when(pl.int_range(pl.len()) == 5).then(-1.0).otherwise(pl.col("cost")).alias("cost"))),
    "infinite cost": (lambda f: f.with_columns(
        pl.when(pl.int_range(pl.len()) == 5).then(float("inf")).otherwise(pl.col("cost"))
        .alias("cost"))),
    "reward NaN": (lambda f: f.with_columns(
        pl.when(pl.int_range(pl.len()) == 2).then(float("nan")).otherwise(pl.col("reward"))
        .alias("reward"))),
    "propensity 0": (lambda f: f.with_columns(
        pl.when(pl.int_range(pl.len()) == 4).then(0.0).otherwise(pl.col("propensity"))
        .alias("propensity"))),
    "tokens negative": (lambda f: f.with_columns(
        pl.when(pl.int_range(pl.len()) == 4).then(-3).otherwise(pl.col("input_tokens"))
        .alias("input_tokens"))),
    "empty request id": (lambda f: f.with_columns(
        pl.when(pl.int_range(pl.len()) == 6).then(None).otherwise(pl.col("request_id"))
        .alias("request_id"))),
    "duplicate request id": (lambda f: pl.concat([f, f.slice(10, 1)])),
}


def bad_messages(frame: pl.DataFrame, tmp_path: Path, engines: tuple[str, ...]) -> dict[str, str]:
    logs = tmp_path / "bad.parquet"
    frame.write_parquet(logs)
    messages = {}
    for engine in engines:
        with pytest.raises(BadDataError) as caught:
            build_store(logs, tmp_path / f"store-{engine}", options(engine))
        messages[engine] = str(caught.value)
    return messages


@pytest.mark.parametrize("case", list(BAD))
def test_bad_values_give_the_same_error_under_each_engine(case: str, sample: pl.DataFrame,
                                                         tmp_path: Path) -> None:
    messages = bad_messages(BAD[case](sample.head(2000)), tmp_path, ENGINES)
    assert len(set(messages.values())) == 1, messages


@pytest.mark.parametrize("case", list(MORE_BAD))
def test_bad_values_give_the_same_error_under_duckdb(case: str, sample: pl.DataFrame,
                                                    tmp_path: Path) -> None:
    messages = bad_messages(MORE_BAD[case](sample.head(2000)), tmp_path, ("polars", "duckdb"))
    assert messages["polars"] == messages["duckdb"]


def test_duckdb_takes_a_memory_limit_and_refuses_nonsense(sample: pl.DataFrame,
                                                          tmp_path: Path) -> None:
    logs = tmp_path / "logs.parquet"
    sample.write_parquet(logs)
    capped = build_store(logs, tmp_path / "capped", options("duckdb", memory_limit="64MB"))
    build_store(logs, tmp_path / "free", options("polars"))
    assert capped.rows == sample.height
    assert_same_store(tmp_path / "free", tmp_path / "capped")
    for nonsense in ("lots", "2GB'; DROP TABLE x; --"):
        with pytest.raises(UsageError, match="--memory-limit"):
            build_store(logs, tmp_path / "nonsense", options("duckdb", memory_limit=nonsense))


def _no_import(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    real = builtins.__import__

    def fake(name: str, *args: Any, **kw: Any) -> Any:
        if name == package or name.startswith(package + "."):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", fake)


@pytest.mark.parametrize(("engine", "package", "install"), [
    ("duckdb", "duckdb", "pip install 'stageroute[duckdb]'"),
    ("spark", "pyspark", "pip install 'stageroute[spark]'"),
])
def test_a_missing_engine_says_how_to_install_it(engine: str, package: str, install: str,
                                                 sample: pl.DataFrame, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    logs = tmp_path / "logs.parquet"
    sample.head(100).write_parquet(logs)
    _no_import(monkeypatch, package)
    with pytest.raises(EngineUnavailableError) as caught:
        build_store(logs, tmp_path / "store", options(engine))
    assert install in str(caught.value)
    assert caught.value.exit_code == ExitCode.NO_SOLVER == 69
    assert not (tmp_path / "store" / "manifest.json").exists()


@pytest.mark.parametrize(("engine", "kw", "words"), [
    ("polars", {"memory_limit": "2GB"}, "--memory-limit caps DuckDB's memory"),
    ("spark", {"memory_limit": "2GB"}, "add --engine duckdb"),
    ("duckdb", {"spark_master": "spark://h:7077"}, "--spark-master names Spark's master"),
])
def test_an_option_of_another_engine_is_a_usage_error(engine: str, kw: dict[str, str],
                                                       words: str) -> None:
    with pytest.raises(UsageError, match=re.escape(words)):
        StoreOptions(engine=engine, **kw)  # type: ignore[arg-type]


def test_a_spark_master_that_is_no_url_is_a_usage_error() -> None:
    from stageroute.store import spark_engine

    with pytest.raises(UsageError, match="--spark-master must be a Spark master URL"):
        spark_engine.session("bogus://x")


def test_spark_without_java_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from stageroute.store import spark_engine

    monkeypatch.setattr(shutil, "which", lambda _: None)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(EngineUnavailableError, match="apt-get install -y openjdk-17-jre-headless"):
        spark_engine.load_pyspark()


def test_the_cli_exits_69_for_a_missing_engine(sample: pl.DataFrame, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from stageroute_cli.main import app

    logs = tmp_path / "logs.parquet"
    sample.head(100).write_parquet(logs)
    _no_import(monkeypatch, "duckdb")
    result = CliRunner().invoke(app, ["stats", "--logs", str(logs), "--out",
                                      str(tmp_path / "store"), "--engine", "duckdb"])
    assert result.exit_code == 69
    assert "pip install 'stageroute[duckdb]'" in result.output


def test_the_engines_benchmark_runs_on_a_small_log(repo_root: Path, tmp_path: Path) -> None:
    """benchmarks/bench_engines.py completes and prints its table (the README's figures come
    from it); it checks itself that the three stores are equal."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, str(repo_root / "benchmarks" / "bench_engines.py"),
                             "--rows", "20000", "--dir", str(tmp_path)], cwd=repo_root,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    assert "| Spark, local[*] | 0 |" in result.stdout
    assert "The three stores are equal" in result.stdout


@pytest.mark.parametrize("zone", ["UTC", None])
def test_duckdb_reads_nanosecond_timestamps_as_polars_does(zone: str | None, sample: pl.DataFrame,
                                                           tmp_path: Path) -> None:
    """Parquet written by pandas or Spark often holds nanoseconds; DuckDB has no epoch_us of a
    zoned nanosecond timestamp, so the engine floors epoch_ns to microseconds as Polars does."""
    logs = tmp_path / "logs"
    logs.mkdir()
    stamp = pl.col("timestamp").cast(pl.Datetime("ns", zone)) + pl.duration(nanoseconds=999)
    sample.with_columns(stamp).write_parquet(logs / "ns.parquet")
    stores = {engine: tmp_path / engine for engine in ("polars", "duckdb")}
    for engine, out in stores.items():
        build_store(logs, out, options(engine), None, None)
    assert_same_store(stores["polars"], stores["duckdb"])
