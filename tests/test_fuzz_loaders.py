"""Fuzzing the loaders: random small files (random columns, types, nulls, NaN/inf, odd strings,
calendar edges, unknown time zones) either load or fail with a one-line ``StagerouteError``.

Nothing else may escape: no Polars or PyArrow exception, no OverflowError, no Rust panic. Bounded
(a few hundred examples per loader, no deadline) and derandomized by conftest's profile, so it
runs in CI; ``HYPOTHESIS_PROFILE=explore`` draws new examples.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import AS_OF, CATALOG_CSV, small_logs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stageroute.errors import StagerouteError
from stageroute.inputs.catalog import load_catalog
from stageroute.inputs.logs import summarise_logs
from stageroute.inputs.outcomes import load_outcomes

UTC = dt.UTC
TEXTS = ["alpha", "beta", "gamma", "ALPHA", " beta", "", " ", "a\nb", "\x00", "é", "zeta",
         "x" * 300, "2026-01-01", "0001-01-01T00:00:00+01:00", "9999-12-31", "nan", "1e400", "-1"]
FLOATS = [0.0, 0.5, 1.0, -0.0, -1.0, 1.5, float("nan"), float("inf"), float("-inf"), 1e200,
          1.7e308, 1e-320, 5e-324, 0.001]
INTS = [0, 1, -1, 2**31, 2**62, -(2**63), 7]
MOMENTS = [dt.datetime(2026, 2, 27, tzinfo=UTC), dt.datetime(1, 1, 1, tzinfo=UTC),
           dt.datetime(9999, 12, 31, 23, tzinfo=UTC), dt.datetime(2262, 4, 11, tzinfo=UTC),
           dt.datetime(1677, 9, 22, tzinfo=UTC), dt.datetime(2026, 3, 1, tzinfo=UTC)]

# (Arrow type, the values to draw from); None is always possible.
TYPES: list[tuple[pa.DataType, list[Any]]] = [
    (pa.string(), TEXTS),
    (pa.large_string(), TEXTS),
    (pa.float64(), FLOATS),
    (pa.float32(), [0.0, 0.5, 1.0, -1.0, float("nan"), float("inf"), 3e38]),
    (pa.int64(), INTS),
    (pa.uint8(), [0, 1, 2, 255]),
    (pa.bool_(), [True, False]),
    (pa.date32(), [dt.date(2026, 1, 1), dt.date(1, 1, 1), dt.date(9999, 12, 31)]),
    (pa.timestamp("us", "UTC"), MOMENTS),
    (pa.timestamp("us"), [m.replace(tzinfo=None) for m in MOMENTS]),
    (pa.timestamp("ns", "UTC"), MOMENTS[:1] + MOMENTS[3:]),
    (pa.timestamp("ms", "Asia/Tokyo"), MOMENTS),
    (pa.timestamp("us", "+05:30"), MOMENTS[:1]),
    (pa.timestamp("us", "Mars/Olympus"), MOMENTS[:1]),
    (pa.null(), [None]),
    (pa.dictionary(pa.int32(), pa.string()), ["alpha", "beta", "a\nb"]),
    (pa.list_(pa.float64()), [[0.5], []]),
    (pa.struct([("x", pa.float64())]), [{"x": 0.5}]),
    (pa.decimal128(10, 2), [0, 1]),
    (pa.binary(), [b"alpha", b"\xff"]),
]
LOG_NAMES = ["request_id", "timestamp", "model", "reward", "cost", "input_tokens", "output_tokens",
             "segment", "propensity", "__row__", "__file__", "__feedback__", "extra"]
CATALOG_NAMES = ["model", "released", "retired", "max_share", "usd_per_mtok_in",
                 "usd_per_mtok_out", "provider", "extra"]
OUTCOME_NAMES = ["sample_id", "model", "reward", "cost", "row", "eval_name"]
FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _value(draw: st.DrawFn, dtype: pa.DataType, pool: list[Any]) -> Any:
    if draw(st.integers(0, 5)) == 0:
        return None
    value = draw(st.sampled_from(pool))
    if pa.types.is_decimal(dtype) and value is not None:
        from decimal import Decimal

        return Decimal(value)
    return value


@st.composite
def tables(draw: st.DrawFn, names: list[str], rows: int = 6) -> pa.Table:
    """A small Arrow table over some of ``names`` (repeats allowed), random types and values."""
    chosen = draw(st.lists(st.sampled_from(names), min_size=0, max_size=len(names)))
    if draw(st.booleans()):  # often the names that matter, so that values get checked too
        chosen = list(dict.fromkeys(names[:4] + chosen))
    height = draw(st.integers(0, rows))
    arrays, fields = [], []
    for name in chosen:
        dtype, pool = draw(st.sampled_from(TYPES))
        values = [_value(draw, dtype, pool) for _ in range(height)]
        try:
            arrays.append(pa.array(values, type=dtype))
        except (pa.ArrowException, OverflowError, ValueError, TypeError):
            arrays.append(pa.nulls(height, type=dtype))
        fields.append(pa.field(name, dtype))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _fails_cleanly(load: Callable[[], object]) -> None:
    """``load`` returns, or raises a StagerouteError whose message is one line."""
    try:
        load()
    except StagerouteError as exc:
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message, message


def _write(table: pa.Table, path: Path) -> None:
    try:
        pq.write_table(table, path)
    except (pa.ArrowException, OSError):  # some types cannot go to Parquet: write something else
        path.write_bytes(b"PAR1 not Parquet after all")


@FUZZ
@given(first=tables(LOG_NAMES), second=tables(LOG_NAMES), split=st.booleans(),
       strict=st.booleans())
def test_log_loader_never_crashes(tmp_path_factory: pytest.TempPathFactory, first: pa.Table,
                                  second: pa.Table, split: bool, strict: bool) -> None:
    tmp = tmp_path_factory.mktemp("logs")
    (tmp / "catalog.csv").write_text(CATALOG_CSV)
    catalog = load_catalog(tmp / "catalog.csv")
    (tmp / "logs").mkdir()
    _write(first, tmp / "logs" / "a.parquet")
    if split:
        _write(second, tmp / "logs" / "b.parquet")
    _fails_cleanly(lambda: summarise_logs(tmp / "logs", catalog, AS_OF, strict=strict,
                                          full_check=strict))


@FUZZ
@given(feedback=tables(["request_id", "reward", "__file__", "__problem__", "extra"]))
def test_feedback_loader_never_crashes(tmp_path_factory: pytest.TempPathFactory,
                                       feedback: pa.Table) -> None:
    tmp = tmp_path_factory.mktemp("feedback")
    (tmp / "catalog.csv").write_text(CATALOG_CSV)
    small_logs().drop("reward").write_parquet(tmp / "logs.parquet")
    _write(feedback, tmp / "fb.parquet")
    catalog = load_catalog(tmp / "catalog.csv")
    _fails_cleanly(lambda: summarise_logs(tmp / "logs.parquet", catalog, AS_OF,
                                          feedback=tmp / "fb.parquet"))


def _rows(table: pa.Table) -> list[list[Any]]:
    """The table's rows as Python values (a time zone Python does not know: epoch integers)."""
    columns = []
    for column in table.columns:
        try:
            columns.append(column.to_pylist())
        except (pa.ArrowException, OverflowError, ValueError):
            columns.append(column.cast(pa.int64()).to_pylist())
    return [list(row) for row in zip(*columns, strict=True)] if columns else []


