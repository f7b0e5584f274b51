"""The outcomes loader: valid tables load, every bad one fails with file, column, row and value."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stageroute.errors import BadDataError, ExitCode, InputMissingError
from stageroute.inputs.outcomes import OUTCOMES_SCHEMA, import_routerbench, load_outcomes, to_matrix

MODELS = ("alpha", "beta", "gamma")


def outcomes(samples: int = 4) -> pl.DataFrame:
    """A complete table: every sample x every model."""
    rows = [(f"s{s}", m, ((s + j) % 4) / 3, 0.001 * (j + 1))
            for s in range(samples) for j, m in enumerate(MODELS)]
    return pl.DataFrame(rows, schema=list(OUTCOMES_SCHEMA), orient="row")


def _at(column: str, value: object, row: int = 4) -> Callable[[pl.DataFrame], pl.DataFrame]:
    """Set ``column`` to ``value`` in row ``row`` (sample s1, model beta)."""
    def mutate(frame: pl.DataFrame) -> pl.DataFrame:
        hit = pl.int_range(pl.len()) == row
        dtype = frame.schema[column]
        return frame.with_columns(pl.when(hit).then(pl.lit(value, dtype)).otherwise(pl.col(column))
                                  .alias(column))
    return mutate


Write = Callable[[Path], Path]


def _parquet(mutate: Callable[[pl.DataFrame], pl.DataFrame]) -> Write:
    def write(tmp: Path) -> Path:
        mutate(outcomes()).write_parquet(tmp / "o.parquet")
        return tmp / "o.parquet"
    return write


def _csv(text: str) -> Write:
    def write(tmp: Path) -> Path:
        (tmp / "o.csv").write_text(text)
        return tmp / "o.csv"
    return write


def _special(make: Callable[[Path], object]) -> Write:
    def write(tmp: Path) -> Path:
        make(tmp / "o.parquet")
        return tmp / "o.parquet"
    return write


def _zoned(path: Path) -> None:
    table = outcomes().to_arrow().append_column("at", pa.array([0] * 12, pa.timestamp("us", "+05:30")))
    pq.write_table(table, path)


LATE_TEXT = "sample_id,model,reward,cost\n" + "".join(
    f"s{i},alpha,0.5,0.1\n" for i in range(300)) + "sx,alpha,good,0.1\n"

INVALID = [
    pytest.param(_parquet(lambda f: f.drop("cost")), BadDataError,
                 ["o.parquet", "no column 'cost'", "sample_id, model, reward"], id="missing-column"),
    pytest.param(_parquet(_at("model", None)), BadDataError,
                 ["o.parquet", "column 'model' is empty", "row 4", "'s1'"], id="null-model"),
    pytest.param(_parquet(_at("sample_id", None)), BadDataError,
                 ["o.parquet", "column 'sample_id' is empty", "row 4", "'beta'"], id="null-sample-id"),
    pytest.param(_parquet(lambda f: f.with_columns(pl.struct("reward").alias("reward"))), BadDataError,
                 ["o.parquet", "column 'reward'", "Struct", "a number"], id="reward-struct"),
    pytest.param(_parquet(lambda f: f.with_columns(pl.col("reward") > 0.5)), BadDataError,
                 ["o.parquet", "column 'reward'", "Boolean"], id="reward-boolean"),
    pytest.param(_parquet(lambda f: f.with_columns(reward=pl.lit(dt.date(2026, 1, 1)))), BadDataError,
                 ["o.parquet", "column 'reward'", "Date"], id="reward-date"),
    pytest.param(_parquet(lambda f: f.with_columns(pl.col("sample_id").cast(pl.Binary))),
                 BadDataError, ["o.parquet", "column 'sample_id'", "Binary"], id="binary-sample-id"),
    pytest.param(_parquet(_at("reward", 1.5)), BadDataError,
                 ["o.parquet", "column 'reward'", "outside [0, 1]", "1.5", "row 4"], id="reward-above-1"),
    pytest.param(_parquet(_at("cost", float("nan"))), BadDataError,
                 ["o.parquet", "column 'cost'", "not finite", "nan"], id="cost-nan"),
    pytest.param(_parquet(_at("cost", 1e200)), BadDataError,
                 ["o.parquet", "column 'cost'", "1e+200", "row 4", "1e+100"], id="cost-1e200"),
    pytest.param(_parquet(lambda f: f.with_columns(cost=pl.lit(1.7e308))), BadDataError,
                 ["o.parquet", "column 'cost'", "1.7e+308"], id="cost-near-float-max"),
    pytest.param(_parquet(lambda f: f.with_columns(cost=pl.lit(1e-320))), BadDataError,
                 ["o.parquet", "column 'cost'", "1e-320", "1e-100"], id="cost-subnormal"),
    pytest.param(_parquet(lambda f: pl.concat([f, f.head(1)])), BadDataError,
                 ["o.parquet", "(sample_id 's0', model 'alpha') twice"], id="duplicate-pair"),
    pytest.param(_parquet(lambda f: f.with_columns(row=pl.lit(9)).pipe(_at("reward", 2.0))),
                 BadDataError, ["o.parquet", "column 'reward'", "row 4"], id="user-column-named-row"),
    pytest.param(_parquet(lambda f: f.with_columns(pl.col("model").replace("beta", "be\nta"))
                          .pipe(_at("reward", 2.0))), BadDataError,
                 ["o.parquet", "'be\\nta'"], id="newline-in-a-model-id"),
    pytest.param(_csv("sample_id,model,reward,cost,model\ns1,alpha,0.5,0.1,x\n"), BadDataError,
                 ["o.csv", "names the column 'model' twice"], id="duplicated-csv-header"),
    pytest.param(_csv(LATE_TEXT), BadDataError, ["o.csv", "column 'reward'", "String"],
                 id="text-after-the-first-rows"),
    pytest.param(_csv("sample_id,model,reward,cost\n"), BadDataError, ["o.csv", "no rows"],
                 id="header-only"),
    pytest.param(_special(_zoned), BadDataError, ["o.parquet", "column 'at'", "'+05:30'"],
                 id="unknown-time-zone"),
    pytest.param(_special(os.mkfifo), InputMissingError, ["o.parquet", "named pipe", "--outcomes"],
                 id="fifo"),
    pytest.param(_special(lambda p: p.mkdir()), InputMissingError,
                 ["o.parquet", "is a directory", "--outcomes"], id="directory"),
    pytest.param(_special(lambda p: os.symlink("/dev/zero", p)), InputMissingError,
                 ["o.parquet", "a device"], id="device"),
    pytest.param(_special(lambda p: None), InputMissingError, ["o.parquet", "does not exist"],
                 id="missing"),
]


@pytest.mark.parametrize(("write", "error", "words"), INVALID)
def test_invalid_outcomes(tmp_path: Path, write: Write, error: type, words: list[str]) -> None:
    path = write(tmp_path)
    with pytest.raises(error) as info:
        load_outcomes(path)
    expected = ExitCode.INPUT_MISSING if error is InputMissingError else ExitCode.BAD_DATA
    assert info.value.exit_code == expected
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert "\n" not in message


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_valid_outcomes_load_and_pivot(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"o{suffix}"
    frame = outcomes().with_columns(eval_name=pl.lit("mmlu"))
    frame.write_parquet(path) if suffix == ".parquet" else frame.write_csv(path)
    loaded = load_outcomes(path)
    assert loaded.select(list(OUTCOMES_SCHEMA)).schema == pl.Schema(OUTCOMES_SCHEMA)
    matrix = to_matrix(loaded)
    assert matrix.models == MODELS
    assert matrix.samples == ("s0", "s1", "s2", "s3")
    np.testing.assert_allclose(matrix.cost[0], [0.001, 0.002, 0.003])
    assert matrix.reward[1, 2] == pytest.approx(((1 + 2) % 4) / 3)


def test_integer_ids_and_zero_costs_are_fine(tmp_path: Path) -> None:
    frame = outcomes().with_columns(pl.col("sample_id").str.slice(1).cast(pl.Int64),
                                    cost=pl.lit(0.0))
    frame.write_parquet(tmp_path / "o.parquet")
    assert load_outcomes(tmp_path / "o.parquet")["sample_id"].to_list()[:3] == ["0", "0", "0"]


def test_routerbench_source_that_is_not_a_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "wide.csv")
    with pytest.raises(InputMissingError, match="named pipe"):
        import_routerbench(tmp_path / "wide.csv")
