"""Hostile inputs to ``plan`` and ``replay`` end in exactly one ``Error:`` line and their exit code.

Each case of ``INPUT_CASES`` writes a bad log, feedback, catalog or outcomes file into a fresh
directory and runs the command as a subprocess (``python -m stageroute_cli``, as a user would):
no traceback, no "internal error", no hang, nothing written, the documented exit code and a
message naming what is wrong. docs/errors.md lists every case with its real message in its
section "Logs, feedback, catalog and outcomes": regenerate that section with
``python tests/test_hostile_inputs.py`` after changing a message.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import CATALOG_CSV, REPO_ROOT, small_logs

from stageroute.errors import ExitCode

DOC = REPO_ROOT / "docs" / "errors.md"  # the section "Logs, feedback, catalog and outcomes"
Make = Callable[[Path], None]


@dataclass(frozen=True)
class InputCase:
    """One bad input: how to write it, what the command must say, with which exit code."""

    id: str
    bad_input: str
    code: int
    words: tuple[str, ...]  # must appear in the Error line
    make: Make
    command: str = "plan"  # or "replay"
    logs: str = "logs.parquet"
    catalog: str = "catalog.csv"
    outcomes: str = "outcomes.parquet"
    extra: tuple[str, ...] = ()

    def args(self) -> list[str]:
        if self.command == "replay":
            return ["replay", "--outcomes", self.outcomes, "--catalog", self.catalog,
                    "--budget", "0.002", "--max-deployed", "2", "--horizon", "1000", "--seeds", "1",
                    "--output", "out/result.json", *self.extra]
        return ["plan", "--logs", self.logs, "--catalog", self.catalog, "--budget", "0.002",
                "--max-deployed", "3", "--as-of", "2026-03-01", "--output", "out/result.json",
                *self.extra]


# --- How the bad files are made -------------------------------------------------------------


def _set(frame: pl.DataFrame, column: str, value: object, at: str = "r0005") -> pl.DataFrame:
    hit = pl.col("request_id") == at
    return frame.with_columns(pl.when(hit).then(pl.lit(value, frame.schema[column]))
                              .otherwise(pl.col(column)).alias(column))


def logs(mutate: Callable[[pl.DataFrame], pl.DataFrame] = lambda f: f,
         catalog: str = CATALOG_CSV) -> Make:
    """The 30-request log of conftest, mutated, beside the 3-model catalog."""
    def make(d: Path) -> None:
        (d / "catalog.csv").write_text(catalog)
        mutate(small_logs()).write_parquet(d / "logs.parquet")
    return make


def arrow_logs(table: Callable[[], pa.Table]) -> Make:
    def make(d: Path) -> None:
        (d / "catalog.csv").write_text(CATALOG_CSV)
        pq.write_table(table(), d / "logs.parquet")
    return make


def parts(*frames: Callable[[pl.DataFrame], pl.DataFrame]) -> Make:
    """A directory logs/ of files a.parquet, b.parquet, ...: halves of the log, each mutated."""
    def make(d: Path) -> None:
        (d / "catalog.csv").write_text(CATALOG_CSV)
        (d / "logs").mkdir()
        halves = (small_logs().head(15), small_logs().tail(15))
        for name, half, mutate in zip("ab", halves, frames, strict=True):
            mutate(half).write_parquet(d / "logs" / f"{name}.parquet")
    return make


def special(name: str, create: Callable[[Path], object]) -> Make:
    """Valid inputs, and ``name`` made by ``create`` (a FIFO, a link to a device, ...)."""
    def make(d: Path) -> None:
        logs()(d)
        create(d / name)
    return make


def catalog(text: str | bytes, name: str = "catalog.csv") -> Make:
    def make(d: Path) -> None:
        logs()(d)
        path = d / name
        path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    return make


def outcomes(mutate: Callable[[pl.DataFrame], pl.DataFrame] = lambda f: f,
             cat: str = CATALOG_CSV, csv: str | None = None, fifo: bool = False) -> Make:
    """Complete outcomes: 20 prompts x alpha/beta/gamma, mutated (or CSV text, or a FIFO)."""
    def make(d: Path) -> None:
        (d / "catalog.csv").write_text(cat)
        if fifo:
            os.mkfifo(d / "outcomes.parquet")
            return
        if csv is not None:
            (d / "outcomes.csv").write_text(csv)
            return
        rows = [(f"s{s}", m, ((s + j) % 4) / 3, 0.001 * (j + 1))
                for s in range(20) for j, m in enumerate(("alpha", "beta", "gamma"))]
        frame = pl.DataFrame(rows, schema=["sample_id", "model", "reward", "cost"], orient="row")
        mutate(frame).write_parquet(d / "outcomes.parquet")
    return make


def _zoned(zone: str) -> Callable[[], pa.Table]:
    def table() -> pa.Table:
        t = small_logs().to_arrow()
        stamps = t.column("timestamp").cast(pa.timestamp("us")).cast(pa.int64())
        return t.set_column(1, "timestamp", stamps.cast(pa.timestamp("us", zone)))
    return table


def _two_model_columns() -> pa.Table:
    t = small_logs().to_arrow()
    return t.append_column("model", pa.array(["x"] * t.num_rows))


def _copies(d: Path) -> None:
    logs()(d)
    (d / "logs").mkdir()
    for name in ("a.parquet", "b.parquet"):
        (d / "logs" / name).write_bytes((d / "logs.parquet").read_bytes())


def _mixed_layout(d: Path) -> None:
    logs()(d)
    for folder, frame in (("day=1", small_logs().head(15)), ("other", small_logs().tail(15))):
        (d / "logs" / folder).mkdir(parents=True)
        frame.write_parquet(d / "logs" / folder / "p.parquet")


def _shadow_and_missing(d: Path) -> None:
    """model=x/reward=1/: reward is also a file column, model only a key."""
    logs()(d)
    (d / "logs" / "model=alpha" / "reward=1").mkdir(parents=True)
    small_logs().drop("model").write_parquet(d / "logs" / "model=alpha" / "reward=1" / "p.parquet")


def _undecodable_name(d: Path) -> None:
    logs()(d)
    (d / "logs").mkdir()
    with open(os.path.join(os.fsencode(d / "logs"), b"caf\xe9.parquet"), "wb") as handle:
        handle.write((d / "logs.parquet").read_bytes())


def _corrupt_page(d: Path) -> None:
    logs()(d)
    data = bytearray((d / "logs.parquet").read_bytes())
    data[200:260] = b"\xff" * 60
    (d / "logs.parquet").write_bytes(bytes(data))


def _feedback(frame: pl.DataFrame) -> Make:
    def make(d: Path) -> None:
        logs(lambda f: f.drop("reward"))(d)
        frame.write_parquet(d / "feedback.parquet")
    return make


def _token_overflow(d: Path) -> None:
    priced = ("model,released,usd_per_mtok_in,usd_per_mtok_out\nalpha,2026-01-01,1,2\n"
              "beta,2026-01-01,1,2\ngamma,2026-01-01,1e20,2\n")
    logs(lambda f: _set(f.drop("cost").with_columns(pl.col("input_tokens").cast(pl.Float64)),
                        "input_tokens", 1e90), catalog=priced)(d)


def _parquet_catalog_zone(d: Path) -> None:
    logs()(d)
    stamps = pa.array([0, 0, 0], pa.timestamp("us", "+05:30"))
    pq.write_table(pa.table({"model": ["alpha", "beta", "gamma"], "released": stamps}),
                   d / "catalog.parquet")


def _unknown(frame: pl.DataFrame, below: str) -> pl.DataFrame:
    return frame.with_columns(pl.when(pl.col("request_id") < below).then(pl.lit("zeta"))
                              .otherwise(pl.col("model")).alias("model"))


HEADER = "model,released,retired,max_share,usd_per_mtok_in,usd_per_mtok_out"
ROW = "delta,2026-01-01,,1.0,1.0,2.0"
DAY1 = dt.datetime(2026, 2, 27).isoformat()

INPUT_CASES: list[InputCase] = [
    # Data sanity: valid logs that cannot support a plan (exit 67).
    InputCase("upper-case-ids", "every log row names a model in upper case (not in the catalog)",
              ExitCode.INSUFFICIENT_DATA, ("none of the 30 rows", "'ALPHA' (10 rows)", "only in case"),
              logs(lambda f: f.with_columns(pl.col("model").str.to_uppercase()))),
    InputCase("unknown-share", "60% of the rows name a model missing from the catalog",
              ExitCode.INSUFFICIENT_DATA, ("60.0%", "'zeta' (18 rows)", "--max-unknown-share 0.5"),
              logs(lambda f: _unknown(f, "r0018"))),
    InputCase("unknown-share-option", "20% unknown rows with `--max-unknown-share 0.1`",
              ExitCode.INSUFFICIENT_DATA, ("20.0%", "--max-unknown-share 0.1"),
              logs(lambda f: _unknown(f, "r0006")), extra=("--max-unknown-share", "0.1")),
    InputCase("no-reward", "no row has a reward", ExitCode.INSUFFICIENT_DATA,
              ("none of the 30 rows", "has a reward"),
              logs(lambda f: f.with_columns(reward=pl.lit(None, pl.Float64)))),
    InputCase("stale-logs", "`--as-of` three months after the newest row", ExitCode.INSUFFICIENT_DATA,
              ("newest row", "2026-02-28 05:00", "--max-staleness 7d", "pass --max-staleness 93d"),
              logs(), extra=("--as-of", "2026-06-01")),
    InputCase("stale-by-option", "newest row 19 hours old with `--max-staleness 6h`",
              ExitCode.INSUFFICIENT_DATA, ("19h older", "--max-staleness 6h"), logs(),
              extra=("--max-staleness", "6h")),
    InputCase("no-row-before-as-of", "`--as-of` before every row", ExitCode.INSUFFICIENT_DATA,
              ("no row before --as-of 2026-01-01 00:00 UTC", "later --as-of"), logs(),
              extra=("--as-of", "2026-01-01")),
    InputCase("feedback-matches-nothing", "`--feedback` whose request ids match no log row",
              ExitCode.INSUFFICIENT_DATA, ("has a reward", "--feedback"),
              _feedback(pl.DataFrame({"request_id": ["other-1"], "reward": [0.5]})),
              extra=("--feedback", "feedback.parquet")),
    # Files of one directory that disagree.
    InputCase("timestamp-units-differ", "logs/ with timestamps in us in one file, ns in the other",
              ExitCode.BAD_DATA, ("logs/b.parquet", "column 'timestamp'", "'ns'", "logs/a.parquet"),
              parts(lambda f: f, lambda f: f.with_columns(pl.col("timestamp").cast(
                  pl.Datetime("ns", "UTC")))), logs="logs"),
    InputCase("timestamp-zones-differ", "logs/ with UTC timestamps in one file, Asia/Tokyo in the other",
              ExitCode.BAD_DATA, ("logs/b.parquet", "Asia/Tokyo", "same column types"),
              parts(lambda f: f, lambda f: f.with_columns(pl.col("timestamp").dt.convert_time_zone(
                  "Asia/Tokyo"))), logs="logs"),
    InputCase("naive-and-aware", "logs/ with aware timestamps in one file, naive in the other",
              ExitCode.BAD_DATA, ("logs/b.parquet", "time_zone=None", "'UTC'"),
              parts(lambda f: f, lambda f: f.with_columns(pl.col("timestamp").dt.replace_time_zone(
                  None))), logs="logs"),
    InputCase("later-file-bad-column", "propensity 5.0 in the second file only (the first has none)",
              ExitCode.BAD_DATA, ("logs/b.parquet", "column 'propensity'", "5.0", "(0, 1]"),
              parts(lambda f: f, lambda f: f.with_columns(propensity=pl.lit(5.0))), logs="logs"),
    InputCase("copied-file", "logs/ holding two copies of the same file", ExitCode.BAD_DATA,
              ("logs/b.parquet", "logs/a.parquet", "copy", "count twice"), _copies, logs="logs"),
    InputCase("mixed-partitions", "logs/day=1/ beside logs/other/", ExitCode.BAD_DATA,
              ("mixes partition layouts", "(day)", "(none)"), _mixed_layout, logs="logs"),
    InputCase("partition-shadow", "logs/model=alpha/reward=1/ over files with a reward column",
              ExitCode.BAD_DATA, ("partition key 'reward'", "also a column", "'model'"),
              _shadow_and_missing, logs="logs"),
    # Values and names.
    InputCase("user-column-__row__", "a user column `__row__` and a reward of 1.5", ExitCode.BAD_DATA,
              ("column 'reward'", "1.5", "row 5", "'r0005'"),
              logs(lambda f: _set(f.with_columns(__row__=pl.lit("x")), "reward", 1.5))),
    InputCase("user-column-__file__", "a user column `__file__` and a reward of 1.5", ExitCode.BAD_DATA,
              ("column 'reward'", "1.5", "row 5", "'r0005'"),
              logs(lambda f: _set(f.with_columns(__file__=pl.lit(7)), "reward", 1.5))),
    InputCase("cost-1e200", "a cost of 1e200 (its variance overflows)", ExitCode.BAD_DATA,
              ("column 'cost'", "1e+200", "above 1e+100", "row 5", "'r0005'"),
              logs(lambda f: _set(f, "cost", 1e200))),
    InputCase("cost-near-float-max", "every cost 1.7e308", ExitCode.BAD_DATA,
              ("column 'cost'", "1.7e+308", "row 0"), logs(lambda f: f.with_columns(cost=pl.lit(1.7e308)))),
    InputCase("token-price-overflow", "no cost column, 1e90 tokens x 1e20 USD per Mtok",
              ExitCode.BAD_DATA, ("priced from its tokens", "'gamma'", "1e+20", "above 1e+100"),
              _token_overflow),
    InputCase("newline-in-model-id", "a model id with a newline, `--strict`", ExitCode.BAD_DATA,
              ("column 'model'", "'bad\\nmodel'", "--strict"),
              logs(lambda f: _set(f, "model", "bad\nmodel")), extra=("--strict",)),
    InputCase("newline-in-request-id", "a request id with a newline, twice, `--full-check`",
              ExitCode.BAD_DATA, ("column 'request_id'", "'r\\n5' 2 times"),
              logs(lambda f: _set(_set(f, "request_id", "r\n5"), "request_id", "r\n5", at="r0006")),
              extra=("--full-check",)),
    InputCase("offset-time-zone", "timestamps in the time zone '+05:30' (Polars aborts on it)",
              ExitCode.BAD_DATA, ("column 'timestamp'", "'+05:30'", "UTC"), arrow_logs(_zoned("+05:30"))),
    InputCase("unknown-time-zone", "timestamps in the time zone 'Mars/Olympus'", ExitCode.BAD_DATA,
              ("'Mars/Olympus'", "named zone"), arrow_logs(_zoned("Mars/Olympus"))),
    InputCase("duplicate-column-names", "a Parquet file with two columns named model",
              ExitCode.BAD_DATA, ("two columns named 'model'",), arrow_logs(_two_model_columns)),
    InputCase("corrupt-data-page", "a data page overwritten with garbage", ExitCode.BAD_DATA,
              ("logs.parquet", "cannot be read as Parquet"), _corrupt_page),
    InputCase("file-name-not-utf-8", "logs/ holding a file whose name is not UTF-8",
              ExitCode.INPUT_MISSING, ("logs/caf", "not valid UTF-8", "rename"), _undecodable_name,
              logs="logs"),
    # Not a regular file.
    InputCase("fifo-logs", "`--logs` is a named pipe (reading it would block)", ExitCode.INPUT_MISSING,
              ("pipe.parquet", "named pipe", "--logs"), special("pipe.parquet", os.mkfifo),
              logs="pipe.parquet"),
    InputCase("device-logs", "`--logs` is a link to /dev/zero", ExitCode.INPUT_MISSING,
              ("zero.parquet", "a device"), special("zero.parquet", lambda p: os.symlink("/dev/zero", p)),
              logs="zero.parquet"),
    InputCase("fifo-feedback", "`--feedback` is a named pipe", ExitCode.INPUT_MISSING,
              ("feedback", "pipe.parquet", "named pipe", "--feedback"),
              special("pipe.parquet", os.mkfifo), extra=("--feedback", "pipe.parquet")),
    InputCase("fifo-catalog", "`--catalog` is a named pipe", ExitCode.INPUT_MISSING,
              ("catalog", "pipe.csv", "named pipe", "--catalog"), special("pipe.csv", os.mkfifo),
              catalog="pipe.csv"),
    # Catalogs.
    InputCase("catalog-duplicated-header", "catalog header naming `model` twice", ExitCode.BAD_DATA,
              ("catalog.csv", "names the column 'model' twice"),
              catalog(CATALOG_CSV.replace("max_share", "model", 1))),
    InputCase("catalog-case-only-ids", "catalog lists alpha and Alpha", ExitCode.BAD_DATA,
              ("'Alpha' and 'alpha'", "differ only in case"),
              catalog(CATALOG_CSV + "Alpha,2026-01-01,,1.0,1.0,2.0\n")),
    InputCase("catalog-newline-id", "catalog id with a newline (quoted CSV field)", ExitCode.BAD_DATA,
              ("column 'model'", "'bad\\nid'", "invisible character"),
              catalog(CATALOG_CSV + '"bad\nid",2026-01-01,,1.0,1.0,2.0\n')),
    InputCase("catalog-zero-width-id", "catalog id with a zero-width space (copied from a web page)",
              ExitCode.BAD_DATA, ("'al\\u200bpha'", "invisible character"),
              catalog(CATALOG_CSV.replace("alpha,", "al\u200bpha,", 1))),
    InputCase("catalog-id-too-long", "catalog id of 100,000 characters (broken quoting)",
              ExitCode.BAD_DATA, ("100,000 characters", "at most 1,000"),
              catalog(CATALOG_CSV + "x" * 100_000 + ",2026-01-01,,1,1,1\n")),
    InputCase("catalog-year-1-offset", "released 0001-01-01T00:00:00+01:00 (before year 1 in UTC)",
              ExitCode.BAD_DATA, ("'released'", "'0001-01-01T00:00:00+01:00'", "outside the calendar"),
              catalog(f"{HEADER}\n{ROW}\nalpha,0001-01-01T00:00:00+01:00,,1,1,2\n")),
    InputCase("catalog-year-9999-offset", "retired 9999-12-31T23:00:00-05:00 (after year 9999 in UTC)",
              ExitCode.BAD_DATA, ("'retired'", "outside the calendar"),
              catalog(f"{HEADER}\nalpha,2026-01-01,9999-12-31T23:00:00-05:00,1,1,2\n")),
    InputCase("catalog-release-9999", "released 9999-12-31 (a placeholder)", ExitCode.BAD_DATA,
              ("'delta'", "released on 9999-12-31", "placeholder"),
              catalog(CATALOG_CSV + "delta,9999-12-31,,1,1,1\n")),
    InputCase("catalog-price-overflow", "usd_per_mtok_out 1e308 (price x tokens overflows)",
              ExitCode.BAD_DATA, ("'usd_per_mtok_out'", "1e+308", "'delta'", "at most 1e+100"),
              catalog(CATALOG_CSV + "delta,2026-01-01,,1,1,1e308\n")),
    InputCase("catalog-json-huge-integer", "JSON catalog with an integer of 401 digits",
              ExitCode.BAD_DATA, ("c.json", "too large"),
              catalog('[{"model": "alpha", "released": "2026-01-01", "max_share": 1' + "0" * 400 + "}]",
                      "c.json"), catalog="c.json"),
    InputCase("catalog-json-repeated-key", "JSON catalog object with the key model twice",
              ExitCode.BAD_DATA, ("c.json", "'model' appears twice"),
              catalog('[{"model": "alpha", "model": "beta", "released": "2026-01-01"}]', "c.json"),
              catalog="c.json"),
    InputCase("catalog-parquet-time-zone", "Parquet catalog with released in time zone '+05:30'",
              ExitCode.BAD_DATA, ("catalog.parquet", "'+05:30'"), _parquet_catalog_zone,
              catalog="catalog.parquet"),
    InputCase("catalog-utf16", "catalog saved as UTF-16", ExitCode.BAD_DATA, ("not UTF-8", "UTF-16"),
              catalog(CATALOG_CSV.encode("utf-16"))),
    # Outcomes (replay).
    InputCase("outcomes-null-model", "outcomes with an empty model", ExitCode.BAD_DATA,
              ("column 'model' is empty", "row 9", "'s3'"),
              outcomes(lambda f: f.with_columns(pl.when(pl.int_range(pl.len()) == 9).then(None)
                                                .otherwise(pl.col("model")).alias("model"))),
              command="replay"),
    InputCase("outcomes-null-sample-id", "outcomes with one empty sample_id", ExitCode.BAD_DATA,
              ("column 'sample_id' is empty", "row 7", "'beta'"),
              outcomes(lambda f: f.with_columns(pl.when(pl.int_range(pl.len()) == 7).then(None)
                                                .otherwise(pl.col("sample_id")).alias("sample_id"))),
              command="replay"),
    InputCase("outcomes-duplicated-header", "outcomes CSV header naming model twice", ExitCode.BAD_DATA,
              ("outcomes.csv", "names the column 'model' twice"),
              outcomes(csv="sample_id,model,reward,cost,model\ns1,alpha,0.5,0.1,x\n"),
              command="replay", outcomes="outcomes.csv"),
    InputCase("outcomes-reward-struct", "outcomes whose reward is a struct", ExitCode.BAD_DATA,
              ("column 'reward'", "Struct", "a number"),
              outcomes(lambda f: f.with_columns(pl.struct("reward").alias("reward"))), command="replay"),
    InputCase("outcomes-cost-1e200", "outcomes with a cost of 1e200", ExitCode.BAD_DATA,
              ("column 'cost'", "1e+200", "1e+100"),
              outcomes(lambda f: f.with_columns(cost=pl.lit(1e200))), command="replay"),
    InputCase("outcomes-cost-subnormal", "outcomes with costs of 1e-320 (cannot be normalised)",
              ExitCode.BAD_DATA, ("column 'cost'", "1e-320", "1e-100"),
              outcomes(lambda f: f.with_columns(cost=pl.lit(1e-320))), command="replay"),
    InputCase("outcomes-fifo", "`--outcomes` is a named pipe", ExitCode.INPUT_MISSING,
              ("outcomes.parquet", "named pipe", "--outcomes"),
              outcomes(fifo=True), command="replay"),
    InputCase("replay-catalog-release-9999", "replay with a catalog release in 9999", ExitCode.BAD_DATA,
              ("'alpha'", "released on 9999-12-31", "placeholder"),
              outcomes(cat=CATALOG_CSV.replace("alpha,2026-01-01", "alpha,9999-12-31")),
              command="replay"),
    # The options of the data-sanity checks.
    InputCase("max-unknown-share-above-1", "`--max-unknown-share 1.5`", ExitCode.USAGE,
              ("--max-unknown-share", "[0, 1]", "1.5"), logs(), extra=("--max-unknown-share", "1.5")),
    InputCase("max-staleness-not-a-duration", "`--max-staleness soon`", ExitCode.USAGE,
              ("--max-staleness", "'soon'", "7d"), logs(), extra=("--max-staleness", "soon")),
]


def run(case: InputCase, directory: Path) -> subprocess.CompletedProcess[str]:
    """Write the case into ``directory`` (with an empty out/) and run its command there."""
    (directory / "out").mkdir(parents=True, exist_ok=True)
    case.make(directory)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "stageroute_cli", *case.args()], cwd=directory,
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def run_all(root: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every case in its own directory under ``root``, a few at a time."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        done = pool.map(lambda c: (c.id, run(c, root / c.id)), INPUT_CASES)
        return dict(done)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("hostile")
    return {**run_all(root), "__root__": root}  # type: ignore[dict-item]


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    return errors[0] if len(errors) == 1 else ""


def test_there_are_enough_cases() -> None:
    assert len(INPUT_CASES) >= 35
    assert len({c.id for c in INPUT_CASES}) == len(INPUT_CASES)


@pytest.mark.parametrize("case", INPUT_CASES, ids=[c.id for c in INPUT_CASES])
def test_bad_input_ends_in_one_error_line(case: InputCase, results: dict) -> None:
    result = results[case.id]
    out = result.stdout + result.stderr
    assert "Traceback" not in out and "internal error" not in out and "panicked" not in out, out
    assert result.returncode == case.code, result.stderr
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    assert lines[-1] == errors[0]
    assert all(line.startswith("stageroute: ") for line in lines[:-1]), result.stderr
    for word in case.words:
        assert word in errors[0], f"{word!r} not in {errors[0]!r}"
    directory = results["__root__"] / case.id
    written = [f for f in (directory / "out").iterdir() if not f.name.endswith(".lock")]
    assert not written, "an output file was written"  # the run's lock file may stay (documented)
    assert not list(directory.rglob("*.tmp"))


def _doc_rows() -> dict[str, list[str]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| `") and len(cells) == 4:
            rows[cells[0].strip("`")] = cells
    return rows


def test_every_case_is_documented_with_its_exit_code_and_message() -> None:
    rows = _doc_rows()
    for case in INPUT_CASES:
        assert case.id in rows, f"{case.id} is missing from {DOC.name}: run {Path(__file__).name}"
        _, _, code, message = rows[case.id]
        assert code == str(int(case.code)), case.id
        for word in case.words:
            assert word.replace("|", "\\|") in message, f"{case.id}: {word!r} not in the doc"


def render(results: dict[str, subprocess.CompletedProcess[str]]) -> str:
    """The loaders' section of docs/errors.md: one row per case with the real Error line."""
    lines = [
        "Every case below is a test (`tests/test_hostile_inputs.py`, `INPUT_CASES`): the command ends",
        "in exactly one `Error:` line on stderr and the exit code shown, with no traceback, no",
        "\"internal error\", no hang and no output file. Unless a case says otherwise, the inputs are the",
        "30-request `logs.parquet` of `tests/conftest.py` (2026-02-27 to 2026-02-28, models alpha, beta,",
        "gamma) and its 3-model `catalog.csv`, and the command is",
        "`stageroute plan --logs logs.parquet --catalog catalog.csv --budget 0.002 --max-deployed 3",
        "--as-of 2026-03-01 --output out/result.json`, or for outcomes `stageroute replay --outcomes",
        "outcomes.parquet --catalog catalog.csv --budget 0.002 --max-deployed 2 --horizon 1000 --seeds 1",
        "--output out/result.json`. Exit 67 (new) means valid inputs that cannot support a plan: no row of",
        "a catalog model, more unknown-model rows than `--max-unknown-share` (default 0.5), no reward, or",
        "logs older than `--max-staleness` (default: one `--stage-length`) at `--as-of`.",
        "",
        "Inputs that are read rather than refused, each with a note in the plan's `notes`: catalog ids",
        "with surrounding whitespace (stripped), a partition key that is also a column of the files",
        "(the files' column is used), links and link loops (each real file read once), entries of a",
        "log directory that are not regular files (skipped).",
        "",
        "| id | bad input | exit code | message |",
        "|---|---|---|---|",
    ]
    for case in INPUT_CASES:
        message = error_line(results[case.id]).replace("|", "\\|")
        lines.append(f"| `{case.id}` | {case.bad_input.replace('|', '/')} | {int(case.code)} | "
                     f"`{message}` |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        section = render(run_all(Path(tmp)))
    text = DOC.read_text()
    start = text.index("## Logs, feedback, catalog and outcomes\n")
    end = text.index("\n## ", start + 1)
    DOC.write_text(f"{text[:start]}## Logs, feedback, catalog and outcomes\n\n{section}{text[end:]}")
    print(f"wrote the loaders' section of {DOC}")