def _records(table: pa.Table) -> str:
    """The table as JSON records (values that JSON cannot hold become strings)."""
    rows = [{k: v if isinstance(v, bool | int | float | str | type(None)) else str(v)
             for k, v in zip(table.column_names, row, strict=True)} for row in _rows(table)]
    return json.dumps(rows, allow_nan=True)


def _csv(table: pa.Table) -> str:
    """The table as CSV text, written by hand (so that any value, even a bad one, gets in)."""
    lines = [",".join(table.column_names)]
    lines += [",".join("" if v is None else str(v).replace(",", ";").replace("\n", " ") for v in row)
              for row in _rows(table)]
    return "\n".join(lines) + "\n"


@FUZZ
@given(table=tables(CATALOG_NAMES), form=st.sampled_from(["parquet", "csv", "json"]))
def test_catalog_loader_never_crashes(tmp_path_factory: pytest.TempPathFactory, table: pa.Table,
                                      form: str) -> None:
    tmp = tmp_path_factory.mktemp("catalog")
    path = tmp / f"catalog.{form}"
    if form == "parquet":
        _write(table, path)
    elif form == "json":
        path.write_text(_records(table))
    else:
        path.write_text(_csv(table))
    _fails_cleanly(lambda: load_catalog(path))


@FUZZ
@given(table=tables(OUTCOME_NAMES, rows=8), form=st.sampled_from(["parquet", "csv"]))
def test_outcomes_loader_never_crashes(tmp_path_factory: pytest.TempPathFactory, table: pa.Table,
                                       form: str) -> None:
    tmp = tmp_path_factory.mktemp("outcomes")
    path = tmp / f"outcomes.{form}"
    if form == "parquet":
        _write(table, path)
    else:
        path.write_text(_csv(table))
    _fails_cleanly(lambda: load_outcomes(path))
