"""Every bad input to a command ends in one ``Error:`` line and its exit code, never a traceback.

The commands run as subprocesses (``python -m stageroute_cli``, which goes through
``stageroute_cli.main.run()`` like the console script), in a fresh directory so that messages name
the files as a user would type them. ``CASES`` (loaders and the first option/output cases, also
listed in the README) and ``HOSTILE_CASES`` (options, environment, output paths, solver limits)
are the matrix of docs/errors.md: ``python tests/test_cli_errors.py`` prints its rows.
Signals and stdout are in ``tests/test_signals.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import CATALOG_CSV, REPO_ROOT, small_logs

from stageroute.errors import ExitCode
from stageroute.render.output import locked

RETIRED_BEFORE_RELEASED = CATALOG_CSV.replace("gamma,2026-01-01,2027-01-01", "gamma,2026-01-01,2025-06-30")
DUPLICATE_MODEL = CATALOG_CSV + "beta,2026-02-01,,1.0,0.5,1.0\n"


def _set(column: str, value: object) -> Callable[[pl.DataFrame], pl.DataFrame]:
    def mutate(frame: pl.DataFrame) -> pl.DataFrame:
        hit = pl.col("request_id") == "r0005"
        return frame.with_columns(
            pl.when(hit).then(pl.lit(value, frame.schema[column])).otherwise(pl.col(column)).alias(column))
    return mutate


def _unknown_model(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.when(pl.col("request_id") == "r0005").then(pl.lit("mystery-7b")).otherwise(pl.col("model"))
        .alias("model"))


@dataclass(frozen=True)
class Case:
    """One bad input: how to make it, the options that differ from the valid run, what must happen."""

    id: str
    bad_input: str
    code: int
    words: tuple[str, ...]  # must appear in the Error line
    mutate: Callable[[pl.DataFrame], pl.DataFrame] | None = None
    raw_logs: bytes | None = None  # written instead of a valid log
    catalog: str = CATALOG_CSV
    logs: str = "logs.parquet"
    budget: str = "0.01"
    output: str = "out/plan.json"
    extra: tuple[str, ...] = ()
    no_glpk_on_path: bool = False
    hold_lock: bool = False
    shows_plan: bool = False  # the infeasible plan is printed (not written) before the error
    command: str = "plan"  # plan, replay, import, export or diff (see BASE)
    drop: tuple[str, ...] = ()  # options of BASE[command] left out (with their values)
    env: tuple[tuple[str, str], ...] = ()
    setup: Callable[[Path], None] | None = None  # makes special files in the case directory


CASES = [
    Case("missing-column", "missing column (no `model`)", ExitCode.BAD_DATA,
         ("logs.parquet", "no column 'model'", "add it"), mutate=lambda f: f.drop("model")),
    Case("wrong-dtype", "wrong dtype (`reward` stored as text)", ExitCode.BAD_DATA,
         ("logs.parquet", "column 'reward'", "type String", "expected a number"),
         mutate=lambda f: f.with_columns(pl.col("reward").cast(pl.String))),
    Case("reward-outside", "reward outside [0, 1]", ExitCode.BAD_DATA,
         ("logs.parquet", "column 'reward'", "outside [0, 1]", "1.5", "'r0005'"),
         mutate=_set("reward", 1.5)),
    Case("negative-cost", "negative cost", ExitCode.BAD_DATA,
         ("logs.parquet", "column 'cost'", "negative", "-0.02", "'r0005'"), mutate=_set("cost", -0.02)),
    Case("nan-reward", "NaN reward", ExitCode.BAD_DATA,
         ("logs.parquet", "column 'reward'", "NaN", "'r0005'"), mutate=_set("reward", float("nan"))),
    Case("nan-cost", "NaN cost", ExitCode.BAD_DATA,
         ("logs.parquet", "column 'cost'", "not finite", "nan", "'r0005'"),
         mutate=_set("cost", float("nan"))),
    Case("unknown-model", "model not in the catalog, with `--strict`", ExitCode.BAD_DATA,
         ("logs.parquet", "column 'model'", "'mystery-7b'", "not in the catalog", "--strict"),
         mutate=_unknown_model, extra=("--strict",)),
    Case("empty-log", "empty log (0 rows)", ExitCode.BAD_DATA, ("logs.parquet", "no rows"),
         mutate=lambda f: f.head(0)),
    Case("corrupt-parquet", "corrupt Parquet (not Parquet bytes)", ExitCode.BAD_DATA,
         ("logs.parquet", "cannot be read as Parquet", "really Parquet"), raw_logs=b"\x00garbage" * 64),
    Case("missing-file", "missing log file", ExitCode.INPUT_MISSING,
         ("missing.parquet", "does not exist", "--logs"), logs="missing.parquet"),
    Case("retired-before-released", "catalog: retired before released", ExitCode.BAD_DATA,
         ("catalog.csv", "'gamma'", "retired (2025-06-30) before it is released (2026-01-01)"),
         catalog=RETIRED_BEFORE_RELEASED),
    Case("duplicate-model", "catalog: duplicate model", ExitCode.BAD_DATA,
         ("catalog.csv", "column 'model'", "'beta' twice"), catalog=DUPLICATE_MODEL),
    Case("infeasible-budget", "infeasible budget (`--budget 0.0001`, every model costs more)",
         ExitCode.INFEASIBLE, ("budget 0.0001 cannot be met", "not written", "--allow-drop",
                               "--allow-over-budget"),
         budget="0.0001", shows_plan=True),
    Case("unknown-solver", "unknown solver (`--solver foo`)", ExitCode.USAGE,
         ("--solver", "'foo'", "highs", "glpk"), extra=("--solver", "foo")),
    Case("missing-solver", "solver not installed (`--solver glpk`, no `glpsol` on PATH)",
         ExitCode.NO_SOLVER, ("'glpk'", "glpsol", "apt-get install", "--solver highs"),
         extra=("--solver", "glpk"), no_glpk_on_path=True),
    Case("unwritable-output", "`--output` in a directory that does not exist", ExitCode.CANNOT_WRITE,
         ("nowhere/plan.json", "does not exist", "create it"), output="nowhere/plan.json"),
    Case("locked-output", "`--output` locked by another run", ExitCode.LOCKED,
         ("out/plan.json.lock", "another stageroute run", "wait"), hold_lock=True),
]


# --- hostile input at the command line: options, environment, output paths, solver limits -------

LATE_CATALOG = CATALOG_CSV.replace("2026-01-01,,", "9995-01-01,,").replace(
    "gamma,2026-01-01,2027-01-01", "gamma,9995-01-01,")


def _symlink(name: str, target: str) -> Callable[[Path], None]:
    def make(directory: Path) -> None:
        (directory / name).symlink_to(target)
    return make


def _hardlink(name: str, target: str) -> Callable[[Path], None]:
    def make(directory: Path) -> None:
        os.link(directory / target, directory / name)
    return make


def _fifo(name: str) -> Callable[[Path], None]:
    def make(directory: Path) -> None:
        os.mkfifo(directory / name)
    return make


def _file(name: str, text: str) -> Callable[[Path], None]:
    def make(directory: Path) -> None:
        (directory / name).write_text(text)
    return make


def _read_only_output(directory: Path) -> None:
    (directory / "out" / "plan.json").write_text('{"previous": "plan"}\n')
    (directory / "out" / "plan.json").chmod(0o444)


def _logs_directory(directory: Path) -> None:
    (directory / "logdir").mkdir()
    shutil.copy(directory / "logs.parquet", directory / "logdir" / "part-0.parquet")


def _empty_routerbench(directory: Path) -> None:
    """A wide table whose every prompt lacks a cost, beside a good outcomes file it must not replace."""
    wide = pl.read_csv(directory / "wide.csv")
    wide.with_columns(pl.lit(None, pl.Float64).alias("alpha|total_cost")).write_csv(directory / "wide.csv")
    small_outcomes().write_parquet(directory / "out" / "outcomes.parquet")


HOSTILE_CASES = [
    # plan: dates and durations at the edges of the calendar
    Case("as-of-end-of-calendar", "`--as-of 9999-12-30` (the stage ends after year 9999)", ExitCode.USAGE,
         ("--as-of 9999-12-30", "--stage-length (7 days)", "after the year 9999", "earlier --as-of"),
         extra=("--as-of", "9999-12-30")),
    Case("as-of-year-1-with-offset", "`--as-of 0001-01-01T00:00:00+05:00` (year 0 in UTC)", ExitCode.USAGE,
         ("--as-of '0001-01-01T00:00:00+05:00'", "outside the calendar", "2026-11-16"),
         extra=("--as-of", "0001-01-01T00:00:00+05:00")),
    Case("as-of-previous-stage-before-year-1",
         "`--as-of 0001-01-03` (the previous stage starts before year 1)", ExitCode.USAGE,
         ("--as-of 0001-01-03", "before the year 1", "shorter --stage-length"),
         extra=("--as-of", "0001-01-03")),
    Case("as-of-not-a-date", "`--as-of 2026-13-01`", ExitCode.USAGE,
         ("--as-of '2026-13-01'", "not a date", "ISO 8601"), extra=("--as-of", "2026-13-01")),
    Case("stage-length-3000000d", "`--stage-length 3000000d`", ExitCode.USAGE,
         ("--stage-length '3000000d'", "longer than 100 years", "shorter"),
         extra=("--stage-length", "3000000d")),
    Case("stage-length-1e300d", "`--stage-length 1e300d`", ExitCode.USAGE,
         ("--stage-length '1e300d'", "not a duration", "7d"), extra=("--stage-length", "1e300d")),
    Case("stage-length-overflow", "`--stage-length 99999999999999999999999d` (overflows a C int)",
         ExitCode.USAGE, ("--stage-length '99999999999999999999999d'", "longer than 100 years"),
         extra=("--stage-length", "99999999999999999999999d")),
    Case("stage-length-below-a-microsecond", "`--stage-length 0.0000001s`", ExitCode.USAGE,
         ("--stage-length", "'0.0000001s'", "at least 1s"), extra=("--stage-length", "0.0000001s")),
    # plan: numbers out of range
    Case("budget-negative", "`--budget -1`", ExitCode.USAGE, ("--budget", "-1.0", "--budget 0.002"),
         budget="-1"),
    Case("budget-nan", "`--budget nan`", ExitCode.USAGE, ("--budget", "nan", "--budget 0.002"), budget="nan"),
    Case("budget-overflows-to-inf", "`--budget 1e400` (inf)", ExitCode.USAGE, ("--budget", "inf"),
         budget="1e400"),
    Case("budget-denormal", "`--budget 1e-320`", ExitCode.USAGE, ("--budget", ">= 1e-12", "1e-320"),
         budget="1e-320"),
    Case("budget-not-a-number", "`--budget abc`", ExitCode.USAGE,
         ("'--budget'", "valid number", "got 'abc'", "--help"), budget="abc"),
    Case("max-deployed-zero", "`--max-deployed 0`", ExitCode.USAGE,
         ("--max-deployed", "got 0", "--max-deployed 3"), extra=("--max-deployed", "0")),
    Case("max-deployed-overflow", "`--max-deployed 99999999999999999999999` (overflows int64)",
         ExitCode.USAGE, ("--max-deployed", "99999999999999999999999"),
         extra=("--max-deployed", "99999999999999999999999")),
    Case("max-deployed-not-an-integer", "`--max-deployed 2.5`", ExitCode.USAGE,
         ("'--max-deployed'", "valid integer", "got '2.5'"), extra=("--max-deployed", "2.5")),
    Case("gamma-negative", "`--gamma -1`", ExitCode.USAGE, ("--gamma", "-1.0", "--gamma 1.0"),
         extra=("--gamma", "-1")),
    Case("gamma-nan", "`--gamma nan`", ExitCode.USAGE, ("--gamma", "nan"), extra=("--gamma", "nan")),
    Case("gamma-text", "`--gamma foo`", ExitCode.USAGE, ("--gamma 'foo'", "'theory'"),
         extra=("--gamma", "foo")),
    Case("delta-zero", "`--delta 0`", ExitCode.USAGE, ("--delta", "0.0", "--delta 0.05"),
         extra=("--delta", "0")),
    Case("delta-one", "`--delta 1`", ExitCode.USAGE, ("--delta", "1.0"), extra=("--delta", "1")),
    Case("delta-underflows-gamma-theory", "`--delta 1e-200` (log(N T / delta) overflows)", ExitCode.USAGE,
         ("--delta", "1e-200", "1e-100"), extra=("--delta", "1e-200")),
    Case("cost-scale-denormal", "`--cost-scale 1e-320` (made HiGHS spin forever)", ExitCode.USAGE,
         ("--cost-scale", "1e-320", ">= 1e-12"), extra=("--cost-scale", "1e-320")),
    Case("cost-scale-inf", "`--cost-scale inf`", ExitCode.USAGE, ("--cost-scale", "inf"),
         extra=("--cost-scale", "inf")),
    Case("cost-scale-nan", "`--cost-scale nan`", ExitCode.USAGE, ("--cost-scale", "nan"),
         extra=("--cost-scale", "nan")),
    Case("cost-clip-reversed", "`--cost-clip 1,0`", ExitCode.USAGE,
         ("--cost-clip", "1.0,0.0", "LO < HI", "--cost-clip 0,1"), extra=("--cost-clip", "1,0")),
    Case("cost-clip-text", "`--cost-clip a,b`", ExitCode.USAGE, ("--cost-clip 'a,b'", "LO,HI"),
         extra=("--cost-clip", "a,b")),
    Case("canary-share-zero", "`--canary-share 0`", ExitCode.USAGE, ("--canary-share", "0.0", "(0, 1]"),
         extra=("--canary-share", "0")),
    Case("min-samples-negative", "`--min-samples -1`", ExitCode.USAGE, ("--min-samples", "-1"),
         extra=("--min-samples", "-1")),
    Case("min-samples-overflow", "`--min-samples 99999999999999999999999` (overflows int64)",
         ExitCode.USAGE, ("--min-samples", "99999999999999999999999"),
         extra=("--min-samples", "99999999999999999999999")),
    Case("radius-unknown", "`--radius foo`", ExitCode.USAGE, ("--radius 'foo'", "variance, mean"),
         extra=("--radius", "foo")),
    Case("solver-with-newline", "`--solver` with a newline in the value", ExitCode.USAGE,
         ("--solver 'foo\\nbar'", "highs, glpk"), extra=("--solver", "foo\nbar")),
    Case("deployed-with-newline", "`--deployed` naming a model with a newline", ExitCode.USAGE,
         ("--deployed names 'a\\nb'", "not in the catalog"), extra=("--deployed", "a\nb")),
    Case("deployed-names-no-model", "`--deployed ',,,'` (commas only)", ExitCode.USAGE,
         ("--deployed ',,,' names no model", "leave --deployed out"), extra=("--deployed", ",,,")),
    # plan: the change limit and the routing refresh
    Case("max-changes-negative", "`--max-changes -1`", ExitCode.USAGE,
         ("--max-changes", "-1", "--max-changes 1"), extra=("--max-changes", "-1")),
    Case("max-changes-not-an-integer", "`--max-changes 1.5`", ExitCode.USAGE,
         ("'--max-changes'", "valid integer", "got '1.5'"), extra=("--max-changes", "1.5")),
    Case("max-changes-cannot-carry-the-traffic",
         "`--deployed beta --max-changes 0` (beta's max_share is 0.5)", ExitCode.INFEASIBLE,
         ("--max-changes", "0.5 < 1", "raise --max-changes"),
         extra=("--deployed", "beta", "--max-changes", "0")),
    Case("max-changes-with-routing-only", "`--routing-only --deployed alpha --max-changes 1`",
         ExitCode.USAGE, ("--max-changes", "--routing-only", "drop one"),
         extra=("--routing-only", "--deployed", "alpha", "--max-changes", "1")),
    Case("routing-only-without-deployment", "`--routing-only` without `--deployed` or `--previous`",
         ExitCode.USAGE, ("--routing-only", "--deployed a,b,c", "--previous PLAN.json", "neither"),
         extra=("--routing-only",)),
    Case("routing-only-deployed-and-previous", "`--routing-only --deployed alpha --previous prev.json`",
         ExitCode.USAGE, ("exactly one of --deployed", "both"),
         extra=("--routing-only", "--deployed", "alpha", "--previous", "prev.json")),
    Case("routing-only-above-max-deployed", "`--routing-only --deployed alpha,beta,gamma` (3 > 2)",
         ExitCode.USAGE, ("3 models of --deployed", "--max-deployed 2", "--max-deployed 3"),
         extra=("--routing-only", "--deployed", "alpha,beta,gamma")),
    Case("previous-without-routing-only", "`--previous prev.json` without `--routing-only`",
         ExitCode.USAGE, ("--previous", "add --routing-only"), extra=("--previous", "prev.json")),
    Case("previous-missing", "`--routing-only --previous missing.json`", ExitCode.INPUT_MISSING,
         ("previous plan missing.json", "does not exist", "--previous"),
         extra=("--routing-only", "--previous", "missing.json")),
    Case("previous-is-a-directory", "`--routing-only --previous out` (a directory)",
         ExitCode.INPUT_MISSING, ("previous plan out", "is a directory", "--previous"),
         extra=("--routing-only", "--previous", "out")),
    Case("previous-not-json", "`--routing-only --previous prev.json`, not JSON", ExitCode.BAD_DATA,
         ("previous plan prev.json", "not valid JSON", "plan --output"),
         extra=("--routing-only", "--previous", "prev.json"), setup=_file("prev.json", "plan: none\n")),
    Case("previous-not-a-plan", "`--routing-only --previous prev.json`, JSON without a deployment",
         ExitCode.BAD_DATA, ("previous plan prev.json", "no 'deployment' list"),
         extra=("--routing-only", "--previous", "prev.json"),
         setup=_file("prev.json", '{"schema_version": 1, "policies": []}')),
    Case("previous-models-all-gone", "`--routing-only --previous prev.json` deploying only a model "
         "not in the catalog", ExitCode.INFEASIBLE,
         ("none of the models of the previous plan prev.json", "'omega' is no longer in the catalog",
          "without --routing-only"),
         extra=("--routing-only", "--previous", "prev.json"),
         setup=_file("prev.json", '{"schema_version": 1, "deployment": [{"model": "omega"}]}')),
    # the solver's time limit
    Case("solver-time-limit-highs", "HiGHS hits `STAGEROUTE_SOLVER_TIME_LIMIT=1e-9`",
         ExitCode.SOLVER_TIME_LIMIT, ("'highs'", "time limit of 1e-09 s", "STAGEROUTE_SOLVER_TIME_LIMIT"),
         env=(("STAGEROUTE_SOLVER_TIME_LIMIT", "1e-9"),)),
    Case("solver-time-limit-not-a-number", "`STAGEROUTE_SOLVER_TIME_LIMIT=abc`", ExitCode.USAGE,
         ("STAGEROUTE_SOLVER_TIME_LIMIT='abc'", "seconds", "e.g. 60"),
         env=(("STAGEROUTE_SOLVER_TIME_LIMIT", "abc"),)),
    Case("solver-time-limit-zero", "`STAGEROUTE_SOLVER_TIME_LIMIT=0`", ExitCode.USAGE,
         ("STAGEROUTE_SOLVER_TIME_LIMIT='0'",), env=(("STAGEROUTE_SOLVER_TIME_LIMIT", "0"),)),
    # replay: options out of range
    Case("horizon-negative", "`replay --horizon -5`", ExitCode.USAGE,
         ("--horizon", "got -5", "--horizon 100000"), command="replay", extra=("--horizon", "-5")),
    Case("horizon-huge", "`replay --horizon 1000000000000`", ExitCode.USAGE,
         ("--horizon", "100,000,000", "1000000000000"), command="replay",
         extra=("--horizon", "1000000000000")),
    Case("seed-negative", "`replay --seed -1`", ExitCode.USAGE, ("--seed", "got -1", "--seed 0"),
         command="replay", extra=("--seed", "-1")),
    Case("seed-overflow", "`replay --seed 9223372036854775808` (2^63)", ExitCode.USAGE,
         ("--seed", "9223372036854775808"), command="replay", extra=("--seed", "9223372036854775808")),
    Case("seeds-zero", "`replay --seeds 0`", ExitCode.USAGE, ("--seeds", "got 0"), command="replay",
         extra=("--seeds", "0")),
    Case("stages-zero", "`replay --stages 0`", ExitCode.USAGE, ("--stages", "got 0"), command="replay",
         extra=("--stages", "0")),
    Case("stages-above-horizon", "`replay --stages 501` with `--horizon 500`", ExitCode.USAGE,
         ("--stages", "--horizon 500", "got 501"), command="replay", extra=("--stages", "501")),
    Case("epsilon-above-one", "`replay --epsilon 2`", ExitCode.USAGE, ("--epsilon", "[0, 1]", "2.0"),
         command="replay", extra=("--epsilon", "2")),
    Case("replay-cost-scale-inf", "`replay --cost-scale inf`", ExitCode.USAGE, ("--cost-scale", "inf"),
         command="replay", extra=("--cost-scale", "inf")),
    Case("replay-cost-scale-nan", "`replay --cost-scale nan`", ExitCode.USAGE, ("--cost-scale", "nan"),
         command="replay", extra=("--cost-scale", "nan")),
    Case("replay-delta-zero", "`replay --delta 0`", ExitCode.USAGE, ("--delta", "0.0"), command="replay",
         extra=("--delta", "0")),
    Case("replay-gamma-nan", "`replay --gamma nan`", ExitCode.USAGE, ("--gamma", "nan"), command="replay",
         extra=("--gamma", "nan")),
    Case("replay-refresh-text", "`replay --refresh daily`", ExitCode.USAGE,
         ("--refresh 'daily'", "'query'", "--refresh 7"), command="replay",
         extra=("--refresh", "daily")),
    Case("replay-refresh-zero", "`replay --refresh 0`", ExitCode.USAGE,
         ("--refresh", "got 0", "--refresh 7"), command="replay", extra=("--refresh", "0")),
    Case("replay-canary-share-above-one", "`replay --canary-share 1.5`", ExitCode.USAGE,
         ("--canary-share", "1.5", "(0, 1]"), command="replay", extra=("--canary-share", "1.5")),
    Case("cost-gamma-negative", "`--cost-gamma -1`", ExitCode.USAGE,
         ("--cost-gamma", "-1.0", ">= 0"), extra=("--cost-gamma", "-1")),
    Case("replay-cost-gamma-nan", "`replay --cost-gamma nan`", ExitCode.USAGE,
         ("--cost-gamma", "nan"), command="replay", extra=("--cost-gamma", "nan")),
    Case("replay-max-deployed-zero", "`replay --max-deployed 0`", ExitCode.USAGE, ("--max-deployed", "got 0"),
         command="replay", extra=("--max-deployed", "0")),
    Case("replay-cost-clip-text", "`replay --cost-clip a,b`", ExitCode.USAGE, ("--cost-clip 'a,b'",),
         command="replay", extra=("--cost-clip", "a,b")),
    Case("relative-budget-negative", "`replay --relative-budget -0.3` (blames --relative-budget)",
         ExitCode.USAGE, ("--relative-budget", "-0.3", "--relative-budget 0.3"), command="replay",
         drop=("--budget",), extra=("--relative-budget", "-0.3")),
    Case("relative-budget-tiny", "`replay --relative-budget 1e-12`: a budget below 1e-12 in "
         "currency (blames --relative-budget)", ExitCode.USAGE,
         ("--relative-budget 1e-12", "below the smallest", "give a larger --relative-budget"),
         command="replay", drop=("--budget",), extra=("--relative-budget", "1e-12")),
    Case("both-budgets", "`replay --budget 0.002 --relative-budget 0.3`", ExitCode.USAGE,
         ("exactly one of --budget and --relative-budget", "both"), command="replay",
         extra=("--relative-budget", "0.3")),
    Case("policy-unknown", "`replay --policy foo`", ExitCode.USAGE, ("--policy 'foo'", "stageroute"),
         command="replay", extra=("--policy", "foo")),
    Case("replay-solver-unknown", "`replay --solver foo`", ExitCode.USAGE, ("--solver 'foo'",),
         command="replay", extra=("--solver", "foo")),
    Case("start-end-of-calendar", "`replay --start 9999-12-31` (blames --start, not --end)", ExitCode.USAGE,
         ("--start 9999-12-31", "not before the default end", "earlier --start"), command="replay",
         extra=("--start", "9999-12-31")),
    Case("end-year-1", "`replay --end 0001-01-01`", ExitCode.USAGE,
         ("--end 0001-01-01", "not after the default start", "later --end"), command="replay",
         extra=("--end", "0001-01-01")),
    Case("end-before-start", "`replay --start 2026-05-01 --end 2026-04-01`", ExitCode.USAGE,
         ("--end 2026-04-01", "after --start 2026-05-01"), command="replay",
         extra=("--start", "2026-05-01", "--end", "2026-04-01")),
    Case("default-span-beyond-9999", "`replay --stages 500` on a catalog released in 9995",
         ExitCode.BAD_DATA, ("9995-01-01", "placeholder"), command="replay",
         catalog=LATE_CATALOG, extra=("--stages", "500")),
    # output paths
    Case("output-is-the-logs", "`--output logs.parquet` (the `--logs` file)", ExitCode.USAGE,
         ("--output logs.parquet", "input --logs logs.parquet", "same file", "another path"),
         output="logs.parquet"),
    Case("output-is-the-catalog-spelled-differently", "`--output out/../catalog.csv` (the catalog)",
         ExitCode.USAGE, ("--output out/../catalog.csv", "--catalog catalog.csv", "same file"),
         output="out/../catalog.csv"),
    Case("output-symlink-to-the-catalog", "`--output out/link.csv`, a symlink to the catalog",
         ExitCode.USAGE, ("--output out/link.csv", "--catalog catalog.csv"), output="out/link.csv",
         setup=_symlink("out/link.csv", "../catalog.csv")),
    Case("output-hard-link-to-the-logs", "`--output out/hard.parquet`, a hard link to the logs",
         ExitCode.USAGE, ("--output out/hard.parquet", "--logs logs.parquet", "same file"),
         output="out/hard.parquet", setup=_hardlink("out/hard.parquet", "logs.parquet")),
    Case("output-is-the-feedback", "`--output fb.parquet --feedback fb.parquet`", ExitCode.USAGE,
         ("--output fb.parquet", "--feedback fb.parquet"), output="fb.parquet",
         extra=("--feedback", "fb.parquet")),
    Case("output-read-back-from-the-logs-directory", "`--output logdir/plan.parquet` with `--logs logdir`",
         ExitCode.USAGE, ("--output logdir/plan.parquet", "--logs logdir", "next run would read it"),
         logs="logdir", output="logdir/plan.parquet", setup=_logs_directory),
    Case("output-matches-the-logs-glob", "`--output logdir/plan.json` with `--logs 'logdir/*'`",
         ExitCode.USAGE, ("--output logdir/plan.json", "matches the glob"), logs="logdir/*",
         output="logdir/plan.json", setup=_logs_directory),
    Case("output-dash", "`--output -` (not stdout: a file named '-')", ExitCode.USAGE,
         ("--output -", "--json"), output="-"),
    Case("output-is-a-directory", "`--output out` (a directory)", ExitCode.CANNOT_WRITE,
         ("cannot write out", "is a directory", "out/plan.json"), output="out"),
    Case("output-is-a-fifo", "`--output out/fifo` (a FIFO: no hang, not replaced)", ExitCode.CANNOT_WRITE,
         ("cannot write out/fifo", "not a regular file"), output="out/fifo", setup=_fifo("out/fifo")),
    Case("output-read-only-file", "`--output out/plan.json`, a read-only file", ExitCode.CANNOT_WRITE,
         ("cannot write out/plan.json", "read-only", "chmod u+w"), setup=_read_only_output),
    Case("output-parent-is-a-file", "`--output logs.parquet/plan.json`", ExitCode.CANNOT_WRITE,
         ("cannot write logs.parquet/plan.json", "Not a directory"), output="logs.parquet/plan.json"),
    Case("output-in-unwritable-directory", "`--output /proc/plan.json` (no file can be created there)",
         ExitCode.CANNOT_WRITE, ("cannot write /proc/plan.json", "no file can be created in /proc"),
         output="/proc/plan.json"),
    Case("output-symlink-loop", "`--output out/loop`, a symlink to itself", ExitCode.CANNOT_WRITE,
         ("cannot write out/loop", "symbolic links"), output="out/loop", setup=_symlink("out/loop", "loop")),
    Case("output-path-with-newline", "`--output` with a newline, in a missing directory",
         ExitCode.CANNOT_WRITE, ("cannot write no\\nwhere/plan.json", "does not exist"),
         output="no\nwhere/plan.json"),
    Case("input-path-too-long", "`--catalog` with a 5,000-character name", ExitCode.INPUT_MISSING,
         ("--catalog 'xxxx", "5,000 characters", "File name too long"), extra=("--catalog", "x" * 5000)),
    Case("plot-is-the-output", "`replay --plot out/plan.json --output out/plan.json`", ExitCode.USAGE,
         ("--plot out/plan.json and --output out/plan.json", "same file"), command="replay",
         extra=("--plot", "out/plan.json")),
    Case("plot-is-the-outcomes", "`replay --plot outcomes.parquet`", ExitCode.USAGE,
         ("--plot outcomes.parquet", "--outcomes outcomes.parquet"), command="replay",
         extra=("--plot", "outcomes.parquet")),
    Case("plot-is-a-fifo", "`replay --plot out/fifo`", ExitCode.CANNOT_WRITE,
         ("cannot write out/fifo", "not a regular file"), command="replay", extra=("--plot", "out/fifo"),
         setup=_fifo("out/fifo")),
    Case("import-over-its-source", "`import routerbench wide.csv --output wide.csv`", ExitCode.USAGE,
         ("--output wide.csv", "SOURCE wide.csv", "same file"), command="import", output="wide.csv"),
    Case("import-zero-rows", "`import routerbench` of a table with no complete prompt (0 rows)",
         ExitCode.BAD_DATA, ("wide.csv", "0 rows", "out/outcomes.parquet was not written"),
         command="import", output="out/outcomes.parquet", setup=_empty_routerbench),
    Case("import-output-locked", "`import routerbench --output` locked by another run", ExitCode.LOCKED,
         ("another stageroute run", "out/outcomes.parquet.lock"), command="import",
         output="out/outcomes.parquet", hold_lock=True),
]

# --- export and diff (issue 9): a plan JSON in, a gateway config or a comparison out ------------

def _plan_json(*routing: tuple[str, float]) -> str:
    return json.dumps({"schema_version": 1, "deployment": [{"model": m} for m, _ in routing],
                       "routing": [{"model": m, "probability": p} for m, p in routing]})


def _plans(**files: str | None) -> Callable[[Path], None]:
    """Write (or, for None, remove) ``<name>.json`` files."""
    def make(directory: Path) -> None:
        for name, text in files.items():
            path = directory / f"{name}.json"
            if text is None:
                path.unlink()
            else:
                path.write_text(text)
    return make


PLAN_JSON = _plan_json(("alpha", 0.6), ("beta", 0.4))
EXPORT_CASES = [
    Case("export-missing-plan", "`export --plan` file that does not exist", ExitCode.INPUT_MISSING,
         ("plan plan.json", "does not exist", "--plan"), command="export", setup=_plans(plan=None)),
    Case("export-invalid-plan", "`export --plan` file that is no plan (a JSON array)",
         ExitCode.BAD_DATA, ("plan plan.json", "holds an array", "not a plan object"),
         command="export", setup=_plans(plan="[1, 2]")),
    Case("export-unknown-format", "`export --format nginx`", ExitCode.USAGE,
         ("--format", "'nginx'", "litellm, envoy, portkey"), command="export",
         extra=("--format", "nginx")),
    Case("export-model-not-in-catalog", "`export --catalog` that lacks a model the plan routes to",
         ExitCode.BAD_DATA, ("plan plan.json", "'mystery-7b'", "catalog.csv does not list"),
         command="export", extra=("--catalog", "catalog.csv"),
         setup=_plans(plan=_plan_json(("alpha", 0.5), ("mystery-7b", 0.5)))),
    Case("diff-missing-plan", "`diff` of a plan file that does not exist", ExitCode.INPUT_MISSING,
         ("plan b.json", "does not exist", "stageroute diff"), command="diff",
         setup=_plans(b=None)),
    Case("diff-not-a-plan", "`diff` of a JSON file without schema_version", ExitCode.BAD_DATA,
         ("plan b.json", "schema_version None", "plan JSON"), command="diff",
         setup=_plans(b="{}")),
]


def _store(copy: bool = False) -> Callable[[Path], None]:
    """A statistics store ``store/`` built from the case's logs (in a ``logs/`` directory; with
    ``copy``, a copy of its file lands there after the build)."""
    def make(directory: Path) -> None:
        from stageroute.store.build import build_store

        (directory / "logs").mkdir()
        shutil.copy(directory / "logs.parquet", directory / "logs" / "a.parquet")
        build_store(directory / "logs", directory / "store")
        if copy:
            shutil.copy(directory / "logs.parquet", directory / "logs" / "b.parquet")
    return make


STORE_CASES = [
    Case("plan-stats-missing", "`plan --stats` of a store that does not exist", ExitCode.INPUT_MISSING,
         ("statistics store store", "does not exist", "stageroute stats --logs PATH --out store"),
         drop=("--logs",), extra=("--stats", "store")),
    Case("plan-logs-and-stats", "`plan` with both `--logs` and `--stats`", ExitCode.USAGE,
         ("--logs PATH", "--stats DIR", "one of the two"), extra=("--stats", "store"), setup=_store()),
    Case("plan-stats-as-of-inside-a-window", "`plan --stats --as-of` inside a window that has rows after it",
         ExitCode.USAGE, ("--as-of 2026-02-28 03:00", "cannot split", "window boundary"),
         drop=("--logs",), extra=("--stats", "store", "--as-of", "2026-02-28T03:00"), setup=_store()),
    Case("plan-half-life-negative", "`plan --half-life -1d`", ExitCode.USAGE, ("--half-life",),
         extra=("--half-life", "-1d")),
    Case("stats-window-length-changed", "`stats --window-length` unlike the store's", ExitCode.USAGE,
         ("windows of 1d from", "not 6h", "--rebuild"), command="stats", logs="logs",
         extra=("--window-length", "6h"), setup=_store()),
    Case("stats-copied-partition", "`stats` over a new file that copies a summarised one",
         ExitCode.BAD_DATA, ("b.parquet", "copy", "count twice"), command="stats", logs="logs",
         setup=_store(copy=True)),
    Case("stats-no-cost-no-catalog", "`stats` of logs without `cost` and without `--catalog`",
         ExitCode.USAGE, ("no cost column", "--catalog"), command="stats",
         mutate=lambda f: f.drop("cost")),
    Case("stats-unknown-engine", "`stats --engine nosuch`", ExitCode.USAGE,
         ("--engine", "polars, duckdb, spark"), command="stats", extra=("--engine", "nosuch")),
]
def _propensity(value: float) -> Callable[[pl.DataFrame], pl.DataFrame]:
    return lambda frame: frame.with_columns(pl.lit(value).alias("propensity"))


# replay --logs (off-policy, README "Off-policy replay"): what cannot be estimated is refused.
OFFPOLICY_CASES = [
    Case("offpolicy-no-propensity", "`replay --logs`: logs without `propensity`, logger not "
         "declared uniform", ExitCode.BAD_DATA,
         ("logs.parquet", "no column 'propensity'", "--logging-policy uniform"), command="offpolicy",
         drop=("--logging-policy",)),
    Case("offpolicy-deterministic", "`replay --logs`: every propensity is 1 (a deterministic "
         "logger)", ExitCode.BAD_DATA, ("every propensity is 1", "deterministic", "exploration"),
         command="offpolicy", mutate=_propensity(1.0), drop=("--logging-policy",)),
    Case("offpolicy-propensity-range", "`replay --logs`: a propensity of 0", ExitCode.BAD_DATA,
         ("column 'propensity'", "outside (0, 1]", "r0005"), command="offpolicy",
         mutate=lambda f: _set("propensity", 0.0)(_propensity(0.5)(f)), drop=("--logging-policy",)),
    Case("offpolicy-oracle", "`replay --logs --policy oracle` (no outcome table)", ExitCode.USAGE,
         ("--policy 'oracle'", "cannot be estimated from logs"), command="offpolicy",
         mutate=_propensity(0.5), extra=("--policy", "oracle")),
    Case("offpolicy-plan-missing", "`replay --logs --policy plan` without `--plan`",
         ExitCode.USAGE, ("--policy plan needs --plan FILE",), command="offpolicy",
         mutate=_propensity(0.5), extra=("--policy", "plan")),
    Case("offpolicy-plan-unknown-model", "`replay --logs --plan` routing to a model outside the "
         "catalog", ExitCode.BAD_DATA, ("plan plan.json", "mystery-7b", "not a catalog model"),
         command="offpolicy", extra=("--plan", "plan.json"),
         setup=_plans(plan=_plan_json(("alpha", 0.5), ("mystery-7b", 0.5)))),
    Case("offpolicy-both-inputs", "`replay` with both `--outcomes` and `--logs`", ExitCode.USAGE,
         ("--outcomes PATH", "--logs PATH", "one of the two"), command="offpolicy",
         mutate=_propensity(0.5), extra=("--outcomes", "outcomes.parquet")),
    Case("offpolicy-plot", "`replay --logs --plot`", ExitCode.USAGE,
         ("--plot needs --outcomes",), command="offpolicy", mutate=_propensity(0.5),
         extra=("--plot", "out/p.png")),
]

def _prompts(rows: int) -> Callable[[Path], None]:
    """Write prompts.csv with the first ``rows`` prompts of the small outcome table."""
    def make(directory: Path) -> None:
        text = "".join(f"s{i:03d},question number {i} about topic {i % 3}\n" for i in range(rows))
        (directory / "prompts.csv").write_text("sample_id,prompt\n" + text)
    return make


# replay --contextual (README "Contextual routing"): segments and prompts must exist.
CONTEXTUAL_CASES = [
    Case("contextual-no-segment-column", "`replay --contextual` on outcomes without the segment "
         "column (`eval_name` by default)", ExitCode.USAGE,
         ("--segments 'eval_name'", "not a column of the outcomes", "--segments auto"),
         command="replay", extra=("--contextual",)),
    Case("contextual-policy-without-flag", "`replay --policy port` without `--contextual`",
         ExitCode.USAGE, ("--policy port needs --contextual",), command="replay",
         extra=("--policy", "port")),
    Case("contextual-auto-no-prompts", "`replay --contextual --segments auto` without "
         "`--prompts`", ExitCode.USAGE, ("--segments auto", "--prompts FILE"), command="replay",
         extra=("--contextual", "--segments", "auto")),
    Case("contextual-prompts-missing", "`replay --contextual --prompts` lacking some of the "
         "outcomes' prompts", ExitCode.BAD_DATA, ("prompts.csv", "no prompt for 10", "s030"),
         command="replay", setup=_prompts(30),
         extra=("--contextual", "--segments", "auto", "--prompts", "prompts.csv")),
    Case("contextual-clusters", "`replay --contextual --segments auto --clusters 1`",
         ExitCode.USAGE, ("--clusters must be an integer in [2, 256]",), command="replay",
         setup=_prompts(40),
         extra=("--contextual", "--segments", "auto", "--prompts", "prompts.csv", "--clusters", "1")),
]

# plan --segments (README "Contextual routing"): the logs (or the store) need a segment column.
def _segments(*names: str) -> Callable[[pl.DataFrame], pl.DataFrame]:
    """A segment column cycling through ``names``."""
    return lambda frame: frame.with_columns(
        pl.Series("segment", [names[i % len(names)] for i in range(frame.height)]))


SEGMENT_PLAN_CASES = [
    Case("segments-case-only", "`plan --segments`: segments that differ only in case",
         ExitCode.BAD_DATA, ("column 'segment'", "'Code' and 'code'", "differ only in case"),
         mutate=_segments("Code", "code", "chat"), extra=("--segments",)),
    Case("segments-control-character", "`plan --segments`: a segment with a newline",
         ExitCode.BAD_DATA, ("column 'segment'", "control or invisible character"),
         mutate=_segments("chat", "a\nb"), extra=("--segments",)),
    Case("segments-no-column", "`plan --segments` on logs without a `segment` column",
         ExitCode.BAD_DATA, ("logs.parquet", "no column 'segment'", "--segments",
                             "add a segment column"), extra=("--segments",)),
    Case("segments-stats-no-segments", "`plan --segments --stats DIR` of a store built from logs "
         "without a `segment` column", ExitCode.BAD_DATA,
         ("statistics store store", "no segments", "--segments", "--rebuild"),
         setup=_store(), drop=("--logs",), extra=("--stats", "store", "--segments")),
    Case("plan-output-in-store", "`plan --stats DIR --output DIR/manifest.json`: an output inside "
         "the statistics store", ExitCode.USAGE,
         ("--output", "store/manifest.json", "inside that statistics store", "another path"),
         setup=_store(), drop=("--logs",), extra=("--stats", "store"),
         output="store/manifest.json"),
]

ALL_CASES = (CASES + HOSTILE_CASES + EXPORT_CASES + STORE_CASES + OFFPOLICY_CASES
             + CONTEXTUAL_CASES + SEGMENT_PLAN_CASES)

BASE = {
    "plan": ("plan", "--logs", "{logs}", "--catalog", "catalog.csv", "--budget", "{budget}",
             "--max-deployed", "2", "--as-of", "2026-03-01", "--output", "{output}"),
    "replay": ("replay", "--outcomes", "outcomes.parquet", "--catalog", "catalog.csv", "--budget",
               "0.002", "--max-deployed", "2", "--horizon", "500", "--seeds", "1", "--output", "{output}"),
    "import": ("import", "routerbench", "wide.csv", "--output", "{output}"),
    "export": ("export", "--plan", "plan.json", "--format", "litellm", "--output", "{output}"),
    "diff": ("diff", "a.json", "b.json"),
    "stats": ("stats", "--logs", "{logs}", "--out", "store"),
    "offpolicy": ("replay", "--logs", "{logs}", "--catalog", "catalog.csv", "--budget", "0.002",
                  "--max-deployed", "2", "--logging-policy", "uniform", "--output", "{output}"),
}


def command_args(case: Case) -> list[str]:
    """The arguments after ``stageroute`` (paths relative to the case directory)."""
    args = [a.format(logs=case.logs, budget=case.budget, output=case.output) for a in BASE[case.command]]
    for option in case.drop:
        at = args.index(option)
        del args[at:at + 2]
    return [*args, *case.extra]


def small_outcomes() -> pl.DataFrame:
    """A full-information outcome table: 40 prompts x alpha, beta, gamma."""
    rng = np.random.default_rng(0)
    rows = [(f"s{i:03d}", m, float(rng.random()), 0.001 * (j + 1) * float(0.5 + rng.random()))
            for i in range(40) for j, m in enumerate(("alpha", "beta", "gamma"))]
    return pl.DataFrame(rows, schema=["sample_id", "model", "reward", "cost"], orient="row")


def wide_routerbench(long: pl.DataFrame) -> pl.DataFrame:
    """RouterBench's wide layout of a long outcome table."""
    scores = long.pivot(on="model", index="sample_id", values="reward")
    costs = long.pivot(on="model", index="sample_id", values="cost")
    return scores.join(costs.rename({m: f"{m}|total_cost" for m in costs.columns if m != "sample_id"}),
                       on="sample_id")


