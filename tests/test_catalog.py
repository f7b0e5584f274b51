"""The catalog loader: every format gives the same frame, invalid catalogs fail clearly, pools split."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from stageroute.errors import BadDataError, ExitCode, InputMissingError
from stageroute.inputs.catalog import CATALOG_SCHEMA, Window, load_catalog, read_catalog, split_pool

UTC = dt.UTC
ROWS = [
    {"model": "alpha", "released": "2026-01-01", "retired": None, "max_share": 1.0,
     "usd_per_mtok_in": 1.0, "usd_per_mtok_out": 2.0, "provider": "a"},
    {"model": "beta", "released": "2026-02-01T12:00:00Z", "retired": "2026-06-30", "max_share": 0.5,
     "usd_per_mtok_in": 0.5, "usd_per_mtok_out": 1.0, "provider": "b"},
    {"model": "gamma", "released": "2026-03-01", "retired": None, "max_share": None,
     "usd_per_mtok_in": None, "usd_per_mtok_out": None, "provider": None},
]
HEADER = "model,released,retired,max_share,usd_per_mtok_in,usd_per_mtok_out"
CSV_UTF16 = f"{HEADER}\na,2026-01-01,,1,1,1\n".encode("utf-16")


def _expected() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "model": ["alpha", "beta", "gamma"],
            "released": [dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2026, 2, 1, 12, tzinfo=UTC),
                         dt.datetime(2026, 3, 1, tzinfo=UTC)],
            "retired": [None, dt.datetime(2026, 6, 30, tzinfo=UTC), None],
            "max_share": [1.0, 0.5, 1.0],
            "usd_per_mtok_in": [1.0, 0.5, None],
            "usd_per_mtok_out": [2.0, 1.0, None],
            "provider": ["a", "b", None],
            "litellm_model": [None, None, None],
            "rpm": [None, None, None],
            "tpm": [None, None, None],
        },
        schema=CATALOG_SCHEMA,
    )


def _write_csv(path: Path) -> None:
    lines = ["model,released,retired,max_share,usd_per_mtok_in,usd_per_mtok_out,provider"]
    for row in ROWS:
        lines.append(",".join("" if v is None else str(v) for v in row.values()))
    path.write_text("\n".join(lines) + "\n")


def _write_parquet(path: Path) -> None:
    # Native types this time: Date / Datetime columns and numbers, not strings.
    pl.DataFrame(
        {
            "model": ["gamma", "alpha", "beta"],
            "released": [dt.datetime(2026, 3, 1), dt.datetime(2026, 1, 1), dt.datetime(2026, 2, 1, 12)],
            "retired": [None, None, dt.date(2026, 6, 30)],
            "max_share": [None, 1.0, 0.5],
            "usd_per_mtok_in": [None, 1.0, 0.5],
            "usd_per_mtok_out": [None, 2.0, 1.0],
            "provider": [None, "a", "b"],
        },
        schema_overrides={"retired": pl.Date},
    ).write_parquet(path)


def _write_json_list(path: Path) -> None:
    path.write_text(json.dumps(ROWS))


def _write_json_models(path: Path) -> None:
    path.write_text(json.dumps({"models": ROWS}))


def _write_toml(path: Path) -> None:
    # TOML has no null: leave the key out. Dates are native TOML dates/datetimes.
    path.write_text(
        '[[models]]\nmodel = "alpha"\nreleased = 2026-01-01\nmax_share = 1.0\n'
        'usd_per_mtok_in = 1.0\nusd_per_mtok_out = 2.0\nprovider = "a"\n\n'
        '[[models]]\nmodel = "beta"\nreleased = 2026-02-01T12:00:00Z\nretired = 2026-06-30\n'
        'max_share = 0.5\nusd_per_mtok_in = 0.5\nusd_per_mtok_out = 1.0\nprovider = "b"\n\n'
        '[[models]]\nmodel = "gamma"\nreleased = "2026-03-01"\n'
    )


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("catalog.csv", _write_csv),
        ("catalog.parquet", _write_parquet),
        ("catalog.json", _write_json_list),
        ("models.json", _write_json_models),
        ("catalog.toml", _write_toml),
    ],
)
def test_every_format_gives_the_same_frame(tmp_path: Path, name: str, write) -> None:
    path = tmp_path / name
    write(path)
    assert_frame_equal(load_catalog(path), _expected())


def test_sample_catalog_loads(sample_catalog: Path) -> None:
    catalog = load_catalog(sample_catalog)
    assert catalog.height == 10
    assert catalog.schema == pl.Schema(CATALOG_SCHEMA)
    assert catalog["model"].to_list() == sorted(catalog["model"].to_list())


INVALID = [
    pytest.param("c.csv", "name,released\na,2026-01-01\n", BadDataError,
                 ["c.csv", "no column 'model'", "name, released", "add it"], id="missing-model"),
    pytest.param("c.csv", "model,retired\na,2026-01-01\n", BadDataError,
                 ["c.csv", "no column 'released'", "add it"], id="missing-released"),
    pytest.param("c.csv", f"{HEADER}\na,2026-01-01,,1,1,1\na,2026-01-02,,1,1,1\n", BadDataError,
                 ["c.csv", "'model'", "'a' twice", "one row per model"], id="duplicate-model"),
    pytest.param("c.csv", f"{HEADER}\na,2026-02-01,2026-01-01,1,1,1\n", BadDataError,
                 ["c.csv", "'a'", "retired (2026-01-01) before it is released (2026-02-01)",
                  "fix 'retired' or 'released'"], id="retired-before-released"),
    pytest.param("c.csv", f"{HEADER}\na,2026-01-01,,0,1,1\n", BadDataError,
                 ["c.csv", "'max_share'", "0.0", "'a'", "(0, 1]"], id="max-share-0"),
    pytest.param("c.csv", f"{HEADER}\na,2026-01-01,,1.5,1,1\n", BadDataError,
                 ["c.csv", "'max_share'", "1.5", "(0, 1]"], id="max-share-1.5"),
    pytest.param("c.csv", f"{HEADER}\na,2026-01-01,,1,-1,1\n", BadDataError,
                 ["c.csv", "'usd_per_mtok_in'", "-1.0", "'a'", ">= 0"], id="negative-price"),
    pytest.param("c.csv", f"{HEADER}\na,2026-01-01,,1,1,inf\n", BadDataError,
                 ["c.csv", "'usd_per_mtok_out'", "inf", "finite"], id="infinite-price"),
    pytest.param("c.csv", f"{HEADER}\na,2026-01-01,,lots,1,1\n", BadDataError,
                 ["c.csv", "'max_share'", "'lots'", "not a number", "such as 0.5"], id="text-number"),
    pytest.param("c.csv", f"{HEADER}\na,next tuesday,,1,1,1\n", BadDataError,
                 ["c.csv", "'released'", "'next tuesday'", "not a date", "ISO 8601"],
                 id="unparsable-date"),
    pytest.param("c.csv", f"{HEADER}\n,2026-01-01,,1,1,1\n", BadDataError,
                 ["c.csv", "'model'", "empty model id"], id="empty-model-id"),
    pytest.param("c.csv", f"{HEADER}\na,,,1,1,1\n", BadDataError,
                 ["c.csv", "'released' is empty", "'a'"], id="empty-released"),
    pytest.param("c.csv", "", BadDataError, ["c.csv", "cannot be read as CSV", "fix the file"],
                 id="empty-file"),
    pytest.param("c.csv", f"{HEADER}\n", BadDataError, ["c.csv", "no models", "one row per model"],
                 id="header-only"),
    pytest.param("c.xlsx", "x", BadDataError, ["c.xlsx", "unknown format '.xlsx'", ".csv, .parquet"],
                 id="unknown-extension"),
    pytest.param("c.json", '[{"model": "a", ', BadDataError,
                 ["c.json", "not valid JSON", "line 1", "fix the file"], id="invalid-json"),
    pytest.param("c.json", '{"catalog": 1}', BadDataError,
                 ["c.json", "must hold a list of models", '{"models": [...]}'], id="json-not-a-list"),
    pytest.param("c.json", '[{"model": "a", "released": 20260101}]', BadDataError,
                 ["c.json", "'released'", "Int64", "date or datetime"], id="json-number-date"),
    pytest.param("c.toml", '[[models]\nmodel = "a"\n', BadDataError,
                 ["c.toml", "not valid TOML", "line 1", "fix the file"], id="invalid-toml"),
    pytest.param("c.parquet", "not parquet", BadDataError,
                 ["c.parquet", "cannot be read as Parquet", "export it again"], id="corrupt-parquet"),
    # Classes of the hostile-input probe (issue 7): each failed on the code before it.
    pytest.param("c.csv", "model,released,model\na,2026-01-01,b\n", BadDataError,
                 ["c.csv", "names the column 'model' twice", "ambiguous"], id="duplicated-csv-header"),
    pytest.param("c.csv", f"{HEADER}\nalpha,2026-01-01,,1,1,1\nAlpha,2026-01-01,,1,1,1\n",
                 BadDataError, ["c.csv", "'Alpha' and 'alpha'", "differ only in case"],
                 id="ids-differ-only-in-case"),
    pytest.param("c.csv", f'{HEADER}\n"bad\nid",2026-01-01,,1,1,1\n"bad\nid",2026-01-01,,1,1,1\n',
                 BadDataError, ["c.csv", "'bad\\nid'", "invisible character"], id="newline-in-an-id"),
    pytest.param("c.csv", f"{HEADER}\nal\x00pha,2026-01-01,,1,1,1\n", BadDataError,
                 ["c.csv", "'al\\x00pha'", "invisible character"], id="nul-in-an-id"),
    pytest.param("c.csv", f"{HEADER}\nal\u200bpha,2026-01-01,,1,1,1\n", BadDataError,
                 ["c.csv", "'al\\u200bpha'", "invisible character"], id="zero-width-space-in-an-id"),
    pytest.param("c.csv", f"{HEADER}\n{'x' * 5000},2026-01-01,,1,1,1\n", BadDataError,
                 ["c.csv", "5,000 characters", "at most 1,000", "quoting"], id="id-too-long"),
    pytest.param("c.csv", f"{HEADER}\na,0001-01-01T00:00:00+01:00,,1,1,1\n", BadDataError,
                 ["c.csv", "'released'", "'0001-01-01T00:00:00+01:00'", "outside the calendar"],
                 id="year-1-with-an-offset"),
    pytest.param("c.csv", f"{HEADER}\na,2026-01-01,9999-12-31T23:00:00-05:00,1,1,1\n", BadDataError,
                 ["c.csv", "'retired'", "9999-12-31T23:00:00-05:00", "outside the calendar"],
                 id="year-9999-with-an-offset"),
    pytest.param("c.csv", f"{HEADER}\na,9999-12-31,,1,1,1\n", BadDataError,
                 ["c.csv", "'a'", "released on 9999-12-31", "placeholder"], id="release-in-9999"),
    pytest.param("c.csv", f"{HEADER}\na,2026-01-01,,1,1,1e308\n", BadDataError,
                 ["c.csv", "'usd_per_mtok_out'", "1e+308", "'a'", "at most 1e+100"],
                 id="price-that-overflows"),
    pytest.param("c.json", '[{"model": "a", "released": "2026-01-01", "max_share": 1' + "0" * 400 + "}]",
                 BadDataError, ["c.json", "'max_share'", "too large"], id="json-huge-integer"),
    pytest.param("c.json", '[{"model": "a", "model": "b", "released": "2026-01-01"}]', BadDataError,
                 ["c.json", "not valid JSON", "'model' appears twice"], id="json-repeated-key"),
    pytest.param("c.json", "[" * 50000 + "]" * 50000, BadDataError,
                 ["c.json", "not valid JSON", "nested too deeply"], id="json-nested-too-deeply"),
    pytest.param("c.json", '[{"model": {"id": 1}, "released": "2026-01-01"}]', BadDataError,
                 ["c.json", "column 'model'", "Struct", "expected text"], id="json-object-as-id"),
    pytest.param("c.csv", CSV_UTF16, BadDataError, ["c.csv", "not UTF-8", "UTF-16"], id="utf-16-csv"),
    # The export columns (issue 9): rate limits are positive whole numbers.
    pytest.param("c.csv", "model,released,rpm\na,2026-01-01,0\n", BadDataError,
                 ["c.csv", "column 'rpm'", "has 0", "positive whole number"], id="rpm-zero"),
    pytest.param("c.csv", "model,released,tpm\na,2026-01-01,-5\n", BadDataError,
                 ["c.csv", "column 'tpm'", "has -5", "positive whole number"], id="tpm-negative"),
    pytest.param("c.csv", "model,released,rpm\na,2026-01-01,2.5\n", BadDataError,
                 ["c.csv", "column 'rpm'", "has 2.5", "such as 500"], id="rpm-fraction"),
    pytest.param("c.csv", "model,released,rpm\na,2026-01-01,lots\n", BadDataError,
                 ["c.csv", "column 'rpm'", "'lots'", "not a number"], id="rpm-text"),
    pytest.param("c.json", '[{"model": "a", "released": "2026-01-01", "tpm": 1e300}]', BadDataError,
                 ["c.json", "column 'tpm'", "positive whole number"], id="tpm-huge"),
    pytest.param("c.json", '[{"model": "a", "released": "2026-01-01", "litellm_model": [1]}]',
                 BadDataError, ["c.json", "column 'litellm_model'", "expected text"],
                 id="litellm-model-not-text"),
]


def test_export_columns_are_read(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("model,released,litellm_model,rpm,tpm\na,2026-01-01,openai/gpt-4o-mini,500,"
                    "90000\nb,2026-01-01,,,\n")
    catalog = load_catalog(path)
    assert catalog.select("litellm_model", "rpm", "tpm").rows() == [
        ("openai/gpt-4o-mini", 500, 90000), (None, None, None)]
    assert catalog.schema == pl.Schema(CATALOG_SCHEMA)


@pytest.mark.parametrize(("name", "text", "error", "words"), INVALID)
def test_invalid_catalog(tmp_path: Path, name: str, text: str | bytes, error: type,
                         words: list[str]) -> None:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(error) as info:
        load_catalog(path)
    assert info.value.exit_code == ExitCode.BAD_DATA
    for word in words:
        assert word in str(info.value), f"{word!r} not in {str(info.value)!r}"
    assert "\n" not in str(info.value)


def _zoned_parquet(path: Path) -> None:
    stamps = pa.array([0], pa.timestamp("us", "+05:30"))
    pq.write_table(pa.table({"model": ["a"], "released": stamps}), path)


def _two_model_columns(path: Path) -> None:
    pq.write_table(pa.table([pa.array(["a"]), pa.array(["2026-01-01"]), pa.array(["b"])],
                            names=["model", "released", "model"]), path)


def _parquet_year_1_in_tokyo(path: Path) -> None:
    pl.DataFrame({"model": ["a"], "released": [dt.datetime(1, 1, 1, 3)]}).with_columns(
        pl.col("released").dt.replace_time_zone("Asia/Tokyo")).write_parquet(path)


@pytest.mark.parametrize(("write", "words"), [
    pytest.param(_zoned_parquet, ["'released'", "time zone '+05:30'", "UTC"], id="offset-time-zone"),
    pytest.param(_two_model_columns, ["two columns named 'model'"], id="duplicate-columns"),
    pytest.param(_parquet_year_1_in_tokyo, ["'released'", "outside the calendar"],
                 id="year-1-in-tokyo"),
])
def test_invalid_parquet_catalog(tmp_path: Path, write, words: list[str]) -> None:
    write(tmp_path / "c.parquet")
    with pytest.raises(BadDataError) as info:
        load_catalog(tmp_path / "c.parquet")
    for word in words:
        assert word in str(info.value), f"{word!r} not in {str(info.value)!r}"


@pytest.mark.parametrize("make", [
    pytest.param(lambda p: os.mkfifo(p), id="fifo"),
    pytest.param(lambda p: os.symlink("/dev/zero", p), id="device"),
    pytest.param(lambda p: os.symlink(p.name, p), id="link-loop"),
])
def test_catalog_that_is_not_a_regular_file(tmp_path: Path, make) -> None:
    """Refused before anything opens it: reading a FIFO would block for ever."""
    make(tmp_path / "c.csv")
    with pytest.raises(InputMissingError, match="c.csv") as info:
        load_catalog(tmp_path / "c.csv")
    assert info.value.exit_code == ExitCode.INPUT_MISSING
    assert "does not exist" not in str(info.value)


def test_ids_with_surrounding_whitespace_are_stripped_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    _write_csv(path)
    path.write_text(path.read_text().replace("alpha,", " alpha ,", 1).replace("model,released",
                                                                               "model , released"))
    catalog, notes = read_catalog(path)
    assert_frame_equal(catalog, _expected())
    assert notes == ("catalog " + str(path) + ": 1 model id(s) had surrounding whitespace, which "
                     "was removed (e.g. ' alpha ' is read as 'alpha')",)
    _write_csv(path)
    assert read_catalog(path)[1] == ()


def test_json_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("\ufeff" + json.dumps(ROWS), encoding="utf-8")
    assert_frame_equal(load_catalog(path), _expected())


def test_retirement_in_year_9999_means_never(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(f"{HEADER}\na,2026-01-01,9999-12-31,1,1,1\n")
    assert load_catalog(path)["retired"][0] == dt.datetime(9999, 12, 31, tzinfo=UTC)


def test_missing_catalog(tmp_path: Path) -> None:
    with pytest.raises(InputMissingError, match=r"nope\.csv does not exist.*--catalog") as info:
        load_catalog(tmp_path / "nope.csv")
    assert info.value.exit_code == ExitCode.INPUT_MISSING


def test_directory_as_catalog(tmp_path: Path) -> None:
    with pytest.raises(InputMissingError, match="is a directory, pass the catalog file"):
        load_catalog(tmp_path)


def _catalog(*rows: tuple[str, str, str | None]) -> pl.DataFrame:
    def ts(text: str | None) -> dt.datetime | None:
        return None if text is None else dt.datetime.fromisoformat(text).replace(tzinfo=UTC)

    return pl.DataFrame(
        {"model": [r[0] for r in rows], "released": [ts(r[1]) for r in rows],
         "retired": [ts(r[2]) for r in rows]},
        schema={"model": pl.String, "released": CATALOG_SCHEMA["released"],
                "retired": CATALOG_SCHEMA["retired"]},
    )


def test_split_pool() -> None:
    window = Window(dt.datetime(2026, 3, 1, tzinfo=UTC), dt.datetime(2026, 3, 8, tzinfo=UTC))
    catalog = _catalog(
        ("old", "2025-01-01", None),                       # in
        ("at-start", "2026-03-01", None),                  # released exactly at the start: in
        ("lasts", "2025-01-01", "2026-03-08"),             # retires exactly at the end: in
        ("future", "2026-03-02", None),                    # arrives mid-stage: out
        ("gone", "2025-01-01", "2026-02-01"),              # retired before the stage: out
        ("mid", "2025-01-01", "2026-03-05"),               # retires mid-stage: out
    )
    pool, excluded = split_pool(catalog, window)
    assert sorted(pool["model"]) == ["at-start", "lasts", "old"]
    reasons = dict(excluded.iter_rows())
    assert reasons == {
        "future": "not released until 2026-03-02",
        "gone": "retired on 2026-02-01",
        "mid": "retires mid-stage on 2026-03-05",
    }


def test_split_pool_of_sample(sample_catalog: Path) -> None:
    window = Window(dt.datetime(2026, 11, 16, 2, tzinfo=UTC), dt.datetime(2026, 11, 23, 2, tzinfo=UTC))
    pool, excluded = split_pool(load_catalog(sample_catalog), window)
    assert pool.height == 8
    assert dict(excluded.iter_rows()) == {
        "atlas-lite-1": "retired on 2026-09-30", "atlas-pro-1": "retired on 2026-10-31",
    }
    # A window that cirrus-large (retired 2026-12-15) does not outlast.
    later = Window(dt.datetime(2026, 12, 10, tzinfo=UTC), dt.datetime(2026, 12, 17, tzinfo=UTC))
    _, excluded = split_pool(load_catalog(sample_catalog), later)
    assert dict(excluded.iter_rows())["cirrus-large"] == "retires mid-stage on 2026-12-15"
