"""The log loader: every bad log fails with a message naming file, column and value; sources agree."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import AS_OF, WriteLogs, small_logs
from polars.testing import assert_frame_equal

from stageroute.inputs.catalog import load_catalog
from stageroute.errors import BadDataError, ExitCode, InputMissingError
from stageroute.inputs.logs import find_logs, summarise_logs
from stageroute.estimate.stats import compute_stats

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


def _checking_ids(setup: Setup) -> Setup:
    """Request-id uniqueness costs a hash of every id: it runs with full_check (or feedback)."""
    def checked(tmp: Path, write: WriteLogs) -> tuple[Path | str, Path, dict[str, Any]]:
        logs, catalog, kwargs = setup(tmp, write)
        return logs, catalog, {**kwargs, "full_check": True}
    return checked


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
    assert summary.mean_input_tokens == pytest.approx(small_logs()["input_tokens"].mean())


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
