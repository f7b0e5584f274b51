"""The log loader: every bad log fails with a message naming file, column and value; sources agree."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import AS_OF, WriteLogs, small_logs
from polars.testing import assert_frame_equal

from stageroute.errors import BadDataError, ExitCode, InputMissingError, InsufficientDataError
from stageroute.estimate.stats import compute_stats
from stageroute.inputs.catalog import load_catalog
from stageroute.inputs.logs import find_logs, summarise_logs
from stageroute.inputs.sanity import check_sufficient

Setup = Callable[[Path, WriteLogs], tuple[Path | str, Path, dict[str, Any]]]


def _set(column: str, value: Any, at: str = "r0005") -> Callable[[pl.DataFrame], pl.DataFrame]:
    """Set ``column`` to ``value`` in the row whose request_id is ``at``."""
    def mutate(frame: pl.DataFrame) -> pl.DataFrame:
        dtype = frame.schema[column]
        hit = pl.col("request_id") == at
        return frame.with_columns(pl.when(hit).then(pl.lit(value, dtype)).otherwise(pl.col(column))
                                  .alias(column))
    return mutate


def _logs(mutate: Callable[[pl.DataFrame], pl.DataFrame]) -> Setup:
    def setup(tmp: Path, write: WriteLogs) -> tuple[Path | str, Path, dict[str, Any]]:
        logs, catalog = write(mutate)
        return logs, catalog, {}
    return setup


def _corrupt(tmp: Path, write: WriteLogs) -> tuple[Path | str, Path, dict[str, Any]]:
    _, catalog = write()
    bad = tmp / "broken.parquet"
    bad.write_bytes(b"PAR1 this is not a parquet file" * 3)
    return bad, catalog, {}


def _missing(tmp: Path, write: WriteLogs) -> tuple[Path | str, Path, dict[str, Any]]:
    _, catalog = write()
    return tmp / "absent.parquet", catalog, {}


def _empty_dir(tmp: Path, write: WriteLogs) -> tuple[Path | str, Path, dict[str, Any]]:
    _, catalog = write()
    (tmp / "hollow").mkdir()
    return tmp / "hollow", catalog, {}


def _glob_nothing(tmp: Path, write: WriteLogs) -> tuple[Path | str, Path, dict[str, Any]]:
    _, catalog = write()
    return str(tmp / "nowhere" / "*.parquet"), catalog, {}


def _feedback(frame: pl.DataFrame) -> Setup:
    def setup(tmp: Path, write: WriteLogs) -> tuple[Path | str, Path, dict[str, Any]]:
        logs, catalog = write(lambda f: f.drop("reward"))
        frame.write_parquet(tmp / "feedback.parquet")
        return logs, catalog, {"feedback": tmp / "feedback.parquet"}
    return setup


def _mixed_files(tmp: Path, write: WriteLogs) -> tuple[Path | str, Path, dict[str, Any]]:
    _, catalog = write()
    (tmp / "parts").mkdir()
    small_logs().head(15).write_parquet(tmp / "parts" / "a.parquet")
    small_logs().tail(15).with_columns(pl.col("cost").cast(pl.String)).write_parquet(
        tmp / "parts" / "b.parquet")
    return tmp / "parts", catalog, {}


def _bad_second_file(tmp: Path, write: WriteLogs) -> tuple[Path | str, Path, dict[str, Any]]:
    _, catalog = write()
    (tmp / "parts").mkdir()
    small_logs().head(15).write_parquet(tmp / "parts" / "a.parquet")
    _set("reward", 7.0, at="r0020")(small_logs().tail(15)).write_parquet(tmp / "parts" / "b.parquet")
    return str(tmp / "parts" / "*.parquet"), catalog, {}


def _unpriced(tmp: Path, write: WriteLogs) -> tuple[Path | str, Path, dict[str, Any]]:
    logs, _ = write(lambda f: f.drop("cost"))
    catalog = tmp / "unpriced.csv"
    catalog.write_text("model,released\nalpha,2026-01-01\nbeta,2026-01-01\ngamma,2026-01-01\n")
    return logs, catalog, {}


def _strict(setup: Setup) -> Setup:
    """Unknown models are an error with strict (--strict)."""
    def checked(tmp: Path, write: WriteLogs) -> tuple[Path | str, Path, dict[str, Any]]:
        logs, catalog, kwargs = setup(tmp, write)
        return logs, catalog, {**kwargs, "strict": True}
    return checked


def _checking_ids(setup: Setup) -> Setup:
    """Request-id uniqueness costs a hash of every id: it runs with full_check (or feedback)."""
    def checked(tmp: Path, write: WriteLogs) -> tuple[Path | str, Path, dict[str, Any]]:
        logs, catalog, kwargs = setup(tmp, write)
        return logs, catalog, {**kwargs, "full_check": True}
    return checked


def _parts(*frames: pl.DataFrame | pa.Table, glob: bool = False) -> Setup:
    """Write ``frames`` as a.parquet, b.parquet, ... of one directory (or a glob over them)."""
    def setup(tmp: Path, write: WriteLogs) -> tuple[Path | str, Path, dict[str, Any]]:
        _, catalog = write()
        folder = tmp / "parts"
        folder.mkdir()
        for name, frame in zip("abcdefgh", frames, strict=False):
            table = frame.to_arrow() if isinstance(frame, pl.DataFrame) else frame
            pq.write_table(table, folder / f"{name}.parquet")
        return (str(folder / "*.parquet") if glob else folder), catalog, {}
    return setup


def _arrow(table: pa.Table, statistics: bool = True) -> Setup:
    """A log written by PyArrow (types Polars would not write)."""
    def setup(tmp: Path, write: WriteLogs) -> tuple[Path | str, Path, dict[str, Any]]:
        _, catalog = write()
        pq.write_table(table, tmp / "arrow.parquet", write_statistics=statistics)
        return tmp / "arrow.parquet", catalog, {}
    return setup


def _zone(zone: str) -> pa.Table:
    table = small_logs().to_arrow()
    stamps = table.column("timestamp").cast(pa.timestamp("us")).cast(pa.int64())
    return table.set_column(1, "timestamp", stamps.cast(pa.timestamp("us", zone)))


def _priced_catalog(tmp: Path, write: WriteLogs) -> tuple[Path | str, Path, dict[str, Any]]:
    """Costs priced from tokens overflow what can be averaged: 1e90 tokens x 1e20 $/Mtok."""
    logs, _ = write(lambda f: _set("input_tokens", 1e90)(
        f.drop("cost").with_columns(pl.col("input_tokens").cast(pl.Float64))))
    catalog = tmp / "priced.csv"
    catalog.write_text("model,released,usd_per_mtok_in,usd_per_mtok_out\nalpha,2026-01-01,1,2\n"
                       "beta,2026-01-01,1,2\ngamma,2026-01-01,1e20,2\n")
    return logs, catalog, {}


def _copied(tmp: Path, write: WriteLogs) -> tuple[Path | str, Path, dict[str, Any]]:
    logs, catalog = write()
    (tmp / "parts").mkdir()
    for name in ("a.parquet", "b.parquet"):
        (tmp / "parts" / name).write_bytes(logs.read_bytes())
    return tmp / "parts", catalog, {}


def _mixed_layouts(tmp: Path, write: WriteLogs) -> tuple[Path | str, Path, dict[str, Any]]:
    _, catalog = write()
    for folder, frame in (("day=1", small_logs().head(15)), ("other", small_logs().tail(15))):
        (tmp / "hive" / folder).mkdir(parents=True)
        frame.write_parquet(tmp / "hive" / folder / "p.parquet")
    return tmp / "hive", catalog, {}


def _fifo(kind: str) -> Setup:
    def setup(tmp: Path, write: WriteLogs) -> tuple[Path | str, Path, dict[str, Any]]:
        logs, catalog = write(lambda f: f.drop("reward") if kind == "feedback" else f)
        os.mkfifo(tmp / "pipe.parquet")
        if kind == "feedback":
            return logs, catalog, {"feedback": tmp / "pipe.parquet"}
        return tmp / "pipe.parquet", catalog, {}
    return setup


def _undecodable_name(tmp: Path, write: WriteLogs) -> tuple[Path | str, Path, dict[str, Any]]:
    """A file whose name is not UTF-8 (Python holds it as surrogates, Polars cannot open it)."""
    logs, catalog = write()
    (tmp / "parts").mkdir()
    name = os.path.join(os.fsencode(tmp / "parts"), b"caf\xe9.parquet")
    with open(name, "wb") as handle:
        handle.write(logs.read_bytes())
    return tmp / "parts", catalog, {}


def _corrupt_page(tmp: Path, write: WriteLogs) -> tuple[Path | str, Path, dict[str, Any]]:
    """A valid footer over a data page overwritten with garbage."""
    logs, catalog = write()
    data = bytearray(logs.read_bytes())
    data[200:260] = b"\xff" * 60
    logs.write_bytes(bytes(data))
    return logs, catalog, {}


def _with_duplicate_column() -> pa.Table:
    table = small_logs().to_arrow()
    return table.append_column("model", pa.array(["x"] * table.num_rows))


HEAD, TAIL = small_logs().head(15), small_logs().tail(15)


FEEDBACK = small_logs().select("request_id", "reward").drop_nulls()

INVALID = [
    pytest.param(_logs(lambda f: f.drop("model")), BadDataError,
                 ["logs.parquet", "no column 'model'", "request_id, timestamp", "add it"],
                 id="missing-column"),
    pytest.param(_logs(lambda f: f.drop("cost", "input_tokens")), BadDataError,
                 ["logs.parquet", "no column 'cost'", "tokens"], id="no-cost-no-tokens"),
    pytest.param(_logs(lambda f: f.with_columns(pl.col("reward").cast(pl.String))), BadDataError,
                 ["logs.parquet", "column 'reward'", "type String", "a number in [0, 1]"],
                 id="reward-as-string"),
    pytest.param(_logs(lambda f: f.with_columns(pl.col("timestamp").cast(pl.String))), BadDataError,
                 ["logs.parquet", "column 'timestamp'", "type String", "datetime"],
                 id="timestamp-as-string"),
    pytest.param(_logs(_set("reward", 1.5)), BadDataError,
                 ["logs.parquet", "column 'reward'", "outside [0, 1]", "1.5", "row 5", "'r0005'"],
                 id="reward-above-1"),
    pytest.param(_logs(_set("reward", -0.25)), BadDataError,
                 ["logs.parquet", "column 'reward'", "outside [0, 1]", "-0.25", "'r0005'"],
                 id="reward-below-0"),
    pytest.param(_logs(_set("reward", float("nan"))), BadDataError,
                 ["logs.parquet", "column 'reward'", "NaN", "'r0005'", "use null"], id="reward-nan"),
    pytest.param(_logs(_set("cost", -0.01)), BadDataError,
                 ["logs.parquet", "column 'cost'", "negative", "-0.01", "'r0005'"], id="negative-cost"),
    pytest.param(_logs(_set("cost", float("nan"))), BadDataError,
                 ["logs.parquet", "column 'cost'", "not finite", "nan", "'r0005'"], id="nan-cost"),
    pytest.param(_logs(_set("cost", None)), BadDataError,
                 ["logs.parquet", "column 'cost'", "is empty", "'r0005'"], id="null-cost"),
    pytest.param(_logs(_set("model", None)), BadDataError,
                 ["logs.parquet", "column 'model'", "is empty", "row 5", "'r0005'"], id="null-model"),
    pytest.param(_logs(_set("request_id", None, at="r0003")), BadDataError,
                 ["logs.parquet", "column 'request_id'", "is empty", "row 3"], id="null-request-id"),
    pytest.param(_checking_ids(_logs(_set("request_id", "r0004"))), BadDataError,
                 ["logs.parquet", "column 'request_id'", "'r0004' 2 times", "unique"],
                 id="duplicate-request-id"),
    pytest.param(_logs(lambda f: f.head(0)), BadDataError,
                 ["logs.parquet", "no rows"], id="empty-log"),
    pytest.param(_logs(lambda f: f.with_columns(propensity=pl.lit(0.0))), BadDataError,
                 ["logs.parquet", "column 'propensity'", "(0, 1]", "0.0"], id="propensity-0"),
    pytest.param(_logs(lambda f: f.with_columns(propensity=pl.lit(1.2))), BadDataError,
                 ["logs.parquet", "column 'propensity'", "(0, 1]", "1.2"], id="propensity-above-1"),
    pytest.param(_logs(_set("input_tokens", -3)), BadDataError,
                 ["logs.parquet", "column 'input_tokens'", "negative", "-3"], id="negative-tokens"),
    pytest.param(_corrupt, BadDataError,
                 ["broken.parquet", "cannot be read as Parquet", "really Parquet"], id="corrupt-parquet"),
    pytest.param(_missing, InputMissingError,
                 ["absent.parquet", "does not exist", "--logs"], id="missing-file"),
    pytest.param(_empty_dir, InputMissingError,
                 ["hollow", "no .parquet file", "--logs"], id="empty-directory"),
    pytest.param(_glob_nothing, InputMissingError,
                 ["nowhere", "*.parquet", "matches no file", "--logs"], id="glob-matches-nothing"),
    pytest.param(_mixed_files, BadDataError,
                 ["b.parquet", "column 'cost'", "String", "a.parquet", "Float64", "same column types"],
                 id="files-with-different-types"),
    pytest.param(_bad_second_file, BadDataError,
                 ["b.parquet", "column 'reward'", "7.0", "row 5", "'r0020'"], id="bad-row-in-second-file"),
    pytest.param(_feedback(pl.concat([FEEDBACK, FEEDBACK.head(1)])), BadDataError,
                 ["feedback /", "feedback.parquet", "column 'request_id'", "'r0001' 2 times"],
                 id="feedback-duplicate-request-id"),
    pytest.param(_feedback(FEEDBACK.drop("reward")), BadDataError,
                 ["feedback /", "feedback.parquet", "no column 'reward'", "request_id and reward"],
                 id="feedback-missing-column"),
    pytest.param(_feedback(_set("reward", 2.0, at="r0001")(FEEDBACK)), BadDataError,
                 ["feedback /", "feedback.parquet", "column 'reward'", "outside [0, 1]", "2.0", "'r0001'"],
                 id="feedback-reward-outside"),
    pytest.param(_feedback(_set("reward", float("nan"), at="r0001")(FEEDBACK)), BadDataError,
                 ["feedback /", "feedback.parquet", "column 'reward' is NaN", "'r0001'"],
                 id="feedback-reward-nan"),
    pytest.param(_unpriced, BadDataError,
                 ["logs.parquet", "no column 'cost'", "'alpha'", "usd_per_mtok_in", "add its prices"],
                 id="tokens-without-prices"),
    # Classes of the hostile-input probe (issue 7): each failed on the code before it.
    pytest.param(_parts(HEAD, TAIL.with_columns(pl.col("timestamp").cast(pl.Datetime("ns", "UTC")))),
                 BadDataError, ["b.parquet", "column 'timestamp'", "'ns'", "a.parquet",
                                "same column types"], id="timestamp-units-differ"),
    pytest.param(_parts(HEAD, TAIL.with_columns(pl.col("timestamp").cast(pl.Datetime("ms", "UTC"))),
                        glob=True),
                 BadDataError, ["b.parquet", "column 'timestamp'", "'ms'", "a.parquet"],
                 id="timestamp-units-differ-glob"),
    pytest.param(_parts(HEAD, TAIL.with_columns(pl.col("timestamp").dt.convert_time_zone("Asia/Tokyo"))),
                 BadDataError, ["b.parquet", "column 'timestamp'", "Asia/Tokyo", "a.parquet"],
                 id="timestamp-zones-differ"),
    pytest.param(_parts(HEAD, TAIL.with_columns(pl.col("timestamp").dt.replace_time_zone(None))),
                 BadDataError, ["b.parquet", "column 'timestamp'", "time_zone=None", "'UTC'"],
                 id="naive-and-aware-timestamps"),
    pytest.param(_parts(HEAD, TAIL.with_columns(propensity=pl.lit(5.0))), BadDataError,
                 ["b.parquet", "column 'propensity'", "(0, 1]", "5.0", "'r0015'"],
                 id="bad-value-in-a-column-the-first-file-lacks"),
    pytest.param(_parts(HEAD.drop("cost"), _set("cost", -1.0, at="r0020")(TAIL)), BadDataError,
                 ["a.parquet", "no column 'cost'", "other files"],
                 id="cost-column-only-in-a-later-file"),
    pytest.param(_parts(HEAD, TAIL.with_columns(segment=pl.lit(1.5))), BadDataError,
                 ["b.parquet", "column 'segment'", "Float64"], id="later-file-mistyped-column"),
    pytest.param(_logs(lambda f: _set("reward", 1.5)(f.with_columns(__file__=pl.lit(7)))),
                 BadDataError, ["logs.parquet", "column 'reward'", "1.5", "row 5", "'r0005'"],
                 id="user-column-named-__file__"),
    pytest.param(_logs(lambda f: _set("reward", 1.5)(f.with_columns(__row__=pl.lit("x")))),
                 BadDataError, ["logs.parquet", "column 'reward'", "1.5", "row 5", "'r0005'"],
                 id="user-column-named-__row__"),
    pytest.param(_logs(_set("cost", 1e200)), BadDataError,
                 ["logs.parquet", "column 'cost'", "above 1e+100", "1e+200", "row 5", "'r0005'"],
                 id="cost-1e200"),
    pytest.param(_arrow(_set("cost", 1e200)(small_logs()).to_arrow(), statistics=False),
                 BadDataError, ["arrow.parquet", "column 'cost'", "1e+200", "row 5"],
                 id="cost-1e200-without-statistics"),
    pytest.param(_logs(lambda f: f.with_columns(cost=pl.lit(1.7e308))), BadDataError,
                 ["logs.parquet", "column 'cost'", "1.7e+308", "row 0"], id="cost-near-float-max"),
    pytest.param(_priced_catalog, BadDataError,
                 ["logs.parquet", "'r0005'", "'gamma'", "priced from its tokens", "1e+20",
                  "above 1e+100", "catalog prices"], id="token-price-arithmetic-too-large"),
    pytest.param(_logs(lambda f: _set("input_tokens", 1e300)(
                     f.with_columns(pl.col("input_tokens").cast(pl.Float64)))), BadDataError,
                 ["logs.parquet", "column 'input_tokens'", "1e+300", "row 5"], id="tokens-1e300"),
    pytest.param(_strict(_logs(_set("model", "bad\nmodel"))), BadDataError,
                 ["logs.parquet", "column 'model'", "'bad\\nmodel'", "--strict"],
                 id="newline-in-a-model-id"),
    pytest.param(_checking_ids(_logs(lambda f: _set("request_id", "r\n5", at="r0006")(
                     _set("request_id", "r\n5")(f)))), BadDataError,
                 ["column 'request_id'", "'r\\n5' 2 times"], id="newline-in-a-request-id"),
    pytest.param(_arrow(_zone("+05:30")), BadDataError,
                 ["arrow.parquet", "column 'timestamp'", "'+05:30'", "UTC"], id="offset-time-zone"),
    pytest.param(_arrow(_zone("Mars/Olympus")), BadDataError,
                 ["arrow.parquet", "'Mars/Olympus'", "named zone"], id="unknown-time-zone"),
    pytest.param(_arrow(_with_duplicate_column()), BadDataError,
                 ["arrow.parquet", "two columns named 'model'"], id="duplicate-column-names"),
    pytest.param(_copied, BadDataError, ["b.parquet", "a.parquet", "copy", "count twice"],
                 id="copied-file"),
    pytest.param(_mixed_layouts, BadDataError, ["hive", "mixes partition layouts", "(day)", "(none)"],
                 id="mixed-partition-layouts"),
    pytest.param(_corrupt_page, BadDataError, ["logs.parquet", "cannot be read as Parquet"],
                 id="corrupt-data-page"),
    pytest.param(_undecodable_name, InputMissingError, ["parts/caf", "not valid UTF-8", "rename"],
                 id="file-name-not-utf-8"),
    pytest.param(_fifo("logs"), InputMissingError, ["pipe.parquet", "named pipe", "--logs"],
                 id="fifo-as-logs"),
    pytest.param(_fifo("feedback"), InputMissingError,
                 ["feedback", "pipe.parquet", "named pipe", "--feedback"], id="fifo-as-feedback"),
]


@pytest.mark.parametrize(("setup", "error", "words"), INVALID)
def test_invalid_logs(tmp_path: Path, write_logs: WriteLogs, setup: Setup, error: type,
                      words: list[str]) -> None:
    logs, catalog_path, kwargs = setup(tmp_path, write_logs)
    catalog = load_catalog(catalog_path)
    with pytest.raises(error) as info:
        summarise_logs(logs, catalog, AS_OF, **kwargs)
    expected_code = ExitCode.INPUT_MISSING if error is InputMissingError else ExitCode.BAD_DATA
    assert info.value.exit_code == expected_code
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert "\n" not in message


def test_feedback_file_missing(tmp_path: Path, write_logs: WriteLogs) -> None:
    logs, catalog = write_logs(lambda f: f.drop("reward"))
    with pytest.raises(InputMissingError, match=r"feedback .*nofb\.parquet does not exist.*--feedback"):
        summarise_logs(logs, load_catalog(catalog), AS_OF, feedback=tmp_path / "nofb.parquet")


def _stats(logs: Path | str, catalog: Path, **kwargs: Any) -> pl.DataFrame:
    return summarise_logs(logs, load_catalog(catalog), AS_OF, **kwargs).stats


def test_file_glob_directory_and_hive_agree(tmp_path: Path, write_logs: WriteLogs) -> None:
    logs, catalog = write_logs()
    frame = pl.read_parquet(logs)
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, part in enumerate(frame.iter_slices(7)):
        part.write_parquet(flat / f"part-{i}.parquet")
    hive = tmp_path / "hive"
    days = frame.with_columns(day=pl.col("timestamp").dt.date())
    for (day,), part in days.group_by("day", maintain_order=True):
        folder = hive / f"date={day}"
        folder.mkdir(parents=True)
        part.drop("day").write_parquet(folder / "part.parquet")
    assert (hive / "date=2026-02-27" / "part.parquet").exists()

    expected = _stats(logs, catalog)
    assert expected.height == 3
    assert find_logs(hive).hive and not find_logs(flat).hive
    for source in (str(flat / "*.parquet"), flat, hive, str(hive / "**" / "*.parquet")):
        assert_frame_equal(_stats(source, catalog), expected)


def test_file_name_with_glob_characters_is_taken_literally(tmp_path: Path, write_logs: WriteLogs) -> None:
    logs, catalog = write_logs()
    literal, _ = write_logs(name="logs[1].parquet")
    assert_frame_equal(_stats(literal, catalog), _stats(logs, catalog))


def test_feedback_joined_on_request_id(tmp_path: Path, write_logs: WriteLogs) -> None:
    logs, catalog = write_logs()
    expected = _stats(logs, catalog)
    no_reward, _ = write_logs(lambda f: f.drop("reward"), name="no_reward.parquet")
    # Shuffled, and with a reward for a request that is not in the logs (ignored).
    feedback = pl.concat([
        small_logs().select("request_id", "reward").drop_nulls().reverse(),
        pl.DataFrame({"request_id": ["elsewhere"], "reward": [0.0]}),
    ])
    feedback.write_parquet(tmp_path / "feedback.parquet")
    assert_frame_equal(_stats(no_reward, catalog, feedback=tmp_path / "feedback.parquet"), expected)


def test_feedback_fills_null_rewards(tmp_path: Path, write_logs: WriteLogs) -> None:
    logs, catalog = write_logs(lambda f: f.with_columns(reward=pl.lit(None, pl.Float64)))
    pl.DataFrame({"request_id": ["r0000", "r0003"], "reward": [1.0, 0.0]}).write_parquet(
        tmp_path / "fb.parquet")
    stats = _stats(logs, catalog, feedback=tmp_path / "fb.parquet")
    alpha = stats.filter(pl.col("model") == "alpha").row(0, named=True)  # r0000 and r0003 are alpha
    assert alpha["n_reward"] == 2
    assert alpha["mean_reward"] == pytest.approx(0.5)
    assert stats["n_reward"].sum() == 2


def test_feedback_that_names_no_log_row_is_warned_about(tmp_path: Path,
                                                        write_logs: WriteLogs) -> None:
    """Feedback keyed by other ids (another service's, ids written as numbers) adds nothing:
    the statistics are the logs' own, with a note for the plan's warnings; feedback that names
    a row has none."""
    logs, catalog = write_logs()
    pl.DataFrame({"request_id": ["1", "2"], "reward": [1.0, 0.0]}).write_parquet(
        tmp_path / "other.parquet")
    summary = summarise_logs(logs, load_catalog(catalog), AS_OF, feedback=tmp_path / "other.parquet")
    assert_frame_equal(summary.stats, summarise_logs(logs, load_catalog(catalog), AS_OF).stats)
    (note,) = summary.notes
    assert "--feedback names no request of the logs" in note and "same request ids" in note
    pl.DataFrame({"request_id": ["r0000"], "reward": [1.0]}).write_parquet(tmp_path / "fb.parquet")
    assert summarise_logs(logs, load_catalog(catalog), AS_OF,
                          feedback=tmp_path / "fb.parquet").notes == ()


def test_files_without_the_reward_column_are_read_as_empty_with_a_note(
        tmp_path: Path, write_logs: WriteLogs) -> None:
    logs, catalog = write_logs()
    frame = pl.read_parquet(logs)
    (tmp_path / "mixed").mkdir()
    frame[:10].write_parquet(tmp_path / "mixed" / "a.parquet")
    frame[10:].drop("reward").write_parquet(tmp_path / "mixed" / "b.parquet")
    summary = summarise_logs(tmp_path / "mixed", load_catalog(catalog), AS_OF)
    assert summary.stats["n_reward"].sum() == frame[:10]["reward"].is_not_null().sum()
    assert any("1 of 2 files has no column 'reward'" in n and "b.parquet" in n
               for n in summary.notes), summary.notes
    whole = summarise_logs(logs, load_catalog(catalog), AS_OF)
    assert not any("no column" in n for n in whole.notes)


def test_costs_priced_from_tokens(write_logs: WriteLogs) -> None:
    logs, catalog = write_logs(lambda f: f.drop("cost"))
    summary = summarise_logs(logs, load_catalog(catalog), AS_OF)
    assert summary.cost_source == "tokens"
    prices = {"alpha": (1.0, 2.0), "beta": (0.5, 1.0), "gamma": (3.0, 6.0)}  # conftest CATALOG_CSV
    by_hand: dict[str, list[float]] = {}
    for row in small_logs().iter_rows(named=True):
        p_in, p_out = prices[row["model"]]
        by_hand.setdefault(row["model"], []).append(
            (row["input_tokens"] * p_in + row["output_tokens"] * p_out) / 1e6)
    for row in summary.stats.iter_rows(named=True):
        costs = by_hand[row["model"]]
        assert row["n_cost"] == len(costs)
        assert row["mean_cost"] == pytest.approx(sum(costs) / len(costs), rel=1e-12)
    assert summary.tokens.value[0] == pytest.approx(small_logs()["input_tokens"].mean())


def test_unknown_models_are_reported_and_ignored(write_logs: WriteLogs) -> None:
    def add_zeta(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(
            pl.when(pl.col("request_id").is_in(["r0001", "r0002"])).then(pl.lit("zeta"))
            .otherwise(pl.col("model")).alias("model"),
            # Unknown models are not validated beyond the basics: an empty cost is fine.
            pl.when(pl.col("request_id") == "r0001").then(None).otherwise(pl.col("cost")).alias("cost"),
        )

    logs, catalog = write_logs(add_zeta)
    summary = summarise_logs(logs, load_catalog(catalog), AS_OF)
    assert summary.unknown.to_dicts() == [{"model": "zeta", "rows": 2}]
    assert summary.rows == 30 and summary.rows_used == 28
    assert "zeta" not in summary.stats["model"].to_list()
    strict = r"logs\.parquet, column 'model' has 'zeta' \(2 row\(s\)\).*--strict"
    with pytest.raises(BadDataError, match=strict):
        summarise_logs(logs, load_catalog(catalog), AS_OF, strict=True)


def test_rows_at_or_after_as_of_are_not_used(write_logs: WriteLogs) -> None:
    logs, catalog = write_logs()
    frame = small_logs()
    as_of = dt.datetime(2026, 2, 27, 20, tzinfo=dt.UTC)  # r0020 is exactly at as_of: excluded
    summary = summarise_logs(logs, load_catalog(catalog), as_of)
    before = frame.filter(pl.col("timestamp") < as_of)
    assert before.height == 20
    assert summary.rows == 30 and summary.rows_used == 20
    assert summary.last_seen == dt.datetime(2026, 2, 27, 19, tzinfo=dt.UTC)
    assert_frame_equal(summary.stats.drop("last_seen"), compute_stats(before))


def test_sample_logs(sample_logs: Path, sample_catalog: Path) -> None:
    as_of = dt.datetime(2026, 11, 16, 2, tzinfo=dt.UTC)
    summary = summarise_logs(sample_logs, load_catalog(sample_catalog), as_of)
    assert summary.rows == summary.rows_used == 60_000
    assert summary.unknown.height == 0
    assert summary.cost_source == "column"


WITHOUT_STATISTICS = [
    ("reward", 1.5, "outside [0, 1]"),
    ("reward", float("nan"), "NaN"),
    ("cost", -0.5, "negative"),
    ("cost", float("inf"), "not finite"),
    ("timestamp", None, "is empty"),
    ("request_id", None, "is empty"),
    ("propensity", 0.0, "(0, 1]"),
    ("input_tokens", -1, "negative"),
]


@pytest.mark.parametrize(("column", "value", "what"), WITHOUT_STATISTICS)
@pytest.mark.parametrize("statistics", [True, False])
def test_checks_hold_with_and_without_footer_statistics(tmp_path: Path, write_logs: WriteLogs,
                                                        column: str, value: Any, what: str,
                                                        statistics: bool) -> None:
    """The fast pass trusts footer statistics where they exist; without them, it checks rows."""
    _, catalog = write_logs()
    frame = small_logs().with_columns(propensity=pl.lit(0.5))
    frame = frame.with_columns(
        pl.when(pl.col("request_id") == "r0007").then(pl.lit(value, frame.schema[column]))
        .otherwise(pl.col(column)).alias(column))
    path = tmp_path / "plain.parquet"
    frame.write_parquet(path, statistics=statistics)
    with pytest.raises(BadDataError, match=f"column '{column}'") as info:
        summarise_logs(path, load_catalog(catalog), AS_OF)
    assert what in str(info.value)
    assert "row 7" in str(info.value)


@pytest.mark.parametrize("hive", [False, True])
def test_as_of_before_every_row_is_one_clear_error_in_every_layout(tmp_path: Path, write_logs: WriteLogs,
                                                                   hive: bool) -> None:
    logs, catalog = write_logs()
    if hive:
        part = tmp_path / "hive" / "day=2026-02-27"
        part.mkdir(parents=True)
        small_logs().write_parquet(part / "part.parquet")
        logs = tmp_path / "hive"
    with pytest.raises(BadDataError, match="no row before --as-of 2026-01-01 00:00 UTC") as info:
        summarise_logs(logs, load_catalog(catalog), dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert "2026-02-27 00:00" in str(info.value) and "later --as-of" in str(info.value)


@pytest.mark.parametrize(("column", "value"), [
    ("input_tokens", float("nan")), ("input_tokens", float("inf")), ("output_tokens", float("nan")),
    ("propensity", float("nan")), ("propensity", float("inf")),
])
def test_nan_in_columns_the_plan_does_not_average_is_caught(tmp_path: Path, write_logs: WriteLogs,
                                                            column: str, value: float) -> None:
    """Footer ranges skip NaN; these columns are summed in the pass to catch it (review finding)."""
    _, catalog = write_logs()
    frame = small_logs().with_columns(pl.col("input_tokens", "output_tokens").cast(pl.Float64),
                                      propensity=pl.lit(0.5))
    frame = frame.with_columns(pl.when(pl.col("request_id") == "r0004").then(pl.lit(value))
                               .otherwise(pl.col(column)).alias(column))
    frame.write_parquet(tmp_path / "f.parquet")
    if column == "propensity" and value != value:  # NaN, unused by the plan: the full check's job
        summarise_logs(tmp_path / "f.parquet", load_catalog(catalog), AS_OF)
    with pytest.raises(BadDataError, match=f"column '{column}'") as info:
        summarise_logs(tmp_path / "f.parquet", load_catalog(catalog), AS_OF, full_check=True)
    assert "'r0004'" in str(info.value)


# --- Hostile layouts that must read the right rows (each gave a wrong plan or a crash before) ---


def test_partition_key_that_shadows_a_column_is_ignored_with_a_note(tmp_path: Path,
                                                                     write_logs: WriteLogs) -> None:
    """``model=alpha/`` over files with a model column must not credit every row to alpha."""
    logs, catalog = write_logs()
    for root in (tmp_path / "hive" / "model=alpha", tmp_path / "model=alpha" / "day=1"):
        root.mkdir(parents=True)
        small_logs().write_parquet(root / "part.parquet")
    expected = _stats(logs, catalog)
    for source in (tmp_path / "hive", tmp_path / "model=alpha"):  # key below and above the root
        summary = summarise_logs(source, load_catalog(catalog), AS_OF)
        assert_frame_equal(summary.stats, summarise_logs(logs, load_catalog(catalog), AS_OF).stats)
        assert summary.stats.height == 3
        assert any("key(s) model are ignored" in note for note in summary.notes)
    assert_frame_equal(_stats(tmp_path / "hive", catalog), expected)


def test_partition_key_for_a_column_the_files_lack_is_read(tmp_path: Path, write_logs: WriteLogs) -> None:
    logs, catalog = write_logs()
    for model in ("alpha", "beta", "gamma"):
        folder = tmp_path / "hive" / f"model={model}"
        folder.mkdir(parents=True)
        small_logs().filter(pl.col("model") == model).drop("model").write_parquet(folder / "p.parquet")
    assert find_logs(tmp_path / "hive").hive
    assert_frame_equal(_stats(tmp_path / "hive", catalog).sort("model"), _stats(logs, catalog))


def test_links_and_loops_read_each_file_once(tmp_path: Path, write_logs: WriteLogs) -> None:
    logs, catalog = write_logs()
    folder = tmp_path / "parts"
    folder.mkdir()
    small_logs().write_parquet(folder / "a.parquet")
    os.symlink(".", folder / "loop")  # parts/loop/loop/... is parts again
    os.symlink("a.parquet", folder / "same.parquet")
    os.mkfifo(folder / "pipe.parquet")
    expected = _stats(logs, catalog)
    for source in (folder, str(folder / "**" / "*.parquet"), str(folder / "*.parquet")):
        summary = summarise_logs(source, load_catalog(catalog), AS_OF)
        assert summary.rows == 30
        assert_frame_equal(summary.stats, summarise_logs(logs, load_catalog(catalog), AS_OF).stats)
    notes = " ".join(summarise_logs(folder, load_catalog(catalog), AS_OF).notes)
    assert "read once" in notes and "not regular files" in notes
    assert_frame_equal(_stats(folder, catalog), expected)


def test_int96_timestamps(tmp_path: Path, write_logs: WriteLogs) -> None:
    logs, catalog = write_logs()
    pq.write_table(small_logs().to_arrow(), tmp_path / "int96.parquet",
                   use_deprecated_int96_timestamps=True)
    assert_frame_equal(_stats(tmp_path / "int96.parquet", catalog), _stats(logs, catalog))


def test_user_columns_named_like_internal_ones_are_kept_apart(tmp_path: Path,
                                                              write_logs: WriteLogs) -> None:
    logs, catalog = write_logs()
    expected = _stats(logs, catalog)
    odd, _ = write_logs(lambda f: f.drop("reward").with_columns(
        __file__=pl.lit(1), __row__=pl.lit("x"), __feedback__=pl.lit(0.5), __reward__=pl.lit(2.0)),
        name="odd.parquet")
    FEEDBACK.with_columns(__file__=pl.lit("y"), __problem__=pl.lit(3)).write_parquet(
        tmp_path / "fb.parquet")
    assert_frame_equal(_stats(odd, catalog, feedback=tmp_path / "fb.parquet"), expected)


def test_feedback_partition_key_shadowing_reward_is_ignored(tmp_path: Path,
                                                            write_logs: WriteLogs) -> None:
    logs, catalog = write_logs()
    no_reward, _ = write_logs(lambda f: f.drop("reward"), name="no_reward.parquet")
    folder = tmp_path / "fb" / "reward=1"
    folder.mkdir(parents=True)
    FEEDBACK.write_parquet(folder / "p.parquet")
    assert_frame_equal(_stats(no_reward, catalog, feedback=tmp_path / "fb"), _stats(logs, catalog))


def test_summarise_reads_the_data_once_on_the_success_path(tmp_path: Path, write_logs: WriteLogs,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks add no pass: one collect for the statistics (footers vouch for the rest)."""
    logs, catalog = write_logs()
    calls: list[int] = []
    original = pl.collect_all

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(pl, "collect_all", counting)
    summarise_logs(logs, load_catalog(catalog), AS_OF)
    assert len(calls) == 1


# --- Data sanity: valid logs that cannot support a plan (exit 67) ---


def _sanity_case(mutate: Callable[[pl.DataFrame], pl.DataFrame], as_of: dt.datetime = AS_OF,
                 **limits: Any) -> tuple[Callable[[pl.DataFrame], pl.DataFrame], dt.datetime,
                                         dict[str, Any]]:
    return mutate, as_of, {"max_staleness": dt.timedelta(days=7), "max_unknown_share": 0.5,
                           **limits}


SANITY = [
    pytest.param(*_sanity_case(lambda f: f.with_columns(pl.col("model").str.to_uppercase())),
                 ["none of the 30 rows", "'ALPHA' (10 rows)", "only in case", "catalog's 'alpha'"],
                 id="upper-case-ids"),
    pytest.param(*_sanity_case(lambda f: f.with_columns(pl.col("model") + " ")),
                 ["none of the 30 rows", "'alpha '", "surrounding whitespace"], id="padded-ids"),
    pytest.param(*_sanity_case(lambda f: f.with_columns(
        pl.when(pl.col("request_id") < "r0018").then(pl.lit("zeta")).otherwise(pl.col("model"))
        .alias("model"))), ["60.0%", "18 of 30", "'zeta' (18 rows)", "--max-unknown-share 0.5"],
                 id="unknown-share-above-half"),
    pytest.param(*_sanity_case(lambda f: f.with_columns(
        pl.when(pl.col("request_id") < "r0006").then(pl.lit("zeta")).otherwise(pl.col("model"))
        .alias("model")), max_unknown_share=0.1), ["20.0%", "--max-unknown-share 0.1"],
                 id="unknown-share-above-the-option"),
    pytest.param(*_sanity_case(lambda f: f.with_columns(reward=pl.lit(None, pl.Float64))),
                 ["none of the 30 rows", "has a reward", "--feedback"], id="no-reward"),
    pytest.param(*_sanity_case(lambda f: f, as_of=dt.datetime(2026, 6, 1, tzinfo=dt.UTC)),
                 ["newest row", "2026-02-28 05:00", "older than --as-of 2026-06-01 00:00",
                  "92d19h older", "--max-staleness 7d", "pass --max-staleness 93d"], id="stale"),
    pytest.param(*_sanity_case(lambda f: f, max_staleness=dt.timedelta(hours=6)),
                 ["19h older", "--max-staleness 6h", "pass --max-staleness 1d"], id="stale-by-the-option"),
]


@pytest.mark.parametrize(("mutate", "as_of", "limits", "words"), SANITY)
def test_logs_that_cannot_support_a_plan(write_logs: WriteLogs, mutate: Callable[[pl.DataFrame],
                                         pl.DataFrame], as_of: dt.datetime,
                                         limits: dict[str, Any], words: list[str]) -> None:
    logs, catalog_path = write_logs(mutate)
    catalog = load_catalog(catalog_path)
    summary = summarise_logs(logs, catalog, as_of)
    with pytest.raises(InsufficientDataError) as info:
        check_sufficient(summary, catalog["model"].to_list(), as_of, **limits)
    assert info.value.exit_code == ExitCode.INSUFFICIENT_DATA == 67
    for word in words:
        assert word in str(info.value), f"{word!r} not in {str(info.value)!r}"


def test_sufficient_logs_pass_the_sanity_checks(write_logs: WriteLogs) -> None:
    logs, catalog_path = write_logs(lambda f: f.with_columns(  # 1 row in 30 of an unknown model
        pl.when(pl.col("request_id") == "r0001").then(pl.lit("zeta")).otherwise(pl.col("model"))
        .alias("model")))
    catalog = load_catalog(catalog_path)
    summary = summarise_logs(logs, catalog, AS_OF)
    check_sufficient(summary, catalog["model"].to_list(), AS_OF, dt.timedelta(days=7), 0.5)
    check_sufficient(summary, catalog["model"].to_list(), AS_OF, dt.timedelta(hours=19), 0.04)


def test_no_row_before_as_of_is_insufficient_data(write_logs: WriteLogs) -> None:
    logs, catalog = write_logs()
    with pytest.raises(InsufficientDataError) as info:
        summarise_logs(logs, load_catalog(catalog), dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert info.value.exit_code == 67


def test_empty_files_with_the_same_schema_are_not_copies(tmp_path: Path, write_logs: WriteLogs) -> None:
    """Writers leave empty part files with identical footers: they hold no row to count twice."""
    logs, catalog = write_logs()
    folder = tmp_path / "parts"
    folder.mkdir()
    for name in ("empty-1.parquet", "empty-2.parquet"):
        small_logs().head(0).write_parquet(folder / name)
    small_logs().write_parquet(folder / "full.parquet")
    assert (folder / "empty-1.parquet").read_bytes() == (folder / "empty-2.parquet").read_bytes()
    assert_frame_equal(_stats(folder, catalog), _stats(logs, catalog))