def prepare(case: Case, directory: Path) -> None:
    """Write the case's inputs into ``directory`` (and the output directory ``out``)."""
    (directory / "out").mkdir(exist_ok=True)
    (directory / "catalog.csv").write_text(case.catalog)
    if case.raw_logs is not None:
        (directory / "logs.parquet").write_bytes(case.raw_logs)
    else:
        frame = small_logs()
        (case.mutate(frame) if case.mutate else frame).write_parquet(directory / "logs.parquet")
    small_outcomes().write_parquet(directory / "outcomes.parquet")
    wide_routerbench(small_outcomes()).write_csv(directory / "wide.csv")
    if case.command in ("export", "diff"):  # valid plans, which the case's setup may replace
        _plans(plan=PLAN_JSON, a=PLAN_JSON, b=PLAN_JSON)(directory)
    if case.setup is not None:
        case.setup(directory)


@contextmanager
def _lock_held(path: Path, hold: bool) -> Iterator[None]:
    """Hold the output's lock the way stageroute takes it (``render.output.locked``)."""
    if not hold:
        yield
        return
    with locked(path):
        yield


def snapshot(directory: Path) -> dict[str, str]:
    """A digest of every file under ``directory`` (links and FIFOs are not followed)."""
    files = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = Path(root) / name
            info = os.lstat(path)
            key = str(path.relative_to(directory))
            if stat.S_ISREG(info.st_mode):
                files[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(info.st_mode):
                files[key] = f"-> {os.readlink(path)}"
            else:
                files[key] = f"mode {stat.S_IFMT(info.st_mode):o}"
    return files


def run_case(case: Case, directory: Path, program: list[str]) -> subprocess.CompletedProcess[str]:
    """Prepare ``case`` in ``directory`` and run ``program + command_args(case)`` there."""
    prepare(case, directory)
    return run_prepared(case, directory, program)


def run_prepared(case: Case, directory: Path, program: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **dict(case.env)}
    env.pop("STAGEROUTE_DEBUG", None)
    if case.no_glpk_on_path:
        empty = directory / "empty-bin"
        empty.mkdir(exist_ok=True)
        env["PATH"] = str(empty)
    with _lock_held(directory / case.output, case.hold_lock):
        return subprocess.run([*program, *command_args(case)], cwd=directory, env=env,
                              capture_output=True, text=True, timeout=300, check=False)


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``Error:`` line, last on stderr; every other line is progress or a warning."""
    output = result.stderr + result.stdout
    assert "Traceback" not in output and "internal error" not in output, result.stderr
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    assert lines[-1] == errors[0]
    assert all(line.startswith("stageroute: ") for line in lines[:-1]), result.stderr
    return errors[0]


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.id for c in ALL_CASES])
def test_bad_input_gives_one_error_line(case: Case, tmp_path: Path) -> None:
    prepare(case, tmp_path)
    before = snapshot(tmp_path)
    result = run_prepared(case, tmp_path, [sys.executable, "-m", "stageroute_cli"])
    assert result.returncode == case.code, result.stderr
    error = error_line(result)
    for word in case.words:
        assert word in error, f"{word!r} not in {error!r}"
    if case.hold_lock:
        assert f"pid {os.getpid()} on " in error  # the holder is named
    # Nothing written, nothing left behind but the (documented) lock file, inputs untouched.
    after = snapshot(tmp_path)
    assert {name for name in set(after) - set(before) if not name.endswith(".lock")} == set()
    assert {name: after.get(name) for name in before} == before
    if case.shows_plan:
        assert "Routing table" in result.stdout  # the cheapest plan is shown for the operator


def test_every_case_is_in_the_matrix_of_docs_errors_md() -> None:
    matrix = (REPO_ROOT / "docs" / "errors.md").read_text()
    for case in ALL_CASES:
        rows = [line for line in matrix.splitlines() if line.startswith(f"| `{case.id}` |")]
        assert rows, f"docs/errors.md has no row for {case.id}"
        assert rows[0].rstrip().endswith(f"| {int(case.code)} |"), rows[0]


def test_every_exit_code_is_in_help_and_in_docs_errors_md() -> None:
    result = subprocess.run([sys.executable, "-m", "stageroute_cli", "--help"], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    matrix = (REPO_ROOT / "docs" / "errors.md").read_text()
    for code in ExitCode:
        assert f" {int(code)} " in result.stdout, code
        assert f"\n| {int(code)} | " in matrix, code


def test_no_command_shows_the_help_and_one_error_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "stageroute_cli"], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == ExitCode.USAGE
    assert "Commands:" in result.stdout
    (line,) = result.stderr.splitlines()
    head, tail = "Error: no command given, pick one of: ", " (see 'python -m stageroute_cli --help')"
    assert line.startswith(head) and line.endswith(tail), line
    named = line[len(head):-len(tail)].split(", ")
    assert named == sorted(named)
    assert {"diff", "export", "import", "init", "plan", "replay"} <= set(named)


def test_allow_over_budget_writes_the_cheapest_plan_and_exits_0(tmp_path: Path) -> None:
    case = Case("over", "none", ExitCode.OK, (), budget="0.0001", extra=("--allow-over-budget",))
    result = run_case(case, tmp_path, [sys.executable, "-m", "stageroute_cli"])
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "out" / "plan.json").read_text())["over_budget"] is True


@pytest.mark.parametrize("solver", ["highs", "glpk"])
def test_a_solve_past_its_time_limit_is_an_error_not_infeasible(solver: str, monkeypatch) -> None:
    """A 300-candidate DeployOPT MIP with a limit far below any solve (GLPK counts whole seconds)."""
    from stageroute.errors import SolverTimeLimitError
    from stageroute.optimize.deploy import build_deploy_model
    from stageroute.optimize.solver import solve
    from stageroute.options import Solver

    rng = np.random.default_rng(1)
    model = build_deploy_model(rng.random(300), rng.random(300), np.full(300, 0.05), 0.3, 25)
    monkeypatch.setenv("STAGEROUTE_SOLVER_TIME_LIMIT", "1e-9")
    with pytest.raises(SolverTimeLimitError, match=f"solver '{solver}' hit its time limit of 1e-09 s"):
        solve(model, Solver(solver))
    monkeypatch.setenv("STAGEROUTE_SOLVER_TIME_LIMIT", "600")
    assert solve(model, Solver(solver))  # the same model solves within a sane limit


def test_glpk_is_installed_here() -> None:
    # The missing-solver case must fail because of PATH, not because GLPK is absent.
    from stageroute.optimize.solver import solver_available
    from stageroute.options import Solver

    assert solver_available(Solver.GLPK)


@pytest.mark.parametrize("command", sorted(set(BASE) - {"diff", "stats"}))  # no --output there
def test_valid_run_writes_the_output(command: str, tmp_path: Path) -> None:
    case = Case("valid", "none", ExitCode.OK, (), command=command)
    result = run_case(case, tmp_path, [sys.executable, "-m", "stageroute_cli"])
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "plan.json").stat().st_size > 0
    assert not list(tmp_path.rglob("*.tmp"))


def test_output_through_a_symlink_replaces_the_target_and_keeps_the_link(tmp_path: Path) -> None:
    case = Case("link", "none", ExitCode.OK, (), output="out/current.json",
                setup=_symlink("out/current.json", "plan-2026.json"))
    result = run_case(case, tmp_path, [sys.executable, "-m", "stageroute_cli"])
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "current.json").is_symlink()
    assert json.loads((tmp_path / "out" / "plan-2026.json").read_text())["schema_version"] == 1


def display_command(case: Case) -> str:
    """The command of a case as docs/errors.md shows it ($PLAN etc. stand for BASE)."""
    import shlex

    defaults = {"--logs": "logs.parquet", "--budget": "0.01", "--output": "out/plan.json"}
    given = {"--logs": case.logs, "--budget": case.budget, "--output": case.output}
    changed = [f"{o} {shlex.quote(v)}" for o, v in given.items()
               if v != defaults[o] and (case.command == "plan" or o == "--output"
                                           or (case.command == "stats" and o == "--logs"))]
    words = [*(f"{k}={v}" for k, v in case.env), "stageroute", *BASE[case.command][:2 if case.command ==
             "import" else 1], f"${case.command.upper()}", *changed, *(f"(without {o})" for o in case.drop),
             *(shlex.quote(a if len(a) < 60 else f"{a[:4]}...({len(a):,} characters)") for a in case.extra)]
    return " ".join(words).replace("\n", "\\n")


def matrix_rows() -> Iterator[str]:
    """Rows of the docs/errors.md matrix, from real runs (``python tests/test_cli_errors.py``)."""
    import tempfile

    for case in ALL_CASES:
        with tempfile.TemporaryDirectory() as tmp:
            result = run_case(case, Path(tmp), [sys.executable, "-m", "stageroute_cli"])
        error = next(line for line in result.stderr.splitlines() if line.startswith("Error: "))
        cells = [f"`{case.id}`", case.bad_input, f"`{display_command(case)}`", f"`{error}`",
                 str(result.returncode)]
        yield "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    for row in matrix_rows():
        print(row)
